/*
 * check_fdlimit.c - file descriptors (daemon/fdlimit.c): the need a configuration gives,
 * RLIMIT_NOFILE raised within the hard limit, the budget's classes and the shedding of a
 * pending connection at EMFILE with the reserve, on real sockets and real limits. Each
 * test runs in its own process (Check's fork mode): the limits it lowers die with it.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "fdlimit.h"
#include "log.h"
#include "net.h" /* enum ad_err */

static void set_nofile(rlim_t soft, rlim_t hard)
{
    struct rlimit rl = {soft, hard};

    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

START_TEST(test_need_counts_every_door)
{
    ad_config c;
    ad_fd_need n;

    ck_assert_int_eq(ad_config_defaults(&c), 0);
    c.max_connections = 1000;
    ad_fdlimit_need(&c, &n);
    ck_assert_uint_eq(n.stream, 1000);
    ck_assert_uint_eq(n.http, 1000);
    ck_assert_uint_eq(n.subscribers, AD_FD_SUBSCRIBERS);
    /* the default listeners, HTTP, the events TCP and Unix sockets */
    ck_assert_uint_eq(n.sockets, (size_t)c.nlisteners + 3);
    ck_assert_uint_eq(n.total, n.stream + n.http + n.subscribers + n.sockets + n.fixed);
    c.http_enabled = 0;
    c.events_address[0] = c.events_unix[0] = '\0';
    ad_fdlimit_need(&c, &n);
    ck_assert_uint_eq(n.http, 0);
    ck_assert_uint_eq(n.subscribers, 0);
    ck_assert_uint_eq(n.sockets, (size_t)c.nlisteners);
    ad_config_free(&c);
}
END_TEST

START_TEST(test_raise_within_hard_limit)
{
    size_t was, now, hard;
    struct rlimit rl;

    set_nofile(64, 256);
    ck_assert_int_eq(ad_fdlimit_raise(200, &was, &now, &hard), 0);
    ck_assert_uint_eq(was, 64);
    ck_assert_uint_eq(now, 200);
    ck_assert_uint_eq(hard, 256);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_uint_eq(rl.rlim_cur, 200);
    /* enough already: left alone */
    ck_assert_int_eq(ad_fdlimit_raise(100, &was, &now, &hard), 0);
    ck_assert_uint_eq(now, 200);
    /* beyond the hard limit: raised to it, and said so */
    ck_assert_int_eq(ad_fdlimit_raise(1000, &was, &now, &hard), -AD_EFULL);
    ck_assert_uint_eq(was, 200);
    ck_assert_uint_eq(now, 256);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_uint_eq(rl.rlim_cur, 256);
}
END_TEST

START_TEST(test_open_count)
{
    long before = ad_fdlimit_open_count();
    int fd = dup(0);

    ck_assert_int_gt(before, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ad_fdlimit_open_count(), before + 1);
    close(fd);
    ck_assert_int_eq(ad_fdlimit_open_count(), before);
}
END_TEST

/* HTTP may take what stream clients and subscribers must leave; nobody takes the last
 * AD_FD_KEEP. */
START_TEST(test_budget_classes)
{
    ad_fdbudget b;
    size_t stream = 0, http = 0;

    ck_assert_int_eq(ad_fdbudget_init(&b, 0), 0);
    ad_fdbudget_measure(&b, b.base + 40);
    while (ad_fdbudget_take(&b, AD_FD_STREAM))
        stream++;
    ck_assert_uint_eq(stream, 40 - AD_FD_KEEP - AD_FD_KEEP_HTTP);
    ck_assert_int_eq(ad_fdbudget_take(&b, AD_FD_SUBSCRIBER), 0);
    while (ad_fdbudget_take(&b, AD_FD_HTTP))
        http++;
    ck_assert_uint_eq(http, AD_FD_KEEP_HTTP);
    ck_assert_uint_eq(b.refused[AD_FD_STREAM], 1);
    ck_assert_uint_eq(b.refused[AD_FD_SUBSCRIBER], 1);
    ck_assert_uint_eq(b.refused[AD_FD_HTTP], 1);
    ad_fdbudget_put(&b);
    ck_assert_int_eq(ad_fdbudget_take(&b, AD_FD_HTTP), 1);
    ck_assert_int_eq(ad_fdbudget_take(&b, AD_FD_STREAM), 0);
    /* a measure keeps the count of connections held */
    ad_fdbudget_measure(&b, b.limit);
    ck_assert_uint_eq(b.used, 40 - AD_FD_KEEP);
    /* no limit known: no budget */
    ad_fdbudget_measure(&b, 0);
    ck_assert_int_eq(ad_fdbudget_take(&b, AD_FD_STREAM), 1);
    ck_assert_int_eq(ad_fdbudget_take(NULL, AD_FD_STREAM), 1);
    ad_fdbudget_close(&b);
    ck_assert_int_eq(b.reserve, -1);
}
END_TEST

/* Leaves the process without a free descriptor: the soft limit a little above what is
 * open, the rest (and any hole below) filled with copies of stdin, returned in fill. */
static int exhaust(int *fill, int cap)
{
    int n = 0, fd;

    set_nofile((rlim_t)ad_fdlimit_open_count() + 4, 4096);
    while (n < cap && (fd = dup(0)) >= 0)
        fill[n++] = fd;
    ck_assert_int_lt(n, cap);
    ck_assert_int_eq(errno, EMFILE);
    return n;
}

static void no_connection(uv_stream_t *server, int status)
{
    (void)server;
    (void)status;
}

/* A listening socket with a client waiting in its backlog, and not one descriptor
 * free: accept fails with EMFILE; the shed takes the reserve's place for the client,
 * closes it (the client sees the end), and gets its reserve back. */
START_TEST(test_shed_with_reserve_at_emfile)
{
    struct sockaddr_in sa;
    int salen = sizeof(sa), client, lfd, fill[256], nfill;
    uv_loop_t loop;
    uv_tcp_t server;
    ad_fdbudget b;
    char byte;

    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(uv_tcp_init(&loop, &server), 0);
    uv_ip4_addr("127.0.0.1", 0, &sa);
    ck_assert_int_eq(uv_tcp_bind(&server, (struct sockaddr *)&sa, 0), 0);
    ck_assert_int_eq(uv_listen((uv_stream_t *)&server, 8, no_connection), 0);
    ck_assert_int_eq(uv_tcp_getsockname(&server, (struct sockaddr *)&sa, &salen), 0);
    client = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(client, 0);
    ck_assert_int_eq(connect(client, (struct sockaddr *)&sa, sizeof(sa)), 0);
    {
        struct timeval tv = {2, 0}; /* a client nobody closed fails the test, not hangs */

        ck_assert_int_eq(setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    }
    ck_assert_int_eq(ad_fdbudget_init(&b, 0), 0);
    ck_assert_int_ge(b.reserve, 0);

    ck_assert_int_eq(uv_fileno((uv_handle_t *)&server, &lfd), 0);
    nfill = exhaust(fill, 256);
    ck_assert_int_lt(accept(lfd, NULL, NULL), 0);
    ck_assert_int_eq(errno, EMFILE);
    ck_assert_int_eq(ad_fdbudget_shed(&b, AD_FD_HTTP, (uv_stream_t *)&server, UV_EMFILE), 1);
    ck_assert_uint_eq(b.shed[AD_FD_HTTP], 1);
    ck_assert_int_ge(b.reserve, 0); /* back */
    ck_assert_int_eq(recv(client, &byte, 1, 0), 0); /* the end: refused */
    /* other errors are not the budget's; nothing shed */
    ck_assert_int_eq(ad_fdbudget_shed(&b, AD_FD_HTTP, (uv_stream_t *)&server, UV_ECONNABORTED),
                     0);
    ck_assert_int_eq(ad_fdbudget_shed(NULL, AD_FD_HTTP, (uv_stream_t *)&server, UV_ENFILE), 1);
    ck_assert_uint_eq(b.shed[AD_FD_HTTP], 1);

    set_nofile(4096, 4096);
    while (nfill)
        close(fill[--nfill]);
    close(client);
    ad_fdbudget_close(&b);
    uv_close((uv_handle_t *)&server, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fdlimit");
    TCase *tc = tcase_create("limit");

    tcase_add_test(tc, test_need_counts_every_door);
    tcase_add_test(tc, test_raise_within_hard_limit);
    tcase_add_test(tc, test_open_count);
    suite_add_tcase(s, tc);
    tc = tcase_create("budget");
    tcase_add_test(tc, test_budget_classes);
    tcase_add_test(tc, test_shed_with_reserve_at_emfile);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    ad_log_init(AD_LOG_ERROR); /* the budget's warnings are expected here */
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
