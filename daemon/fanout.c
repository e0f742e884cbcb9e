/*
 * fanout.c - the fork-join helper thread (fanout.h).
 */
#include "fanout.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "err.h" /* ad_err */

enum { POSTED = 1, TAKEN, CANCELLED };

#define SPIN_ROUNDS 2000 /* polls (tens of microseconds) before sleeping */

struct ad_fanout {
    int threads;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* the helper sleeps here for work */
    pthread_cond_t done_cv; /* the caller sleeps here for the helper's part */
    atomic_ulong posted;    /* generation of the last work posted */
    atomic_ulong done;      /* generation the helper finished (or skipped) */
    atomic_int state;       /* of the last job: POSTED, TAKEN (by the helper), CANCELLED
                               (by the caller, done first) */
    atomic_int helper_asleep; /* set under mu while the helper waits on cv */
    atomic_int caller_asleep; /* set under mu while the caller waits on done_cv */
    atomic_int stop;
    ad_fanout_fn fn;        /* the job posted (ad_fanout_post), until joined */
    void *ctx;
    unsigned long gen;      /* its generation (the caller's) */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *helper(void *arg)
{
    ad_fanout *f = arg;
    unsigned long seen = 0;

    for (;;) {
        unsigned long g;
        int spins = 0;

        while ((g = atomic_load_explicit(&f->posted, memory_order_acquire)) == seen &&
               !atomic_load(&f->stop) && spins < SPIN_ROUNDS) {
            cpu_relax();
            spins++;
        }
        if (g == seen && !atomic_load(&f->stop)) {
            pthread_mutex_lock(&f->mu);
            atomic_store(&f->helper_asleep, 1); /* before the check: see ad_fanout_post */
            while ((g = atomic_load(&f->posted)) == seen && !atomic_load(&f->stop))
                pthread_cond_wait(&f->cv, &f->mu);
            atomic_store(&f->helper_asleep, 0);
            pthread_mutex_unlock(&f->mu);
        }
        if (atomic_load(&f->stop))
            return NULL;
        seen = g;
        int expect = POSTED;
        if (atomic_compare_exchange_strong(&f->state, &expect, TAKEN))
            f->fn(f->ctx, 1);
        /* else the caller did the work and is not waiting */
        atomic_store(&f->done, g);
        if (atomic_load(&f->caller_asleep)) {
            pthread_mutex_lock(&f->mu);
            pthread_cond_signal(&f->done_cv);
            pthread_mutex_unlock(&f->mu);
        }
    }
}

int ad_fanout_create(int threads, ad_fanout **out)
{
    ad_fanout *f = calloc(1, sizeof(*f));

    *out = NULL;
    if (!f)
        return -AD_ENOMEM;
    f->threads = threads >= 2 ? 2 : 1;
    if (f->threads == 2) {
        pthread_mutex_init(&f->mu, NULL);
        pthread_cond_init(&f->cv, NULL);
        pthread_cond_init(&f->done_cv, NULL);
        if (pthread_create(&f->th, NULL, helper, f) != 0) {
            pthread_mutex_destroy(&f->mu);
            pthread_cond_destroy(&f->cv);
            pthread_cond_destroy(&f->done_cv);
            f->threads = 1; /* no thread: both parts on the caller's */
        }
    }
    *out = f;
    return 0;
}

int ad_fanout_parts(const ad_fanout *f)
{
    return f->threads;
}

void ad_fanout_post(ad_fanout *f, ad_fanout_fn fn, void *ctx)
{
    f->fn = fn;
    f->ctx = ctx;
    if (f->threads < 2)
        return;
    atomic_store(&f->state, POSTED);
    f->gen = atomic_load(&f->posted) + 1;
    atomic_store(&f->posted, f->gen);
    /* The mutex only when the helper sleeps (a spinning helper sees posted change). Both
     * sides are sequentially consistent: the helper sets helper_asleep, then checks
     * posted; this stores posted, then reads helper_asleep. Either its check sees the
     * job, or this sees it asleep, and the signal cannot come before its wait: it holds
     * mu from setting the flag until the wait releases it. (Likewise caller_asleep.) */
    if (atomic_load(&f->helper_asleep)) {
        pthread_mutex_lock(&f->mu);
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
}

void ad_fanout_join(ad_fanout *f)
{
    const unsigned long g = f->gen;
    int spins = 0;
    int expect = POSTED;

    f->fn(f->ctx, 0);
    if (f->threads < 2)
        return;
    /* The helper has not picked it up: it never will (it sees CANCELLED), and part 0
     * has done all the work. */
    if (atomic_compare_exchange_strong(&f->state, &expect, CANCELLED))
        return;
    while (atomic_load_explicit(&f->done, memory_order_acquire) != g && spins < SPIN_ROUNDS) {
        cpu_relax();
        spins++;
    }
    if (atomic_load_explicit(&f->done, memory_order_acquire) != g) {
        pthread_mutex_lock(&f->mu);
        atomic_store(&f->caller_asleep, 1);
        while (atomic_load(&f->done) != g)
            pthread_cond_wait(&f->done_cv, &f->mu);
        atomic_store(&f->caller_asleep, 0);
        pthread_mutex_unlock(&f->mu);
    }
}

void ad_fanout_run(ad_fanout *f, ad_fanout_fn fn, void *ctx)
{
    ad_fanout_post(f, fn, ctx);
    ad_fanout_join(f);
}

void ad_fanout_free(ad_fanout *f)
{
    if (!f)
        return;
    if (f->threads == 2) {
        pthread_mutex_lock(&f->mu);
        atomic_store(&f->stop, 1);
        pthread_cond_signal(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->th, NULL);
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        pthread_cond_destroy(&f->done_cv);
    }
    free(f);
}
