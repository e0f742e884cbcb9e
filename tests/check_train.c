/*
 * check_train.c - learning: every cell kind learns a noisy sine's next value to a held-out
 * MSE at most half of the last-value predictor's; and the training loop's contracts, the
 * early-stopping epoch loop's among them.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "net.h"
#include "optim.h"
#include "rng.h"
#include "train.h"

#define NTRAIN 2000
#define NTEST  600

/* s[t] = sin(2 pi t / 23) + 0.5 sin(2 pi t / 7) + N(0, 0.1^2) */
static void noisy_sine(float *s, size_t n, uint64_t seed)
{
    ad_rng r;
    ad_rng_seed(&r, seed);
    for (size_t t = 0; t < n; t++)
        s[t] = (float)(sin(2.0 * M_PI * (double)t / 23.0) + 0.5 * sin(2.0 * M_PI * t / 7.0)) +
               0.1f * ad_rng_normal(&r);
}

static double last_value_mse(const float *s, size_t n)
{
    double ss = 0.0;
    for (size_t t = 0; t + 1 < n; t++)
        ss += ((double)s[t + 1] - s[t]) * ((double)s[t + 1] - s[t]);
    return ss / (double)(n - 1);
}

START_TEST(test_learns_noisy_sine)
{
    const ad_cell_kind kind = (ad_cell_kind)_i;
    static float s[NTRAIN + NTEST];
    ad_net_config cfg = {kind, 1, 1, 16, 1};
    ad_net *net;
    ad_seq *ws;
    ad_optim *opt;
    ad_state *st;
    ad_train_opts o;
    char err[128];
    float loss = -1.0f;

    noisy_sine(s, NTRAIN + NTEST, 42);
    ck_assert_int_eq(ad_net_create(&cfg, 7, &net, err, sizeof(err)), 0);
    ad_train_defaults(&o);
    o.window = 32;
    o.batch = 16;
    o.stride = 8;
    o.epochs = 12;
    ck_assert_int_eq(ad_seq_create(net, o.window, o.batch, &ws, err, sizeof(err)), 0);
    opt = ad_optim_create(AD_OPTIM_ADAM, net->nparams, 0.01f);
    ck_assert_ptr_nonnull(opt);
    ck_assert_int_eq(ad_train(net, opt, ws, s, s + 1, NTRAIN - 1, &o, &loss, err, sizeof(err)), 0);
    ck_assert(isfinite(loss));

    st = ad_state_create(net);
    /* held-out: run over the whole series, score only the last NTEST predictions */
    double mse = ad_eval_mse(net, st, s, s + 1, NTRAIN + NTEST - 1, NTRAIN);
    double base = last_value_mse(s + NTRAIN - 1, NTEST + 1);
    fprintf(stderr, "%-10s held-out MSE %.5f, last-value MSE %.5f, ratio %.3f (train %.5f)\n",
            ad_cell_name(kind), mse, base, mse / base, loss);
    ck_assert_msg(mse <= 0.5 * base, "%s: held-out MSE %g > half of last-value MSE %g",
                  ad_cell_name(kind), mse, base);

    ad_state_free(st);
    ad_optim_free(opt);
    ad_seq_free(ws);
    ad_net_free(net);
}
END_TEST

START_TEST(test_two_layers_learn)
{
    static float s[NTRAIN + NTEST];
    ad_net_config cfg = {AD_CELL_LSTM, 2, 1, 12, 1};
    ad_net *net;
    ad_seq *ws;
    ad_train_opts o;
    char err[128];

    noisy_sine(s, NTRAIN + NTEST, 43);
    ck_assert_int_eq(ad_net_create(&cfg, 3, &net, err, sizeof(err)), 0);
    ad_train_defaults(&o);
    o.stride = 8;
    o.epochs = 12;
    ck_assert_int_eq(ad_seq_create(net, o.window, o.batch, &ws, err, sizeof(err)), 0);
    ad_optim *opt = ad_optim_create(AD_OPTIM_ADAM, net->nparams, 0.01f);
    ad_state *st = ad_state_create(net);
    double before = ad_eval_mse(net, st, s, s + 1, NTRAIN + NTEST - 1, NTRAIN);
    ck_assert_int_eq(ad_train(net, opt, ws, s, s + 1, NTRAIN - 1, &o, NULL, err, sizeof(err)), 0);
    double after = ad_eval_mse(net, st, s, s + 1, NTRAIN + NTEST - 1, NTRAIN);
    double base = last_value_mse(s + NTRAIN - 1, NTEST + 1);
    ck_assert_msg(after < before && after <= 0.5 * base, "before %g after %g base %g", before,
                  after, base);
    ad_state_free(st);
    ad_optim_free(opt);
    ad_seq_free(ws);
    ad_net_free(net);
}
END_TEST

