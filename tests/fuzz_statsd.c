/*
 * fuzz_statsd.c - libFuzzer target: the line framer (fuzz_frame.h), the StatsD parser on
 * each line it gives, and the aggregation table fed with what parses. Aborts when a
 * return code is out of range, a key is not NUL-terminated inside its buffer, a metric
 * is out of its ranges, a refused line touched the metric, or a flushed sample is not
 * finite.
 */
#include <math.h>

#include "fuzz_frame.h"
#include "net.h" /* ad_err */
#include "ingest/proto_statsd.h"
#include "ingest/statsd_agg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ad_statsd_agg *agg;

static void check_line(const char *line, size_t len, const fz_params *pa)
{
    ad_statsd_metric m = {.key = "sentinel", .value = 3, .rate = 0.5, .type = 9};
    fz_key_arm(pa->keycap);
    int rc = ad_statsd_parse(line, len, fz_keybuf, pa->keycap, &m);
    fz_guard_check(pa->keycap);
    if (rc == 0) {
        fz_key_check(m.key, m.key_len, pa->keycap);
        if (!isfinite(m.value) || !(m.rate > 0 && m.rate <= 1) || m.type < 0 || m.type > 2 ||
            (m.delta && m.type != AD_STATSD_GAUGE))
            abort();
        rc = ad_statsd_agg_add(agg, &m);
        if (rc != 0 && rc != -AD_EINVAL && rc != -AD_EFULL)
            abort();
    } else if (fz_refusal(rc)) {
        if (strcmp(m.key, "sentinel") != 0 || m.value != 3 || m.type != 9)
            abort();
    } else {
        abort();
    }
}

static int check_sample(void *ctx, const ad_sample *s)
{
    if (!isfinite(s->value) || s->ts != *(const double *)ctx || strlen(s->key) != s->key_len)
        abort();
    return 0;
}

/* Flushes what the lines left in the table, twice: each sample sane, then all gone. */
static void check_flushes(void)
{
    size_t held = ad_statsd_agg_size(agg);
    double ts = 7;
    if (held > 8 || ad_statsd_agg_flush(agg, ts, check_sample, &ts) > held)
        abort();
    ts = 8; /* quiet: counters give 0 and go (idle_flushes 1) */
    ad_statsd_agg_flush(agg, ts, check_sample, &ts);
    if (ad_statsd_agg_size(agg) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ad_statsd_agg_create(8, 1, &agg) != 0)
        abort();
    if (fz_run(data, size, check_line))
        check_flushes();
    ad_statsd_agg_free(agg);
    agg = NULL;
    return 0;
}
