/*
 * bench_models.c - the models benchmark: a program that prints figures (not a test).
 *
 * For each cell kind and hidden size (D = 1, O = 1, one layer) it prints one line:
 *   ad kind=K H=N step_ns=..  streams1000_sps=..  streams_fp16_sps=..  streams_int8_sps=..
 *      streams_k8_sps=..  streams_k8_fp16_sps=..  bptt_tps=..  bytes=..  bytes_fp16=..
 *      bytes_int8=..  state_bytes=..
 *  - step_ns: ns per ad_net_step for one stream (weights hot in cache);
 *  - streams1000_sps: samples/s stepping 1000 streams that each own their weights,
 *    visited round-robin one sample each (the daemon's pattern: weights come from memory);
 *  - streams_fp16_sps, streams_int8_sps: the same with each network holding only its fp16
 *    or int8 block (ad_net_set_storage, AD_NET_FP16_ONLY, AD_NET_INT8_ONLY: what a
 *    detector's own network holds with `weights: float16` or `int8`);
 *  - streams_k8_sps, streams_k8_fp16_sps: the same, 8 buffered samples stepped per
 *    stream visit (the weights are read from memory once per 8 samples);
 *  - bptt_tps: BPTT timesteps/s at T=64, B=32 (forward, MSE, backward, clipping, Adam),
 *    timesteps = T*B per iteration;
 *  - bytes: bytes of one network (struct + parameters); bytes_fp16, bytes_int8: the same
 *    holding only its fp16 or int8 block (no float masters); state_bytes: one stream's
 *    state.
 * Times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so a busy shared machine
 * that deschedules the benchmark does not count against it (cache and memory-bandwidth
 * contention still do). Run with OPENBLAS_NUM_THREADS=1 for one-thread figures.
 *
 * Usage: bench_models [--quick] [--kind NAME] [--hidden N] [--streams N] [--only WHAT]
 *   WHAT: step, streams, fp16, int8, k8 or bptt (the others print -1)
 *        bench_models --batch [--quick] [--kind NAME (lstm)] [--hidden N (32)] [--layers L]
 *   batched family steps (net.h's ad_net_step_batch): for n = 1..256 streams sharing one
 *   network, ns per stream step stepped one by one, as one batch with the products
 *   forced, and as one batch with the default choice; float and fp16 weights.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "net.h"
#include "optim.h"
#include "rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double min_seconds = 0.5;
static int prefetch = 1; /* prefetch the next stream's weights, as the daemon will */
static volatile float sink;

static double bench_step(const ad_net_config *cfg)
{
    ad_net *net;
    ad_state *st;
    float x = 0.1f, y = 0.0f;
    long iters = 0, chunk = 1000;
    double t0, el;

    if (ad_net_create(cfg, 1, &net, NULL, 0))
        return -1.0;
    st = ad_state_create(net);
    for (int i = 0; i < 1000; i++) /* warm up */
        ad_net_step(net, st, &x, &y);
    t0 = now();
    do {
        for (long i = 0; i < chunk; i++) {
            x = 0.5f * y + 0.1f;
            ad_net_step(net, st, &x, &y);
        }
        iters += chunk;
        el = now() - t0;
    } while (el < min_seconds);
    sink = y;
    ad_state_free(st);
    ad_net_free(net);
    return 1e9 * el / (double)iters;
}

/*
 * Samples/s over nstreams streams with their own weights (stored as storage mode, net.h),
 * visited round-robin, k samples per visit (k > 1: samples buffered per stream, stepped
 * in one visit while the weights are in cache).
 */
static double bench_streams(const ad_net_config *cfg, int nstreams, int mode, int k)
{
    ad_net **nets = calloc((size_t)nstreams, sizeof(*nets));
    ad_state **sts = calloc((size_t)nstreams, sizeof(*sts));
    float *xs = malloc((size_t)nstreams * sizeof(*xs));
    double t0, el, rate = -1.0;
    long samples = 0;
    float y = 0.0f;

    if (!nets || !sts || !xs)
        goto out;
    for (int i = 0; i < nstreams; i++) {
        if (ad_net_create(cfg, (uint64_t)i + 1, &nets[i], NULL, 0))
            goto out;
        if (ad_net_set_storage(nets[i], mode))
            goto out;
        sts[i] = ad_state_create(nets[i]);
        if (!sts[i])
            goto out;
        xs[i] = 0.01f * (float)(i % 100);
    }
    for (int i = 0; i < nstreams; i++) /* one warm-up round */
        ad_net_step(nets[i], sts[i], &xs[i], &y);
    t0 = now();
    do {
        for (int i = 0; i < nstreams; i++) {
            if (prefetch)
                ad_net_prefetch(nets[i + 1 < nstreams ? i + 1 : 0]);
            for (int j = 0; j < k; j++) {
                ad_net_step(nets[i], sts[i], &xs[i], &y);
                xs[i] = 0.9f * xs[i] + 0.1f * y;
            }
        }
        samples += (long)nstreams * k;
        el = now() - t0;
    } while (el < min_seconds);
    sink = y;
    rate = (double)samples / el;
out:
    for (int i = 0; nets && i < nstreams; i++) {
        ad_state_free(sts[i]);
        ad_net_free(nets[i]);
    }
    free(nets);
    free(sts);
    free(xs);
    return rate;
}

