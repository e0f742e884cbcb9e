/*
 * statsd_agg.h - StatsD aggregation: the metrics of one flush interval become one sample
 * per series, as StatsD users expect.
 *
 * Per key, each flush gives:
 *   counter: the sum of value / rate over the interval (events per interval). A counter
 *            seen before gives 0 for an interval without data (a counter that stops is
 *            news), until it has been quiet for `idle_flushes` flushes; then it is
 *            forgotten (it gives 0 for each of its first idle_flushes quiet intervals,
 *            and is forgotten at the last of them; idle_flushes 0: no zeros).
 *   timer:   the mean of the interval's values (each weighted 1 / rate); nothing when
 *            the interval had none.
 *   gauge:   its current value, when it was set or moved this interval (a delta moves
 *            it from its last value, 0 for a new gauge).
 * A timer or gauge quiet for idle_flushes flushes in a row is forgotten too (silently;
 * a gauge's value with it), so the table does not fill with dead keys.
 * A key keeps the type it was first seen with; a metric of another type for the same key
 * is refused (-AD_EINVAL from add). The table holds at most max_keys keys; a new key
 * beyond that is refused (-AD_EFULL) and existing ones carry on. Errors are ad_err
 * codes (models/net.h).
 */
#ifndef AD_STATSD_AGG_H
#define AD_STATSD_AGG_H

#include <stddef.h>

#include "ingest/proto_statsd.h"
#include "ingest/sample.h"

typedef struct ad_statsd_agg ad_statsd_agg;

/* Returns 0, -AD_EINVAL (idle_flushes < 0) or -AD_ENOMEM. */
int ad_statsd_agg_create(size_t max_keys, int idle_flushes, ad_statsd_agg **out);
void ad_statsd_agg_free(ad_statsd_agg *a);

/* Adds one parsed metric. 0; -AD_EINVAL for a type clash (or a metric no parser gives:
 * type out of range, value not finite, rate outside (0, 1], or sums becoming infinite);
 * -AD_EFULL when the key is new and the table is full; -AD_ENOMEM. */
int ad_statsd_agg_add(ad_statsd_agg *a, const ad_statsd_metric *m);

/* Ends the interval: calls fn once per sample due (key as above, ts as given) and starts
 * a new interval. Returns the number of samples given. fn returning non-zero stops the
 * calls; the interval ends all the same. */
size_t ad_statsd_agg_flush(ad_statsd_agg *a, double ts, ad_sample_fn fn, void *ctx);

/* Keys held. */
size_t ad_statsd_agg_size(const ad_statsd_agg *a);

#endif
