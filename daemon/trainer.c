/*
 * trainer.c - a bounded FIFO of series due for training, jobs on libuv's thread pool,
 * and a CPU budget kept as a credit of CPU seconds.
 */
#include "trainer.h"

#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#define CREDIT_MAX_SECONDS 10.0 /* at most this much wall time of budget saved up */
#define RECHECK_MS 100          /* re-check the credit this often while it is negative */

typedef struct job {
    uv_work_t req;        /* req.data = the job */
    ad_trainer *t;
    ad_series *s;
    void *tj;             /* the ops' job */
    int status;
    char err[256];
    double cpu_seconds;   /* measured in the worker */
    double started;       /* wall clock at submit (loop time) */
    int nice;             /* the worker thread's nice value while it runs */
} job;

struct ad_trainer {
    uv_loop_t *loop;
    uv_timer_t timer;     /* re-checks the credit */
    int threads;
    double budget;        /* cores */
    int nice;             /* training threads' nice value (ad_trainer_set_nice) */
    size_t queue_max;
    ad_series *head, *tail; /* the queue, linked by qnext */
    double credit;        /* CPU seconds */
    uint64_t credit_at;   /* uv_now of the last refill, ms */
    int closing;
    void (*close_done)(void *);
    void *close_arg;
    ad_trainer_done_fn fn;
    void *ctx;
    ad_trainer_ops ops;
    void *ops_ctx;
    ad_trainer_stats st;
};

static int det_snapshot(void *ctx, ad_series *s, void **out, char *err, size_t errlen)
{
    (void)ctx;
    return ad_detector_snapshot(s->det, (ad_train_job **)out, err, errlen);
}

static int det_run(void *tj, char *err, size_t errlen)
{
    return ad_train_job_run(tj, err, errlen);
}

static int det_install(void *ctx, ad_series *s, void *tj, char *err, size_t errlen)
{
    (void)ctx;
    return ad_detector_install(s->det, tj, err, errlen);
}

static void det_free(void *tj)
{
    ad_train_job_free(tj);
}

static const ad_trainer_ops detector_ops = {det_snapshot, det_run, det_install, det_free};

void ad_trainer_set_ops(ad_trainer *t, const ad_trainer_ops *ops, void *ctx)
{
    t->ops = *ops;
    t->ops_ctx = ctx;
}

static const double bucket_le[AD_TRAIN_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                   0.5,   1,    2.5,   5,    10,  INFINITY};

double ad_trainer_bucket_le(int i)
{
    return bucket_le[i];
}

int ad_trainer_create(uv_loop_t *loop, int threads, double cpu_budget, size_t queue_max,
                      ad_trainer_done_fn fn, void *ctx, ad_trainer **out)
{
    ad_trainer *t = calloc(1, sizeof(*t));

    if (!t)
        return -AD_ENOMEM;
    t->loop = loop;
    t->fn = fn;
    t->ctx = ctx;
    t->ops = detector_ops;
    ad_trainer_set_limits(t, threads, cpu_budget, queue_max);
    t->credit = 0;
    t->credit_at = uv_now(loop);
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
    *out = t;
    return 0;
}

void ad_trainer_set_nice(ad_trainer *t, int nice)
{
    t->nice = nice < 0 ? 0 : nice > 19 ? 19 : nice;
}

void ad_trainer_set_limits(ad_trainer *t, int threads, double cpu_budget, size_t queue_max)
{
    t->threads = threads < 1 ? 1 : threads;
    t->budget = cpu_budget > 0 ? cpu_budget : 0.01;
    t->queue_max = queue_max < 1 ? 1 : queue_max;
}

static void refill(ad_trainer *t)
{
    uint64_t now = uv_now(t->loop);
    double max = t->budget * CREDIT_MAX_SECONDS;

    t->credit += t->budget * (double)(now - t->credit_at) / 1000.0;
    if (t->credit > max)
        t->credit = max;
    t->credit_at = now;
}

/* The nice value this pool thread was given (Linux: per thread). */
static _Thread_local int thread_nice;

static void work_cb(uv_work_t *req)
{
    job *j = req->data;
    double c0;

    /* Lowering is always allowed; raising back may not be (RLIMIT_NICE): then the
     * thread keeps the lower priority, which only costs training time. */
    if (j->nice != thread_nice &&
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), j->nice) == 0)
        thread_nice = j->nice;
    c0 = ad_thread_cpu_now();

    j->status = j->t->ops.run(j->tj, j->err, sizeof(j->err));
    j->cpu_seconds = ad_thread_cpu_now() - c0;
}

static void dispatch(ad_trainer *t);

