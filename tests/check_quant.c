/*
 * check_quant.c - quant.c (per-row int8 quantisation): known values, the error bound,
 * quantise(dequantise) bit for bit on rows of every magnitude, non-finite weights,
 * pieces of the dequantised vector. Measured figures go to stderr.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "rng.h"

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
