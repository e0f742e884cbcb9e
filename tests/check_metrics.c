/*
 * check_metrics.c - the Prometheus exposition of a small real daemon (http/metrics.h),
 * parsed back: every line is a HELP, a TYPE or a sample; every family has its HELP and
 * TYPE once, before its samples, which follow together; histograms are cumulative and
 * end in +Inf, _sum and _count; the figures are the daemon's (samples, parse errors,
 * series, per-series values, remote-write series with their own labels, latency); label
 * values are escaped; ?series=0 leaves out the per-series families; and every family
 * written is one remote write's exclude_own recognises (ad_promrw_own_family).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_harness.h"
#include "http/metrics.h"

#define MAX_SAMPLES 4096
#define MAX_FAMILIES 256

typedef struct expo {
    int n;
    char *series[MAX_SAMPLES]; /* name{labels} as written */
    double value[MAX_SAMPLES];
    int nfam;
    char *fam[MAX_FAMILIES];   /* family names, in order */
    char *type[MAX_FAMILIES];
} expo;

/* The family a sample's name belongs to, given the family declared last. */
static int of_family(const char *name, size_t n, const char *fam, const char *type)
{
    size_t k = strlen(fam);

    if (n == k && !strncmp(name, fam, k))
        return 1;
    if (strcmp(type, "histogram") || n <= k || strncmp(name, fam, k))
        return 0;
    return !strncmp(name + k, "_bucket", n - k) || !strncmp(name + k, "_sum", n - k) ||
           !strncmp(name + k, "_count", n - k);
}

static double parse_value(const char *v)
{
    char *end;
    double x;

    if (!strcmp(v, "NaN"))
        return NAN;
    if (!strcmp(v, "+Inf"))
        return INFINITY;
    if (!strcmp(v, "-Inf"))
        return -INFINITY;
    x = strtod(v, &end);
    ck_assert_msg(*v && !*end, "bad value '%s'", v);
    return x;
}

/* Parses text into e, asserting the format's rules line by line. */
static void parse(const char *text, size_t len, expo *e)
{
    const char *p = text, *end = text + len;
    int help_for = -1; /* the family whose HELP came last, awaiting its TYPE */

    memset(e, 0, sizeof(*e));
    ck_assert_msg(len > 0 && text[len - 1] == '\n', "the exposition ends with a newline");
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char line[4096], *sp;
        size_t n = (size_t)(nl - p);

        ck_assert(nl && n < sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        if (!strncmp(line, "# HELP ", 7)) {
            char *name = line + 7;

            ck_assert_msg((sp = strchr(name, ' ')) && sp[1], "HELP without text: %s", line);
            *sp = '\0';
            for (int i = 0; i < e->nfam; i++)
                ck_assert_msg(strcmp(e->fam[i], name), "family %s declared twice", name);
            ck_assert(e->nfam < MAX_FAMILIES);
            e->fam[e->nfam] = strdup(name);
            help_for = e->nfam++;
        } else if (!strncmp(line, "# TYPE ", 7)) {
            char *name = line + 7;

            ck_assert_msg(help_for >= 0, "TYPE without HELP: %s", line);
            ck_assert((sp = strchr(name, ' ')));
            *sp = '\0';
            ck_assert_str_eq(name, e->fam[help_for]);
            ck_assert_msg(!strcmp(sp + 1, "counter") || !strcmp(sp + 1, "gauge") ||
                              !strcmp(sp + 1, "histogram"),
                          "type %s", sp + 1);
            e->type[help_for] = strdup(sp + 1);
            help_for = -1;
        } else {
            const char *brace;
            size_t nlen;

            ck_assert_msg(line[0] != '#' && line[0], "stray line '%s'", line);
            ck_assert_msg(help_for < 0 && e->nfam > 0, "sample before TYPE: %s", line);
            ck_assert_msg((sp = strrchr(line, ' ')), "no value: %s", line);
            *sp = '\0';
            brace = strchr(line, '{');
            nlen = brace ? (size_t)(brace - line) : strlen(line);
            ck_assert_msg(!brace || line[strlen(line) - 1] == '}', "labels: %s", line);
            ck_assert_msg(of_family(line, nlen, e->fam[e->nfam - 1], e->type[e->nfam - 1]),
                          "%s outside its family (after %s)", line, e->fam[e->nfam - 1]);
            ck_assert(e->n < MAX_SAMPLES);
            for (int i = 0; i < e->n; i++)
                ck_assert_msg(strcmp(e->series[i], line), "sample %s twice", line);
            e->series[e->n] = strdup(line);
            e->value[e->n++] = parse_value(sp + 1);
        }
    }
    ck_assert_int_eq(help_for, -1);
}

static void expo_free(expo *e)
{
    for (int i = 0; i < e->n; i++)
        free(e->series[i]);
    for (int i = 0; i < e->nfam; i++) {
        free(e->fam[i]);
        free(e->type[i]);
    }
}