START_TEST(test_training_is_deterministic)
{
    static float s[800];
    ad_net_config cfg = {AD_CELL_GRU, 1, 1, 8, 1};
    ad_net *a, *b;
    ad_seq *ws;
    ad_train_opts o;
    char err[128];

    noisy_sine(s, 800, 5);
    ad_train_defaults(&o);
    o.epochs = 2;
    ck_assert_int_eq(ad_net_create(&cfg, 11, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_net_create(&cfg, 11, &b, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_seq_create(a, o.window, o.batch, &ws, err, sizeof(err)), 0);
    ad_optim *oa = ad_optim_create(AD_OPTIM_ADAM, a->nparams, 0.01f);
    ad_optim *ob = ad_optim_create(AD_OPTIM_ADAM, b->nparams, 0.01f);
    ck_assert_int_eq(ad_train(a, oa, ws, s, s + 1, 799, &o, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_train(b, ob, ws, s, s + 1, 799, &o, NULL, err, sizeof(err)), 0);
    ck_assert_mem_eq(a->params, b->params, a->nparams * sizeof(float));
    o.seed = 2; /* another shuffle gives other weights */
    ck_assert_int_eq(ad_train(b, ob, ws, s, s + 1, 799, &o, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_train(a, oa, ws, s, s + 1, 799, &o, NULL, err, sizeof(err)), 0);
    ck_assert_mem_eq(a->params, b->params, a->nparams * sizeof(float));
    ad_optim_free(oa);
    ad_optim_free(ob);
    ad_seq_free(ws);
    ad_net_free(a);
    ad_net_free(b);
}
END_TEST

START_TEST(test_train_refuses_bad_input)
{
    float s[10] = {0};
    ad_net_config cfg = {AD_CELL_LSTM, 1, 1, 4, 1};
    ad_net *net;
    ad_seq *ws;
    ad_train_opts o;
    char err[128] = "";

    ad_train_defaults(&o);
    ck_assert_int_eq(ad_net_create(&cfg, 1, &net, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_seq_create(net, 4, 2, &ws, err, sizeof(err)), 0);
    ad_optim *opt = ad_optim_create(AD_OPTIM_SGD, net->nparams, 0.1f);
    ad_optim *wrong = ad_optim_create(AD_OPTIM_SGD, net->nparams + 1, 0.1f);
    /* too short for one window */
    ck_assert_int_eq(ad_train(net, opt, ws, s, s + 1, 9, &o, NULL, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "window"));
    /* window bigger than the workspace */
    o.window = 8;
    o.batch = 2;
    ck_assert_int_eq(ad_train(net, opt, ws, s, s + 1, 9, &o, NULL, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "workspace"));
    /* optimiser of another size */
    o.window = 4;
    ck_assert_int_eq(ad_train(net, wrong, ws, s, s + 1, 9, &o, NULL, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "optimiser"));
    ad_optim_free(wrong);
    ad_optim_free(opt);
    ad_seq_free(ws);
    ad_net_free(net);
}
END_TEST

/* A scripted fit for ad_early_stopping: epoch e sets every parameter to e + 1 and reports
 * vals[e] (fails with -AD_EINVAL at fail_at). */
typedef struct scripted {
    float *params;
    size_t n;
    const double *vals;
    int fail_at, calls;
} scripted;

static int scripted_epoch(void *ctx, int e, float *loss, double *val, char *err, size_t errlen)
{
    scripted *s = ctx;
    ck_assert_int_eq(e, s->calls++);
    if (e == s->fail_at) {
        snprintf(err, errlen, "epoch %d failed", e);
        return -AD_EINVAL;
    }
    for (size_t i = 0; i < s->n; i++)
        s->params[i] = (float)(e + 1);
    *loss = 10.0f * (float)(e + 1);
    *val = s->vals[e];
    return 0;
}

START_TEST(test_early_stopping)
{
    /* best at epoch 2 (0.5); epochs 3, 4, 5 no better: patience 3 stops after epoch 5 */
    const double vals[] = {3.0, 1.0, 0.5, 0.5, 2.0, 0.7, 0.1, 0.1};
    float params[4] = {0}, best[4];
    scripted s = {params, 4, vals, -1, 0};
    ad_fit_result res;
    char err[64] = "";

    ck_assert_int_eq(ad_early_stopping(params, best, 4, 8, 3, 1, scripted_epoch, &s, &res, err,
                                       sizeof(err)),
                     0);
    ck_assert_int_eq(s.calls, 6);
    ck_assert_int_eq(res.epochs, 6);
    ck_assert_float_eq(res.train_loss, 60.0f);
    ck_assert_double_eq(res.best_val, 0.5);
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(params[i], 3.0f); /* epoch 2's */

    /* without a validation loss every epoch is kept: the last one's params */
    memset(params, 0, sizeof(params));
    s.calls = 0;
    ck_assert_int_eq(ad_early_stopping(params, best, 4, 8, 3, 0, scripted_epoch, &s, &res, err,
                                       sizeof(err)),
                     0);
    ck_assert_int_eq(res.epochs, 8);
    ck_assert_double_eq(res.best_val, 0.1);
    ck_assert_float_eq(params[0], 8.0f);

    /* the epochs limit; an error stops the loop with it and leaves the epochs before */
    s.calls = 0;
    ck_assert_int_eq(ad_early_stopping(params, best, 4, 2, 3, 1, scripted_epoch, &s, &res, err,
                                       sizeof(err)),
                     0);
    ck_assert_int_eq(res.epochs, 2);
    ck_assert_float_eq(params[0], 2.0f);
    s.calls = 0;
    s.fail_at = 1;
    ck_assert_int_eq(ad_early_stopping(params, best, 4, 8, 3, 1, scripted_epoch, &s, &res, err,
                                       sizeof(err)),
                     -AD_EINVAL);
    ck_assert_int_eq(res.epochs, 1);
    ck_assert_str_eq(err, "epoch 1 failed");
}
END_TEST

/*
 * The training loop written out, for the walks' tests: one batch (forward from the state
 * batches h0/c0 or zero, MSE, backward, clip, one optimiser step), then the two walks of
 * an epoch: shuffled windows every stride samples, each from zero (ad_train's stateful 0),
 * or S = min(B, n / T) contiguous streams of L = n / S samples (the oldest n - S*L
 * dropped) walked in consecutive windows, each window from the final state of the
 * previous one of its stream when carry is set (ad_train's stateful 1), else from zero.
 * x and y are one value per step (D = O = 1).
 */
static void ref_batch(ad_net *net, ad_optim *opt, ad_seq *ws, const float *xb, const float *yb,
                      int T, int B, const float *h0, const float *c0, float clip)
{
    static float dy[4096];
    const float *yh =
        h0 ? ad_seq_forward_init(net, ws, xb, T, B, h0, c0) : ad_seq_forward(net, ws, xb, T, B);
    ck_assert_ptr_nonnull(yh);
    ad_mse(yh, yb, (size_t)B * T, dy);
    ad_seq_zero_grad(ws);
    ad_seq_backward(net, ws, dy, NULL);
    ad_clip_grad_norm(ad_seq_grad(ws), net->nparams, clip);
    ad_optim_step(opt, net->params, ad_seq_grad(ws));
}

static void ref_train(ad_net *net, ad_optim *opt, ad_seq *ws, const float *x, const float *y,
                      size_t n, const ad_train_opts *o, int stateful, int carry)
{
    static float xb[4096], yb[4096], h[4096], c[4096];
    static size_t starts[4096];
    const int T = o->window, B = o->batch, stride = o->stride;
    ad_rng rng;

    ad_rng_seed(&rng, o->seed);
    for (int e = 0; e < o->epochs; e++) {
        if (!stateful) {
            size_t nwin = (n - (size_t)T) / (size_t)stride + 1;
            ad_shuffled_starts(starts, nwin, (size_t)stride, &rng);
            for (size_t i = 0; i < nwin; i += (size_t)B) {
                int bn = nwin - i < (size_t)B ? (int)(nwin - i) : B;
                for (int t = 0; t < T; t++)
                    for (int b = 0; b < bn; b++) {
                        xb[b + bn * t] = x[starts[i + b] + t];
                        yb[b + bn * t] = y[starts[i + b] + t];
                    }
                ref_batch(net, opt, ws, xb, yb, T, bn, NULL, NULL, o->clip);
            }
            continue;
        }
        const int S = (int)(n / (size_t)T) < B ? (int)(n / (size_t)T) : B;
        const size_t L = n / (size_t)S, off = n - (size_t)S * L;
        memset(h, 0, sizeof(h));
        memset(c, 0, sizeof(c));
        for (size_t t0 = 0; t0 < L; t0 += (size_t)T) {
            int len = L - t0 < (size_t)T ? (int)(L - t0) : T;
            for (int t = 0; t < len; t++)
                for (int b = 0; b < S; b++) {
                    xb[b + S * t] = x[off + (size_t)b * L + t0 + t];
                    yb[b + S * t] = y[off + (size_t)b * L + t0 + t];
                }
            ref_batch(net, opt, ws, xb, yb, len, S, carry ? h : NULL, carry ? c : NULL, o->clip);
            if (carry)
                ad_seq_final_states(ws, h, c);
        }
    }
}

#define NPAR_LSTM8 (4 * 8 * (1 + 8 + 1) + 8 + 1) /* Wx, Wh, b, head: 329 */

/* Trains a fresh copy of one LSTM on the noisy sine with o, by ad_train or (ref >= 0)
 * ref_train(stateful, carry = ref), into params. */
static void train_copy(const ad_train_opts *o, size_t n, int stateful, int ref, float *params)
{
    static float s[1200];
    ad_net_config cfg = {AD_CELL_LSTM, 1, 1, 8, 1};
    ad_net *net;
    ad_seq *ws;
    char err[128];

    ck_assert_uint_le(n + 1, 1200);
    noisy_sine(s, n + 1, 9);
    ck_assert_int_eq(ad_net_create(&cfg, 5, &net, err, sizeof(err)), 0);
    ck_assert_uint_eq(net->nparams, NPAR_LSTM8);
    ck_assert_int_eq(ad_seq_create(net, o->window, o->batch, &ws, err, sizeof(err)), 0);
    ad_optim *opt = ad_optim_create(AD_OPTIM_ADAM, net->nparams, 0.01f);
    ck_assert_ptr_nonnull(opt);
    if (ref < 0)
        ck_assert_int_eq(ad_train(net, opt, ws, s, s + 1, n, o, NULL, err, sizeof(err)), 0);
    else
        ref_train(net, opt, ws, s, s + 1, n, o, stateful, ref);
    memcpy(params, net->params, net->nparams * sizeof(float));
    ad_optim_free(opt);
    ad_seq_free(ws);
    ad_net_free(net);
}

/* stateful 0 (the default) is the shuffled windows from zero, bit for bit. */
START_TEST(test_shuffled_windows_by_default)
{
    float a[NPAR_LSTM8], b[NPAR_LSTM8];
    ad_train_opts o;

    ad_train_defaults(&o);
    ck_assert_int_eq(o.stateful, 0);
    o.window = 16;
    o.batch = 4;
    o.stride = 4;
    o.epochs = 3;
    o.seed = 3;
    train_copy(&o, 303, 0, -1, a);
    train_copy(&o, 303, 0, 0, b);
    ck_assert_mem_eq(a, b, sizeof(a));
}
END_TEST

/*
 * stateful 1: min(B, n / T) contiguous streams (4 of 75 here, the 3 oldest samples
 * dropped), consecutive windows (4 of 16 and one of 11 per stream), each starting from
 * the state the previous window of its stream ended with: bit for bit the reference that
 * carries the state, and not the same walk started from zero every window. The seed and
 * the stride play no part.
 */
START_TEST(test_stateful_windows_carry_the_state)
{
    float a[NPAR_LSTM8], b[NPAR_LSTM8], z[NPAR_LSTM8];
    ad_train_opts o;

    ad_train_defaults(&o);
    o.window = 16;
    o.batch = 4;
    o.stride = 4;
    o.epochs = 3;
    o.stateful = 1;
    train_copy(&o, 303, 1, -1, a);
    train_copy(&o, 303, 1, 1, b);
    ck_assert_mem_eq(a, b, sizeof(a));
    train_copy(&o, 303, 1, 0, z);
    ck_assert_mem_ne(a, z, sizeof(a));
    o.seed = 77;
    o.stride = 1;
    train_copy(&o, 303, 1, -1, b);
    ck_assert_mem_eq(a, b, sizeof(a));
    /* fewer than B whole windows: n / T streams (2 of 40: windows of 16, 16, 8) */
    o.window = 16;
    o.batch = 4;
    train_copy(&o, 80, 1, -1, a);
    train_copy(&o, 80, 1, 1, b);
    ck_assert_mem_eq(a, b, sizeof(a));
}
END_TEST

static Suite *train_suite(void)
{
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("learning");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_learns_noisy_sine, 0, AD_CELL_NKINDS);
    tcase_add_test(tc, test_two_layers_learn);
    suite_add_tcase(s, tc);
    tc = tcase_create("contracts");
    tcase_add_test(tc, test_training_is_deterministic);
    tcase_add_test(tc, test_train_refuses_bad_input);
    tcase_add_test(tc, test_early_stopping);
    tcase_add_test(tc, test_shuffled_windows_by_default);
    tcase_add_test(tc, test_stateful_windows_carry_the_state);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(train_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
