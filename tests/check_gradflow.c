/*
 * check_gradflow.c - the vanishing-gradient measurement (gradflow.h), what it rests on
 * (net.h's per-step hidden gradient, ad_seq_backward_dh; the initialisation options,
 * ad_net_init_with and ad_net_set_forget_bias) and the recall task (longdep.h).
 *
 *  - dh_per_step: ad_seq_backward_dh's dLoss/dh_t of every layer and step against
 *    central finite differences of an independent double-precision forward (refnet.h)
 *    into which a perturbation of each h_t is added right after the step computes it;
 *    every kind, 1 and 2 layers, both product modes, the loss an MSE over every step plus
 *    a random linear function of the final states (so dhT is exercised). The tolerance
 *    is check_grad's (refnet.h: 2e-5 of the tensor's scale, one tensor per layer).
 *  - properties (deterministic: the reference product kernel, fixed seeds, no timing),
 *    the chapter's argument as numbers at initialisation: with the same seed and weight
 *    scale an Elman network's ratio at k = 50 is at least 1000 times below each LSTM
 *    kind's (forget bias 1); with forget bias -5 the LSTM kinds' ratio collapses below
 *    the Elman network's and a million times below their own with bias 1; an Elman
 *    network with large recurrent weights has exploding gradients, and gradient-norm
 *    clipping bounds the update they make.
 *  - the options and the task: ad_net_init_with's defaults are ad_net_init bit for bit,
 *    its scale and forget bias do what they say, ad_net_set_forget_bias equals
 *    initialising with it; the task's sequences, its trivial MSE, a network learning
 *    it, bad arguments refused.
 *
 * AD_CHECK_VERBOSE=1 prints what was measured.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "gradflow.h"
#include "longdep.h"
#include "net.h"
#include "optim.h"
#include "refnet.h"
#include "rng.h"

/* ---- dLoss/dh_t against finite differences ---- */

enum { ND = 2, NH = 3, NO = 4, NT = 6, NB = 5 };
enum { NL = 2 };                       /* up to 2 layers */
enum { NDH = NH * NB * NT * NL };      /* dhs (H, B, T, layers) */
enum { NS = NH * NB * NL };            /* a state batch (H, B, layers) */
enum { NCASES = AD_CELL_NKINDS * 2 };  /* loop index i: kind i/2, layers 1 + i%2 */
#define PARAM_SCALE 0.8                /* as check_grad: gates neither linear nor saturated */
#define FINAL_W     0.1                /* final-state loss weights, as check_grad */

typedef struct dcase {
    ref_net lo;
    double *th;          /* parameters in double */
    double x[ND * NB * NT], tgt[NO * NB * NT];
    double wh[NS];       /* final-state loss weights (= dhT) */
    double pert[NDH];    /* added to h_t of (layer, window, step) after the step: 0 */
} dcase;

/* The reference loss: MSE over every output plus sum wh * h_final, with pert added to
 * each h_t as soon as it is computed (before the layer above and the next step read it). */
static double ref_loss(void *ctx)
{
    const dcase *dc = ctx;
    const ref_net *lo = &dc->lo;
    double loss = 0.0, fin = 0.0;

    for (int b = 0; b < NB; b++) {
        double h[NL * NH] = {0}, c[NL * NH] = {0}, amax = 0.0;
        for (int t = 0; t < NT; t++) {
            const double *in = dc->x + ND * (b + NB * t);
            for (int l = 0; l < lo->layers; l++) {
                const int din = l ? NH : ND;
                if (ref_cell(lo->kind, lo->G, din, NH, dc->th + lo->wx[l], dc->th + lo->wh[l],
                             dc->th + lo->b[l], lo->nex ? dc->th + lo->ex[l] : NULL, in, h + NH * l,
                             c + NH * l, &amax) != 0)
                    ck_abort_msg("reference: bad network");
                for (int j = 0; j < NH; j++)
                    h[NH * l + j] += dc->pert[j + NH * (b + NB * (t + NT * l))];
                in = h + NH * l;
            }
            for (int o = 0; o < NO; o++) {
                double y = dc->th[lo->by + o];
                for (int j = 0; j < NH; j++)
                    y += dc->th[lo->wy + o + (size_t)NO * j] * in[j];
                double d = y - dc->tgt[o + NO * (b + NB * t)];
                loss += d * d;
            }
        }
        for (int l = 0; l < lo->layers; l++)
            for (int j = 0; j < NH; j++)
                fin += dc->wh[j + NH * (b + NB * l)] * h[NH * l + j];
    }
    return loss / (NO * NB * NT) + fin;
}

