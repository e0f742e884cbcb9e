/*
 * config.c - the daemon's configuration: one table row per key (name, type, bounds,
 * where it lives, default), the defaults those rows give, and a loader that walks a
 * libyaml document tree in a fixed order (scalars and sections, listeners, `defaults`,
 * then `series`, so rules inherit the defaults wherever they appear in the file). Every
 * error names file:line:column of the node at fault. The detector keys' bounds are the
 * models' own (ad_detector_config_check, ad_scorer_config_check, run after each map);
 * the rows repeat the simple ones so that an error points at the key itself.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "net.h" /* AD_MAX_LAYERS, weight types; ad_err */
#include "ingest/proto_influx.h"
#include "ingest/relabel.h"
#include "sockpath.h"

/* ---- names of the enums the file spells out ---- */

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};
static const char *const transport_names[] = {"tcp", "udp", "unix"};
static const char *const precision_names[] = {"ns", "us", "ms", "s"};
static const char *const model_names[] = {"predict", "seq2seq"};

#define NAME_AT(arr, i) ((i) >= 0 && (size_t)(i) < sizeof(arr) / sizeof(arr[0]) ? arr[i] : NULL)

const char *ad_log_level_name(int level)
{
    return NAME_AT(log_level_names, level);
}

/* The protocols a socket listener speaks (prometheus comes over HTTP only). */
static const char *listener_proto_name(int i)
{
    const ad_proto_info *pi = ad_proto_info_of(i);

    return pi && (pi->flags & AD_PROTO_F_LISTENER) ? pi->name : NULL;
}

static const char *transport_name(int i)
{
    return NAME_AT(transport_names, i);
}
static const char *precision_name(int i)
{
    return NAME_AT(precision_names, i);
}
static const char *model_name(int i)
{
    return NAME_AT(model_names, i);
}
static const char *cell_name(int i)
{
    return ad_cell_name((ad_cell_kind)i);
}
static const char *scorer_name(int i)
{
    return ad_scorer_name((ad_scorer_kind)i);
}
static const char *weights_name(int i)
{
    return ad_wtype_name(i);
}

/* ---- the key tables ---- */

enum ktype {
    K_INT,       /* int */
    K_SIZE,      /* size_t */
    K_DOUBLE,    /* double */
    K_FLOAT,     /* float */
    K_U64,       /* uint64_t, any value */
    K_BOOL,      /* int 0/1: true false yes no on off */
    K_STR,       /* char[size]; lo = minimum length */
    K_ADDR,      /* char[size]: an IPv4 or IPv6 address (inet_pton); lo = 0 allows "" */
    K_ENUM,      /* int: one of name_of(0), name_of(1), ... */
    K_SCORER,    /* ad_scorer_config: a kind; resets the scorer to its defaults */
    K_FEATURES,  /* unsigned AD_FEAT_* bits, from a list of tod, dow, gap */
    K_SECTION,   /* a map of the keys in sub, into the same struct */
    K_LISTENERS, /* the list of listeners */
    K_DETECTOR,  /* the `defaults` map of detector keys */
    K_SERIES,    /* the list of per-series rules */
    K_PATTERNS   /* ad_patterns: a list of relabel.h patterns */
};

/* A map's keys are applied in passes: F_EARLY ones first (scorer, which resets the
 * scorer fields the others then set), then the plain ones, then F_LATE (defaults), then
 * F_LAST (series, which inherit the defaults). */
#define F_EARLY   1u
#define F_LATE    2u
#define F_LAST    4u
#define F_LO_OPEN 8u  /* the lower bound is excluded */
#define F_HI_OPEN 16u /* the upper bound is excluded */

typedef struct ad_key {
    const char *name;
    enum ktype type;
    size_t off;                  /* offset in the struct the table describes */
    size_t size;                 /* K_STR, K_ADDR: buffer bytes */
    double lo, hi;               /* numbers: bounds; K_STR, K_ADDR: lo = minimum length */
    unsigned flags;              /* F_* */
    const char *(*name_of)(int); /* K_ENUM: names by value, NULL past the last */
    const char *def;             /* the default as YAML text; NULL: set elsewhere */
    const struct ad_key *sub;    /* K_SECTION: its keys */
} ad_key;

// clang-format off
/* offsetof(st, f), refusing to compile unless f has the size of type t. */
#define OFF(st, f, t) (offsetof(st, f) + 0 * sizeof(char[sizeof(((st *)0)->f) == sizeof(t) ? 1 : -1]))

#define INT(n, st, f, l, h, d) {n, K_INT, OFF(st, f, int), 0, l, h, 0, NULL, d, NULL}
#define SIZE(n, st, f, l, h, d) {n, K_SIZE, OFF(st, f, size_t), 0, l, h, 0, NULL, d, NULL}
#define DBL(n, st, f, l, h, d) {n, K_DOUBLE, OFF(st, f, double), 0, l, h, 0, NULL, d, NULL}
#define FLT(n, st, f, l, h, fl, d) {n, K_FLOAT, OFF(st, f, float), 0, l, h, fl, NULL, d, NULL}
#define U64(n, st, f, d) {n, K_U64, OFF(st, f, uint64_t), 0, 0, 0, 0, NULL, d, NULL}
#define BOOL(n, st, f, d) {n, K_BOOL, OFF(st, f, int), 0, 0, 1, 0, NULL, d, NULL}
#define STR(n, st, f, minlen, d) {n, K_STR, offsetof(st, f), sizeof(((st *)0)->f), minlen, 0, 0, NULL, d, NULL}
#define ADDR(n, st, f, minlen, d) {n, K_ADDR, offsetof(st, f), sizeof(((st *)0)->f), minlen, 0, 0, NULL, d, NULL}
#define ENUM(n, st, f, names, fl, d) {n, K_ENUM, OFF(st, f, int), 0, 0, 0, fl, names, d, NULL}
#define SPECIAL(n, t, fl, sub) {n, t, 0, 0, 0, 0, fl, NULL, NULL, sub}
#define END {NULL, K_INT, 0, 0, 0, 0, 0, NULL, NULL, NULL}

typedef ad_config C;
typedef ad_listener_config L;
typedef ad_detector_config D;
typedef ad_series_rule R;

static const ad_key statsd_keys[] = {
    DBL("flush_interval", C, statsd_flush, 0.1, 3600, "10"),
    INT("idle_flushes", C, statsd_idle_flushes, 1, 1000000, "360"),
    END};

