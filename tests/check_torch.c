/*
 * check_torch.c - the whole network against PyTorch: nn.LSTM and nn.GRU (1 and 2 layers)
 * with a Linear head (O = 1, and O = 3 once), from the reference fixtures scripts/gen_fixtures.py
 * writes, and the fixture reader itself (fixture.h).
 *
 * For each fixture it builds an ad_net of the same shape, copies PyTorch's weights into
 * our layout, and compares outputs, loss, every parameter gradient and dLoss/dx after
 * ad_seq_forward/ad_mse/ad_seq_backward, and the outputs of the streaming step, once
 * with OpenBLAS and once with the reference product kernel.
 *
 * Layout mapping (net.h, cell.h): PyTorch's weight_ih_l{k} is (G*H, Din) row-major with
 * gates i,f,g,o (LSTM) or r,z,n (GRU), ours Wx is (G*H, Din) column-major with the same
 * gate order, so Wx[r + c*G*H] = weight_ih[r*Din + c] (likewise Wh, and the head).
 * LSTM: b = bias_ih + bias_hh, so both bias gradients equal our db. GRU_TORCH: for the r
 * and z rows b = bias_ih + bias_hh (both gradients equal db); for the n rows b_n =
 * bias_ih's n part (its gradient is db's n part) and the extra vector b_hn = bias_hh's n
 * part (its gradient is the extra vector's gradient).
 *
 * Tolerance: |ours - torch| <= RTOL * max(|torch|, FLOOR_FRAC * max|torch over the array|)
 * with RTOL = 1e-5 and FLOOR_FRAC = 0.5.
 *  - RTOL 1e-5 (about 100 float ulps) leaves room for act.h's activations (relative
 *    error below 1e-6, where PyTorch uses libm) and for adding in another order than
 *    PyTorch's kernels or another OpenBLAS kernel on another CPU.
 *  - The floor: an element of a gradient is a sum over T*B (and H) terms of both signs,
 *    and its rounding error is of the order of the error of the upstream signals times
 *    the terms' size, which is set by the array's large elements, not by the element
 *    itself. An element that nearly cancels can therefore not be held to 1e-5 of its own
 *    value. Measured on these fixtures (AD_VERBOSE=1 prints it per array): errors reach
 *    7.1e-7 of the array's max magnitude, and the worst small element (head.weight's
 *    gradient in torch_lstm.bin, 1/20 of its array's max) needs a floor of 0.049*max.
 *    FLOOR_FRAC = 0.5 gives that a 10x margin while elements from half the max up are
 *    still checked to 1e-5 of their own value.
 *  - The tolerance still catches real faults: test_sensitivity shows that adding NUDGE
 *    = 1e-3 to any one parameter block is detected (1e-4 is too; tried by hand).
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "blob.h"
#include "fixture.h"
#include "net.h"

#define RTOL       1e-5
#define FLOOR_FRAC 0.5
#define NUDGE      1e-3f /* sensitivity test: added to each parameter of a block */

typedef struct torch_case {
    const char *file;
    ad_cell_kind kind;
    int layers;
} torch_case;

static const torch_case cases[] = {
    {"torch_lstm.bin", AD_CELL_LSTM, 2},     {"torch_lstm1.bin", AD_CELL_LSTM, 1},
    {"torch_gru.bin", AD_CELL_GRU_TORCH, 2}, {"torch_gru1.bin", AD_CELL_GRU_TORCH, 1},
    {"torch_lstm1_o3.bin", AD_CELL_LSTM, 1}, /* O = 3: a transposed head shows */
};
#define NCASES ((int)(sizeof(cases) / sizeof(cases[0])))

/* One fixture, the network built from it, and our results. */
typedef struct torch_run {
    const torch_case *tc;
    ad_fx *fx;
    ad_net_config cfg;
    int T, B, G;
    ad_net *net;
    ad_seq *ws;
    const float *x;      /* (T, B, D) torch = (D, B, T) ours */
    const float *target; /* (T, B, O) */
    const float *y;      /* (T, B, O) torch's outputs */
    float loss;          /* torch's loss */
    const float *our_y;  /* (O, B, T) ours, from the last forward */
    float our_loss;
    float *dy;  /* (O, B, T) */
    float *dx;  /* (D, B, T) */
    float *tmp; /* scratch for one array in torch layout */
} torch_run;

static int verbose;

