/*
 * check_sd.c - systemd integration (daemon/sd.c) against a real notify socket and real
 * passed descriptors: each notification is received from an AF_UNIX datagram socket
 * named by $NOTIFY_SOCKET and compared byte for byte; socket activation is given real
 * listening sockets at descriptors 3 and 4 with $LISTEN_FDS, $LISTEN_PID and
 * $LISTEN_FDNAMES, as systemd passes them.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "net.h" /* enum ad_err */
#include "sd.h"

#define PASSED_START 3 /* SD_LISTEN_FDS_START: where systemd puts passed sockets */

static char tmpdir[64];
static int notify_fd = -1; /* the "systemd" end of $NOTIFY_SOCKET */

static void unset_all(void)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDNAMES");
}

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_sd.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    unset_all();
}

static void teardown(void)
{
    char cmd[128];

    if (notify_fd >= 0)
        close(notify_fd);
    notify_fd = -1;
    unset_all();
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Binds the notify socket in tmpdir and points $NOTIFY_SOCKET at it. */
static void listen_notify(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", tmpdir);
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(notify_fd, 0);
    ck_assert_int_eq(bind(notify_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", sa.sun_path, 1), 0);
}

/* The next datagram, which must already be there; "" when there is none. */
static const char *next_datagram(char *buf, size_t len)
{
    ssize_t n = recv(notify_fd, buf, len - 1, MSG_DONTWAIT);

    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static uint64_t monotonic_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* -------------------------------------------------------------------------------- */

START_TEST(test_ready_status_stopping_watchdog)
{
    char buf[4096];

    listen_notify();
    ck_assert_int_eq(ad_sd_ready("6 listeners, 0 series restored"), 0);
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)),
                     "READY=1\nSTATUS=6 listeners, 0 series restored");
    ck_assert_int_eq(ad_sd_status("12 series, 3 training"), 0);
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)), "STATUS=12 series, 3 training");
    ck_assert_int_eq(ad_sd_stopping("stopping: saving 12 series"), 0);
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)),
                     "STOPPING=1\nSTATUS=stopping: saving 12 series");
    ck_assert_int_eq(ad_sd_watchdog(), 0);
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)), "WATCHDOG=1");
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)), ""); /* nothing more */
}
END_TEST

START_TEST(test_reloading_has_monotonic_usec)
{
    char buf[4096], status[64];
    unsigned long long usec;
    uint64_t before, after;

    listen_notify();
    before = monotonic_usec();
    ck_assert_int_eq(ad_sd_reloading("reloading /etc/anomalyd/anomalyd.yaml"), 0);
    after = monotonic_usec();
    next_datagram(buf, sizeof(buf));
    ck_assert_msg(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%63[^\n]", &usec,
                         status) == 2,
                  "%s", buf);
    ck_assert_uint_ge(usec, before);
    ck_assert_uint_le(usec, after);
    /* exactly those three lines */
    snprintf(status, sizeof(status), "%llu", usec);
    ck_assert_uint_eq(strlen(buf), strlen("RELOADING=1\nMONOTONIC_USEC=\nSTATUS=") +
                                       strlen(status) +
                                       strlen("reloading /etc/anomalyd/anomalyd.yaml"));
    ck_assert_ptr_nonnull(strstr(buf, "\nSTATUS=reloading /etc/anomalyd/anomalyd.yaml"));
    ck_assert_int_eq(ad_sd_ready("reloaded"), 0);
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)), "READY=1\nSTATUS=reloaded");
}
END_TEST

START_TEST(test_status_is_one_bounded_line)
{
    char buf[4096], longs[2000];

    listen_notify();
    /* a newline would smuggle in another assignment (here READY=1) */
    ck_assert_int_eq(ad_sd_status("bad config\nREADY=1"), 0);
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)), "STATUS=bad config READY=1");
    ck_assert_int_eq(ad_sd_status(NULL), 0);
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)), "STATUS=");
    memset(longs, 'x', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    ck_assert_int_eq(ad_sd_stopping(longs), 0);
    next_datagram(buf, sizeof(buf));
    ck_assert_uint_eq(strlen(buf), strlen("STOPPING=1\nSTATUS=") + 511);
}
END_TEST

START_TEST(test_without_notify_socket_no_op)
{
    char buf[64];

    listen_notify();
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(ad_sd_ready("ready"), 0);
    ck_assert_int_eq(ad_sd_status("status"), 0);
    ck_assert_int_eq(ad_sd_reloading("reloading"), 0);
    ck_assert_int_eq(ad_sd_stopping("stopping"), 0);
    ck_assert_int_eq(ad_sd_watchdog(), 0);
    ck_assert_str_eq(next_datagram(buf, sizeof(buf)), ""); /* nothing was sent */
}
END_TEST

START_TEST(test_unreachable_notify_socket_is_eio)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/no-such-socket", tmpdir);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
    ck_assert_int_eq(ad_sd_ready("ready"), -AD_EIO);
    ck_assert_int_eq(ad_sd_watchdog(), -AD_EIO);
}
END_TEST

