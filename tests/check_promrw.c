/*
 * check_promrw.c - Prometheus remote write into the daemon (daemon/ingest/promrw.c): POST
 * /api/v1/write to a real daemon on loopback (core_harness.h), bodies built field by
 * field (pbwrite.h). What each request answers (204; 415 for the encoding or the content
 * type; 400 for a damaged body, a refused sample or series; 413 past max_decoded; 503
 * with Retry-After past AD_PRW_NEW_SERIES new series) and what each sample became
 * (ingested, out of order, duplicate, stale, non finite, a counter's rate primed or
 * reset, excluded, own output, unusable, key too long, table full), as the counters
 * (ad_promrw_stats) and the daemon's series show it. The end-to-end runs with a real
 * Prometheus are tests/test_prometheus.py's.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_harness.h"
#include "ingest/remote_write.h"
#include "pbwrite.h"

#define WRITE    "POST /api/v1/write HTTP/1.1\r\nHost: x\r\n"
#define SNAPPY   "Content-Encoding: snappy\r\n"
#define PROTOBUF "Content-Type: application/x-protobuf\r\n"
#define T0       1700000000000LL /* ms */

/* Prometheus' staleness marker: a NaN with this payload. */
static double stale_nan_bits(void)
{
    uint64_t b = 0x7ff0000000000002ull;
    double v;

    memcpy(&v, &b, sizeof(v));
    return v;
}

/* One series into the request: name (NULL: no __name__), an optional label, n samples at
 * T0 + ts_s[i] seconds. */
static void series(pb *req, const char *name, const char *label, const char *value, const int *ts_s,
                   const double *v, int n)
{
    pb ts = {0};

    if (name)
        pb_label(&ts, "__name__", name);
    if (label)
        pb_label(&ts, label, value);
    for (int i = 0; i < n; i++)
        pb_sample(&ts, T0 + 1000LL * ts_s[i], v[i]);
    pb_sub(req, 1, &ts);
}

/* One sample of one series. */
static void one(pb *req, const char *name, int ts_s, double v)
{
    series(req, name, NULL, NULL, &ts_s, &v, 1);
}

/* A metadata entry (WriteRequest field 3: type 1, family name 2). */
static void meta(pb *req, int type, const char *family)
{
    pb m = {0};

    pb_varint(&m, 1 << 3);
    pb_varint(&m, (uint64_t)type);
    pb_str(&m, 2, family);
    pb_sub(req, 3, &m);
}

/* Sends the request (emptied) with `head`'s headers; the status, the response's head and
 * body in *rhead, *resp unless NULL (free them). */
static int send_as(ch_daemon *h, const char *head, pb *req, char **rhead, char **resp)
{
    size_t len;
    char *body = pb_snappy(req, &len);
    int status = ch_http_full(h, head, body, len, rhead, resp);

    free(body);
    return status;
}

static int post(ch_daemon *h, pb *req)
{
    char *resp;
    int status = send_as(h, WRITE SNAPPY PROTOBUF, req, NULL, &resp);

    free(resp);
    return status;
}

static const ad_promrw_stats *stats(ch_daemon *h)
{
    return ad_promrw_get_stats(ad_daemon_promrw(h->d));
}

static const ad_series *series_of(ch_daemon *h, const char *key)
{
    return ad_series_table_find(ad_daemon_series(h->d), key, strlen(key));
}

static uint64_t scored(ch_daemon *h, const char *key)
{
    const ad_series *s = series_of(h, key);

    return s ? ad_detector_get_stats(s->det)->samples : 0;
}

/* Every outcome counter but those listed (-1 ends) is zero. */
static void only(ch_daemon *h, int a, int b)
{
    for (int o = 0; o < AD_PRW_NOUTCOMES; o++)
        if (o != a && o != b)
            ck_assert_msg(stats(h)->samples[o] == 0, "%s: %llu", ad_promrw_outcome_name(o),
                          (unsigned long long)stats(h)->samples[o]);
}

/* ---- the headers and the body ---- */

