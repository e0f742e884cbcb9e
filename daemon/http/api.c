/*
 * api.c - the HTTP API's routes: metrics, health, status, series, anomalies, /write,
 * /api/v1/write (Prometheus remote write, promrw.c).
 */
#include "http/api.h"

#include <cjson/cJSON.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ingest_sink.h"
#include "log.h"
#include "stats.h"
#include "http/metrics.h"
#include "http/plot.h"
#include "ingest/promrw.h"
#include "ingest/proto_influx.h"

#define JSON "application/json"

static void respond_json(ad_http_conn *conn, int status, cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;

    cJSON_Delete(o);
    if (!s) {
        ad_http_respond(conn, 500, JSON, NULL, "{\"error\":\"out of memory\"}", 25);
        return;
    }
    ad_http_respond_owned(conn, status, JSON, NULL, s, strlen(s));
}

static void respond_error(ad_http_conn *conn, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();

    if (o)
        cJSON_AddStringToObject(o, "error", msg);
    respond_json(conn, status, o);
}

/* Adds a number, or null when it is not finite (JSON has no NaN). */
static void add_num(cJSON *o, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

static int authorised(const ad_daemon *d, const ad_http_req *req)
{
    const char *tok = ad_daemon_config(d)->http_token;
    const char *h = req->authorization;
    size_t n = strlen(tok);
    unsigned diff = 0;

    if (!tok[0])
        return 1;
    if (!h || strncmp(h, "Bearer ", 7) || strlen(h + 7) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned)(h[7 + i] ^ tok[i]); /* no early exit: timing says nothing */
    return diff == 0;
}

static void get_metrics(ad_daemon *d, const ad_http_req *req, ad_http_conn *conn)
{
    char *text, v[8];
    size_t len;
    int with_series = !(ad_http_query_get(req->query, "series", v, sizeof(v)) >= 0 &&
                        (!strcmp(v, "0") || !strcmp(v, "false")));

    if (ad_metrics_render_opt(d, with_series, &text, &len) < 0) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    ad_http_respond_owned(conn, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text,
                          len);
}

static void get_healthz(ad_daemon *d, ad_http_conn *conn)
{
    cJSON *o = cJSON_CreateObject();
    int stopping = ad_daemon_stopping(d);

    if (o) {
        cJSON_AddStringToObject(o, "status", stopping ? "stopping" : "ok");
        cJSON_AddNumberToObject(o, "series", (double)ad_series_table_size(ad_daemon_series(d)));
    }
    respond_json(conn, stopping ? 503 : 200, o);
}

/* "memory": the resident set and what the daemon's parts hold (memstat.h), and their
 * sum per series. */
static void add_memory(cJSON *o, const ad_daemon *d)
{
    cJSON *m = cJSON_AddObjectToObject(o, "memory");
    ad_memstat ms;

    if (!m)
        return;
    ad_daemon_memstat(d, &ms);
    cJSON_AddNumberToObject(m, "rss", (double)ms.rss);
    cJSON_AddNumberToObject(m, "detectors", (double)ms.detectors);
    cJSON_AddNumberToObject(m, "recent", (double)ms.recent);
    cJSON_AddNumberToObject(m, "series", (double)ms.series);
    cJSON_AddNumberToObject(m, "families", (double)ms.families);
    cJSON_AddNumberToObject(m, "remote_write", (double)ms.remote_write);
    cJSON_AddNumberToObject(m, "bytes_per_series", ad_memstat_per_series(&ms));
    cJSON_AddNumberToObject(m, "rss_per_series",
                            ms.nseries ? (double)ms.rss / (double)ms.nseries : 0);
}

/* "series_warming_up" and "series_bytes": one pass over the series. */
static void add_series_totals(cJSON *o, ad_series_table *t)
{
    ad_series_iter it;
    ad_series *s;
    double warming = 0, bytes = 0;

    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(t, &it))) {
        warming += ad_detector_get_stats(s->det)->trainings == 0;
        bytes += (double)ad_series_bytes(s);
    }
    cJSON_AddNumberToObject(o, "series_warming_up", warming);
    cJSON_AddNumberToObject(o, "series_bytes", bytes);
}

