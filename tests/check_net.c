/*
 * check_net.c - the network object (net.h) and the cell-kind table (cell.h): shape
 * checks, the documented parameter layout, deterministic initialisation, kind names,
 * per-stream states, and the promise that streaming steps and the sequence forward give
 * the same outputs (bit for bit with the reference product kernel, to float rounding with
 * OpenBLAS). Also clone and copy of parameters, and the batched step of many streams
 * against separate steps.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cell.h"
#include "net.h"
#include "rng.h"

/* The cell kinds as documented in cell.h, written out independently of the library. */
static const struct {
    ad_cell_kind kind;
    const char *name; /* NULL where cell.h does not spell the name out */
    int gates;
    int has_c;
    int extra_per_h; /* extra floats = extra_per_h * H */
    int forget_gate; /* index of f in the gate order, -1 if none */
} kinds[AD_CELL_NKINDS] = {
    {AD_CELL_ELMAN, NULL, 1, 0, 0, -1},
    {AD_CELL_LSTM, "lstm", 4, 1, 0, 1},            /* i,f,g,o */
    {AD_CELL_PEEPHOLE, NULL, 4, 1, 3, 1},          /* i,f,g,o; p_i, p_f, p_o */
    {AD_CELL_CIFG, NULL, 3, 1, 0, 0},              /* f,g,o */
    {AD_CELL_GRU, NULL, 3, 0, 0, -1},              /* r,z,n */
    {AD_CELL_GRU_TORCH, "gru_torch", 3, 0, 1, -1}, /* r,z,n; b_hn */
};

/*
 * Streaming against sequence with OpenBLAS: every output must satisfy
 * |y_seq - y_step| <= STREAM_RTOL * max over the run of |y_step|, and every final-state
 * value the same against the largest |h| (|c|) of the state. Relative to the run's scale,
 * not to 1: with PyTorch's initialisation the top of a 4-layer network outputs values
 * near 1e-3, where an absolute tolerance would see nothing. The two paths add the same
 * products in different orders (OpenBLAS may also fuse multiply-adds), so each sum of at
 * most D + H terms differs by a few ulps of its terms (~1e-7 relative), and the
 * recurrence carries that over 50 steps: measured worst 8e-7 of the scale with the
 * initial weights, 2.4e-6 with the weights tripled (4-layer Elman, whose recurrence then
 * amplifies a little). 1e-5 keeps a fourfold margin there while a wrong term (1e-2 of
 * the scale or more) fails; bit-level agreement is the reference kernel's test.
 */
#define STREAM_RTOL 1e-5

static ad_net_config mkcfg(ad_cell_kind kind, int layers, int input, int hidden, int output)
{
    ad_net_config cfg = {
        .kind = kind, .layers = layers, .input = input, .hidden = hidden, .output = output};
    return cfg;
}

static ad_net *mknet(const ad_net_config *cfg, uint64_t seed)
{
    ad_net *net = NULL;
    char err[256] = "";
    int rc = ad_net_create(cfg, seed, &net, err, sizeof(err));
    ck_assert_msg(rc == 0 && net, "ad_net_create(%s): %d %s", ad_cell_name(cfg->kind), rc, err);
    return net;
}

static void fill_normal(ad_rng *r, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = ad_rng_normal(r);
}

/* The count of net.h's layout, from the table above. */
static size_t expected_count(const ad_net_config *cfg)
{
    size_t G = (size_t)kinds[cfg->kind].gates, H = (size_t)cfg->hidden, n = 0;
    for (int l = 0; l < cfg->layers; l++) {
        size_t din = l == 0 ? (size_t)cfg->input : H;
        n += G * H * din + G * H * H + G * H + (size_t)kinds[cfg->kind].extra_per_h * H;
    }
    return n + (size_t)cfg->output * H + (size_t)cfg->output;
}

/* ---- config ---- */

/* cfg must be refused with a message that names the field (word). */
static void expect_refused(ad_net_config cfg, const char *what, const char *word)
{
    char err[256] = "";
    ck_assert_msg(ad_net_config_check(&cfg, err, sizeof(err)) == -AD_EINVAL, "%s accepted", what);
    ck_assert_msg(err[0] != '\0', "%s refused without a message", what);
    ck_assert_msg(strstr(err, word) != NULL, "%s: message \"%s\" does not say \"%s\"", what, err,
                  word);
    ck_assert_msg(memchr(err, '\0', sizeof(err)) != NULL, "%s: message not terminated", what);
    /* the message buffer is optional */
    ck_assert_int_eq(ad_net_config_check(&cfg, NULL, 0), -AD_EINVAL);
    ck_assert_msg(ad_net_param_count(&cfg) == 0, "%s has a parameter count", what);
    ad_net *out = NULL;
    char err2[256] = "";
    ck_assert_msg(ad_net_create(&cfg, 1, &out, err2, sizeof(err2)) < 0, "%s created", what);
    ck_assert_msg(err2[0] != '\0', "%s: ad_net_create refused without a message", what);
    ck_assert_ptr_null(out);
}