START_TEST(test_headers)
{
    ch_daemon h;
    pb req = {0};
    char *resp;

    ch_start(&h, NULL);
    one(&req, "g", 0, 1);
    ck_assert_int_eq(send_as(&h, WRITE PROTOBUF, &req, NULL, &resp), 415);
    ck_assert_msg(strstr(resp, "Content-Encoding: snappy"), "%s", resp);
    free(resp);
    one(&req, "g", 0, 1);
    ck_assert_int_eq(send_as(&h, WRITE "Content-Encoding: gzip\r\n" PROTOBUF, &req, NULL, NULL),
                     415);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_ENCODING], 2);
    one(&req, "g", 0, 1);
    ck_assert_int_eq(
        send_as(&h, WRITE SNAPPY "Content-Type: application/json\r\n", &req, NULL, NULL), 415);
    one(&req, "g", 0, 1);
    ck_assert_int_eq(
        send_as(&h, WRITE SNAPPY "Content-Type: application/x-protobufx\r\n", &req, NULL, NULL),
        415);
    /* remote write 2.0's message is not spoken */
    one(&req, "g", 0, 1);
    ck_assert_int_eq(send_as(&h,
                             WRITE SNAPPY "Content-Type: application/x-protobuf;"
                                          "proto=io.prometheus.write.v2.Request\r\n",
                             &req, NULL, NULL),
                     415);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_CONTENT_TYPE], 3);
    ck_assert_ptr_null(series_of(&h, "g")); /* nothing taken */
    /* Content-Type absent, or 1.0's message named, parameters allowed; any case of snappy */
    one(&req, "g", 0, 1);
    ck_assert_int_eq(send_as(&h, WRITE "Content-Encoding: SNAPPY\r\n", &req, NULL, NULL), 204);
    one(&req, "g", 1, 1);
    ck_assert_int_eq(send_as(&h,
                             WRITE SNAPPY "Content-Type: application/x-protobuf; "
                                          "proto=prometheus.WriteRequest\r\n",
                             &req, NULL, NULL),
                     204);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_OK], 2);
    ck_assert_uint_eq(scored(&h, "g"), 2);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_damaged_body)
{
    ch_daemon h;
    pb req = {0};
    char *resp;
    char *body;
    size_t len;

    ch_start(&h, "prometheus: {max_decoded: 2048}\n");
    /* not snappy */
    ck_assert_int_eq(ch_http(&h, WRITE SNAPPY PROTOBUF, "\x0a\xff", 2, &resp), 400);
    ck_assert_msg(strstr(resp, "not a snappy block"), "%s", resp);
    free(resp);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_SNAPPY], 1);
    /* snappy, but not a WriteRequest: a truncated varint */
    pb_put(&req, "\x0a\xff\xff", 3);
    body = pb_snappy(&req, &len);
    ck_assert_int_eq(ch_http(&h, WRITE SNAPPY PROTOBUF, body, len, &resp), 400);
    ck_assert_msg(strstr(resp, "not a protobuf"), "%s", resp);
    free(resp);
    free(body);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_PROTOBUF], 1);
    /* decodes to more than max_decoded */
    for (int i = 0; i < 40; i++) {
        char name[32];

        snprintf(name, sizeof(name), "metric_with_a_long_name_%d", i);
        one(&req, name, 0, 1);
    }
    ck_assert_int_eq(send_as(&h, WRITE SNAPPY PROTOBUF, &req, NULL, &resp), 413);
    ck_assert_msg(strstr(resp, "max_decoded"), "%s", resp);
    free(resp);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_TOO_LARGE], 1);
    ck_assert_uint_eq(ad_series_table_size(ad_daemon_series(h.d)), 0);
    ck_assert_uint_eq(stats(&h)->decoded_bytes, 0);
    only(&h, -1, -1);
    ch_stop(&h, 0);
}
END_TEST

/* ---- samples in order ---- */

