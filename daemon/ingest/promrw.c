/*
 * promrw.c - POST /api/v1/write (promrw.h): headers, decode, relabel, keys, counters to
 * rates, samples into the daemon; the series and metadata tables it keeps between
 * requests.
 */
#include "ingest/promrw.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "hash.h"
#include "log.h"
#include "ingest/relabel.h"
#include "ingest/remote_write.h"

#define MAX_FAMILIES 100000 /* metadata types remembered */
#define SWEEP_EVERY 60.0    /* seconds between sweeps of idle series entries */
#define WARN_EVERY 60.0     /* seconds between repeated warnings */

/* ---- a small string-keyed table (state by series, type by family) ---- */

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    double last_ts;          /* series: the last sample's time (s) */
    double last_v;           /* series: the last raw counter value (rates) */
    double seen;             /* series: wall clock of the last sample */
    int is_rate;             /* series: a counter modelled as its per-second rate */
    int primed;              /* series: last_v is a base to difference against */
    int type;                /* family: ad_rw_type */
    char key[];              /* NUL-terminated */
} entry;

typedef struct table {
    entry **b;
    size_t nb, size, max;
    size_t bytes;            /* of the entries and their keys */
} table;

static entry *table_find(const table *t, const char *key, size_t len)
{
    uint64_t h = ad_hash_key(key, len);

    if (!t->nb)
        return NULL;
    for (entry *e = t->b[h & (t->nb - 1)]; e; e = e->next)
        if (e->hash == h && !memcmp(e->key, key, len) && !e->key[len])
            return e;
    return NULL;
}