START_TEST(test_config_refuses_bad_shapes)
{
    const ad_net_config ok = mkcfg(AD_CELL_LSTM, 2, 3, 8, 1);
    ad_net_config c;
    char err[256] = "x";

    ck_assert_int_eq(ad_net_config_check(&ok, err, sizeof(err)), 0);

    c = ok, c.layers = 0;
    expect_refused(c, "layers 0", "layers");
    c = ok, c.layers = AD_MAX_LAYERS + 1;
    expect_refused(c, "layers 5", "layers");
    c = ok, c.layers = -1;
    expect_refused(c, "layers -1", "layers");
    c = ok, c.input = 0;
    expect_refused(c, "input 0", "input");
    c = ok, c.input = AD_MAX_INPUT + 1;
    expect_refused(c, "input > AD_MAX_INPUT", "input");
    c = ok, c.hidden = 0;
    expect_refused(c, "hidden 0", "hidden");
    c = ok, c.hidden = AD_MAX_HIDDEN + 1;
    expect_refused(c, "hidden > AD_MAX_HIDDEN", "hidden");
    c = ok, c.output = 0;
    expect_refused(c, "output 0", "output");
    c = ok, c.output = AD_MAX_OUTPUT + 1;
    expect_refused(c, "output > AD_MAX_OUTPUT", "output");
    c = ok, c.kind = AD_CELL_NKINDS;
    expect_refused(c, "kind NKINDS", "kind");
    c = ok, c.kind = (ad_cell_kind)-1;
    expect_refused(c, "kind -1", "kind");

    /* the limits themselves are valid */
    c = mkcfg(AD_CELL_GRU, AD_MAX_LAYERS, AD_MAX_INPUT, AD_MAX_HIDDEN, AD_MAX_OUTPUT);
    ck_assert_int_eq(ad_net_config_check(&c, err, sizeof(err)), 0);
    c = mkcfg(AD_CELL_ELMAN, 1, 1, 1, 1);
    ck_assert_int_eq(ad_net_config_check(&c, err, sizeof(err)), 0);
}
END_TEST

/* ---- the kind table and the layout ---- */

START_TEST(test_kind_table)
{
    for (int k = 0; k < AD_CELL_NKINDS; k++) {
        ad_cell_kind kind = kinds[k].kind;
        ck_assert_int_eq(ad_cell_gates(kind), kinds[k].gates);
        ck_assert_int_eq(!!ad_cell_has_c(kind), kinds[k].has_c);
        ck_assert_int_eq(ad_cell_forget_gate(kind), kinds[k].forget_gate);
        for (int H = 1; H <= 9; H += 4)
            ck_assert_uint_eq(ad_cell_extra_size(kind, H), (size_t)kinds[k].extra_per_h * H);
    }
    ck_assert_int_eq(ad_cell_gates(AD_CELL_NKINDS), 0);
    ck_assert_int_eq(ad_cell_forget_gate(AD_CELL_NKINDS), -1);
}
END_TEST

START_TEST(test_param_count_and_views)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 1}, {2, 7, 3}, {64, 16, 2}};
    for (int k = 0; k < AD_CELL_NKINDS; k++) {
        for (int layers = 1; layers <= AD_MAX_LAYERS; layers++) {
            for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
                ad_net_config cfg =
                    mkcfg((ad_cell_kind)k, layers, shapes[s][0], shapes[s][1], shapes[s][2]);
                size_t n = expected_count(&cfg), G = (size_t)kinds[k].gates;
                size_t H = (size_t)cfg.hidden, O = (size_t)cfg.output;
                ck_assert_uint_eq(ad_net_param_count(&cfg), n);

                /* views carve a buffer in the documented order, contiguously */
                float *buf = calloc(n, sizeof(*buf));
                ck_assert_ptr_nonnull(buf);
                ad_params v;
                ad_net_views(&cfg, buf, &v);
                size_t off = 0;
                for (int l = 0; l < layers; l++) {
                    size_t din = l == 0 ? (size_t)cfg.input : H;
                    ck_assert_ptr_eq(v.layer[l].wx, buf + off);
                    off += G * H * din;
                    ck_assert_ptr_eq(v.layer[l].wh, buf + off);
                    off += G * H * H;
                    ck_assert_ptr_eq(v.layer[l].b, buf + off);
                    off += G * H;
                    if (kinds[k].extra_per_h) {
                        ck_assert_ptr_eq(v.layer[l].extra, buf + off);
                        off += (size_t)kinds[k].extra_per_h * H;
                    } else {
                        ck_assert_ptr_null(v.layer[l].extra);
                    }
                }
                ck_assert_ptr_eq(v.wy, buf + off);
                off += O * H;
                ck_assert_ptr_eq(v.by, buf + off);
                off += O;
                ck_assert_uint_eq(off, n);
                free(buf);
            }
        }
    }
}
END_TEST

/* ---- initialisation ---- */

/* Whether net's views are those ad_net_views carves from its own buffer. */
static void assert_own_views(const ad_net *net)
{
    ad_params v;
    memset(&v, 0, sizeof(v));
    ad_net_views(&net->cfg, net->params, &v);
    for (int l = 0; l < net->cfg.layers; l++) {
        ck_assert_ptr_eq(net->p.layer[l].wx, v.layer[l].wx);
        ck_assert_ptr_eq(net->p.layer[l].wh, v.layer[l].wh);
        ck_assert_ptr_eq(net->p.layer[l].b, v.layer[l].b);
        ck_assert_ptr_eq(net->p.layer[l].extra, v.layer[l].extra);
    }
    ck_assert_ptr_eq(net->p.wy, v.wy);
    ck_assert_ptr_eq(net->p.by, v.by);
    ck_assert_ptr_eq(v.layer[0].wx, net->params);
}

