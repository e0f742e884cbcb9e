/*
 * check_act.c - act.h's ad_expf, ad_sigmoidf and ad_tanhf against double-precision libm:
 * maximum relative error over dense sweeps of [-100, 100] and of tiny magnitudes near 0,
 * saturation, NaN, and the array versions against the scalar ones. The measured figures
 * are printed to stderr (ctest -V shows them).
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "kern.h"

#define MAX_REL 2e-6 /* asserted bound; act.h promises < 1e-6 */

/* Where ad_expf is not clamped (act.h: saturates below -87.3 and above 88.72). */
#define EXP_LO -87.3f
#define EXP_HI 88.72f

/* Values below this are not compared relatively (sigmoid far left, tanh's x ~ 0). */
#define TINY 1e-30

typedef struct worst {
    double rel; /* largest relative error seen */
    float at;   /* at this input */
    long n;     /* points compared */
} worst;

static void note(worst *w, float x, float got, double want)
{
    if (fabs(want) <= TINY)
        return;
    double rel = fabs((double)got - want) / fabs(want);
    if (!(rel <= w->rel)) { /* NaN counts as worst */
        w->rel = rel;
        w->at = x;
    }
    w->n++;
}

/* Compares the three functions at x; exp only inside its unclamped range. */
static void compare(float x, worst *we, worst *ws, worst *wt)
{
    const double xd = x;
    if (x >= EXP_LO && x <= EXP_HI)
        note(we, x, ad_expf(x), exp(xd));
    note(ws, x, ad_sigmoidf(x), 1.0 / (1.0 + exp(-xd)));
    note(wt, x, ad_tanhf(x), tanh(xd));
}

static void report(const char *what, const worst *w)
{
    fprintf(stderr, "  %-8s max rel error %.3e at x = %.9g (%ld points)\n", what, w->rel,
            (double)w->at, w->n);
}

static void assert_bound(const char *what, const worst *w)
{
    ck_assert_msg(w->n > 0, "%s: nothing compared", what);
    ck_assert_msg(w->rel < MAX_REL, "%s: max relative error %.3e at x = %.9g", what, w->rel,
                  (double)w->at);
}

/* 4,000,001 evenly spaced points of [-100, 100] (step 5e-5). */
START_TEST(test_linear_sweep)
{
    worst we = {0}, ws = {0}, wt = {0};
    const long N = 4000000;
    for (long i = 0; i <= N; i++)
        compare((float)(-100.0 + 200.0 * (double)i / (double)N), &we, &ws, &wt);
    fprintf(stderr, "linear sweep of [-100, 100]:\n");
    report("exp", &we);
    report("sigmoid", &ws);
    report("tanh", &wt);
    assert_bound("exp", &we);
    assert_bound("sigmoid", &ws);
    assert_bound("tanh", &wt);
}
END_TEST

/* Every 61st float of [-100, 100] by bit pattern: dense in every binade, both signs. */
START_TEST(test_bitpattern_sweep)
{
    worst we = {0}, ws = {0}, wt = {0};
    uint32_t top;
    const float hundred = 100.0f;
    memcpy(&top, &hundred, sizeof(top));
    for (uint32_t u = 0; u <= top; u += 61) {
        float x;
        memcpy(&x, &u, sizeof(x));
        compare(x, &we, &ws, &wt);
        compare(-x, &we, &ws, &wt);
    }
    fprintf(stderr, "every 61st float of [-100, 100]:\n");
    report("exp", &we);
    report("sigmoid", &ws);
    report("tanh", &wt);
    assert_bound("exp", &we);
    assert_bound("sigmoid", &ws);
    assert_bound("tanh", &wt);
}
END_TEST

/* Every float of [0.5, 0.75] and [8.5, 9.5]: tanh's branch point 0.625 and its clamp at 9. */
START_TEST(test_tanh_seams)
{
    worst wt = {0};
    const float ranges[2][2] = {{0.5f, 0.75f}, {8.5f, 9.5f}};
    for (int k = 0; k < 2; k++) {
        for (float x = ranges[k][0]; x <= ranges[k][1]; x = nextafterf(x, INFINITY)) {
            note(&wt, x, ad_tanhf(x), tanh((double)x));
            note(&wt, -x, ad_tanhf(-x), tanh(-(double)x));
        }
    }
    fprintf(stderr, "every float of +-[0.5, 0.75] and +-[8.5, 9.5]:\n");
    report("tanh", &wt);
    assert_bound("tanh", &wt);
}
END_TEST