/* The value of a sample, or NAN with *found 0. */
static double value_of(const expo *e, const char *series, int *found)
{
    for (int i = 0; i < e->n; i++)
        if (!strcmp(e->series[i], series)) {
            *found = 1;
            return e->value[i];
        }
    *found = 0;
    return NAN;
}

static double must(const expo *e, const char *series)
{
    int found;
    double v = value_of(e, series, &found);

    ck_assert_msg(found, "no sample %s", series);
    return v;
}

static int has_family(const expo *e, const char *name)
{
    for (int i = 0; i < e->nfam; i++)
        if (!strcmp(e->fam[i], name))
            return 1;
    return 0;
}

/* A histogram's buckets never decrease, end at +Inf equal to _count. */
static void check_histogram(const expo *e, const char *name)
{
    char prefix[128], s[160];
    double last = 0;
    int buckets = 0;

    snprintf(prefix, sizeof(prefix), "%s_bucket{le=\"", name);
    for (int i = 0; i < e->n; i++) {
        if (strncmp(e->series[i], prefix, strlen(prefix)))
            continue;
        ck_assert_msg(e->value[i] >= last, "%s decreases", e->series[i]);
        last = e->value[i];
        buckets++;
    }
    ck_assert_int_gt(buckets, 1);
    snprintf(s, sizeof(s), "%s_bucket{le=\"+Inf\"}", name);
    ck_assert(must(e, s) == last);
    snprintf(s, sizeof(s), "%s_count", name);
    ck_assert(must(e, s) == last);
    snprintf(s, sizeof(s), "%s_sum", name);
    ck_assert(must(e, s) >= 0);
}

/* A daemon with three line series, a refused line, a remote-written one. */
static void feed(ch_daemon *h)
{
    static const int64_t ts[] = {1700000000000};
    static const double v[] = {7.5};
    size_t len;
    char *body = ch_remote_write("temp", "job", "x", ts, v, 1, &len), *resp;
    int status;

    ck_assert_int_eq(ch_line(h, AD_PROTO_GRAPHITE, "m.a 1 1700000000"), 1);
    ck_assert_int_eq(ch_line(h, AD_PROTO_GRAPHITE, "m.a 2.5 1700000010"), 1);
    ck_assert_int_eq(ch_line(h, AD_PROTO_GRAPHITE, "m.b 3 1700000000"), 1);
    ck_assert_int_eq(ch_line(h, AD_PROTO_GRAPHITE, "oops"), -AD_PE_SYNTAX);
    ck_assert_int_eq(ch_line(h, AD_PROTO_JSONL,
                             "{\"series\":\"q\\\"uo\\\\te\",\"value\":4,\"ts\":1700000000}"),
                     1);
    status = ch_http(h,
                     "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Encoding: snappy\r\n",
                     body, len, &resp);
    ck_assert_msg(status == 204, "%d %s", status, resp);
    free(resp);
    free(body);
}

START_TEST(test_exposition)
{
    ch_daemon h;
    char *text;
    size_t len;
    expo e;

    ch_start(&h, NULL);
    feed(&h);
    ck_assert_int_eq(ad_metrics_render(h.d, &text, &len), 0);
    ck_assert_uint_eq(strlen(text), len);
    parse(text, len, &e);
    free(text);
    ck_assert(must(&e, "anomalyd_build_info{version=\"" AD_VERSION "\"}") == 1);
    ck_assert(must(&e, "anomalyd_samples_total{protocol=\"graphite\"}") == 3);
    ck_assert(must(&e, "anomalyd_samples_total{protocol=\"jsonl\"}") == 1);
    ck_assert(must(&e, "anomalyd_samples_total{protocol=\"prometheus\"}") == 1);
    ck_assert(must(&e, "anomalyd_parse_errors_total{protocol=\"graphite\",reason=\"syntax\"}") ==
              1);
    ck_assert(must(&e, "anomalyd_series") == 4);
    ck_assert(must(&e, "anomalyd_series_created_total") == 4);
    ck_assert(must(&e, "anomalyd_values_refused_total{reason=\"time_backwards\"}") == 0);
    ck_assert(must(&e, "anomalyd_series_value{series=\"m.a\"}") == 2.5);
    ck_assert(must(&e, "anomalyd_series_samples_total{series=\"m.a\"}") == 2);
    ck_assert(must(&e, "anomalyd_series_warming_up{series=\"m.b\"}") == 1);
    ck_assert(must(&e, "anomalyd_series_value{series=\"temp{job=\\\"x\\\"}\"}") == 7.5);
    ck_assert(must(&e, "anomaly_value{job=\"x\",source_metric=\"temp\"}") == 7.5);
    ck_assert(isnan(must(&e, "anomaly_predicted{job=\"x\",source_metric=\"temp\"}")) ||
              isfinite(must(&e, "anomaly_predicted{job=\"x\",source_metric=\"temp\"}")));
    ck_assert(must(&e, "anomalyd_remote_write_requests_total{result=\"ok\"}") == 1);
    ck_assert(must(&e, "anomalyd_remote_write_samples_total{result=\"ingested\"}") == 1);
    ck_assert(must(&e, "anomalyd_remote_write_series") == 1);
    ck_assert(must(&e, "anomalyd_store_restored_series") == 0);
    ck_assert(must(&e, "anomalyd_reloads_total{result=\"applied\"}") == 0);
    ck_assert(must(&e, "anomalyd_families") == 0);
    ck_assert(must(&e, "anomalyd_ingest_latency_seconds_count") == 5);
    ck_assert(must(&e, "anomalyd_memory_bytes{part=\"detectors\"}") > 0);
    ck_assert(must(&e, "anomalyd_memory_bytes{part=\"remote_write\"}") > 0);
    ck_assert(must(&e, "anomalyd_http_requests_total") == 1);
    check_histogram(&e, "anomalyd_ingest_latency_seconds");
    check_histogram(&e, "anomalyd_training_duration_seconds");
    ck_assert(!has_family(&e, "anomalyd_store_checkpoints_total")); /* no store */
    ck_assert(has_family(&e, "anomalyd_connections_open"));       /* listeners: none */
    /* every family is anomalyd's own output to remote write's exclude_own */
    for (int i = 0; i < e.nfam; i++)
        ck_assert_msg(ad_promrw_own_family(e.fam[i]), "%s not own", e.fam[i]);
    ck_assert(!ad_promrw_own_family("node_load1"));
    expo_free(&e);
    ch_stop(&h, 0);
}
END_TEST