/* ---- comparison ---- */

/*
 * Number of elements of got that differ from want beyond the tolerance (NaN differs);
 * prints the first few when report is set, and with AD_VERBOSE the largest error
 * relative to max|want| and the smallest FLOOR_FRAC that would have passed.
 */
static size_t compare(const char *what, const float *got, const float *want, size_t n, int report)
{
    double maxabs = 0.0, worst = 0.0, worst_abs = 0.0;
    size_t bad = 0;

    for (size_t i = 0; i < n; i++)
        maxabs = fmax(maxabs, fabs((double)want[i]));
    double floor_ = FLOOR_FRAC * maxabs;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - (double)want[i]);
        worst_abs = fmax(worst_abs, diff);
        double tol = RTOL * fmax(fabs((double)want[i]), floor_);
        if (!(diff <= tol)) {
            if (report && bad < 4)
                fprintf(stderr, "%s[%zu]: ours %.9g torch %.9g (diff %.3g > tol %.3g)\n", what, i,
                        got[i], want[i], diff, tol);
            bad++;
        }
        /* the floor (as a fraction of max|want|) this element would need to pass */
        if (maxabs > 0.0 && diff > RTOL * fabs((double)want[i]))
            worst = fmax(worst, diff / RTOL / maxabs);
    }
    if (verbose)
        printf("  %-22s n=%-4zu max|torch| %-9.3g max|diff|/max|torch| %-9.3g "
               "floor needed %.3g\n",
               what, n, maxabs, maxabs > 0.0 ? worst_abs / maxabs : worst_abs, worst);
    return bad;
}

/* ---- building the network from a fixture ---- */

static const float *get(torch_run *r, const char *name, int ndim, size_t d0, size_t d1, size_t d2)
{
    size_t dims[3] = {d0, d1, d2};
    char err[256];
    const float *p = ad_fx_get(r->fx, name, ndim, dims, err, sizeof(err));

    ck_assert_msg(p != NULL, "%s: %s", r->tc->file, err);
    return p;
}

/* dst (R, C) column-major = src (R, C) row-major (PyTorch's layout). */
static void to_colmajor(float *dst, const float *src, size_t R, size_t C)
{
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++)
            dst[i + j * R] = src[i * C + j];
}

/* dst (R, C) row-major = src (R, C) column-major (our layout). */
static void to_rowmajor(float *dst, const float *src, size_t R, size_t C)
{
    for (size_t i = 0; i < R; i++)
        for (size_t j = 0; j < C; j++)
            dst[i * C + j] = src[i + j * R];
}

