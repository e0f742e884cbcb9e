/*
 * metrics.h - the daemon's Prometheus text exposition (format 0.0.4), as GET /metrics
 * serves it.
 *
 * Daemon-wide: samples by protocol, parse errors by protocol and reason, values refused
 * by reason, series (now, max, created, evicted, refused), connections (and refused by
 * reason), file descriptors open and the limit, memory by part, bytes received,
 * training queue depth, jobs, CPU seconds and a duration histogram, events published and
 * dropped, subscribers, HTTP requests, uptime, build info. Per series (label
 * series="<key>"): last score, value, prediction and error, anomalies total, warming up,
 * trainings total and bytes held. Prometheus remote write: requests and samples by
 * result, series dropped; per remote-written series anomaly_score, anomalous,
 * anomaly_value and anomaly_predicted with the series' own labels plus
 * source_metric="<name>" (docs/PROMETHEUS.md). Counters end in _total; every family has HELP and
 * TYPE lines, so `promtool check metrics` accepts it. It reads the daemon through
 * stats.h only.
 */
#ifndef AD_METRICS_H
#define AD_METRICS_H

#include <stddef.h>

#include "stats.h"

/* Renders the exposition into a malloc'd buffer (*out, *len). Returns 0 or
 * -AD_ENOMEM. */
int ad_metrics_render(const ad_daemon *d, char **out, size_t *len);

/* The same; with_series 0 leaves out the per-series families (anomalyd_series_* and the
 * remote-written series' anomaly_*): the daemon's own figures only, cheap at millions of
 * series (GET /metrics?series=0). */
int ad_metrics_render_opt(const ad_daemon *d, int with_series, char **out, size_t *len);

#endif
