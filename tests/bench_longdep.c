/*
 * bench_longdep.c - the long-dependency benchmark: a program that prints figures (not a
 * test).
 *
 * For each cell kind and lag L it trains a fresh network on the recall task of
 * models/longdep.h (recall the value marked L steps ago) with plain truncated BPTT
 * (windows of L+1 steps from a zero state), then prints one line:
 *   ad kind=K L=N H=N fb=X clip=X seed=N mse=.. trivial=.. ratio=.. clipped=..
 *      grad_max=.. seconds=..
 *  - mse: the held-out MSE of the last step's output; trivial: predicting 0 (about 1/3);
 *    ratio = mse / trivial (1: nothing learnt; 0.01: the value is recalled to within
 *    about 0.06);
 *  - clipped: the fraction of steps whose gradient norm exceeded clip; grad_max: the
 *    largest norm seen (before clipping): exploding gradients show here;
 *  - seconds: this thread's CPU time for the training.
 * scripts/longdep_torch.py prints the same lines for PyTorch; scripts/bench_longdep runs
 * both and prints the table (docs/MODELS.md "Vanishing gradients, measured").
 *
 * Usage: bench_longdep [--lags 5,10,20,50,100,200] [--kinds all|K,K..] [--hidden 32]
 *          [--steps 1000] [--batch 32] [--lr 0.005] [--clip 1] [--forget-bias 1]
 *          [--scale 1] [--eval 1024] [--seed 1] [--quick]
 * --quick: 100 steps (checks that it runs; the figures mean little).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "longdep.h"
#include "net.h"

#define MAX_LAGS 32

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bench_opts {
    int lags[MAX_LAGS], nlags;
    int kinds[AD_CELL_NKINDS], nkinds;
    int hidden;
    float scale, forget_bias;
    ad_longdep_opts task;
} bench_opts;

static void usage(void)
{
    fprintf(stderr, "usage: bench_longdep [--lags L,L..] [--kinds all|K,K..] [--hidden H] "
                    "[--steps N] [--batch B] [--lr X] [--clip X] [--forget-bias X] "
                    "[--scale X] [--eval N] [--seed N] [--quick]\n");
    exit(2);
}

static double number(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) {
        fprintf(stderr, "bench_longdep: %s needs a number, got '%s'\n", opt, s);
        exit(2);
    }
    return v;
}

static void parse_lags(bench_opts *b, const char *s)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    b->nlags = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        double v = number("--lags", tok);
        if (b->nlags == MAX_LAGS || v < 1 || v > 100000)
            usage();
        b->lags[b->nlags++] = (int)v;
    }
    if (!b->nlags)
        usage();
}

static void parse_kinds(bench_opts *b, const char *s)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    b->nkinds = 0;
    if (!strcmp(s, "all")) {
        for (int k = 0; k < AD_CELL_NKINDS; k++)
            b->kinds[b->nkinds++] = k;
        return;
    }
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int k = ad_cell_from_name(tok);
        if (k < 0 || b->nkinds == AD_CELL_NKINDS) {
            fprintf(stderr, "bench_longdep: unknown cell kind '%s'\n", tok);
            exit(2);
        }
        b->kinds[b->nkinds++] = k;
    }
}

static void parse(int argc, char **argv, bench_opts *b)
{
    ad_longdep_defaults(&b->task);
    b->task.steps = 1000;
    parse_lags(b, "5,10,20,50,100,200");
    parse_kinds(b, "all");
    b->hidden = 32;
    b->scale = 1.0f;
    b->forget_bias = 1.0f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quick")) {
            b->task.steps = 100;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (!strcmp(a, "--lags"))
            parse_lags(b, v);
        else if (!strcmp(a, "--kinds"))
            parse_kinds(b, v);
        else if (!strcmp(a, "--hidden"))
            b->hidden = (int)number(a, v);
        else if (!strcmp(a, "--steps"))
            b->task.steps = (int)number(a, v);
        else if (!strcmp(a, "--batch"))
            b->task.batch = (int)number(a, v);
        else if (!strcmp(a, "--lr"))
            b->task.lr = (float)number(a, v);
        else if (!strcmp(a, "--clip"))
            b->task.clip = (float)number(a, v);
        else if (!strcmp(a, "--forget-bias"))
            b->forget_bias = (float)number(a, v);
        else if (!strcmp(a, "--scale"))
            b->scale = (float)number(a, v);
        else if (!strcmp(a, "--eval"))
            b->task.eval = (int)number(a, v);
        else if (!strcmp(a, "--seed"))
            b->task.seed = (uint64_t)number(a, v);
        else
            usage();
    }
}

/* One kind at one lag: a fresh network, trained, one line. */
static int run(const bench_opts *b, int kind, int lag)
{
    ad_net_config cfg = {(ad_cell_kind)kind, 1, AD_LONGDEP_INPUT, b->hidden, 1};
    ad_net_init_opts io = {.scale = b->scale, .forget_bias = b->forget_bias};
    ad_longdep_opts o = b->task;
    ad_longdep_result res;
    char err[256];
    ad_net *net;
    double t0;

    if (ad_net_create(&cfg, b->task.seed, &net, err, sizeof(err))) {
        fprintf(stderr, "bench_longdep: %s\n", err);
        return -1;
    }
    ad_net_init_with(net, b->task.seed, &io);
    o.lag = lag;
    t0 = now();
    if (ad_longdep_train(net, &o, &res, err, sizeof(err))) {
        fprintf(stderr, "bench_longdep: %s\n", err);
        ad_net_free(net);
        return -1;
    }
    printf("ad kind=%s L=%d H=%d fb=%g clip=%g seed=%llu mse=%.5f trivial=%.5f ratio=%.4f "
           "clipped=%.3f grad_max=%.3g seconds=%.1f\n",
           ad_cell_name((ad_cell_kind)kind), lag, b->hidden, (double)b->forget_bias,
           (double)o.clip, (unsigned long long)o.seed, res.mse, res.trivial,
           res.mse / res.trivial, res.clipped, res.grad_max, now() - t0);
    fflush(stdout);
    ad_net_free(net);
    return 0;
}

int main(int argc, char **argv)
{
    bench_opts b;

    parse(argc, argv, &b);
    for (int k = 0; k < b.nkinds; k++)
        for (int l = 0; l < b.nlags; l++)
            if (run(&b, b.kinds[k], b.lags[l]))
                return 1;
    return 0;
}
