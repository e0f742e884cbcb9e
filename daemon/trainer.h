/*
 * trainer.h - training off the event loop.
 *
 * A series due for training is queued (once: a series already queued or training is not
 * queued again), first come first served, so every series gets its turn. The trainer
 * starts at most `threads` jobs at once: for each it takes a snapshot of the series'
 * detector on the loop thread, runs the training on libuv's thread pool
 * (uv_queue_work), and installs the result on the loop thread in the after-work
 * callback, then tells the owner through a callback. Ingestion never waits: the loop
 * only copies and installs. One more job than `threads` is handed to the pool, where it
 * waits for a worker: the pool runs `threads` at once (UV_THREADPOOL_SIZE, set by main),
 * and a worker that finishes starts the next job without waiting for a busy loop.
 *
 * CPU budget: training may use on average `cpu_budget` cores' worth of CPU. The trainer
 * keeps a credit of CPU seconds that grows with wall time at cpu_budget per second (at
 * most 10 s of it saved up) and shrinks by each job's measured thread CPU time; no job
 * starts while the credit is negative.
 *
 * A series evicted while queued is dropped from the queue (ad_trainer_forget); one
 * evicted while training is marked `evicted` by its owner, and the owner frees it in the
 * done callback.
 */
#ifndef AD_TRAINER_H
#define AD_TRAINER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "series.h"

#define AD_TRAIN_BUCKETS 12 /* duration histogram buckets, see ad_trainer_bucket_le */

typedef struct ad_trainer_stats {
    uint64_t submitted;   /* series queued */
    uint64_t done;        /* jobs installed */
    uint64_t failed;      /* jobs that failed (snapshot, training or install) */
    uint64_t dropped;     /* refused: queue full */
    size_t queued;        /* waiting now */
    size_t running;       /* jobs out now (running, or waiting in the pool) */
    double cpu_seconds;   /* thread CPU time spent training, total */
    double wall_sum;      /* wall seconds of finished jobs (histogram sum) */
    uint64_t wall_hist[AD_TRAIN_BUCKETS]; /* finished jobs by wall duration, cumulative
                                             per Prometheus' le buckets */
    uint64_t deferred;    /* times a start waited for CPU credit */
} ad_trainer_stats;

/* Called on the loop thread after a job came back: status 0 (installed) or a negative
 * ad_err (err says why; for an evicted series nothing was installed). */
typedef void (*ad_trainer_done_fn)(void *ctx, ad_series *s, int status, const char *err,
                                   double wall_seconds);

typedef struct ad_trainer ad_trainer;

/* How a queued series is trained. Without ops (the default) a series' own detector:
 * ad_detector_snapshot, ad_train_job_run, ad_detector_install. The daemon's ops also
 * train shared families (a family's entry in the queue is a series of its own). */
typedef struct ad_trainer_ops {
    int (*snapshot)(void *ctx, ad_series *s, void **job, char *err, size_t errlen);
    int (*run)(void *job, char *err, size_t errlen); /* on a pool thread: pure */
    int (*install)(void *ctx, ad_series *s, void *job, char *err, size_t errlen);
    void (*free)(void *job);
} ad_trainer_ops;

/* Returns 0 or -AD_ENOMEM. */
int ad_trainer_create(uv_loop_t *loop, int threads, double cpu_budget, size_t queue_max,
                      ad_trainer_done_fn fn, void *ctx, ad_trainer **out);

/* Sets how series are trained (ops copied; ctx passed to snapshot and install). */
void ad_trainer_set_ops(ad_trainer *t, const ad_trainer_ops *ops, void *ctx);

/* The nice value (0..19) training threads run at from their next job: above 0, scoring
 * (the loop and score threads, at 0) comes first when the CPUs are short, and training
 * takes what is left of its budget. */
void ad_trainer_set_nice(ad_trainer *t, int nice);

/* Changes the limits (reload). */
void ad_trainer_set_limits(ad_trainer *t, int threads, double cpu_budget, size_t queue_max);

/* Queues a series for training. 0 (queued, or already queued or training),
 * -AD_EFULL when the queue is full (counted), -AD_EINVAL when closing. */
int ad_trainer_submit(ad_trainer *t, ad_series *s);

/* Takes a series out of the queue if it is there (eviction). */
void ad_trainer_forget(ad_trainer *t, ad_series *s);

const ad_trainer_stats *ad_trainer_get_stats(const ad_trainer *t);

/* Upper bound (seconds) of histogram bucket i; the last is +Inf. */
double ad_trainer_bucket_le(int i);

/* Stops starting jobs and empties the queue; jobs already out finish (their results are
 * still installed). Once the last is back and the trainer's handles are closed, the
 * trainer frees itself and calls done(arg). */
void ad_trainer_close(ad_trainer *t, void (*done)(void *arg), void *arg);

#endif