/* |x| = 10^u for u in [-30, 0]: tanh(x) ~ x must stay relatively accurate near 0. */
START_TEST(test_near_zero)
{
    worst we = {0}, ws = {0}, wt = {0};
    const long N = 600000;
    for (long i = 0; i <= N; i++) {
        float x = (float)pow(10.0, -30.0 + 30.0 * (double)i / (double)N);
        compare(x, &we, &ws, &wt);
        compare(-x, &we, &ws, &wt);
    }
    fprintf(stderr, "|x| in [1e-30, 1], log-spaced:\n");
    report("exp", &we);
    report("sigmoid", &ws);
    report("tanh", &wt);
    assert_bound("exp", &we);
    assert_bound("sigmoid", &ws);
    assert_bound("tanh", &wt);

    /* exact values at 0, and tanh(x) == x for subnormal and tiny x */
    ck_assert(ad_expf(0.0f) == 1.0f);
    ck_assert(ad_sigmoidf(0.0f) == 0.5f);
    ck_assert(ad_tanhf(0.0f) == 0.0f);
    const float tiny[] = {FLT_TRUE_MIN, 1e-40f, FLT_MIN, 1e-30f, 1e-20f};
    for (size_t i = 0; i < sizeof(tiny) / sizeof(tiny[0]); i++) {
        ck_assert_msg(ad_tanhf(tiny[i]) == tiny[i], "tanh(%g) = %g", (double)tiny[i],
                      (double)ad_tanhf(tiny[i]));
        ck_assert(ad_tanhf(-tiny[i]) == -tiny[i]);
    }
}
END_TEST

/* Outside [-87.3, 88.72] ad_expf is clamped: measured here for the record only. */
START_TEST(test_exp_clamped_range)
{
    /* below -87.3 the true result is subnormal: compare without the TINY cut-off */
    double lo = 0.0, hi = 0.0;
    for (float x = -87.3f; x >= -103.0f; x -= 1e-3f)
        lo = fmax(lo, fabs(ad_expf(x) - exp((double)x)) / exp((double)x));
    for (float x = 88.72f; x <= 88.7228f; x += 1e-5f)
        hi = fmax(hi, fabs(ad_expf(x) - exp((double)x)) / exp((double)x));
    fprintf(stderr,
            "exp where it is clamped (not asserted): max rel error %.3g on "
            "[-103, -87.3], %.3g on [88.72, ln(FLT_MAX)]\n",
            lo, hi);

    /* the clamped values themselves */
    const float emin = ad_expf(EXP_LO), emax = ad_expf(EXP_HI);
    fprintf(stderr, "  ad_expf(-87.3) = %.6g, ad_expf(88.72) = %.6g\n", (double)emin, (double)emax);
    ck_assert(emin > 0.0f && emin < 2e-38f);
    ck_assert(isfinite(emax) && emax > 3.3e38f);
    long off = 0;
    for (float x = -100.0f; x < EXP_LO; x += 0.01f)
        off += ad_expf(x) != emin;
    for (float x = 100.0f; x > EXP_HI; x -= 0.01f)
        off += ad_expf(x) != emax;
    ck_assert_int_eq(off, 0);
}
END_TEST

START_TEST(test_saturation)
{
    const float big[] = {20.0f, 88.0f, 100.0f, 1000.0f, 1e30f, FLT_MAX, INFINITY};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        const float x = big[i];
        /* exp: 0-ish on the left, large but finite on the right */
        float e_neg = ad_expf(-x), e_pos = ad_expf(x);
        ck_assert_msg(e_neg >= 0.0f && e_neg <= (float)exp(-20.0) * 1.000001f, "exp(-%g) = %g",
                      (double)x, (double)e_neg);
        ck_assert_msg(isfinite(e_pos) && e_pos > 4e8f, "exp(%g) = %g", (double)x, (double)e_pos);
        /* tanh: exactly +-1, as correctly rounded tanhf is from x ~ 9.01 on */
        if (x >= 20.0f) {
            ck_assert_msg(ad_tanhf(x) == 1.0f, "tanh(%g) = %.9g", (double)x, (double)ad_tanhf(x));
            ck_assert(ad_tanhf(-x) == -ad_tanhf(x));
        }
        /* sigmoid: inside [0, 1], 1 on the right, 0-ish on the left */
        float s_pos = ad_sigmoidf(x), s_neg = ad_sigmoidf(-x);
        ck_assert_msg(s_pos <= 1.0f && s_pos >= 1.0f - 1e-7f, "sigmoid(%g) = %.9g", (double)x,
                      (double)s_pos);
        ck_assert_msg(s_neg >= 0.0f && s_neg <= 2.1e-9f, "sigmoid(-%g) = %g", (double)x,
                      (double)s_neg);
    }
    ck_assert(ad_expf(-1000.0f) < 2e-38f);
    ck_assert(ad_sigmoidf(1000.0f) == 1.0f);
    ck_assert(ad_sigmoidf(-1000.0f) < 1e-38f);
    fprintf(stderr, "tanh(1000) = %.9g, tanh(-1000) = %.9g, tanh(inf) = %.9g\n",
            (double)ad_tanhf(1000.0f), (double)ad_tanhf(-1000.0f), (double)ad_tanhf(INFINITY));
    ck_assert(ad_tanhf(1000.0f) == 1.0f && ad_tanhf(-1000.0f) == -1.0f);
    ck_assert(ad_tanhf(INFINITY) == 1.0f && ad_tanhf(-INFINITY) == -1.0f);
    /* exp reaches the top of the float range: exp(88.72) = 3.3929e38 */
    ck_assert_msg(fabs(ad_expf(88.72f) / exp(88.72) - 1.0) < 2e-6, "exp(88.72) = %g",
                  (double)ad_expf(88.72f));
    ck_assert(fabsf(ad_tanhf(-1000.0f) + 1.0f) <= 0x1p-24f);
    ck_assert(fabsf(ad_tanhf(INFINITY) - 1.0f) <= 0x1p-24f);
    ck_assert(fabsf(ad_tanhf(-INFINITY) + 1.0f) <= 0x1p-24f);
}
END_TEST

