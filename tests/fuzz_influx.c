/*
 * fuzz_influx.c - libFuzzer target: the line framer (fuzz_frame.h) and the Influx parser
 * on each line it gives, in a precision the input chooses. Aborts when a return code is
 * out of range, fn is called on a refused line or not once per sample counted, a key is
 * not NUL-terminated inside its buffer, or a value or timestamp is not finite (or NAN
 * for the timestamp).
 */
#include <math.h>

#include "fuzz_frame.h"
#include "ingest/proto_influx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct calls {
    int n;
    size_t keycap;
    int stop_after; /* 0: never */
} calls;

static int on_sample(void *ctx, const ad_sample *s)
{
    calls *c = ctx;
    fz_key_check(s->key, s->key_len, c->keycap);
    if (!isfinite(s->value) || !(isnan(s->ts) || isfinite(s->ts)))
        abort();
    /* the key ends with a space and a non-empty field key */
    if (s->key_len < 3 || !memchr(s->key, ' ', s->key_len))
        abort();
    c->n++;
    return c->n == c->stop_after;
}

static void check_line(const char *line, size_t len, const fz_params *pa)
{
    calls c = {0, pa->keycap, (int)(pa->cut % 4)};
    fz_key_arm(pa->keycap);
    int rc = ad_influx_parse(line, len, (ad_influx_precision)(pa->keycap % 4), fz_keybuf,
                             pa->keycap, on_sample, &c);
    fz_guard_check(pa->keycap);
    if (rc < 0) {
        if (rc <= -AD_PE_NREASONS || c.n != 0)
            abort();
    } else if (rc != c.n || rc > 256) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run(data, size, check_line);
    return 0;
}