START_TEST(test_create_deterministic)
{
    ad_cell_kind kind = (ad_cell_kind)_i;
    ad_net_config cfg = mkcfg(kind, 3, 4, 6, 2);
    ad_net *a = mknet(&cfg, 42), *b = mknet(&cfg, 42), *c = mknet(&cfg, 43);

    ck_assert_uint_eq(a->nparams, expected_count(&cfg));
    ck_assert_int_eq(a->cfg.kind, kind);
    ck_assert_int_eq(a->cfg.layers, 3);
    ck_assert_int_eq(a->cfg.hidden, 6);
    ck_assert_mem_eq(a->params, b->params, a->nparams * sizeof(float));
    ck_assert_msg(memcmp(a->params, c->params, a->nparams * sizeof(float)) != 0,
                  "seeds 42 and 43 give the same parameters");
    /* the views of a network point into its own buffer, where ad_net_views says */
    assert_own_views(a);

    /* ad_net_init re-creates the same numbers */
    ad_net_init(c, 42);
    ck_assert_mem_eq(a->params, c->params, a->nparams * sizeof(float));
    ck_assert_uint_ge(ad_net_bytes(a), sizeof(*a) + a->nparams * sizeof(float));
    ad_net_free(a);
    ad_net_free(b);
    ad_net_free(c);
}
END_TEST

START_TEST(test_init_values)
{
    ad_cell_kind kind = (ad_cell_kind)_i;
    ad_net_config cfg = mkcfg(kind, 2, 3, 16, 2);
    ad_net *net = mknet(&cfg, 7);
    const int H = cfg.hidden, GH = kinds[kind].gates * H, fg = ad_cell_forget_gate(kind);
    const float bound = 1.0f / sqrtf((float)H);

    for (int l = 0; l < cfg.layers; l++) {
        const ad_layer_params *lp = &net->p.layer[l];
        size_t nwx = (size_t)GH * (l == 0 ? cfg.input : H), nwh = (size_t)GH * H;
        float wmax = 0.0f;
        for (size_t i = 0; i < nwx; i++)
            wmax = fmaxf(wmax, fabsf(lp->wx[i]));
        for (size_t i = 0; i < nwh; i++)
            wmax = fmaxf(wmax, fabsf(lp->wh[i]));
        ck_assert_float_le(wmax, bound);
        ck_assert_float_gt(wmax, 0.5f * bound); /* uniform over the range, not tiny */
        for (int r = 0; r < GH; r++) {
            float want = (fg >= 0 && r / H == fg) ? 1.0f : 0.0f;
            ck_assert_msg(lp->b[r] == want, "%s layer %d bias[%d] = %g, want %g",
                          ad_cell_name(kind), l, r, (double)lp->b[r], (double)want);
        }
        for (size_t i = 0; i < ad_cell_extra_size(kind, H); i++)
            ck_assert_float_le(fabsf(lp->extra[i]), bound);
    }
    for (int i = 0; i < cfg.output * H; i++)
        ck_assert_float_le(fabsf(net->p.wy[i]), bound);
    for (int i = 0; i < cfg.output; i++)
        ck_assert_float_eq(net->p.by[i], 0.0f);
    ad_net_free(net);
}
END_TEST

/* ---- names ---- */

START_TEST(test_names_round_trip)
{
    for (int k = 0; k < AD_CELL_NKINDS; k++) {
        const char *name = ad_cell_name((ad_cell_kind)k);
        ck_assert_ptr_nonnull(name);
        ck_assert_int_eq(ad_cell_from_name(name), k);
        for (const char *p = name; *p; p++)
            ck_assert_msg(!(*p >= 'A' && *p <= 'Z'), "name %s not lower-case", name);
        if (kinds[k].name)
            ck_assert_str_eq(name, kinds[k].name);
        for (int j = 0; j < k; j++)
            ck_assert_str_ne(name, ad_cell_name((ad_cell_kind)j));
    }
    ck_assert_ptr_null(ad_cell_name(AD_CELL_NKINDS));
    ck_assert_ptr_null(ad_cell_name((ad_cell_kind)-1));
    ck_assert_int_eq(ad_cell_from_name("nope"), -1);
    ck_assert_int_eq(ad_cell_from_name(""), -1);
    ck_assert_int_eq(ad_cell_from_name("LSTM"), -1);
    ck_assert_int_eq(ad_cell_from_name("lstmx"), -1);
    ck_assert_int_eq(ad_cell_from_name("gru_"), -1);
}
END_TEST

/* ---- states ---- */

static int state_is_zero(const ad_state *st)
{
    size_t n = (size_t)st->layers * st->hidden;
    for (size_t i = 0; i < n; i++)
        if (st->h[i] != 0.0f || (st->c && st->c[i] != 0.0f))
            return 0;
    return 1;
}

