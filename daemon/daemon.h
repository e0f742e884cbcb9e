/*
 * daemon.h - the daemon: one libuv loop and everything hanging off it.
 *
 * ad_daemon owns the configuration, the series table, the listeners, the StatsD
 * aggregator and its flush timer, the trainer, the event sinks, the HTTP server, the
 * eviction timer and the signal handlers. Every line a listener (or POST /write)
 * receives goes through ad_daemon_line: parsed by its protocol's parser into samples;
 * each sample finds or creates its series (first sight; refused above max_series;
 * dropped when an `ignore` rule matches) and is observed by the series' detector; a
 * flagged value becomes an event; a due training goes to the trainer. Everything is
 * counted for /metrics.
 *
 * The struct is public so the HTTP API and /metrics (api.c, metrics.c) can read it; only
 * daemon.c changes it.
 */
#ifndef AD_DAEMON_H
#define AD_DAEMON_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "clock.h"
#include "config.h"
#include "events.h"
#include "fdlimit.h"
#include "http/http.h"
#include "ingest/listener.h"
#include "ingest/promrw.h"
#include "sd.h"
#include "series.h"
#include "ingest/statsd_agg.h"
#include "state/store.h"
#include "trainer.h"

#define AD_KEY_MAX 1024 /* longest canonical series key, bytes */
#define AD_BATCH   128  /* samples gathered before they go through their series */

/* A parsed sample waiting in the batch (ad_daemon_flush). */
typedef struct ad_pending {
    const char *key; /* in the daemon's batch_keys */
    size_t key_len;
    uint64_t hash;
    double ts, value; /* ts: NAN until the batch stamps it with the receipt time */
    int proto;
    /* set by the flush: */
    struct ad_series *s; /* the sample's series (NULL: refused or ignored) */
    int bucket;          /* its series' bucket (daemon.c's pass 2) */
    int rc;              /* the detector's return */
    ad_result r;         /* and result */
} ad_pending;

#define AD_BUCKETS 16 /* a batch's series are split into this many buckets (daemon.c) */

/* Samples parsed and queued (ad_daemon_sample), then taken through their series
 * together (ad_daemon_flush, daemon.c's three passes). */
typedef struct ad_batch {
    ad_pending v[AD_BATCH];
    int n;
    size_t keys_used;          /* bytes of keys */
    uint64_t recv_hr;          /* uv_hrtime() of the receipt of its bytes */
    int ord[AD_BATCH];         /* pass 2: sample indices grouped by bucket, in order */
    int start[AD_BUCKETS + 1]; /* bucket k is ord[start[k] .. start[k + 1]) */
    atomic_int next;           /* the next bucket to claim */
    int scored[2];             /* samples of pass 2 run by the loop thread, the helper */
    int posted;                /* pass 2 was offered to the helper */
    char keys[AD_BATCH * 128 > AD_KEY_MAX ? AD_BATCH * 128 : AD_KEY_MAX];
} ad_batch;

#define AD_LAT_BUCKETS 18 /* receipt-to-score latency histogram, see ad_latency_le */

/* One anomaly kept for GET /api/v1/anomalies. */
typedef struct ad_anomaly {
    double ts;       /* the sample's timestamp */
    char *series;    /* owned copy of the key */
    double value, predicted, score;
} ad_anomaly;

