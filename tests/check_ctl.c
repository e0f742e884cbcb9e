/*
 * check_ctl.c - anomalyctl's pure pieces: sparklines (ctl_spark.c), CSV rows (csv.c),
 * replay's protocol lines (ctl_replay.c), HOST:PORT, lists of them (a cluster's
 * instances), URL escaping, the JSON readers and the connect loop on loopback
 * (ctl_http.c), gradflow's SVG (ctl_gradflow.c).
 * The commands themselves run against the real daemon in test_ctl.py.
 */
#include <arpa/inet.h>
#include <check.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctl/csv.h"
#include "ctl/ctl_gradflow.h"
#include "ctl/ctl_http.h"
#include "ctl/ctl_replay.h"
#include "ctl/ctl_spark.h"
#include "net.h"

START_TEST(test_spark_levels)
{
    double v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    char out[64];

    ck_assert_int_eq(ad_spark_line(v, 8, 60, 0, 7, AD_SPARK_EXTREME, 0, out, sizeof(out)), 8);
    ck_assert_str_eq(out, "▁▂▃▄▅▆▇█");
    ck_assert_int_eq(ad_spark_line(v, 8, 60, 0, 7, AD_SPARK_EXTREME, 1, out, sizeof(out)), 8);
    ck_assert_str_eq(out, "_.-:=+*#");
    v[3] = NAN;
    ad_spark_line(v, 8, 60, 0, 7, AD_SPARK_EXTREME, 1, out, sizeof(out));
    ck_assert_str_eq(out, "_.- =+*#");
    /* a constant: the middle; beyond the range: clamped */
    ad_spark_line(v, 3, 60, 5, 5, AD_SPARK_EXTREME, 1, out, sizeof(out));
    ck_assert_str_eq(out, "===");
    ad_spark_line(v, 8, 60, 2, 4, AD_SPARK_MAX, 1, out, sizeof(out));
    ck_assert_str_eq(out, "___ ####");
    ck_assert_int_eq(ad_spark_line(v, 8, 60, 0, 7, AD_SPARK_EXTREME, 0, out, 10), -AD_EFULL);
    ck_assert_int_eq(ad_spark_line(v, 0, 60, 0, 7, AD_SPARK_EXTREME, 0, out, 10), 0);
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_spark_folding_keeps_spikes)
{
    double v[100];
    unsigned char f[100] = {0};
    char out[512], marks[64];

    for (int i = 0; i < 100; i++)
        v[i] = 10;
    v[57] = 100;
    f[57] = 1;
    ck_assert_int_eq(ad_spark_line(v, 100, 10, 10, 100, AD_SPARK_EXTREME, 1, out, sizeof(out)),
                     10);
    ck_assert_str_eq(out, "_____#____"); /* a mean would have made it '.' */
    ad_spark_line(v, 100, 10, 10, 100, AD_SPARK_MAX, 1, out, sizeof(out));
    ck_assert_str_eq(out, "_____#____");
    ck_assert_int_eq(ad_spark_marks(f, 100, 10, marks, sizeof(marks)), 1);
    ck_assert_str_eq(marks, "     ^"); /* trailing spaces trimmed */
    f[57] = 0;
    ck_assert_int_eq(ad_spark_marks(f, 100, 10, marks, sizeof(marks)), 0);
    ck_assert_str_eq(marks, "");
    ck_assert_int_eq(ad_spark_marks(f, 100, 10, marks, 10), -AD_EFULL);
    /* huge values do not overflow the scaling */
    v[0] = -1.7e308;
    v[1] = 1.7e308;
    ad_spark_line(v, 2, 10, -1.7e308, 1.7e308, AD_SPARK_EXTREME, 1, out, sizeof(out));
    ck_assert_str_eq(out, "_#");
}
END_TEST