START_TEST(test_order_duplicates)
{
    static const int ts[] = {10, 20, 20, 15, 30};
    static const double v[] = {1, 2, 3, 4, 5};
    ch_daemon h;
    pb req = {0};
    char *resp;

    ch_start(&h, NULL);
    /* one series' samples are taken in timestamp order: 15 is not late, 20 twice is */
    series(&req, "a", "job", "x", ts, v, 5);
    one(&req, "b", 5, 7);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 5);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_DUPLICATE], 1);
    ck_assert_uint_eq(scored(&h, "a{job=\"x\"}"), 4);
    ck_assert(series_of(&h, "a{job=\"x\"}")->last.value == 5);
    ck_assert_uint_gt(stats(&h)->decoded_bytes, 0);
    /* the same series twice in a request: the second's older sample is out of order;
     * the rest of the request is taken */
    series(&req, "a", "job", "x", (const int[]){40}, (const double[]){6}, 1);
    series(&req, "a", "job", "x", (const int[]){35}, (const double[]){7}, 1);
    one(&req, "b", 6, 8);
    ck_assert_int_eq(send_as(&h, WRITE SNAPPY PROTOBUF, &req, NULL, &resp), 400);
    ck_assert_msg(strstr(resp, "1 out of order, 0 of unusable series"), "%s", resp);
    free(resp);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_PARTIAL], 1);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_OUT_OF_ORDER], 1);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 7);
    ck_assert(series_of(&h, "a{job=\"x\"}")->last.value == 6);
    ck_assert(series_of(&h, "b")->last.value == 8);
    /* a resent batch: duplicates only, no error */
    one(&req, "a", 40, 6);
    series(&req, "a", "job", "x", (const int[]){40}, (const double[]){6}, 1);
    one(&req, "b", 6, 8);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_DUPLICATE], 3);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 8); /* plain "a" is new */
    /* older than the last, across requests: refused */
    one(&req, "b", 4, 1);
    ck_assert_int_eq(post(&h, &req), 400);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_OUT_OF_ORDER], 2);
    ck_assert_uint_eq(scored(&h, "b"), 2);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_OK], 2);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_PARTIAL], 2);
    ck_assert_uint_eq(stats(&h)->series, 3);
    ch_stop(&h, 0);
}
END_TEST

/* A series the daemon already has (restored from the store) starts from its last point. */
START_TEST(test_order_from_daemon)
{
    ch_daemon h;
    pb req = {0};
    ad_sample s = {"d", 1, (T0 / 1000) + 100, 1};

    ch_start(&h, NULL);
    ad_daemon_received(h.d, uv_hrtime());
    ad_daemon_sample(h.d, AD_PROTO_PROMETHEUS, &s);
    ad_daemon_flush(h.d);
    one(&req, "d", 50, 2);
    ck_assert_int_eq(post(&h, &req), 400);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_OUT_OF_ORDER], 1);
    one(&req, "d", 100, 2);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_DUPLICATE], 1);
    one(&req, "d", 101, 2);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(scored(&h, "d"), 2);
    ch_stop(&h, 0);
}
END_TEST

/* ---- staleness, NaN, counters ---- */

START_TEST(test_stale_nonfinite)
{
    const int ts[] = {10, 20, 30, 40, 50};
    const double v[] = {1, stale_nan_bits(), NAN, INFINITY, 2};
    ch_daemon h;
    pb req = {0};

    ch_start(&h, NULL);
    series(&req, "gauge", NULL, NULL, ts, v, 5);
    ck_assert_int_eq(post(&h, &req), 204); /* summaries send NaN: no error */
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 2);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_STALE], 1);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_NONFINITE], 2);
    ck_assert_uint_eq(scored(&h, "gauge"), 2);
    ck_assert(series_of(&h, "gauge")->last.value == 2);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_counter_rate)
{
    /* primes, +10 in 10 s, stale, primes again, +10 in 10 s, reset, +10 in 10 s */
    const int ts[] = {10, 20, 30, 40, 50, 60, 70};
    const double v[] = {100, 110, stale_nan_bits(), 200, 210, 5, 15};
    ch_daemon h;
    pb req = {0};
    const char *k = "req_total{job=\"x\"}";

    ch_start(&h, NULL);
    series(&req, "req_total", "job", "x", ts, v, 2);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_PRIMED], 1);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 1);
    ck_assert(series_of(&h, k)->last.value == 1.0); /* per second */
    series(&req, "req_total", "job", "x", ts + 2, v + 2, 5);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_STALE], 1);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_PRIMED], 2);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_RESET], 1);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 3);
    ck_assert_uint_eq(scored(&h, k), 3);
    ck_assert(series_of(&h, k)->last.value == 1.0);
    /* a counter's first sample alone primes without making the series */
    one(&req, "fresh_total", 10, 5);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_ptr_null(series_of(&h, "fresh_total"));
    one(&req, "fresh_total", 12, 9);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert(series_of(&h, "fresh_total")->last.value == 2.0);
    ch_stop(&h, 0);
}
END_TEST

