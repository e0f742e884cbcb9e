/*
 * check_quant.c - quant.c (per-row int8 quantisation) and int8 networks (net.h's
 * AD_NET_INT8 and AD_NET_INT8_ONLY): known values, the error bound, quantise(dequantise)
 * bit for bit on rows of every magnitude, non-finite weights, pieces of the dequantised
 * vector; int8 networks' steps (packed only and with masters, single and batched,
 * reference mode) bit for bit against each other, their bytes, their life cycle (get,
 * clone, save, load, float32 and back, copy between storages, init), and trained
 * networks of every kind stepping in int8 against the same network in float. The fused
 * kernels on int8 weights against the plain reference: tests/check_kernels.c.
 * Measured figures go to stderr.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "net.h"
#include "optim.h"
#include "quant.h"
#include "rng.h"
#include "serial.h"
#include "train.h"

static ad_net *mknet(ad_cell_kind kind, int layers, int D, int H, int O, uint64_t seed)
{
    ad_net_config cfg = {.kind = kind, .layers = layers, .input = D, .hidden = H, .output = O};
    ad_net *net = NULL;
    char err[256] = "";
    ck_assert_msg(ad_net_create(&cfg, seed, &net, err, sizeof(err)) == 0, "%s", err);
    return net;
}

/* Quantises the (R, C) matrix w and dequantises it into back (R*C). */
static void round_trip(const float *w, size_t R, size_t C, int8_t *q, float *sc, float *back)
{
    ad_quant_rows(q, sc, w, R, C);
    ad_quant_get(back, q, sc, R, 0, R * C);
}

/* ---- quantisation ---- */

START_TEST(test_known_values)
{
    /* (3, 4) column-major: row 0 = 1, -0.5, 0.25, 0.5/127; row 1 = 0; row 2 = -3, 3, 1, 0 */
    const float w[12] = {1.0f,  0.0f, -3.0f, -0.5f,         0.0f, 3.0f,
                         0.25f, 0.0f, 1.0f,  0.5f / 127.0f, 0.0f, 0.0f};
    int8_t q[12];
    float sc[3], back[12];

    round_trip(w, 3, 4, q, sc, back);
    /* scale 1/127 to 17 bits, toward zero: at most 1/127, within 2^-16 of it */
    ck_assert(sc[0] <= 1.0f / 127.0f && sc[0] >= (1.0f / 127.0f) * (1.0f - 0x1p-16f));
    ck_assert_float_eq(sc[1], 0.0f);
    ck_assert(sc[2] <= 3.0f / 127.0f && sc[2] >= (3.0f / 127.0f) * (1.0f - 0x1p-16f));
    ck_assert_int_eq(q[0], 127); /* the row's largest */
    ck_assert_int_eq(q[3], -64); /* -63.5 (and a hair): ties away from zero */
    ck_assert_int_eq(q[6], 32);  /* 31.75 */
    ck_assert_int_eq(q[9], 1);   /* half a step: rounds away from zero */
    ck_assert_int_eq(q[1], 0);
    ck_assert_int_eq(q[4], 0);
    ck_assert_int_eq(q[2], -127);
    ck_assert_int_eq(q[5], 127);
    ck_assert_int_eq(q[8], 42); /* 127/3 = 42.33 */
    ck_assert_int_eq(q[11], 0);
    for (int i = 0; i < 12; i++)
        ck_assert_float_eq(back[i], (float)q[i] * sc[i % 3]);
}
END_TEST

/* Each weight within half a step of its row (plus the scale's 2^-16 relative rounding
 * over 127 steps), the row's largest kept to within that; on random rows of magnitudes
 * from 1e-30 to 1e30. */