static int table_grow(table *t)
{
    size_t nb = t->nb ? 2 * t->nb : 256;
    entry **b = calloc(nb, sizeof(*b));

    if (!b)
        return -AD_ENOMEM;
    for (size_t i = 0; i < t->nb; i++) {
        entry *e = t->b[i], *next;

        for (; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

/* The entry of key, created zeroed if absent. NULL when full or out of memory. */
static entry *table_get(table *t, const char *key, size_t len)
{
    entry *e = table_find(t, key, len);

    if (e)
        return e;
    if (t->size >= t->max)
        return NULL;
    if (t->size >= t->nb && table_grow(t) < 0)
        return NULL;
    e = calloc(1, sizeof(*e) + len + 1);
    if (!e)
        return NULL;
    memcpy(e->key, key, len);
    t->bytes += sizeof(*e) + len + 1;
    e->hash = ad_hash_key(key, len);
    e->next = t->b[e->hash & (t->nb - 1)];
    t->b[e->hash & (t->nb - 1)] = e;
    t->size++;
    return e;
}

/* Removes the entries seen before cutoff. */
static void table_sweep(table *t, double cutoff)
{
    for (size_t i = 0; i < t->nb; i++) {
        entry **pp = &t->b[i];

        while (*pp) {
            entry *e = *pp;

            if (e->seen < cutoff) {
                *pp = e->next;
                t->bytes -= sizeof(*e) + strlen(e->key) + 1;
                free(e);
                t->size--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static void table_free(table *t)
{
    table_sweep(t, INFINITY);
    free(t->b);
    t->b = NULL;
    t->nb = 0;
}

/* ---- the state ---- */

struct ad_promrw {
    ad_promrw_stats st;
    const ad_config *cfg;   /* the owner's running configuration */
    ad_series_table *dseries; /* the owner's series table (read only) */
    ad_promrw_sink sink;    /* where the samples go */
    ad_relabel *include, *exclude, *rate; /* compiled from cfg */
    int compiled;           /* they are (and cfg has not changed since) */
    table series;           /* series key -> its state */
    table families;         /* family name -> metadata type */
    double last_sweep;
    double last_warn;       /* a refused body's warning */
    double last_own_warn;   /* own output's */
    double last_defer_note; /* a deferred request's */
    char key[AD_KEY_MAX];
};

static const char *const result_names[AD_PRW_NRESULTS] = {
    "ok", "partial", "bad_encoding", "bad_content_type", "bad_snappy", "bad_protobuf",
    "too_large", "no_memory", "deferred"};
static const char *const outcome_names[AD_PRW_NOUTCOMES] = {
    "ingested", "excluded", "stale", "non_finite", "out_of_order", "duplicate", "rate_primed",
    "counter_reset", "bad_series", "key_too_long", "series_table_full", "own_output"};

const char *ad_promrw_result_name(int r)
{
    return r >= 0 && r < AD_PRW_NRESULTS ? result_names[r] : "unknown";
}

const char *ad_promrw_outcome_name(int o)
{
    return o >= 0 && o < AD_PRW_NOUTCOMES ? outcome_names[o] : "unknown";
}

size_t ad_promrw_bytes(const ad_promrw *p)
{
    if (!p)
        return 0;
    return sizeof(*p) + p->series.bytes + p->series.nb * sizeof(entry *) + p->families.bytes +
           p->families.nb * sizeof(entry *);
}

const ad_promrw_stats *ad_promrw_get_stats(const ad_promrw *p)
{
    static const ad_promrw_stats zero;

    return p ? &p->st : &zero;
}

static void free_patterns(ad_promrw *p)
{
    ad_relabel_free(p->include);
    ad_relabel_free(p->exclude);
    ad_relabel_free(p->rate);
    p->include = p->exclude = p->rate = NULL;
    p->compiled = 0;
}

int ad_promrw_create(const ad_config *cfg, ad_series_table *series,
                     const ad_promrw_sink *sink, ad_promrw **out)
{
    ad_promrw *p = calloc(1, sizeof(*p));

    *out = p;
    if (!p)
        return -AD_ENOMEM;
    p->cfg = cfg;
    p->dseries = series;
    p->sink = *sink;
    return 0;
}

void ad_promrw_free(ad_promrw *p)
{
    if (!p)
        return;
    free_patterns(p);
    table_free(&p->series);
    table_free(&p->families);
    free(p);
}

void ad_promrw_reconfigure(ad_promrw *p)
{
    p->compiled = 0;
}

/* The patterns of the running configuration (compiled again after a reload). */
static int compile(ad_promrw *p)
{
    const ad_config *c = p->cfg;
    char err[512];
    int r;

    if (p->compiled)
        return 0;
    free_patterns(p);
    /* config.c checked each pattern: only memory can fail here */
    if ((r = ad_relabel_compile((const char *const *)c->prom_include.v, c->prom_include.n,
                                &p->include, err, sizeof(err))) < 0 ||
        (r = ad_relabel_compile((const char *const *)c->prom_exclude.v, c->prom_exclude.n,
                                &p->exclude, err, sizeof(err))) < 0 ||
        (r = ad_relabel_compile((const char *const *)c->prom_rate.v, c->prom_rate.n, &p->rate,
                                err, sizeof(err))) < 0) {
        free_patterns(p);
        return r;
    }
    p->compiled = 1;
    p->series.max = c->max_series;
    p->families.max = MAX_FAMILIES;
    return 0;
}

int ad_promrw_own_family(const char *name)
{
    static const char *const own[] = {AD_PRW_FAMILY_SCORE, AD_PRW_FAMILY_ANOMALOUS,
                                       AD_PRW_FAMILY_VALUE, AD_PRW_FAMILY_PREDICTED};

    if (!strncmp(name, "anomalyd_", 9))
        return 1;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (!strcmp(name, own[i]))
            return 1;
    return 0;
}

static int ends_with(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);

    return n > k && !memcmp(s + n - k, suffix, k);
}

static int family_type(const ad_promrw *p, const char *name, size_t n)
{
    const entry *e = table_find(&p->families, name, n);

    return e ? e->type : AD_RW_UNKNOWN;
}

/* Whether a metric name is a counter: _total, metadata COUNTER, or the cumulative parts
 * of a histogram or summary family. */
static int is_counter(const ad_promrw *p, const char *name)
{
    size_t n = strlen(name);
    int t;

    if (ends_with(name, n, "_total") || family_type(p, name, n) == AD_RW_COUNTER)
        return 1;
    if (ends_with(name, n, "_bucket"))
        return family_type(p, name, n - 7) == AD_RW_HISTOGRAM;
    if (ends_with(name, n, "_count") || ends_with(name, n, "_sum")) {
        t = family_type(p, name, n - (ends_with(name, n, "_sum") ? 4 : 6));
        return t == AD_RW_HISTOGRAM || t == AD_RW_SUMMARY;
    }
    return 0;
}

/* Whether a series first seen now is modelled as its counter's rate. */
static int is_rate(const ad_promrw *p, const ad_rw_series *s)
{
    return is_counter(p, s->name) && ad_relabel_match(p->rate, s->name, s->labels, s->nlabels);
}

/* ---- one request ---- */

/* {"error": msg} with a status (and extra headers, or NULL). */
static void respond_with(ad_http_conn *conn, int status, const char *headers, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    if (o)
        cJSON_AddStringToObject(o, "error", msg);
    s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) {
        ad_http_respond(conn, 500, "application/json", NULL, "{\"error\":\"out of memory\"}",
                        25);
        return;
    }
    ad_http_respond_owned(conn, status, "application/json", headers, s, strlen(s));
}

static void respond_msg(ad_http_conn *conn, int status, const char *msg)
{
    respond_with(conn, status, NULL, msg);
}

/* Content-Type: absent, or application/x-protobuf (parameters allowed, but a proto=
 * other than the 1.0 message is remote write 2.0, which this receiver does not speak). */
static int content_type_ok(const char *ct)
{
    static const char base[] = "application/x-protobuf";
    const char *proto;

    if (!ct)
        return 1;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, base, sizeof(base) - 1) ||
        (ct[sizeof(base) - 1] && ct[sizeof(base) - 1] != ';' && ct[sizeof(base) - 1] != ' '))
        return 0;
    proto = strstr(ct, "proto=");
    return !proto || !strncmp(proto + 6, "prometheus.WriteRequest", 23);
}

/* Samples of one series, e its state. */
static void ingest_series(ad_promrw *p, const ad_rw_series *s, size_t klen, entry *e)
{
    uint64_t *n = p->st.samples;

    e->seen = ad_wall_now();
    for (size_t i = 0; i < s->nsamples; i++) {
        double v = s->samples[i].value, ts = (double)s->samples[i].ts_ms / 1000.0;
        ad_sample smp;

        if (ad_rw_is_stale(v)) {
            n[AD_PRW_STALE]++;
            e->primed = 0;
            continue;
        }
        if (!isfinite(v)) {
            n[AD_PRW_NONFINITE]++;
            continue;
        }
        if (ts < e->last_ts) {
            n[AD_PRW_OUT_OF_ORDER]++;
            continue;
        }
        if (ts == e->last_ts) {
            n[AD_PRW_DUPLICATE]++;
            continue;
        }
        if (e->is_rate) {
            double prev = e->last_v, dt = ts - e->last_ts;
            int primed = e->primed;

            e->last_v = v;
            e->last_ts = ts;
            e->primed = 1;
            if (!primed) {
                n[AD_PRW_PRIMED]++;
                continue;
            }
            if (v < prev) {
                n[AD_PRW_RESET]++;
                continue;
            }
            v = (v - prev) / dt;
        }
        e->last_ts = ts;
        smp.key = p->key;
        smp.key_len = klen;
        smp.ts = ts;
        smp.value = v;
        p->sink.sample(p->sink.ctx, AD_PROTO_PROMETHEUS, &smp);
        n[AD_PRW_INGESTED]++;
    }
}

/* The state of a series first seen now: rate or raw is settled here; the last
 * timestamp is the daemon's (a series restored from the store) if it has one. */
static void new_series(ad_promrw *p, const ad_rw_series *s, size_t klen, entry *e)
{
    ad_series *ds = ad_series_table_find(p->dseries, p->key, klen);

    e->is_rate = is_rate(p, s);
    e->last_ts = ds && ds->recent_len ? ad_series_point(ds, ds->recent_len - 1).ts : -INFINITY;
}

/* What the first pass over a request decided for each series. */
enum verdict { V_TAKE = 0, V_BAD, V_OWN, V_EXCLUDED, V_KEY_TOO_LONG, V_FULL, V_DEFER };

/* Whether the series' samples in this request reach the daemon: a raw series, or a rate
 * with a base to difference against (its state primed, or a second sample here). */
static int will_sample(const ad_promrw *p, const ad_rw_series *s, const entry *e)
{
    return !(e ? e->is_rate : is_rate(p, s)) || s->nsamples >= 2 || (e && e->primed);
}

/* The first pass's verdict on one series (its key in p->key, *klen, from V_TAKE on):
 * a new series whose samples reach the daemon has its series created while *quota
 * lasts, and is deferred after. */
static int judge(ad_promrw *p, const ad_rw_series *s, size_t *klen, size_t *quota)
{
    int r;

    if (s->bad)
        return V_BAD;
    if (p->cfg->prom_exclude_own && ad_promrw_own_family(s->name))
        return V_OWN;
    if ((ad_relabel_count(p->include) &&
         !ad_relabel_match(p->include, s->name, s->labels, s->nlabels)) ||
        ad_relabel_match(p->exclude, s->name, s->labels, s->nlabels))
        return V_EXCLUDED;
    if (ad_rw_series_key(s->name, s->labels, s->nlabels, p->key, sizeof(p->key), klen) < 0)
        return V_KEY_TOO_LONG;
    if (!s->nsamples || !will_sample(p, s, table_find(&p->series, p->key, *klen)))
        return V_TAKE;
    r = p->sink.prepare_series(p->sink.ctx, AD_PROTO_PROMETHEUS, p->key, *klen, *quota > 0);
    if (r == -AD_EFULL)
        return V_FULL;
    if (r == 1 && !*quota)
        return V_DEFER;
    if (r == 1)
        (*quota)--;
    return V_TAKE; /* out of memory creating it: its samples meet the same */
}

/* The warning that own output arrives, at most once a minute. */
static void warn_own(ad_promrw *p, const ad_rw_series *s, const char *peer)
{
    double now = ad_wall_now();

    if (now - p->last_own_warn < WARN_EVERY)
        return;
    p->last_own_warn = now;
    ad_log_warn("remote write carries anomalyd's own output (%s, from %s): dropped, counted in "
                "anomalyd_remote_write_samples_total{result=\"own_output\"}; drop it in "
                "Prometheus' write_relabel_configs to save the traffic (docs/PROMETHEUS.md), "
                "or set prometheus.exclude_own: false to model it; at most one such warning "
                "a minute",
                s->name, peer);
}

/* The second pass: every series as the first judged it. */
static void take(ad_promrw *p, const ad_rw_request *rq, const uint8_t *v, const char *peer)
{
    static const int dropped[] = {[V_BAD] = 1, [V_OWN] = 3, [V_EXCLUDED] = 0,
                                  [V_KEY_TOO_LONG] = 2};
    static const int outcome[] = {[V_BAD] = AD_PRW_BAD_SERIES, [V_OWN] = AD_PRW_OWN_OUTPUT,
                                  [V_EXCLUDED] = AD_PRW_EXCLUDED,
                                  [V_KEY_TOO_LONG] = AD_PRW_KEY_TOO_LONG,
                                  [V_FULL] = AD_PRW_STATE_FULL};
    uint64_t *n = p->st.samples;

    for (size_t i = 0; i < rq->nseries; i++) {
        const ad_rw_series *s = &rq->series[i];
        entry *e;
        size_t klen;

        if (v[i] != V_TAKE) {
            n[outcome[v[i]]] += s->nsamples;
            if (v[i] != V_FULL)
                p->st.series_dropped[dropped[v[i]]]++;
            if (v[i] == V_OWN)
                warn_own(p, s, peer);
            continue;
        }
        if (!s->nsamples)
            continue;
        ad_rw_series_key(s->name, s->labels, s->nlabels, p->key, sizeof(p->key), &klen);
        if (!(e = table_find(&p->series, p->key, klen))) {
            if (!(e = table_get(&p->series, p->key, klen))) {
                n[AD_PRW_STATE_FULL] += s->nsamples;
                continue;
            }
            new_series(p, s, klen, e);
        }
        ingest_series(p, s, klen, e);
    }
    p->st.series = p->series.size;
}

/* Every series of a decoded request: its metadata, then the first pass; when it
 * deferred no series, the second. Returns the series deferred (nothing was taken then),
 * or -AD_ENOMEM. */
static long ingest(ad_promrw *p, const ad_rw_request *rq, const char *peer)
{
    uint8_t *v = malloc(rq->nseries ? rq->nseries : 1);
    size_t quota = AD_PRW_NEW_SERIES;
    long deferred = 0;

    if (!v)
        return -AD_ENOMEM;
    for (size_t i = 0; i < rq->nmeta; i++) {
        const char *f = rq->meta[i].family;
        entry *e;

        if (f[0] && (e = table_get(&p->families, f, strlen(f))))
            e->type = rq->meta[i].type;
    }
    for (size_t i = 0; i < rq->nseries; i++) {
        size_t klen;

        v[i] = (uint8_t)judge(p, &rq->series[i], &klen, &quota);
        deferred += v[i] == V_DEFER;
    }
    if (!deferred) { /* a deferred request counts only as deferred (promrw.h) */
        p->st.metadata += rq->nmeta;
        take(p, rq, v, peer);
    }
    free(v);
    return deferred;
}

static int refused(const uint64_t *before, const uint64_t *after)
{
    static const int errs[] = {AD_PRW_OUT_OF_ORDER, AD_PRW_BAD_SERIES, AD_PRW_KEY_TOO_LONG,
                               AD_PRW_STATE_FULL};
    int k = 0;

    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        k += after[errs[i]] != before[errs[i]];
    return k;
}

/* The answer to a request that brought more new series than it may create: 503, for
 * the sender to send it again (Prometheus does, with the same samples). */
static void defer(ad_promrw *p, ad_http_conn *conn, long deferred, const char *peer)
{
    double now = ad_wall_now();
    char msg[256];

    p->st.requests[AD_PRW_DEFERRED]++;
    if (now - p->last_defer_note >= WARN_EVERY) {
        p->last_defer_note = now;
        ad_log_info("remote write from %s brings more new series than one request may "
                    "create (%d): the others (%ld) wait for its retry (503; counted in "
                    "anomalyd_remote_write_requests_total{result=\"deferred\"}; at most one "
                    "such line a minute)",
                    peer, AD_PRW_NEW_SERIES, deferred);
    }
    snprintf(msg, sizeof(msg),
             "%ld new series wait: one request creates at most %d; send it again (nothing "
             "of it was taken yet)",
             deferred, AD_PRW_NEW_SERIES);
    respond_with(conn, 503, "Retry-After: 1\r\n", msg);
}

void ad_promrw_handle(ad_promrw *p, const ad_http_req *req, ad_http_conn *conn)
{
    const ad_config *cfg = p->cfg;
    uint64_t before[AD_PRW_NOUTCOMES];
    ad_rw_request rq;
    char msg[512];
    long deferred;
    size_t rq_decoded;
    double now;
    int r, res;

    p->sink.received(p->sink.ctx, uv_hrtime());
    if (compile(p) < 0) {
        p->st.requests[AD_PRW_NOMEM]++;
        respond_msg(conn, 500, "out of memory");
        return;
    }
    now = ad_wall_now();
    if (now - p->last_sweep >= SWEEP_EVERY) {
        if (cfg->series_ttl > 0)
            table_sweep(&p->series, now - cfg->series_ttl);
        p->series.max = cfg->max_series;
        p->last_sweep = now;
    }
    if (!req->content_encoding || strcasecmp(req->content_encoding, "snappy")) {
        p->st.requests[AD_PRW_ENCODING]++;
        respond_msg(conn, 415, "remote write 1.0 bodies are snappy-compressed: send "
                               "Content-Encoding: snappy");
        return;
    }
    if (!content_type_ok(req->content_type)) {
        p->st.requests[AD_PRW_CONTENT_TYPE]++;
        respond_msg(conn, 415, "expected Content-Type: application/x-protobuf (remote write "
                               "1.0, prometheus.WriteRequest)");
        return;
    }
    r = ad_rw_decode(req->body, req->body_len, cfg->prom_max_decoded, &rq);
    if (r < 0) {
        static const struct {
            int res, status;
            const char *msg;
        } map[] = {
            [AD_RW_ESNAPPY] = {AD_PRW_SNAPPY, 400, "the body is not a snappy block"},
            [AD_RW_EPROTOBUF] = {AD_PRW_PROTOBUF, 400,
                                 "the body is not a protobuf prometheus.WriteRequest"},
            [AD_RW_ETOO_LARGE] = {AD_PRW_TOO_LARGE, 413,
                                  "the body decodes to more than prometheus.max_decoded "
                                  "(or needs too much memory for its size)"},
            [AD_RW_ENOMEM] = {AD_PRW_NOMEM, 500, "out of memory"},
        };
        int e = -r >= 1 && -r <= AD_RW_ENOMEM ? -r : AD_RW_ENOMEM;

        p->st.requests[map[e].res]++;
        if (now - p->last_warn >= WARN_EVERY) {
            ad_log_warn("remote write from %s refused: %s (further ones this minute are only "
                        "counted in anomalyd_remote_write_requests_total)",
                        req->peer ? req->peer : "?", map[e].msg);
            p->last_warn = now;
        }
        respond_msg(conn, map[e].status, map[e].msg);
        return;
    }
    memcpy(before, p->st.samples, sizeof(before));
    rq_decoded = rq.decoded_len;
    deferred = ingest(p, &rq, req->peer ? req->peer : "?");
    p->sink.flush(p->sink.ctx); /* the families' deferred steps, one batch each */
    ad_rw_request_free(&rq);
    if (deferred < 0) {
        p->st.requests[AD_PRW_NOMEM]++;
        respond_msg(conn, 500, "out of memory");
        return;
    }
    if (deferred > 0) {
        defer(p, conn, deferred, req->peer ? req->peer : "?");
        return;
    }
    p->st.decoded_bytes += rq_decoded;
    if (!refused(before, p->st.samples)) {
        p->st.requests[AD_PRW_OK]++;
        ad_http_respond(conn, 204, NULL, NULL, NULL, 0);
        return;
    }
    res = AD_PRW_PARTIAL;
    p->st.requests[res]++;
    snprintf(msg, sizeof(msg),
             "samples refused (the others were taken): %llu out of order, %llu of unusable "
             "series, %llu of series whose key is too long, %llu of new series with "
             "max_series reached",
             (unsigned long long)(p->st.samples[AD_PRW_OUT_OF_ORDER] - before[AD_PRW_OUT_OF_ORDER]),
             (unsigned long long)(p->st.samples[AD_PRW_BAD_SERIES] - before[AD_PRW_BAD_SERIES]),
             (unsigned long long)(p->st.samples[AD_PRW_KEY_TOO_LONG] - before[AD_PRW_KEY_TOO_LONG]),
             (unsigned long long)(p->st.samples[AD_PRW_STATE_FULL] - before[AD_PRW_STATE_FULL]));
    respond_msg(conn, 400, msg);
}