/* Which series are counters: _total, metadata COUNTER, a histogram's or summary's
 * cumulative parts; settled when a series is first seen; only those `rate` matches. */
START_TEST(test_counter_kinds)
{
    static const int ts[] = {10, 20};
    static const double v[] = {100, 120};
    static const char *const rates[] = {"hits", "lat_bucket", "lat_count", "sum_sum", "late_after"};
    static const char *const raws[] = {"lat_other", "temp", "sum_bucket", "temp_sum", "b_total"};
    ch_daemon h;
    pb req = {0};

    ch_start(&h, "prometheus: {rate: ['*{job!=raw}', 'a_*']}\n");
    series(&req, "late_before", NULL, NULL, ts, v, 2);
    ck_assert_int_eq(post(&h, &req), 204);
    meta(&req, AD_RW_COUNTER, "hits");
    meta(&req, AD_RW_HISTOGRAM, "lat");
    meta(&req, AD_RW_SUMMARY, "sum");
    meta(&req, AD_RW_COUNTER, "late_before"); /* too late for a series already seen */
    meta(&req, AD_RW_COUNTER, "late_after");
    meta(&req, AD_RW_GAUGE, "temp");
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->metadata, 6);
    for (size_t i = 0; i < 5; i++) {
        series(&req, rates[i], NULL, NULL, ts, v, 2);
        series(&req, raws[i], "job", i == 4 ? "raw" : "y", ts, v, 2);
    }
    series(&req, "a_total", "job", "raw", ts, v, 2);
    series(&req, "late_before", NULL, NULL, (const int[]){30, 40}, (const double[]){140, 160}, 2);
    ck_assert_int_eq(post(&h, &req), 204);
    for (size_t i = 0; i < 5; i++) {
        char key[64];

        ck_assert_msg(series_of(&h, rates[i])->last.value == 2.0, "%s", rates[i]);
        snprintf(key, sizeof(key), "%s{job=\"%s\"}", raws[i], i == 4 ? "raw" : "y");
        ck_assert_msg(series_of(&h, key)->last.value == 120, "%s", key);
    }
    ck_assert(series_of(&h, "a_total{job=\"raw\"}")->last.value == 2.0);
    ck_assert(series_of(&h, "late_before")->last.value == 160); /* raw, as first seen */
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_PRIMED], 6);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_rate_none)
{
    static const int ts[] = {10, 20};
    static const double v[] = {100, 120};
    ch_daemon h;
    pb req = {0};

    ch_start(&h, "prometheus: {rate: []}\n");
    series(&req, "req_total", NULL, NULL, ts, v, 2);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 2);
    ck_assert(series_of(&h, "req_total")->last.value == 120);
    only(&h, AD_PRW_INGESTED, -1);
    ch_stop(&h, 0);
}
END_TEST

/* ---- which series ---- */