/* A key with a quote and a backslash is a label value escaped as the format wants. */
START_TEST(test_label_escaping)
{
    ch_daemon h;
    char *text;
    size_t len;
    expo e;

    ch_start(&h, NULL);
    feed(&h);
    ck_assert_ptr_nonnull(ad_series_table_find(ad_daemon_series(h.d), "q\"uo\\te", 7));
    ck_assert_int_eq(ad_metrics_render(h.d, &text, &len), 0);
    parse(text, len, &e);
    free(text);
    ck_assert(must(&e, "anomalyd_series_value{series=\"q\\\"uo\\\\te\"}") == 4);
    expo_free(&e);
    ch_stop(&h, 0);
}
END_TEST

/* ?series=0: the daemon's own figures, the remote-write counters among them. */
START_TEST(test_without_series)
{
    ch_daemon h;
    char *text;
    size_t len;
    expo e;
    int found;

    ch_start(&h, NULL);
    feed(&h);
    ck_assert_int_eq(ad_metrics_render_opt(h.d, 0, &text, &len), 0);
    parse(text, len, &e);
    free(text);
    for (int i = 0; i < e.n; i++)
        ck_assert_msg(!strstr(e.series[i], "{series=\"") &&
                          strncmp(e.series[i], "anomaly_", 8) &&
                          strncmp(e.series[i], "anomalous", 9),
                      "%s with series=0", e.series[i]);
    ck_assert(!has_family(&e, "anomaly_score"));
    ck_assert(must(&e, "anomalyd_series") == 4);
    ck_assert(must(&e, "anomalyd_remote_write_requests_total{result=\"ok\"}") == 1);
    ck_assert(must(&e, "anomalyd_memory_bytes{part=\"rss\"}") > 0);
    value_of(&e, "anomalyd_memory_bytes{part=\"detectors\"}", &found);
    ck_assert(!found);
    expo_free(&e);
    ch_stop(&h, 0);
}
END_TEST

/* GET /metrics serves the same exposition. */
START_TEST(test_get_metrics)
{
    ch_daemon h;
    char *resp;
    expo e;

    ch_start(&h, NULL);
    feed(&h);
    ck_assert_int_eq(ch_http(&h, "GET /metrics HTTP/1.1\r\nHost: x\r\n", NULL, 0, &resp), 200);
    parse(resp, strlen(resp), &e);
    free(resp);
    ck_assert(must(&e, "anomalyd_samples_total{protocol=\"graphite\"}") == 3);
    ck_assert(has_family(&e, "anomaly_score"));
    expo_free(&e);
    ck_assert_int_eq(ch_http(&h, "GET /metrics?series=0 HTTP/1.1\r\nHost: x\r\n", NULL, 0, &resp),
                     200);
    parse(resp, strlen(resp), &e);
    free(resp);
    ck_assert(!has_family(&e, "anomaly_score"));
    ck_assert(must(&e, "anomalyd_http_requests_total") == 3); /* a write, two scrapes */
    expo_free(&e);
    ch_stop(&h, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("exposition");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exposition);
    tcase_add_test(tc, test_label_escaping);
    tcase_add_test(tc, test_without_series);
    tcase_add_test(tc, test_get_metrics);
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