START_TEST(test_state_shape_and_reset)
{
    ad_cell_kind kind = (ad_cell_kind)_i;
    ad_net_config cfg = mkcfg(kind, 3, 2, 5, 1);
    ad_net *net = mknet(&cfg, 3);
    ad_state *st = ad_state_create(net);
    float x[2] = {0.5f, -1.25f}, y[1];

    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(st->layers, 3);
    ck_assert_int_eq(st->hidden, 5);
    ck_assert_int_eq(!!st->has_c, kinds[kind].has_c);
    if (kinds[kind].has_c)
        ck_assert_ptr_nonnull(st->c);
    else
        ck_assert_ptr_null(st->c);
    ck_assert(state_is_zero(st));
    ck_assert_uint_ge(ad_state_bytes(st), 15 * sizeof(float) * (kinds[kind].has_c ? 2 : 1));
    for (int t = 0; t < 3; t++)
        ad_net_step(net, st, x, y);
    ck_assert(!state_is_zero(st));
    /* every layer moved (the top one alone would not catch a stuck lower layer) */
    for (int l = 0; l < 3; l++) {
        int moved = 0;
        for (int j = 0; j < 5; j++)
            moved |= st->h[l * 5 + j] != 0.0f;
        ck_assert_msg(moved, "layer %d state still zero", l);
    }
    ad_state_reset(st);
    ck_assert(state_is_zero(st));
    ad_state_free(st);
    ad_net_free(net);
}
END_TEST

START_TEST(test_states_independent)
{
    ad_cell_kind kind = (ad_cell_kind)_i;
    ad_net_config cfg = mkcfg(kind, 2, 3, 6, 2);
    ad_net *net = mknet(&cfg, 11);
    ad_state *a = ad_state_create(net), *b = ad_state_create(net);
    float xs[20][3], ys[20][2], ya[2], yb[2], ha[12], ca[12];
    const size_t n = 12; /* layers * H */
    ad_rng r;

    ck_assert(a && b);
    ad_rng_seed(&r, 5);
    fill_normal(&r, &xs[0][0], 60);
    for (int t = 0; t < 20; t++)
        ad_net_step(net, a, xs[t], ys[t]);
    ck_assert_msg(state_is_zero(b), "stepping one stream moved another");

    /* b, stepped with the same inputs, follows a exactly; stepping b leaves a alone */
    memcpy(ha, a->h, sizeof(ha));
    if (a->c)
        memcpy(ca, a->c, sizeof(ca));
    for (int t = 0; t < 20; t++) {
        ad_net_step(net, b, xs[t], yb);
        ck_assert_mem_eq(yb, ys[t], sizeof(yb));
    }
    ck_assert_mem_eq(a->h, ha, n * sizeof(float));
    if (a->c)
        ck_assert_mem_eq(a->c, ca, n * sizeof(float));
    ck_assert_mem_eq(a->h, b->h, n * sizeof(float));

    /* after a reset, the same inputs give the same outputs again */
    ad_state_reset(a);
    for (int t = 0; t < 20; t++) {
        ad_net_prefetch(net); /* a hint only: changes nothing */
        ad_net_step(net, a, xs[t], ya);
        ck_assert_mem_eq(ya, ys[t], sizeof(ya));
    }
    ad_state_free(a);
    ad_state_free(b);
    ad_net_free(net);
}
END_TEST

/* ---- streaming against sequence ---- */

/*
 * Variants of the streaming/sequence comparison: D, B, H, a workspace bigger than the run
 * (extra steps and windows), and a gain applied to every parameter after initialisation
 * (3 puts the gates well into their nonlinear range, where tanh leaves its polynomial
 * branch, act.h).
 */
static const struct {
    int D, B, H, bigger;
    float gain;
} variants[] = {
    {1, 1, 7, 0, 1.0f},  {1, 3, 7, 0, 1.0f}, {3, 1, 7, 0, 1.0f}, {3, 3, 7, 0, 1.0f},
    {3, 3, 40, 0, 1.0f}, {3, 3, 7, 1, 1.0f}, {3, 3, 9, 0, 3.0f},
};

#define STREAM_T 50

/*
 * Runs the sequence forward over B windows and steps each window from a fresh state;
 * exact = 1 demands identical bits, else STREAM_RTOL. Also compares ad_seq_final_state
 * with the stepped state.
 */
