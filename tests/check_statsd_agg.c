/*
 * check_statsd_agg.c - statsd_agg.c: counters summed over value / rate with zeros for
 * quiet intervals until idle_flushes and then forgotten, rate-weighted timer means,
 * gauges set and moved by deltas, type clashes and bad metrics refused with the state
 * unchanged, the key limit, keys owned by the table, fn stopping the flush, many keys
 * (the table growing), and StatsD lines parsed then aggregated.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h" /* ad_err */
#include "proto_harness.h"
#include "ingest/proto_statsd.h"
#include "ingest/statsd_agg.h"

/* ---- helpers ---- */

static ad_statsd_agg *make(size_t max_keys, int idle)
{
    ad_statsd_agg *a = NULL;
    ck_assert_int_eq(ad_statsd_agg_create(max_keys, idle, &a), 0);
    ck_assert_ptr_nonnull(a);
    return a;
}

static int add(ad_statsd_agg *a, const char *key, double v, int type, double rate, int delta)
{
    ad_statsd_metric m = {key, strlen(key), v, rate, type, delta};
    return ad_statsd_agg_add(a, &m);
}

static ph_got *flush(ad_statsd_agg *a, double ts)
{
    static ph_got g;
    memset(&g, 0, sizeof(g));
    ck_assert_uint_eq(ad_statsd_agg_flush(a, ts, ph_got_sample, &g), g.n);
    return &g;
}

/* The value given for key, which must be there once. */
static double value_of(const ph_got *g, const char *key)
{
    int found = -1;
    for (size_t i = 0; i < g->n; i++)
        if (!strcmp(g->key[i], key)) {
            ck_assert_int_eq(found, -1);
            found = (int)i;
        }
    ck_assert_msg(found >= 0, "no sample for %s", key);
    return g->value[found];
}

/* ---- counters ---- */

START_TEST(test_counter_sum)
{
    ad_statsd_agg *a = make(16, 2);
    ck_assert_int_eq(add(a, "req", 1, AD_STATSD_COUNTER, 0.5, 0), 0);
    ck_assert_int_eq(add(a, "req", 2, AD_STATSD_COUNTER, 1, 0), 0);
    ck_assert_int_eq(add(a, "req", -1, AD_STATSD_COUNTER, 1, 0), 0);
    ph_got *g = flush(a, 100);
    ck_assert_uint_eq(g->n, 1);
    ck_assert_str_eq(g->key[0], "req");
    ck_assert_double_eq(g->value[0], 3);
    ck_assert_double_eq(g->ts[0], 100);
    ad_statsd_agg_free(a);
}
END_TEST

START_TEST(test_counter_idle)
{
    ad_statsd_agg *a = make(16, 2);
    add(a, "req", 5, AD_STATSD_COUNTER, 1, 0);
    ck_assert_double_eq(flush(a, 1)->value[0], 5);
    ph_got *g = flush(a, 2); /* quiet 1: 0 */
    ck_assert_uint_eq(g->n, 1);
    ck_assert_double_eq(g->value[0], 0);
    add(a, "req", 1, AD_STATSD_COUNTER, 1, 0); /* data again: the count starts over */
    ck_assert_double_eq(flush(a, 3)->value[0], 1);
    ck_assert_double_eq(flush(a, 4)->value[0], 0);
    ck_assert_uint_eq(ad_statsd_agg_size(a), 1);
    g = flush(a, 5); /* quiet 2: 0, then forgotten */
    ck_assert_uint_eq(g->n, 1);
    ck_assert_double_eq(g->value[0], 0);
    ck_assert_uint_eq(ad_statsd_agg_size(a), 0);
    ck_assert_uint_eq(flush(a, 6)->n, 0);
    ad_statsd_agg_free(a);

    a = make(16, 0); /* no zeros: forgotten at the first quiet flush */
    add(a, "req", 5, AD_STATSD_COUNTER, 1, 0);
    ck_assert_uint_eq(flush(a, 1)->n, 1);
    ck_assert_uint_eq(ad_statsd_agg_size(a), 1);
    ck_assert_uint_eq(flush(a, 2)->n, 0);
    ck_assert_uint_eq(ad_statsd_agg_size(a), 0);
    ad_statsd_agg_free(a);
}
END_TEST

/* ---- timers and gauges ---- */

START_TEST(test_timer_mean)
{
    ad_statsd_agg *a = make(16, 3);
    ck_assert_int_eq(add(a, "lat", 10, AD_STATSD_TIMER, 0.5, 0), 0); /* weight 2 */
    ck_assert_int_eq(add(a, "lat", 40, AD_STATSD_TIMER, 1, 0), 0);   /* weight 1 */
    ph_got *g = flush(a, 1);
    ck_assert_uint_eq(g->n, 1);
    ck_assert_double_eq_tol(g->value[0], 20, 1e-12);
    ck_assert_uint_eq(flush(a, 2)->n, 0); /* nothing without data */
    add(a, "lat", 7, AD_STATSD_TIMER, 1, 0);
    ck_assert_double_eq(flush(a, 3)->value[0], 7);
    flush(a, 4);
    flush(a, 5);
    ck_assert_uint_eq(ad_statsd_agg_size(a), 1);
    flush(a, 6); /* quiet for 3: forgotten */
    ck_assert_uint_eq(ad_statsd_agg_size(a), 0);
    ad_statsd_agg_free(a);
}
END_TEST