typedef struct ad_daemon {
    uv_loop_t *loop;
    ad_config cfg;
    double started;                 /* wall clock at start, seconds */

    ad_series_table *series;
    ad_listeners *listeners;
    ad_statsd_agg *statsd;
    ad_trainer *trainer;
    ad_events *events;
    ad_http_server *http;

    ad_fdbudget fdb;                /* descriptors the doors' connections share
                                       (fdlimit.h) */
    ad_store *store;                /* NULL when store.enabled is false */
    struct ad_fam *families;        /* shared families (families.h) */
    char config_path[AD_PATH_MAX];  /* the file loaded ("" for the built-in defaults) */
    ad_sd_fds sd_fds;               /* sockets passed by systemd */

    uv_timer_t statsd_timer;        /* flushes the StatsD aggregator */
    uv_timer_t sweep_timer;         /* evicts idle series */
    uv_timer_t checkpoint_timer;    /* checkpoints changed series to the store */
    uv_timer_t watchdog_timer;      /* WATCHDOG=1 and STATUS= to systemd */
    uv_signal_t sig_int, sig_term, sig_hup;
    int stopping;
    int exit_code;

    char keybuf[AD_KEY_MAX];        /* parsers write keys here */
    int cur_proto;                  /* protocol of the line being parsed */
    ad_batch bat[2];
    ad_batch *cur;                  /* one of bat: where samples are queued */
    ad_batch *scoring;              /* the other while ad_daemon_flush_async's detectors
                                       run, until the next flush finishes it; else NULL */
    struct ad_fanout *fanout;       /* the detectors' helper thread (score_threads) */

    ad_anomaly *anomalies;          /* ring of the last anomaly_cap anomalies */
    int anomaly_cap, anomaly_len, anomaly_head;

    /* counters for /metrics */
    uint64_t samples[AD_PROTO_N];   /* samples parsed, by protocol */
    uint64_t parse_errors[AD_PROTO_N][AD_PE_NREASONS];
    uint64_t refused[AD_REFUSE_NREASONS]; /* values detectors refused */
    uint64_t series_created, series_evicted, series_refused, series_failed;
    uint64_t ignored;               /* samples of ignored series */
    uint64_t statsd_full;           /* StatsD metrics refused: aggregator full */
    uint64_t anomalies_total;
    uint64_t trainings_failed;
    double last_parse_warn[AD_PROTO_N]; /* wall clock of the last parse-error warning */
    double last_full_warn;

    /* the store */
    char **deletes;                 /* keys of evicted series to delete at the next
                                       checkpoint (ndeletes of cap_deletes) */
    size_t ndeletes, cap_deletes;
    void (*checkpoint_done)(struct ad_daemon *d); /* called when the one out is over */
    size_t ckpt_pos;                /* series table slot the next checkpoint batch starts at */
    size_t ckpt_start;              /* where the current pass over the table began */
    int ckpt_wrapped;               /* the current pass went past the table's end */
    int ckpt_more;                  /* the batch out was capped: the pass goes on */
    uint64_t restored;              /* series restored at start */
    uint64_t restore_skipped[4];    /* rows not restored: damaged blob, changed
                                       settings, no room or ignored, key not UTF-8 */
    uint64_t checkpoints_skipped;   /* a checkpoint was due while one was out */
    double last_store_warn;
    uint64_t reloads, reload_failures;

    /* latency from receipt (a read, a datagram, a request, a StatsD flush) to score */
    uint64_t recv_hr;               /* uv_hrtime() of the bytes being parsed */
    double recv_wall;               /* wall clock of the same moment (stamps samples
                                       without a timestamp, and last_seen) */
    uint64_t lat_hist[AD_LAT_BUCKETS]; /* per bucket (not cumulative) */
    uint64_t scored[2];             /* samples whose detector ran on the loop thread, on
                                       the score helper */
    double lat_sum;                 /* seconds */

    ad_promrw *promrw;              /* Prometheus remote write (promrw.h): NULL until the
                                       first POST /api/v1/write */
} ad_daemon;

/* Upper bound of latency bucket i in seconds (the last is +Inf). */
double ad_latency_le(int i);

/* One parsed sample into its series (created on first sight): what every protocol's
 * lines become. Protocols other than the line listeners (HTTP bodies) call it too,
 * after setting d->recv_hr = uv_hrtime() and d->recv_wall = ad_wall_now(). */
void ad_daemon_sample(ad_daemon *d, int proto, const ad_sample *s);

/* Makes sure a key (NUL-terminated) has its series, creating it now as its first sample
 * would (the rule's settings, counted in series_created) but without a sample: for a
 * door that bounds how many series one request creates (promrw.c). Returns 1 when it
 * was created (create 0: when it would be; nothing is done), 0 when it exists or is not
 * for a series (an ignore rule, a family's key: its samples are counted as such when they
 * come), -AD_EFULL at max_series (nothing counted: the caller counts its refusal),
 * -AD_ENOMEM. */
int ad_daemon_prepare_series(ad_daemon *d, int proto, const char *key, size_t len,
                             int create);

/* Samples are taken in batches (ad_daemon_sample queues; a full batch goes at once):
 * whoever hands the daemon samples calls this before its callback returns, so every
 * sample is observed, counted and alerted on, and the family members' deferred network
 * steps have run (ad_fam_flush), before anything else runs. */
void ad_daemon_flush(ad_daemon *d);

/* A flush that leaves the batch's detectors running on the helper (score_threads: 2)
 * while the caller reads and parses the next bytes: for a listener with more bytes at
 * hand. The batch is finished by the next flush of either kind, which the caller must
 * make before its callback returns (nothing else may run meanwhile: the detectors are
 * the helper's). */
void ad_daemon_flush_async(ad_daemon *d);

/* Reloads the configuration file (SIGHUP): see docs/DAEMON.md. 0, or a negative ad_err
 * with the message logged (the running configuration stays). */
int ad_daemon_reload(ad_daemon *d);

/* Starts the daemon on a loop with a loaded configuration (copied; the daemon frees its
 * copy): binds every socket, starts the timers and signal handlers. Returns 0, or a
 * negative ad_err with a message; either way *out is set: on failure call
 * ad_daemon_stop, run the loop until it ends, then ad_daemon_free. */
int ad_daemon_start(uv_loop_t *loop, ad_config *cfg, const char *config_path,
                    ad_daemon **out, char *err, size_t errlen);

/* One line from a client, as a listener of protocol `proto` received it. */
void ad_daemon_line(ad_daemon *d, int proto, int precision, const char *line, size_t len);

/* Graceful stop: stops accepting, delivers what the parsers hold, flushes StatsD, lets
 * running trainings come back, closes every handle. The loop then ends by itself. */
void ad_daemon_stop(ad_daemon *d);

/* Frees the daemon once the loop has ended. */
void ad_daemon_free(ad_daemon *d);

#endif