static void check_dh(int i, int reference)
{
    const ad_cell_kind kind = (ad_cell_kind)(i / 2);
    const int layers = 1 + i % 2;
    ad_net_config cfg = {kind, layers, ND, NH, NO};
    float x[ND * NB * NT], tgt[NO * NB * NT], dy[NO * NB * NT], whf[NS], dhs[NDH];
    char err[256] = "", label[64];
    dcase dc;
    ad_net *net;
    ad_seq *ws;
    ad_rng r;

    memset(&dc, 0, sizeof(dc));
    ad_blas_set_reference(reference);
    ck_assert_msg(ad_net_create(&cfg, 3, &net, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(ad_seq_create(net, NT, NB, &ws, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ref_net_describe(kind, layers, ND, NH, NO, 0, &dc.lo), 0);
    ck_assert_uint_eq(dc.lo.n, net->nparams);
    ad_rng_seed(&r, 500 + (uint64_t)i);
    ref_fill_uniform(&r, net->params, net->nparams, PARAM_SCALE);
    ref_fill_normal(&r, x, ND * NB * NT);
    ref_fill_normal(&r, tgt, NO * NB * NT);
    ref_fill_uniform(&r, whf, NS, FINAL_W);
    dc.th = malloc(net->nparams * sizeof(*dc.th));
    ck_assert_ptr_nonnull(dc.th);
    for (size_t k = 0; k < net->nparams; k++)
        dc.th[k] = net->params[k];
    for (int k = 0; k < ND * NB * NT; k++)
        dc.x[k] = x[k];
    for (int k = 0; k < NO * NB * NT; k++)
        dc.tgt[k] = tgt[k];
    for (int k = 0; k < NS; k++)
        dc.wh[k] = whf[k];

    ad_mse(ad_seq_forward(net, ws, x, NT, NB), tgt, NO * NB * NT, dy);
    for (int k = 0; k < NDH; k++)
        dhs[k] = 12345.0f; /* must be overwritten */
    ad_seq_zero_grad(ws);
    ad_seq_backward_dh(net, ws, dy, NULL, whf, NULL, NULL, NULL, dhs);

    ref_tally t;
    ref_tally_init(&t, ad_cell_name(kind), layers, reference ? "reference" : "OpenBLAS");
    for (int l = 0; l < layers; l++) {
        const size_t off = (size_t)NH * NB * NT * l, n = (size_t)NH * NB * NT;
        double fd[NH * NB * NT];
        for (size_t k = 0; k < n; k++)
            fd[k] = ref_fd(ref_loss, &dc, dc.pert, off + k);
        snprintf(label, sizeof(label), "dh layer %d", l);
        ref_tally_add(&t, label, dhs + off, fd, n);
    }
    ref_tally_report(&t);
    ck_assert_msg(t.nbad == 0, "%s: %d layers wrong; first: %s", t.label, t.nbad, t.first);
    free(dc.th);
    ad_seq_free(ws);
    ad_net_free(net);
    ad_blas_set_reference(0);
}

START_TEST(test_dh_reference_gemm)
{
    check_dh(_i, 1);
}
END_TEST

START_TEST(test_dh_openblas)
{
    check_dh(_i, 0);
}
END_TEST

/* Recording the per-step gradient changes nothing else: parameter gradients, dx and dh0
 * are those of ad_seq_backward_init, bit for bit. */
START_TEST(test_dh_changes_nothing)
{
    ad_net_config cfg = {(ad_cell_kind)(_i / 2), 1 + _i % 2, ND, NH, NO};
    float x[ND * NB * NT], tgt[NO * NB * NT], dy[NO * NB * NT], dhs[NDH];
    float dx0[ND * NB * NT], dx1[ND * NB * NT], h00[NS], h01[NS];
    float *g0;
    char err[256];
    ad_net *net;
    ad_seq *ws;
    ad_rng r;

    ad_blas_set_reference(1);
    ck_assert(ad_net_create(&cfg, 9, &net, err, sizeof(err)) == 0);
    ck_assert(ad_seq_create(net, NT, NB, &ws, err, sizeof(err)) == 0);
    ad_rng_seed(&r, 4);
    ref_fill_normal(&r, x, ND * NB * NT);
    ref_fill_normal(&r, tgt, NO * NB * NT);
    ad_mse(ad_seq_forward(net, ws, x, NT, NB), tgt, NO * NB * NT, dy);
    g0 = malloc(net->nparams * sizeof(*g0));
    ck_assert_ptr_nonnull(g0);
    ad_seq_zero_grad(ws);
    ad_seq_backward_init(net, ws, dy, dx0, NULL, NULL, h00, NULL);
    memcpy(g0, ad_seq_grad(ws), net->nparams * sizeof(*g0));
    ad_seq_zero_grad(ws);
    ad_seq_backward_dh(net, ws, dy, dx1, NULL, NULL, h01, NULL, dhs);
    ck_assert_int_eq(memcmp(g0, ad_seq_grad(ws), net->nparams * sizeof(*g0)), 0);
    ck_assert_int_eq(memcmp(dx0, dx1, sizeof(dx0)), 0);
    ck_assert_int_eq(memcmp(h00, h01, (size_t)NH * NB * cfg.layers * sizeof(float)), 0);
    free(g0);
    ad_seq_free(ws);
    ad_net_free(net);
    ad_blas_set_reference(0);
}
END_TEST

/* ---- the properties ---- */

enum { PH = 16, PB = 16, PN = 101 }; /* H, sequences, steps (k = 0 .. 100) */
#define K 50                         /* the distance the properties look at */

/* ratio (PN) of a fresh network of kind with seed, weight scale 1 and forget bias fb, on
 * the recall task's inputs drawn from seed + 100 (the reference product kernel). */
static void measure(ad_cell_kind kind, uint64_t seed, float fb, double *ratio)
{
    ad_net_config cfg = {kind, 1, AD_LONGDEP_INPUT, PH, 1};
    ad_net_init_opts io = {.scale = 1.0f, .forget_bias = fb};
    static float x[AD_LONGDEP_INPUT * PB * PN];
    float tgt[PB];
    char err[256] = "";
    ad_net *net;
    ad_rng r;

    ad_blas_set_reference(1);
    ck_assert_msg(ad_net_create(&cfg, seed, &net, err, sizeof(err)) == 0, "%s", err);
    ad_net_init_with(net, seed, &io);
    ad_rng_seed(&r, seed + 100);
    ad_longdep_batch(&r, PN - 1, PB, x, tgt);
    ck_assert_msg(ad_gradflow_ratio(net, x, PN, PB, ratio, err, sizeof(err)) == 0, "%s", err);
    ck_assert(ratio[0] == 1.0);
    ad_net_free(net);
    ad_blas_set_reference(0);
}

static const ad_cell_kind lstm_kinds[] = {AD_CELL_LSTM, AD_CELL_PEEPHOLE, AD_CELL_CIFG};

/*
 * Same seed, same weight scale: the Elman network's gradient ratio at k = 50 is at least
 * 1000 times below every LSTM kind's with forget bias 1 (measured, seeds 1..3, H=16:
 * Elman 9e-15..3e-11; LSTM 3e-6..4e-4, peephole 4e-6..2e-4, CIFG 5e-7..5e-6). _i: seed.
 */
START_TEST(test_elman_vanishes_before_lstm)
{
    const uint64_t seed = 1 + (uint64_t)_i;
    double re[PN], rl[PN];

    measure(AD_CELL_ELMAN, seed, 1.0f, re);
    for (int q = 0; q < 3; q++) {
        measure(lstm_kinds[q], seed, 1.0f, rl);
        if (ref_verbose())
            fprintf(stderr, "seed %d: ratio at k=%d: elman %.3g, %s %.3g\n", (int)seed, K, re[K],
                    ad_cell_name(lstm_kinds[q]), rl[K]);
        ck_assert_msg(re[K] * 1e3 < rl[K], "seed %d: elman's ratio at k=%d %.3g, %s's %.3g",
                      (int)seed, K, re[K], ad_cell_name(lstm_kinds[q]), rl[K]);
    }
}
END_TEST

/*
 * With the forget gate nearly shut (bias -5: f about 0.007) the cell state forgets at
 * once and the LSTM kinds' gradient vanishes too: at k = 50 below the Elman network's
 * and a million times below their own with bias 1 (measured, seeds 1..3: LSTM and
 * peephole 1e-39..4e-44, CIFG 1e-23..9e-31).
 */
START_TEST(test_negative_forget_bias_collapses)
{
    const uint64_t seed = 1 + (uint64_t)_i;
    double re[PN], r1[PN], rneg[PN];

    measure(AD_CELL_ELMAN, seed, 1.0f, re);
    for (int q = 0; q < 3; q++) {
        measure(lstm_kinds[q], seed, 1.0f, r1);
        measure(lstm_kinds[q], seed, -5.0f, rneg);
        if (ref_verbose())
            fprintf(stderr, "seed %d: %s ratio at k=%d: bias 1 %.3g, bias -5 %.3g\n", (int)seed,
                    ad_cell_name(lstm_kinds[q]), K, r1[K], rneg[K]);
        ck_assert_msg(rneg[K] < re[K] && rneg[K] * 1e6 < r1[K],
                      "seed %d: %s's ratio at k=%d with bias -5 %.3g (bias 1 %.3g, elman %.3g)",
                      (int)seed, ad_cell_name(lstm_kinds[q]), K, rneg[K], r1[K], re[K]);
    }
}
END_TEST

/*
 * Exploding gradients, and clipping. An Elman network whose recurrent weights are 4 times
 * the initial ones (spectral radius about 2.3) on the recall task (L = 50, the loss the
 * task's): going back from the loss the gradient grows (ratio at k = 50 above 1000;
 * measured 7.6e4) and the parameter gradient's norm is over 100 times the clip norm 1
 * (measured 1.9e4). ad_clip_grad_norm brings it to the clip norm, so an SGD step moves
 * the parameters by lr * 1 at most, where the unclipped step would move them over 100
 * times as far.
 */
START_TEST(test_clip_bounds_exploding_update)
{
    enum { L = 50, T = L + 1 };
    ad_net_config cfg = {AD_CELL_ELMAN, 1, AD_LONGDEP_INPUT, PH, 1};
    static float x[AD_LONGDEP_INPUT * PB * T], dy[PB * T];
    const float clip = 1.0f, lr = 0.1f;
    float tgt[PB];
    double ratio[T], step = 0.0;
    char err[256] = "";
    ad_net *net;
    ad_seq *ws;
    ad_optim *sgd;
    ad_rng r;

    ad_blas_set_reference(1);
    ck_assert(ad_net_create(&cfg, 1, &net, err, sizeof(err)) == 0);
    for (int k = 0; k < PH * PH; k++)
        net->p.layer[0].wh[k] *= 4.0f;
    ad_rng_seed(&r, 7);
    ad_longdep_batch(&r, L, PB, x, tgt);
    ck_assert(ad_gradflow_ratio(net, x, T, PB, ratio, err, sizeof(err)) == 0);
    ck_assert_msg(ratio[L] > 1e3, "ratio at k=%d only %.3g: not exploding", L, ratio[L]);

    ck_assert(ad_seq_create(net, T, PB, &ws, err, sizeof(err)) == 0);
    const float *y = ad_seq_forward(net, ws, x, T, PB);
    memset(dy, 0, sizeof(dy));
    for (int b = 0; b < PB; b++)
        dy[PB * L + b] = 2.0f * (y[PB * L + b] - tgt[b]) / PB;
    ad_seq_zero_grad(ws);
    ad_seq_backward(net, ws, dy, NULL);
    float *g = ad_seq_grad(ws);
    float norm = ad_clip_grad_norm(g, net->nparams, clip);
    double after = 0.0;
    for (size_t k = 0; k < net->nparams; k++)
        after += (double)g[k] * g[k];
    after = sqrt(after);
    if (ref_verbose())
        fprintf(stderr, "exploding elman: ratio at k=%d %.3g, gradient norm %.3g, clipped %.6g\n",
                L, ratio[L], (double)norm, after);
    ck_assert_msg(norm > 100.0f * clip, "gradient norm %.3g: not exploding", (double)norm);
    ck_assert_msg(after <= clip * (1.0 + 1e-5), "clipped norm %.9g above %g", after, (double)clip);

    float *before = malloc(net->nparams * sizeof(*before));
    sgd = ad_optim_create(AD_OPTIM_SGD, net->nparams, lr);
    ck_assert(before && sgd);
    memcpy(before, net->params, net->nparams * sizeof(*before));
    ad_optim_step(sgd, net->params, g);
    for (size_t k = 0; k < net->nparams; k++)
        step += ((double)net->params[k] - before[k]) * ((double)net->params[k] - before[k]);
    step = sqrt(step);
    ck_assert_msg(step <= lr * clip * (1.0 + 1e-4), "update %.9g above lr * clip %g", step,
                  (double)(lr * clip));
    ck_assert_msg(lr * (double)norm > 100.0 * step, "unclipped update %.3g, clipped %.3g",
                  lr * (double)norm, step);
    free(before);
    ad_optim_free(sgd);
    ad_seq_free(ws);
    ad_net_free(net);
    ad_blas_set_reference(0);
}
END_TEST

/* ---- the initialisation options ---- */

/* The defaults are ad_net_init bit for bit; scale 2 doubles every weight exactly (a power
 * of two) and leaves the biases; the forget bias lands in the forget gate of every layer
 * and nowhere else. Every kind, 2 layers. */
START_TEST(test_init_options)
{
    ad_net_config cfg = {(ad_cell_kind)_i, 2, 3, 5, 2};
    ad_net_init_opts io;
    ad_net *a, *b;
    char err[256];

    ck_assert(ad_net_create(&cfg, 11, &a, err, sizeof(err)) == 0);
    ck_assert(ad_net_create(&cfg, 99, &b, err, sizeof(err)) == 0);
    ad_net_init_defaults(&io);
    ck_assert(io.scale == 1.0f && io.forget_bias == 1.0f);
    ad_net_init_with(b, 11, &io);
    ck_assert_int_eq(memcmp(a->params, b->params, a->nparams * sizeof(float)), 0);
    ad_net_init_with(b, 99, NULL);
    ad_net_init(a, 99);
    ck_assert_int_eq(memcmp(a->params, b->params, a->nparams * sizeof(float)), 0);

    io.scale = 2.0f;
    io.forget_bias = -2.5f;
    ad_net_init_with(b, 99, &io);
    const int H = 5, G = ad_cell_gates(cfg.kind), fg = ad_cell_forget_gate(cfg.kind);
    for (int l = 0; l < 2; l++) {
        const ad_layer_params *pa = &a->p.layer[l], *pb = &b->p.layer[l];
        const int din = l ? H : 3;
        for (int k = 0; k < G * H * din; k++)
            ck_assert(pb->wx[k] == 2.0f * pa->wx[k]);
        for (int k = 0; k < G * H * H; k++)
            ck_assert(pb->wh[k] == 2.0f * pa->wh[k]);
        for (int k = 0; k < G * H; k++)
            ck_assert(pb->b[k] == (fg >= 0 && k / H == fg ? -2.5f : pa->b[k]));
    }
    for (int k = 0; k < 2 * H; k++)
        ck_assert(b->p.wy[k] == 2.0f * a->p.wy[k]);

    /* set_forget_bias on a fresh network: the same as initialising with it */
    io.scale = 1.0f;
    ad_net_init_with(b, 99, &io);
    ad_net_set_forget_bias(a, -2.5f);
    ck_assert_int_eq(memcmp(a->params, b->params, a->nparams * sizeof(float)), 0);
    ad_net_free(a);
    ad_net_free(b);
}
END_TEST

/* A packed-only network takes the forget bias through its floats and packs it again. */
START_TEST(test_forget_bias_packed)
{
    ad_net_config cfg = {AD_CELL_LSTM, 1, 1, 8, 1};
    ad_net *net;
    float b[4 * 8];
    char err[256];

    ck_assert(ad_net_create(&cfg, 5, &net, err, sizeof(err)) == 0);
    ck_assert_int_eq(ad_net_set_storage(net, AD_NET_FP16_ONLY), 0);
    ad_net_set_forget_bias(net, 3.0f);
    ck_assert_int_eq(ad_net_storage(net), AD_NET_FP16_ONLY);
    ck_assert_ptr_null(net->params);
    ad_net_get_params(net, (size_t)4 * 8 * (1 + 8), 4 * 8, b); /* after Wx (32,1), Wh (32,8) */
    for (int k = 0; k < 4 * 8; k++)
        ck_assert(b[k] == (k / 8 == 1 ? 3.0f : 0.0f));
    ad_net_free(net);
}
END_TEST

/* ---- the task ---- */

START_TEST(test_task_sequences)
{
    enum { L = 7, B = 9, T = L + 1 };
    float x[2 * B * T], tgt[B];
    double s2 = 0.0;
    ad_rng r;

    ad_rng_seed(&r, 3);
    ad_longdep_batch(&r, L, B, x, tgt);
    for (int b = 0; b < B; b++) {
        ck_assert(tgt[b] == x[2 * b]); /* the value at step 0 */
        for (int t = 0; t < T; t++) {
            const float *xt = x + 2 * (b + B * t);
            ck_assert(xt[0] >= -1.0f && xt[0] < 1.0f);
            ck_assert(xt[1] == (t == 0 ? 1.0f : 0.0f));
        }
    }
    /* many sequences: the targets' mean square is 1/3 */
    static float xb[2 * 4096 * 3], tb[4096];
    ad_longdep_batch(&r, 2, 4096, xb, tb);
    for (int b = 0; b < 4096; b++)
        s2 += (double)tb[b] * tb[b];
    ck_assert_double_eq_tol(s2 / 4096, 1.0 / 3.0, 0.02);
}
END_TEST

/* A network that outputs 0 scores exactly the trivial MSE; an LSTM trained 300 steps on
 * L = 5 recalls the value (measured MSE / trivial 1e-3; asserted below 0.05). */
START_TEST(test_task_learns)
{
    ad_net_config cfg = {AD_CELL_LSTM, 1, 2, 16, 1};
    ad_longdep_opts o;
    ad_longdep_result res;
    double mse, triv;
    char err[256] = "";
    ad_net *net;

    ck_assert(ad_net_create(&cfg, 1, &net, err, sizeof(err)) == 0);
    for (int k = 0; k < 16; k++)
        net->p.wy[k] = 0.0f;
    ck_assert(ad_longdep_eval(net, 5, 200, 8, &mse, &triv, err, sizeof(err)) == 0);
    ck_assert(mse == triv && triv > 0.25 && triv < 0.42);
    ad_net_init(net, 1);
    ad_longdep_defaults(&o);
    o.lag = 5;
    o.steps = 300;
    ck_assert_msg(ad_longdep_train(net, &o, &res, err, sizeof(err)) == 0, "%s", err);
    if (ref_verbose())
        fprintf(stderr, "lstm L=5: mse %.4g trivial %.4g\n", res.mse, res.trivial);
    ck_assert_msg(res.mse < 0.05 * res.trivial, "mse %.4g, trivial %.4g", res.mse, res.trivial);
    ad_net_free(net);
}
END_TEST

START_TEST(test_bad_arguments)
{
    ad_net_config cfg = {AD_CELL_GRU, 1, 1, 4, 1}, ok = {AD_CELL_GRU, 1, 2, 4, 1};
    ad_longdep_opts o;
    ad_longdep_result res;
    double mse, triv, ratio[4];
    float x[2 * 4];
    char err[256] = "";
    ad_net *net, *net2;

    ad_longdep_defaults(&o);
    ck_assert(ad_net_create(&cfg, 1, &net, err, sizeof(err)) == 0);
    ck_assert_int_eq(ad_longdep_train(net, &o, &res, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "2 inputs"));
    ck_assert(ad_net_create(&ok, 1, &net2, err, sizeof(err)) == 0);
    o.lag = 0;
    ck_assert_int_eq(ad_longdep_train(net2, &o, &res, err, sizeof(err)), -AD_EINVAL);
    ck_assert_int_eq(ad_longdep_eval(net2, 3, 0, 1, &mse, &triv, err, sizeof(err)), -AD_EINVAL);
    ad_longdep_defaults(&o);
    o.lr = 0.0f;
    ck_assert_int_eq(ad_longdep_train(net2, &o, &res, err, sizeof(err)), -AD_EINVAL);
    memset(x, 0, sizeof(x));
    ck_assert_int_eq(ad_gradflow_ratio(net2, x, 0, 1, ratio, err, sizeof(err)), -AD_EINVAL);
    /* a head of zeros: no gradient at the last step */
    for (int k = 0; k < 4; k++)
        net2->p.wy[k] = 0.0f;
    ck_assert_int_eq(ad_gradflow_ratio(net2, x, 4, 1, ratio, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "no sequence"));
    ck_assert_int_eq(ad_net_set_storage(net2, AD_NET_INT8_ONLY), 0);
    ck_assert_int_eq(ad_gradflow_ratio(net2, x, 4, 1, ratio, err, sizeof(err)), -AD_EINVAL);
    ad_net_free(net);
    ad_net_free(net2);
}
END_TEST

static Suite *gradflow_suite(void)
{
    Suite *s = suite_create("gradflow");
    TCase *tc;

    tc = tcase_create("dh_per_step");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_dh_reference_gemm, 0, NCASES);
    tcase_add_loop_test(tc, test_dh_openblas, 0, NCASES);
    tcase_add_loop_test(tc, test_dh_changes_nothing, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("properties");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_elman_vanishes_before_lstm, 0, 3);
    tcase_add_loop_test(tc, test_negative_forget_bias_collapses, 0, 3);
    tcase_add_test(tc, test_clip_bounds_exploding_update);
    suite_add_tcase(s, tc);

    tc = tcase_create("init_options");
    tcase_add_loop_test(tc, test_init_options, 0, AD_CELL_NKINDS);
    tcase_add_test(tc, test_forget_bias_packed);
    suite_add_tcase(s, tc);

    tc = tcase_create("task");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_task_sequences);
    tcase_add_test(tc, test_task_learns);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(gradflow_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
