/*
 * ctl_gradflow.c - `anomalyctl gradflow` (ctl_gradflow.h): options, the measurement per
 * kind (models/gradflow.h, models/longdep.h), the tables, and the SVG of the curves.
 *
 * SVG layout (pixels): W x HT; panels side by side, each PW wide, plotting area from
 * PLEFT to PW - PRIGHT inside its panel and from TOP to BOTTOM; the legend under the
 * panels. The y axis is log10 of the ratio over whole decades, shared by the panels so
 * their curves compare at a glance.
 */
#include "ctl/ctl_gradflow.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradflow.h"
#include "longdep.h"
#include "err.h"

/* ---- the SVG ---- */

#define W 1000
#define HT 520
#define PW 500.0
#define PLEFT 70.0
#define PRIGHT 20.0
#define TOP 60.0
#define BOTTOM 400.0
#define MAX_CURVES 8
#define LOWEST_DECADE -46 /* below the smallest float: a ratio can be no smaller */

static const char *const colours[MAX_CURVES] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd",
                                                "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const char *fmt, ...)
{
    va_list ap;

    while (!b->oom) {
        va_start(ap, fmt);
        int n = b->p ? vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap) : -2;
        va_end(ap);
        if (n == -1) {
            b->oom = 1;
            return;
        }
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + 4096;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* The y axis's decades [*lo, *hi] covering every positive ratio (at least [-1, 0]). */
static void decades(const ad_gradflow_plot *p, int *lo, int *hi)
{
    double mn = 1.0, mx = 1.0;

    for (int q = 0; q < p->npanels; q++)
        for (int c = 0; c < p->ncurves; c++)
            for (int k = 0; k < p->n; k++) {
                double v = p->curves[q][c].ratio[k];
                if (v > 0.0 && isfinite(v)) {
                    mn = v < mn ? v : mn;
                    mx = v > mx ? v : mx;
                }
            }
    *lo = (int)floor(log10(mn));
    *hi = (int)ceil(log10(mx));
    if (*lo < LOWEST_DECADE)
        *lo = LOWEST_DECADE;
    if (*lo > -1)
        *lo = -1;
    if (*hi > 40)
        *hi = 40;
}

static double px(const ad_gradflow_plot *p, int q, int k)
{
    return q * PW + PLEFT + (PW - PLEFT - PRIGHT) * k / (p->n - 1);
}

static double py(double v, int lo, int hi)
{
    double d = log10(v);
    d = d < lo ? lo : d > hi ? hi : d;
    return BOTTOM - (BOTTOM - TOP) * (d - lo) / (hi - lo);
}

/* One panel's frame, ticks and labels. */
static void axes(buf *b, const ad_gradflow_plot *p, int q, int lo, int hi)
{
    const double x0 = px(p, q, 0), x1 = px(p, q, p->n - 1);
    const int ystep = (hi - lo + 9) / 10 > 0 ? (hi - lo + 9) / 10 : 1; /* <= 10 y ticks */
    const int xstep = (p->n - 1) / 4 > 0 ? (p->n - 1) / 4 : 1;

    put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n",
        (x0 + x1) / 2, TOP - 10, p->panel[q]);
    put(b, "<rect class=\"frame\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
           "fill=\"none\" stroke=\"#444\"/>\n", x0, TOP, x1 - x0, BOTTOM - TOP);
    for (int d = hi; d >= lo; d -= ystep) { /* from 1e0 (or above) down: 1e0 is labelled */
        double y = py(pow(10.0, d), lo, hi);
        put(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, y,
            x1, y);
        put(b, "<text class=\"ytick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" "
               "font-size=\"11\">1e%d</text>\n", x0 - 5, y + 4, d);
    }
    for (int k = 0; k < p->n; k += xstep)
        put(b, "<text class=\"xtick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" "
               "font-size=\"11\">%d</text>\n", px(p, q, k), BOTTOM + 16, k);
    put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">k, steps back "
           "from the loss</text>\n", (x0 + x1) / 2, BOTTOM + 36);
    put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" "
           "transform=\"rotate(-90 %.1f %.1f)\">||dL/dh(T-k)|| / ||dL/dh(T)||</text>\n",
        q * PW + 16, (TOP + BOTTOM) / 2, q * PW + 16, (TOP + BOTTOM) / 2);
}