START_TEST(test_exclude_own)
{
    ch_daemon h;
    pb req = {0};

    ch_start(&h, NULL);
    one(&req, "anomaly_score", 10, 0.1);
    one(&req, "anomalous", 10, 0);
    one(&req, "anomaly_value", 10, 1);
    one(&req, "anomaly_predicted", 10, 1);
    one(&req, "anomalyd_series", 10, 3);
    one(&req, "anomaly_scores", 10, 3);    /* not one of them */
    ck_assert_int_eq(post(&h, &req), 204); /* not an error */
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_OWN_OUTPUT], 5);
    ck_assert_uint_eq(stats(&h)->series_dropped[3], 5);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 1);
    ck_assert_uint_eq(ad_series_table_size(ad_daemon_series(h.d)), 1);
    ck_assert(ad_promrw_own_family("anomalyd_x") && ad_promrw_own_family("anomalous"));
    ck_assert(!ad_promrw_own_family("anomalyd") && !ad_promrw_own_family("anomaly"));
    ch_stop(&h, 0);

    ch_start(&h, "prometheus: {exclude_own: false}\n");
    one(&req, "anomaly_score", 10, 0.1);
    one(&req, "anomalyd_series", 10, 3);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 2);
    only(&h, AD_PRW_INGESTED, -1);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_include_exclude)
{
    ch_daemon h;
    pb req = {0};

    ch_start(&h, "prometheus: {include: ['keep_*', 'job=mine'], exclude: ['keep_not*',"
                 " 'keep_x{env=dev}']}\n");
    one(&req, "keep_a", 10, 1);
    one(&req, "keep_not_this", 10, 1);
    one(&req, "other", 10, 1);
    series(&req, "other", "job", "mine", (const int[]){10}, (const double[]){1}, 1);
    series(&req, "keep_x", "env", "dev", (const int[]){10}, (const double[]){1}, 1);
    series(&req, "keep_x", "env", "prod", (const int[]){10}, (const double[]){1}, 1);
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_EXCLUDED], 3);
    ck_assert_uint_eq(stats(&h)->series_dropped[0], 3);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 3);
    ck_assert_ptr_nonnull(series_of(&h, "keep_a"));
    ck_assert_ptr_nonnull(series_of(&h, "other{job=\"mine\"}"));
    ck_assert_ptr_nonnull(series_of(&h, "keep_x{env=\"prod\"}"));
    ck_assert_ptr_null(series_of(&h, "other"));
    ck_assert_ptr_null(series_of(&h, "keep_x{env=\"dev\"}"));
    only(&h, AD_PRW_INGESTED, AD_PRW_EXCLUDED);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_refused_series)
{
    static const int ts[] = {10, 20};
    static const double v[] = {1, 2};
    char long_value[AD_KEY_MAX], *resp;
    ch_daemon h;
    pb req = {0};

    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    ch_start(&h, "max_series: 2\n");
    series(&req, NULL, "job", "x", ts, v, 2);        /* no __name__ */
    series(&req, "bad-name", NULL, NULL, ts, v, 2);  /* not a metric name */
    series(&req, "long", "l", long_value, ts, v, 2); /* key over AD_KEY_MAX */
    series(&req, "s1", NULL, NULL, ts, v, 2);
    series(&req, "s2", NULL, NULL, ts, v, 2);
    series(&req, "s3", NULL, NULL, ts, v, 2); /* over max_series */
    ck_assert_int_eq(send_as(&h, WRITE SNAPPY PROTOBUF, &req, NULL, &resp), 400);
    ck_assert_msg(strstr(resp, "0 out of order, 4 of unusable series, 2 of series whose key is "
                               "too long, 2 of new series with max_series reached"),
                  "%s", resp);
    free(resp);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_BAD_SERIES], 4);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_KEY_TOO_LONG], 2);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_STATE_FULL], 2);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], 4);
    ck_assert_uint_eq(stats(&h)->series_dropped[1], 2);
    ck_assert_uint_eq(stats(&h)->series_dropped[2], 1);
    ck_assert_uint_eq(stats(&h)->requests[AD_PRW_PARTIAL], 1);
    ck_assert_uint_eq(ad_series_table_size(ad_daemon_series(h.d)), 2);
    ch_stop(&h, 0);
}
END_TEST

/* ---- new series: AD_PRW_NEW_SERIES a request ---- */

START_TEST(test_new_series_deferred)
{
    const int n = AD_PRW_NEW_SERIES + 5;
    ch_daemon h;
    pb req = {0};
    char *rhead, *resp, name[32];
    int status;

    ch_start(&h, NULL);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        one(&req, name, 10, i);
    }
    meta(&req, AD_RW_GAUGE, "n0");
    {
        pb again = {0};

        pb_put(&again, req.b, req.n);
        status = send_as(&h, WRITE SNAPPY PROTOBUF, &req, &rhead, &resp);
        ck_assert_int_eq(status, 503);
        ck_assert_msg(strstr(rhead, "\r\nRetry-After: 1"), "%s", rhead);
        ck_assert_msg(strstr(resp, "5 new series wait"), "%s", resp);
        free(rhead);
        free(resp);
        /* the first share of series made, nothing else of the request taken or counted */
        ck_assert_uint_eq(ad_series_table_size(ad_daemon_series(h.d)), AD_PRW_NEW_SERIES);
        ck_assert_uint_eq(stats(&h)->requests[AD_PRW_DEFERRED], 1);
        ck_assert_uint_eq(stats(&h)->requests[AD_PRW_OK], 0);
        ck_assert_uint_eq(stats(&h)->metadata, 0);
        ck_assert_uint_eq(stats(&h)->decoded_bytes, 0);
        ck_assert_uint_eq(stats(&h)->series, 0);
        only(&h, -1, -1);
        ck_assert_uint_eq(scored(&h, "n0"), 0);
        /* the retry finds the rest: taken whole */
        ck_assert_int_eq(post(&h, &again), 204);
    }
    ck_assert_uint_eq(ad_series_table_size(ad_daemon_series(h.d)), (size_t)n);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_INGESTED], (uint64_t)n);
    ck_assert_uint_eq(stats(&h)->metadata, 1);
    ck_assert_uint_eq(stats(&h)->series, (size_t)n);
    ck_assert_uint_eq(scored(&h, "n0"), 1);
    ck_assert_uint_eq(scored(&h, "n1004"), 1);
    ch_stop(&h, 0);
}
END_TEST

