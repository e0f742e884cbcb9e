/*
 * check_trainer.c - trainer.c on a real libuv loop and thread pool: a job's result is
 * installed on the loop thread; the queue is first come first served and bounded; a
 * series already queued is not queued twice; an evicted series comes back to its owner
 * to be freed; a tiny CPU budget defers jobs; the loop keeps ingesting while a long
 * training runs; closing with jobs out waits for them and leaves the loop empty.
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "detector.h"
#include "net.h"
#include "trainer.h"

#include "detcfg.h"

typedef struct ctx {
    ad_series *order[16]; /* series in the order their jobs came back */
    int status[16];
    int n;
    int freed;            /* evicted series freed by the callback */
} ctx;

static void done_cb(void *arg, ad_series *s, int status, const char *err, double wall)
{
    ctx *c = arg;

    (void)err;
    ck_assert(wall >= 0);
    if (c->n < 16) {
        c->order[c->n] = s;
        c->status[c->n] = status;
    }
    c->n++;
    if (s->evicted) {
        ad_series_free(s);
        c->freed++;
    }
}

static void small_config(ad_detector_config *c, int epochs)
{
    plain_defaults(c);
    c->hidden = 4;
    c->window = 8;
    c->batch = 4;
    c->history = 200;
    c->train_after = 100;
    c->train_every = 0;
    c->epochs = epochs;
    c->patience = epochs;
    c->prime = 16;
}

/* A series with a detector that has seen enough for a training. */
static ad_series *make_series(const char *key, int epochs, int history)
{
    ad_series *s = calloc(1, sizeof(*s) + strlen(key) + 1); /* the key after it, as
                                                                series.c lays it out */
    ad_detector_config c;
    char err[256];
    ad_result r;

    ck_assert_ptr_nonnull(s);
    s->key = strcpy((char *)(s + 1), key);
    s->key_len = strlen(key);
    small_config(&c, epochs);
    if (history > c.history) {
        c.history = history;
        c.train_after = history;
    }
    ck_assert_msg(ad_detector_create(&c, &s->det, err, sizeof(err)) == 0, "%s", err);
    for (int t = 0; t < c.train_after; t++)
        ck_assert_int_eq(ad_detector_observe(s->det, t, sin(t * 0.3), &r), 0);
    return s;
}

static void closed_cb(void *arg)
{
    *(int *)arg = 1;
}