static void stream_vs_seq(ad_cell_kind kind, int layers, int D, int B, int H, int bigger,
                          float gain, int exact)
{
    ad_net_config cfg = mkcfg(kind, layers, D, H, 2);
    const int O = cfg.output, T = STREAM_T;
    ad_net *net = mknet(&cfg, 100 + (uint64_t)kind * 10 + (uint64_t)layers);
    ad_seq *ws = NULL;
    ad_state *st = ad_state_create(net), *fin = ad_state_create(net);
    float *x = malloc(sizeof(*x) * (size_t)D * B * T),
          *ys = malloc(sizeof(*ys) * (size_t)O * B * T);
    float y[AD_MAX_OUTPUT];
    char err[256] = "";
    ad_rng r;

    ck_assert(st && fin && x && ys);
    for (size_t i = 0; i < net->nparams; i++)
        net->params[i] *= gain;
    ck_assert_msg(ad_seq_create(net, T + 7 * bigger, B + 2 * bigger, &ws, err, sizeof(err)) == 0,
                  "ad_seq_create: %s", err);
    ad_rng_seed(&r, 9 + (uint64_t)D * 3 + (uint64_t)B);
    fill_normal(&r, x, (size_t)D * B * T);
    /* scale up the input a little so the upper layers see a signal of order 1 */
    for (size_t i = 0; i < (size_t)D * B * T; i++)
        x[i] *= 1.5f;
    const float *yseq = ad_seq_forward(net, ws, x, T, B);
    ck_assert_ptr_nonnull(yseq);
    memcpy(ys, yseq, sizeof(*ys) * (size_t)O * B * T);

    /* the run's output scale, from the steps (first pass), for the OpenBLAS tolerance */
    double yscale = 0.0;
    for (int b = 0; b < B && !exact; b++) {
        ad_state_reset(st);
        for (int t = 0; t < T; t++) {
            ad_net_step(net, st, x + (size_t)D * (b + (size_t)B * t), y);
            for (int o = 0; o < O; o++)
                yscale = fmax(yscale, fabs(y[o]));
        }
    }
    ck_assert(exact || yscale > 0.0);

    for (int b = 0; b < B; b++) {
        ad_state_reset(st);
        for (int t = 0; t < T; t++) {
            const float *ysq = ys + (size_t)O * (b + (size_t)B * t);
            ad_net_step(net, st, x + (size_t)D * (b + (size_t)B * t), y);
            for (int o = 0; o < O; o++) {
                if (exact) {
                    ck_assert_msg(memcmp(&y[o], &ysq[o], sizeof(float)) == 0,
                                  "%s %d layers D=%d B=%d H=%d: window %d step %d output %d: "
                                  "step %.9g, sequence %.9g",
                                  ad_cell_name(kind), layers, D, B, H, b, t, o, (double)y[o],
                                  (double)ysq[o]);
                } else {
                    ck_assert_msg(fabs((double)y[o] - ysq[o]) <= STREAM_RTOL * yscale,
                                  "%s %d layers D=%d B=%d H=%d: window %d step %d output %d: "
                                  "step %.9g, sequence %.9g (run scale %.3g)",
                                  ad_cell_name(kind), layers, D, B, H, b, t, o, (double)y[o],
                                  (double)ysq[o], yscale);
                }
            }
        }
        ad_seq_final_state(ws, b, fin);
        size_t n = (size_t)layers * H;
        float hscale = 0.0f, cscale = 0.0f;
        for (size_t i = 0; i < n; i++) {
            hscale = fmaxf(hscale, fabsf(st->h[i]));
            cscale = st->c ? fmaxf(cscale, fabsf(st->c[i])) : 0.0f;
        }
        for (size_t i = 0; i < n; i++) {
            if (exact) {
                ck_assert_msg(
                    memcmp(&fin->h[i], &st->h[i], sizeof(float)) == 0,
                    "%s %d layers D=%d B=%d: final h[%zu] of window %d: %.9g vs stepped %.9g",
                    ad_cell_name(kind), layers, D, B, i, b, (double)fin->h[i], (double)st->h[i]);
                if (st->c)
                    ck_assert_msg(memcmp(&fin->c[i], &st->c[i], sizeof(float)) == 0,
                                  "%s %d layers D=%d B=%d: final c[%zu] of window %d: %.9g vs "
                                  "stepped %.9g",
                                  ad_cell_name(kind), layers, D, B, i, b, (double)fin->c[i],
                                  (double)st->c[i]);
            } else {
                ck_assert_float_eq_tol(fin->h[i], st->h[i], STREAM_RTOL * hscale);
                if (st->c)
                    ck_assert_float_eq_tol(fin->c[i], st->c[i], STREAM_RTOL * cscale);
            }
        }
        /* the final state continues the stream exactly like the stepped one */
        float y1[AD_MAX_OUTPUT], y2[AD_MAX_OUTPUT];
        ad_net_step(net, st, x, y1);
        ad_net_step(net, fin, x, y2);
        if (exact)
            ck_assert_mem_eq(y1, y2, sizeof(float) * O);
    }
    free(x);
    free(ys);
    ad_state_free(st);
    ad_state_free(fin);
    ad_seq_free(ws);
    ad_net_free(net);
}

/* loop index: kind i / AD_MAX_LAYERS, layers 1 + i % AD_MAX_LAYERS */
START_TEST(test_stream_equals_seq_reference_gemm)
{
    ad_blas_set_reference(1);
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++)
        stream_vs_seq((ad_cell_kind)(_i / AD_MAX_LAYERS), 1 + _i % AD_MAX_LAYERS, variants[v].D,
                      variants[v].B, variants[v].H, variants[v].bigger, variants[v].gain, 1);
}
END_TEST

START_TEST(test_stream_near_seq_openblas)
{
    ad_blas_set_reference(0);
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++)
        stream_vs_seq((ad_cell_kind)(_i / AD_MAX_LAYERS), 1 + _i % AD_MAX_LAYERS, variants[v].D,
                      variants[v].B, variants[v].H, variants[v].bigger, variants[v].gain, 0);
}
END_TEST

/* The largest shape net.h allows: step and sequence still agree bit for bit (and the
 * sanitizer build sees every buffer at its limit). */
