/*
 * promrw.h - Prometheus remote write into the daemon: POST /api/v1/write.
 *
 * One request: the headers checked (Content-Encoding snappy, else 415; Content-Type
 * application/x-protobuf when given, else 415), the body decoded (remote_write.h: not
 * snappy or not protobuf 400, too large 413, out of memory 500), then, series by
 * series:
 *   - unusable series (remote_write.h's reasons) and keys over AD_KEY_MAX are dropped
 *     and counted (the answer is then 400: Prometheus does not retry it);
 *   - anomalyd's own output written back (ad_promrw_own_family: anomalyd_*,
 *     anomaly_score, anomalous, anomaly_value, anomaly_predicted) is dropped, counted,
 *     unless prometheus.exclude_own is false: a Prometheus that scrapes anomalyd and
 *     remote-writes everything would otherwise make each of them a new series, whose
 *     output comes back as more new series, without end;
 *   - prometheus.include / exclude (relabel.h) drop series, counted;
 *   - the key is Prometheus' text form name{a="1",b="2"};
 *   - samples go in timestamp order: the staleness marker ends the series' current
 *     run: it is counted, not scored, and a rate series must prime again; the next
 *     sample is taken as any other. Other NaN and infinite values are counted and
 *     skipped (Prometheus' summaries send NaN quantiles: no error status for those).
 *     A sample older than the series' last one is out of order: counted, skipped, and
 *     the answer is 400 (as Prometheus' own receiver does: 4xx is not retried); one at
 *     the same timestamp is a duplicate (a resent batch): counted, skipped, no error;
 *   - counters (a name ending in _total, or a family sent as COUNTER in metadata, or the
 *     _count/_sum/_bucket of a HISTOGRAM or SUMMARY family) that prometheus.rate
 *     matches become per-second rates: the first sample primes, a decrease is a counter
 *     reset and primes again (neither is scored); whether a series is a rate is settled
 *     when it is first seen (metadata arriving later counts for series seen afterwards;
 *     a reload's new rate patterns for series new to the table);
 *   - each value goes to the sink's sample (the daemon's ad_daemon_sample, protocol
 *     prometheus), after the sink's received stamped the request's receipt.
 * The rest of a request is always taken, whatever one series did. The answer is 204, or
 * 400 with a JSON message saying how many samples were refused and why.
 *
 * One request creates at most AD_PRW_NEW_SERIES new series (their detectors' memory,
 * tens of KB each, is what makes creating a series cost: thousands at once would hold
 * the loop for seconds). A request that brings more is taken in two passes: the first
 * creates that many of its new series (without samples) and stops; the answer is 503
 * with Retry-After and nothing else of the request is taken or counted but its
 * requests_total{result="deferred"}. Prometheus retries a 5xx with the same samples,
 * so each retry creates the next share, and the one that finds every series in place is
 * taken whole. New series beyond max_series are refused (series_table_full, 400).
 *
 * The state (counters for /metrics, the compiled patterns, per series its last timestamp,
 * rate or raw and the counter's last value, the metadata types by family) lives in an
 * ad_promrw the daemon owns (created at the first request: ingest_sink.h's
 * ad_daemon_promrw_open), which reaches the daemon only through its sink. Its series
 * table is not a second index of the daemon's series: it holds what the daemon's series
 * do not, for series the daemon may not have (yet): the last timestamp (out of order and
 * duplicates, also for series an ignore rule drops or max_series refuses), and for a
 * rate its base (a counter's first sample primes it without reaching the daemon). It
 * holds at most max_series entries and forgets those idle for series_ttl (an entry new
 * to it takes its last timestamp from the daemon's series, restored from the store); the
 * family table at most 100000.
 */
#ifndef AD_PROMRW_H
#define AD_PROMRW_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "http/http.h"
#include "ingest/sample.h"
#include "series.h"

/* Requests by result. */
enum ad_promrw_result {
    AD_PRW_OK = 0,            /* 204 */
    AD_PRW_PARTIAL,           /* 400: some samples refused, the rest taken */
    AD_PRW_ENCODING,          /* 415: Content-Encoding is not snappy */
    AD_PRW_CONTENT_TYPE,      /* 415: Content-Type is not application/x-protobuf */
    AD_PRW_SNAPPY,            /* 400 */
    AD_PRW_PROTOBUF,          /* 400 */
    AD_PRW_TOO_LARGE,         /* 413: decodes to more than prometheus.max_decoded */
    AD_PRW_NOMEM,             /* 500 */
    AD_PRW_DEFERRED,          /* 503: more new series than one request may create */
    AD_PRW_NRESULTS
};

