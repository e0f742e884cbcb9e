/*
 * fuzz_graphite.c - libFuzzer target: the line framer (fuzz_frame.h) and the Graphite
 * parser on each line it gives. Aborts when a return code is out of range, a key is not
 * NUL-terminated inside its buffer, a value or timestamp is not finite (or NAN for the
 * timestamp), or a refused line touched the sample.
 */
#include "fuzz_frame.h"
#include "ingest/proto_graphite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_line(const char *line, size_t len, const fz_params *pa)
{
    ad_sample s;
    if (fz_parse_sample(ad_graphite_parse, line, len, pa, &s) == 0) {
        /* the canonical key is a fixed point: parsing it again gives itself */
        char line2[300], key2[256];
        ad_sample s2;
        size_t n = s.key_len;
        memcpy(line2, s.key, n);
        memcpy(line2 + n, " 1", 2);
        if (ad_graphite_parse(line2, n + 2, key2, sizeof(key2), &s2) != 0 ||
            strcmp(key2, s.key) != 0)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run(data, size, check_line);
    return 0;
}
