/*
 * daemon.c - the daemon's loop: lines to samples to detectors to events, trainings off
 * the loop, eviction, StatsD flushes, signals, graceful stop.
 */
#include "daemon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "log.h"
#include "proto_graphite.h"
#include "proto_influx.h"
#include "proto_jsonl.h"
#include "proto_statsd.h"

#define ANOMALY_RING 1000 /* anomalies kept for GET /api/v1/anomalies */
#define WARN_EVERY 60.0   /* seconds between repeated warnings of one kind */

double ad_wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *model_name(const ad_detector_config *c)
{
    static char name[32];

    if (c->model == AD_MODEL_SEQ2SEQ) {
        snprintf(name, sizeof(name), "seq2seq/%s", ad_cell_name(c->kind));
        return name;
    }
    return ad_cell_name(c->kind);
}

static void remember_anomaly(ad_daemon *d, const ad_series *s, const ad_result *r, double ts)
{
    ad_anomaly *a;
    char *key = strdup(s->key);

    if (!key)
        return;
    if (d->anomaly_len < d->anomaly_cap) {
        a = &d->anomalies[(d->anomaly_head + d->anomaly_len++) % d->anomaly_cap];
    } else {
        a = &d->anomalies[d->anomaly_head];
        d->anomaly_head = (d->anomaly_head + 1) % d->anomaly_cap;
        free(a->series);
    }
    a->ts = ts;
    a->series = key;
    a->value = r->value;
    a->predicted = r->predicted;
    a->score = r->score;
}

/* A new series for a key: its settings by rule, a detector. NULL when refused. */
static ad_series *create_series(ad_daemon *d, int proto, const char *key, size_t len)
{
    const ad_detector_config *det;
    char err[256];
    ad_series *s;
    int ignore, rule, r;

    rule = ad_config_match(&d->cfg, key, &det, &ignore);
    if (ignore) {
        d->ignored++;
        return NULL;
    }
    r = ad_series_table_add(d->series, key, len, d->cfg.recent, &s);
    if (r == -AD_EFULL) {
        double now = ad_wall_now();

        d->series_refused++;
        if (now - d->last_full_warn >= WARN_EVERY) {
            ad_log_warn("max_series (%zu) reached: new series are refused (%s, counted in "
                        "anomalyd_series_refused_total)",
                        ad_series_table_max(d->series), key);
            d->last_full_warn = now;
        }
        return NULL;
    }
    if (r < 0) {
        d->series_failed++;
        return NULL;
    }
    r = ad_detector_create(det, &s->det, err, sizeof(err));
    if (r < 0) {
        ad_log_error("series %s: cannot create its detector: %s", key, err);
        ad_series_table_remove(d->series, s);
        ad_series_free(s);
        d->series_failed++;
        return NULL;
    }
    s->rule = rule;
    s->proto = proto;
    s->created = ad_wall_now();
    d->series_created++;
    ad_log_debug("new series %s (%s, rule %d)", key, model_name(det), rule);
    return s;
}

static void on_sample(ad_daemon *d, int proto, const ad_sample *smp)
{
    ad_series *s = ad_series_table_find(d->series, smp->key, smp->key_len);
    double now = ad_wall_now();
    double ts = isnan(smp->ts) ? now : smp->ts;
    ad_result r;
    ad_point p;

    d->samples[proto]++;
    if (!s && !(s = create_series(d, proto, smp->key, smp->key_len)))
        return;
    s->last_seen = now;
    if (ad_detector_observe(s->det, ts, smp->value, &r) < 0) {
        /* Refused (the detector counts it too). Parsers pass only finite values. */
        if (!isfinite(ts))
            d->refused[AD_REFUSE_BADTIME]++;
        else if (fabs(smp->value) > 1e30)
            d->refused[AD_REFUSE_RANGE]++;
        else
            d->refused[AD_REFUSE_BACKWARDS]++;
        return;
    }
    s->last = r;
    s->have_last = 1;
    p.ts = ts;
    p.value = r.value;
    p.predicted = r.predicted;
    p.score = r.score;
    p.flagged = (uint8_t)r.flagged;
    p.warming_up = (uint8_t)r.warming_up;
    ad_series_record(s, &p);
    if (r.flagged) {
        const ad_detector_config *c = ad_detector_get_config(s->det);
        ad_event e = {
            .ts = ts,
            .series = s->key,
            .value = r.value,
            .predicted = r.predicted,
            .error = r.error,
            .score = r.score,
            .threshold = c->scorer.threshold,
            .scorer = ad_scorer_name(c->scorer.kind),
            .model = model_name(c),
        };

        s->anomalies++;
        d->anomalies_total++;
        remember_anomaly(d, s, &r, ts);
        ad_events_publish(d->events, &e);
    }
    if (r.train_due && ad_trainer_submit(d->trainer, s) == -AD_EFULL)
        ad_log_debug("series %s: training queue full, training skipped", s->key);
}

static int sample_cb(void *ctx, const ad_sample *s)
{
    ad_daemon *d = ctx;

    on_sample(d, d->cur_proto, s);
    return 0;
}

