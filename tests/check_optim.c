/*
 * check_optim.c - optim.c: Adam against hand-computed PyTorch-semantics values (bias
 * correction, eps added to sqrt(v_hat), L2 weight decay added to the gradient), SGD,
 * gradient-norm clipping, and Adam minimising a quadratic.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "rng.h"

#define TOL 2e-6f

/* Three Adam steps on 3 parameters; grads[t] is the gradient of step t + 1. */
static const float p0[3] = {1.0f, -2.0f, 0.5f};
static const float grads[3][3] = {{0.5f, -1.0f, 0.0f}, {-1.0f, 2.0f, 0.25f}, {2.0f, 0.1f, -0.25f}};

/*
 * torch.optim.Adam(lr=0.1) (betas 0.9, 0.999, eps 1e-8), computed in double by hand:
 * step 1: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2, p -= 0.1 g / (|g| + 1e-8)
 *         (a zero gradient leaves its parameter alone);
 * step 2, first parameter: m = 0.9*0.05 - 0.1 = -0.055, v = 0.999*0.00025 + 0.001 =
 *         0.00124975, m_hat = -0.055/0.19, v_hat = 0.00124975/0.001999,
 *         p = 0.9 + 0.1 * 0.2894737 / (0.7906883 + 1e-8) = 0.936610354.
 */
static const float adam_want[3][3] = {
    {0.900000002f, -1.900000001f, 0.500000000f},
    {0.936610354f, -1.936610353f, 0.425586322f},
    {0.894644793f, -1.967737689f, 0.430104546f},
};

/* The same with weight_decay 0.1 (L2: g + 0.1 p, as torch's Adam, not AdamW). */
static const float adam_wd_want[3][3] = {
    {0.900000002f, -1.900000001f, 0.400000020f},
    {0.925263519f, -1.925017878f, 0.315288026f},
    {0.877617261f, -1.941618894f, 0.300811611f},
};

static void run_adam(float wd, const float want[3][3])
{
    ad_optim *o = ad_optim_create(AD_OPTIM_ADAM, 3, 0.1f);
    float p[3], g[3];

    ck_assert_ptr_nonnull(o);
    o->weight_decay = wd;
    memcpy(p, p0, sizeof(p));
    for (int t = 0; t < 3; t++) {
        memcpy(g, grads[t], sizeof(g));
        ad_optim_step(o, p, g);
        ck_assert_mem_eq(g, grads[t], sizeof(g)); /* grad is read only */
        ck_assert(o->t == t + 1);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(fabsf(p[i] - want[t][i]) <= TOL, "step %d param %d: %.9g, want %.9g",
                          t + 1, i, p[i], want[t][i]);
    }
    ad_optim_free(o);
}

START_TEST(test_create_defaults)
{
    ad_optim *a = ad_optim_create(AD_OPTIM_ADAM, 5, 0.01f);
    ad_optim *s = ad_optim_create(AD_OPTIM_SGD, 5, 0.5f);

    ck_assert(a && s);
    ck_assert_int_eq(a->kind, AD_OPTIM_ADAM);
    ck_assert_uint_eq(a->n, 5);
    ck_assert(a->lr == 0.01f && a->beta1 == 0.9f && a->beta2 == 0.999f && a->eps == 1e-8f);
    ck_assert(a->weight_decay == 0.0f && a->t == 0);
    ck_assert(a->m && a->v);
    for (int i = 0; i < 5; i++)
        ck_assert(a->m[i] == 0.0f && a->v[i] == 0.0f);
    ck_assert_uint_eq(ad_optim_bytes(a), sizeof(*a) + 10 * sizeof(float));

    ck_assert_int_eq(s->kind, AD_OPTIM_SGD);
    ck_assert(s->lr == 0.5f && s->t == 0);
    ck_assert_ptr_null(s->m);
    ck_assert_ptr_null(s->v);
    ck_assert_uint_eq(ad_optim_bytes(s), sizeof(*s));

    /* an unknown kind is refused rather than half-made */
    ck_assert_ptr_null(ad_optim_create((ad_optim_kind)7, 5, 0.1f));
    ck_assert_ptr_null(ad_optim_create((ad_optim_kind)-1, 5, 0.1f));

    ad_optim *z = ad_optim_create(AD_OPTIM_ADAM, 0, 0.1f); /* no parameters is fine */
    ck_assert_ptr_nonnull(z);
    ad_optim_step(z, NULL, NULL);
    ck_assert(z->t == 1);
    ad_optim_free(z);
    ad_optim_free(a);
    ad_optim_free(s);
    ad_optim_free(NULL);
}
END_TEST

START_TEST(test_adam_hand_values)
{
    run_adam(0.0f, adam_want);
}
END_TEST

