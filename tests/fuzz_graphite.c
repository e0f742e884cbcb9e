/*
 * fuzz_graphite.c - libFuzzer target: the line framer (fuzz_frame.h) and the Graphite
 * parser on each line it gives. Aborts when a return code is out of range, a key is not
 * NUL-terminated inside its buffer, a value or timestamp is not finite (or NAN for the
 * timestamp), or a refused line touched the sample.
 */
#include <math.h>

#include "fuzz_frame.h"
#include "proto_graphite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *line, size_t len, const fz_params *pa)
{
    ad_sample s = {.key = "sentinel", .key_len = 8, .ts = 1, .value = 2};
    fz_key_arm(pa->keycap);
    int rc = ad_graphite_parse(line, len, fz_keybuf, pa->keycap, &s);
    fz_guard_check(pa->keycap);
    if (rc == 0) {
        fz_key_check(s.key, s.key_len, pa->keycap);
        if (!isfinite(s.value) || !(isnan(s.ts) || (s.ts >= 0 && s.ts < 1e11)))
            abort();
        /* the canonical key is a fixed point: parsing it again gives itself */
        char line2[300], key2[256];
        ad_sample s2;
        size_t n = s.key_len;
        memcpy(line2, s.key, n);
        memcpy(line2 + n, " 1", 2);
        if (ad_graphite_parse(line2, n + 2, key2, sizeof(key2), &s2) != 0 ||
            strcmp(key2, s.key) != 0)
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
    check_line(p, n, &pa); /* the whole stream as one line, newlines and all */
    return 0;
}
