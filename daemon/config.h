/*
 * config.h - the daemon's configuration: its defaults, and loading it from YAML (libyaml)
 * with errors that name file:line:column.
 *
 * The file (config/anomalyd.yaml documents every key with its default and bounds):
 *
 *   log_level: info            # error | warn | info | debug
 *   max_series: 100000         # 1..100000000; new series beyond it are refused
 *   series_ttl: 86400          # seconds without a sample before a series is evicted;
 *                              # 0 = never; 0..1e9
 *   max_line: 65536            # bytes per line, 64..16777216
 *   max_connections: 10000     # concurrent stream connections, 1..1000000
 *   recent: 256                # points per series kept for the HTTP API, 0..65536
 *   weights: float32           # how a series' own network stores its weights: float32 |
 *                              # float16 | int8 (packed only: about 1/2 or 1/3 of the
 *                              # float bytes read per step and held); `fp16: true` is the
 *                              # old spelling of float16 (both given: they must agree)
 *   score_threads: 0           # threads running the detectors of a batch of samples: 1
 *                              # (the loop thread) or 2 (and a helper); 0 = 2 when the
 *                              # machine has 2 CPUs or more, else 1
 *   state_dir: ./var           # created at start; the paths marked <state_dir> below
 *                              # live in it when the file leaves them out (a path given
 *                              # is used as written); read at start only
 *   listeners:                 # a list; these are the defaults when the key is absent,
 *                              # a given list ([] for none) replaces them. Each needs
 *                              # protocol and transport; tcp/udp take address (default
 *                              # 127.0.0.1) and port (required), unix takes path
 *                              # (required), influx takes precision ns|us|ms|s
 *     - {protocol: graphite, transport: tcp, address: 127.0.0.1, port: 2003}
 *     - {protocol: graphite, transport: udp, address: 127.0.0.1, port: 2003}
 *     - {protocol: influx,   transport: tcp, address: 127.0.0.1, port: 8094,
 *        precision: ns}
 *     - {protocol: statsd,   transport: udp, address: 127.0.0.1, port: 8125}
 *     - {protocol: jsonl,    transport: tcp, address: 127.0.0.1, port: 8095}
 *     - {protocol: jsonl,    transport: unix, path: <state_dir>/anomalyd.sock}
 *   statsd:
 *     flush_interval: 10       # seconds, 0.1..3600
 *     idle_flushes: 360        # quiet flushes before a counter is forgotten, 1..1e6
 *   http:
 *     enabled: true
 *     address: 127.0.0.1
 *     port: 8080               # 0 = any free port (tests)
 *     token: ""                # bearer token required by /api when set
 *     allow_unauthenticated: false  # needed to bind /api beyond loopback without token
 *     max_body: 16777216       # bytes of a request body (POST /write), 1024..1073741824
 *   events:
 *     address: 127.0.0.1       # TCP subscribers ("" = none)
 *     port: 8096               # 0..65535
 *     unix: <state_dir>/events.sock  # Unix subscribers ("" = none)
 *     file: <state_dir>/events.jsonl # append-only JSON lines ("" = none)
 *     buffer: 1048576          # bytes buffered per subscriber, 4096..1073741824
 *   training:
 *     threads: 1               # training jobs at once, 1..64
 *     cpu_budget: 1.0          # cores' worth of CPU training may use on average,
 *                              # 0.01..64
 *     nice: 10                 # the training threads' nice value, 0..19
 *     queue: 10000             # series waiting for training, 1..10000000
 *   store:
 *     enabled: true            # keep series' trained states across restarts
 *     path: <state_dir>/anomalyd.db  # the SQLite database (its directory must exist
 *                              # or be state_dir); read at start only
 *     checkpoint_interval: 60  # seconds between checkpoints of changed series, 1..86400
 *     batch_bytes: 16777216    # state copied per batch on the loop, 1024..1073741824
 *   prometheus:                # remote write, POST /api/v1/write (docs/PROMETHEUS.md)
 *     include: []              # patterns (relabel.h); empty: every series is modelled
 *     exclude: []              # series any of these match are dropped (counted)
 *     rate: ["*"]              # counters these match become per-second rates
 *     exclude_own: true        # drop anomalyd's own output written back (anomaly_*,
 *                              # anomalous, anomalyd_*), counted
 *     max_decoded: 33554432    # bytes of protobuf one body may decode to, 1024..1073741824
 *   defaults:                  # detector settings for every series (models/)
 *     model: predict           # predict | seq2seq (an encoder-decoder)
 *     cell: lstm               # elman lstm peephole cifg gru gru_torch
 *     hidden: 32  layers: 1  features: [tod, dow]  history: 2500  train_after: 750
 *     train_every: 2000  window: 64  batch: 16  epochs: 60  patience: 8  lr: 0.005
 *     scorer: likelihood  threshold: 0.5  cooldown: 30  range_tolerance: 0.02 ...
 *   series:                    # per-series overrides, first match wins
 *     - match: "cpu.*"         # glob (fnmatch(3), no special meaning for '/' or '.')
 *       hidden: 32
 *     - match: "debug.*"
 *       ignore: true
 *
 * Every key is optional, but for a listener's protocol and transport and a rule's match.
 * <state_dir> stands for the file's state_dir, wherever it is in the file (./var by
 * default, so the built-in paths are ./var/anomalyd.db ...); the unix listener's path
 * follows it only when `listeners` is left out. ad_config.follow says which paths
 * followed; a state_dir too long for one of them is an error at state_dir.
 * Unknown keys, duplicate keys, wrong types and out-of-range values are errors. The
 * detector keys are anomalyctl's options (see config/anomalyd.yaml for the list);
 * `scorer` resets the other scorer keys to that kind's defaults first, wherever it is
 * in its map. A section left empty (`statsd:` with nothing under it) is an empty map.
 */