START_TEST(test_largest_shape)
{
    ad_blas_set_reference(1);
    ad_net_config cfg =
        mkcfg((ad_cell_kind)_i, AD_MAX_LAYERS, AD_MAX_INPUT, AD_MAX_HIDDEN, AD_MAX_OUTPUT);
    ad_net *net = mknet(&cfg, 5);
    ad_state *st = ad_state_create(net);
    ad_seq *ws = NULL;
    char err[256] = "";
    enum { T = 2, B = 2 };
    float x[AD_MAX_INPUT * B * T], y[AD_MAX_OUTPUT];
    ad_rng r;

    ck_assert_ptr_nonnull(st);
    ck_assert_msg(ad_seq_create(net, T, B, &ws, err, sizeof(err)) == 0, "%s", err);
    ad_rng_seed(&r, 2);
    fill_normal(&r, x, sizeof(x) / sizeof(x[0]));
    const float *ys = ad_seq_forward(net, ws, x, T, B);
    for (int b = 0; b < B; b++) {
        ad_state_reset(st);
        for (int t = 0; t < T; t++) {
            ad_net_step(net, st, x + AD_MAX_INPUT * (b + B * t), y);
            ck_assert_mem_eq(y, ys + AD_MAX_OUTPUT * (b + B * t), sizeof(y));
        }
    }
    ad_seq_free(ws);
    ad_state_free(st);
    ad_net_free(net);
}
END_TEST

/* A second forward on the same workspace does not depend on the first. */
START_TEST(test_seq_forward_repeatable)
{
    ad_cell_kind kind = (ad_cell_kind)_i;
    ad_net_config cfg = mkcfg(kind, 2, 2, 5, 1);
    ad_net *net = mknet(&cfg, 21);
    ad_seq *ws = NULL;
    char err[256] = "";
    float x1[2 * 3 * 10], x2[2 * 3 * 10], y1[30];
    ad_rng r;

    ad_blas_set_reference(1);
    ck_assert_int_eq(ad_seq_create(net, 10, 3, &ws, err, sizeof(err)), 0);
    ad_rng_seed(&r, 1);
    fill_normal(&r, x1, 60);
    fill_normal(&r, x2, 60);
    memcpy(y1, ad_seq_forward(net, ws, x1, 10, 3), sizeof(y1));
    ad_seq_forward(net, ws, x2, 10, 3);
    ck_assert_mem_eq(ad_seq_forward(net, ws, x1, 10, 3), y1, sizeof(y1));
    ad_seq_free(ws);
    ad_net_free(net);
}
END_TEST

START_TEST(test_seq_create_refuses)
{
    ad_net_config cfg = mkcfg(AD_CELL_LSTM, 1, 1, 4, 1);
    ad_net *net = mknet(&cfg, 1);
    ad_seq *ws = NULL;
    char err[256] = "";

    ck_assert_int_eq(ad_seq_create(net, 0, 1, &ws, err, sizeof(err)), -AD_EINVAL);
    ck_assert(err[0] != '\0');
    ck_assert_int_eq(ad_seq_create(net, 1, 0, &ws, err, sizeof(err)), -AD_EINVAL);
    ck_assert_int_eq(ad_seq_create(net, 4, 2, &ws, err, sizeof(err)), 0);
    ck_assert_uint_gt(ad_seq_bytes(ws), 0);
    ad_seq_free(ws);
    ad_net_free(net);
}
END_TEST

/* ---- clone and copy ---- */

/* Steps both networks over the same 30 inputs from fresh states; outputs must match bits. */
static void same_outputs(const ad_net *a, const ad_net *b)
{
    ad_state *sa = ad_state_create(a), *sb = ad_state_create(b);
    float x[AD_MAX_INPUT], ya[AD_MAX_OUTPUT], yb[AD_MAX_OUTPUT];
    ad_rng r;

    ck_assert(sa && sb);
    ad_rng_seed(&r, 33);
    for (int t = 0; t < 30; t++) {
        fill_normal(&r, x, (size_t)a->cfg.input);
        ad_net_step(a, sa, x, ya);
        ad_net_step(b, sb, x, yb);
        ck_assert_mem_eq(ya, yb, sizeof(float) * a->cfg.output);
    }
    ad_state_free(sa);
    ad_state_free(sb);
}

START_TEST(test_clone)
{
    ad_cell_kind kind = (ad_cell_kind)_i;
    ad_net_config cfg = mkcfg(kind, 2, 3, 6, 2);
    ad_net *src = mknet(&cfg, 8), *cl = ad_net_clone(src);

    ck_assert_ptr_nonnull(cl);
    ck_assert_mem_eq(&cl->cfg, &src->cfg, sizeof(cfg));
    ck_assert_uint_eq(cl->nparams, src->nparams);
    ck_assert_ptr_ne(cl->params, src->params);
    ck_assert_mem_eq(cl->params, src->params, src->nparams * sizeof(float));
    /* the clone's views point into its own buffer */
    assert_own_views(cl);
    same_outputs(src, cl);
    /* a deep copy: changing the source leaves the clone alone */
    float keep = cl->params[0];
    src->params[0] += 1.0f;
    ck_assert_float_eq(cl->params[0], keep);
    ad_net_free(src);
    ad_net_free(cl);
}
END_TEST

