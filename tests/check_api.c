/*
 * check_api.c - the HTTP API's routes (http/api.h) on a small real daemon over loopback:
 * health, status, the series list (match, limit, order, total), one series, its plot, a
 * key ending in /plot.svg, anomalies' arguments, POST /write's refusals, remote write's
 * headers, methods and unknown paths, and the bearer token.
 */
#include <check.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_harness.h"

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\n"

/* GET path: the status, the body parsed as JSON into *out (NULL when it is not JSON). */
static int get_json(ch_daemon *h, const char *head, cJSON **out)
{
    char *body;
    int status = ch_http(h, head, NULL, 0, &body);

    *out = cJSON_Parse(body);
    free(body);
    return status;
}

static double num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", name);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    ck_assert_msg(cJSON_IsString(v), "%s is not a string", name);
    return v->valuestring;
}

static void feed(ch_daemon *h)
{
    ch_line(h, AD_PROTO_GRAPHITE, "m.b 1 1700000000");
    ch_line(h, AD_PROTO_GRAPHITE, "m.a 1 1700000000");
    ch_line(h, AD_PROTO_GRAPHITE, "m.a 2 1700000010");
    ch_line(h, AD_PROTO_GRAPHITE, "m.c 3 1700000000");
    ch_line(h, AD_PROTO_GRAPHITE, "other 4 1700000000");
    ch_line(h, AD_PROTO_GRAPHITE, "x/plot.svg 5 1700000000");
    ch_line(h, AD_PROTO_GRAPHITE, "bad");
}