/* -------------------------------------------------------------------------------- */

START_TEST(test_watchdog_usec)
{
    char pid[32];

    ck_assert_uint_eq(ad_sd_watchdog_usec(), 0); /* none asked for */
    ck_assert_int_eq(setenv("WATCHDOG_USEC", "30000000", 1), 0);
    ck_assert_uint_eq(ad_sd_watchdog_usec(), 30000000); /* no WATCHDOG_PID: ours */
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    ck_assert_int_eq(setenv("WATCHDOG_PID", pid, 1), 0);
    ck_assert_uint_eq(ad_sd_watchdog_usec(), 30000000);
    ck_assert_str_eq(getenv("WATCHDOG_USEC"), "30000000"); /* left for the next call */
    snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
    ck_assert_int_eq(setenv("WATCHDOG_PID", pid, 1), 0);
    ck_assert_uint_eq(ad_sd_watchdog_usec(), 0); /* another process's */
    unsetenv("WATCHDOG_PID");
    ck_assert_int_eq(setenv("WATCHDOG_USEC", "thirty", 1), 0);
    ck_assert_uint_eq(ad_sd_watchdog_usec(), 0);
}
END_TEST

/* -------------------------------------------------------------------------------- */

/* Socket activation puts the sockets at 3, 4, ... where Check (or the shell) may have
 * descriptors of its own (Check's own reporting channel): these are saved above 100 and
 * put back before any assert. */
typedef struct passed {
    int n;
    int saved[2]; /* copies of what was at 3 and 4, -1 if nothing */
    int ok;       /* the sockets were put at 3.. */
} passed;

static int tcp_listener(uint16_t *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Moves socks[0..n) to 3.. (n <= 2), saving what was there. */
static void pass_fds(passed *p, const int *socks, int n)
{
    int high[2], i;

    p->n = n;
    for (i = 0; i < n; i++) {
        high[i] = fcntl(socks[i], F_DUPFD, 100);
        ck_assert_int_ge(high[i], 100);
        ck_assert_int_eq(close(socks[i]), 0);
    }
    for (i = 0; i < n; i++) {
        p->saved[i] = fcntl(PASSED_START + i, F_DUPFD_CLOEXEC, 100);
        ck_assert(p->saved[i] >= 100 || errno == EBADF);
    }
    /* Check reports every assert's location through a descriptor of its own, maybe 3:
     * from here until restore_fds, no ck_assert. */
    p->ok = 1;
    for (i = 0; i < n; i++) {
        if (dup2(high[i], PASSED_START + i) != PASSED_START + i)
            p->ok = 0;
        close(high[i]);
    }
}

/* Puts back what was at 3.. (closing the passed sockets), then checks pass_fds worked. */
static void restore_fds(passed *p)
{
    int i, fd;

    for (i = 0; i < p->n; i++) {
        fd = PASSED_START + i;
        if (p->saved[i] >= 0) {
            dup2(p->saved[i], fd);
            close(p->saved[i]);
        } else {
            close(fd);
        }
    }
    ck_assert_msg(p->ok, "dup2 to %d.. failed", PASSED_START);
}

static uint16_t local_port(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);

    if (fd < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
        sa.sin_family != AF_INET)
        return 0;
    return ntohs(sa.sin_port);
}

static void set_listen_env(const char *nfds, long pid, const char *names)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%ld", pid);
    ck_assert_int_eq(setenv("LISTEN_FDS", nfds, 1), 0);
    ck_assert_int_eq(setenv("LISTEN_PID", buf, 1), 0);
    if (names)
        ck_assert_int_eq(setenv("LISTEN_FDNAMES", names, 1), 0);
}

static int env_gone(void)
{
    return !getenv("LISTEN_FDS") && !getenv("LISTEN_PID") && !getenv("LISTEN_FDNAMES");
}

START_TEST(test_listen_fds_by_name)
{
    uint16_t port_g, port_h;
    int socks[2], r, cloexec, fd_http, fd_g, again, unknown, gone;
    uint16_t got_g, got_h;
    ad_sd_fds f;
    passed p;

    socks[0] = tcp_listener(&port_g);
    socks[1] = tcp_listener(&port_h);
    set_listen_env("2", (long)getpid(), "graphite-tcp:http");
    pass_fds(&p, socks, 2);
    r = ad_sd_listen_fds(&f);
    gone = env_gone();
    cloexec = fcntl(3, F_GETFD) & FD_CLOEXEC;
    fd_http = ad_sd_take(&f, "http");
    fd_g = ad_sd_take(&f, "graphite-tcp");
    again = ad_sd_take(&f, "http");
    unknown = ad_sd_take(&f, "statsd-udp");
    got_g = local_port(fd_g);
    got_h = local_port(fd_http);
    restore_fds(&p);

    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(f.fds[0], 3);
    ck_assert_int_eq(f.fds[1], 4);
    ck_assert_str_eq(f.names[0], "graphite-tcp");
    ck_assert_str_eq(f.names[1], "http");
    ck_assert_int_eq(fd_http, 4);
    ck_assert_int_eq(fd_g, 3);
    ck_assert_uint_eq(got_g, port_g); /* the very sockets we passed */
    ck_assert_uint_eq(got_h, port_h);
    ck_assert_int_eq(again, -1); /* taken once only */
    ck_assert_int_eq(unknown, -1);
    ck_assert_int_eq(f.taken[0], 1);
    ck_assert_int_eq(f.taken[1], 1);
    ck_assert_msg(gone, "LISTEN_* still set");
    ck_assert_msg(cloexec, "passed socket not close-on-exec");
}
END_TEST