#ifndef AD_CONFIG_H
#define AD_CONFIG_H

#include <stddef.h>

#include "detector_config.h"
#include "net.h" /* AD_MAX_LAYERS, weight types; ad_err */
#include "ingest/protocols.h"

enum ad_log_level { AD_LOG_ERROR = 0, AD_LOG_WARN = 1, AD_LOG_INFO = 2, AD_LOG_DEBUG = 3 };

typedef enum ad_transport {
    AD_TRANSPORT_TCP = 0,
    AD_TRANSPORT_UDP = 1,
    AD_TRANSPORT_UNIX = 2
} ad_transport;

#define AD_ADDR_MAX 64   /* an IPv4 or IPv6 address as text */
#define AD_PATH_MAX 4096 /* a file or Unix socket path */

/* The paths whose defaults are inside state_dir: <state_dir>/<name>. */
#define AD_FOLLOW_STORE_PATH  1u /* store_path: anomalyd.db */
#define AD_FOLLOW_EVENTS_UNIX 2u /* events_unix: events.sock */
#define AD_FOLLOW_EVENTS_FILE 4u /* events_file: events.jsonl */
#define AD_FOLLOW_LISTENER    8u /* the default listeners' unix one's path: anomalyd.sock */
#define AD_FOLLOW_ALL         15u

typedef struct ad_listener_config {
    int protocol;             /* ad_proto */
    int transport;            /* ad_transport */
    char address[AD_ADDR_MAX]; /* TCP/UDP: address to bind */
    int port;                 /* TCP/UDP: 0..65535 (0 = any free port) */
    char path[AD_PATH_MAX];   /* UNIX: socket path */
    int precision;            /* INFLUX: ad_influx_precision of timestamps */
} ad_listener_config;

typedef struct ad_series_rule {
    char match[512];      /* glob on the series key */
    int shared;           /* 1: matching series form one family sharing a network */
    int ignore;           /* 1: matching series are not modelled (samples dropped,
                             counted) */
    ad_detector_config det; /* the defaults with this rule's keys applied */
    int line, column;     /* where the rule starts in the file (1-based) */
} ad_series_rule;

/* A list of patterns (prometheus.include ...): n strings, in one allocation with the
 * array (free(v) frees all). */
typedef struct ad_patterns {
    char **v;
    int n;
} ad_patterns;

