/*
 * check_clock.c - clock.c: the wall clock is the time of day; the monotonic clock never
 * goes back, advances with a sleep and is not the wall clock; the thread CPU clock counts
 * the calling thread's work, neither its sleep nor another thread's work.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"

/* A clock read here, independently of clock.c. */
static double direct(clockid_t id)
{
    struct timespec ts;

    ck_assert_int_eq(clock_gettime(id, &ts), 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Spins until the calling thread has used `cpu` seconds of CPU (5 s at most). */
static void *spin(void *arg)
{
    const double cpu = *(const double *)arg, t0 = ad_thread_cpu_now(), end = ad_mono_now() + 5;
    volatile unsigned long x = 0;

    while (ad_thread_cpu_now() - t0 < cpu && ad_mono_now() < end)
        x++;
    return NULL;
}

START_TEST(test_wall_is_time_of_day)
{
    const double w = ad_wall_now();

    ck_assert(fabs(w - (double)time(NULL)) < 2.0);
    ck_assert(fabs(w - direct(CLOCK_REALTIME)) < 0.01); /* to the fraction of a second */
}
END_TEST

START_TEST(test_monotonic)
{
    double prev = ad_mono_now(), t0 = prev, t;

    for (int i = 0; i < 100000; i++) {
        t = ad_mono_now();
        ck_assert(t >= prev);
        prev = t;
    }
    sleep_s(0.05);
    t = ad_mono_now() - t0;
    ck_assert_msg(t >= 0.049 && t < 5.0, "slept 0.05 s, measured %g", t);
    ck_assert(fabs(ad_mono_now() - direct(CLOCK_MONOTONIC)) < 0.01);
    /* not the wall clock: the time since boot, far from the epoch's count */
    ck_assert(fabs(ad_wall_now() - ad_mono_now()) > 1e8);
}
END_TEST

START_TEST(test_thread_cpu)
{
    double cpu = 0.05, t0 = ad_thread_cpu_now(), d;
    pthread_t th;

    spin(&cpu);
    d = ad_thread_cpu_now() - t0;
    ck_assert_msg(d >= 0.05 && d < 5.0, "spun 0.05 s of CPU, measured %g", d);
    ck_assert(fabs(ad_thread_cpu_now() - direct(CLOCK_THREAD_CPUTIME_ID)) < 0.01);
    /* a sleep uses none */
    t0 = ad_thread_cpu_now();
    sleep_s(0.1);
    d = ad_thread_cpu_now() - t0;
    ck_assert_msg(d < 0.02, "slept, yet %g s of CPU", d);
    /* another thread's work is not this one's */
    cpu = 0.2;
    t0 = ad_thread_cpu_now();
    ck_assert_int_eq(pthread_create(&th, NULL, spin, &cpu), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    d = ad_thread_cpu_now() - t0;
    ck_assert_msg(d < 0.05, "another thread spun 0.2 s, this one counted %g", d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("clock");
    TCase *tc = tcase_create("clock");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_wall_is_time_of_day);
    tcase_add_test(tc, test_monotonic);
    tcase_add_test(tc, test_thread_cpu);
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
