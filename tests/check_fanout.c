/*
 * check_fanout.c - fanout.c: both parts run, each once per call, part 1 on the helper
 * thread when there is one and on the caller's when there is none; many calls in a row
 * (the helper's spin and sleep paths); free with and without a helper.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "fanout.h"

typedef struct job {
    pthread_t caller;
    int runs[2];
    int on_caller[2];
    long sum[2];
    const int *v;
    int n;
} job;

/* Each part sums its half of v and notes the thread it ran on. */
static void part(void *ctx, int p)
{
    job *j = ctx;
    long s = 0;

    for (int i = p; i < j->n; i += 2)
        s += j->v[i];
    j->sum[p] += s;
    j->runs[p]++;
    j->on_caller[p] += pthread_equal(pthread_self(), j->caller) != 0;
}

static void run_many(int threads, int calls, int sleep_every)
{
    static int v[1000];
    ad_fanout *f;
    job j = {0};
    long want = 0;

    for (int i = 0; i < 1000; i++) {
        v[i] = i * 7 - 300;
        want += v[i];
    }
    j.caller = pthread_self();
    j.v = v;
    j.n = 1000;
    ck_assert_int_eq(ad_fanout_create(threads, &f), 0);
    ck_assert_int_eq(ad_fanout_parts(f), threads);
    for (int c = 0; c < calls; c++) {
        if (sleep_every && c % sleep_every == 0) { /* let the helper fall asleep */
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        ad_fanout_run(f, part, &j);
    }
    ad_fanout_free(f);
    ck_assert_int_eq(j.runs[0], calls);
    ck_assert_int_eq(j.runs[1], calls);
    ck_assert_int_eq(j.sum[0] + j.sum[1], want * calls);
    ck_assert_int_eq(j.on_caller[0], calls);
    ck_assert_int_eq(j.on_caller[1], threads == 2 ? 0 : calls);
}

START_TEST(test_one_thread_runs_both_parts_here)
{
    run_many(1, 100, 0);
}
END_TEST

START_TEST(test_helper_runs_part_one)
{
    run_many(2, 20000, 0); /* back to back: the helper is spinning */
}
END_TEST

START_TEST(test_helper_wakes_from_sleep)
{
    run_many(2, 60, 3); /* pauses of 2 ms: the helper has gone to sleep */
}
END_TEST

START_TEST(test_free_idle)
{
    ad_fanout *f;

    ck_assert_int_eq(ad_fanout_create(2, &f), 0);
    ad_fanout_free(f);
    ad_fanout_free(NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("fanout");
    TCase *tc = tcase_create("fanout");

    tcase_add_test(tc, test_one_thread_runs_both_parts_here);
    tcase_add_test(tc, test_helper_runs_part_one);
    tcase_add_test(tc, test_helper_wakes_from_sleep);
    tcase_add_test(tc, test_free_idle);
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