static void get_status(ad_daemon *d, ad_http_conn *conn)
{
    cJSON *o = cJSON_CreateObject(), *samples, *train, *ev;
    const ad_daemon_stats *st = ad_daemon_get_stats(d);
    const ad_trainer *tr = ad_daemon_trainer(d);
    const ad_events *evs = ad_daemon_events(d);
    const ad_trainer_stats *ts = tr ? ad_trainer_get_stats(tr) : NULL;
    const ad_events_stats *es = evs ? ad_events_get_stats(evs) : NULL;
    ad_series_table *t = ad_daemon_series(d);
    uint64_t errors = 0;

    if (!o) {
        respond_json(conn, 500, NULL);
        return;
    }
    cJSON_AddStringToObject(o, "version", AD_VERSION);
    cJSON_AddNumberToObject(o, "uptime", ad_wall_now() - st->started);
    cJSON_AddNumberToObject(o, "series", (double)ad_series_table_size(t));
    cJSON_AddNumberToObject(o, "max_series", (double)ad_series_table_max(t));
    add_series_totals(o, t);
    add_memory(o, d);
    samples = cJSON_AddObjectToObject(o, "samples");
    for (int p = 0; p < AD_PROTO_N; p++) {
        cJSON_AddNumberToObject(samples, ad_proto_name(p), (double)st->samples[p]);
        for (int r = 0; r < AD_PE_NREASONS; r++)
            errors += st->parse_errors[p][r];
    }
    cJSON_AddNumberToObject(o, "parse_errors", (double)errors);
    cJSON_AddNumberToObject(o, "anomalies", (double)st->anomalies_total);
    if (ts) {
        train = cJSON_AddObjectToObject(o, "training");
        cJSON_AddNumberToObject(train, "queued", (double)ts->queued);
        cJSON_AddNumberToObject(train, "running", (double)ts->running);
        cJSON_AddNumberToObject(train, "installed", (double)ts->done);
        cJSON_AddNumberToObject(train, "failed", (double)ts->failed);
        cJSON_AddNumberToObject(train, "cpu_seconds", ts->cpu_seconds);
    }
    if (es) {
        ev = cJSON_AddObjectToObject(o, "events");
        cJSON_AddNumberToObject(ev, "published", (double)es->published);
        cJSON_AddNumberToObject(ev, "dropped", (double)es->dropped);
        cJSON_AddNumberToObject(ev, "subscribers", (double)es->subscribers);
    }
    respond_json(conn, 200, o);
}

static cJSON *series_summary(const ad_series *s)
{
    cJSON *o = cJSON_CreateObject();
    const ad_detector_stats *st = ad_detector_get_stats(s->det);

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "key", s->key);
    cJSON_AddStringToObject(o, "protocol", ad_proto_name(s->proto));
    cJSON_AddNumberToObject(o, "samples", (double)st->samples);
    cJSON_AddNumberToObject(o, "anomalies", (double)s->anomalies);
    add_num(o, "value", s->have_last ? s->last.value : NAN);
    add_num(o, "predicted", s->have_last ? s->last.predicted : NAN);
    add_num(o, "score", s->have_last ? s->last.score : NAN);
    cJSON_AddBoolToObject(o, "anomalous", s->have_last && s->last.anomalous);
    cJSON_AddBoolToObject(o, "warming_up", st->trainings == 0); /* no network installed yet */
    cJSON_AddNumberToObject(o, "trainings", (double)st->trainings);
    cJSON_AddNumberToObject(o, "last_seen", s->last_seen);
    return o;
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(ad_series *const *)a)->key, (*(ad_series *const *)b)->key);
}

/* Restores the max-heap (by key) of h[0..n) below slot i. */
static void sift_down(ad_series **h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, top = i;
        ad_series *t;

        if (l < n && strcmp(h[l]->key, h[top]->key) > 0)
            top = l;
        if (r < n && strcmp(h[r]->key, h[top]->key) > 0)
            top = r;
        if (top == i)
            return;
        t = h[i];
        h[i] = h[top];
        h[top] = t;
        i = top;
    }
}