/* Samples by what became of them. */
enum ad_promrw_outcome {
    AD_PRW_INGESTED = 0,      /* handed to the series' detector */
    AD_PRW_EXCLUDED,          /* the series is excluded (include/exclude) */
    AD_PRW_STALE,             /* staleness markers */
    AD_PRW_NONFINITE,         /* NaN (not a staleness marker) or infinite */
    AD_PRW_OUT_OF_ORDER,      /* older than the series' last sample */
    AD_PRW_DUPLICATE,         /* at the series' last sample's timestamp */
    AD_PRW_PRIMED,            /* a counter's first sample after a start, a stale marker or a
                                 reset: primes the rate */
    AD_PRW_RESET,             /* a counter went down: a reset, primes again */
    AD_PRW_BAD_SERIES,        /* the series is unusable (remote_write.h's reasons) */
    AD_PRW_KEY_TOO_LONG,      /* the key passes AD_KEY_MAX */
    AD_PRW_STATE_FULL,        /* a new series and max_series reached (the daemon's table
                                 or this module's state table) */
    AD_PRW_OWN_OUTPUT,        /* anomalyd's own output (prometheus.exclude_own) */
    AD_PRW_NOUTCOMES
};

#define AD_PRW_NEW_SERIES 1000 /* new series one request may create (above) */

typedef struct ad_promrw_stats {
    uint64_t requests[AD_PRW_NRESULTS];
    uint64_t samples[AD_PRW_NOUTCOMES];
    uint64_t series_dropped[4];   /* series: excluded, unusable, key too long, own output */
    uint64_t decoded_bytes;       /* protobuf bytes decoded */
    uint64_t metadata;            /* metadata entries received */
    size_t series;                /* series in the state table now */
} ad_promrw_stats;

typedef struct ad_promrw ad_promrw;

/* Where the samples go (the daemon's ingest door, ingest_sink.h), ctx first. */
typedef struct ad_promrw_sink {
    void (*received)(void *ctx, uint64_t ns); /* a request arrived at uv_hrtime() ns */
    void (*sample)(void *ctx, int proto, const ad_sample *s); /* one value, queued */
    /* makes sure a key has its series (ad_daemon_prepare_series) */
    int (*prepare_series)(void *ctx, int proto, const char *key, size_t len, int create);
    void (*flush)(void *ctx);                 /* every value queued is taken */
    void *ctx;
} ad_promrw_sink;

/* The per-series families /metrics writes for remote-written series (metrics.c). */
#define AD_PRW_FAMILY_SCORE     "anomaly_score"
#define AD_PRW_FAMILY_ANOMALOUS "anomalous"
#define AD_PRW_FAMILY_VALUE     "anomaly_value"
#define AD_PRW_FAMILY_PREDICTED "anomaly_predicted"

/* A receiver over the owner's running configuration (at an address that stays; its
 * patterns are compiled at the first request and again after ad_promrw_reconfigure) and
 * series table (read: a series' last timestamp), feeding `sink` (copied). Returns 0 or
 * -AD_ENOMEM. */
int ad_promrw_create(const ad_config *cfg, ad_series_table *series,
                     const ad_promrw_sink *sink, ad_promrw **out);

/* The configuration changed (a reload): the patterns are compiled again at the next
 * request. */
void ad_promrw_reconfigure(ad_promrw *p);

/* Answers one POST /api/v1/write (the route checked method and auth). */
void ad_promrw_handle(ad_promrw *p, const ad_http_req *req, ad_http_conn *conn);

/* Whether a metric name is anomalyd's own output: anomalyd_* (every family of the
 * exposition) and the AD_PRW_FAMILY_* above (a Prometheus that scrapes anomalyd and
 * remote-writes everything sends them back: prometheus.exclude_own). */
int ad_promrw_own_family(const char *name);

/* The counters; all zero for NULL. */
const ad_promrw_stats *ad_promrw_get_stats(const ad_promrw *p);

/* Names for metric labels: "ok", "partial", ...; "ingested", "excluded", ...;
 * "unknown" out of range. */
const char *ad_promrw_result_name(int r);
const char *ad_promrw_outcome_name(int o);

/* Bytes its tables hold (entries, keys, buckets); 0 for NULL. */
size_t ad_promrw_bytes(const ad_promrw *p);

/* Frees the state (NULL is fine). */
void ad_promrw_free(ad_promrw *p);

#endif
