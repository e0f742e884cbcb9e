/*
 * fuzz_jsonl.c - libFuzzer target: the line framer (fuzz_frame.h) and the JSON-lines
 * parser on each line it gives. Aborts when a return code is out of range, a key is not
 * NUL-terminated inside its buffer, a value or timestamp is not finite (or NAN for the
 * timestamp), or a refused line touched the sample. Leaks of cJSON trees show up under
 * LeakSanitizer.
 */
#include <math.h>

#include "fuzz_frame.h"
#include "proto_jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *line, size_t len, const fz_params *pa)
{
    ad_sample s = {.key = "sentinel", .key_len = 8, .ts = 1, .value = 2};
    fz_key_arm(pa->keycap);
    int rc = ad_jsonl_parse(line, len, fz_keybuf, pa->keycap, &s);
    fz_guard_check(pa->keycap);
    if (rc == 0) {
        fz_key_check(s.key, s.key_len, pa->keycap);
        if (!isfinite(s.value) || !(isnan(s.ts) || (s.ts >= 0 && s.ts < 1e11)))
            abort();
    } else if (rc == AD_PARSE_SKIP || (rc < 0 && rc > -AD_PE_NREASONS)) {
        if (strcmp(s.key, "sentinel") != 0 || s.value != 2 || s.ts != 1)
            abort();
    } else {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fz_lines lines;
    fz_params pa;
    size_t n;
    const char *p = fz_begin(data, size, &pa, &n);
    if (!p)
        return 0;
    fz_frame(p, n, &pa, &lines);
    fz_each(&lines, check_line, &pa);
    check_line(p, n, &pa);
    return 0;
}
