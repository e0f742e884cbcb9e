/*
 * check_sockpath.c - what anomalyd may remove at a Unix socket path (daemon/sockpath.h)
 * and the one-instance lock on a state directory (daemon/statelock.h), on real files in
 * a temporary directory.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"
#include "sockpath.h"
#include "state/statelock.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_sockpath.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int exists(const char *p)
{
    struct stat st;

    return lstat(p, &st) == 0;
}

/* A Unix stream socket bound at p; listening if listen_too. Returns its fd. */
static int bound_socket(const char *p, int listen_too)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (listen_too)
        ck_assert_int_eq(listen(fd, 4), 0);
    return fd;
}

START_TEST(test_regular_file_kept)
{
    char p[128], err[512];
    FILE *f;

    snprintf(p, sizeof(p), "%s/anomalyd.db", dir);
    f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs("precious", f);
    fclose(f);
    ck_assert_int_eq(ad_sockpath_check(p, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "a regular file is there"));
    ck_assert_int_eq(ad_sockpath_prepare(p, err, sizeof(err)), -AD_EINVAL);
    ck_assert_int_eq(exists(p), 1);
    snprintf(p, sizeof(p), "%s/sub", dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_int_eq(ad_sockpath_prepare(p, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "a directory"));
    ck_assert_int_eq(exists(p), 1);
}
END_TEST

START_TEST(test_stale_socket_removed)
{
    char p[128], err[512];
    int fd;

    snprintf(p, sizeof(p), "%s/old.sock", dir);
    fd = bound_socket(p, 0);
    close(fd); /* the file stays: a stale socket */
    ck_assert_int_eq(exists(p), 1);
    ck_assert_int_eq(ad_sockpath_check(p, err, sizeof(err)), 0);
    ck_assert_int_eq(exists(p), 1); /* check changes nothing */
    ck_assert_int_eq(ad_sockpath_prepare(p, err, sizeof(err)), 0);
    ck_assert_int_eq(exists(p), 0);
    ck_assert_int_eq(ad_sockpath_prepare(p, err, sizeof(err)), 0); /* nothing there */
}
END_TEST

START_TEST(test_live_socket_refused)
{
    char p[128], err[512];
    int fd;

    snprintf(p, sizeof(p), "%s/live.sock", dir);
    fd = bound_socket(p, 1);
    ck_assert_int_eq(ad_sockpath_prepare(p, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "another process listens"));
    ck_assert_int_eq(exists(p), 1);
    close(fd);
}
END_TEST

START_TEST(test_too_long)
{
    char p[256], err[512];

    memset(p, 'a', sizeof(p));
    snprintf(p, 120, "%s/", dir);
    p[strlen(p)] = 'a';
    p[ad_sockpath_max() + 1] = '\0'; /* one byte too many */
    ck_assert_int_eq(ad_sockpath_check(p, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "sun_path"));
    p[ad_sockpath_max()] = '\0'; /* fits */
    ck_assert_int_eq(ad_sockpath_check(p, err, sizeof(err)), 0);
    ck_assert_uint_eq(ad_sockpath_max(), 107);
}
END_TEST

START_TEST(test_remove_only_ours)
{
    char p[128], err[512];
    unsigned long long id[2];
    int fd, fd2;

    snprintf(p, sizeof(p), "%s/ours.sock", dir);
    fd = bound_socket(p, 1);
    ck_assert_int_eq(ad_sockpath_id(p, id), 0);
    /* someone else's socket took the path since: left alone */
    ck_assert_int_eq(unlink(p), 0);
    fd2 = bound_socket(p, 1);
    ad_sockpath_remove(p, id);
    ck_assert_int_eq(exists(p), 1);
    ck_assert_int_eq(ad_sockpath_id(p, id), 0);
    ad_sockpath_remove(p, id);
    ck_assert_int_eq(exists(p), 0);
    close(fd);
    close(fd2);
    (void)err;
}
END_TEST

START_TEST(test_state_lock)
{
    char p[128], err[512], buf[32] = "";
    int a, b, f;

    ck_assert_int_eq(ad_statelock_path(dir, p, sizeof(p)), 0);
    a = ad_statelock_take(p, err, sizeof(err));
    ck_assert_int_ge(a, 0);
    f = open(p, O_RDONLY);
    ck_assert_int_gt(read(f, buf, sizeof(buf) - 1), 0);
    close(f);
    ck_assert_int_eq(atol(buf), (long)getpid());
    /* a second taker (another open file description) is refused, named the pid */
    b = ad_statelock_take(p, err, sizeof(err));
    ck_assert_int_eq(b, -AD_EFULL);
    snprintf(buf, sizeof(buf), "pid %ld", (long)getpid());
    ck_assert_ptr_nonnull(strstr(err, buf));
    close(a); /* released */
    b = ad_statelock_take(p, err, sizeof(err));
    ck_assert_int_ge(b, 0);
    close(b);
    ck_assert_int_eq(ad_statelock_path("/var/x/", p, sizeof(p)), 0);
    ck_assert_str_eq(p, "/var/x/anomalyd.lock");
    ck_assert_int_eq(ad_statelock_path("/var/x", p, 8), -AD_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sockpath");
    TCase *tc = tcase_create("paths");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_regular_file_kept);
    tcase_add_test(tc, test_stale_socket_removed);
    tcase_add_test(tc, test_live_socket_refused);
    tcase_add_test(tc, test_too_long);
    tcase_add_test(tc, test_remove_only_ours);
    tcase_add_test(tc, test_state_lock);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