START_TEST(test_error_bound)
{
    enum { R = 37, C = 29 };
    float w[R * C], back[R * C], sc[R];
    int8_t q[R * C];
    ad_rng r;

    ad_rng_seed(&r, 3);
    for (int e = -30; e <= 30; e += 3) {
        for (int i = 0; i < R * C; i++) /* rows of various spreads, one row of zeros */
            w[i] = i % R == 5 ? 0.0f : (float)(ad_rng_normal(&r) * pow(10.0, e) * (1 + i % R % 4));
        round_trip(w, R, C, q, sc, back);
        for (int row = 0; row < R; row++) {
            double amax = 0.0;
            for (int c = 0; c < C; c++)
                amax = fmax(amax, fabs(w[row + c * R]));
            ck_assert_msg(sc[row] <= amax / 127.0 && sc[row] >= amax / 127.0 * (1.0 - 0x1p-16),
                          "1e%d row %d: scale %.9g for largest %.9g", e, row, (double)sc[row],
                          amax);
            for (int c = 0; c < C; c++) {
                const int i = row + c * R;
                const double d = fabs((double)back[i] - w[i]);
                ck_assert_msg(d <= 0.5 * sc[row] + amax * 0x1p-16,
                              "1e%d (%d, %d): %.9g -> %d * %.9g = %.9g", e, row, c, (double)w[i],
                              q[i], (double)sc[row], (double)back[i]);
            }
        }
    }
}
END_TEST

/* quantise(dequantise(q, s)) == (q, s) bit for bit, on rows of every magnitude from the
 * subnormals to FLT_MAX, and again after a second round. */
START_TEST(test_idempotent)
{
    enum { R = 16, C = 33 };
    float w[R * C], back[R * C], back2[R * C], sc[R], sc2[R];
    int8_t q[R * C], q2[R * C];
    ad_rng r;
    int rows = 0;

    ad_rng_seed(&r, 9);
    for (int e = -149; e <= 127; e++) {
        for (int i = 0; i < R * C; i++) { /* row magnitudes 2^e, a few spreads */
            const double v = ldexp(ad_rng_normal(&r) / (1 + i % R % 3), e);
            w[i] = (float)fmin(fmax(v, -FLT_MAX), FLT_MAX);
        }
        round_trip(w, R, C, q, sc, back);
        round_trip(back, R, C, q2, sc2, back2);
        ck_assert_msg(memcmp(sc, sc2, sizeof(sc)) == 0, "2^%d: scales moved", e);
        ck_assert_msg(memcmp(q, q2, sizeof(q)) == 0, "2^%d: bytes moved", e);
        ck_assert_msg(memcmp(back, back2, sizeof(back)) == 0, "2^%d: values moved", e);
        rows += R;
    }
    fprintf(stderr, "quant: %d rows quantised twice, identical\n", rows);
}
END_TEST

/* A row with an infinity or NaN dequantises to NaN everywhere (never to finite values
 * that would hide it); the other rows are untouched. */
START_TEST(test_non_finite)
{
    /* (2, 3) column-major: row 0 = 1, 2, -1; row 1 = inf, 0.5, NaN */
    const float w[6] = {1.0f, INFINITY, 2.0f, 0.5f, -1.0f, NAN};
    int8_t q[6];
    float sc[2], back[6];

    round_trip(w, 2, 3, q, sc, back);
    ck_assert(isfinite(sc[0]) && !isfinite(sc[1]));
    for (int c = 0; c < 3; c++) {
        ck_assert(isfinite(back[2 * c]));
        ck_assert(isnan(back[2 * c + 1]));
    }
}
END_TEST

/* Any range of the dequantised matrix equals the same range of the whole. */
START_TEST(test_get_pieces)
{
    enum { R = 12, C = 7 };
    float w[R * C], whole[R * C], sc[R];
    int8_t q[R * C];
    ad_rng r;

    ad_rng_seed(&r, 4);
    for (int i = 0; i < R * C; i++)
        w[i] = ad_rng_normal(&r);
    round_trip(w, R, C, q, sc, whole);
    for (size_t first = 0; first < R * C; first++)
        for (size_t n = 0; first + n <= R * C; n += 5) {
            float piece[R * C];
            ad_quant_get(piece, q, sc, R, first, n);
            ck_assert(n == 0 || memcmp(piece, whole + first, n * sizeof(float)) == 0);
        }
}
END_TEST

/* ---- int8 networks ---- */

/* test_int8_only_steps_identical is check_kernels.c's, beside the fp16 one. */