/*
 * Ranges, symmetry and monotonicity over a sweep of [-100, 100]. (Violations are counted
 * and asserted once: a check assertion per point costs a write to check's pipe.)
 */
START_TEST(test_shape)
{
    float ps = -1.0f, pt = -2.0f, pe = -1.0f, first_bad = NAN;
    long bad = 0, nonmono_s = 0, nonmono_t = 0, nonmono_e = 0;
    for (long i = 0; i <= 2000000; i++) {
        float x = (float)(-100.0 + 1e-4 * (double)i);
        float e = ad_expf(x), s = ad_sigmoidf(x), t = ad_tanhf(x);
        int ok = e >= 0.0f && isfinite(e) && s >= 0.0f && s <= 1.0f && t >= -1.0f && t <= 1.0f &&
                 ad_tanhf(-x) == -t && /* odd, exactly */
                 fabsf(s + ad_sigmoidf(-x) - 1.0f) <= 2.4e-7f;
        if (!ok && !bad++)
            first_bad = x;
        nonmono_s += s < ps;
        nonmono_t += t < pt;
        nonmono_e += e < pe;
        ps = s;
        pt = t;
        pe = e;
    }
    fprintf(stderr,
            "monotonicity over [-100, 100] step 1e-4: decreases exp %ld, sigmoid %ld, "
            "tanh %ld\n",
            nonmono_e, nonmono_s, nonmono_t);
    ck_assert_msg(bad == 0, "%ld points out of range or asymmetric, first at x = %.9g", bad,
                  (double)first_bad);
    ck_assert_int_eq(nonmono_e, 0);
    ck_assert_int_eq(nonmono_s, 0);
    ck_assert_int_eq(nonmono_t, 0);
}
END_TEST

/* NaN in, NaN out (act.h does not say; this pins what happens). */
START_TEST(test_nan)
{
    const float nans[2] = {NAN, -NAN};
    for (int k = 0; k < 2; k++) {
        volatile float x = nans[k]; /* keep the compiler from folding it */
        float e = ad_expf(x), s = ad_sigmoidf(x), t = ad_tanhf(x);
        fprintf(stderr, "%sNaN in: exp %g, sigmoid %g, tanh %g\n", k ? "-" : "", (double)e,
                (double)s, (double)t);
        ck_assert(isnan(e));
        ck_assert(isnan(s));
        ck_assert(isnan(t));
    }
}
END_TEST