static void parse_error(ad_daemon *d, int proto, int reason, const char *line, size_t len)
{
    double now;

    if (reason <= 0 || reason >= AD_PE_NREASONS)
        reason = AD_PE_SYNTAX;
    d->parse_errors[proto][reason]++;
    now = ad_wall_now();
    if (now - d->last_parse_warn[proto] >= WARN_EVERY) {
        int n = len > 120 ? 120 : (int)len;

        ad_log_warn("%s: refused a line (%s): \"%.*s%s\" (further ones this minute are only "
                    "counted in anomalyd_parse_errors_total)",
                    ad_proto_name(proto), ad_parse_error_name(reason), n, line,
                    len > 120 ? "..." : "");
        d->last_parse_warn[proto] = now;
    }
}

void ad_daemon_line(ad_daemon *d, int proto, int precision, const char *line, size_t len)
{
    ad_statsd_metric m;
    ad_sample s;
    int r;

    d->cur_proto = proto;
    switch (proto) {
    case AD_PROTO_GRAPHITE:
        r = ad_graphite_parse(line, len, d->keybuf, sizeof(d->keybuf), &s);
        if (r == 0)
            on_sample(d, proto, &s);
        break;
    case AD_PROTO_INFLUX:
        r = ad_influx_parse(line, len, precision, d->keybuf, sizeof(d->keybuf), sample_cb, d);
        if (r > 0)
            r = 0;
        break;
    case AD_PROTO_STATSD:
        r = ad_statsd_parse(line, len, d->keybuf, sizeof(d->keybuf), &m);
        if (r == 0) {
            r = ad_statsd_agg_add(d->statsd, &m);
            if (r == -AD_EFULL) {
                d->statsd_full++;
                r = 0;
            } else if (r == -AD_EINVAL) {
                r = -AD_PE_TYPE; /* a key seen with another type */
            } else if (r < 0) {
                r = 0; /* out of memory: nothing to blame the line for */
            }
        }
        break;
    case AD_PROTO_JSONL:
        r = ad_jsonl_parse(line, len, d->keybuf, sizeof(d->keybuf), &s);
        if (r == 0)
            on_sample(d, proto, &s);
        break;
    default:
        return;
    }
    if (r < 0)
        parse_error(d, proto, -r, line, len);
}

static void sink_line(void *ctx, int proto, int precision, const char *line, size_t len)
{
    ad_daemon_line(ctx, proto, precision, line, len);
}

static void sink_error(void *ctx, int proto, int reason)
{
    ad_daemon *d = ctx;

    parse_error(d, proto, reason, "", 0);
}

static void statsd_flush_cb(uv_timer_t *t)
{
    ad_daemon *d = t->data;

    d->cur_proto = AD_PROTO_STATSD;
    ad_statsd_agg_flush(d->statsd, ad_wall_now(), sample_cb, d);
}

static void evict(ad_daemon *d, ad_series *s)
{
    ad_series_table_remove(d->series, s);
    ad_trainer_forget(d->trainer, s);
    d->series_evicted++;
    if (s->training)
        s->evicted = 1; /* freed when its job comes back (train_done) */
    else
        ad_series_free(s);
}

static void sweep_cb(uv_timer_t *t)
{
    ad_daemon *d = t->data;
    double cutoff = ad_wall_now() - d->cfg.series_ttl;
    ad_series_iter it;
    ad_series *s;
    size_t n = 0;

    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(d->series, &it))) {
        if (s->last_seen < cutoff) {
            evict(d, s);
            n++;
        }
    }
    if (n)
        ad_log_info("evicted %zu series idle for more than %.0f s", n, d->cfg.series_ttl);
}

static void train_done(void *ctx, ad_series *s, int status, const char *err, double wall)
{
    ad_daemon *d = ctx;

    if (s->evicted) {
        ad_series_free(s);
        return;
    }
    if (status < 0) {
        d->trainings_failed++;
        ad_log_warn("series %s: training failed: %s", s->key, err);
        return;
    }
    {
        const ad_detector_stats *st = ad_detector_get_stats(s->det);

        ad_log_debug("series %s: trained in %.3f s (%d epochs, train loss %.4g, validation "
                     "loss %.4g)",
                     s->key, wall, st->epochs, st->train_loss, st->val_loss);
    }
}

static void signal_cb(uv_signal_t *h, int signum)
{
    ad_daemon *d = h->data;

    if (signum == SIGHUP) {
        ad_log_info("SIGHUP: reopening the events file");
        if (d->events)
            ad_events_reopen(d->events);
        return;
    }
    ad_log_info("%s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
    ad_daemon_stop(d);
}

static void own_closed(uv_handle_t *h)
{
    ad_daemon *d = h->data;

    d->handles--;
}

static void part_closed(void *arg)
{
    ad_daemon *d = arg;

    d->parts--;
}

static void close_own(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, own_closed);
}