/*
 * Bytes (ad_net_bytes), LSTM H=32, D=1, O=1: the int8 block is per layer the 128 x 33
 * bytes of [Wx | Wh] with 16 bytes of slack (4,240, to 4,288 on 64-byte lines), the 128
 * row scales and 128 biases as floats (1,024), then the head's 33 floats (132, to 192):
 * 5,504 bytes, 31% of the 17,540 float bytes (the fp16 block: 9,216).
 */
START_TEST(test_int8_bytes)
{
    ad_net *a = mknet(AD_CELL_LSTM, 1, 1, 32, 1, 1);
    const size_t floats = a->nparams * sizeof(float), b32 = ad_net_bytes(a);

    ck_assert_uint_eq(b32, sizeof(*a) + floats);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8), 0);
    const size_t b8 = ad_net_bytes(a);
    ck_assert_uint_eq(b8, sizeof(*a) + floats + 5504);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8_ONLY), 0);
    const size_t b8o = ad_net_bytes(a);
    ck_assert_uint_eq(a->pack_bytes, 5504);
    ck_assert_uint_eq(b8o, sizeof(*a) + 5504);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16_ONLY), 0);
    const size_t b16o = ad_net_bytes(a);
    ck_assert_uint_eq(b16o, sizeof(*a) + 9216);
    fprintf(stderr,
            "LSTM H=32: fp32 %zu bytes, int8 with masters %zu, int8 only %zu, fp16 only %zu\n", b32,
            b8, b8o, b16o);
    ad_net_free(a);
}
END_TEST

/* The struct lines a step reads (what the detector prefetches): with a packed block, the
 * configuration, the block, the head and the layers' views lead the struct, so a 1-layer
 * network's step reads its first two lines; without one, the whole struct. */
START_TEST(test_step_bytes)
{
    static const int modes[2] = {AD_NET_INT8_ONLY, AD_NET_FP16_ONLY};
    for (int layers = 1; layers <= 2; layers++) {
        ad_net *a = mknet(AD_CELL_LSTM, layers, 5, 32, 1, 2);
        ck_assert_uint_eq(ad_net_step_bytes(a), sizeof(*a));
        for (int m = 0; m < 2; m++) {
            ck_assert_int_eq(ad_net_set_storage(a, modes[m]), 0);
            const size_t n = ad_net_step_bytes(a);
            ck_assert_uint_ge(n, offsetof(ad_net, pby) + sizeof(a->pby));
            ck_assert_uint_ge(n, offsetof(ad_net, pack) + sizeof(a->pack));
            ck_assert_uint_eq(n, offsetof(ad_net, pl) + (size_t)layers * sizeof(a->pl[0]));
            if (layers == 1)
                ck_assert_uint_le(n, 128);
        }
        ad_net_free(a);
    }
}
END_TEST

/* Every float parameter of a network, widened if it is packed only. */
static float *all_params(const ad_net *n)
{
    float *p = malloc(n->nparams * sizeof(*p));
    ck_assert_ptr_nonnull(p);
    ad_net_get_params(n, 0, n->nparams, p);
    return p;
}

/*
 * The int8-only life cycle: its floats (get, clone, float32) are the masters with each
 * layer's [Wx | Wh] quantised and dequantised and the rest exact; pieces of the vector
 * agree with the whole; packing again gives the same block; copy_params quantises into
 * it and widens out of it, also from and to fp16-only networks; init re-initialises it;
 * a saved int8-only network loads as its widened floats, and those packed again are the
 * same block.
 */