static const ad_key http_keys[] = {
    BOOL("enabled", C, http_enabled, "true"),
    ADDR("address", C, http_address, 1, "127.0.0.1"),
    INT("port", C, http_port, 0, 65535, "8080"),
    STR("token", C, http_token, 0, ""),
    BOOL("allow_unauthenticated", C, http_allow_unauthenticated, "false"),
    SIZE("max_body", C, http_max_body, 1024, 1073741824, "16777216"),
    END};

static const ad_key events_keys[] = {
    ADDR("address", C, events_address, 0, "127.0.0.1"),
    INT("port", C, events_port, 0, 65535, "8096"),
    STR("unix", C, events_unix, 0, NULL),  /* <state_dir>/events.sock (state_paths) */
    STR("file", C, events_file, 0, NULL),  /* <state_dir>/events.jsonl */
    SIZE("buffer", C, events_buffer, 4096, 1073741824, "1048576"),
    END};

static const ad_key training_keys[] = {
    INT("threads", C, train_threads, 1, 64, "1"),
    DBL("cpu_budget", C, train_cpu_budget, 0.01, 64, "1.0"),
    SIZE("queue", C, train_queue, 1, 10000000, "10000"),
    INT("nice", C, train_nice, 0, 19, "10"),
    END};

static const ad_key store_keys[] = {
    BOOL("enabled", C, store_enabled, "true"),
    STR("path", C, store_path, 1, NULL), /* <state_dir>/anomalyd.db */
    DBL("checkpoint_interval", C, store_interval, 1, 86400, "60"),
    SIZE("batch_bytes", C, store_batch_bytes, 1024, 1073741824, "16777216"),
    END};

static const ad_key prometheus_keys[] = {
    {"include", K_PATTERNS, OFF(C, prom_include, ad_patterns), 0, 0, 0, 0, NULL, NULL, NULL},
    {"exclude", K_PATTERNS, OFF(C, prom_exclude, ad_patterns), 0, 0, 0, 0, NULL, NULL, NULL},
    {"rate", K_PATTERNS, OFF(C, prom_rate, ad_patterns), 0, 0, 0, 0, NULL, NULL, NULL},
    BOOL("exclude_own", C, prom_exclude_own, "true"),
    SIZE("max_decoded", C, prom_max_decoded, 1024, 1073741824, "33554432"),
    END};

static const ad_key top_keys[] = {
    ENUM("log_level", C, log_level, ad_log_level_name, 0, "info"),
    SIZE("max_series", C, max_series, 1, 100000000, "100000"),
    DBL("series_ttl", C, series_ttl, 0, 1e9, "86400"),
    SIZE("max_line", C, max_line, 64, 16777216, "65536"),
    SIZE("max_connections", C, max_connections, 1, 1000000, "10000"),
    INT("recent", C, recent, 0, 65536, "256"),
    ENUM("weights", C, weights, weights_name, 0, "float32"),
    BOOL("fp16", C, fp16, "false"), /* the old spelling of weights: float16 (check_whole) */
    INT("score_threads", C, score_threads, 0, 2, "0"),
    STR("state_dir", C, state_dir, 1, "./var"),
    SPECIAL("listeners", K_LISTENERS, 0, NULL),
    SPECIAL("statsd", K_SECTION, 0, statsd_keys),
    SPECIAL("http", K_SECTION, 0, http_keys),
    SPECIAL("events", K_SECTION, 0, events_keys),
    SPECIAL("training", K_SECTION, 0, training_keys),
    SPECIAL("store", K_SECTION, 0, store_keys),
    SPECIAL("prometheus", K_SECTION, 0, prometheus_keys),
    SPECIAL("defaults", K_DETECTOR, F_LATE, NULL),
    SPECIAL("series", K_SERIES, F_LAST, NULL),
    END};

static const ad_key listener_keys[] = {
    ENUM("protocol", L, protocol, ad_proto_name, 0, NULL),
    ENUM("transport", L, transport, transport_name, 0, NULL),
    ADDR("address", L, address, 1, NULL),
    INT("port", L, port, 0, 65535, NULL),
    STR("path", L, path, 1, NULL),
    ENUM("precision", L, precision, precision_name, 0, NULL),
    END};

/* The detector keys, named as anomalyctl's options (without the dashes; the cell kind
 * is `cell`, the scorer's window `scorer_window`, its ewma_alpha `alpha`). Defaults are
 * the models' table (ad_detector_defaults), which anomalyctl score uses too. */
static const ad_key detector_keys[] = {
    ENUM("model", D, model, model_name, 0, NULL),
    INT("s2s_window", D, s2s_window, 2, 1024, NULL),
    ENUM("cell", D, kind, cell_name, 0, NULL),
    INT("hidden", D, hidden, 1, AD_MAX_HIDDEN, NULL),
    INT("layers", D, layers, 1, AD_MAX_LAYERS, NULL),
    {"features", K_FEATURES, OFF(D, features, unsigned), 0, 0, 0, 0, NULL, NULL, NULL},
    U64("seed", D, seed, NULL),
    INT("history", D, history, 4, 10000000, NULL),
    INT("train_after", D, train_after, 4, 1000000000, NULL),
    INT("train_every", D, train_every, 0, 1000000000, NULL),
    INT("window", D, window, 2, 4096, NULL),
    INT("batch", D, batch, 1, 4096, NULL),
    INT("epochs", D, epochs, 1, 100000, NULL),
    INT("patience", D, patience, 1, 100000, NULL),
    FLT("lr", D, lr, 1e-7, 1, 0, NULL),
    FLT("val_frac", D, val_frac, 0, 0.5, 0, NULL),
    FLT("input_clip", D, input_clip, 1, 1e6, 0, NULL),
    FLT("clip", D, clip, 0, 1e6, 0, NULL),
    FLT("forget_bias", D, forget_bias, -20, 20, 0, NULL),
    INT("prime", D, prime, 0, 10000000, NULL),
    INT("relearn", D, relearn, 0, 1000000000, NULL),
    FLT("max_exclude", D, max_exclude, 0, 1, 0, NULL),
    INT("cooldown", D, cooldown, 0, 100000000, NULL),
    FLT("range_tolerance", D, range_tolerance, 0, 100, 0, NULL),
    INT("range_window", D, range_window, 0, 1000000000, NULL),
    BOOL("asinh", D, asinh, NULL),
    INT("seasonal_period", D, seasonal_period, 0, 1000000000, NULL),
    INT("seasonal_periods", D, seasonal_periods, 1, 8, NULL),
    FLT("seasonal_weight", D, seasonal_weight, 0, 1, F_LO_OPEN, NULL),
    BOOL("warmup_naive", D, warmup_naive, NULL),
    FLT("alert_penalty", D, alert_penalty, 0, 100, 0, NULL),
    INT("feature_span", D, feature_span, 0, 1000000000, NULL),
    FLT("raw_k", D, raw_k, 0, 1e6, 0, NULL),
    FLT("raw_rms", D, raw_rms, 0, 1e6, 0, NULL),
    {"scorer", K_SCORER, OFF(D, scorer, ad_scorer_config), 0, 0, 0, F_EARLY, scorer_name, NULL,
     NULL},
    FLT("threshold", D, scorer.threshold, 0, 1, F_LO_OPEN, NULL),
    INT("scorer_window", D, scorer.window, 16, 1000000, NULL),
    INT("short_window", D, scorer.short_window, 1, 1000000, NULL),
    INT("long_window", D, long_window, 0, 1000000, NULL),
    INT("min_samples", D, scorer.min_samples, 1, 1000000, NULL),
    FLT("k", D, scorer.k, 0, 1e30, F_LO_OPEN, NULL),
    FLT("min_sd", D, scorer.min_sd, 0, 1e6, 0, NULL),
    FLT("error_bound", D, scorer.error_bound, 0, 1e6, 0, NULL),
    FLT("alpha", D, scorer.ewma_alpha, 0, 1, F_LO_OPEN, NULL),
    FLT("z_min", D, scorer.z_min, 0, 100, F_LO_OPEN, NULL),
    FLT("z_max", D, scorer.z_max, 0, 100, F_LO_OPEN, NULL),
    FLT("prune", D, scorer.prune, 0, 1, F_HI_OPEN, NULL),
    INT("refit", D, scorer.refit, 1, 1000000000, NULL),
    END};

