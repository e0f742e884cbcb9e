/*
 * check_events.c - events.c with real sockets and files: the JSON line of an event;
 * subscribers on TCP and Unix sockets receive events in order; a subscriber that never
 * reads loses the oldest events (counted) while the loop goes on; the file is appended
 * to, reopened after rotation, and a file that cannot be opened is counted, not fatal.
 */
#include <arpa/inet.h>
#include <check.h>
#include <math.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "events.h"
#include "log.h"

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_events.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    ad_log_init(AD_LOG_ERROR);
}

static void teardown(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void base_config(ad_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->events_address, sizeof(c->events_address), "127.0.0.1");
    c->events_port = 0;
    c->events_buffer = 4096;
}

static ad_event event(double ts, const char *series)
{
    ad_event e = {.ts = ts, .series = series, .value = 100, .predicted = 10, .error = 9,
                  .score = 0.9, .threshold = 0.5, .scorer = "likelihood", .model = "lstm"};
    return e;
}

static void spin(uv_loop_t *loop, int n)
{
    for (int i = 0; i < n; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static void closed(void *arg)
{
    *(int *)arg = 1;
}

static void finish(uv_loop_t *loop, ad_events *ev)
{
    int done = 0;

    ad_events_close(ev, closed, &done);
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

static int tcp_client(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 5};

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads until n newlines arrived (or the timeout). */
static size_t read_lines(uv_loop_t *loop, int fd, char *buf, size_t cap, int n)
{
    size_t len = 0;
    int lines = 0;

    while (lines < n && len < cap - 1) {
        ssize_t r;

        spin(loop, 2);
        r = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
        if (r > 0) {
            for (ssize_t i = 0; i < r; i++)
                lines += buf[len + (size_t)i] == '\n';
            len += (size_t)r;
        } else if (r == 0) {
            break;
        }
    }
    buf[len] = '\0';
    return len;
}

START_TEST(test_json_line)
{
    ad_event e = event(1700000000.5, "we\"ird\\key");
    char *s;

    e.predicted = NAN;
    s = ad_event_json(&e);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "{\"ts\":1700000000.5,\"series\":\"we\\\"ird\\\\key\",\"value\":100,"
                        "\"predicted\":null,\"error\":9,\"score\":0.9,\"threshold\":0.5,"
                        "\"scorer\":\"likelihood\",\"model\":\"lstm\"}");
    free(s);
}
END_TEST

START_TEST(test_subscribers_in_order)
{
    uv_loop_t loop;
    ad_events *ev;
    ad_config c;
    char err[256], buf[4096];
    struct sockaddr_un su = {.sun_family = AF_UNIX};
    int t, u;

    base_config(&c);
    snprintf(c.events_unix, sizeof(c.events_unix), "%s/ev.sock", tmpdir);
    uv_loop_init(&loop);
    ck_assert_msg(ad_events_start(&loop, &c, -1, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_gt(ad_events_port(ev), 0);
    t = tcp_client(ad_events_port(ev));
    u = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_uint_lt(strlen(c.events_unix), sizeof(su.sun_path));
    memcpy(su.sun_path, c.events_unix, strlen(c.events_unix) + 1);
    ck_assert_int_eq(connect(u, (struct sockaddr *)&su, sizeof(su)), 0);
    spin(&loop, 20);
    ck_assert_uint_eq(ad_events_get_stats(ev)->subscribers, 2);
    for (int i = 0; i < 3; i++) {
        char key[16];
        ad_event e;

        snprintf(key, sizeof(key), "s%d", i);
        e = event(i, key);
        ck_assert_int_eq(ad_events_publish(ev, &e), 0);
    }
    for (int fd = t, k = 0; k < 2; fd = u, k++) {
        read_lines(&loop, fd, buf, sizeof(buf), 3);
        ck_assert_msg(strstr(buf, "\"series\":\"s0\"") && strstr(buf, "\"series\":\"s2\"") &&
                          strstr(buf, "\"series\":\"s0\"") < strstr(buf, "\"series\":\"s1\"") &&
                          strstr(buf, "\"series\":\"s1\"") < strstr(buf, "\"series\":\"s2\""),
                      "got: %s", buf);
    }
    ck_assert_uint_eq(ad_events_get_stats(ev)->published, 3);
    ck_assert_uint_eq(ad_events_get_stats(ev)->dropped, 0);
    close(u); /* a subscriber leaving is noticed */
    for (int i = 0; i < 200 && ad_events_get_stats(ev)->subscribers != 1; i++)
        spin(&loop, 1);
    ck_assert_uint_eq(ad_events_get_stats(ev)->subscribers, 1);
    close(t);
    finish(&loop, ev);
}
END_TEST

/* A subscriber that never reads: its kernel buffers fill, then its 4 KiB buffer; the
 * oldest events are dropped and counted; publishing never blocks. */
START_TEST(test_slow_subscriber_drops_oldest)
{
    uv_loop_t loop;
    ad_events *ev;
    ad_config c;
    char err[256];
    int small = 4096, t;

    base_config(&c);
    uv_loop_init(&loop);
    ck_assert_msg(ad_events_start(&loop, &c, -1, &ev, err, sizeof(err)) == 0, "%s", err);
    t = tcp_client(ad_events_port(ev));
    setsockopt(t, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    spin(&loop, 20);
    ck_assert_uint_eq(ad_events_get_stats(ev)->subscribers, 1);
    for (int i = 0; i < 200000; i++) {
        ad_event e = event(i, "slow");

        ck_assert_int_eq(ad_events_publish(ev, &e), 0);
        if (i % 100 == 0)
            uv_run(&loop, UV_RUN_NOWAIT);
    }
    ck_assert_uint_eq(ad_events_get_stats(ev)->published, 200000);
    ck_assert_uint_gt(ad_events_get_stats(ev)->dropped, 100000);
    ck_assert_uint_eq(ad_events_get_stats(ev)->subscribers, 1);
    close(t);
    finish(&loop, ev);
}
END_TEST

/* A descriptor budget with room for one subscriber: the second is closed at once and
 * counted by the budget; once the first goes, its descriptor is given back. */
START_TEST(test_fd_budget)
{
    uv_loop_t loop;
    ad_events *ev;
    ad_fdbudget b;
    ad_config c;
    char err[256], byte;
    int t, u;

    base_config(&c);
    uv_loop_init(&loop);
    ck_assert_msg(ad_events_start(&loop, &c, -1, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ad_fdbudget_init(&b, 0), 0);
    ad_fdbudget_measure(&b, b.base + AD_FD_KEEP + AD_FD_KEEP_HTTP + 1);
    ad_events_set_fdbudget(ev, &b);
    t = tcp_client(ad_events_port(ev));
    spin(&loop, 20);
    ck_assert_uint_eq(ad_events_get_stats(ev)->subscribers, 1);
    u = tcp_client(ad_events_port(ev));
    spin(&loop, 20);
    ck_assert_int_eq(recv(u, &byte, 1, 0), 0); /* refused: the end */
    ck_assert_uint_eq(b.refused[AD_FD_SUBSCRIBER], 1);
    ck_assert_uint_eq(ad_events_get_stats(ev)->subscribers, 1);
    ck_assert_uint_eq(ad_events_get_stats(ev)->subscribers_total, 1);
    close(u);
    close(t);
    spin(&loop, 20);
    ck_assert_uint_eq(ad_events_get_stats(ev)->subscribers, 0);
    ck_assert_uint_eq(b.used, 0);
    finish(&loop, ev);
    ad_fdbudget_close(&b);
}
END_TEST

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0, ch;

    if (!f)
        return -1;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

START_TEST(test_file_append_and_reopen)
{
    uv_loop_t loop;
    ad_events *ev;
    ad_config c;
    char err[256], rotated[AD_PATH_MAX + 8];
    ad_event e = event(1, "f");

    base_config(&c);
    c.events_address[0] = '\0';
    snprintf(c.events_file, sizeof(c.events_file), "%s/events.jsonl", tmpdir);
    uv_loop_init(&loop);
    ck_assert_msg(ad_events_start(&loop, &c, -1, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ad_events_port(ev), 0);
    ad_events_publish(ev, &e);
    ad_events_publish(ev, &e);
    ck_assert_int_eq(count_lines(c.events_file), 2);
    snprintf(rotated, sizeof(rotated), "%s.1", c.events_file);
    ck_assert_int_eq(rename(c.events_file, rotated), 0);
    ad_events_reopen(ev);
    ad_events_publish(ev, &e);
    ck_assert_int_eq(count_lines(c.events_file), 1);
    ck_assert_int_eq(count_lines(rotated), 2);
    ck_assert_uint_eq(ad_events_get_stats(ev)->file_written, 3);
    finish(&loop, ev);
}
END_TEST

START_TEST(test_file_unwritable_is_counted)
{
    uv_loop_t loop;
    ad_events *ev;
    ad_config c;
    char err[256];
    ad_event e = event(1, "f");

    base_config(&c);
    c.events_address[0] = '\0';
    snprintf(c.events_file, sizeof(c.events_file), "%s/no/such/dir/events.jsonl", tmpdir);
    uv_loop_init(&loop);
    ck_assert_msg(ad_events_start(&loop, &c, -1, &ev, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ad_events_publish(ev, &e), 0);
    ck_assert_uint_eq(ad_events_get_stats(ev)->file_errors, 1);
    ck_assert_uint_eq(ad_events_get_stats(ev)->published, 1);
    finish(&loop, ev);
}
END_TEST

START_TEST(test_bind_failure)
{
    uv_loop_t loop;
    ad_events *ev = NULL;
    ad_config c;
    char err[256] = "";

    base_config(&c);
    snprintf(c.events_unix, sizeof(c.events_unix), "%s/no/such/dir/ev.sock", tmpdir);
    uv_loop_init(&loop);
    ck_assert_int_lt(ad_events_start(&loop, &c, -1, &ev, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, "ev.sock"), "%s", err);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("json");

    tcase_add_test(tc, test_json_line);
    suite_add_tcase(s, tc);
    tc = tcase_create("subscribers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_subscribers_in_order);
    tcase_add_test(tc, test_slow_subscriber_drops_oldest);
    tcase_add_test(tc, test_fd_budget);
    tcase_add_test(tc, test_bind_failure);
    suite_add_tcase(s, tc);
    tc = tcase_create("file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_file_append_and_reopen);
    tcase_add_test(tc, test_file_unwritable_is_counted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    signal(SIGPIPE, SIG_IGN); /* as the daemon does: a subscriber gone is an error return */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
