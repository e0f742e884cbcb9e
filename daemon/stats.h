/*
 * stats.h - what a running daemon shows its readers (the HTTP API, /metrics): its
 * counters, its recent anomalies, and read-only access to its configuration and parts.
 *
 * The counters are a plain struct the daemon owns and updates on the loop thread;
 * ad_daemon_get_stats hands it out read-only. The parts are the daemon's modules, each
 * read through its own header (series.h, trainer.h, events.h, ...). Readers change none
 * of them: only the daemon's own files (daemon*.c) do. Everything here is for the loop
 * thread, between callbacks; what it returns is valid until the loop runs again (a
 * reload or a stop may replace or close a part).
 */
#ifndef AD_STATS_H
#define AD_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "detector.h"
#include "events.h"
#include "families.h"
#include "fdlimit.h"
#include "http/http.h"
#include "ingest/listener.h"
#include "ingest/promrw.h"
#include "ingest/protocols.h"
#include "ingest/sample.h"
#include "memstat.h"
#include "series.h"
#include "state/persist.h"
#include "trainer.h"

typedef struct ad_daemon ad_daemon;

#define AD_LAT_BUCKETS 18 /* receipt-to-score latency histogram, see ad_latency_le */

/* The daemon's counters for /metrics and GET /api/v1/status. */
typedef struct ad_daemon_stats {
    double started;                 /* wall clock at start, seconds */
    uint64_t samples[AD_PROTO_N];   /* samples parsed, by protocol */
    uint64_t parse_errors[AD_PROTO_N][AD_PE_NREASONS]; /* lines refused, by protocol and
                                                          reason (ad_parse_error) */
    uint64_t refused[AD_REFUSE_NREASONS]; /* values detectors refused, by reason */
    uint64_t series_created, series_evicted;
    uint64_t series_refused;        /* samples of new series refused: max_series */
    uint64_t series_failed;         /* series that could not be created */
    uint64_t ignored;               /* samples of ignored series */
    uint64_t statsd_full;           /* StatsD metrics refused: aggregator full */
    uint64_t anomalies_total;
    uint64_t trainings_failed;
    uint64_t reloads, reload_failures;
    /* latency from receipt (a read, a datagram, a request, a StatsD flush) to score */
    uint64_t lat_hist[AD_LAT_BUCKETS]; /* per bucket (not cumulative) */
    double lat_sum;                 /* seconds */
    uint64_t scored[2];             /* samples whose detector ran on the loop thread, on
                                       the score helper */
} ad_daemon_stats;

/* One anomaly kept for GET /api/v1/anomalies. */
typedef struct ad_anomaly {
    double ts;       /* the sample's timestamp */
    char *series;    /* owned copy of the key */
    double value, predicted, score;
} ad_anomaly;

/* Upper bound of latency bucket i in seconds (the last is +Inf). */
double ad_latency_le(int i);

/* The counters. */
const ad_daemon_stats *ad_daemon_get_stats(const ad_daemon *d);

/* The running configuration. */
const ad_config *ad_daemon_config(const ad_daemon *d);

/* The daemon is stopping (ad_daemon_stop was called). */
int ad_daemon_stopping(const ad_daemon *d);

/* The series table, to find and iterate series (not to add or remove any). */
ad_series_table *ad_daemon_series(const ad_daemon *d);

/* The parts, each NULL when it is not running (the HTTP server when http.enabled is
 * false, the listeners and the trainer once stopping, ...). */
const ad_trainer *ad_daemon_trainer(const ad_daemon *d);
const ad_events *ad_daemon_events(const ad_daemon *d);
const ad_listeners *ad_daemon_listeners(const ad_daemon *d);
const ad_http_server *ad_daemon_http(const ad_daemon *d);
const ad_persist *ad_daemon_persist(const ad_daemon *d); /* as without a store: NULL */
const ad_promrw *ad_daemon_promrw(const ad_daemon *d);   /* NULL until the first remote
                                                            write (ingest_sink.h) */
/* The descriptor budget the doors share, and the shared families. */
const ad_fdbudget *ad_daemon_fdbudget(const ad_daemon *d);
const ad_fams *ad_daemon_families(const ad_daemon *d);

/* The recent anomalies kept (the last 1000): how many, and the i-th, 0 the oldest. */
int ad_daemon_anomaly_count(const ad_daemon *d);
const ad_anomaly *ad_daemon_anomaly(const ad_daemon *d, int i);

/* Where the memory goes (memstat.h: one pass over the series). */
void ad_daemon_memstat(const ad_daemon *d, ad_memstat *m);

#endif