static const ad_key rule_keys[] = {
    STR("match", R, match, 1, NULL),
    BOOL("ignore", R, ignore, NULL),
    BOOL("shared", R, shared, NULL),
    END};

// clang-format on

_Static_assert(sizeof(ad_cell_kind) == sizeof(int), "cell kinds are stored as int");
_Static_assert(sizeof(ad_scorer_kind) == sizeof(int), "scorer kinds are stored as int");

static const struct {
    int protocol, transport;
    const char *address;
    int port;
    const char *path;
} default_listeners[] = {
    {AD_PROTO_GRAPHITE, AD_TRANSPORT_TCP, "127.0.0.1", 2003, ""},
    {AD_PROTO_GRAPHITE, AD_TRANSPORT_UDP, "127.0.0.1", 2003, ""},
    {AD_PROTO_INFLUX, AD_TRANSPORT_TCP, "127.0.0.1", 8094, ""},
    {AD_PROTO_STATSD, AD_TRANSPORT_UDP, "127.0.0.1", 8125, ""},
    {AD_PROTO_JSONL, AD_TRANSPORT_TCP, "127.0.0.1", 8095, ""},
    {AD_PROTO_JSONL, AD_TRANSPORT_UNIX, "", 0, ""}, /* <state_dir>/anomalyd.sock */
};
#define NDEFAULT_LISTENERS ((int)(sizeof(default_listeners) / sizeof(default_listeners[0])))

/* The paths that live in state_dir unless the file gives them: each is <state_dir>/name
 * (no second '/' after a state_dir ending in one), set again whenever state_dir is. */
static const struct {
    unsigned bit;     /* AD_FOLLOW_* */
    const char *name; /* the file in state_dir */
    const char *what; /* for messages */
    const char *give; /* the key that sets it instead */
} state_paths[] = {
    {AD_FOLLOW_STORE_PATH, "anomalyd.db", "store.path", "store.path"},
    {AD_FOLLOW_EVENTS_UNIX, "events.sock", "events.unix", "events.unix"},
    {AD_FOLLOW_EVENTS_FILE, "events.jsonl", "events.file", "events.file"},
    {AD_FOLLOW_LISTENER, "anomalyd.sock", "the default jsonl unix listener's path", "listeners"},
};
#define NSTATE_PATHS ((int)(sizeof(state_paths) / sizeof(state_paths[0])))

/* Where path i of state_paths lives in c (NULL: the listeners hold no unix one). */
static char *state_path_field(ad_config *c, int i)
{
    switch (state_paths[i].bit) {
    case AD_FOLLOW_STORE_PATH:
        return c->store_path;
    case AD_FOLLOW_EVENTS_UNIX:
        return c->events_unix;
    case AD_FOLLOW_EVENTS_FILE:
        return c->events_file;
    default:
        for (int j = 0; j < c->nlisteners; j++)
            if (c->listeners[j].transport == AD_TRANSPORT_UNIX)
                return c->listeners[j].path;
        return NULL;
    }
}

/* Sets the paths c->follow names to <dir>/name. Returns 0, or -AD_EINVAL with the
 * reason in msg when dir or one of them would not fit (c unchanged). dir may be
 * c->state_dir. */
static int follow_state_dir(ad_config *c, const char *dir, char *msg, size_t msglen)
{
    size_t n = strlen(dir), sep = n && dir[n - 1] != '/';

    if (n >= AD_PATH_MAX) {
        snprintf(msg, msglen, "state_dir: too long (%zu bytes, at most %d)", n, AD_PATH_MAX - 1);
        return -AD_EINVAL;
    }
    for (int i = 0; i < NSTATE_PATHS; i++) {
        size_t len = n + sep + strlen(state_paths[i].name);

        if ((c->follow & state_paths[i].bit) && len >= AD_PATH_MAX) {
            snprintf(msg, msglen,
                     "state_dir: too long (%zu bytes) for the paths that follow it: %s would "
                     "be <state_dir>/%s, %zu bytes (at most %d); shorten state_dir or give %s "
                     "in the file",
                     n, state_paths[i].what, state_paths[i].name, len, AD_PATH_MAX - 1,
                     state_paths[i].give);
            return -AD_EINVAL;
        }
    }
    for (int i = 0; i < NSTATE_PATHS; i++) {
        char *f = (c->follow & state_paths[i].bit) ? state_path_field(c, i) : NULL;
        size_t k = strlen(state_paths[i].name);

        if (!f)
            continue;
        memcpy(f, dir, n); /* dir may be c->state_dir, never one of these */
        if (sep)
            f[n] = '/';
        memcpy(f + n + sep, state_paths[i].name, k + 1);
    }
    return 0;
}

/* ---- scalars: text into a field ---- */