/* One curve: a polyline per unbroken run of positive, finite ratios. */
static void curve(buf *b, const ad_gradflow_plot *p, int q, int c, int lo, int hi)
{
    const double *r = p->curves[q][c].ratio;
    int open = 0;

    for (int k = 0; k <= p->n; k++) {
        int ok = k < p->n && r[k] > 0.0 && isfinite(r[k]);
        if (ok && !open)
            put(b, "<polyline class=\"curve\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                   "points=\"", colours[c]);
        if (ok)
            put(b, "%.1f,%.1f ", px(p, q, k), py(r[k], lo, hi));
        if (!ok && open)
            put(b, "\"/>\n");
        open = ok;
    }
}

int ad_gradflow_svg(const ad_gradflow_plot *p, char **out, size_t *len)
{
    buf b = {0};
    int lo, hi;

    *out = NULL;
    *len = 0;
    if (p->npanels < 1 || p->npanels > 2 || p->n < 2 || p->ncurves < 1 ||
        p->ncurves > MAX_CURVES)
        return -AD_EINVAL;
    decades(p, &lo, &hi);
    put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n", W, HT, W, HT);
    put(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    put(&b, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">%s</text>\n", W / 2,
        p->title);
    for (int q = 0; q < p->npanels; q++) {
        axes(&b, p, q, lo, hi);
        for (int c = 0; c < p->ncurves; c++)
            curve(&b, p, q, c, lo, hi);
    }
    for (int c = 0; c < p->ncurves; c++) {
        double x = PLEFT + c * 120.0, y = BOTTOM + 70;
        put(&b, "<g class=\"legend\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"%s\" stroke-width=\"3\"/><text x=\"%.1f\" y=\"%.1f\" "
                "font-size=\"12\">%s</text></g>\n", x, y, x + 24, y, colours[c], x + 30, y + 4,
            p->curves[0][c].name);
    }
    put(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\">A line ends where the "
            "gradient underflows float (below about 1e-45).</text>\n", PLEFT, BOTTOM + 100.0);
    put(&b, "</svg>\n");
    if (b.oom) {
        free(b.p);
        return -AD_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- the command ---- */

typedef struct gf_args {
    int kinds[AD_CELL_NKINDS], nkinds;
    int hidden, layers, steps, seqs, lag, train_steps;
    float forget_bias;
    unsigned long long seed;
    const char *svg;
} gf_args;

/* One kind's measurements. */
typedef struct gf_kind {
    double *init, *trained;  /* (steps + 1) ratios */
    ad_longdep_result res;   /* training on the recall task */
} gf_kind;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalyctl gradflow [--kind K|all] [--hidden H] [--layers N] [--steps T]\n"
            "                           [--seed N] [--sequences B] [--forget-bias X] [--lag L]\n"
            "                           [--train-steps N] [--svg FILE]\n"
            "\n"
            "How far back each cell kind's gradient reaches: ||dL/dh_{T-k}|| / ||dL/dh_T|| of\n"
            "the top layer for k = 0..T, L the output at step T, averaged over random input\n"
            "sequences (the recall task's), at initialisation and after training on the\n"
            "recall task (recall the value marked L steps ago; docs/MODELS.md).\n"
            "\n"
            "  --kind K            elman lstm peephole cifg gru gru_torch, or all (all)\n"
            "  --hidden H          hidden size (32)      --layers N   stacked layers (1)\n"
            "  --steps T           steps back measured (200)\n"
            "  --seed N            initialisation and data seed (1)\n"
            "  --sequences B       sequences averaged (32)\n"
            "  --forget-bias X     the LSTM kinds' initial forget-gate bias (1)\n"
            "  --lag L             the recall task's lag for training (20)\n"
            "  --train-steps N     Adam steps of 32 sequences, 0 = no training (1000)\n"
            "  --svg FILE          also draw the curves (log scale) as an SVG\n");
}

static int number(const char *opt, const char *s, double lo, double hi, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(*v) || *v < lo || *v > hi) {
        fprintf(stderr, "anomalyctl gradflow: --%s takes a number in %g..%g, got '%s'\n", opt,
                lo, hi, s);
        return -1;
    }
    return 0;
}

static int parse_kind(const char *s, gf_args *a)
{
    a->nkinds = 0;
    if (!strcmp(s, "all")) {
        for (int k = 0; k < AD_CELL_NKINDS; k++)
            a->kinds[a->nkinds++] = k;
        return 0;
    }
    int k = ad_cell_from_name(s);
    if (k < 0) {
        fprintf(stderr, "anomalyctl gradflow: unknown cell kind '%s'\n", s);
        return -1;
    }
    a->kinds[a->nkinds++] = k;
    return 0;
}