START_TEST(test_health_and_status)
{
    ch_daemon h;
    cJSON *o, *s;

    ch_start(&h, NULL);
    feed(&h);
    ck_assert_int_eq(get_json(&h, GET("/healthz"), &o), 200);
    ck_assert_str_eq(str(o, "status"), "ok");
    ck_assert(num(o, "series") == 5);
    cJSON_Delete(o);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/status"), &o), 200);
    ck_assert_str_eq(str(o, "version"), AD_VERSION);
    ck_assert(num(o, "series") == 5);
    ck_assert(num(o, "series_warming_up") == 5);
    ck_assert(num(o, "parse_errors") == 1);
    ck_assert(num(o, "anomalies") == 0);
    s = cJSON_GetObjectItemCaseSensitive(o, "samples");
    ck_assert(num(s, "graphite") == 6 && num(s, "influx") == 0);
    ck_assert(num(cJSON_GetObjectItemCaseSensitive(o, "memory"), "detectors") > 0);
    ck_assert(num(cJSON_GetObjectItemCaseSensitive(o, "training"), "queued") == 0);
    ck_assert(num(cJSON_GetObjectItemCaseSensitive(o, "events"), "published") == 0);
    cJSON_Delete(o);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_series_list)
{
    ch_daemon h;
    cJSON *o, *arr;

    ch_start(&h, NULL);
    feed(&h);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/series?match=m.*&limit=2"), &o), 200);
    ck_assert(num(o, "total") == 3);
    arr = cJSON_GetObjectItemCaseSensitive(o, "series");
    ck_assert_int_eq(cJSON_GetArraySize(arr), 2);
    ck_assert_str_eq(str(cJSON_GetArrayItem(arr, 0), "key"), "m.a");
    ck_assert_str_eq(str(cJSON_GetArrayItem(arr, 1), "key"), "m.b");
    ck_assert(num(cJSON_GetArrayItem(arr, 0), "samples") == 2);
    ck_assert(num(cJSON_GetArrayItem(arr, 0), "value") == 2);
    ck_assert_str_eq(str(cJSON_GetArrayItem(arr, 0), "protocol"), "graphite");
    cJSON_Delete(o);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/series"), &o), 200);
    ck_assert(num(o, "total") == 5);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "series")), 5);
    cJSON_Delete(o);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/series?limit=0"), &o), 200);
    ck_assert(num(o, "total") == 5);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "series")), 0);
    cJSON_Delete(o);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/series?limit=-1"), &o), 400);
    cJSON_Delete(o);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/series?limit=x"), &o), 400);
    cJSON_Delete(o);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_series_one_and_plot)
{
    ch_daemon h;
    cJSON *o;
    char *head, *body;

    ch_start(&h, NULL);
    feed(&h);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/series/m.a"), &o), 200);
    ck_assert_str_eq(str(o, "key"), "m.a");
    ck_assert(num(o, "rule") == -1);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "recent")), 2);
    ck_assert_str_eq(str(cJSON_GetObjectItemCaseSensitive(o, "model"), "cell"), "lstm");
    cJSON_Delete(o);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/series/nope"), &o), 404);
    cJSON_Delete(o);
    ck_assert_int_eq(ch_http_full(&h, GET("/api/v1/series/m.a/plot.svg"), NULL, 0, &head, &body),
                     200);
    ck_assert_msg(strstr(head, "Content-Type: image/svg+xml"), "%s", head);
    ck_assert_msg(!strncmp(body, "<svg", 4) || !strncmp(body, "<?xml", 5), "%.40s", body);
    free(head);
    free(body);
    /* a key that itself ends in /plot.svg is that series, not a plot */
    ck_assert_int_eq(get_json(&h, GET("/api/v1/series/x/plot.svg"), &o), 200);
    ck_assert_str_eq(str(o, "key"), "x/plot.svg");
    cJSON_Delete(o);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_anomalies_arguments)
{
    ch_daemon h;
    cJSON *o;

    ch_start(&h, NULL);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/anomalies?since=1700000000&limit=5"), &o), 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "anomalies")), 0);
    cJSON_Delete(o);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/anomalies?since=soon"), &o), 400);
    cJSON_Delete(o);
    ck_assert_int_eq(get_json(&h, GET("/api/v1/anomalies?limit=-2"), &o), 400);
    cJSON_Delete(o);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_methods_paths_refusals)
{
    ch_daemon h;

    ch_start(&h, NULL);
    ck_assert_int_eq(ch_http(&h, GET("/nope"), NULL, 0, NULL), 404);
    ck_assert_int_eq(ch_http(&h, GET("/api/v1/nope"), NULL, 0, NULL), 404);
    ck_assert_int_eq(ch_http(&h, "POST /healthz HTTP/1.1\r\nHost: x\r\n", "", 0, NULL), 405);
    ck_assert_int_eq(ch_http(&h, "POST /api/v1/status HTTP/1.1\r\nHost: x\r\n", "", 0, NULL),
                     405);
    ck_assert_int_eq(ch_http(&h, GET("/write"), NULL, 0, NULL), 405);
    ck_assert_int_eq(ch_http(&h, GET("/api/v1/write"), NULL, 0, NULL), 405);
    ck_assert_int_eq(ch_http(&h, "POST /write?precision=xx HTTP/1.1\r\nHost: x\r\n", "a v=1", 5,
                             NULL),
                     400);
    ck_assert_int_eq(ch_http(&h, "POST /write HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n",
                             "a v=1", 5, NULL),
                     415);
    /* remote write without snappy, or with another content type */
    ck_assert_int_eq(ch_http(&h, "POST /api/v1/write HTTP/1.1\r\nHost: x\r\n", "x", 1, NULL), 415);
    ck_assert_int_eq(ch_http(&h,
                             "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Encoding: "
                             "snappy\r\nContent-Type: text/plain\r\n",
                             "x", 1, NULL),
                     415);
    ck_assert_int_eq(ch_http(&h,
                             "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Encoding: "
                             "snappy\r\n",
                             "\xff\xff\xff", 3, NULL),
                     400);
    ck_assert_uint_eq(ad_daemon_get_stats(h.d)->samples[AD_PROTO_INFLUX], 0);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_token)
{
    ch_daemon h;
    char *head;

    ch_start(&h, "http: {address: 127.0.0.1, port: 0, token: s3cret}\n");
    ck_assert_int_eq(ch_http_full(&h, GET("/api/v1/status"), NULL, 0, &head, NULL), 401);
    ck_assert_msg(strstr(head, "WWW-Authenticate: Bearer"), "%s", head);
    free(head);
    ck_assert_int_eq(ch_http(&h, GET("/api/v1/status") "Authorization: Bearer nope\r\n", NULL, 0,
                             NULL),
                     401);
    ck_assert_int_eq(ch_http(&h, GET("/api/v1/status") "Authorization: Bearer s3cret\r\n", NULL,
                             0, NULL),
                     200);
    ck_assert_int_eq(ch_http(&h, "POST /write HTTP/1.1\r\nHost: x\r\n", "a v=1", 5, NULL), 401);
    ck_assert_int_eq(ch_http(&h, GET("/metrics"), NULL, 0, NULL), 200);
    ck_assert_int_eq(ch_http(&h, GET("/healthz"), NULL, 0, NULL), 200);
    ch_stop(&h, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("routes");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_health_and_status);
    tcase_add_test(tc, test_series_list);
    tcase_add_test(tc, test_series_one_and_plot);
    tcase_add_test(tc, test_anomalies_arguments);
    tcase_add_test(tc, test_methods_paths_refusals);
    tcase_add_test(tc, test_token);
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