static int is_null(const char *s, size_t len)
{
    return len == 0 || (len == 1 && s[0] == '~') ||
           (len == 4 && (!strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL")));
}

static void bounds_text(const ad_key *k, char *buf, size_t n)
{
    if (k->flags & (F_LO_OPEN | F_HI_OPEN))
        snprintf(buf, n, "%c%.15g, %.15g%c", (k->flags & F_LO_OPEN) ? '(' : '[', k->lo, k->hi,
                 (k->flags & F_HI_OPEN) ? ')' : ']');
    else
        snprintf(buf, n, "%.15g..%.15g", k->lo, k->hi);
}

static int in_bounds(const ad_key *k, double v)
{
    if ((k->flags & F_LO_OPEN) ? !(v > k->lo) : !(v >= k->lo))
        return 0;
    return (k->flags & F_HI_OPEN) ? v < k->hi : v <= k->hi;
}

static void choices_text(const char *(*name_of)(int), char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; name_of(i) && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? " | " : "", name_of(i));
}

static int enum_value(const char *(*name_of)(int), const char *s)
{
    for (int i = 0; name_of(i); i++)
        if (!strcmp(name_of(i), s))
            return i;
    return -1;
}

/* The 4 or 16 bytes of an address, with its family in front; 0 if it is not one. */
static size_t addr_bytes(const char *s, unsigned char out[17])
{
    if (inet_pton(AF_INET, s, out + 1) == 1) {
        out[0] = 4;
        return 5;
    }
    if (inet_pton(AF_INET6, s, out + 1) == 1) {
        out[0] = 6;
        return 17;
    }
    return 0;
}

static int is_loopback(const char *s)
{
    static const unsigned char v6_loop[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    unsigned char a[17];
    size_t n = addr_bytes(s, a);
    if (n == 5)
        return a[1] == 127;
    if (n == 17)
        return !memcmp(a + 1, v6_loop, 16) || (!memcmp(a + 1, v4_mapped, 12) && a[13] == 127);
    return 0;
}

/*
 * Sets the field k describes in base from a scalar's text (quoted: it was written as a
 * string). Returns 0, or -AD_EINVAL with the reason in msg (without the key or place).
 */
static int set_scalar(const ad_key *k, void *base, const char *s, size_t len, int quoted, char *msg,
                      size_t msglen)
{
    char *p = (char *)base + k->off, *end, bounds[96];
    int is_num = k->type == K_INT || k->type == K_SIZE || k->type == K_DOUBLE ||
                 k->type == K_FLOAT || k->type == K_U64;

    if (strlen(s) != len) {
        snprintf(msg, msglen, "contains a NUL byte");
        return -AD_EINVAL;
    }
    if ((is_num || k->type == K_BOOL) && (quoted || is_null(s, len))) {
        snprintf(msg, msglen, "expected %s, got %s%s%s",
                 k->type == K_BOOL ? "a boolean (true/false/yes/no/on/off)"
                 : (k->type == K_DOUBLE || k->type == K_FLOAT) ? "a number"
                                                               : "an integer",
                 quoted ? "the string \"" : "nothing", quoted ? s : "", quoted ? "\"" : "");
        return -AD_EINVAL;
    }
    switch (k->type) {
    case K_INT:
    case K_SIZE: {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || *end || errno == ERANGE) {
            snprintf(msg, msglen, "'%s' is not an integer", s);
            return -AD_EINVAL;
        }
        if (!in_bounds(k, (double)v)) {
            bounds_text(k, bounds, sizeof(bounds));
            snprintf(msg, msglen, "%lld is out of range %s", v, bounds);
            return -AD_EINVAL;
        }
        if (k->type == K_INT)
            *(int *)p = (int)v;
        else
            *(size_t *)p = (size_t)v;
        return 0;
    }
    case K_U64: {
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s || *end || errno == ERANGE || s[0] == '-') {
            snprintf(msg, msglen, "'%s' is not an integer 0..%llu", s,
                     (unsigned long long)UINT64_MAX);
            return -AD_EINVAL;
        }
        *(uint64_t *)p = (uint64_t)v;
        return 0;
    }
    case K_DOUBLE:
    case K_FLOAT: {
        errno = 0;
        double v = strtod(s, &end);
        if (end == s || *end || errno == ERANGE || !isfinite(v)) {
            snprintf(msg, msglen, "'%s' is not a number", s);
            return -AD_EINVAL;
        }
        if (!in_bounds(k, v)) {
            bounds_text(k, bounds, sizeof(bounds));
            snprintf(msg, msglen, "%.15g is out of range %s", v, bounds);
            return -AD_EINVAL;
        }
        if (k->type == K_DOUBLE)
            *(double *)p = v;
        else
            *(float *)p = (float)v;
        return 0;
    }
    case K_BOOL: {
        static const char *const yes[] = {"true", "yes", "on"};
        static const char *const no[] = {"false", "no", "off"};
        for (int i = 0; i < 3; i++) {
            if (!strcasecmp(s, yes[i]) || !strcasecmp(s, no[i])) {
                *(int *)p = !strcasecmp(s, yes[i]);
                return 0;
            }
        }
        snprintf(msg, msglen, "'%s' is not a boolean (true/false/yes/no/on/off)", s);
        return -AD_EINVAL;
    }
    case K_STR:
    case K_ADDR: {
        if (!quoted && is_null(s, len))
            s = "", len = 0;
        if (len >= k->size) {
            snprintf(msg, msglen, "too long (%zu bytes, at most %zu)", len, k->size - 1);
            return -AD_EINVAL;
        }
        if (len < (size_t)k->lo) {
            snprintf(msg, msglen, "must not be empty");
            return -AD_EINVAL;
        }
        unsigned char a[17];
        if (k->type == K_ADDR && len && !addr_bytes(s, a)) {
            snprintf(msg, msglen, "'%s' is not an IPv4 or IPv6 address", s);
            return -AD_EINVAL;
        }
        memcpy(p, s, len + 1);
        return 0;
    }
    case K_ENUM:
    case K_SCORER: {
        int v = enum_value(k->name_of, s);
        if (v < 0) {
            choices_text(k->name_of, bounds, sizeof(bounds));
            snprintf(msg, msglen, "'%s' is not one of %s", s, bounds);
            return -AD_EINVAL;
        }
        if (k->type == K_ENUM)
            *(int *)p = v;
        else
            ad_scorer_defaults((ad_scorer_config *)p, (ad_scorer_kind)v);
        return 0;
    }
    default:
        snprintf(msg, msglen, "not a scalar key");
        return -AD_EINVAL;
    }
}