START_TEST(test_csv_rows)
{
    char line[64], *a, *b;
    double t;

    ck_assert_int_eq(ad_csv_parse_time("2014-04-10 00:02:00", &t), 0);
    ck_assert_double_eq(t, 1397088120);
    ck_assert_int_eq(ad_csv_parse_time("2014-04-10T00:02:00.5", &t), 0);
    ck_assert_double_eq(t, 1397088120.5);
    ck_assert_int_eq(ad_csv_parse_time("1397088120", &t), 0);
    ck_assert_double_eq(t, 1397088120);
    ck_assert_int_eq(ad_csv_parse_time("2014-13-10 00:02:00", &t), -1);
    ck_assert_int_eq(ad_csv_parse_time("yesterday", &t), -1);
    ck_assert_int_eq(ad_csv_parse_time("12 monkeys", &t), -1);
    strcpy(line, "2014-04-10 00:02:00, 42.5\r\n");
    ck_assert_int_eq(ad_csv_split2(line, &a, &b), 0);
    ck_assert_str_eq(a, "2014-04-10 00:02:00");
    ck_assert_str_eq(b, "42.5");
    strcpy(line, "a,b,c\n");
    ck_assert_int_eq(ad_csv_split2(line, &a, &b), -1);
    strcpy(line, "abc\n");
    ck_assert_int_eq(ad_csv_split2(line, &a, &b), -1);
    ck_assert(ad_csv_is_header("timestamp,value\n"));
    ck_assert(!ad_csv_is_header("2014-04-10 00:02:00,1\n"));
}
END_TEST

START_TEST(test_replay_lines)
{
    char out[128];

    ck_assert_int_eq(ad_replay_format(AD_REPLAY_GRAPHITE, "a.b", 1397088120, 42.5, 1, out,
                                      sizeof(out)), 20);
    ck_assert_str_eq(out, "a.b 42.5 1397088120\n");
    ad_replay_format(AD_REPLAY_GRAPHITE, "a.b", 1397088120.25, 0.1, 1, out, sizeof(out));
    ck_assert_str_eq(out, "a.b 0.10000000000000001 1397088120.25\n"); /* reads back exactly */
    ad_replay_format(AD_REPLAY_INFLUX, "m\\ x", 1397088120, -3, 1e9, out, sizeof(out));
    ck_assert_str_eq(out, "m\\ x value=-3 1397088120000000000\n");
    ad_replay_format(AD_REPLAY_INFLUX, "m", 1397088120.5, 1, 1, out, sizeof(out));
    ck_assert_str_eq(out, "m value=1 1397088121\n");
    ad_replay_format(AD_REPLAY_JSONL, "\"j\\\"s\"", 100, 2, 1, out, sizeof(out));
    ck_assert_str_eq(out, "{\"series\":\"j\\\"s\",\"value\":2,\"ts\":100}\n");
    ck_assert_int_eq(ad_replay_format(AD_REPLAY_GRAPHITE, "a.b", 1, 1, 1, out, 8), -1);
}
END_TEST

START_TEST(test_addresses)
{
    char host[64], port[16], err[256];

    ck_assert_int_eq(ad_ctl_split_address("127.0.0.1:8080", "--http", host, sizeof(host), port,
                                          sizeof(port), err, sizeof(err)), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_str_eq(port, "8080");
    ck_assert_int_eq(ad_ctl_split_address("[::1]:99", "--http", host, sizeof(host), port,
                                          sizeof(port), err, sizeof(err)), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_str_eq(port, "99");
    ck_assert_int_eq(ad_ctl_split_address("localhost:1", "--to", host, sizeof(host), port,
                                          sizeof(port), err, sizeof(err)), 0);
    ck_assert_str_eq(host, "localhost");
    const char *bad[] = {"", "x", ":80", "h:", "h:0", "h:65536", "h:8x", "::1:80", "[::1]80",
                         "[]:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ck_assert_int_eq(ad_ctl_split_address(bad[i], "--to", host, sizeof(host), port,
                                              sizeof(port), err, sizeof(err)), -AD_EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "--to takes HOST:PORT"));
    }
}
END_TEST

