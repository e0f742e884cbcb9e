/*
 * check_fanout.c - fanout.c: work claimed in pieces is done exactly once per call
 * whether or not the helper picks the call up; part 1 never runs on the caller's thread
 * and at most once per call; the helper takes a share when it is spinning; it wakes
 * from sleep; free with and without a helper.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanout.h"

#define ITEMS 1000

typedef struct job {
    pthread_t caller;
    atomic_int next;    /* the next item to claim */
    int done[ITEMS];    /* times each item was done */
    int helper_items;   /* items done on the helper thread */
    int helper_calls;   /* calls of part 1 */
    int caller_part1;   /* part 1 called on the caller's thread */
} job;

/* Claims items one at a time until none is left, as the contract asks. */
static void part(void *ctx, int p)
{
    job *j = ctx;
    const int here = pthread_equal(pthread_self(), j->caller) != 0;
    int k;

    if (p == 1) {
        j->helper_calls++;
        j->caller_part1 += here;
    }
    while ((k = atomic_fetch_add(&j->next, 1)) < ITEMS) {
        j->done[k]++;
        if (!here)
            j->helper_items++;
    }
}

/* calls runs over ITEMS items each: every item done exactly once per call; returns the
 * items the helper did. */
static long run_many(int threads, int calls, int sleep_every)
{
    ad_fanout *f;
    long helper = 0;

    ck_assert_int_eq(ad_fanout_create(threads, &f), 0);
    ck_assert_int_eq(ad_fanout_parts(f), threads);
    for (int c = 0; c < calls; c++) {
        job j;

        memset(&j, 0, sizeof(j));
        j.caller = pthread_self();
        atomic_init(&j.next, 0);
        if (sleep_every && c % sleep_every == 0) { /* let the helper fall asleep */
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        ad_fanout_run(f, part, &j);
        /* the helper's call, if it ran, is over: nothing of it is left running */
        for (int i = 0; i < ITEMS; i++)
            ck_assert_int_eq(j.done[i], 1);
        ck_assert_int_eq(j.caller_part1, 0);
        ck_assert_int_le(j.helper_calls, threads == 2 ? 1 : 0);
        helper += j.helper_items;
    }
    ad_fanout_free(f);
    return helper;
}

START_TEST(test_one_thread_runs_both_parts_here)
{
    ck_assert_int_eq(run_many(1, 100, 0), 0);
}
END_TEST

START_TEST(test_helper_runs_part_one)
{
    /* back to back: the helper is spinning and takes a share (2000 calls of 1000 items:
     * a helper that never ran would leave it at 0) */
    ck_assert_int_gt(run_many(2, 2000, 0), 0);
}
END_TEST

START_TEST(test_helper_wakes_from_sleep)
{
    run_many(2, 60, 3); /* pauses of 2 ms: the helper has gone to sleep, may be late */
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