START_TEST(test_copy_params)
{
    ad_cell_kind kind = (ad_cell_kind)_i;
    ad_net_config cfg = mkcfg(kind, 2, 3, 6, 2);
    ad_net *src = mknet(&cfg, 8), *dst = mknet(&cfg, 9);

    ck_assert_int_eq(ad_net_copy_params(dst, src), 0);
    ck_assert_mem_eq(dst->params, src->params, src->nparams * sizeof(float));
    same_outputs(src, dst);

    /* every other shape is refused and leaves dst as it was */
    ad_net_config others[6];
    for (int i = 0; i < 6; i++)
        others[i] = cfg;
    others[0].kind = (ad_cell_kind)((kind + 1) % AD_CELL_NKINDS);
    others[1].layers = 1;
    others[2].input = 2;
    others[3].hidden = 5;
    others[4].output = 1;
    others[5].kind = kind == AD_CELL_LSTM ? AD_CELL_PEEPHOLE : AD_CELL_LSTM;
    for (int i = 0; i < 6; i++) {
        ad_net *other = mknet(&others[i], 10);
        ad_net *keep = ad_net_clone(other);
        ck_assert_ptr_nonnull(keep);
        ck_assert_msg(ad_net_copy_params(other, src) == -AD_EINVAL,
                      "copy %s into shape %d accepted", ad_cell_name(kind), i);
        ck_assert_mem_eq(other->params, keep->params, other->nparams * sizeof(float));
        ck_assert_int_eq(ad_net_copy_params(src, other), -AD_EINVAL);
        ad_net_free(other);
        ad_net_free(keep);
    }
    ad_net_free(src);
    ad_net_free(dst);
}
END_TEST

/* ---- batched steps ---- */

/*
 * ad_net_step_batch against n separate ad_net_step calls. Tolerance: the batch adds each
 * pre-activation's D + H + 1 terms in OpenBLAS's order (with fused multiply-adds) and
 * applies cell.c's activations where the step uses kern.h's fused kernel: both are
 * within a few ulps (~1e-7 relative) of the exact sum, and 8 steps of recurrence with
 * doubled weights carry that further: measured worst 1.4e-6 of max(1, |value|) over all
 * the cases below (float, fp16 and int8 alike: both paths read the same widened weights;
 * int8's step applies each row's scale to the row's sum, the batch to each weight, which
 * differs by float rounding too).
 * BATCH_TOL = 1e-5 keeps a sevenfold margin while a wrong gate, a stream's state read
 * from another stream, or a missed scatter (differences of 1e-2 and more) fail.
 */
#define BATCH_TOL   1e-5
#define BATCH_STEPS 8

static const int batch_sizes[] = {1, 3, 17, 64};

static void close_or_equal(const float *a, const float *b, size_t n, int exact, const char *what,
                           const char *kind, int layers, int batch, int mode, int step)
{
    for (size_t i = 0; i < n; i++) {
        if (exact)
            ck_assert_msg(memcmp(&a[i], &b[i], sizeof(float)) == 0,
                          "%s %s L=%d n=%d step %d [%zu]: batch %.9g != step %.9g (bits)", what,
                          kind, layers, batch, step, i, a[i], b[i]);
        else
            ck_assert_msg(fabs((double)a[i] - b[i]) <= BATCH_TOL * fmax(1.0, fabs((double)b[i])),
                          "%s %s L=%d n=%d storage %d step %d [%zu]: batch %.9g, step %.9g",
                          what, kind, layers, batch, mode, step, i, a[i], b[i]);
    }
}

/* Runs BATCH_STEPS steps of n streams both ways from the same random states. */
static void batch_vs_steps(ad_cell_kind kind, int layers, int H, int O, int n, int mode,
                           int gemm_min, int exact)
{
    const int D = 3;
    ad_net_config cfg = mkcfg(kind, layers, D, H, O);
    ad_net *net = mknet(&cfg, 40 + (uint64_t)n);
    ad_state **sa = calloc((size_t)n, sizeof(*sa)), **sb = calloc((size_t)n, sizeof(*sb));
    float *x = malloc(sizeof(float) * (size_t)n * D);
    float *ya = malloc(sizeof(float) * (size_t)n * O), *yb = malloc(sizeof(float) * (size_t)n * O);
    ad_net_batch ws = {0};
    const size_t sn = (size_t)layers * H;
    ad_rng r;

    ck_assert(sa && sb && x && ya && yb);
    /* weights a little larger than the initial ones: the gates leave their linear range */
    for (size_t i = 0; i < net->nparams; i++)
        net->params[i] *= 2.0f;
    ad_net_refresh(net);
    ck_assert_int_eq(ad_net_set_storage(net, mode), 0);
    ws.gemm_min = gemm_min;
    ad_rng_seed(&r, 77 + (uint64_t)n);
    for (int i = 0; i < n; i++) {
        sa[i] = ad_state_create(net);
        sb[i] = ad_state_create(net);
        ck_assert(sa[i] && sb[i]);
        for (size_t k = 0; k < sn; k++) {
            sa[i]->h[k] = sb[i]->h[k] = 0.5f * ad_rng_normal(&r);
            if (sa[i]->c)
                sa[i]->c[k] = sb[i]->c[k] = ad_rng_normal(&r);
        }
    }
    for (int t = 0; t < BATCH_STEPS; t++) {
        fill_normal(&r, x, (size_t)n * D);
        for (int i = 0; i < n; i++)
            ad_net_step(net, sa[i], x + (size_t)i * D, ya + (size_t)i * O);
        memset(yb, 0xff, sizeof(float) * (size_t)n * O); /* NaNs: every output is written */
        ad_net_step_batch(net, sb, x, yb, n, &ws);
        close_or_equal(yb, ya, (size_t)n * O, exact, "y", ad_cell_name(kind), layers, n, mode, t);
        for (int i = 0; i < n; i++) {
            close_or_equal(sb[i]->h, sa[i]->h, sn, exact, "h", ad_cell_name(kind), layers, n, mode,
                           t);
            if (sa[i]->c)
                close_or_equal(sb[i]->c, sa[i]->c, sn, exact, "c", ad_cell_name(kind), layers, n,
                               mode, t);
        }
    }
    for (int i = 0; i < n; i++) {
        ad_state_free(sa[i]);
        ad_state_free(sb[i]);
    }
    ad_net_batch_free(&ws);
    ck_assert_ptr_null(ws.buf);
    free(sa);
    free(sb);
    free(x);
    free(ya);
    free(yb);
    ad_net_free(net);
}