/*
 * ns per stream step for n streams sharing one network (a family), each with its own
 * state, one sample each per round: mode 0 steps them one by one (ad_net_step), mode 1
 * as one batch with the products forced (gemm_min 1), mode 2 as one batch with the
 * library's default choice (AD_NET_BATCH_GEMM_MIN).
 */
static double bench_batch(const ad_net_config *cfg, int n, int fp16, int mode)
{
    ad_net *net = NULL;
    ad_state **sts = calloc((size_t)n, sizeof(*sts));
    float *x = malloc((size_t)n * cfg->input * sizeof(*x));
    float *y = malloc((size_t)n * cfg->output * sizeof(*y));
    ad_net_batch ws = {0};
    double t0, el, ns = -1.0;
    long steps = 0;

    if (!sts || !x || !y || ad_net_create(cfg, 1, &net, NULL, 0) ||
        (fp16 && ad_net_set_storage(net, AD_NET_FP16)))
        goto out;
    for (int i = 0; i < n; i++)
        if (!(sts[i] = ad_state_create(net)))
            goto out;
    for (int i = 0; i < n * cfg->input; i++)
        x[i] = 0.01f * (float)(i % 100);
    ws.gemm_min = mode == 1 ? 1 : 0;
    t0 = now();
    do {
        for (int r = 0; r < 100; r++) {
            if (mode == 0)
                for (int i = 0; i < n; i++)
                    ad_net_step(net, sts[i], x + (size_t)i * cfg->input,
                                y + (size_t)i * cfg->output);
            else
                ad_net_step_batch(net, sts, x, y, n, &ws);
            x[r % (n * cfg->input)] = 0.9f * x[r % (n * cfg->input)] + 0.1f * y[0];
        }
        steps += 100L * n;
        el = now() - t0;
    } while (el < min_seconds);
    sink = y[0];
    ns = 1e9 * el / (double)steps;
out:
    for (int i = 0; sts && i < n; i++)
        ad_state_free(sts[i]);
    ad_net_batch_free(&ws);
    ad_net_free(net);
    free(sts);
    free(x);
    free(y);
    return ns;
}

/* --batch: one line per batch size n: ns per stream step one by one, batched (products
 * forced), batched (default choice), float and fp16 weights. */
static void run_batch(int kind, int hidden, int layers)
{
    static const int ns[] = {1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256};
    ad_net_config cfg = {(ad_cell_kind)kind, layers, 1, hidden, 1};

    printf("# batched family steps: kind=%s H=%d layers=%d D=1 O=1, ns per stream step; "
           "gemm_min default %d\n",
           ad_cell_name(cfg.kind), hidden, layers, AD_NET_BATCH_GEMM_MIN);
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        double a = bench_batch(&cfg, ns[i], 0, 0), b = bench_batch(&cfg, ns[i], 0, 1);
        double c = bench_batch(&cfg, ns[i], 0, 2), a16 = bench_batch(&cfg, ns[i], 1, 0);
        double b16 = bench_batch(&cfg, ns[i], 1, 1), c16 = bench_batch(&cfg, ns[i], 1, 2);
        printf("batch n=%d step_ns=%.1f gemm_ns=%.1f default_ns=%.1f step_fp16_ns=%.1f "
               "gemm_fp16_ns=%.1f default_fp16_ns=%.1f gemm_speedup=%.2fx\n",
               ns[i], a, b, c, a16, b16, c16, a / b);
        fflush(stdout);
    }
}

static double bench_bptt(const ad_net_config *cfg, int T, int B)
{
    ad_net *net = NULL;
    ad_seq *ws = NULL;
    ad_optim *opt = NULL;
    size_t n = (size_t)T * B;
    float *x = malloc(n * cfg->input * sizeof(*x)), *tg = malloc(n * sizeof(*tg));
    float *dy = malloc(n * sizeof(*dy));
    double t0, el, rate = -1.0;
    long iters = 0;
    ad_rng r;

    if (!x || !tg || !dy || ad_net_create(cfg, 1, &net, NULL, 0) ||
        ad_seq_create(net, T, B, &ws, NULL, 0))
        goto out;
    opt = ad_optim_create(AD_OPTIM_ADAM, net->nparams, 1e-3f);
    if (!opt)
        goto out;
    ad_rng_seed(&r, 3);
    for (size_t i = 0; i < n * cfg->input; i++)
        x[i] = ad_rng_normal(&r);
    for (size_t i = 0; i < n; i++)
        tg[i] = ad_rng_normal(&r);
    t0 = now();
    do {
        const float *y = ad_seq_forward(net, ws, x, T, B);
        ad_mse(y, tg, n, dy);
        ad_seq_zero_grad(ws);
        ad_seq_backward(net, ws, dy, NULL);
        ad_clip_grad_norm(ad_seq_grad(ws), net->nparams, 1.0f);
        ad_optim_step(opt, net->params, ad_seq_grad(ws));
        iters++;
        el = now() - t0;
    } while (el < min_seconds || iters < 3);
    rate = (double)iters * (double)n / el;
out:
    ad_optim_free(opt);
    ad_seq_free(ws);
    ad_net_free(net);
    free(x);
    free(tg);
    free(dy);
    return rate;
}