/* 0 to run, 1 after --help, 2 on a usage error (message printed). */
static int parse_args(int argc, char **argv, gf_args *a)
{
    static const struct option opts[] = {
        {"kind", 1, NULL, 'k'},        {"hidden", 1, NULL, 'H'},   {"layers", 1, NULL, 'l'},
        {"steps", 1, NULL, 'T'},       {"seed", 1, NULL, 's'},     {"sequences", 1, NULL, 'B'},
        {"forget-bias", 1, NULL, 'f'}, {"lag", 1, NULL, 'L'},      {"train-steps", 1, NULL, 'n'},
        {"svg", 1, NULL, 'o'},         {"help", 0, NULL, 'h'},     {NULL, 0, NULL, 0},
    };
    double v;
    int o;

    memset(a, 0, sizeof(*a));
    parse_kind("all", a);
    a->hidden = 32, a->layers = 1, a->steps = 200, a->seqs = 32, a->lag = 20;
    a->train_steps = 1000, a->forget_bias = 1.0f, a->seed = 1;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (o) {
        case 'k': bad = parse_kind(optarg, a); break;
        case 'H': bad = number("hidden", optarg, 1, AD_MAX_HIDDEN, &v); a->hidden = (int)v; break;
        case 'l': bad = number("layers", optarg, 1, AD_MAX_LAYERS, &v); a->layers = (int)v; break;
        case 'T': bad = number("steps", optarg, 1, 100000, &v); a->steps = (int)v; break;
        case 's': bad = number("seed", optarg, 0, 1e15, &v); a->seed = (unsigned long long)v; break;
        case 'B': bad = number("sequences", optarg, 1, 4096, &v); a->seqs = (int)v; break;
        case 'f': bad = number("forget-bias", optarg, -50, 50, &v); a->forget_bias = (float)v;
                  break;
        case 'L': bad = number("lag", optarg, 1, 100000, &v); a->lag = (int)v; break;
        case 'n': bad = number("train-steps", optarg, 0, 1e7, &v); a->train_steps = (int)v; break;
        case 'o': a->svg = optarg; break;
        case 'h': usage(stdout); return 1;
        default: usage(stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind != argc) {
        fprintf(stderr, "anomalyctl gradflow: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* One kind: a fresh network measured, trained, measured again. */
static int measure_kind(const gf_args *a, int kind, const float *x, gf_kind *out)
{
    ad_net_config cfg = {(ad_cell_kind)kind, a->layers, AD_LONGDEP_INPUT, a->hidden, 1};
    ad_net_init_opts io = {.scale = 1.0f, .forget_bias = a->forget_bias};
    ad_longdep_opts o;
    char err[256];
    ad_net *net;
    int rc;

    rc = ad_net_create(&cfg, a->seed, &net, err, sizeof(err));
    if (rc)
        goto out_err;
    ad_net_init_with(net, a->seed, &io);
    rc = ad_gradflow_ratio(net, x, a->steps + 1, a->seqs, out->init, err, sizeof(err));
    if (!rc && a->train_steps > 0) {
        ad_longdep_defaults(&o);
        o.lag = a->lag;
        o.steps = a->train_steps;
        o.seed = a->seed;
        rc = ad_longdep_train(net, &o, &out->res, err, sizeof(err));
        if (!rc)
            rc = ad_gradflow_ratio(net, x, a->steps + 1, a->seqs, out->trained, err, sizeof(err));
    }
    ad_net_free(net);
    if (!rc)
        return 0;
out_err:
    fprintf(stderr, "anomalyctl gradflow: %s: %s\n", ad_cell_name((ad_cell_kind)kind), err);
    return rc;
}

static void print_table(const gf_args *a, const gf_kind *m, int trained)
{
    printf("%5s", "k");
    for (int i = 0; i < a->nkinds; i++)
        printf(" %10s", ad_cell_name((ad_cell_kind)a->kinds[i]));
    printf("\n");
    for (int k = 0; k <= a->steps; k += 10) {
        printf("%5d", k);
        for (int i = 0; i < a->nkinds; i++) {
            double v = trained ? m[i].trained[k] : m[i].init[k];
            printf(v == 0.0 ? " %10.0f" : " %10.2e", v);
        }
        printf("\n");
    }
}

static int write_svg(const gf_args *a, const gf_kind *m)
{
    ad_gradflow_curve c[2][AD_CELL_NKINDS];
    char title[200], trained[160];
    ad_gradflow_plot p = {0};
    char *svg;
    size_t len;

    for (int i = 0; i < a->nkinds; i++) {
        c[0][i].name = c[1][i].name = ad_cell_name((ad_cell_kind)a->kinds[i]);
        c[0][i].ratio = m[i].init;
        c[1][i].ratio = m[i].trained;
    }
    snprintf(title, sizeof(title), "Gradient flow: H=%d, %d layer%s, forget bias %g, seed %llu, "
             "mean of %d sequences", a->hidden, a->layers, a->layers > 1 ? "s" : "",
             (double)a->forget_bias, a->seed, a->seqs);
    snprintf(trained, sizeof(trained), "after training (recall at lag %d, %d steps)", a->lag,
             a->train_steps);
    p.title = title;
    p.panel[0] = "at initialisation";
    p.panel[1] = trained;
    p.npanels = a->train_steps > 0 ? 2 : 1;
    p.n = a->steps + 1;
    p.ncurves = a->nkinds;
    p.curves[0] = c[0];
    p.curves[1] = c[1];
    if (ad_gradflow_svg(&p, &svg, &len) != 0) {
        fprintf(stderr, "anomalyctl gradflow: out of memory for the SVG\n");
        return 1;
    }
    FILE *f = fopen(a->svg, "w");
    int bad = !f || fwrite(svg, 1, len, f) != len;
    if (f && fclose(f) != 0)
        bad = 1;
    free(svg);
    if (bad) {
        fprintf(stderr, "anomalyctl gradflow: cannot write %s: %s\n", a->svg, strerror(errno));
        return 1;
    }
    fprintf(stderr, "anomalyctl gradflow: wrote %s\n", a->svg);
    return 0;
}

int ad_ctl_gradflow(int argc, char **argv)
{
    gf_kind m[AD_CELL_NKINDS] = {0};
    float *x = NULL, *tgt = NULL;
    gf_args a;
    ad_rng r;
    int rc = parse_args(argc, argv, &a);

    if (rc)
        return rc == 1 ? 0 : 2;
    const int n = a.steps + 1;
    x = malloc((size_t)AD_LONGDEP_INPUT * a.seqs * n * sizeof(*x));
    tgt = malloc((size_t)a.seqs * sizeof(*tgt));
    rc = !x || !tgt;
    for (int i = 0; i < a.nkinds && !rc; i++) {
        m[i].init = calloc((size_t)n, sizeof(double));
        m[i].trained = calloc((size_t)n, sizeof(double));
        rc = !m[i].init || !m[i].trained;
    }
    if (rc) {
        fprintf(stderr, "anomalyctl gradflow: out of memory\n");
        goto out_free;
    }
    ad_rng_seed(&r, a.seed + 100);
    ad_longdep_batch(&r, a.steps, a.seqs, x, tgt);
    for (int i = 0; i < a.nkinds && !rc; i++)
        rc = measure_kind(&a, a.kinds[i], x, &m[i]) ? 1 : 0;
    if (rc)
        goto out_free;

    printf("# ||dL/dh_{T-k}|| / ||dL/dh_T|| of the top layer, L = the output at step T = %d,\n"
           "# mean over %d sequences of the recall task's inputs; H=%d, %d layer(s), seed %llu,\n"
           "# forget bias %g (0: below float's range)\n", a.steps, a.seqs, a.hidden, a.layers,
           a.seed, (double)a.forget_bias);
    printf("# at initialisation\n");
    print_table(&a, m, 0);
    if (a.train_steps > 0) {
        printf("# after training on the recall task, lag %d, %d Adam steps of 32 sequences; "
               "held-out MSE / trivial MSE:\n#", a.lag, a.train_steps);
        for (int i = 0; i < a.nkinds; i++)
            printf(" %s %.3g", ad_cell_name((ad_cell_kind)a.kinds[i]),
                   m[i].res.mse / m[i].res.trivial);
        printf("\n");
        print_table(&a, m, 1);
    }
    if (a.svg)
        rc = write_svg(&a, m);

out_free:
    for (int i = 0; i < a.nkinds; i++) {
        free(m[i].init);
        free(m[i].trained);
    }
    free(x);
    free(tgt);
    return rc;
}
