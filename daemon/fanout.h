/*
 * fanout.h - one helper thread that takes half of a piece of loop work (fork-join).
 *
 * ad_fanout_run(f, fn, ctx) runs fn(ctx, 1) on the helper thread and fn(ctx, 0) on the
 * caller's at the same time, and returns when both are done: the caller's loop stands
 * still meanwhile, so fn may touch loop-owned data as long as the two parts touch
 * disjoint data (the daemon splits a batch of samples by series). The helper waits for
 * work spinning briefly, then asleep on a condition variable. With no helper (created
 * with threads < 2) both parts run on the caller's thread, part 0 first.
 */
#ifndef AD_FANOUT_H
#define AD_FANOUT_H

typedef struct ad_fanout ad_fanout;

typedef void (*ad_fanout_fn)(void *ctx, int part);

/* threads: 1 (no helper) or 2. 0, or a negative ad_err (*out NULL). */
int ad_fanout_create(int threads, ad_fanout **out);

/* Parts run at once: 1 or 2. */
int ad_fanout_parts(const ad_fanout *f);

void ad_fanout_run(ad_fanout *f, ad_fanout_fn fn, void *ctx);

/* Stops and joins the helper (NULL: nothing). */
void ad_fanout_free(ad_fanout *f);

#endif
