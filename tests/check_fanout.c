/*
 * check_fanout.c - fanout.c: work claimed in pieces is done exactly once per call
 * whether or not the helper picks the call up; part 1 never runs on the caller's thread
 * and at most once per call; a helper given time runs part 1; it wakes from sleep; a job
 * posted runs on the helper while the caller does other work, and join finishes it;
 * free with and without a helper.
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
    atomic_int helper_started; /* test_helper_runs_part_one */
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

/* calls runs over ITEMS items each: every item done exactly once per call, part 1 only
 * on the helper and at most once. */
static void run_many(int threads, int calls, int sleep_every, int split)
{
    ad_fanout *f;

    ck_assert_int_eq(ad_fanout_create(threads, &f), 0);
    ck_assert_int_eq(ad_fanout_parts(f), threads);
    for (int c = 0; c < calls; c++) {
        job j;

        memset(&j, 0, sizeof(j));
        j.caller = pthread_self();
        atomic_init(&j.next, 0);
        atomic_init(&j.helper_started, 0);
        if (sleep_every && c % sleep_every == 0) { /* let the helper fall asleep */
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        if (split) { /* posted, some work of the caller's own, joined */
            volatile int spin = 0;

            ad_fanout_post(f, part, &j);
            for (int k = 0; k < c % 7 * 300; k++)
                spin += k;
            ad_fanout_join(f);
        } else {
            ad_fanout_run(f, part, &j);
        }
        /* the helper's call, if it ran, is over: nothing of it is left running */
        for (int i = 0; i < ITEMS; i++)
            ck_assert_int_eq(j.done[i], 1);
        ck_assert_int_eq(j.caller_part1, 0);
        ck_assert_int_le(j.helper_calls, threads == 2 ? 1 : 0);
        ck_assert_int_le(j.helper_items, threads == 2 ? ITEMS : 0);
    }
    ad_fanout_free(f);
}

START_TEST(test_one_thread_runs_both_parts_here)
{
    run_many(1, 100, 0, 0);
    run_many(1, 100, 0, 1);
}
END_TEST

START_TEST(test_back_to_back)
{
    run_many(2, 2000, 0, 0); /* the helper spinning between calls */
}
END_TEST

/* Part 0 waits (up to 10 s) until the helper has done an item before it claims any:
 * then the helper must have run part 1 on its own thread. (Whether the helper takes a
 * share otherwise depends on the scheduler: not asserted.) */
static void patient(void *ctx, int p)
{
    job *j = ctx;

    if (p == 0)
        for (int t = 0; t < 10000 && !atomic_load(&j->helper_started); t++) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    else
        atomic_store(&j->helper_started, 1);
    part(ctx, p);
}

START_TEST(test_helper_runs_part_one)
{
    ad_fanout *f;
    job j;

    memset(&j, 0, sizeof(j));
    j.caller = pthread_self();
    atomic_init(&j.next, 0);
    atomic_init(&j.helper_started, 0);
    ck_assert_int_eq(ad_fanout_create(2, &f), 0);
    ad_fanout_run(f, patient, &j);
    ad_fanout_free(f);
    ck_assert_int_eq(j.helper_calls, 1);
    ck_assert_int_eq(j.caller_part1, 0);
    for (int i = 0; i < ITEMS; i++)
        ck_assert_int_eq(j.done[i], 1);
}
END_TEST

START_TEST(test_helper_wakes_from_sleep)
{
    run_many(2, 60, 3, 0); /* pauses of 2 ms: the helper has gone to sleep, may be late */
}
END_TEST

START_TEST(test_post_join_back_to_back)
{
    run_many(2, 2000, 0, 1); /* the caller busy for a while between post and join */
}
END_TEST

/* Posted, the job runs on the helper with the caller doing something else: the caller
 * waits (up to 10 s) until every item is claimed before it joins, so the helper did them
 * all, and join returned only after the helper's call was over. */
START_TEST(test_posted_job_runs_meanwhile)
{
    ad_fanout *f;
    job j;

    memset(&j, 0, sizeof(j));
    j.caller = pthread_self();
    atomic_init(&j.next, 0);
    atomic_init(&j.helper_started, 0);
    ck_assert_int_eq(ad_fanout_create(2, &f), 0);
    ad_fanout_post(f, part, &j);
    for (int t = 0; t < 10000 && atomic_load(&j.next) < ITEMS; t++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    ad_fanout_join(f);
    ck_assert_int_eq(j.helper_calls, 1);
    ck_assert_int_eq(j.helper_items, ITEMS);
    for (int i = 0; i < ITEMS; i++)
        ck_assert_int_eq(j.done[i], 1);
    ad_fanout_free(f);
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

    tcase_set_timeout(tc, 60); /* test_helper_runs_part_one waits up to 10 s for a helper */

    tcase_add_test(tc, test_one_thread_runs_both_parts_here);
    tcase_add_test(tc, test_back_to_back);
    tcase_add_test(tc, test_helper_runs_part_one);
    tcase_add_test(tc, test_helper_wakes_from_sleep);
    tcase_add_test(tc, test_post_join_back_to_back);
    tcase_add_test(tc, test_posted_job_runs_meanwhile);
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