static void after_cb(uv_work_t *req, int status)
{
    job *j = req->data;
    ad_trainer *t = j->t;
    ad_series *s = j->s;
    double wall = ad_mono_now() - j->started;
    int i;

    t->st.running--;
    s->training = 0;
    t->credit -= j->cpu_seconds;
    t->st.cpu_seconds += j->cpu_seconds;
    if (status == UV_ECANCELED) {
        j->status = -AD_EINVAL;
        snprintf(j->err, sizeof(j->err), "cancelled at shutdown");
    } else if (j->status == 0 && s->evicted) {
        j->status = -AD_EINVAL;
        snprintf(j->err, sizeof(j->err), "series evicted during training");
    } else if (j->status == 0) {
        j->status = t->ops.install(t->ops_ctx, s, j->tj, j->err, sizeof(j->err));
    }
    if (j->status == 0)
        t->st.done++;
    else
        t->st.failed++;
    t->st.wall_sum += wall;
    for (i = 0; i < AD_TRAIN_BUCKETS; i++)
        if (wall <= bucket_le[i])
            t->st.wall_hist[i]++;
    t->ops.free(j->tj);
    t->fn(t->ctx, s, j->status, j->err, wall);
    free(j);
    dispatch(t);
}

static void close_cb(uv_handle_t *h)
{
    ad_trainer *t = h->data;
    void (*done)(void *) = t->close_done;
    void *arg = t->close_arg;

    free(t);
    if (done)
        done(arg);
}

static void timer_cb(uv_timer_t *timer)
{
    dispatch(timer->data);
}

static ad_series *pop(ad_trainer *t)
{
    ad_series *s = t->head;

    if (!s)
        return NULL;
    t->head = s->qnext;
    if (!t->head)
        t->tail = NULL;
    s->qnext = NULL;
    s->queued = 0;
    t->st.queued--;
    return s;
}

/* Starts jobs while there are threads free, series queued and credit left. */
static void dispatch(ad_trainer *t)
{
    if (t->closing) {
        if (t->st.running == 0 && !uv_is_closing((uv_handle_t *)&t->timer))
            uv_close((uv_handle_t *)&t->timer, close_cb);
        return;
    }
    refill(t);
    /* One job more than the threads waits in the pool's queue, so a worker that finishes
     * starts the next job at once instead of when the (busy) loop gets to after_cb. */
    while ((int)t->st.running < t->threads + 1 && t->head) {
        ad_series *s;
        job *j;
        int r;

        if (t->credit < 0) {
            t->st.deferred++;
            if (!uv_is_active((uv_handle_t *)&t->timer))
                uv_timer_start(&t->timer, timer_cb, RECHECK_MS, 0);
            return;
        }
        s = pop(t);
        j = calloc(1, sizeof(*j));
        if (!j) {
            t->st.failed++;
            t->fn(t->ctx, s, -AD_ENOMEM, "out of memory", 0);
            continue;
        }
        j->t = t;
        j->nice = t->nice;
        j->s = s;
        j->req.data = j;
        r = t->ops.snapshot(t->ops_ctx, s, &j->tj, j->err, sizeof(j->err));
        if (r == 0) {
            j->started = ad_mono_now();
            r = uv_queue_work(t->loop, &j->req, work_cb, after_cb);
            if (r < 0) {
                snprintf(j->err, sizeof(j->err), "uv_queue_work: %s", uv_strerror(r));
                t->ops.free(j->tj);
                r = -AD_EIO;
            }
        }
        if (r < 0) {
            t->st.failed++;
            t->fn(t->ctx, s, r, j->err, 0);
            free(j);
            continue;
        }
        s->training = 1;
        t->st.running++;
    }
}

int ad_trainer_submit(ad_trainer *t, ad_series *s)
{
    if (t->closing)
        return -AD_EINVAL;
    if (s->queued || s->training)
        return 0;
    if (t->st.queued >= t->queue_max) {
        t->st.dropped++;
        return -AD_EFULL;
    }
    s->queued = 1;
    s->qnext = NULL;
    if (t->tail)
        t->tail->qnext = s;
    else
        t->head = s;
    t->tail = s;
    t->st.queued++;
    t->st.submitted++;
    dispatch(t);
    return 0;
}

void ad_trainer_forget(ad_trainer *t, ad_series *s)
{
    ad_series **pp, *prev = NULL;

    if (!s->queued)
        return;
    for (pp = &t->head; *pp; prev = *pp, pp = &(*pp)->qnext) {
        if (*pp == s) {
            *pp = s->qnext;
            if (t->tail == s)
                t->tail = prev;
            s->qnext = NULL;
            s->queued = 0;
            t->st.queued--;
            return;
        }
    }
}

const ad_trainer_stats *ad_trainer_get_stats(const ad_trainer *t)
{
    return &t->st;
}

void ad_trainer_close(ad_trainer *t, void (*done)(void *arg), void *arg)
{
    t->closing = 1;
    t->close_done = done;
    t->close_arg = arg;
    while (pop(t))
        ;
    uv_timer_stop(&t->timer);
    dispatch(t);
}