START_TEST(test_install_and_fifo)
{
    uv_loop_t loop;
    ad_trainer *t;
    ctx c = {0};
    ad_series *s[3];
    int closed = 0;

    uv_loop_init(&loop);
    ck_assert_int_eq(ad_trainer_create(&loop, 1, 64, 10, done_cb, &c, &t), 0);
    for (int i = 0; i < 3; i++) {
        char key[8];

        snprintf(key, sizeof(key), "s%d", i);
        s[i] = make_series(key, 2, 0);
        ck_assert_int_eq(ad_trainer_submit(t, s[i]), 0);
    }
    /* One thread: the first runs, the second waits in the pool (threads + 1 are out), the
     * third waits in the queue; queuing again changes nothing. */
    ck_assert_int_eq(s[0]->training, 1);
    ck_assert_int_eq(s[1]->training, 1);
    ck_assert_int_eq(s[2]->queued, 1);
    ck_assert_int_eq(ad_trainer_submit(t, s[2]), 0);
    ck_assert_int_eq(ad_trainer_submit(t, s[1]), 0);
    ck_assert_uint_eq(ad_trainer_get_stats(t)->queued, 1);
    ck_assert_uint_eq(ad_trainer_get_stats(t)->running, 2);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(c.n, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_ptr_eq(c.order[i], s[i]);
        ck_assert_int_eq(c.status[i], 0);
        ck_assert_uint_eq(ad_detector_get_stats(s[i]->det)->trainings, 1);
        ck_assert_int_eq(s[i]->training, 0);
    }
    ck_assert_uint_eq(ad_trainer_get_stats(t)->done, 3);
    ck_assert_uint_eq(ad_trainer_get_stats(t)->submitted, 3);
    ck_assert_uint_eq(ad_trainer_get_stats(t)->wall_hist[AD_TRAIN_BUCKETS - 1], 3);
    ck_assert(ad_trainer_get_stats(t)->cpu_seconds > 0);
    ad_trainer_close(t, closed_cb, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(closed, 1);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    for (int i = 0; i < 3; i++)
        ad_series_free(s[i]);
}
END_TEST

/* ops whose training notes the nice value of the thread it runs on */
static int nice_seen = -100;

static int nice_snapshot(void *arg, ad_series *s, void **job, char *err, size_t errlen)
{
    (void)arg, (void)s, (void)err, (void)errlen;
    *job = malloc(1);
    return *job ? 0 : -AD_ENOMEM;
}

static int nice_run(void *job, char *err, size_t errlen)
{
    (void)job, (void)err, (void)errlen;
    errno = 0;
    nice_seen = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    return 0;
}

static int nice_install(void *arg, ad_series *s, void *job, char *err, size_t errlen)
{
    (void)arg, (void)s, (void)job, (void)err, (void)errlen;
    return 0;
}

START_TEST(test_training_runs_at_its_nice_value)
{
    const ad_trainer_ops ops = {nice_snapshot, nice_run, nice_install, free};
    uv_loop_t loop;
    ad_trainer *t;
    ctx c = {0};
    ad_series *s = make_series("n", 1, 0);
    int closed = 0;

    uv_loop_init(&loop);
    ck_assert_int_eq(ad_trainer_create(&loop, 1, 64, 4, done_cb, &c, &t), 0);
    ad_trainer_set_ops(t, &ops, NULL);
    ad_trainer_set_nice(t, 7);
    ck_assert_int_eq(ad_trainer_submit(t, s), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(c.n, 1);
    ck_assert_int_eq(nice_seen, 7);
    ck_assert_int_eq(getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid)), 0); /* the loop's */
    ad_trainer_close(t, closed_cb, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ad_series_free(s);
}
END_TEST

START_TEST(test_queue_bound_and_forget)
{
    uv_loop_t loop;
    ad_trainer *t;
    ctx c = {0};
    ad_series *a = make_series("a", 1, 0), *b = make_series("b", 1, 0),
              *x = make_series("x", 1, 0), *y = make_series("y", 1, 0);
    int closed = 0;

    uv_loop_init(&loop);
    ck_assert_int_eq(ad_trainer_create(&loop, 1, 64, 1, done_cb, &c, &t), 0);
    ck_assert_int_eq(ad_trainer_submit(t, a), 0); /* out at once */
    ck_assert_int_eq(ad_trainer_submit(t, y), 0); /* out: waits in the pool */
    ck_assert_int_eq(ad_trainer_submit(t, b), 0); /* queued: the queue is full */
    ck_assert_int_eq(ad_trainer_submit(t, x), -AD_EFULL);
    ck_assert_uint_eq(ad_trainer_get_stats(t)->dropped, 1);
    ck_assert_int_eq(x->queued, 0);
    ad_trainer_forget(t, b); /* b evicted while queued: never trained */
    ck_assert_int_eq(b->queued, 0);
    ck_assert_uint_eq(ad_trainer_get_stats(t)->queued, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(c.n, 2);
    ck_assert_ptr_eq(c.order[0], a);
    ck_assert_ptr_eq(c.order[1], y);
    ck_assert_uint_eq(ad_detector_get_stats(b->det)->trainings, 0);
    ad_trainer_close(t, closed_cb, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ad_series_free(a);
    ad_series_free(b);
    ad_series_free(x);
    ad_series_free(y);
}
END_TEST

/* Evicted while training: nothing is installed and the owner frees it on return. */
START_TEST(test_evicted_while_training)
{
    uv_loop_t loop;
    ad_trainer *t;
    ctx c = {0};
    ad_series *a = make_series("a", 2, 0);
    int closed = 0;

    uv_loop_init(&loop);
    ck_assert_int_eq(ad_trainer_create(&loop, 1, 64, 4, done_cb, &c, &t), 0);
    ck_assert_int_eq(ad_trainer_submit(t, a), 0);
    a->evicted = 1;
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(c.n, 1);
    ck_assert_int_lt(c.status[0], 0);
    ck_assert_int_eq(c.freed, 1);
    ck_assert_uint_eq(ad_trainer_get_stats(t)->failed, 1);
    ad_trainer_close(t, closed_cb, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* A budget of 0.01 cores: after the first job the credit is negative and the second
 * waits for it (deferred), yet all finish. (Two start at once: threads + 1 are out.) */
START_TEST(test_cpu_budget_defers)
{
    uv_loop_t loop;
    ad_trainer *t;
    ctx c = {0};
    ad_series *a = make_series("a", 3, 0), *b = make_series("b", 1, 0),
              *e = make_series("e", 1, 0);
    int closed = 0;

    uv_loop_init(&loop);
    ck_assert_int_eq(ad_trainer_create(&loop, 1, 0.01, 4, done_cb, &c, &t), 0);
    ck_assert_int_eq(ad_trainer_submit(t, a), 0);
    ck_assert_int_eq(ad_trainer_submit(t, b), 0);
    ck_assert_int_eq(ad_trainer_submit(t, e), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(c.n, 3);
    ck_assert_uint_gt(ad_trainer_get_stats(t)->deferred, 0);
    ck_assert_uint_eq(ad_trainer_get_stats(t)->done, 3);
    ad_trainer_close(t, closed_cb, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ad_series_free(a);
    ad_series_free(b);
    ad_series_free(e);
}
END_TEST

/* Ingestion goes on while a long training runs: an idle handle observes values of another
 * series on the loop thread until the job comes back; thousands get through. */
typedef struct ingest {
    uv_idle_t idle;
    ad_detector *det;
    ad_series *training;
    long observed;
    long during;        /* observed while the training was out */
} ingest;

static void idle_cb(uv_idle_t *h)
{
    ingest *in = h->data;
    ad_result r;

    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(ad_detector_observe(in->det, 1000.0 + (double)in->observed,
                                             sin(in->observed * 0.1), &r), 0);
        in->observed++;
        if (in->training->training)
            in->during++;
    }
    if (!in->training->training)
        uv_idle_stop(h);
}

START_TEST(test_ingestion_goes_on)
{
    uv_loop_t loop;
    ad_trainer *t;
    ctx c = {0};
    ad_series *big = make_series("big", 200, 4000), *other = make_series("other", 1, 0);
    ingest in = {.det = other->det, .training = big};
    int closed = 0;

    uv_loop_init(&loop);
    ck_assert_int_eq(ad_trainer_create(&loop, 1, 64, 4, done_cb, &c, &t), 0);
    ck_assert_int_eq(ad_trainer_submit(t, big), 0);
    uv_idle_init(&loop, &in.idle);
    in.idle.data = &in;
    uv_idle_start(&in.idle, idle_cb);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(c.n, 1);
    ck_assert_int_eq(c.status[0], 0);
    ck_assert_msg(in.during >= 1000, "only %ld values observed during the training", in.during);
    uv_close((uv_handle_t *)&in.idle, NULL);
    ad_trainer_close(t, closed_cb, &closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ad_series_free(big);
    ad_series_free(other);
}
END_TEST

/* Closing with a job out and others queued: the queued ones are dropped, the one out comes
 * back and is installed, then the trainer frees itself. */ 
START_TEST(test_close_with_jobs_out)
{
    uv_loop_t loop;
    ad_trainer *t;
    ctx c = {0};
    ad_series *a = make_series("a", 2, 0), *b = make_series("b", 2, 0),
              *e = make_series("e", 2, 0);
    int closed = 0;

    uv_loop_init(&loop);
    ck_assert_int_eq(ad_trainer_create(&loop, 1, 64, 4, done_cb, &c, &t), 0);
    ck_assert_int_eq(ad_trainer_submit(t, a), 0);
    ck_assert_int_eq(ad_trainer_submit(t, b), 0);
    ck_assert_int_eq(ad_trainer_submit(t, e), 0);
    ad_trainer_close(t, closed_cb, &closed);
    ck_assert_int_eq(e->queued, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(closed, 1);
    ck_assert_int_eq(c.n, 2);
    ck_assert_ptr_eq(c.order[0], a);
    ck_assert_ptr_eq(c.order[1], b);
    ck_assert_uint_eq(ad_detector_get_stats(e->det)->trainings, 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ad_series_free(a);
    ad_series_free(b);
    ad_series_free(e);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("trainer");
    TCase *tc = tcase_create("jobs");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_install_and_fifo);
    tcase_add_test(tc, test_training_runs_at_its_nice_value);
    tcase_add_test(tc, test_queue_bound_and_forget);
    tcase_add_test(tc, test_evicted_while_training);
    tcase_add_test(tc, test_cpu_budget_defers);
    tcase_add_test(tc, test_close_with_jobs_out);
    suite_add_tcase(s, tc);
    tc = tcase_create("ingestion");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_ingestion_goes_on);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    /* As the daemon runs it (main sets it to training.threads): one worker, so the jobs
     * handed to the pool finish in the order they were handed. */
    setenv("UV_THREADPOOL_SIZE", "1", 1);
    sr = srunner_create(suite());

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