typedef struct ad_config {
    char source[AD_PATH_MAX]; /* the file loaded ("" for defaults) */
    int log_level;            /* enum ad_log_level */
    size_t max_series;
    double series_ttl;        /* seconds; 0 = never evict */
    size_t max_line;
    size_t max_connections;
    int recent;
    int weights;              /* ad_wtype: own networks keep only these (fp16, int8); a
                                 family's steps on fp16 (with float masters) for both */
    int fp16;                 /* `fp16: true` as written (the old key); the loader folds it
                                 into weights, nothing else reads it */
    int score_threads;        /* 0 (by the CPUs), 1 or 2 (daemon.c's batch) */
    char state_dir[AD_PATH_MAX];
    unsigned follow;          /* AD_FOLLOW_* bits: the paths set from state_dir because the
                                 file does not give them (ad_config_set_state_dir moves
                                 these) */

    ad_listener_config *listeners; /* nlisteners entries, owned */
    int nlisteners;

    double statsd_flush;       /* seconds */
    int statsd_idle_flushes;

    int http_enabled;
    char http_address[AD_ADDR_MAX];
    int http_port;
    char http_token[256];
    int http_allow_unauthenticated;
    size_t http_max_body;

    char events_address[AD_ADDR_MAX]; /* "" = no TCP subscribers */
    int events_port;
    char events_unix[AD_PATH_MAX];    /* "" = no Unix subscribers */
    char events_file[AD_PATH_MAX];    /* "" = no file */
    size_t events_buffer;

    int train_threads;
    double train_cpu_budget;
    int train_nice;             /* training threads' nice value, 0..19 */
    size_t train_queue;

    int store_enabled;              /* keep series' states in the SQLite store */
    char store_path[AD_PATH_MAX];   /* the database file */
    double store_interval;          /* seconds between checkpoints of changed series */
    size_t store_batch_bytes;       /* detector bytes one checkpoint batch copies on the
                                       loop thread at most */

    ad_patterns prom_include;       /* remote-write series to model (empty: all) */
    ad_patterns prom_exclude;       /* remote-write series to drop */
    ad_patterns prom_rate;          /* counters to turn into per-second rates */
    int prom_exclude_own;           /* drop anomalyd's own families written back */
    size_t prom_max_decoded;        /* bytes a remote-write body may decode to */

    ad_detector_config defaults; /* for series no rule matches */
    ad_series_rule *rules;       /* nrules entries, owned, in file order */
    int nrules;
} ad_config;

/* Fills c with the defaults above (the default listeners included). Returns 0 or
 * -AD_ENOMEM. Free with ad_config_free. */
int ad_config_defaults(ad_config *c);

/* Loads a YAML file over the defaults. c need not be initialised: it is overwritten,
 * not freed first. Returns 0, or a negative ad_err with a message
 * "file:line:column: what is wrong" in err (c is then left freed, ready for another
 * load). -AD_EIO with "file: strerror" when the file cannot be read. */
int ad_config_load(const char *path, ad_config *c, char *err, size_t errlen);

/* The same from text in memory; `name` stands for the file in messages. */
int ad_config_parse(const char *text, size_t len, const char *name, ad_config *c, char *err,
                    size_t errlen);

/* Sets c->state_dir to dir and moves the paths c->follow names into it (a reload keeps
 * the running state_dir so). Returns 0, or -AD_EINVAL with "state_dir: ..." in err when
 * dir or a path under it would not fit AD_PATH_MAX; c is then unchanged. */
int ad_config_set_state_dir(ad_config *c, const char *dir, char *err, size_t errlen);

/* Frees what c owns; c can be loaded again. */
void ad_config_free(ad_config *c);

/* The detector settings for a series key: the first rule whose glob matches, else the
 * defaults. *ignore is set when that rule says ignore. Returns the rule's index, or -1
 * for the defaults. */
int ad_config_match(const ad_config *c, const char *key, const ad_detector_config **det,
                    int *ignore);

/* s as an unsigned 64-bit decimal integer, 0..UINT64_MAX: digits only, no sign (strtoull
 * would wrap "-1"), nothing after them. Returns 0 with *v set, or -AD_EINVAL. The
 * configuration's U64 keys (seed) and anomalyctl's --seed read it so. */
int ad_config_parse_u64(const char *s, uint64_t *v);

/* "error", "warn", "info", "debug"; NULL if out of range. */
const char *ad_log_level_name(int level);

#endif