START_TEST(test_int8_only_life_cycle)
{
    ad_net *a = mknet(AD_CELL_PEEPHOLE, 2, 2, 9, 2, 5), *m = ad_net_clone(a), *c, *e;
    const size_t n = a->nparams;
    float *want = malloc(n * sizeof(*want)), *got;
    ad_params v;
    char err[256] = "";

    ck_assert(m && want);
    /* want: m's floats with [Wx | Wh] of each layer quantised and dequantised */
    memcpy(want, m->params, n * sizeof(*want));
    ad_net_views(&m->cfg, want, &v);
    for (int l = 0; l < 2; l++) {
        const size_t GH = (size_t)ad_cell_gates(m->cfg.kind) * 9, C = (l ? 9 : 2) + 9;
        int8_t *q = malloc(GH * C);
        float *sc = malloc(GH * sizeof(*sc));
        ck_assert(q && sc);
        round_trip(v.layer[l].wx, GH, C, q, sc, v.layer[l].wx);
        free(q);
        free(sc);
    }
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8_ONLY), 0);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8_ONLY), 0); /* again: nothing */
    got = all_params(a);
    ck_assert_mem_eq(got, want, n * sizeof(float));
    for (size_t off = 0; off < n; off += 7) { /* pieces straddling the runs */
        float piece[7] = {0};
        const size_t k = n - off < 7 ? n - off : 7;
        ad_net_get_params(a, off, 7, piece);
        ck_assert_mem_eq(piece, got + off, k * sizeof(float));
    }
    ck_assert(ad_net_params_finite(a));
    free(got);
    /* the clone: float, widened */
    c = ad_net_clone(a);
    ck_assert(c && c->params && !ad_net_storage(c));
    ck_assert_mem_eq(c->params, want, n * sizeof(float));
    /* save and load: the widened floats, the same blob as the clone's; packed again, the
     * same block */
    size_t la = ad_net_blob_size(a, NULL), lc = ad_net_blob_size(c, NULL), len = 0;
    ck_assert_uint_eq(la, lc);
    uint8_t *ba = malloc(la), *bc = malloc(lc);
    ck_assert_int_eq(ad_net_save(a, NULL, ba, la, &len, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_net_save(c, NULL, bc, lc, &len, err, sizeof(err)), 0);
    ck_assert_mem_eq(ba, bc, la);
    e = NULL;
    ck_assert_msg(ad_net_load(ba, la, &a->cfg, &e, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_mem_eq(e->params, want, n * sizeof(float));
    ck_assert_int_eq(ad_net_set_storage(e, AD_NET_INT8_ONLY), 0);
    ck_assert_mem_eq(e->pack, a->pack, a->pack_bytes);
    free(ba);
    free(bc);
    /* float32: the floats come back widened; int8 only again: the same block */
    const size_t hb = a->pack_bytes;
    void *block = malloc(hb);
    ck_assert_ptr_nonnull(block);
    memcpy(block, a->pack, hb);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP32), 0);
    ck_assert(!ad_net_storage(a) && a->pack == NULL && a->params);
    ck_assert_mem_eq(a->params, want, n * sizeof(float));
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8_ONLY), 0);
    ck_assert_mem_eq(a->pack, block, hb);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8), 0); /* masters back, block kept */
    ck_assert_mem_eq(a->params, want, n * sizeof(float));
    ck_assert_mem_eq(a->pack, block, hb);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8_ONLY), 0);
    ck_assert_mem_eq(a->pack, block, hb);
    /* install: m's floats quantised into a; a fresh network's (other) into a, out again */
    ad_net *o = mknet(AD_CELL_PEEPHOLE, 2, 2, 9, 2, 6);
    ck_assert_int_eq(ad_net_copy_params(a, o), 0);
    ck_assert_int_eq(ad_net_copy_params(a, m), 0);
    ck_assert_mem_eq(a->pack, block, hb);
    ck_assert_int_eq(ad_net_copy_params(o, a), 0); /* widened out */
    ck_assert_mem_eq(o->params, want, n * sizeof(float));
    ck_assert_int_eq(ad_net_set_storage(o, AD_NET_INT8_ONLY), 0);
    ck_assert_int_eq(ad_net_copy_params(o, a), 0); /* int8 only to int8 only */
    ck_assert_mem_eq(o->pack, block, hb);
    /* to and from fp16 only: through floats (the int8 values are not all halves: the
     * fp16 network gets them rounded, and quantised again they come back) */
    ad_net *h = mknet(AD_CELL_PEEPHOLE, 2, 2, 9, 2, 7);
    ck_assert_int_eq(ad_net_set_storage(h, AD_NET_FP16_ONLY), 0);
    ck_assert_int_eq(ad_net_copy_params(h, a), 0);
    ck_assert_int_eq(ad_net_copy_params(o, h), 0);
    got = all_params(o);
    for (size_t i = 0; i < n; i++) /* o: h's floats quantised; within a step of want */
        ck_assert_msg(fabsf(got[i] - want[i]) <= 0.02f * (1.0f + fabsf(want[i])),
                      "[%zu] %.9g vs %.9g", i, (double)got[i], (double)want[i]);
    free(got);
    /* an int8-only network switched to fp16 only and back to int8 only */
    ck_assert_int_eq(ad_net_set_storage(o, AD_NET_FP16_ONLY), 0);
    ck_assert_int_eq(ad_net_storage(o), AD_NET_FP16_ONLY);
    ck_assert_int_eq(ad_net_set_storage(o, AD_NET_INT8_ONLY), 0);
    ck_assert_int_eq(ad_net_storage(o), AD_NET_INT8_ONLY);
    ad_net_free(h);
    /* init: as a float network initialised and quantised */
    ad_net_init(a, 6);
    ad_net_free(c);
    c = mknet(AD_CELL_PEEPHOLE, 2, 2, 9, 2, 6);
    ck_assert_int_eq(ad_net_set_storage(c, AD_NET_INT8_ONLY), 0);
    ck_assert_mem_eq(a->pack, c->pack, hb);
    ck_assert_int_eq(ad_net_storage(a), AD_NET_INT8_ONLY);
    /* sequences refuse it */
    ad_seq *ws = NULL;
    float x[2 * 3] = {0};
    ck_assert_int_eq(ad_seq_create(a, 3, 1, &ws, err, sizeof(err)), 0);
    ck_assert_ptr_null(ad_seq_forward(a, ws, x, 3, 1));
    ad_seq_free(ws);
    free(block);
    free(want);
    ad_net_free(a);
    ad_net_free(c);
    ad_net_free(e);
    ad_net_free(m);
    ad_net_free(o);
}
END_TEST