/* A counter's first sample makes no series: those do not count against the share. */
START_TEST(test_new_series_primed_only)
{
    const int n = AD_PRW_NEW_SERIES + 5;
    ch_daemon h;
    pb req = {0};
    char name[32];

    ch_start(&h, NULL);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "c%d_total", i);
        one(&req, name, 10, i);
    }
    ck_assert_int_eq(post(&h, &req), 204);
    ck_assert_uint_eq(ad_series_table_size(ad_daemon_series(h.d)), 0);
    ck_assert_uint_eq(stats(&h)->samples[AD_PRW_PRIMED], (uint64_t)n);
    ck_assert_uint_eq(stats(&h)->series, (size_t)n);
    ch_stop(&h, 0);
}
END_TEST

/* ---- names and the NULL receiver ---- */

START_TEST(test_names)
{
    static const ad_promrw_stats zero;

    ck_assert_str_eq(ad_promrw_result_name(AD_PRW_OK), "ok");
    ck_assert_str_eq(ad_promrw_result_name(AD_PRW_DEFERRED), "deferred");
    ck_assert_str_eq(ad_promrw_result_name(AD_PRW_CONTENT_TYPE), "bad_content_type");
    ck_assert_str_eq(ad_promrw_result_name(AD_PRW_NRESULTS), "unknown");
    ck_assert_str_eq(ad_promrw_result_name(-1), "unknown");
    ck_assert_str_eq(ad_promrw_outcome_name(AD_PRW_PRIMED), "rate_primed");
    ck_assert_str_eq(ad_promrw_outcome_name(AD_PRW_RESET), "counter_reset");
    ck_assert_str_eq(ad_promrw_outcome_name(AD_PRW_STATE_FULL), "series_table_full");
    ck_assert_str_eq(ad_promrw_outcome_name(AD_PRW_OWN_OUTPUT), "own_output");
    ck_assert_str_eq(ad_promrw_outcome_name(AD_PRW_NOUTCOMES), "unknown");
    ck_assert_int_eq(memcmp(ad_promrw_get_stats(NULL), &zero, sizeof(zero)), 0);
    ck_assert_uint_eq(ad_promrw_bytes(NULL), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("promrw");
    TCase *tc;

    tc = tcase_create("requests");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_headers);
    tcase_add_test(tc, test_damaged_body);
    suite_add_tcase(s, tc);
    tc = tcase_create("order");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_order_duplicates);
    tcase_add_test(tc, test_order_from_daemon);
    suite_add_tcase(s, tc);
    tc = tcase_create("values");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_stale_nonfinite);
    tcase_add_test(tc, test_counter_rate);
    tcase_add_test(tc, test_counter_kinds);
    tcase_add_test(tc, test_rate_none);
    suite_add_tcase(s, tc);
    tc = tcase_create("series");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exclude_own);
    tcase_add_test(tc, test_include_exclude);
    tcase_add_test(tc, test_refused_series);
    suite_add_tcase(s, tc);
    tc = tcase_create("new_series");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_new_series_deferred);
    tcase_add_test(tc, test_new_series_primed_only);
    suite_add_tcase(s, tc);
    tc = tcase_create("names");
    tcase_add_test(tc, test_names);
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