START_TEST(test_gauge)
{
    ad_statsd_agg *a = make(16, 3);
    ck_assert_int_eq(add(a, "temp", 5, AD_STATSD_GAUGE, 1, 0), 0);
    ck_assert_int_eq(add(a, "temp", 2, AD_STATSD_GAUGE, 1, 1), 0);
    ck_assert_int_eq(add(a, "temp", -1, AD_STATSD_GAUGE, 1, 1), 0);
    ck_assert_int_eq(add(a, "new", -3, AD_STATSD_GAUGE, 1, 1), 0); /* from 0 */
    ph_got *g = flush(a, 1);
    ck_assert_uint_eq(g->n, 2);
    ck_assert_double_eq(value_of(g, "temp"), 6);
    ck_assert_double_eq(value_of(g, "new"), -3);
    ck_assert_uint_eq(flush(a, 2)->n, 0);     /* not set or moved: nothing */
    add(a, "temp", 4, AD_STATSD_GAUGE, 1, 1); /* moves from its last value */
    g = flush(a, 3);
    ck_assert_uint_eq(g->n, 1);
    ck_assert_double_eq(value_of(g, "temp"), 10);
    add(a, "temp", 1, AD_STATSD_GAUGE, 0.1, 0); /* a rate does not scale a gauge */
    ck_assert_double_eq(value_of(flush(a, 4), "temp"), 1);
    ad_statsd_agg_free(a);
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_type_clash)
{
    ad_statsd_agg *a = make(16, 2);
    ck_assert_int_eq(add(a, "k", 1, AD_STATSD_COUNTER, 1, 0), 0);
    ck_assert_int_eq(add(a, "k", 1, AD_STATSD_GAUGE, 1, 0), -AD_EINVAL);
    ck_assert_int_eq(add(a, "k", 1, AD_STATSD_GAUGE, 1, 1), -AD_EINVAL);
    ck_assert_int_eq(add(a, "k", 1, AD_STATSD_TIMER, 1, 0), -AD_EINVAL);
    ph_got *g = flush(a, 1);
    ck_assert_uint_eq(g->n, 1);
    ck_assert_double_eq(g->value[0], 1);
    ad_statsd_agg_free(a);
}
END_TEST

START_TEST(test_bad_metrics)
{
    ad_statsd_agg *a = make(16, 2);
    ck_assert_int_eq(add(a, "k", NAN, AD_STATSD_COUNTER, 1, 0), -AD_EINVAL);
    ck_assert_int_eq(add(a, "k", 1, AD_STATSD_COUNTER, 0, 0), -AD_EINVAL);
    ck_assert_int_eq(add(a, "k", 1, AD_STATSD_COUNTER, 1.5, 0), -AD_EINVAL);
    ck_assert_int_eq(add(a, "k", 1, 3, 1, 0), -AD_EINVAL);
    ck_assert_int_eq(add(a, "k", 1, -1, 1, 0), -AD_EINVAL);
    ck_assert_uint_eq(ad_statsd_agg_size(a), 0);
    /* a sum that would overflow is refused, the sum so far kept */
    ck_assert_int_eq(add(a, "k", 1e308, AD_STATSD_COUNTER, 1, 0), 0);
    ck_assert_int_eq(add(a, "k", 1e308, AD_STATSD_COUNTER, 1, 0), -AD_EINVAL);
    ck_assert_int_eq(add(a, "t", 1e308, AD_STATSD_TIMER, 0.01, 0), -AD_EINVAL);
    ck_assert_uint_eq(ad_statsd_agg_size(a), 1);
    ck_assert_double_eq(flush(a, 1)->value[0], 1e308);
    ad_statsd_agg *b = NULL;
    ck_assert_int_eq(ad_statsd_agg_create(16, -1, &b), -AD_EINVAL);
    ck_assert_ptr_null(b);
    ad_statsd_agg_free(a);
    ad_statsd_agg_free(NULL);
}
END_TEST

START_TEST(test_full)
{
    ad_statsd_agg *a = make(2, 0);
    ck_assert_int_eq(add(a, "a", 1, AD_STATSD_COUNTER, 1, 0), 0);
    ck_assert_int_eq(add(a, "b", 1, AD_STATSD_GAUGE, 1, 0), 0);
    ck_assert_int_eq(add(a, "c", 1, AD_STATSD_COUNTER, 1, 0), -AD_EFULL);
    ck_assert_int_eq(add(a, "a", 1, AD_STATSD_COUNTER, 1, 0), 0); /* existing ones go on */
    ck_assert_uint_eq(ad_statsd_agg_size(a), 2);
    ph_got *g = flush(a, 1);
    ck_assert_uint_eq(g->n, 2);
    ck_assert_double_eq(value_of(g, "a"), 2);
    flush(a, 2); /* both forgotten: room again */
    ck_assert_uint_eq(ad_statsd_agg_size(a), 0);
    ck_assert_int_eq(add(a, "c", 1, AD_STATSD_COUNTER, 1, 0), 0);
    ad_statsd_agg_free(a);
}
END_TEST