/* AD_NET_INT8 keeps the masters: installing weights and re-initialising re-quantise the
 * block (a now steps b's weights in int8, as a fresh int8 copy of b does). */
START_TEST(test_int8_refresh)
{
    ad_net *a = mknet(AD_CELL_GRU, 2, 1, 24, 1, 1), *b = mknet(AD_CELL_GRU, 2, 1, 24, 1, 2);
    ad_net *c = ad_net_clone(b);
    ad_state *s1 = ad_state_create(a), *s2 = ad_state_create(a);
    float x = 0.5f, y1, y2;

    ck_assert(c && s1 && s2);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8), 0);
    ck_assert_int_eq(ad_net_copy_params(a, b), 0);
    ck_assert_int_eq(ad_net_set_storage(c, AD_NET_INT8_ONLY), 0);
    ck_assert_mem_eq(a->pack, c->pack, c->pack_bytes);
    ad_net_step(a, s1, &x, &y1);
    ad_net_step(c, s2, &x, &y2);
    ck_assert_mem_eq(&y1, &y2, sizeof(y1));
    ad_net_init(a, 2);
    ck_assert_mem_eq(a->pack, c->pack, c->pack_bytes);
    ad_state_free(s1);
    ad_state_free(s2);
    ad_net_free(a);
    ad_net_free(b);
    ad_net_free(c);
}
END_TEST

/*
 * int8 against float on trained networks: each kind, 1 and 2 layers, H=32, D=1, trained
 * (30 epochs of Adam, as a detector's training) on 1,500 samples of a noisy two-sine
 * series at the normalised scale the detector feeds it (inputs and outputs of order 1),
 * then stepped in float and in int8 (packed only) through the next 1,000 samples.
 * Quantisation moves each weight by at most 1/254 of its row's largest magnitude (about
 * 0.4%, against fp16's 0.05%); errors of a few dozen weights per pre-activation partly
 * cancel, and the recurrence neither blows them up nor lets them pile up (the gates
 * saturate, the state forgets). Measured worst |int8 - float| over the 1,000 predictions:
 * printed, with fp16's and both prediction MSEs. Asserted: at most INT8_TOL of the
 * predictions' scale (max |float prediction|), and int8's prediction MSE within 5% (plus
 * 1e-4) of float's: the prediction, which the detector scores, is not made worse.
 */
#define INT8_TOL 1e-2

