/*
 * daemon_impl.h - the daemon's insides, shared by its own files and nobody else:
 * daemon.c (start, stop, the receivers' sink, timers, signals, the readers' doors),
 * daemon_batch.c (series creation and the scoring pipeline), daemon_reload.c (SIGHUP).
 * Every other module reaches the daemon through daemon.h, ingest_sink.h and stats.h.
 */
#ifndef AD_DAEMON_IMPL_H
#define AD_DAEMON_IMPL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "events.h"
#include "families.h"
#include "fanout.h"
#include "fdlimit.h"
#include "http/http.h"
#include "ingest/listener.h"
#include "ingest/promrw.h"
#include "ingest/statsd_agg.h"
#include "sd.h"
#include "series.h"
#include "state/persist.h"
#include "stats.h"
#include "trainer.h"

#define AD_BATCH   128  /* samples gathered before they go through their series */
#define AD_BUCKETS 16   /* a batch's series are split into this many buckets */
#define AD_ANOMALY_RING 1000 /* anomalies kept for GET /api/v1/anomalies */
#define AD_WARN_EVERY 60.0   /* seconds between repeated warnings of one kind */

/* A parsed sample waiting in the batch (ad_daemon_flush). */
typedef struct ad_pending {
    const char *key; /* in the batch's keys */
    size_t key_len;
    uint64_t hash;
    double ts, value; /* ts: NAN until the batch stamps it with the receipt time */
    int proto;
    /* set by the flush: */
    struct ad_series *s; /* the sample's series (NULL: refused or ignored) */
    int bucket;          /* its series' bucket (pass 2) */
    int rc;              /* the detector's return */
    ad_result r;         /* and result */
} ad_pending;

/* Samples parsed and queued (ad_daemon_sample), then taken through their series
 * together (ad_daemon_flush, daemon_batch.c's three passes). */
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

struct ad_daemon {
    uv_loop_t *loop;
    ad_config cfg;                  /* the running configuration (a reload replaces its
                                       contents; its address stays: parts keep it) */
    ad_http_handler api;            /* the HTTP server's handler (ctx: the daemon) */

    ad_series_table *series;
    ad_listeners *listeners;
    ad_statsd_agg *statsd;
    ad_trainer *trainer;
    ad_events *events;
    ad_http_server *http;
    ad_fams fams;                   /* shared families (families.h) */
    ad_persist *persist;            /* the store's side (state/persist.h) */
    ad_promrw *promrw;              /* Prometheus remote write (promrw.h): NULL until the
                                       first POST /api/v1/write */

    ad_fdbudget fdb;                /* descriptors the doors' connections share
                                       (fdlimit.h) */
    char config_path[AD_PATH_MAX];  /* the file loaded ("" for the built-in defaults) */
    ad_sd_fds sd_fds;               /* sockets passed by systemd */

    uv_timer_t statsd_timer;        /* flushes the StatsD aggregator */
    uv_timer_t sweep_timer;         /* evicts idle series */
    uv_timer_t checkpoint_timer;    /* checkpoints changed series to the store */
    uv_timer_t watchdog_timer;      /* WATCHDOG=1 and STATUS= to systemd */
    uv_signal_t sig_int, sig_term, sig_hup;
    int stopping;

    char keybuf[AD_KEY_MAX];        /* parsers write keys here */
    int cur_proto;                  /* protocol of the line being parsed */
    ad_batch bat[2];
    ad_batch *cur;                  /* one of bat: where samples are queued */
    ad_batch *scoring;              /* the other while ad_daemon_flush_async's detectors
                                       run, until the next flush finishes it; else NULL */
    ad_fanout *fanout;              /* the detectors' helper thread (score_threads) */

    ad_anomaly *anomalies;          /* ring of the last anomaly_cap anomalies */
    int anomaly_cap, anomaly_len, anomaly_head;

    ad_daemon_stats st;             /* the counters (stats.h) */
    double last_parse_warn[AD_PROTO_N]; /* wall clock of the last parse-error warning */
    double last_full_warn;          /* of the last max_series warning */

    uint64_t recv_hr;               /* uv_hrtime() of the bytes being parsed */
    double recv_wall;               /* wall clock of the same moment (stamps samples
                                       without a timestamp, and last_seen) */
};

/* daemon_batch.c */

/* score_threads, 0 resolved by the CPUs this process may run on. */
int ad_daemon_score_threads(const ad_config *c);

/* daemon.c */

/* Takes a series out of the table, the trainer's queue and (at the next checkpoint) the
 * store; frees it, or marks it evicted when its training is out (freed when it comes
 * back). */
void ad_daemon_evict(ad_daemon *d, ad_series *s);

/* Starts the HTTP server as the configuration says (nothing when disabled). 0, or a
 * negative ad_err with a message (d->http stays NULL). */
int ad_daemon_start_http(ad_daemon *d, char *err, size_t errlen);

/* Every door takes its connections' descriptors from the one budget (fdlimit.h). */
void ad_daemon_share_fdbudget(ad_daemon *d);

/* (Re)starts the StatsD flush, sweep and checkpoint timers for the configuration. */
void ad_daemon_start_timers(ad_daemon *d);

/* The STATUS= line systemd shows. */
void ad_daemon_status_line(ad_daemon *d, char *buf, size_t len);

#endif