/* ---- table ---- */

START_TEST(test_key_owned)
{
    ad_statsd_agg *a = make(16, 2);
    char key[16] = "req;a=1";
    ad_statsd_metric m = {key, 5, 1, 1, AD_STATSD_COUNTER, 0}; /* the first 5 bytes only */
    ck_assert_int_eq(ad_statsd_agg_add(a, &m), 0);
    memset(key, 'x', sizeof(key) - 1);
    ph_got *g = flush(a, 1);
    ck_assert_uint_eq(g->n, 1);
    ck_assert_str_eq(g->key[0], "req;a");
    ad_statsd_agg_free(a);
}
END_TEST

START_TEST(test_many_keys)
{
    ad_statsd_agg *a = make(1000, 1);
    char key[32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            ck_assert_int_eq(add(a, key, i, AD_STATSD_COUNTER, 1, 0), 0);
        }
    ck_assert_uint_eq(ad_statsd_agg_size(a), 1000);
    ck_assert_int_eq(add(a, "one-more", 1, AD_STATSD_COUNTER, 1, 0), -AD_EFULL);
    ph_got *g = flush(a, 1);
    ck_assert_uint_eq(g->n, 1000);
    double total = 0;
    for (size_t i = 0; i < g->n; i++)
        total += g->value[i];
    ck_assert_double_eq(total, 2.0 * 999 * 1000 / 2);
    ck_assert_double_eq(value_of(g, "k777"), 1554);
    ck_assert_uint_eq(flush(a, 2)->n, 1000); /* zeros, then forgotten */
    ck_assert_uint_eq(ad_statsd_agg_size(a), 0);
    ad_statsd_agg_free(a);
}
END_TEST

START_TEST(test_fn_stops)
{
    ad_statsd_agg *a = make(16, 5);
    add(a, "a", 1, AD_STATSD_COUNTER, 1, 0);
    add(a, "b", 1, AD_STATSD_COUNTER, 1, 0);
    add(a, "c", 1, AD_STATSD_COUNTER, 1, 0);
    ph_got g;
    memset(&g, 0, sizeof(g));
    g.stop_after = 1;
    ck_assert_uint_eq(ad_statsd_agg_flush(a, 1, ph_got_sample, &g), 1);
    ck_assert_uint_eq(g.n, 1);
    ph_got *z = flush(a, 2); /* the interval ended all the same: zeros for all three */
    ck_assert_uint_eq(z->n, 3);
    ck_assert_double_eq(value_of(z, "a") + value_of(z, "b") + value_of(z, "c"), 0);
    ad_statsd_agg_free(a);
}
END_TEST

START_TEST(test_parsed_lines)
{
    const char *lines[] = {"req:1|c|@0.1|#b:2,a:1",
                           "req:2|c|#a:1,b:2",
                           "lat:10|ms",
                           "lat:20|ms",
                           "temp:20|g",
                           "temp:-5|g",
                           "req:1|g|#a:1,b:2"};
    ad_statsd_agg *a = make(16, 2);
    char kb[64];
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        ad_statsd_metric m;
        ck_assert_int_eq(ad_statsd_parse(lines[i], strlen(lines[i]), kb, sizeof(kb), &m), 0);
        ck_assert_int_eq(ad_statsd_agg_add(a, &m), i == 6 ? -AD_EINVAL : 0);
    }
    ph_got *g = flush(a, 9);
    ck_assert_uint_eq(g->n, 3);
    ck_assert_double_eq_tol(value_of(g, "req;a=1;b=2"), 12, 1e-12);
    ck_assert_double_eq(value_of(g, "lat"), 15);
    ck_assert_double_eq(value_of(g, "temp"), 15);
    ad_statsd_agg_free(a);
}
END_TEST

static Suite *agg_suite(void)
{
    Suite *s = suite_create("statsd_agg");
    TCase *tc = tcase_create("counter");
    tcase_add_test(tc, test_counter_sum);
    tcase_add_test(tc, test_counter_idle);
    suite_add_tcase(s, tc);

    tc = tcase_create("timer_gauge");
    tcase_add_test(tc, test_timer_mean);
    tcase_add_test(tc, test_gauge);
    suite_add_tcase(s, tc);

    tc = tcase_create("refuse");
    tcase_add_test(tc, test_type_clash);
    tcase_add_test(tc, test_bad_metrics);
    tcase_add_test(tc, test_full);
    suite_add_tcase(s, tc);

    tc = tcase_create("table");
    tcase_add_test(tc, test_key_owned);
    tcase_add_test(tc, test_many_keys);
    tcase_add_test(tc, test_fn_stops);
    tcase_add_test(tc, test_parsed_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(agg_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