static void sift_up(ad_series **h, size_t i)
{
    while (i > 0 && strcmp(h[(i - 1) / 2]->key, h[i]->key) < 0) {
        ad_series *t = h[i];

        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

/* The k series with the smallest keys of those match selects, sorted by key, into h
 * (room for k); *total counts every match. A max-heap of the k smallest so far: each
 * series costs one comparison with the heap's top, O(N log k) at worst, instead of
 * sorting every match to answer the first k (a table of tens of thousands of series
 * and the default limit of 1000). Returns how many are in h. */
static size_t smallest_keys(ad_daemon *d, const char *match, ad_series **h, size_t k,
                            size_t *total)
{
    ad_series_iter it;
    ad_series *s;
    size_t n = 0;

    *total = 0;
    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(ad_daemon_series(d), &it))) {
        if (fnmatch(match, s->key, 0) != 0)
            continue;
        ++*total;
        if (n < k) {
            h[n] = s;
            sift_up(h, n++);
        } else if (k && strcmp(s->key, h[0]->key) < 0) {
            h[0] = s;
            sift_down(h, n, 0);
        }
    }
    qsort(h, n, sizeof(*h), by_key);
    return n;
}

static void get_series_list(ad_daemon *d, const ad_http_req *req, ad_http_conn *conn)
{
    char match[512], lim[32];
    long limit = 1000;
    size_t n, total, k;
    ad_series **v;
    cJSON *o, *arr;

    if (ad_http_query_get(req->query, "match", match, sizeof(match)) < 0)
        strcpy(match, "*");
    if (ad_http_query_get(req->query, "limit", lim, sizeof(lim)) >= 0) {
        char *end;

        limit = strtol(lim, &end, 10);
        if (*end || limit < 0) {
            respond_error(conn, 400, "limit must be a non-negative integer");
            return;
        }
    }
    k = ad_series_table_size(ad_daemon_series(d));
    if ((unsigned long)limit < k)
        k = (size_t)limit;
    if (!(v = malloc((k ? k : 1) * sizeof(*v)))) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    n = smallest_keys(d, match, v, k, &total);
    o = cJSON_CreateObject();
    arr = o ? cJSON_AddArrayToObject(o, "series") : NULL;
    if (arr) {
        cJSON_AddNumberToObject(o, "total", (double)total);
        for (size_t i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, series_summary(v[i]));
    }
    free(v);
    respond_json(conn, 200, o);
}

static void get_series_one(ad_daemon *d, const char *key, ad_http_conn *conn)
{
    ad_series *s = ad_series_table_find(ad_daemon_series(d), key, strlen(key));
    const ad_detector_config *c;
    cJSON *o, *m, *pts;

    if (!s) {
        respond_error(conn, 404, "no such series");
        return;
    }
    c = ad_detector_get_config(s->det);
    o = series_summary(s);
    if (!o) {
        respond_json(conn, 500, NULL);
        return;
    }
    cJSON_AddNumberToObject(o, "rule", s->rule);
    cJSON_AddBoolToObject(o, "training", s->training);
    cJSON_AddNumberToObject(o, "bytes", (double)ad_series_bytes(s));
    m = cJSON_AddObjectToObject(o, "model");
    cJSON_AddStringToObject(m, "model", c->model == AD_MODEL_SEQ2SEQ ? "seq2seq" : "predict");
    cJSON_AddStringToObject(m, "cell", ad_cell_name(c->kind));
    cJSON_AddNumberToObject(m, "hidden", c->hidden);
    cJSON_AddNumberToObject(m, "layers", c->layers);
    cJSON_AddStringToObject(m, "scorer", ad_scorer_name(c->scorer.kind));
    cJSON_AddNumberToObject(m, "threshold", c->scorer.threshold);
    cJSON_AddNumberToObject(m, "incident_z", c->incident_z);
    cJSON_AddNumberToObject(m, "departure", c->departure);
    cJSON_AddNumberToObject(m, "train_after", c->train_after);
    cJSON_AddNumberToObject(m, "train_every", c->train_every);
    {
        const ad_detector_stats *st = ad_detector_get_stats(s->det);

        add_num(m, "train_loss", st->trainings ? st->train_loss : NAN);
        add_num(m, "val_loss", st->trainings ? st->val_loss : NAN);
        cJSON_AddNumberToObject(m, "epochs", st->epochs);
    }
    pts = cJSON_AddArrayToObject(o, "recent");
    for (int i = 0; i < s->recent_len; i++) {
        const ad_point pt = ad_series_point(s, i), *p = &pt;
        cJSON *q = cJSON_CreateObject();

        if (!q)
            break;
        cJSON_AddNumberToObject(q, "ts", p->ts);
        add_num(q, "value", p->value);
        add_num(q, "predicted", p->predicted);
        cJSON_AddNumberToObject(q, "score", p->score);
        cJSON_AddBoolToObject(q, "flagged", p->flagged);
        cJSON_AddBoolToObject(q, "anomalous", p->anomalous);
        cJSON_AddBoolToObject(q, "warming_up", p->warming_up);
        cJSON_AddItemToArray(pts, q);
    }
    respond_json(conn, 200, o);
}