START_TEST(test_address_lists)
{
    ad_ctl_addrs a;
    char err[512];

    ck_assert_int_eq(ad_ctl_addrs_parse(&a, "127.0.0.1:8080", "--http", err, sizeof(err)), 0);
    ck_assert_int_eq(a.n, 1);
    ck_assert_str_eq(a.v[0], "127.0.0.1:8080");
    ad_ctl_addrs_free(&a);
    ck_assert_int_eq(ad_ctl_addrs_parse(&a, "h1:1, [::1]:2 ,\th3:3", "--http", err,
                                        sizeof(err)), 0);
    ck_assert_int_eq(a.n, 3);
    ck_assert_str_eq(a.v[0], "h1:1");
    ck_assert_str_eq(a.v[1], "[::1]:2");
    ck_assert_str_eq(a.v[2], "h3:3");
    ad_ctl_addrs_free(&a);
    ck_assert_int_eq(a.n, 0);
    ck_assert_ptr_null(a.v);

    struct { const char *list, *why; } bad[] = {
        {"", "an empty address"},        {",", "an empty address"},
        {"h:1,", "an empty address"},    {"h:1, ,h:2", "an empty address"},
        {"h:1,h", "--http takes HOST:PORT"}, {"h:1,h:0", "--http takes HOST:PORT"},
        {"h:1,h:2,h:1", "--http names h:1 twice"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        ck_assert_int_eq(ad_ctl_addrs_parse(&a, bad[i].list, "--http", err, sizeof(err)),
                         -AD_EINVAL);
        ck_assert_msg(strstr(err, bad[i].why), "%s: %s", bad[i].list, err);
        ck_assert_int_eq(a.n, 0);
        ck_assert_ptr_null(a.v);
        ck_assert_ptr_null(a.buf);
    }
    /* at most AD_CTL_MAX_INSTANCES */
    char big[AD_CTL_MAX_INSTANCES * 16 + 16];
    size_t n = 0;
    for (int i = 0; i < AD_CTL_MAX_INSTANCES; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%sh:%d", i ? "," : "", i + 1);
    ck_assert_int_eq(ad_ctl_addrs_parse(&a, big, "--http", err, sizeof(err)), 0);
    ck_assert_int_eq(a.n, AD_CTL_MAX_INSTANCES);
    ck_assert_str_eq(a.v[AD_CTL_MAX_INSTANCES - 1], "h:256");
    ad_ctl_addrs_free(&a);
    snprintf(big + n, sizeof(big) - n, ",h:9999");
    ck_assert_int_eq(ad_ctl_addrs_parse(&a, big, "--http", err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "at most 256 addresses"));
}
END_TEST

START_TEST(test_url_escape)
{
    char out[64];

    ck_assert_int_eq(ad_ctl_url_escape("cpu.user;host=a b/c%", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "cpu.user%3Bhost%3Da%20b%2Fc%25");
    ck_assert_int_eq(ad_ctl_url_escape("\xc3\xa9-_~", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "%C3%A9-_~");
    ck_assert_int_eq(ad_ctl_url_escape("abc", out, 3), -AD_EFULL);
    ck_assert_int_eq(ad_ctl_url_escape("a/", out, 4), -AD_EFULL);
}
END_TEST

/* The JSON readers the commands share: a number or NAN, a string or "?". */
START_TEST(test_json_fields)
{
    cJSON *o = cJSON_Parse("{\"n\": 2.5, \"s\": \"x\", \"z\": null, \"t\": \"3\"}");

    ck_assert_ptr_nonnull(o);
    ck_assert(ad_ctl_num(o, "n") == 2.5);
    ck_assert(isnan(ad_ctl_num(o, "s")));
    ck_assert(isnan(ad_ctl_num(o, "z")));
    ck_assert(isnan(ad_ctl_num(o, "missing")));
    ck_assert(isnan(ad_ctl_num(NULL, "n")));
    ck_assert_str_eq(ad_ctl_str(o, "s"), "x");
    ck_assert_str_eq(ad_ctl_str(o, "t"), "3");
    ck_assert_str_eq(ad_ctl_str(o, "n"), "?");
    ck_assert_str_eq(ad_ctl_str(NULL, "s"), "?");
    cJSON_Delete(o);
}
END_TEST

/* The one connect loop: a listener on loopback is reached (non-blocking, then blocking
 * again on request); a closed port says so with the hint; a bad address is a usage
 * error naming the option. */
START_TEST(test_connect)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    char address[64], err[512];
    int l = socket(AF_INET, SOCK_STREAM, 0), fd;

    ck_assert_int_ge(l, 0);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(l, 4), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    snprintf(address, sizeof(address), "127.0.0.1:%d", ntohs(sa.sin_port));
    fd = ad_ctl_connect(address, "--to", SOCK_STREAM, 5, "the hint", err, sizeof(err));
    ck_assert_msg(fd >= 0, "%s", err);
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ad_ctl_set_blocking(fd, 2);
    ck_assert(!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    close(fd);
    close(l); /* nobody listens there now */
    fd = ad_ctl_connect(address, "--to", SOCK_STREAM, 5, "the hint", err, sizeof(err));
    ck_assert_int_eq(fd, -AD_EIO);
    ck_assert_ptr_nonnull(strstr(err, "cannot connect to 127.0.0.1:"));
    ck_assert_ptr_nonnull(strstr(err, "(the hint)"));
    fd = ad_ctl_connect("nocolon", "--address", SOCK_STREAM, 5, NULL, err, sizeof(err));
    ck_assert_int_eq(fd, -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--address takes HOST:PORT"));
}
END_TEST

/* Occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* gradflow's SVG: one polyline per unbroken run of positive ratios, a legend entry per
 * curve, decade ticks covering the data with 1e0 labelled, the axes titled. */
START_TEST(test_gradflow_svg)
{
    double a[11], b[11], c[11];
    ad_gradflow_curve cv[3] = {{"elman", a}, {"lstm", b}, {"gru", c}};
    ad_gradflow_plot p = {"title", {"at initialisation", "after training"}, 2, 11, 3, {cv, cv}};
    char *svg;
    size_t len;

    for (int k = 0; k < 11; k++) {
        a[k] = pow(10.0, -2.0 * k); /* down to 1e-20 */
        b[k] = pow(0.5, k);
        c[k] = 1.0;
    }
    b[5] = 0.0; /* underflowed: a gap, two runs */
    c[10] = NAN; /* not finite: dropped */
    ck_assert_int_eq(ad_gradflow_svg(&p, &svg, &len), 0);
    ck_assert_uint_eq(strlen(svg), len);
    ck_assert(!strncmp(svg, "<svg ", 5));
    ck_assert_str_eq(svg + len - 7, "</svg>\n");
    ck_assert_int_eq(count(svg, "class=\"curve\""), 2 * (1 + 2 + 1));
    ck_assert_int_eq(count(svg, "class=\"legend\""), 3);
    ck_assert_ptr_nonnull(strstr(svg, ">1e0<"));
    ck_assert_ptr_nonnull(strstr(svg, ">1e-20<"));
    ck_assert_ptr_null(strstr(svg, ">1e-21<"));
    ck_assert_ptr_nonnull(strstr(svg, ">after training<"));
    ck_assert_ptr_nonnull(strstr(svg, "k, steps back from the loss"));
    ck_assert_ptr_nonnull(strstr(svg, "||dL/dh(T-k)|| / ||dL/dh(T)||"));
    ck_assert_ptr_null(strstr(svg, "nan"));
    ck_assert_ptr_null(strstr(svg, "inf"));
    free(svg);
    p.npanels = 1;
    ck_assert_int_eq(ad_gradflow_svg(&p, &svg, &len), 0);
    ck_assert_int_eq(count(svg, "class=\"curve\""), 1 + 2 + 1);
    ck_assert_ptr_null(strstr(svg, "after training"));
    free(svg);
    p.n = 1;
    ck_assert_int_eq(ad_gradflow_svg(&p, &svg, &len), -AD_EINVAL);
    ck_assert_ptr_null(svg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ctl");
    TCase *tc = tcase_create("spark");

    tcase_add_test(tc, test_spark_levels);
    tcase_add_test(tc, test_spark_folding_keeps_spikes);
    suite_add_tcase(s, tc);
    tc = tcase_create("rows");
    tcase_add_test(tc, test_csv_rows);
    tcase_add_test(tc, test_replay_lines);
    suite_add_tcase(s, tc);
    tc = tcase_create("http");
    tcase_add_test(tc, test_addresses);
    tcase_add_test(tc, test_url_escape);
    tcase_add_test(tc, test_address_lists);
    tcase_add_test(tc, test_json_fields);
    tcase_add_test(tc, test_connect);
    suite_add_tcase(s, tc);
    tc = tcase_create("gradflow");
    tcase_add_test(tc, test_gradflow_svg);
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