int ad_daemon_start(uv_loop_t *loop, ad_config *cfg, ad_daemon **out, char *err,
                    size_t errlen)
{
    ad_daemon *d = calloc(1, sizeof(*d));
    ad_ingest_sink sink;
    int r;

    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    *out = d;
    d->loop = loop;
    d->cfg = *cfg; /* the daemon owns the listeners and rules arrays from now on */
    memset(cfg, 0, sizeof(*cfg));
    d->started = ad_wall_now();
    uv_timer_init(loop, &d->statsd_timer);
    uv_timer_init(loop, &d->sweep_timer);
    uv_signal_init(loop, &d->sig_int);
    uv_signal_init(loop, &d->sig_term);
    uv_signal_init(loop, &d->sig_hup);
    d->statsd_timer.data = d->sweep_timer.data = d;
    d->sig_int.data = d->sig_term.data = d->sig_hup.data = d;
    d->handles = 5;
    d->anomaly_cap = ANOMALY_RING;
    d->anomalies = calloc((size_t)d->anomaly_cap, sizeof(*d->anomalies));
    if (!d->anomalies || ad_series_table_create(d->cfg.max_series, &d->series) < 0 ||
        ad_statsd_agg_create(d->cfg.max_series, d->cfg.statsd_idle_flushes, &d->statsd) < 0 ||
        ad_trainer_create(loop, d->cfg.train_threads, d->cfg.train_cpu_budget,
                          d->cfg.train_queue, train_done, d, &d->trainer) < 0) {
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    d->parts++; /* the trainer */


    r = ad_events_start(loop, &d->cfg, &d->events, err, errlen);
    if (r < 0) {
        d->events = NULL; /* closes itself */
        return r;
    }
    d->parts++;
    sink.line = sink_line;
    sink.error = sink_error;
    sink.ctx = d;
    r = ad_listeners_start(loop, &d->cfg, &sink, &d->listeners, err, errlen);
    if (r < 0) {
        d->listeners = NULL;
        return r;
    }
    d->parts++;
    if (d->cfg.http_enabled) {
        char herr[256];

        r = ad_http_server_start(loop, d->cfg.http_address, d->cfg.http_port,
                                 d->cfg.http_max_body, d->cfg.max_connections, ad_api_handle,
                                 d, &d->http, herr, sizeof(herr));
        if (r < 0) {
            snprintf(err, errlen, "http: %s", herr);
            d->http = NULL;
            return r;
        }
        d->parts++;
        ad_log_info("listening http tcp %s:%d", d->cfg.http_address,
                    ad_http_server_port(d->http));
    }
    uv_timer_start(&d->statsd_timer, statsd_flush_cb, (uint64_t)(d->cfg.statsd_flush * 1000),
                   (uint64_t)(d->cfg.statsd_flush * 1000));
    if (d->cfg.series_ttl > 0) {
        double every = d->cfg.series_ttl / 4 < 60 ? d->cfg.series_ttl / 4 : 60;
        uint64_t ms = every < 0.1 ? 100 : (uint64_t)(every * 1000);

        uv_timer_start(&d->sweep_timer, sweep_cb, ms, ms);
    }
    uv_signal_start(&d->sig_int, signal_cb, SIGINT);
    uv_signal_start(&d->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&d->sig_hup, signal_cb, SIGHUP);
    ad_log_info("anomalyd %s started: %d listeners, max_series %zu, training threads %d, "
                "cpu budget %.2f",
                AD_VERSION, d->cfg.nlisteners, d->cfg.max_series, d->cfg.train_threads,
                d->cfg.train_cpu_budget);
    return 0;
}

void ad_daemon_stop(ad_daemon *d)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    /* Listeners first: their connections hand over any last partial line. */
    if (d->listeners) {
        ad_listeners_close(d->listeners, part_closed, d);
        d->listeners = NULL;
    }
    if (d->http) {
        ad_http_server_close(d->http, part_closed, d);
        d->http = NULL;
    }
    /* What StatsD gathered in the interval so far still counts. */
    if (d->statsd) {
        d->cur_proto = AD_PROTO_STATSD;
        ad_statsd_agg_flush(d->statsd, ad_wall_now(), sample_cb, d);
    }
    if (d->trainer) {
        ad_trainer_close(d->trainer, part_closed, d);
        d->trainer = NULL;
    }
    if (d->events) {
        ad_events_close(d->events, part_closed, d);
        d->events = NULL;
    }
    close_own((uv_handle_t *)&d->statsd_timer);
    close_own((uv_handle_t *)&d->sweep_timer);
    close_own((uv_handle_t *)&d->sig_int);
    close_own((uv_handle_t *)&d->sig_term);
    close_own((uv_handle_t *)&d->sig_hup);
}

void ad_daemon_free(ad_daemon *d)
{
    if (!d)
        return;
    ad_series_table_free(d->series);
    ad_statsd_agg_free(d->statsd);
    for (int i = 0; i < d->anomaly_len; i++)
        free(d->anomalies[(d->anomaly_head + i) % d->anomaly_cap].series);
    free(d->anomalies);
    ad_config_free(&d->cfg);
    free(d);
}