START_TEST(test_adam_weight_decay)
{
    run_adam(0.1f, adam_wd_want);
}
END_TEST

/* eps is added to sqrt(v_hat) (torch), not to sqrt(v) before the bias correction. */
START_TEST(test_adam_eps_placement)
{
    ad_optim *o = ad_optim_create(AD_OPTIM_ADAM, 2, 0.1f);
    float p[2] = {0.0f, 0.0f};
    const float g[2] = {1e-8f, -3e-3f};

    ck_assert_ptr_nonnull(o);
    ad_optim_step(o, p, g);
    /* |g| = eps: m_hat / (sqrt(v_hat) + eps) = 1e-8 / 2e-8 = 0.5 */
    ck_assert_float_eq_tol(p[0], -0.05f, 1e-6f);
    /* large |g| against eps: a full step of lr, whatever the gradient's scale */
    ck_assert_float_eq_tol(p[1], 0.1f * 3e-3f / (3e-3f + 1e-8f), 1e-7f);
    ad_optim_free(o);
}
END_TEST

/* Reset forgets moments and step count: the next step is a first step again. */
START_TEST(test_adam_reset)
{
    ad_optim *o = ad_optim_create(AD_OPTIM_ADAM, 3, 0.1f);
    float p[3];

    ck_assert_ptr_nonnull(o);
    memcpy(p, p0, sizeof(p));
    for (int t = 0; t < 3; t++)
        ad_optim_step(o, p, grads[t]);
    ad_optim_reset(o);
    ck_assert(o->t == 0);
    for (int i = 0; i < 3; i++)
        ck_assert(o->m[i] == 0.0f && o->v[i] == 0.0f);
    memcpy(p, p0, sizeof(p));
    ad_optim_step(o, p, grads[0]);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq_tol(p[i], adam_want[0][i], TOL);
    ad_optim_free(o);
}
END_TEST

START_TEST(test_sgd_step)
{
    ad_optim *o = ad_optim_create(AD_OPTIM_SGD, 3, 0.1f);
    float p[3];

    ck_assert_ptr_nonnull(o);
    memcpy(p, p0, sizeof(p));
    ad_optim_step(o, p, grads[0]); /* p -= 0.1 g */
    ck_assert_float_eq_tol(p[0], 0.95f, 1e-7f);
    ck_assert_float_eq_tol(p[1], -1.9f, 1e-7f);
    ck_assert(p[2] == 0.5f); /* zero gradient */
    ad_optim_step(o, p, grads[1]);
    ck_assert_float_eq_tol(p[0], 1.05f, 1e-7f);
    ck_assert_float_eq_tol(p[1], -2.1f, 1e-7f);
    ck_assert_float_eq_tol(p[2], 0.475f, 1e-7f);
    ck_assert(o->t == 2);
    ad_optim_free(o);
}
END_TEST

START_TEST(test_sgd_weight_decay)
{
    ad_optim *o = ad_optim_create(AD_OPTIM_SGD, 3, 0.1f);
    float p[3];

    ck_assert_ptr_nonnull(o);
    o->weight_decay = 0.01f;
    memcpy(p, p0, sizeof(p));
    ad_optim_step(o, p, grads[0]);                                       /* p -= 0.1 (g + 0.01 p) */
    ck_assert_float_eq_tol(p[0], 1.0f - 0.1f * (0.5f + 0.01f), 1e-7f);   /* 0.949 */
    ck_assert_float_eq_tol(p[1], -2.0f - 0.1f * (-1.0f - 0.02f), 1e-7f); /* -1.898 */
    ck_assert_float_eq_tol(p[2], 0.5f - 0.1f * 0.005f, 1e-7f);           /* decay alone */
    ad_optim_free(o);
}
END_TEST

/* f(p) = sum a_i (p_i - c_i)^2 from p = 0: Adam gets within 1e-3 of the minimum. */
START_TEST(test_adam_minimises_quadratic)
{
    enum { N = 16 };
    float a[N], c[N], p[N], g[N];
    ad_optim *o = ad_optim_create(AD_OPTIM_ADAM, N, 0.05f);
    ad_rng r;

    ck_assert_ptr_nonnull(o);
    ad_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        a[i] = 0.1f + 10.0f * ad_rng_uniform(&r); /* condition number ~100 */
        c[i] = 6.0f * ad_rng_uniform(&r) - 3.0f;
        p[i] = 0.0f;
    }
    double f0 = 0.0, f = 0.0;
    for (int i = 0; i < N; i++)
        f0 += (double)a[i] * c[i] * c[i];
    for (int step = 0; step < 3000; step++) {
        for (int i = 0; i < N; i++)
            g[i] = 2.0f * a[i] * (p[i] - c[i]);
        ad_optim_step(o, p, g);
    }
    for (int i = 0; i < N; i++) {
        f += (double)a[i] * (p[i] - c[i]) * (p[i] - c[i]);
        ck_assert_msg(fabsf(p[i] - c[i]) < 1e-3f, "p[%d] = %g, minimum at %g", i, p[i], c[i]);
    }
    ck_assert_msg(f < 1e-8 * f0, "loss %g from %g", f, f0);
    ad_optim_free(o);
}
END_TEST