/* The array versions give exactly the scalar results, for any length (tails too). */
START_TEST(test_vector_matches_scalar)
{
    enum { N = 20011 };
    static float x[N], s[N], t[N];
    const float special[] = {0.0f,     -0.0f,    FLT_TRUE_MIN, -FLT_MIN, 0.625f, -0.625f,
                             9.0f,     -9.0f,    87.3f,        -87.3f,   88.3f,  1000.0f,
                             -1000.0f, INFINITY, -INFINITY,    NAN};
    const size_t ns = sizeof(special) / sizeof(special[0]);
    for (int i = 0; i < N; i++)
        x[i] = i < (int)ns ? special[i] : (float)(-100.0 + 200.0 * (double)i / (N - 1));

    const int lens[] = {0, 1, 3, 7, 8, 9, 15, 16, 17, 33, N};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        const int n = lens[k];
        memcpy(s, x, sizeof(x));
        memcpy(t, x, sizeof(x));
        /* start at an odd offset too, so the vector loop is misaligned */
        const int off = (int)(k & 1);
        const int m = n - off > 0 ? n - off : 0;
        ad_sigmoid_v(s + off, m);
        ad_tanh_v(t + off, m);
        long bad = 0;
        int first = -1;
        for (int i = 0; i < N; i++) {
            const int in = i >= off && i < off + m;
            float ws = in ? ad_sigmoidf(x[i]) : x[i], wt = in ? ad_tanhf(x[i]) : x[i];
            int same = (memcmp(&s[i], &ws, sizeof(float)) == 0 || (isnan(s[i]) && isnan(ws))) &&
                       (memcmp(&t[i], &wt, sizeof(float)) == 0 || (isnan(t[i]) && isnan(wt)));
            if (!same && !bad++)
                first = i;
        }
        ck_assert_msg(bad == 0, "length %d: %ld values differ, first at %d (x = %.9g)", n, bad,
                      first, first >= 0 ? (double)x[first] : 0.0);
    }
}
END_TEST

/*
 * The fused kernels' SIMD activations (kern.h, per instruction set this CPU runs) against
 * double libm: every 61st float of [-100, 100] and the tanh seams, in arrays of odd
 * lengths (vector tails), same bound as the scalar functions. They are act.h's formulas
 * with fused multiply-adds and a Newton reciprocal, so they differ from act.h's results
 * in the last bits; saturation and NaN behave alike.
 */
START_TEST(test_kernel_activations)
{
    enum { CHUNK = 1001 };
    float x[CHUNK], s[CHUNK], t[CHUNK];
    uint32_t top;
    const float hundred = 100.0f;
    memcpy(&top, &hundred, sizeof(top));
    for (int isa = 0; isa < AD_ISA_N; isa++) {
        worst ws = {0}, wt = {0};
        int n = 0;
        if (!ad_kern_isa_supported((ad_isa)isa))
            continue;
        for (uint32_t u = 0;; u += 61) {
            const int last = u > top;
            if (!last) {
                memcpy(&x[n], &u, sizeof(float));
                x[n + 1] = -x[n];
                n += 2;
            }
            if (n + 2 > CHUNK - 2 || last) {
                /* plus tanh's seams around 0.625 and the clamp, and saturation */
                const float extra[] = {0.625f, nextafterf(0.625f, 0.0f), -0.625f, 9.0f, 10.5f};
                for (size_t e = 0; e < sizeof(extra) / sizeof(extra[0]) && n < CHUNK; e++)
                    x[n++] = extra[e];
                memcpy(s, x, sizeof(float) * n);
                memcpy(t, x, sizeof(float) * n);
                ad_kern_sigmoid((ad_isa)isa, s, n);
                ad_kern_tanh((ad_isa)isa, t, n);
                for (int i = 0; i < n; i++) {
                    note(&ws, x[i], s[i], 1.0 / (1.0 + exp(-(double)x[i])));
                    note(&wt, x[i], t[i], tanh((double)x[i]));
                }
                n = 0;
            }
            if (last)
                break;
        }
        fprintf(stderr, "kernel activations (%s), every 61st float of [-100, 100]:\n",
                ad_kern_isa_name((ad_isa)isa));
        report("sigmoid", &ws);
        report("tanh", &wt);
        assert_bound("sigmoid", &ws);
        assert_bound("tanh", &wt);
        /* saturation and NaN */
        float sat[4] = {-1000.0f, 1000.0f, NAN, 0.0f};
        ad_kern_tanh((ad_isa)isa, sat, 4);
        ck_assert(sat[0] == -1.0f && sat[1] == 1.0f && isnan(sat[2]) && sat[3] == 0.0f);
        float sg[3] = {1000.0f, 0.0f, NAN};
        ad_kern_sigmoid((ad_isa)isa, sg, 3);
        ck_assert(sg[0] == 1.0f && sg[1] == 0.5f && isnan(sg[2]));
    }
}
END_TEST

static Suite *act_suite(void)
{
    Suite *s = suite_create("act");

    TCase *tc = tcase_create("accuracy");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_linear_sweep);
    tcase_add_test(tc, test_bitpattern_sweep);
    tcase_add_test(tc, test_tanh_seams);
    tcase_add_test(tc, test_near_zero);
    tcase_add_test(tc, test_exp_clamped_range);
    suite_add_tcase(s, tc);

    tc = tcase_create("behaviour");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_saturation);
    tcase_add_test(tc, test_shape);
    tcase_add_test(tc, test_nan);
    suite_add_tcase(s, tc);

    tc = tcase_create("vector");
    tcase_add_test(tc, test_vector_matches_scalar);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_kernel_activations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(act_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
