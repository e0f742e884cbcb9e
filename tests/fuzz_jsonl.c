/*
 * fuzz_jsonl.c - libFuzzer target: the line framer (fuzz_frame.h) and the JSON-lines
 * parser on each line it gives. Aborts when a return code is out of range, a key is not
 * NUL-terminated inside its buffer, a value or timestamp is not finite (or NAN for the
 * timestamp), or a refused line touched the sample. Leaks of cJSON trees show up under
 * LeakSanitizer.
 */
#include "fuzz_frame.h"
#include "ingest/proto_jsonl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *line, size_t len, const fz_params *pa)
{
    ad_sample s;
    fz_parse_sample(ad_jsonl_parse, line, len, pa, &s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run(data, size, check_line);
    return 0;
}
