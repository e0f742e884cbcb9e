/*
 * fuzz_remote_write.c - libFuzzer target: remote_write.c's decoder. The first byte picks
 * the mode: even, the rest is the HTTP body as sent (snappy block); odd, the rest is
 * protobuf, compressed here first (so the fuzzer reaches the protobuf decoder without
 * having to learn snappy). Aborts when a decoded request breaks a promise of
 * remote_write.h: labels not sorted or with __name__ or empty values left in, an
 * accepted series with an invalid name, samples out of order, the arena over its cap,
 * a key that is not what it says. Leaks show up under LeakSanitizer.
 */
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/remote_write.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DECODED 65536

static void check(const ad_rw_request *r)
{
    char key[512];
    size_t klen;

    if (r->decoded_len > MAX_DECODED ||
        r->arena_bytes > r->decoded_len * AD_RW_AMPLIFY + 65536 + 65536)
        abort();
    for (size_t i = 0; i < r->nseries; i++) {
        const ad_rw_series *s = &r->series[i];

        for (size_t j = 0; j < s->nlabels; j++) {
            if (!s->labels[j].value[0] || !strcmp(s->labels[j].name, "__name__"))
                abort();
            if (j && strcmp(s->labels[j - 1].name, s->labels[j].name) > 0)
                abort();
            if (!s->bad && !ad_rw_valid_label_name(s->labels[j].name))
                abort();
        }
        for (size_t j = 1; j < s->nsamples; j++)
            if (s->samples[j - 1].ts_ms > s->samples[j].ts_ms)
                abort();
        if (s->bad)
            continue;
        if (!ad_rw_valid_metric_name(s->name))
            abort();
        if (ad_rw_series_key(s->name, s->labels, s->nlabels, key, sizeof(key), &klen) == 0) {
            if (klen != strlen(key) || strncmp(key, s->name, strlen(s->name)))
                abort();
            if (s->nlabels && key[klen - 1] != '}')
                abort();
        }
    }
    for (size_t i = 0; i < r->nmeta; i++)
        if (!r->meta[i].family)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ad_rw_request r;
    char *body = NULL;
    size_t len;
    int rc;

    if (size < 1)
        return 0;
    if (data[0] & 1) {
        len = snappy_max_compressed_length(size - 1);
        body = malloc(len ? len : 1);
        if (!body || snappy_compress((const char *)data + 1, size - 1, body, &len) != SNAPPY_OK)
            abort();
        rc = ad_rw_decode(body, len, MAX_DECODED, &r);
    } else {
        rc = ad_rw_decode(data + 1, size - 1, MAX_DECODED, &r);
    }
    if (rc == 0)
        check(&r);
    else if (rc > 0 || rc < -AD_RW_ENOMEM || r.priv || r.nseries)
        abort();
    ad_rw_request_free(&r);
    free(body);
    return 0;
}