/* Every kind, 1 and 2 layers (_i = kind * 2 + layers - 1), every batch size, float, fp16
 * and int8 weights (the last two packed only, as a detector's), the products forced
 * (gemm_min 1) and the default choice. */
START_TEST(test_batch_equals_steps)
{
    ad_cell_kind kind = (ad_cell_kind)(_i / 2);
    int layers = _i % 2 + 1;

    for (size_t b = 0; b < sizeof(batch_sizes) / sizeof(batch_sizes[0]); b++)
        for (int m = 0; m < 3; m++) {
            static const int mode[3] = {AD_NET_FP32, AD_NET_FP16_ONLY, AD_NET_INT8_ONLY};
            batch_vs_steps(kind, layers, 12, 1, batch_sizes[b], mode[m], 1, 0);
            batch_vs_steps(kind, layers, 32, 2, batch_sizes[b], mode[m], 0, 0);
        }
}
END_TEST

/* With the reference product kernel and float weights the batch adds every term in the
 * step's order: bit for bit. */
START_TEST(test_batch_equals_steps_reference_gemm)
{
    ad_cell_kind kind = (ad_cell_kind)(_i / 2);
    int layers = _i % 2 + 1;

    ad_blas_set_reference(1);
    for (size_t b = 0; b < sizeof(batch_sizes) / sizeof(batch_sizes[0]); b++)
        batch_vs_steps(kind, layers, 12, 1, batch_sizes[b], 0, 1, 1);
    ad_blas_set_reference(0);
}
END_TEST

/* The scratch grows to the largest batch and then stays: no allocation in steady state. */
START_TEST(test_batch_scratch_grows_once)
{
    ad_net_config cfg = mkcfg(AD_CELL_LSTM, 2, 3, 32, 1);
    ad_net *net = mknet(&cfg, 5);
    ad_state *st[64];
    float x[64 * 3] = {0}, y[64];
    ad_net_batch ws = {0};

    for (int i = 0; i < 64; i++)
        ck_assert_ptr_nonnull(st[i] = ad_state_create(net));
    ad_net_step_batch(net, st, x, y, 64, &ws);
    ck_assert_ptr_nonnull(ws.buf);
    float *buf = ws.buf;
    size_t cap = ws.cap;
    for (int n = 64; n >= 1; n--) {
        ad_net_step_batch(net, st, x, y, n, &ws);
        ck_assert_ptr_eq(ws.buf, buf);
        ck_assert_uint_eq(ws.cap, cap);
    }
    /* n = 0 does nothing */
    ad_net_step_batch(net, st, x, y, 0, &ws);
    for (int i = 0; i < 64; i++)
        ad_state_free(st[i]);
    ad_net_batch_free(&ws);
    ad_net_free(net);
}
END_TEST

static Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc;

    tc = tcase_create("config");
    tcase_add_test(tc, test_config_refuses_bad_shapes);
    suite_add_tcase(s, tc);

    tc = tcase_create("layout");
    tcase_add_test(tc, test_kind_table);
    tcase_add_test(tc, test_param_count_and_views);
    suite_add_tcase(s, tc);

    tc = tcase_create("init");
    tcase_add_loop_test(tc, test_create_deterministic, 0, AD_CELL_NKINDS);
    tcase_add_loop_test(tc, test_init_values, 0, AD_CELL_NKINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_names_round_trip);
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_add_loop_test(tc, test_state_shape_and_reset, 0, AD_CELL_NKINDS);
    tcase_add_loop_test(tc, test_states_independent, 0, AD_CELL_NKINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream_vs_seq");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_stream_equals_seq_reference_gemm, 0,
                        AD_CELL_NKINDS * AD_MAX_LAYERS);
    tcase_add_loop_test(tc, test_stream_near_seq_openblas, 0, AD_CELL_NKINDS * AD_MAX_LAYERS);
    tcase_add_loop_test(tc, test_seq_forward_repeatable, 0, AD_CELL_NKINDS);
    tcase_add_test(tc, test_seq_create_refuses);
    tcase_add_loop_test(tc, test_largest_shape, 0, AD_CELL_NKINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("copy");
    tcase_add_loop_test(tc, test_clone, 0, AD_CELL_NKINDS);
    tcase_add_loop_test(tc, test_copy_params, 0, AD_CELL_NKINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("batch");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_batch_equals_steps, 0, AD_CELL_NKINDS * 2);
    tcase_add_loop_test(tc, test_batch_equals_steps_reference_gemm, 0, AD_CELL_NKINDS * 2);
    tcase_add_test(tc, test_batch_scratch_grows_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(net_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