/* Loads the fixture, reads its shapes and builds a network holding its weights. */
static void run_open(torch_run *r, const torch_case *tc)
{
    char err[256], name[64];
    const ad_fx_array *a;
    int rc;

    memset(r, 0, sizeof(*r));
    r->tc = tc;
    rc = ad_fx_open(tc->file, &r->fx, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s", err);

    a = ad_fx_find(r->fx, "x");
    ck_assert_msg(a && a->ndim == 3, "%s: no x (T, B, D)", tc->file);
    r->T = (int)a->dims[0];
    r->B = (int)a->dims[1];
    r->cfg.input = (int)a->dims[2];
    a = ad_fx_find(r->fx, "weight_hh_l0");
    ck_assert_msg(a && a->ndim == 2 && a->dims[1] > 0, "%s: no weight_hh_l0", tc->file);
    r->cfg.hidden = (int)a->dims[1];
    r->G = (int)(a->dims[0] / a->dims[1]);
    a = ad_fx_find(r->fx, "head.weight");
    ck_assert_msg(a && a->ndim == 2, "%s: no head.weight", tc->file);
    r->cfg.output = (int)a->dims[0];
    r->cfg.layers = 0;
    for (;;) {
        snprintf(name, sizeof(name), "weight_ih_l%d", r->cfg.layers);
        if (!ad_fx_find(r->fx, name))
            break;
        r->cfg.layers++;
    }
    r->cfg.kind = tc->kind;
    ck_assert_int_eq(r->cfg.layers, tc->layers);
    ck_assert_int_eq(r->G, ad_cell_gates(tc->kind));

    rc = ad_net_create(&r->cfg, 1, &r->net, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: %s", tc->file, err);
    rc = ad_seq_create(r->net, r->T, r->B, &r->ws, err, sizeof(err));
    ck_assert_msg(rc == 0, "%s: %s", tc->file, err);

    int D = r->cfg.input, H = r->cfg.hidden, O = r->cfg.output, GH = r->G * H;
    size_t ny = (size_t)O * r->B * r->T, nx = (size_t)D * r->B * r->T;
    size_t ntmp = (size_t)GH * (D > H ? D : H) + (size_t)O * H + ny + nx; /* ample */
    r->dy = calloc(ny, sizeof(*r->dy));
    r->dx = calloc(nx, sizeof(*r->dx));
    r->tmp = calloc(ntmp, sizeof(*r->tmp));
    ck_assert(r->dy && r->dx && r->tmp);

    r->x = get(r, "x", 3, r->T, r->B, D);
    r->target = get(r, "target", 3, r->T, r->B, O);
    r->y = get(r, "y", 3, r->T, r->B, O);
    r->loss = get(r, "loss", 1, 1, 0, 0)[0];

    /* every parameter must come from the fixture: a missed one stays NaN */
    for (size_t i = 0; i < r->net->nparams; i++)
        r->net->params[i] = NAN;
    ad_params *p = &r->net->p;
    size_t extra = ad_cell_extra_size(tc->kind, H);
    ck_assert_uint_eq(extra, tc->kind == AD_CELL_GRU_TORCH ? (size_t)H : 0);
    for (int l = 0; l < r->cfg.layers; l++) {
        ad_layer_params *lp = &p->layer[l];
        int din = l == 0 ? D : H;
        snprintf(name, sizeof(name), "weight_ih_l%d", l);
        to_colmajor(lp->wx, get(r, name, 2, GH, din, 0), GH, din);
        snprintf(name, sizeof(name), "weight_hh_l%d", l);
        to_colmajor(lp->wh, get(r, name, 2, GH, H, 0), GH, H);
        snprintf(name, sizeof(name), "bias_ih_l%d", l);
        const float *bih = get(r, name, 1, GH, 0, 0);
        snprintf(name, sizeof(name), "bias_hh_l%d", l);
        const float *bhh = get(r, name, 1, GH, 0, 0);
        for (int i = 0; i < GH; i++) {
            if (tc->kind == AD_CELL_GRU_TORCH && i >= 2 * H) {
                lp->b[i] = bih[i];             /* b_n */
                lp->extra[i - 2 * H] = bhh[i]; /* b_hn */
            } else {
                lp->b[i] = bih[i] + bhh[i];
            }
        }
        ck_assert(extra ? lp->extra != NULL : lp->extra == NULL);
    }
    to_colmajor(p->wy, get(r, "head.weight", 2, O, H, 0), O, H);
    memcpy(p->by, get(r, "head.bias", 1, O, 0, 0), (size_t)O * sizeof(*p->by));
}

static void run_close(torch_run *r)
{
    free(r->dy);
    free(r->dx);
    free(r->tmp);
    ad_seq_free(r->ws);
    ad_net_free(r->net);
    ad_fx_free(r->fx);
}

/* Forward, loss and backward with our library. */
static void run_net(torch_run *r)
{
    size_t ny = (size_t)r->cfg.output * r->B * r->T;

    r->our_y = ad_seq_forward(r->net, r->ws, r->x, r->T, r->B);
    ck_assert(r->our_y != NULL);
    r->our_loss = ad_mse(r->our_y, r->target, ny, r->dy);
    ad_seq_zero_grad(r->ws);
    ad_seq_backward(r->net, r->ws, r->dy, r->dx);
}

/* Mismatches of outputs and loss. */
static size_t check_outputs(torch_run *r, int report)
{
    size_t ny = (size_t)r->cfg.output * r->B * r->T;
    size_t bad = compare("y", r->our_y, r->y, ny, report);

    return bad + compare("loss", &r->our_loss, &r->loss, 1, report);
}

/* Mismatches of one gradient, ours in torch's layout in r->tmp, against "grad.<name>". */
static size_t check_grad(torch_run *r, const char *name, size_t n, int report)
{
    char gname[80];
    const ad_fx_array *a;

    snprintf(gname, sizeof(gname), "grad.%s", name);
    a = ad_fx_find(r->fx, gname);
    ck_assert_msg(a && a->n == n, "%s: no %s of %zu floats", r->tc->file, gname, n);
    return compare(gname, r->tmp, a->data, n, report);
}

/* Mismatches of every parameter gradient and of dLoss/dx. */
static size_t check_grads(torch_run *r, int report)
{
    int D = r->cfg.input, H = r->cfg.hidden, O = r->cfg.output, GH = r->G * H;
    size_t nx = (size_t)D * r->B * r->T, bad = 0;
    char name[64];
    ad_params g;

    ad_net_views(&r->cfg, ad_seq_grad(r->ws), &g);
    for (int l = 0; l < r->cfg.layers; l++) {
        ad_layer_params *lg = &g.layer[l];
        int din = l == 0 ? D : H;
        snprintf(name, sizeof(name), "weight_ih_l%d", l);
        to_rowmajor(r->tmp, lg->wx, GH, din);
        bad += check_grad(r, name, (size_t)GH * din, report);
        snprintf(name, sizeof(name), "weight_hh_l%d", l);
        to_rowmajor(r->tmp, lg->wh, GH, H);
        bad += check_grad(r, name, (size_t)GH * H, report);
        /* bias_ih: our db for every row (b_n is bias_ih's n part for GRU_TORCH) */
        memcpy(r->tmp, lg->b, (size_t)GH * sizeof(*r->tmp));
        snprintf(name, sizeof(name), "bias_ih_l%d", l);
        bad += check_grad(r, name, GH, report);
        /* bias_hh: db too, but b_hn's gradient for GRU_TORCH's n rows */
        if (r->cfg.kind == AD_CELL_GRU_TORCH)
            memcpy(r->tmp + 2 * H, lg->extra, (size_t)H * sizeof(*r->tmp));
        snprintf(name, sizeof(name), "bias_hh_l%d", l);
        bad += check_grad(r, name, GH, report);
    }
    to_rowmajor(r->tmp, g.wy, O, H);
    bad += check_grad(r, "head.weight", (size_t)O * H, report);
    memcpy(r->tmp, g.by, (size_t)O * sizeof(*r->tmp));
    bad += check_grad(r, "head.bias", O, report);
    memcpy(r->tmp, r->dx, nx * sizeof(*r->tmp));
    bad += check_grad(r, "x", nx, report);
    return bad;
}

/* Mismatches of the outputs of the streaming step, each window from a fresh state. */
static size_t check_step(torch_run *r, int report)
{
    int D = r->cfg.input, O = r->cfg.output;
    size_t ny = (size_t)O * r->B * r->T;
    ad_state *st = ad_state_create(r->net);

    ck_assert(st != NULL);
    for (int b = 0; b < r->B; b++) {
        ad_state_reset(st);
        for (int t = 0; t < r->T; t++) {
            size_t k = (size_t)b + (size_t)r->B * t;
            ad_net_step(r->net, st, r->x + (size_t)D * k, r->tmp + (size_t)O * k);
        }
    }
    ad_state_free(st);
    return compare("y (step)", r->tmp, r->y, ny, report);
}

/* _i selects the case (_i / 2) and the product kernel (_i % 2: 1 = reference). */
static const torch_case *setup_case(int i)
{
    ad_blas_set_reference(i % 2);
    if (verbose)
        printf("%s, %s kernel\n", cases[i / 2].file, i % 2 ? "reference" : "OpenBLAS");
    return &cases[i / 2];
}

/* ---- tests: the network against PyTorch ---- */

START_TEST(test_forward)
{
    torch_run r;

    run_open(&r, setup_case(_i));
    run_net(&r);
    size_t bad = check_outputs(&r, 1);
    ck_assert_msg(bad == 0, "%s: %zu outputs differ from torch", r.tc->file, bad);
    ck_assert_float_eq_tol(r.our_loss, r.loss, RTOL * fabs(r.loss));
    run_close(&r);
}
END_TEST

START_TEST(test_backward)
{
    torch_run r;

    run_open(&r, setup_case(_i));
    run_net(&r);
    size_t bad = check_grads(&r, 1);
    ck_assert_msg(bad == 0, "%s: %zu gradient elements differ from torch", r.tc->file, bad);
    /* backward adds: a second pass on zeroed gradients gives the same numbers */
    run_net(&r);
    ck_assert_uint_eq(check_grads(&r, 1), 0);
    run_close(&r);
}
END_TEST

START_TEST(test_step)
{
    torch_run r;

    run_open(&r, setup_case(_i));
    size_t bad = check_step(&r, 1);
    ck_assert_msg(bad == 0, "%s: %zu streamed outputs differ from torch", r.tc->file, bad);
    run_close(&r);
}
END_TEST

/*
 * The comparisons can fail: adding NUDGE to every element of any one parameter block
 * (one layer's Wx, Wh, b or extra vector, or the head's Wy or by) must make the outputs
 * or gradients differ, and the streamed outputs too.
 */
START_TEST(test_sensitivity)
{
    struct {
        float *p;
        size_t n;
    } blocks[4 * AD_MAX_LAYERS + 2];
    int nb = 0, H, GH;
    torch_run r;

    run_open(&r, setup_case(_i));
    H = r.cfg.hidden;
    GH = r.G * H;
    ad_params *p = &r.net->p;
    for (int l = 0; l < r.cfg.layers; l++) {
        ad_layer_params *lp = &p->layer[l];
        size_t din = l == 0 ? (size_t)r.cfg.input : (size_t)H;
        blocks[nb].p = lp->wx, blocks[nb++].n = (size_t)GH * din;
        blocks[nb].p = lp->wh, blocks[nb++].n = (size_t)GH * H;
        blocks[nb].p = lp->b, blocks[nb++].n = (size_t)GH;
        if (lp->extra)
            blocks[nb].p = lp->extra, blocks[nb++].n = ad_cell_extra_size(r.cfg.kind, H);
    }
    blocks[nb].p = p->wy, blocks[nb++].n = (size_t)r.cfg.output * H;
    blocks[nb].p = p->by, blocks[nb++].n = (size_t)r.cfg.output;
    ck_assert_ptr_eq(blocks[nb - 1].p + blocks[nb - 1].n, r.net->params + r.net->nparams);

    float *saved = malloc(r.net->nparams * sizeof(*saved));
    ck_assert_ptr_nonnull(saved);
    memcpy(saved, r.net->params, r.net->nparams * sizeof(*saved));
    int save = verbose;
    verbose = 0;
    for (int k = 0; k < nb; k++) {
        for (size_t i = 0; i < blocks[k].n; i++)
            blocks[k].p[i] += NUDGE;
        run_net(&r);
        size_t bad = check_outputs(&r, 0) + check_grads(&r, 0);
        size_t bad_step = check_step(&r, 0);
        memcpy(r.net->params, saved, r.net->nparams * sizeof(*saved));
        ck_assert_msg(bad > 0, "%s: block %d nudged, sequence results still match", r.tc->file, k);
        ck_assert_msg(bad_step > 0, "%s: block %d nudged, streamed outputs still match", r.tc->file,
                      k);
    }
    verbose = save;
    free(saved);
    run_net(&r); /* and undoing the nudges restores agreement */
    ck_assert_uint_eq(check_outputs(&r, 1) + check_grads(&r, 1) + check_step(&r, 1), 0);
    run_close(&r);
}
END_TEST

/* ---- tests: the fixture reader ---- */

static void *load_bytes(const char *file, size_t *len)
{
    char path[4096];
    const char *dir = getenv("AD_FIXTURES");
    FILE *f;
    void *buf;
    long n;

    ck_assert_msg(dir != NULL, "AD_FIXTURES is not set");
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    ck_assert_int_gt(n, 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    ck_assert(buf != NULL);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/*
 * Parses a damaged buffer: must fail with -AD_EFORMAT, a message (containing msg if not
 * NULL), and no object.
 */
static void expect_refused(const void *buf, size_t len, const char *what, size_t at,
                           const char *msg)
{
    char err[256] = "";
    static ad_fx sentinel;
    ad_fx *fx = &sentinel; /* must be reset to NULL */
    int rc = ad_fx_parse(buf, len, &fx, err, sizeof(err));

    ck_assert_msg(rc == -AD_EFORMAT, "%s at %zu: accepted (rc %d)", what, at, rc);
    ck_assert_ptr_null(fx);
    ck_assert_msg(err[0] != '\0', "%s at %zu: no message", what, at);
    ck_assert_msg(!msg || strstr(err, msg), "%s at %zu: want '%s' in: %s", what, at, msg, err);
}

START_TEST(test_fx_load)
{
    char err[256];
    ad_fx *fx;

    for (int i = 0; i < NCASES; i++) {
        ck_assert_msg(ad_fx_open(cases[i].file, &fx, err, sizeof(err)) == 0, "%s", err);
        ck_assert_int_eq(fx->narrays, cases[i].layers == 2 ? 25 : 17);
        const ad_fx_array *a = ad_fx_find(fx, "x");
        ck_assert_ptr_nonnull(a);
        ck_assert_int_eq(a->ndim, 3);
        ck_assert_uint_eq(a->n, a->dims[0] * a->dims[1] * a->dims[2]);
        ck_assert_ptr_null(ad_fx_find(fx, "nonesuch"));
        /* ad_fx_get checks dims */
        size_t dims[3] = {a->dims[0], a->dims[1], a->dims[2]};
        ck_assert_ptr_eq(ad_fx_get(fx, "x", 3, dims, err, sizeof(err)), a->data);
        dims[2]++;
        ck_assert_ptr_null(ad_fx_get(fx, "x", 3, dims, err, sizeof(err)));
        ck_assert_msg(strstr(err, "dims") != NULL, "%s", err);
        ck_assert_ptr_null(ad_fx_get(fx, "x", 2, dims, err, sizeof(err)));
        ck_assert_ptr_null(ad_fx_get(fx, "nonesuch", 0, NULL, err, sizeof(err)));
        ck_assert_msg(strstr(err, "nonesuch") != NULL, "%s", err);
        ad_fx_free(fx);
    }
    ck_assert_int_eq(ad_fx_open("nonesuch.bin", &fx, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_null(fx);
    ck_assert_msg(strstr(err, "nonesuch.bin") != NULL, "%s", err);
    ck_assert_int_eq(ad_fx_parse(NULL, 4, &fx, err, sizeof(err)), -AD_EINVAL);
}
END_TEST

START_TEST(test_fx_damaged)
{
    size_t len;
    uint8_t *buf = load_bytes("torch_gru1.bin", &len);

    /* every truncation */
    for (size_t n = 0; n < len; n++)
        expect_refused(buf, n, "truncated", n, NULL);
    /* every single-byte corruption (CRC-32 detects any burst of up to 32 bits) */
    for (size_t i = 0; i < len; i++) {
        buf[i] ^= 0xA5;
        expect_refused(buf, len, "corrupted", i, NULL);
        buf[i] ^= 0xA5;
    }
    /* a trailing byte */
    buf[len] = 0;
    expect_refused(buf, len + 1, "trailing byte", len, "trailing");
    free(buf);
}
END_TEST

/* Writes a fixture holding the given header fields and one array per name (dims (2)). */
static size_t build_fx(uint8_t *dst, size_t cap, const char *magic, uint32_t version, uint32_t ndim,
                       int narrays, const char *const *names)
{
    ad_wbuf w;

    ad_wbuf_init(&w, dst, cap);
    ad_put_bytes(&w, magic, 4);
    ad_put_u32(&w, version);
    ad_put_u32(&w, (uint32_t)narrays);
    for (int i = 0; i < narrays; i++) {
        ad_put_u32(&w, (uint32_t)strlen(names[i]));
        ad_put_bytes(&w, names[i], strlen(names[i]));
        ad_put_u32(&w, ndim);
        for (uint32_t d = 0; d < ndim; d++)
            ad_put_u32(&w, 2);
        for (uint32_t k = 0; k < (ndim ? 1u << ndim : 1u); k++)
            ad_put_f32(&w, (float)k - 0.5f);
    }
    ad_put_u32(&w, ad_crc32(0, dst, w.len));
    ck_assert(!w.err);
    return w.len;
}

/* Well-checksummed files that are still wrong are refused with a message saying why. */
START_TEST(test_fx_invalid)
{
    static const char *const ok[] = {"a", "b"};
    static const char *const dup[] = {"a", "a"};
    static const char *const empty[] = {""};
    static uint8_t buf[16384];
    char err[256];
    ad_fx *fx;
    size_t n;

    n = build_fx(buf, sizeof(buf), "ADFX", 1, 2, 2, ok);
    ck_assert_int_eq(ad_fx_parse(buf, n, &fx, err, sizeof(err)), 0);
    ck_assert_int_eq(fx->narrays, 2);
    ck_assert_uint_eq(ad_fx_find(fx, "b")->n, 4);
    ck_assert_float_eq(ad_fx_find(fx, "b")->data[3], 2.5f);
    ad_fx_free(fx);

    n = build_fx(buf, sizeof(buf), "ADFX", 1, 0, 2, ok); /* scalars */
    ck_assert_int_eq(ad_fx_parse(buf, n, &fx, err, sizeof(err)), 0);
    ck_assert_uint_eq(ad_fx_find(fx, "a")->n, 1);
    ck_assert_float_eq(ad_fx_get(fx, "a", 0, NULL, err, sizeof(err))[0], -0.5f);
    ad_fx_free(fx);

    n = build_fx(buf, sizeof(buf), "ADFX", 1, 2, 0, ok); /* no arrays at all */
    ck_assert_int_eq(ad_fx_parse(buf, n, &fx, err, sizeof(err)), 0);
    ck_assert_int_eq(fx->narrays, 0);
    ad_fx_free(fx);

    struct {
        const char *magic;
        uint32_t version, ndim;
        int narrays;
        const char *const *names;
        const char *msg;
    } bad[] = {
        {"ADNN", 1, 2, 2, ok, "magic"},          {"ADFX", 2, 2, 2, ok, "version"},
        {"ADFX", 1, 9, 2, ok, "dims"},           {"ADFX", 1, 2, 2, dup, "duplicate"},
        {"ADFX", 1, 2, 1, empty, "name length"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = build_fx(buf, sizeof(buf), bad[i].magic, bad[i].version, bad[i].ndim, bad[i].narrays,
                     bad[i].names);
        expect_refused(buf, n, "invalid", i, bad[i].msg);
    }

    /* a count of arrays the file cannot hold, and dims whose product overflows */
    n = build_fx(buf, sizeof(buf), "ADFX", 1, 2, 1, ok);
    buf[8] = 0xff;
    buf[9] = 0xff; /* 65535 arrays */
    ad_put_u32(&(ad_wbuf){.p = buf + n - 4, .cap = 4}, ad_crc32(0, buf, n - 4));
    expect_refused(buf, n, "too many arrays", 0, "at most");
    buf[8] = 100;
    buf[9] = 0; /* 100 arrays, one present */
    ad_put_u32(&(ad_wbuf){.p = buf + n - 4, .cap = 4}, ad_crc32(0, buf, n - 4));
    expect_refused(buf, n, "missing arrays", 0, "past the end");
    n = build_fx(buf, sizeof(buf), "ADFX", 1, 2, 1, ok);
    for (int k = 0; k < 8; k++)
        buf[21 + k] = 0xff; /* both dims 0xffffffff */
    ad_put_u32(&(ad_wbuf){.p = buf + n - 4, .cap = 4}, ad_crc32(0, buf, n - 4));
    expect_refused(buf, n, "dims overflow", 0, "past the end");
}
END_TEST

START_TEST(test_fx_env)
{
    char err[256], *dir = getenv("AD_FIXTURES");
    ad_fx *fx;

    ck_assert_ptr_nonnull(dir);
    dir = strdup(dir);
    unsetenv("AD_FIXTURES");
    ck_assert_int_eq(ad_fx_open(cases[0].file, &fx, err, sizeof(err)), -AD_EINVAL);
    ck_assert_msg(strstr(err, "AD_FIXTURES") != NULL, "%s", err);
    setenv("AD_FIXTURES", dir, 1);
    free(dir);
}
END_TEST

static Suite *torch_suite(void)
{
    Suite *s = suite_create("torch");
    TCase *tc;

    tc = tcase_create("fixture");
    tcase_add_test(tc, test_fx_load);
    tcase_add_test(tc, test_fx_damaged);
    tcase_add_test(tc, test_fx_invalid);
    tcase_add_test(tc, test_fx_env);
    suite_add_tcase(s, tc);

    tc = tcase_create("forward");
    tcase_add_loop_test(tc, test_forward, 0, 2 * NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("backward");
    tcase_add_loop_test(tc, test_backward, 0, 2 * NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("step");
    tcase_add_loop_test(tc, test_step, 0, 2 * NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("sensitivity");
    tcase_add_loop_test(tc, test_sensitivity, 0, 2 * NCASES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    const char *v = getenv("AD_VERBOSE");
    SRunner *sr;
    int failed;

    verbose = v && *v && strcmp(v, "0") != 0;
    if (verbose) /* a failing check in a forked test exits without flushing */
        setvbuf(stdout, NULL, _IONBF, 0);
    sr = srunner_create(torch_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