/* ---- clipping ---- */

static double norm2(const float *g, size_t n)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    return sqrt(ss);
}

START_TEST(test_clip_scales_to_max)
{
    float g[4] = {3.0f, -4.0f, 0.0f, 12.0f}; /* norm 13 */
    float n = ad_clip_grad_norm(g, 4, 1.0f);

    ck_assert_float_eq_tol(n, 13.0f, 1e-6f);
    ck_assert_float_eq_tol((float)norm2(g, 4), 1.0f, 1e-6f);
    ck_assert(norm2(g, 4) <= 1.0); /* never above the limit */
    /* direction kept */
    ck_assert_float_eq_tol(g[0], 3.0f / 13.0f, 1e-6f);
    ck_assert_float_eq_tol(g[1], -4.0f / 13.0f, 1e-6f);
    ck_assert(g[2] == 0.0f);
    ck_assert_float_eq_tol(g[3], 12.0f / 13.0f, 1e-6f);

    /* a long vector clipped to 5 */
    enum { N = 1000 };
    static float v[N];
    ad_rng r;
    ad_rng_seed(&r, 9);
    for (int i = 0; i < N; i++)
        v[i] = 10.0f * ad_rng_normal(&r);
    double before = norm2(v, N);
    n = ad_clip_grad_norm(v, N, 5.0f);
    ck_assert_float_eq_tol(n, (float)before, 1e-6f * (float)before);
    ck_assert_float_eq_tol((float)norm2(v, N), 5.0f, 5e-6f);
}
END_TEST

START_TEST(test_clip_leaves_small_alone)
{
    const float orig[3] = {0.3f, -0.4f, 0.0f}; /* norm 0.5 */
    float g[3];

    memcpy(g, orig, sizeof(g));
    ck_assert_float_eq_tol(ad_clip_grad_norm(g, 3, 1.0f), 0.5f, 1e-7f);
    ck_assert_mem_eq(g, orig, sizeof(g));
    /* max_norm <= 0: no clipping at all, the norm still reported */
    float big[2] = {30.0f, 40.0f};
    ck_assert_float_eq_tol(ad_clip_grad_norm(big, 2, 0.0f), 50.0f, 1e-5f);
    ck_assert(big[0] == 30.0f && big[1] == 40.0f);
    ck_assert_float_eq_tol(ad_clip_grad_norm(big, 2, -1.0f), 50.0f, 1e-5f);
    ck_assert(big[0] == 30.0f && big[1] == 40.0f);
    /* exactly at the limit: untouched */
    ck_assert(ad_clip_grad_norm(big, 2, 50.0f) == 50.0f);
    ck_assert(big[0] == 30.0f && big[1] == 40.0f);
    /* empty */
    ck_assert(ad_clip_grad_norm(NULL, 0, 1.0f) == 0.0f);
}
END_TEST

START_TEST(test_clip_non_finite_zeroes)
{
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        float g[4] = {1.0f, 2.0f, 3.0f, 4.0f};
        g[1 + k % 3] = bad[k];
        float n = ad_clip_grad_norm(g, 4, 1.0f);
        ck_assert_msg(!isfinite(n), "case %d: norm %g", k, n);
        if (k == 0)
            ck_assert(isnan(n));
        else
            ck_assert(isinf(n) && n > 0.0f);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(g[i] == 0.0f && !signbit(g[i]), "case %d: g[%d] = %g", k, i, g[i]);
    }
}
END_TEST

static Suite *optim_suite(void)
{
    Suite *s = suite_create("optim");

    TCase *tc = tcase_create("adam");
    tcase_add_test(tc, test_create_defaults);
    tcase_add_test(tc, test_adam_hand_values);
    tcase_add_test(tc, test_adam_weight_decay);
    tcase_add_test(tc, test_adam_eps_placement);
    tcase_add_test(tc, test_adam_reset);
    tcase_add_test(tc, test_adam_minimises_quadratic);
    suite_add_tcase(s, tc);

    tc = tcase_create("sgd");
    tcase_add_test(tc, test_sgd_step);
    tcase_add_test(tc, test_sgd_weight_decay);
    suite_add_tcase(s, tc);

    tc = tcase_create("clip");
    tcase_add_test(tc, test_clip_scales_to_max);
    tcase_add_test(tc, test_clip_leaves_small_alone);
    tcase_add_test(tc, test_clip_non_finite_zeroes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(optim_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