/* GET /api/v1/series/{key}/plot.svg: the recent points as a chart (plot.h). */
static void get_series_plot(ad_series *s, ad_http_conn *conn)
{
    int n = s->recent_len;
    ad_point *pts = malloc((n ? (size_t)n : 1) * sizeof(*pts));
    char *svg;
    size_t len;

    if (!pts) {
        respond_error(conn, 500, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++)
        pts[i] = ad_series_point(s, i);
    if (ad_plot_svg(s->key, pts, n, ad_detector_get_config(s->det)->scorer.threshold, &svg,
                    &len) < 0) {
        free(pts);
        respond_error(conn, 500, "out of memory");
        return;
    }
    free(pts);
    ad_http_respond_owned(conn, 200, "image/svg+xml", NULL, svg, len);
}

/* /api/v1/series/{rest}: the series named rest, or, when there is none, the plot of the
 * series rest names before a "/plot.svg" suffix (a key may itself end in /plot.svg). */
static void get_series_path(ad_daemon *d, const char *rest, ad_http_conn *conn)
{
    static const char suffix[] = "/plot.svg";
    size_t n = strlen(rest), sn = sizeof(suffix) - 1;
    ad_series_table *t = ad_daemon_series(d);
    ad_series *s;

    if (ad_series_table_find(t, rest, n)) {
        get_series_one(d, rest, conn);
        return;
    }
    if (n > sn && !strcmp(rest + n - sn, suffix) &&
        (s = ad_series_table_find(t, rest, n - sn))) {
        get_series_plot(s, conn);
        return;
    }
    respond_error(conn, 404, "no such series");
}

static void get_anomalies(ad_daemon *d, const ad_http_req *req, ad_http_conn *conn)
{
    char since_s[64], lim[32];
    double since = -INFINITY;
    long limit = 1000;
    cJSON *o, *arr;

    if (ad_http_query_get(req->query, "since", since_s, sizeof(since_s)) >= 0) {
        char *end;

        since = strtod(since_s, &end);
        if (*end || !isfinite(since)) {
            respond_error(conn, 400, "since must be a number of seconds since the epoch");
            return;
        }
    }
    if (ad_http_query_get(req->query, "limit", lim, sizeof(lim)) >= 0) {
        char *end;

        limit = strtol(lim, &end, 10);
        if (*end || limit < 0) {
            respond_error(conn, 400, "limit must be a non-negative integer");
            return;
        }
    }
    o = cJSON_CreateObject();
    arr = o ? cJSON_AddArrayToObject(o, "anomalies") : NULL;
    for (int i = 0, n = 0; arr && i < ad_daemon_anomaly_count(d) && n < limit; i++) {
        const ad_anomaly *a = ad_daemon_anomaly(d, i);
        cJSON *q;

        if (!(a->ts > since) || !(q = cJSON_CreateObject()))
            continue;
        cJSON_AddNumberToObject(q, "ts", a->ts);
        cJSON_AddStringToObject(q, "series", a->series);
        add_num(q, "value", a->value);
        add_num(q, "predicted", a->predicted);
        cJSON_AddNumberToObject(q, "score", a->score);
        cJSON_AddItemToArray(arr, q);
        n++;
    }
    respond_json(conn, 200, o);
}

/* POST /write: the body's lines through the Influx parser, as a listener would. */
static void post_write(ad_daemon *d, const ad_http_req *req, ad_http_conn *conn)
{
    char prec_s[16], msg[256];
    int prec = AD_PREC_NS;
    unsigned long long refused = 0;
    const char *p = req->body, *end = req->body + req->body_len;
    long lineno = 0, bad_line = 0;

    if (req->content_encoding && strcmp(req->content_encoding, "identity")) {
        respond_error(conn, 415, "compressed bodies are not supported; send plain text");
        return;
    }
    if (ad_http_query_get(req->query, "precision", prec_s, sizeof(prec_s)) >= 0 &&
        (prec = ad_influx_precision_from_name(prec_s)) < 0) {
        respond_error(conn, 400, "precision must be one of ns, u, us, ms, s");
        return;
    }
    ad_daemon_received(d, uv_hrtime());
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

        lineno++;
        if (len && p[len - 1] == '\r')
            len--;
        if (ad_daemon_line(d, AD_PROTO_INFLUX, prec, p, len) < 0 && !refused++)
            bad_line = lineno;
        p = nl ? nl + 1 : end;
    }
    ad_daemon_flush(d);
    if (refused) {
        snprintf(msg, sizeof(msg), "%llu line(s) refused, the first at line %ld (the others "
                 "were taken)", refused, bad_line);
        respond_error(conn, 400, msg);
        return;
    }
    ad_http_respond(conn, 204, NULL, NULL, NULL, 0);
}

