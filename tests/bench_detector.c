/*
 * bench_detector.c - the detector benchmark: a program that prints figures (not a test).
 *
 * What one score thread of the daemon does per sample, without the daemon: N detectors
 * with their own trained networks (copies of one, loaded from its blob) observe one
 * value each per round, round after round, in an order shuffled once (the daemon's
 * buckets visit series in hash order, not in the order of their memory, so no hardware
 * prefetcher streams from one detector into the next), through the pipeline its pass 2
 * runs (daemon_batch.c: the detector's struct prefetched PIPE_D samples before what it points
 * to, which is prefetched PIPE_D samples before its observe). No training runs while it
 * is measured. The detector configuration is the daemon's default one (daemon/config.c's
 * daemon_detector_defaults: the likelihood scorer with error_bound 3, long_window 30,
 * the seasonal signal, range_window 8000, cooldown, alert penalty, time features) with
 * scripts/bench_ingest's LSTM H=32 and history 256 (--history: another). One line:
 *
 *   ad detector series=N weights=W observe_ns=.. sps=.. bytes=..
 *
 *  - observe_ns: thread CPU ns per sample (CLOCK_THREAD_CPUTIME_ID, so being descheduled
 *    on a shared machine does not count; cache and memory contention do);
 *  - bytes: one detector's (ad_detector_bytes).
 *
 * Usage: bench_detector [--series N (10000)] [--weights float32|float16|int8 (int8)]
 *                       [--seconds S (3)] [--history N (256)] [--bucket K] [--no-prefetch]
 *                       [--no-long] [--no-seasonal] [--no-range] [--in-order]
 * --in-order: the detectors in the order they were allocated (faster than the daemon
 * sees them: 735 against 1250 ns per sample at 10k int8 when it came in). --bucket K:
 * the pipeline restarts every K detectors (the daemon's runs one per bucket of a batch:
 * 128 samples over 16 buckets). The --no-* options turn a part off (its cost is the
 * difference).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "detector.h"
#include "kern.h"
#include "net.h"
#include "rng.h"

#define PIPE_D 2 /* as daemon_batch.c's */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Series i's value at round t: a sine with noise, of a phase and period of its own (the
 * level and amplitude of the series the detectors were trained on). */
static double value(int i, long t, ad_rng *r)
{
    const double period = 48.0 + (double)(i % 5);
    return 100.0 + 10.0 * sin(2.0 * M_PI * (double)t / period + i) + 0.2 * ad_rng_normal(r);
}