START_TEST(test_int8_trained_close)
{
    const int N = 1500, T = 1000, H = 32;
    float *x = malloc((size_t)(N + T + 1) * sizeof(*x));
    ad_rng r;

    ck_assert_ptr_nonnull(x);
    ad_rng_seed(&r, 21);
    for (int t = 0; t <= N + T; t++)
        x[t] = (float)(sin(2 * M_PI * t / 48.0) + 0.5 * sin(2 * M_PI * t / 170.0) +
                       0.1 * ad_rng_normal(&r));
    for (int k = 0; k < AD_CELL_NKINDS; k++) {
        for (int layers = 1; layers <= 2; layers++) {
            ad_net *a = mknet((ad_cell_kind)k, layers, 1, H, 1, 3 + (uint64_t)k);
            ad_optim *opt = ad_optim_create(AD_OPTIM_ADAM, a->nparams, 0.01f);
            ad_seq *ws = NULL;
            ad_train_opts o;
            char err[256] = "";
            float loss;

            ad_train_defaults(&o);
            o.epochs = 30;
            ck_assert_ptr_nonnull(opt);
            ck_assert_int_eq(ad_seq_create(a, o.window, o.batch, &ws, err, sizeof(err)), 0);
            ck_assert_msg(ad_train(a, opt, ws, x, x + 1, (size_t)N, &o, &loss, err, sizeof(err)) ==
                              0,
                          "%s", err);
            ad_net *b = ad_net_clone(a), *c = ad_net_clone(a);
            ck_assert(b && c);
            ck_assert_int_eq(ad_net_set_storage(b, AD_NET_INT8_ONLY), 0);
            ck_assert_int_eq(ad_net_set_storage(c, AD_NET_FP16_ONLY), 0);
            ad_state *sa = ad_state_create(a), *sb = ad_state_create(b), *sc = ad_state_create(c);
            double scale = 0.0, worst8 = 0.0, worst16 = 0.0, mse32 = 0.0, mse8 = 0.0;
            for (int t = 0; t < N + T; t++) {
                float ya, yb, yc;
                ad_net_step(a, sa, x + t, &ya);
                ad_net_step(b, sb, x + t, &yb);
                ad_net_step(c, sc, x + t, &yc);
                if (t < N)
                    continue; /* the states settle on the training part */
                scale = fmax(scale, fabs(ya));
                worst8 = fmax(worst8, fabs((double)yb - ya));
                worst16 = fmax(worst16, fabs((double)yc - ya));
                mse32 += ((double)ya - x[t + 1]) * ((double)ya - x[t + 1]) / T;
                mse8 += ((double)yb - x[t + 1]) * ((double)yb - x[t + 1]) / T;
            }
            fprintf(stderr,
                    "%-9s %d layers H=32 trained (loss %.4f): int8 vs float %.3g of scale %.3g "
                    "(fp16 %.3g); prediction MSE float %.5f, int8 %.5f\n",
                    ad_cell_name((ad_cell_kind)k), layers, (double)loss, worst8 / scale, scale,
                    worst16 / scale, mse32, mse8);
            ck_assert_msg(worst8 <= INT8_TOL * scale, "%s %d layers: int8 off by %.3g of %.3g",
                          ad_cell_name((ad_cell_kind)k), layers, worst8, scale);
            ck_assert_msg(worst8 > 0.0, "int8 weights changed nothing: not used?");
            ck_assert_msg(mse8 <= 1.05 * mse32 + 1e-4, "%s %d layers: int8 MSE %.5f, float %.5f",
                          ad_cell_name((ad_cell_kind)k), layers, mse8, mse32);
            ad_state_free(sa);
            ad_state_free(sb);
            ad_state_free(sc);
            ad_seq_free(ws);
            ad_optim_free(opt);
            ad_net_free(a);
            ad_net_free(b);
            ad_net_free(c);
        }
    }
    free(x);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("quantisation");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_known_values);
    tcase_add_test(tc, test_error_bound);
    tcase_add_test(tc, test_idempotent);
    tcase_add_test(tc, test_non_finite);
    tcase_add_test(tc, test_get_pieces);
    suite_add_tcase(s, tc);
    tc = tcase_create("int8 networks");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_int8_bytes);
    tcase_add_test(tc, test_step_bytes);
    tcase_add_test(tc, test_int8_only_life_cycle);
    tcase_add_test(tc, test_int8_refresh);
    tcase_add_test(tc, test_int8_trained_close);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
