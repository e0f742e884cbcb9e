/*
 * fanout.h - one helper thread that takes part of a piece of loop work (fork-join with
 * work claiming).
 *
 * ad_fanout_run(f, fn, ctx) posts fn(ctx, 1) to the helper thread and runs fn(ctx, 0) on
 * the caller's. The helper runs its call only if it picks the job up before the caller's
 * call has returned; otherwise it never runs it. So fn must claim its work in pieces
 * from ctx (an atomic counter, say) until none is left: the caller's call alone then
 * does all of it when the helper is late (descheduled, asleep), and the caller never
 * waits for a helper that has not started. When the helper did start, ad_fanout_run
 * returns once it is done. The caller's loop stands still meanwhile, so fn may touch
 * loop-owned data as long as the pieces touch disjoint data (the daemon claims series
 * buckets of a batch of samples). The helper waits for work spinning briefly, then
 * asleep on a condition variable; posting and finishing take no lock unless the other
 * side sleeps. With no helper (created with threads < 2) only
 * fn(ctx, 0) runs.
 */
#ifndef AD_FANOUT_H
#define AD_FANOUT_H

typedef struct ad_fanout ad_fanout;

typedef void (*ad_fanout_fn)(void *ctx, int part);

/* threads: 1 (no helper) or 2. 0, or a negative ad_err (*out NULL). */
int ad_fanout_create(int threads, ad_fanout **out);

/* Threads that may run a job's calls: 1 or 2. */
int ad_fanout_parts(const ad_fanout *f);

void ad_fanout_run(ad_fanout *f, ad_fanout_fn fn, void *ctx);

/* ad_fanout_run in two halves, for a caller with work of its own to overlap with the
 * helper's: post offers fn(ctx, 1) to the helper and returns at once; join runs
 * fn(ctx, 0) on the caller's thread and returns when the job is done, as run does (the
 * helper's call runs only if it started before the caller's returned). Between them the
 * caller must not touch what fn's pieces touch. One job at a time: every post is joined
 * before the next post or run. */
void ad_fanout_post(ad_fanout *f, ad_fanout_fn fn, void *ctx);
void ad_fanout_join(ad_fanout *f);

/* Stops and joins the helper (NULL: nothing). */
void ad_fanout_free(ad_fanout *f);

#endif