int main(int argc, char **argv)
{
    const int hs[] = {16, 32, 64};
    int only_kind = -1, only_h = 0, nstreams = 1000, batch = 0, layers = 1;
    const char *only = "";

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            min_seconds = 0.1;
        } else if (strcmp(argv[i], "--kind") == 0 && i + 1 < argc) {
            only_kind = ad_cell_from_name(argv[++i]);
            if (only_kind < 0) {
                fprintf(stderr, "bench_models: unknown kind %s\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--hidden") == 0 && i + 1 < argc) {
            only_h = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--no-prefetch") == 0) {
            prefetch = 0;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--streams") == 0 && i + 1 < argc) {
            nstreams = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--batch") == 0) {
            batch = 1;
        } else if (strcmp(argv[i], "--layers") == 0 && i + 1 < argc) {
            layers = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_models [--quick] [--kind NAME] [--hidden N] "
                            "[--streams N] [--only step|streams|fp16|int8|k8|bptt] "
                            "[--batch [--layers L]]\n");
            return 2;
        }
    }
    if (batch) {
        printf("# BLAS: %s; fused step kernels: %s\n", ad_blas_name(),
               ad_kern_isa_name(ad_kern_best_isa()));
        run_batch(only_kind >= 0 ? only_kind : AD_CELL_LSTM, only_h ? only_h : 32, layers);
        return 0;
    }
    printf("# anomalyd models benchmark: D=1 O=1 one layer; streams=%d; BPTT T=64 B=32 Adam; "
           "OPENBLAS_NUM_THREADS=%s\n",
           nstreams, getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "unset");
    printf("# BLAS: %s; fused step kernels: %s; next-stream prefetch %s\n", ad_blas_name(),
           ad_kern_isa_name(ad_kern_best_isa()), prefetch ? "on" : "off");
    for (int k = 0; k < AD_CELL_NKINDS; k++) {
        if (only_kind >= 0 && k != only_kind)
            continue;
        for (size_t j = 0; j < sizeof(hs) / sizeof(hs[0]); j++) {
            if (only_h && hs[j] != only_h)
                continue;
            ad_net_config cfg = {(ad_cell_kind)k, 1, 1, hs[j], 1};
            ad_net *net;
            ad_state *st;
            if (ad_net_create(&cfg, 1, &net, NULL, 0))
                return 1;
            st = ad_state_create(net);
            size_t bytes = ad_net_bytes(net), sbytes = ad_state_bytes(st), bytes16 = 0, bytes8 = 0;
            if (ad_net_set_storage(net, AD_NET_FP16_ONLY) == 0)
                bytes16 = ad_net_bytes(net);
            if (ad_net_set_storage(net, AD_NET_INT8_ONLY) == 0)
                bytes8 = ad_net_bytes(net);
            ad_state_free(st);
            ad_net_free(net);
            double step = !*only || !strcmp(only, "step") ? bench_step(&cfg) : -1.0;
            double sps = !*only || !strcmp(only, "streams") ? bench_streams(&cfg, nstreams, 0, 1) : -1.0;
            double sps16 = !*only || !strcmp(only, "fp16")
                               ? bench_streams(&cfg, nstreams, AD_NET_FP16_ONLY, 1)
                               : -1.0;
            double sps8 = !*only || !strcmp(only, "int8")
                              ? bench_streams(&cfg, nstreams, AD_NET_INT8_ONLY, 1)
                              : -1.0;
            double spsk = !*only || !strcmp(only, "k8") ? bench_streams(&cfg, nstreams, 0, 8) : -1.0;
            double spsk16 = !*only || !strcmp(only, "k8")
                                ? bench_streams(&cfg, nstreams, AD_NET_FP16_ONLY, 8)
                                : -1.0;
            double tps = !*only || !strcmp(only, "bptt") ? bench_bptt(&cfg, 64, 32) : -1.0;
            printf("ad kind=%s H=%d step_ns=%.1f streams%d_sps=%.0f streams_fp16_sps=%.0f "
                   "streams_int8_sps=%.0f streams_k8_sps=%.0f streams_k8_fp16_sps=%.0f "
                   "bptt_tps=%.0f bytes=%zu bytes_fp16=%zu bytes_int8=%zu state_bytes=%zu\n",
                   ad_cell_name(cfg.kind), cfg.hidden, step, nstreams, sps, sps16, sps8, spsk,
                   spsk16, tps, bytes, bytes16, bytes8, sbytes);
            fflush(stdout);
        }
    }
    return 0;
}