void ad_api_handle(void *ctx, const ad_http_req *req, ad_http_conn *conn)
{
    static const char prefix[] = "/api/v1/series/";
    ad_daemon *d = ctx;
    int get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
    const char *path = req->path;

    if (!strcmp(path, "/metrics") || !strcmp(path, "/healthz")) {
        if (!get) {
            respond_error(conn, 405, "method not allowed");
            return;
        }
        if (path[1] == 'm')
            get_metrics(d, req, conn);
        else
            get_healthz(d, conn);
        return;
    }
    if (strncmp(path, "/api/", 5) && strcmp(path, "/write")) {
        respond_error(conn, 404, "no such path");
        return;
    }
    if (!authorised(d, req)) {
        ad_http_respond(conn, 401, JSON, "WWW-Authenticate: Bearer\r\n",
                        "{\"error\":\"a bearer token is required\"}", 38);
        return;
    }
    if (!strcmp(path, "/api/v1/write")) { /* Prometheus remote write (promrw.h) */
        ad_promrw *prw;

        if (strcmp(req->method, "POST"))
            respond_error(conn, 405, "method not allowed");
        else if (!(prw = ad_daemon_promrw_open(d)))
            ad_http_respond(conn, 500, JSON, NULL, "{\"error\":\"out of memory\"}", 25);
        else
            ad_promrw_handle(prw, req, conn);
        return;
    }
    if (!strcmp(path, "/write")) {
        if (strcmp(req->method, "POST"))
            respond_error(conn, 405, "method not allowed");
        else
            post_write(d, req, conn);
        return;
    }
    if (!get) {
        respond_error(conn, 405, "method not allowed");
        return;
    }
    if (!strcmp(path, "/api/v1/status"))
        get_status(d, conn);
    else if (!strcmp(path, "/api/v1/series"))
        get_series_list(d, req, conn);
    else if (!strncmp(path, prefix, sizeof(prefix) - 1) && path[sizeof(prefix) - 1])
        get_series_path(d, path + sizeof(prefix) - 1, conn);
    else if (!strcmp(path, "/api/v1/anomalies"))
        get_anomalies(d, req, conn);
    else
        respond_error(conn, 404, "no such path");
}