int main(int argc, char **argv)
{
    int n = 10000, wt = AD_W_I8, pf = 1, bucket = 0, shuffle = 1, no_long = 0, no_seas = 0,
        no_range = 0, history = 256;
    double seconds = 3.0;
    char err[256];

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--series") && i + 1 < argc) {
            n = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--weights") && i + 1 < argc) {
            if ((wt = ad_wtype_from_name(argv[++i])) < 0)
                break;
        } else if (!strcmp(argv[i], "--history") && i + 1 < argc) {
            history = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--bucket") && i + 1 < argc) {
            bucket = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--in-order")) {
            shuffle = 0;
        } else if (!strcmp(argv[i], "--no-prefetch")) {
            pf = 0;
        } else if (!strcmp(argv[i], "--no-long")) {
            no_long = 1;
        } else if (!strcmp(argv[i], "--no-seasonal")) {
            no_seas = 1;
        } else if (!strcmp(argv[i], "--no-range")) {
            no_range = 1;
        } else {
            wt = -1;
            break;
        }
    }
    if (n < 1 || wt < 0 || !(seconds > 0.0) || history < 256) {
        fprintf(stderr, "usage: bench_detector [--series N] [--weights float32|float16|int8] "
                        "[--seconds S] [--history N (>= 256)] [--bucket K] [--no-prefetch] "
                        "[--no-long] [--no-seasonal] [--no-range] [--in-order]\n");
        return 2;
    }

    ad_detector_config c;
    ad_detector_defaults(&c);
    c.kind = AD_CELL_LSTM;
    c.hidden = 32;
    c.history = history;
    c.train_after = 128;
    c.train_every = 2000;
    c.cooldown = 30;
    c.features = AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK;
    c.range_tolerance = 0.02f;
    c.range_window = no_range ? 0 : 8000;
    c.scorer.error_bound = 3.0f;
    c.scorer.min_sd = 0.0173f;
    c.seasonal_period = no_seas ? 0 : 86400;
    c.seasonal_periods = 3;
    c.seasonal_weight = 0.8f;
    c.warmup_naive = 1;
    c.alert_penalty = 0.2f;
    c.long_window = no_long ? 0 : 30;

    /* one detector trained on series 0, then n copies of its blob */
    ad_detector *proto;
    ad_rng r;
    ad_rng_seed(&r, 1);
    if (ad_detector_create(&c, &proto, err, sizeof(err))) {
        fprintf(stderr, "bench_detector: %s\n", err);
        return 1;
    }
    const double t0 = 1.7e9;
    long t = 0;
    for (; t < c.train_after + 16; t++) {
        ad_result res;
        ad_detector_observe(proto, t0 + (double)t, value(0, t, &r), &res);
        if (res.train_due && ad_detector_train(proto, err, sizeof(err))) {
            fprintf(stderr, "bench_detector: training: %s\n", err);
            return 1;
        }
    }
    size_t cap = ad_detector_blob_size(proto), len;
    void *blob = malloc(cap);
    ad_detector **ds = calloc((size_t)n, sizeof(*ds));
    if (!blob || !ds || ad_detector_save(proto, blob, cap, &len, err, sizeof(err))) {
        fprintf(stderr, "bench_detector: save: %s\n", blob && ds ? err : "out of memory");
        return 1;
    }
    for (int i = 0; i < n; i++)
        if (ad_detector_load(blob, len, &ds[i], err, sizeof(err)) ||
            ad_detector_set_weights(ds[i], wt)) {
            fprintf(stderr, "bench_detector: load %d: %s\n", i, err);
            return 1;
        }

    if (shuffle) /* Fisher-Yates */
        for (int i = n - 1; i > 0; i--) {
            int k = (int)(ad_rng_uniform(&r) * (double)(i + 1));
            ad_detector *x = ds[i];
            k = k > i ? i : k;
            ds[i] = ds[k];
            ds[k] = x;
        }

    /* rounds: the values of a round made beforehand, then the pipeline over them */
    double *v = malloc((size_t)n * sizeof(*v));
    long samples = 0, flagged = 0;
    double el = 0.0;
    if (!v)
        return 1;
    while (el < seconds) {
        for (int i = 0; i < n; i++)
            v[i] = value(i, t, &r);
        const double ts = t0 + (double)t++, s0 = now();
        const int m = bucket > 0 ? bucket : n;
        for (int b = 0; b < n; b += m) {
            const int e = b + m < n ? b + m : n;
            for (int i = b; i < e + 2 * PIPE_D; i++) {
                int j;
                if (pf && i < e)
                    ad_detector_prefetch_struct(ds[i]);
                if (pf && (j = i - PIPE_D) >= b && j < e)
                    ad_detector_prefetch(ds[j]);
                if ((j = i - 2 * PIPE_D) >= b && j < e) {
                    ad_result res;
                    ad_detector_observe(ds[j], ts, v[j], &res);
                    flagged += res.flagged;
                }
            }
        }
        el += now() - s0;
        samples += n;
    }
    printf("ad detector series=%d weights=%s observe_ns=%.0f sps=%.0f bytes=%zu flagged=%ld\n", n,
           ad_wtype_name(wt), 1e9 * el / (double)samples, (double)samples / el,
           ad_detector_bytes(ds[0]), flagged);
    for (int i = 0; i < n; i++)
        ad_detector_free(ds[i]);
    ad_detector_free(proto);
    free(ds);
    free(v);
    free(blob);
    return 0;
}
