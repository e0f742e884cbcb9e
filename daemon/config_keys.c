/*
 * config_keys.c - the configuration's keys: one table row per key (name, type, bounds,
 * where it lives, default), the names of the enums the file spells out, and setting a
 * field from a scalar's text with the bounds and choices of its row. The detector keys'
 * bounds are the models' own (ad_detector_config_check, ad_scorer_config_check, run
 * after each map by config_yaml.c); the rows repeat the simple ones so that an error
 * points at the key itself.
 */
#include "config_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

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

const char *ad_cfg_transport_name(int transport)
{
    return NAME_AT(transport_names, transport);
}

void ad_cfg_listener_protocols(char *buf, size_t n)
{
    size_t used = 0;

    buf[0] = '\0';
    for (int p = 0; p < AD_PROTO_N && used < n; p++) {
        const ad_proto_info *pi = ad_proto_info_of(p);

        if (pi->flags & AD_PROTO_F_LISTENER)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? " | " : "", pi->name);
    }
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

/* ---- the key tables (the row type: config_impl.h) ---- */

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

const ad_key ad_cfg_top_keys[] = {
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

const ad_key ad_cfg_listener_keys[] = {
    ENUM("protocol", L, protocol, ad_proto_name, 0, NULL),
    ENUM("transport", L, transport, ad_cfg_transport_name, 0, NULL),
    ADDR("address", L, address, 1, NULL),
    INT("port", L, port, 0, 65535, NULL),
    STR("path", L, path, 1, NULL),
    ENUM("precision", L, precision, precision_name, 0, NULL),
    END};

/* The detector keys, named as anomalyctl's options (without the dashes; the cell kind
 * is `cell`, the scorer's window `scorer_window`, its ewma_alpha `alpha`). Defaults are
 * the models' table (ad_detector_defaults), which anomalyctl score uses too. */
const ad_key ad_cfg_detector_keys[] = {
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
    INT("alert_horizon", D, alert_horizon, 100, 100000000, NULL),
    INT("feature_span", D, feature_span, 0, 1000000000, NULL),
    FLT("raw_k", D, raw_k, 0, 1e6, 0, NULL),
    FLT("raw_rms", D, raw_rms, 0, 1e6, 0, NULL),
    BOOL("stateful", D, stateful, NULL),
    FLT("incident_z", D, incident_z, 0, 1e6, 0, NULL),
    INT("incident_ref", D, incident_ref, 16, 4096, NULL),
    FLT("departure", D, departure, 0, 1e6, 0, NULL),
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

const ad_key ad_cfg_rule_keys[] = {
    STR("match", R, match, 1, NULL),
    BOOL("ignore", R, ignore, NULL),
    BOOL("shared", R, shared, NULL),
    END};

// clang-format on

_Static_assert(sizeof(ad_cell_kind) == sizeof(int), "cell kinds are stored as int");
_Static_assert(sizeof(ad_scorer_kind) == sizeof(int), "scorer kinds are stored as int");

/* ---- scalars: text into a field ---- */

int ad_cfg_is_null(const char *s, size_t len)
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
size_t ad_cfg_addr_bytes(const char *s, unsigned char out[17])
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

int ad_cfg_is_loopback(const char *s)
{
    static const unsigned char v6_loop[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    unsigned char a[17];
    size_t n = ad_cfg_addr_bytes(s, a);
    if (n == 5)
        return a[1] == 127;
    if (n == 17)
        return !memcmp(a + 1, v6_loop, 16) || (!memcmp(a + 1, v4_mapped, 12) && a[13] == 127);
    return 0;
}

/* K_INT, K_SIZE: a decimal integer within the row's bounds. */
static int set_integer(const ad_key *k, char *p, const char *s, char *msg, size_t msglen)
{
    char *end, bounds[96];

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

int ad_config_parse_u64(const char *s, uint64_t *v)
{
    char *end;

    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (end == s || *end || errno == ERANGE || strchr(s, '-'))
        return -AD_EINVAL;
    *v = (uint64_t)x;
    return 0;
}

/* K_U64: any unsigned 64-bit integer. */
static int set_u64(char *p, const char *s, char *msg, size_t msglen)
{
    if (ad_config_parse_u64(s, (uint64_t *)p) < 0) {
        snprintf(msg, msglen, "'%s' is not an integer 0..%llu", s, (unsigned long long)UINT64_MAX);
        return -AD_EINVAL;
    }
    return 0;
}

/* K_DOUBLE, K_FLOAT: a finite number within the row's bounds. */
static int set_real(const ad_key *k, char *p, const char *s, char *msg, size_t msglen)
{
    char *end, bounds[96];

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

static int set_bool(char *p, const char *s, char *msg, size_t msglen)
{
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

/* K_STR, K_ADDR: text that fits, not shorter than the row's minimum; an address parses. */
static int set_text(const ad_key *k, char *p, const char *s, size_t len, int quoted, char *msg,
                    size_t msglen)
{
    unsigned char a[17];

    if (!quoted && ad_cfg_is_null(s, len))
        s = "", len = 0;
    if (len >= k->size) {
        snprintf(msg, msglen, "too long (%zu bytes, at most %zu)", len, k->size - 1);
        return -AD_EINVAL;
    }
    if (len < (size_t)k->lo) {
        snprintf(msg, msglen, "must not be empty");
        return -AD_EINVAL;
    }
    if (k->type == K_ADDR && len && !ad_cfg_addr_bytes(s, a)) {
        snprintf(msg, msglen, "'%s' is not an IPv4 or IPv6 address", s);
        return -AD_EINVAL;
    }
    memcpy(p, s, len + 1);
    return 0;
}

/* K_ENUM, K_SCORER: one of the row's names (a scorer kind resets the scorer). */
static int set_enum(const ad_key *k, char *p, const char *s, char *msg, size_t msglen)
{
    char choices[96];
    int v = enum_value(k->name_of, s);

    if (v < 0) {
        choices_text(k->name_of, choices, sizeof(choices));
        snprintf(msg, msglen, "'%s' is not one of %s", s, choices);
        return -AD_EINVAL;
    }
    if (k->type == K_ENUM)
        *(int *)p = v;
    else
        ad_scorer_defaults((ad_scorer_config *)p, (ad_scorer_kind)v);
    return 0;
}

int ad_cfg_set_scalar(const ad_key *k, void *base, const char *s, size_t len, int quoted, char *msg,
                      size_t msglen)
{
    char *p = (char *)base + k->off;
    int is_num = k->type == K_INT || k->type == K_SIZE || k->type == K_DOUBLE ||
                 k->type == K_FLOAT || k->type == K_U64;

    if (strlen(s) != len) {
        snprintf(msg, msglen, "contains a NUL byte");
        return -AD_EINVAL;
    }
    if ((is_num || k->type == K_BOOL) && (quoted || ad_cfg_is_null(s, len))) {
        snprintf(msg, msglen, "expected %s, got %s%s%s",
                 k->type == K_BOOL ? "a boolean (true/false/yes/no/on/off)"
                 : (k->type == K_DOUBLE || k->type == K_FLOAT) ? "a number"
                                                               : "an integer",
                 quoted ? "the string \"" : "nothing", quoted ? s : "", quoted ? "\"" : "");
        return -AD_EINVAL;
    }
    switch (k->type) {
    case K_INT:
    case K_SIZE:
        return set_integer(k, p, s, msg, msglen);
    case K_U64:
        return set_u64(p, s, msg, msglen);
    case K_DOUBLE:
    case K_FLOAT:
        return set_real(k, p, s, msg, msglen);
    case K_BOOL:
        return set_bool(p, s, msg, msglen);
    case K_STR:
    case K_ADDR:
        return set_text(k, p, s, len, quoted, msg, msglen);
    case K_ENUM:
    case K_SCORER:
        return set_enum(k, p, s, msg, msglen);
    case K_FEATURES:
    case K_SECTION:
    case K_LISTENERS:
    case K_DETECTOR:
    case K_SERIES:
    case K_PATTERNS:
        break; /* lists and maps: config_yaml.c */
    }
    snprintf(msg, msglen, "not a scalar key");
    return -AD_EINVAL;
}

/* Fills the fields of a table from its rows' defaults (sections included). */
int ad_cfg_table_defaults(const ad_key *keys, void *base)
{
    char msg[128];
    for (const ad_key *k = keys; k->name; k++) {
        if (k->type == K_SECTION && ad_cfg_table_defaults(k->sub, base))
            return -AD_EINVAL;
        if (k->def && ad_cfg_set_scalar(k, base, k->def, strlen(k->def), 0, msg, sizeof(msg)))
            return -AD_EINVAL; /* a bad row: caught by the tests */
    }
    return 0;
}

/* Sets a pattern list from n strings (copied into one allocation); old one freed. */
int ad_cfg_set_patterns(ad_patterns *out, const char *const *v, int n)
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