START_TEST(test_listen_fds_same_name_twice_and_unnamed)
{
    uint16_t port[2];
    int socks[2], r, first, second, third, gone;
    ad_sd_fds f, g;
    passed p;

    /* two sockets under one name (one .socket unit with two Listen lines) */
    socks[0] = tcp_listener(&port[0]);
    socks[1] = tcp_listener(&port[1]);
    set_listen_env("2", (long)getpid(), "graphite:graphite");
    pass_fds(&p, socks, 2);
    r = ad_sd_listen_fds(&f);
    first = ad_sd_take(&f, "graphite");
    second = ad_sd_take(&f, "graphite");
    third = ad_sd_take(&f, "graphite");
    restore_fds(&p);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(first, 3);
    ck_assert_int_eq(second, 4);
    ck_assert_int_eq(third, -1);

    /* no $LISTEN_FDNAMES: "unknown" */
    socks[0] = tcp_listener(&port[0]);
    set_listen_env("1", (long)getpid(), NULL);
    pass_fds(&p, socks, 1);
    r = ad_sd_listen_fds(&g);
    gone = env_gone();
    first = ad_sd_take(&g, "unknown");
    restore_fds(&p);
    ck_assert_int_eq(r, 0);
    ck_assert_int_eq(g.n, 1);
    ck_assert_str_eq(g.names[0], "unknown");
    ck_assert_int_eq(first, 3);
    ck_assert(gone);
}
END_TEST

START_TEST(test_listen_fds_none)
{
    ad_sd_fds f;

    memset(&f, 0x55, sizeof(f));
    ck_assert_int_eq(ad_sd_listen_fds(&f), 0); /* not socket-activated */
    ck_assert_int_eq(f.n, 0);
    ck_assert_int_eq(f.fds[0], -1);
    ck_assert_int_eq(ad_sd_take(&f, "http"), -1);

    /* meant for another process (a parent that did not unset them): ignored, unset */
    set_listen_env("2", (long)getpid() + 1, "graphite-tcp:http");
    ck_assert_int_eq(ad_sd_listen_fds(&f), 0);
    ck_assert_int_eq(f.n, 0);
    ck_assert(env_gone());
}
END_TEST

START_TEST(test_listen_fds_malformed)
{
    uint16_t port[2];
    int socks[2], r, gone;
    ad_sd_fds f;
    passed p;

    set_listen_env("two", (long)getpid(), NULL);
    ck_assert_int_eq(ad_sd_listen_fds(&f), -AD_EINVAL);
    ck_assert_int_eq(f.n, 0);
    ck_assert(env_gone());

    set_listen_env("2", (long)getpid(), NULL);
    ck_assert_int_eq(setenv("LISTEN_PID", "me", 1), 0);
    ck_assert_int_lt(ad_sd_listen_fds(&f), 0);
    ck_assert_int_eq(f.n, 0);
    ck_assert(env_gone());

    /* one name for two sockets */
    socks[0] = tcp_listener(&port[0]);
    socks[1] = tcp_listener(&port[1]);
    set_listen_env("2", (long)getpid(), "http");
    pass_fds(&p, socks, 2);
    r = ad_sd_listen_fds(&f);
    gone = env_gone();
    restore_fds(&p);
    ck_assert_int_eq(r, -AD_EINVAL);
    ck_assert_int_eq(f.n, 0);
    ck_assert_int_eq(ad_sd_take(&f, "http"), -1);
    ck_assert(gone);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("sd");
    TCase *tc = tcase_create("notify");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ready_status_stopping_watchdog);
    tcase_add_test(tc, test_reloading_has_monotonic_usec);
    tcase_add_test(tc, test_status_is_one_bounded_line);
    tcase_add_test(tc, test_without_notify_socket_no_op);
    tcase_add_test(tc, test_unreachable_notify_socket_is_eio);
    suite_add_tcase(s, tc);
    tc = tcase_create("watchdog");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_watchdog_usec);
    suite_add_tcase(s, tc);
    tc = tcase_create("listen_fds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_listen_fds_by_name);
    tcase_add_test(tc, test_listen_fds_same_name_twice_and_unnamed);
    tcase_add_test(tc, test_listen_fds_none);
    tcase_add_test(tc, test_listen_fds_malformed);
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
