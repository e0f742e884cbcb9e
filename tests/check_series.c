/*
 * check_series.c - series.c: add, find and remove; the max_series limit; iteration that
 * survives removing the series just returned; growth past the first bucket array; the
 * recent-points ring.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "series.h"

static ad_series *add(ad_series_table *t, const char *key)
{
    ad_series *s = NULL;

    ck_assert_int_eq(ad_series_table_add(t, key, strlen(key), 4, &s), 0);
    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(test_add_find_remove)
{
    ad_series_table *t;
    ad_series *a, *b;

    ck_assert_int_eq(ad_series_table_create(10, &t), 0);
    a = add(t, "cpu.user");
    b = add(t, "cpu.user;host=a");
    ck_assert_str_eq(a->key, "cpu.user");
    ck_assert_uint_eq(a->key_len, 8);
    ck_assert_int_eq(a->rule, -1);
    ck_assert_ptr_eq(ad_series_table_find(t, "cpu.user", 8), a);
    ck_assert_ptr_eq(ad_series_table_find(t, "cpu.user;host=a", 15), b);
    ck_assert_ptr_null(ad_series_table_find(t, "cpu.use", 7));
    ck_assert_ptr_null(ad_series_table_find(t, "cpu.userx", 9));
    ck_assert_uint_eq(ad_series_table_size(t), 2);
    ad_series_table_remove(t, a);
    ck_assert_ptr_null(ad_series_table_find(t, "cpu.user", 8));
    ck_assert_ptr_eq(ad_series_table_find(t, "cpu.user;host=a", 15), b);
    ck_assert_uint_eq(ad_series_table_size(t), 1);
    ad_series_free(a);
    ad_series_table_free(t);
}
END_TEST

START_TEST(test_max_series)
{
    ad_series_table *t;
    ad_series *s = NULL;
    char key[32];

    ck_assert_int_eq(ad_series_table_create(3, &t), 0);
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        add(t, key);
    }
    ck_assert_int_eq(ad_series_table_add(t, "s3", 2, 4, &s), -AD_EFULL);
    ck_assert_ptr_null(s);
    ck_assert_uint_eq(ad_series_table_size(t), 3);
    ad_series_table_set_max(t, 4);
    add(t, "s3");
    ck_assert_uint_eq(ad_series_table_size(t), 4);
    ad_series_table_free(t);
}
END_TEST

/* 5000 series: the buckets grow several times; every key is still found, iteration sees
 * each exactly once, and removing every other series while iterating keeps the rest. */
START_TEST(test_growth_and_iteration)
{
    enum { N = 5000 };
    ad_series_table *t;
    ad_series_iter it;
    ad_series *s;
    char key[32];
    static int seen[N];
    int n = 0;

    memset(seen, 0, sizeof(seen));
    ck_assert_int_eq(ad_series_table_create(N, &t), 0);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "m.%d", i);
        add(t, key);
    }
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "m.%d", i);
        s = ad_series_table_find(t, key, strlen(key));
        ck_assert_ptr_nonnull(s);
        ck_assert_str_eq(s->key, key);
    }
    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(t, &it))) {
        int i = atoi(s->key + 2);

        ck_assert_int_eq(seen[i], 0);
        seen[i] = 1;
        n++;
        if (i % 2) {
            ad_series_table_remove(t, s);
            ad_series_free(s);
        }
    }
    ck_assert_int_eq(n, N);
    ck_assert_uint_eq(ad_series_table_size(t), N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "m.%d", i);
        s = ad_series_table_find(t, key, strlen(key));
        if (i % 2)
            ck_assert_ptr_null(s);
        else
            ck_assert_ptr_nonnull(s);
    }
    ad_series_table_free(t);
}
END_TEST

START_TEST(test_recent_ring)
{
    ad_series_table *t;
    ad_series *s;

    ck_assert_int_eq(ad_series_table_create(10, &t), 0);
    s = add(t, "r");
    ck_assert_int_eq(s->recent_cap, 4);
    for (int i = 0; i < 6; i++) {
        ad_point p = {.ts = i, .value = 10 * i, .predicted = NAN, .score = 0.1f * i};

        ad_series_record(s, &p);
        ck_assert_int_eq(s->recent_len, i + 1 < 4 ? i + 1 : 4);
    }
    /* Oldest first: 2, 3, 4, 5. */
    for (int i = 0; i < 4; i++) {
        ad_point p = ad_series_point(s, i);
        ck_assert_double_eq(p.ts, i + 2);
        ck_assert_double_eq(p.value, 10 * (i + 2));
        ck_assert(isnan(p.predicted));
        ck_assert_float_eq(p.score, 0.1f * (i + 2));
    }
    ck_assert_uint_ge(ad_series_bytes(s), sizeof(*s) + 4 * sizeof(ad_rpoint));
    ad_series_table_free(t);
}
END_TEST

/* A point keeps its timestamp (sub-second and beyond 2^32 s), value and flags exactly,
 * its prediction to a float's precision of its distance from the value, in 25 bytes. */
START_TEST(test_recent_point_kept)
{
    ad_series_table *t;
    ad_series *s;
    const ad_point in[4] = {
        {.ts = 1700000000.123456, .value = 1e12 + 0.5, .predicted = 1e12 + 3.25, .score = 0.75f,
         .flagged = 1, .warming_up = 0},
        {.ts = 5e9 + 0.001, .value = -3.14159265358979, .predicted = -3.1, .score = 0.0f,
         .flagged = 0, .warming_up = 1},
        {.ts = 0.0, .value = 1e-300, .predicted = NAN, .score = 1.0f, .flagged = 1,
         .warming_up = 1},
        {.ts = 1e15, .value = 42.0, .predicted = 42.0, .score = 0.5f},
    };

    ck_assert_uint_eq(sizeof(ad_rpoint), 25);
    ck_assert_int_eq(ad_series_table_create(10, &t), 0);
    s = add(t, "p");
    for (int i = 0; i < 4; i++)
        ad_series_record(s, &in[i]);
    for (int i = 0; i < 4; i++) {
        ad_point p = ad_series_point(s, i);
        ck_assert_double_eq(p.ts, in[i].ts);
        ck_assert_double_eq(p.value, in[i].value);
        ck_assert_float_eq(p.score, in[i].score);
        ck_assert_int_eq(p.flagged, in[i].flagged);
        ck_assert_int_eq(p.warming_up, in[i].warming_up);
        if (isnan(in[i].predicted))
            ck_assert(isnan(p.predicted));
        else
            ck_assert_double_le(fabs(p.predicted - in[i].predicted),
                                fabs(in[i].predicted - in[i].value) * 1e-7 +
                                    fabs(in[i].value) * 1e-16);
    }
    ad_series_table_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("series");
    TCase *tc = tcase_create("table");

    tcase_add_test(tc, test_add_find_remove);
    tcase_add_test(tc, test_max_series);
    tcase_add_test(tc, test_growth_and_iteration);
    suite_add_tcase(s, tc);
    tc = tcase_create("recent");
    tcase_add_test(tc, test_recent_ring);
    tcase_add_test(tc, test_recent_point_kept);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