/* Fills the fields of a table from its rows' defaults (sections included). */
static int table_defaults(const ad_key *keys, void *base)
{
    char msg[128];
    for (const ad_key *k = keys; k->name; k++) {
        if (k->type == K_SECTION && table_defaults(k->sub, base))
            return -AD_EINVAL;
        if (k->def && set_scalar(k, base, k->def, strlen(k->def), 0, msg, sizeof(msg)))
            return -AD_EINVAL; /* a bad row: caught by the tests */
    }
    return 0;
}

/* ---- the document walk ---- */

typedef struct walk {
    yaml_document_t *doc;
    const char *name; /* the file, for messages */
    char *err;
    size_t errlen;
    ad_config *c;
} walk;

/* One table and the struct its offsets are relative to. */
typedef struct binding {
    const ad_key *keys;
    void *base;
} binding;

static int fail_at(walk *w, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes "file:line:column: message" for node n; returns -AD_EINVAL. */
static int fail_at(walk *w, const yaml_node_t *n, const char *fmt, ...)
{
    if (w->err && w->errlen) {
        int k = snprintf(w->err, w->errlen, "%s:%zu:%zu: ", w->name, n->start_mark.line + 1,
                         n->start_mark.column + 1);
        if (k >= 0 && (size_t)k < w->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(w->err + k, w->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -AD_EINVAL;
}

static yaml_node_t *node(walk *w, int i)
{
    return yaml_document_get_node(w->doc, i);
}

static const char *node_kind(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a map";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (is_null((const char *)n->data.scalar.value, n->data.scalar.length) &&
        n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        return "nothing";
    return "a single value";
}

static int is_null_node(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           is_null((const char *)n->data.scalar.value, n->data.scalar.length);
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* The value of key `name` in map m, or NULL; *key gets the key node. */
static yaml_node_t *lookup(walk *w, const yaml_node_t *m, const char *name, yaml_node_t **key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node(w, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp(scalar(k), name)) {
            if (key)
                *key = k;
            return node(w, p->value);
        }
    }
    return NULL;
}

static const ad_key *find_key(const binding *b, int nb, const char *name, void **base)
{
    for (int i = 0; i < nb; i++)
        for (const ad_key *k = b[i].keys; k->name; k++)
            if (!strcmp(k->name, name)) {
                *base = b[i].base;
                return k;
            }
    return NULL;
}

/* Edit distance of two short strings (longer ones count as far). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int unknown_key(walk *w, const yaml_node_t *kn, const binding *b, int nb, const char *where)
{
    const char *name = scalar(kn), *best = NULL;
    size_t bestd = SIZE_MAX, len = strlen(name);
    char list[1024];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < nb; i++) {
        for (const ad_key *k = b[i].keys; k->name; k++) {
            size_t d = distance(name, k->name);
            if (d < bestd)
                bestd = d, best = k->name;
            if (used < sizeof(list))
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                                         k->name);
        }
    }
    if (best && bestd <= (len < 6 ? 1 : len / 3))
        return fail_at(w, kn, "unknown key '%s' in %s (did you mean '%s'?)", name, where, best);
    return fail_at(w, kn, "unknown key '%s' in %s (valid keys: %s)", name, where, list);
}

static int apply_map(walk *w, const yaml_node_t *m, const binding *b, int nb, const char *path);
static int apply_listeners(walk *w, const yaml_node_t *n);
static int apply_defaults(walk *w, const yaml_node_t *n);
static int apply_series(walk *w, const yaml_node_t *n);

static int apply_features(walk *w, const yaml_node_t *n, unsigned *out, const char *path)
{
    static const char *const names[] = {"tod", "dow", "gap"};
    static const unsigned bits[] = {AD_FEAT_TIME_OF_DAY, AD_FEAT_DAY_OF_WEEK, AD_FEAT_GAP};
    unsigned f = 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(w, n, "%s: expected a list of tod, dow, gap ([] for none), got %s", path,
                       node_kind(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *v = node(w, *it);
        int i = 0;
        if (v->type != YAML_SCALAR_NODE)
            return fail_at(w, v, "%s: expected tod, dow or gap, got %s", path, node_kind(v));
        while (i < 3 && strcmp(scalar(v), names[i]))
            i++;
        if (i == 3)
            return fail_at(w, v, "%s: '%s' is not one of tod | dow | gap", path, scalar(v));
        if (f & bits[i])
            return fail_at(w, v, "%s: '%s' is listed twice", path, scalar(v));
        f |= bits[i];
    }
    *out = f;
    return 0;
}

/* Sets a pattern list from n strings (copied into one allocation); old one freed. */
static int set_patterns(ad_patterns *out, const char *const *v, int n)
{
    size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(char *);
    char **arr, *p;

    for (int i = 0; i < n; i++)
        bytes += strlen(v[i]) + 1;
    arr = malloc(bytes);
    if (!arr)
        return -AD_ENOMEM;
    p = (char *)(arr + (n > 0 ? n : 1));
    for (int i = 0; i < n; i++) {
        size_t len = strlen(v[i]) + 1;

        memcpy(p, v[i], len);
        arr[i] = p;
        p += len;
    }
    free(out->v);
    out->v = arr;
    out->n = n;
    return 0;
}

static int apply_patterns(walk *w, const yaml_node_t *n, ad_patterns *out, const char *path)
{
    const char *items[1024];
    char msg[512];
    int count = 0;

    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(w, n, "%s: expected a list of patterns ([] for none), got %s", path,
                       node_kind(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *v = node(w, *it);

        if (v->type != YAML_SCALAR_NODE)
            return fail_at(w, v, "%s: expected a pattern (a string), got %s", path, node_kind(v));
        if (strlen(scalar(v)) != v->data.scalar.length)
            return fail_at(w, v, "%s: contains a NUL byte", path);
        if (count == (int)(sizeof(items) / sizeof(items[0])))
            return fail_at(w, v, "%s: more than %d patterns", path, count);
        if (ad_relabel_check(scalar(v), msg, sizeof(msg)) < 0)
            return fail_at(w, v, "%s: %s (docs/PROMETHEUS.md has the syntax)", path, msg);
        items[count++] = scalar(v);
    }
    if (set_patterns(out, items, count) < 0) {
        snprintf(w->err, w->errlen, "%s: out of memory", w->name);
        return -AD_ENOMEM;
    }
    return 0;
}

static int apply_value(walk *w, const ad_key *k, void *base, const yaml_node_t *v, const char *path)
{
    char msg[512];
    switch (k->type) {
    case K_FEATURES:
        return apply_features(w, v, (unsigned *)((char *)base + k->off), path);
    case K_SECTION: {
        binding sb = {k->sub, base};
        return apply_map(w, v, &sb, 1, path);
    }
    case K_LISTENERS:
        return apply_listeners(w, v);
    case K_DETECTOR:
        return apply_defaults(w, v);
    case K_SERIES:
        return apply_series(w, v);
    case K_PATTERNS:
        return apply_patterns(w, v, (ad_patterns *)((char *)base + k->off), path);
    default:
        break;
    }
    if (v->type != YAML_SCALAR_NODE)
        return fail_at(w, v, "%s: expected a single value, got %s", path, node_kind(v));
    if (set_scalar(k, base, scalar(v), v->data.scalar.length,
                   v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE, msg, sizeof(msg)))
        return fail_at(w, v, "%s: %s", path, msg);
    return 0;
}

/*
 * Applies map m through the tables in b: refuses non-scalar, unknown and duplicate keys,
 * then sets the keys pass by pass (F_EARLY, plain, F_LATE, F_LAST). `path` names the map
 * in messages ("" at the top). A null value counts as an empty map.
 */
static int apply_map(walk *w, const yaml_node_t *m, const binding *b, int nb, const char *path)
{
    static const unsigned pass_flag[4] = {F_EARLY, 0, F_LATE, F_LAST};
    const char *where = *path ? path : "the top level";
    char sub[256];
    yaml_node_pair_t *p, *q;
    void *base;

    if (is_null_node(m))
        return 0;
    if (m->type != YAML_MAPPING_NODE)
        return fail_at(w, m, "%s: expected a map, got %s", where, node_kind(m));
    for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node(w, p->key);
        if (kn->type != YAML_SCALAR_NODE)
            return fail_at(w, kn, "%s: a key must be a single word, got %s", where, node_kind(kn));
        if (!find_key(b, nb, scalar(kn), &base))
            return unknown_key(w, kn, b, nb, where);
        for (q = m->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *prev = node(w, q->key);
            if (!strcmp(scalar(prev), scalar(kn)))
                return fail_at(w, kn, "%s: duplicate key '%s' (first at line %zu, column %zu)",
                               where, scalar(kn), prev->start_mark.line + 1,
                               prev->start_mark.column + 1);
        }
    }
    for (int pass = 0; pass < 4; pass++) {
        for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
            const char *name = scalar(node(w, p->key));
            const ad_key *k = find_key(b, nb, name, &base);
            if ((k->flags & (F_EARLY | F_LATE | F_LAST)) != pass_flag[pass])
                continue;
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", name);
            int rc = apply_value(w, k, base, node(w, p->value), sub);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int check_detector(walk *w, const yaml_node_t *at, const ad_detector_config *d,
                          const char *path)
{
    char msg[256];
    if (ad_detector_config_check(d, msg, sizeof(msg)))
        return fail_at(w, at, "%s: %s", path, msg);
    return 0;
}

static int apply_defaults(walk *w, const yaml_node_t *n)
{
    binding b = {detector_keys, &w->c->defaults};
    int rc = apply_map(w, n, &b, 1, "defaults");
    return rc ? rc : check_detector(w, n, &w->c->defaults, "defaults");
}

static int apply_series(walk *w, const yaml_node_t *n)
{
    ad_config *c = w->c;
    char path[64];
    if (is_null_node(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(w, n, "series: expected a list of rules, got %s", node_kind(n));
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return 0;
    c->rules = calloc((size_t)count, sizeof(*c->rules));
    if (!c->rules) {
        snprintf(w->err, w->errlen, "%s: out of memory", w->name);
        return -AD_ENOMEM;
    }
    for (int i = 0; i < count; i++) {
        yaml_node_t *m = node(w, n->data.sequence.items.start[i]);
        ad_series_rule *r = &c->rules[c->nrules++];
        binding b[2] = {{rule_keys, r}, {detector_keys, &r->det}};
        r->det = c->defaults;
        r->line = (int)m->start_mark.line + 1;
        r->column = (int)m->start_mark.column + 1;
        snprintf(path, sizeof(path), "series[%d]", i);
        if (m->type != YAML_MAPPING_NODE)
            return fail_at(w, m, "%s: expected a map with match and detector keys, got %s", path,
                           node_kind(m));
        int rc = apply_map(w, m, b, 2, path);
        if (rc)
            return rc;
        if (!r->match[0])
            return fail_at(w, m, "%s: a rule needs a match (a glob on the series key)", path);
        if ((rc = check_detector(w, m, &r->det, path)))
            return rc;
        if (r->shared && r->det.model != AD_MODEL_PREDICT)
            return fail_at(w, m, "%s: shared families predict: model must be predict", path);
        if (r->shared && r->ignore)
            return fail_at(w, m, "%s: a rule cannot both ignore and share", path);
    }
    return 0;
}

/* Refuses what does not fit together in listener l (map m); earlier listeners are
 * c->listeners[0..i-1]. */
static int check_listener(walk *w, const yaml_node_t *m, int i, const char *path)
{
    ad_config *c = w->c;
    ad_listener_config *l = &c->listeners[i];
    yaml_node_t *k = NULL;
    char choices[96];
    int net = l->transport != AD_TRANSPORT_UNIX;

    if (l->protocol < 0) {
        choices_text(listener_proto_name, choices, sizeof(choices));
        return fail_at(w, m, "%s: protocol is required (%s)", path, choices);
    }
    if (l->transport < 0)
        return fail_at(w, m, "%s: transport is required (tcp | udp | unix)", path);
    if (net && lookup(w, m, "path", &k))
        return fail_at(w, k, "%s: path is for unix listeners (this one is %s)", path,
                       transport_name(l->transport));
    if (!net && (lookup(w, m, "address", &k) || lookup(w, m, "port", &k)))
        return fail_at(w, k, "%s: %s is for tcp and udp listeners (this one is unix)", path,
                       scalar(k));
    if (l->protocol == AD_PROTO_PROMETHEUS)
        return fail_at(w, m, "%s: prometheus is not a socket protocol: Prometheus sends remote "
                       "write to the HTTP API (remote_write url http://<http.address>:<http.port>"
                       "/api/v1/write; see docs/PROMETHEUS.md)", path);
    if (!(ad_proto_info_of(l->protocol)->flags & AD_PROTO_F_PRECISION) &&
        lookup(w, m, "precision", &k))
        return fail_at(w, k, "%s: precision is for influx listeners (this one is %s)", path,
                       ad_proto_name(l->protocol));
    if (net && l->port < 0)
        return fail_at(w, m, "%s: port is required for %s listeners", path,
                       transport_name(l->transport));
    if (!net && !l->path[0])
        return fail_at(w, m, "%s: path is required for unix listeners", path);
    for (int j = 0; j < i; j++) {
        const ad_listener_config *o = &c->listeners[j];
        unsigned char a[17], b[17];
        size_t na, nb;
        if (o->transport != l->transport)
            continue;
        if (!net && strcmp(o->path, l->path))
            continue;
        if (net) {
            na = addr_bytes(l->address, a);
            nb = addr_bytes(o->address, b);
            if (l->port == 0 || o->port != l->port || na != nb || memcmp(a, b, na))
                continue;
        }
        if (net)
            return fail_at(w, m, "%s: listeners[%d] already listens on %s %s port %d", path, j,
                           transport_name(l->transport), l->address, l->port);
        return fail_at(w, m, "%s: listeners[%d] already listens on unix path %s", path, j, l->path);
    }
    return 0;
}

static int apply_listeners(walk *w, const yaml_node_t *n)
{
    ad_config *c = w->c;
    char path[64];
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(w, n, "listeners: expected a list of listeners ([] for none), got %s",
                       node_kind(n));
    free(c->listeners);
    c->listeners = NULL;
    c->nlisteners = 0;
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return 0;
    c->listeners = calloc((size_t)count, sizeof(*c->listeners));
    if (!c->listeners) {
        snprintf(w->err, w->errlen, "%s: out of memory", w->name);
        return -AD_ENOMEM;
    }
    for (int i = 0; i < count; i++) {
        yaml_node_t *m = node(w, n->data.sequence.items.start[i]);
        ad_listener_config *l = &c->listeners[c->nlisteners++];
        binding b = {listener_keys, l};
        l->protocol = -1;
        l->transport = -1;
        l->port = -1;
        l->precision = AD_PREC_NS;
        snprintf(l->address, sizeof(l->address), "127.0.0.1");
        snprintf(path, sizeof(path), "listeners[%d]", i);
        if (m->type != YAML_MAPPING_NODE)
            return fail_at(w, m, "%s: expected a map (protocol, transport, ...), got %s", path,
                           node_kind(m));
        int rc = apply_map(w, m, &b, 1, path);
        if (rc || (rc = check_listener(w, m, i, path)))
            return rc;
        if (l->transport == AD_TRANSPORT_UNIX) {
            l->address[0] = '\0';
            l->port = 0;
        }
    }
    return 0;
}

/* Rules that span keys, once everything is read. */
static int check_whole(walk *w, const yaml_node_t *root)
{
    ad_config *c = w->c;
    yaml_node_t *fk = NULL;

    /* fp16 (the old key) folds into weights; both given, they must agree */
    if (lookup(w, root, "fp16", &fk)) {
        if (lookup(w, root, "weights", NULL) && c->fp16 != (c->weights == AD_W_F16))
            return fail_at(w, fk,
                           "fp16: %s disagrees with weights: %s (fp16: true is the old spelling "
                           "of weights: float16; give weights only)",
                           c->fp16 ? "true" : "false", ad_wtype_name(c->weights));
        if (c->fp16)
            c->weights = AD_W_F16;
    }
    if (c->http_enabled && !is_loopback(c->http_address) && !c->http_token[0] &&
        !c->http_allow_unauthenticated) {
        yaml_node_t *http = lookup(w, root, "http", NULL), *at = NULL;
        const yaml_node_t *where = lookup(w, http, "address", NULL);
        at = http ? http : (yaml_node_t *)root;
        return fail_at(w, where ? where : at,
                       "http.address: %s is not a loopback address and http.token is empty: "
                       "anyone who can reach it could read and write the API; set "
                       "http.token, or set http.allow_unauthenticated: true to opt out",
                       c->http_address);
    }
    return 0;
}

/* The paths under state_dir the file does not give follow it (it may come after them). */
static int check_state_paths(walk *w, const yaml_node_t *root)
{
    ad_config *c = w->c;
    const yaml_node_t *store = lookup(w, root, "store", NULL);
    const yaml_node_t *events = lookup(w, root, "events", NULL);
    char msg[512];

    c->follow = AD_FOLLOW_ALL;
    if (lookup(w, store, "path", NULL))
        c->follow &= ~AD_FOLLOW_STORE_PATH;
    if (lookup(w, events, "unix", NULL))
        c->follow &= ~AD_FOLLOW_EVENTS_UNIX;
    if (lookup(w, events, "file", NULL))
        c->follow &= ~AD_FOLLOW_EVENTS_FILE;
    if (lookup(w, root, "listeners", NULL))
        c->follow &= ~AD_FOLLOW_LISTENER;
    if (follow_state_dir(c, c->state_dir, msg, sizeof(msg)) < 0) {
        const yaml_node_t *at = lookup(w, root, "state_dir", NULL);

        return fail_at(w, at ? at : root, "%s", msg);
    }
    return 0;
}

/* Where a path came from in the file: the node of key `name` in map m, else the
 * state_dir value it follows, else the root. */
static const yaml_node_t *path_node(walk *w, const yaml_node_t *root, const yaml_node_t *m,
                                    const char *name)
{
    const yaml_node_t *at = lookup(w, m, name, NULL);

    if (!at)
        at = lookup(w, root, "state_dir", NULL);
    return at ? at : root;
}

/* One Unix socket path: it fits sun_path, nothing but a socket is there (sockpath.h),
 * and it is not the store or the events file (binding would take their place). */
static int check_socket_path(walk *w, const yaml_node_t *at, const char *what, const char *p)
{
    ad_config *c = w->c;
    char msg[AD_PATH_MAX + 256];

    if (ad_sockpath_check(p, msg, sizeof(msg)) < 0)
        return fail_at(w, at, "%s: %s", what, msg);
    if (c->store_enabled && !strcmp(p, c->store_path))
        return fail_at(w, at, "%s: %s is also store.path", what, p);
    if (c->events_file[0] && !strcmp(p, c->events_file))
        return fail_at(w, at, "%s: %s is also events.file", what, p);
    return 0;
}

/* Every Unix socket path, once the paths that follow state_dir are set. */
static int check_socket_paths(walk *w, const yaml_node_t *root)
{
    ad_config *c = w->c;
    const yaml_node_t *ls = lookup(w, root, "listeners", NULL);
    char what[64];
    int rc;

    for (int i = 0; i < c->nlisteners; i++) {
        const yaml_node_t *m = NULL;

        if (c->listeners[i].transport != AD_TRANSPORT_UNIX)
            continue;
        if (ls && ls->type == YAML_SEQUENCE_NODE &&
            i < (int)(ls->data.sequence.items.top - ls->data.sequence.items.start))
            m = node(w, ls->data.sequence.items.start[i]);
        snprintf(what, sizeof(what), "listeners[%d].path", i);
        if ((rc = check_socket_path(w, path_node(w, root, m, "path"), what,
                                    c->listeners[i].path)))
            return rc;
        if (c->events_unix[0] && !strcmp(c->listeners[i].path, c->events_unix))
            return fail_at(w, path_node(w, root, m, "path"), "%s: %s is also events.unix",
                           what, c->events_unix);
    }
    if (c->events_unix[0])
        return check_socket_path(w, path_node(w, root, lookup(w, root, "events", NULL), "unix"),
                                 "events.unix", c->events_unix);
    return 0;
}

/* ---- entry points ---- */

int ad_config_defaults(ad_config *c)
{
    char msg[512];

    memset(c, 0, sizeof(*c));
    if (table_defaults(top_keys, c))
        return -AD_EINVAL;
    ad_detector_defaults(&c->defaults);
    {
        static const char *const all[] = {"*"};

        if (set_patterns(&c->prom_include, NULL, 0) < 0 ||
            set_patterns(&c->prom_exclude, NULL, 0) < 0 || set_patterns(&c->prom_rate, all, 1) < 0)
            return -AD_ENOMEM;
    }
    c->listeners = calloc(NDEFAULT_LISTENERS, sizeof(*c->listeners));
    if (!c->listeners)
        return -AD_ENOMEM;
    for (int i = 0; i < NDEFAULT_LISTENERS; i++) {
        ad_listener_config *l = &c->listeners[i];
        l->protocol = default_listeners[i].protocol;
        l->transport = default_listeners[i].transport;
        snprintf(l->address, sizeof(l->address), "%s", default_listeners[i].address);
        l->port = default_listeners[i].port;
        snprintf(l->path, sizeof(l->path), "%s", default_listeners[i].path);
        l->precision = AD_PREC_NS;
    }
    c->nlisteners = NDEFAULT_LISTENERS;
    c->follow = AD_FOLLOW_ALL;
    if (follow_state_dir(c, c->state_dir, msg, sizeof(msg)) < 0)
        return -AD_EINVAL; /* a bad row: caught by the tests */
    return 0;
}

int ad_config_set_state_dir(ad_config *c, const char *dir, char *err, size_t errlen)
{
    char msg[512];

    if (follow_state_dir(c, dir, msg, sizeof(msg)) < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", msg);
        return -AD_EINVAL;
    }
    if (dir != c->state_dir)
        memcpy(c->state_dir, dir, strlen(dir) + 1);
    return 0;
}

void ad_config_free(ad_config *c)
{
    ad_patterns *lists[] = {&c->prom_include, &c->prom_exclude, &c->prom_rate};

    for (int i = 0; i < 3; i++) {
        free(lists[i]->v);
        lists[i]->v = NULL;
        lists[i]->n = 0;
    }
    free(c->listeners);
    c->listeners = NULL;
    c->nlisteners = 0;
    free(c->rules);
    c->rules = NULL;
    c->nrules = 0;
}

/* "name:line:column: problem" for a libyaml error. */
static int syntax_error(const yaml_parser_t *p, const char *text, size_t len, const char *name,
                        char *err, size_t errlen)
{
    size_t line = p->problem_mark.line, col = p->problem_mark.column;
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -AD_ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) { /* no mark: count up to the offset */
        line = col = 0;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n')
                line++, col = 0;
            else
                col++;
        }
    }
    if (p->context)
        snprintf(err, errlen, "%s:%zu:%zu: %s (%s at line %zu, column %zu)", name, line + 1,
                 col + 1, p->problem ? p->problem : "syntax error", p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    else
        snprintf(err, errlen, "%s:%zu:%zu: %s", name, line + 1, col + 1,
                 p->problem ? p->problem : "syntax error");
    return -AD_EINVAL;
}

int ad_config_parse(const char *text, size_t len, const char *name, ad_config *c, char *err,
                    size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    char dummy[1];
    int rc;

    if (!err || !errlen)
        err = dummy, errlen = sizeof(dummy);
    err[0] = '\0';
    rc = ad_config_defaults(c);
    if (rc) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto out_free_config;
    }
    snprintf(c->source, sizeof(c->source), "%s", name);
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        rc = -AD_ENOMEM;
        goto out_free_config;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&parser, text, len, name, err, errlen);
        goto out_delete_parser;
    }
    walk w = {&doc, name, err, errlen, c};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        if (!yaml_parser_load(&parser, &extra)) {
            rc = syntax_error(&parser, text, len, name, err, errlen);
            goto out_delete_doc;
        }
        yaml_node_t *second = yaml_document_get_root_node(&extra);
        if (second)
            rc = fail_at(&w, second, "a second YAML document: the file holds one");
        yaml_document_delete(&extra);
        if (rc)
            goto out_delete_doc;
        binding b = {top_keys, c};
        rc = apply_map(&w, root, &b, 1, "");
        if (!rc)
            rc = check_whole(&w, root);
        if (!rc)
            rc = check_state_paths(&w, root);
        if (!rc)
            rc = check_socket_paths(&w, root);
    }
out_delete_doc:
    yaml_document_delete(&doc);
out_delete_parser:
    yaml_parser_delete(&parser);
out_free_config:
    if (rc)
        ad_config_free(c);
    return rc;
}

int ad_config_load(const char *path, ad_config *c, char *err, size_t errlen)
{
    char *text = NULL, *bigger;
    size_t len = 0, cap = 0, got;
    FILE *f;
    int rc;

    memset(c, 0, sizeof(*c));
    f = fopen(path, "rb");
    if (!f)
        goto out_io;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 65536;
            bigger = realloc(text, cap);
            if (!bigger) {
                fclose(f);
                free(text);
                if (err && errlen)
                    snprintf(err, errlen, "%s: out of memory", path);
                return -AD_ENOMEM;
            }
            text = bigger;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
    } while (got);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(text);
        errno = e;
        goto out_io;
    }
    fclose(f);
    rc = ad_config_parse(text, len, path, c, err, errlen);
    free(text);
    return rc;

out_io:
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -AD_EIO;
}

int ad_config_match(const ad_config *c, const char *key, const ad_detector_config **det,
                    int *ignore)
{
    for (int i = 0; i < c->nrules; i++) {
        if (fnmatch(c->rules[i].match, key, 0) == 0) {
            if (det)
                *det = &c->rules[i].det;
            if (ignore)
                *ignore = c->rules[i].ignore;
            return i;
        }
    }
    if (det)
        *det = &c->defaults;
    if (ignore)
        *ignore = 0;
    return -1;
}
