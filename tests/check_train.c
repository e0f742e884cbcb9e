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
