/*
 * check_statelock.c - state/statelock.c: the lock file's path; the lock taken with the
 * pid written and the descriptor close-on-exec; a second taker refused with -AD_EFULL
 * naming the holder's pid (in this process and from another one), or no pid when the
 * file holds none; the lock free again once the holder closes it or dies (SIGKILL);
 * a file that cannot be opened is -AD_EIO.
 */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "state/statelock.h"

#define ERRLEN 512

static char dir[64], path[128];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/check_statelock.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(ad_statelock_path(dir, path, sizeof(path)), 0);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

/* The file's text. */
static void contents(char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
}

START_TEST(test_path)
{
    char out[32];

    ck_assert_int_eq(ad_statelock_path("/var/lib/a", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/var/lib/a/anomalyd.lock");
    ck_assert_int_eq(ad_statelock_path("/var/lib/a/", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "/var/lib/a/anomalyd.lock");
    ck_assert_int_eq(ad_statelock_path("", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "anomalyd.lock");
    ck_assert_int_eq(ad_statelock_path("/var/lib/anomalyd-long", out, sizeof(out)), -AD_EINVAL);
    ck_assert_int_eq(ad_statelock_path("/v", out, 16), -AD_EINVAL); /* "/v/anomalyd.lock" */
    ck_assert_int_eq(ad_statelock_path("/v", out, 17), 0);
}
END_TEST

START_TEST(test_take_writes_pid_second_refused)
{
    char err[ERRLEN] = "", text[64], want[64];
    FILE *f = fopen(path, "w");
    int fd, fd2;

    /* a file left by an earlier holder with a longer pid: rewritten whole */
    ck_assert_ptr_nonnull(f);
    fputs("4000000000\nleft over\n", f);
    fclose(f);
    fd = ad_statelock_take(path, err, sizeof(err));
    ck_assert_msg(fd >= 0, "%s", err);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0); /* not inherited by children */
    contents(text, sizeof(text));
    snprintf(want, sizeof(want), "%ld\n", (long)getpid());
    ck_assert_str_eq(text, want);
    /* another open of the same file, even in this process, is another taker */
    fd2 = ad_statelock_take(path, err, sizeof(err));
    ck_assert_int_eq(fd2, -AD_EFULL);
    snprintf(want, sizeof(want), "(pid %ld)", (long)getpid());
    ck_assert_msg(strstr(err, want) && strstr(err, path), "%s", err);
    /* the holder's file is untouched by the refused one */
    contents(text, sizeof(text));
    ck_assert_int_eq(atol(text), (long)getpid());
    close(fd);
    fd2 = ad_statelock_take(path, err, sizeof(err));
    ck_assert_msg(fd2 >= 0, "free again once closed: %s", err);
    close(fd2);
}
END_TEST

/* Held by another process: refused naming it; free once it dies, however it dies. */
START_TEST(test_held_by_another_process)
{
    char err[ERRLEN] = "", want[64], byte = 0;
    int ready[2], fd, status;
    pid_t child;

    ck_assert_int_eq(pipe(ready), 0);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        char e[ERRLEN];

        close(ready[0]);
        if (ad_statelock_take(path, e, sizeof(e)) < 0)
            _exit(1);
        if (write(ready[1], "k", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(ready[1]);
    ck_assert_int_eq(read(ready[0], &byte, 1), 1);
    close(ready[0]);
    ck_assert_int_eq(ad_statelock_take(path, err, sizeof(err)), -AD_EFULL);
    snprintf(want, sizeof(want), "another anomalyd (pid %ld) holds", (long)child);
    ck_assert_msg(strstr(err, want) != NULL, "%s", err);
    ck_assert_int_eq(kill(child, SIGKILL), 0);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    fd = ad_statelock_take(path, err, sizeof(err));
    ck_assert_msg(fd >= 0, "free once its holder died: %s", err);
    close(fd);
}
END_TEST

/* A lock held on a file without a pid (taken some other way): refused, no pid named. */
START_TEST(test_held_without_pid)
{
    char err[ERRLEN] = "";
    int other = open(path, O_RDWR | O_CREAT, 0644);

    ck_assert_int_ge(other, 0);
    ck_assert_int_eq(flock(other, LOCK_EX | LOCK_NB), 0);
    ck_assert_int_eq(ad_statelock_take(path, err, sizeof(err)), -AD_EFULL);
    ck_assert_msg(strstr(err, "another anomalyd holds") && !strstr(err, "pid"), "%s", err);
    close(other);
}
END_TEST

START_TEST(test_cannot_open)
{
    char err[ERRLEN] = "", bad[160];

    snprintf(bad, sizeof(bad), "%s/missing/anomalyd.lock", dir);
    ck_assert_int_eq(ad_statelock_take(bad, err, sizeof(err)), -AD_EIO);
    ck_assert_msg(strstr(err, "cannot open the lock file") && strstr(err, bad), "%s", err);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("statelock");
    TCase *tc = tcase_create("statelock");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_path);
    tcase_add_test(tc, test_take_writes_pid_second_refused);
    tcase_add_test(tc, test_held_by_another_process);
    tcase_add_test(tc, test_held_without_pid);
    tcase_add_test(tc, test_cannot_open);
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
