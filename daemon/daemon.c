/*
 * daemon.c - the daemon's loop: start, the receivers' sink (lines to samples: the
 * pipeline itself is daemon_batch.c), eviction, trainings coming back, StatsD flushes,
 * checkpoints, signals, graceful stop; the doors readers see (stats.h).
 */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "clock.h"
#include "daemon_impl.h"
#include "log.h"
#include "text.h"
#include "ingest/proto_statsd.h"

static int sample_cb(void *ctx, const ad_sample *s)
{
    ad_daemon *d = ctx;

    ad_daemon_sample(d, d->cur_proto, s);
    return 0;
}

/* A refused line: counted, warned about at most once a minute per protocol. Returns the
 * reason counted. */
static int parse_error(ad_daemon *d, int proto, int reason, const char *line, size_t len)
{
    double now;

    if (reason <= 0 || reason >= AD_PE_NREASONS)
        reason = AD_PE_SYNTAX;
    d->st.parse_errors[proto][reason]++;
    now = ad_wall_now();
    if (now - d->last_parse_warn[proto] >= AD_WARN_EVERY) {
        int n = len > 120 ? 120 : (int)len;

        ad_log_warn("%s: refused a line (%s): \"%.*s%s\" (further ones this minute are only "
                    "counted in anomalyd_parse_errors_total)",
                    ad_proto_name(proto), ad_parse_error_name(reason), n, line,
                    len > 120 ? "..." : "");
        d->last_parse_warn[proto] = now;
    }
    return reason;
}

int ad_daemon_line(ad_daemon *d, int proto, int precision, const char *line, size_t len)
{
    const ad_proto_info *pi;
    ad_statsd_metric m;
    int r;

    d->cur_proto = proto;
    if (!ad_utf8_valid(line, len)) /* a key must be (text.h); refused at every door */
        return -parse_error(d, proto, AD_PE_UTF8, line, len);
    pi = ad_proto_info_of(proto);
    if (!pi)
        return 0;
    if (pi->flags & AD_PROTO_F_AGGREGATED) {
        r = ad_statsd_parse(line, len, d->keybuf, sizeof(d->keybuf), &m);
        if (r == 0) {
            r = ad_statsd_agg_add(d->statsd, &m);
            if (r == -AD_EFULL) {
                d->st.statsd_full++;
                r = 0;
            } else if (r == -AD_EINVAL) {
                r = -AD_PE_TYPE; /* a key seen with another type */
            } else if (r < 0) {
                r = 0; /* out of memory: nothing to blame the line for */
            }
        } else if (r == AD_PARSE_SKIP) {
            r = 0; /* a blank line */
        }
    } else if (pi->parse) {
        r = pi->parse(line, len, precision, d->keybuf, sizeof(d->keybuf), sample_cb, d);
    } else {
        return 0; /* not line based (remote write comes through promrw.h) */
    }
    return r < 0 ? -parse_error(d, proto, -r, line, len) : r;
}

void ad_daemon_received(ad_daemon *d, uint64_t ns)
{
    if (d->cur->n) /* nothing is queued here; if it were, it is of the last receipt */
        ad_daemon_flush(d);
    d->recv_hr = ns;
    d->recv_wall = ad_wall_now();
}

static void sink_line(void *ctx, int proto, int precision, const char *line, size_t len)
{
    ad_daemon_line(ctx, proto, precision, line, len);
}

static void sink_received(void *ctx, uint64_t ns)
{
    ad_daemon_received(ctx, ns);
}

static void sink_done(void *ctx)
{
    ad_daemon_flush(ctx);
}

static void sink_more(void *ctx)
{
    ad_daemon_flush_async(ctx);
}

static void sink_error(void *ctx, int proto, int reason)
{
    ad_daemon *d = ctx;

    parse_error(d, proto, reason, "", 0);
}

static void statsd_flush_cb(uv_timer_t *t)
{
    ad_daemon *d = t->data;

    ad_daemon_received(d, uv_hrtime());
    d->cur_proto = AD_PROTO_STATSD;
    ad_statsd_agg_flush(d->statsd, d->recv_wall, sample_cb, d);
    ad_daemon_flush(d);
}

void ad_daemon_evict(ad_daemon *d, ad_series *s)
{
    ad_fam_flush(&d->fams); /* no pending list may hold it when it is freed */
    ad_series_table_remove(d->series, s);
    ad_trainer_forget(d->trainer, s);
    ad_persist_forget(d->persist, s->key);
    if (s->family)
        s->family->members--;
    d->st.series_evicted++;
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
            ad_daemon_evict(d, s);
            n++;
        }
    }
    if (n)
        ad_log_info("evicted %zu series idle for more than %.0f s", n, d->cfg.series_ttl);
}

static void train_done(void *ctx, ad_series *s, int status, const char *err, double wall)
{
    ad_daemon *d = ctx;
    const ad_detector_stats *st;

    if (s->family && !s->det) { /* a family's training */
        if (status < 0) {
            d->st.trainings_failed++;
            ad_fam_failed(s->family);
            ad_log_warn("family %s: training failed: %s", s->key, err);
        } else {
            ad_log_debug("family %s: trained in %.3f s", s->key, wall);
        }
        return;
    }
    if (s->evicted) {
        ad_series_free(s);
        return;
    }
    if (status < 0) {
        d->st.trainings_failed++;
        ad_log_warn("series %s: training failed: %s", s->key, err);
        return;
    }
    s->dirty = 1;
    st = ad_detector_get_stats(s->det);
    ad_log_debug("series %s: trained in %.3f s (%d epochs, train loss %.4g, validation loss "
                 "%.4g)",
                 s->key, wall, st->epochs, st->train_loss, st->val_loss);
}

static void checkpoint_cb(uv_timer_t *t)
{
    ad_daemon *d = t->data;

    ad_persist_checkpoint(d->persist, NULL, NULL);
}

void ad_daemon_status_line(ad_daemon *d, char *buf, size_t len)
{
    uint64_t samples = 0;

    for (int p = 0; p < AD_PROTO_N; p++)
        samples += d->st.samples[p];
    snprintf(buf, len, "%zu series, %llu samples, %llu anomalies, training %zu running %zu "
             "queued",
             ad_series_table_size(d->series), (unsigned long long)samples,
             (unsigned long long)d->st.anomalies_total,
             d->trainer ? ad_trainer_get_stats(d->trainer)->running : 0,
             d->trainer ? ad_trainer_get_stats(d->trainer)->queued : 0);
}

static void watchdog_cb(uv_timer_t *t)
{
    ad_daemon *d = t->data;
    char status[256];

    ad_sd_watchdog();
    ad_daemon_status_line(d, status, sizeof(status));
    ad_sd_status(status);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    ad_daemon *d = h->data;

    if (d->stopping) {
        ad_log_info("%s while stopping: the stop goes on", strsignal(signum));
        return;
    }
    if (signum == SIGHUP) {
        ad_log_info("SIGHUP: reloading the configuration and reopening the events file");
        ad_daemon_reload(d);
        return;
    }
    ad_log_info("%s: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
    ad_daemon_stop(d);
}

static void close_own(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Socket activation: the listening socket systemd passed under a name, or -1. */
static int take_fd(void *ctx, const char *name)
{
    ad_daemon *d = ctx;

    return ad_sd_take(&d->sd_fds, name);
}

/* Whether a passed listening socket is bound to a loopback address. */
static int fd_is_loopback(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);

    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return 0;
    if (sa.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&sa)->sin6_addr);
    return 0;
}

int ad_daemon_start_http(ad_daemon *d, char *err, size_t errlen)
{
    char herr[256];
    int fd, r;

    if (!d->cfg.http_enabled)
        return 0;
    fd = ad_sd_take(&d->sd_fds, "http");
    /* The loopback-or-token rule (config.c) looked at http.address; a passed socket may
     * be bound elsewhere, so it is checked here against its real address. */
    if (fd >= 0 && !fd_is_loopback(fd) && !d->cfg.http_token[0] &&
        !d->cfg.http_allow_unauthenticated) {
        snprintf(err, errlen, "the socket passed as 'http' is not on a loopback address: set "
                 "http.token, or http.allow_unauthenticated: true to serve the API without "
                 "one");
        close(fd);
        return -AD_EINVAL;
    }
    if (fd >= 0)
        r = ad_http_server_start_fd(d->loop, fd, d->cfg.http_address, d->cfg.http_max_body,
                                    d->cfg.max_connections, d->api, d, &d->http, herr,
                                    sizeof(herr));
    else
        r = ad_http_server_start(d->loop, d->cfg.http_address, d->cfg.http_port,
                                 d->cfg.http_max_body, d->cfg.max_connections, d->api, d,
                                 &d->http, herr, sizeof(herr));
    if (r < 0) {
        snprintf(err, errlen, "%s", herr);
        d->http = NULL;
        return r;
    }
    ad_log_info("listening http tcp %s:%d%s", d->cfg.http_address, ad_http_server_port(d->http),
                fd >= 0 ? " (passed)" : "");
    return 0;
}

void ad_daemon_share_fdbudget(ad_daemon *d)
{
    if (d->listeners)
        ad_listeners_set_fdbudget(d->listeners, &d->fdb);
    if (d->http)
        ad_http_server_set_fdbudget(d->http, &d->fdb);
    if (d->events)
        ad_events_set_fdbudget(d->events, &d->fdb);
}

static int start_events(ad_daemon *d, char *err, size_t errlen)
{
    int r = ad_events_start(d->loop, &d->cfg, ad_sd_take(&d->sd_fds, "events-tcp"), &d->events,
                            err, errlen);

    if (r < 0) {
        d->events = NULL; /* it closes itself */
        return r;
    }
    return 0;
}

void ad_daemon_start_timers(ad_daemon *d)
{
    uint64_t ms;

    ms = (uint64_t)(d->cfg.statsd_flush * 1000);
    uv_timer_start(&d->statsd_timer, statsd_flush_cb, ms, ms);
    uv_timer_stop(&d->sweep_timer);
    if (d->cfg.series_ttl > 0) {
        double every = d->cfg.series_ttl / 4 < 60 ? d->cfg.series_ttl / 4 : 60;

        ms = every < 0.1 ? 100 : (uint64_t)(every * 1000);
        uv_timer_start(&d->sweep_timer, sweep_cb, ms, ms);
    }
    uv_timer_stop(&d->checkpoint_timer);
    if (ad_persist_has_store(d->persist)) {
        ms = (uint64_t)(d->cfg.store_interval * 1000);
        uv_timer_start(&d->checkpoint_timer, checkpoint_cb, ms, ms);
    }
}

/* The parts that only need memory: the anomalies' ring, the series table, the StatsD
 * aggregator, the trainer (with the families' ops), the score helper, the families. */
static int create_parts(ad_daemon *d)
{
    d->anomaly_cap = AD_ANOMALY_RING;
    d->anomalies = calloc((size_t)d->anomaly_cap, sizeof(*d->anomalies));
    if (!d->anomalies || ad_series_table_create(d->cfg.max_series, &d->series) < 0 ||
        ad_statsd_agg_create(d->cfg.max_series, d->cfg.statsd_idle_flushes, &d->statsd) < 0 ||
        ad_trainer_create(d->loop, d->cfg.train_threads, d->cfg.train_cpu_budget,
                          d->cfg.train_queue, train_done, d, &d->trainer) < 0 ||
        ad_fanout_create(ad_daemon_score_threads(&d->cfg), &d->fanout) < 0)
        return -AD_ENOMEM;
    ad_fams_init(&d->fams, &d->cfg, d->series, d->trainer);
    ad_trainer_set_ops(d->trainer, &ad_fam_trainer_ops, &d->fams);
    ad_trainer_set_nice(d->trainer, d->cfg.train_nice);
    return 0;
}

/* The sockets: events, listeners, HTTP; then the passed sockets nothing took. */
static int start_doors(ad_daemon *d, char *err, size_t errlen)
{
    ad_ingest_sink sink;
    int r;

    if ((r = start_events(d, err, errlen)) < 0)
        return r;
    sink.line = sink_line;
    sink.error = sink_error;
    sink.received = sink_received;
    sink.done = sink_done;
    sink.more = sink_more;
    sink.ctx = d;
    r = ad_listeners_start(d->loop, &d->cfg, &sink, take_fd, d, &d->listeners, err, errlen);
    if (r < 0) {
        d->listeners = NULL;
        return r;
    }
    if ((r = ad_daemon_start_http(d, err, errlen)) < 0)
        return r;
    for (int i = 0; i < d->sd_fds.n; i++) {
        if (!d->sd_fds.taken[i]) {
            /* Closed, so its clients are refused instead of waiting in its queue. */
            ad_log_warn("systemd passed a socket named '%s' that nothing in the "
                        "configuration uses: closing it",
                        d->sd_fds.names[i]);
            close(d->sd_fds.fds[i]);
            d->sd_fds.taken[i] = 1;
        }
    }
    return 0;
}

int ad_daemon_start(uv_loop_t *loop, ad_config *cfg, const char *config_path,
                    ad_http_handler api, ad_daemon **out, char *err, size_t errlen)
{
    ad_daemon *d = calloc(1, sizeof(*d));
    char status[256];
    size_t nofile;
    uint64_t wd;
    int r;

    *out = d;
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    d->fdb.reserve = -1;
    d->cur = &d->bat[0];
    d->loop = loop;
    d->api = api;
    d->cfg = *cfg; /* the daemon owns the listeners and rules arrays from now on */
    memset(cfg, 0, sizeof(*cfg));
    snprintf(d->config_path, sizeof(d->config_path), "%s", config_path ? config_path : "");
    d->st.started = ad_wall_now();
    uv_timer_init(loop, &d->statsd_timer);
    uv_timer_init(loop, &d->sweep_timer);
    uv_timer_init(loop, &d->checkpoint_timer);
    uv_timer_init(loop, &d->watchdog_timer);
    uv_signal_init(loop, &d->sig_int);
    uv_signal_init(loop, &d->sig_term);
    uv_signal_init(loop, &d->sig_hup);
    d->statsd_timer.data = d->sweep_timer.data = d->checkpoint_timer.data = d;
    d->watchdog_timer.data = d;
    d->sig_int.data = d->sig_term.data = d->sig_hup.data = d;
    if ((r = create_parts(d)) < 0) {
        snprintf(err, errlen, "out of memory");
        return r;
    }
    if (ad_sd_listen_fds(&d->sd_fds) < 0)
        ad_log_warn("systemd: LISTEN_FDS is malformed: binding every socket myself");
    else if (d->sd_fds.n)
        ad_log_info("systemd passed %d sockets", d->sd_fds.n);

    nofile = ad_fdlimit_apply(&d->cfg);
    /* State first, then the sockets: READY means both. */
    if ((r = ad_persist_open(loop, &d->cfg, d->series, &d->fams, &d->persist)) < 0) {
        snprintf(err, errlen, "out of memory restoring the store");
        return r;
    }
    if ((r = start_doors(d, err, errlen)) < 0)
        return r;
    if (ad_fdbudget_init(&d->fdb, nofile) < 0)
        ad_log_warn("cannot open a reserve descriptor (/dev/null): %s", strerror(errno));
    ad_daemon_share_fdbudget(d);
    ad_daemon_start_timers(d);
    uv_signal_start(&d->sig_int, signal_cb, SIGINT);
    uv_signal_start(&d->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&d->sig_hup, signal_cb, SIGHUP);
    if ((wd = ad_sd_watchdog_usec()) > 0)
        uv_timer_start(&d->watchdog_timer, watchdog_cb, wd / 2000, wd / 2000);
    else
        uv_timer_start(&d->watchdog_timer, watchdog_cb, 10000, 10000); /* STATUS= only */
    ad_log_info("anomalyd %s started: %d listeners, %zu series restored, max_series %zu, "
                "weights %s, score threads %d, training threads %d at nice %d, cpu budget "
                "%.2f",
                AD_VERSION, d->cfg.nlisteners, ad_series_table_size(d->series),
                d->cfg.max_series, ad_wtype_name(d->cfg.weights), ad_fanout_parts(d->fanout),
                d->cfg.train_threads, d->cfg.train_nice, d->cfg.train_cpu_budget);
    ad_daemon_status_line(d, status, sizeof(status));
    ad_sd_ready(status);
    return 0;
}

/* Stop, last step: the final checkpoint is written; close what is left. */
static void stop_finish(void *arg)
{
    ad_daemon *d = arg;

    ad_persist_close(d->persist);
    d->persist = NULL;
    if (d->events) {
        ad_events_close(d->events, NULL, NULL);
        d->events = NULL;
    }
    close_own((uv_handle_t *)&d->checkpoint_timer);
    close_own((uv_handle_t *)&d->watchdog_timer);
    close_own((uv_handle_t *)&d->sig_int);
    close_own((uv_handle_t *)&d->sig_term);
    close_own((uv_handle_t *)&d->sig_hup);
    /* Closing the handles restored the default actions; from here to exit (a few
     * microseconds) a late signal is ignored rather than killing a clean stop. */
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
}

/* Stop, third step: no checkpoint is out (a periodic one that was has ended); the final
 * one. */
static void stop_checkpoint(void *arg)
{
    ad_daemon *d = arg;

    if (ad_persist_checkpoint(d->persist, stop_finish, d) < 0)
        stop_finish(d); /* cannot happen (nothing is out now); do not hang */
}

/* Stop, second step: every training is back and installed; checkpoint everything once
 * the periodic checkpoint that may be out is over. */
static void stop_trainer_closed(void *arg)
{
    ad_daemon *d = arg;

    ad_persist_when_idle(d->persist, stop_checkpoint, d);
}

void ad_daemon_stop(ad_daemon *d)
{
    if (d->stopping)
        return;
    d->stopping = 1;
    ad_sd_stopping("stopping: draining, checkpointing");
    /* Listeners first: their connections hand over any last partial line. */
    if (d->listeners) {
        ad_listeners_close(d->listeners, NULL, NULL);
        d->listeners = NULL;
    }
    if (d->http) {
        ad_http_server_close(d->http, NULL, NULL);
        d->http = NULL;
    }
    /* What StatsD gathered in the interval so far still counts. */
    if (d->statsd) {
        ad_daemon_received(d, uv_hrtime());
        d->cur_proto = AD_PROTO_STATSD;
        ad_statsd_agg_flush(d->statsd, d->recv_wall, sample_cb, d);
        ad_daemon_flush(d);
    }
    close_own((uv_handle_t *)&d->statsd_timer);
    close_own((uv_handle_t *)&d->sweep_timer);
    uv_timer_stop(&d->checkpoint_timer);
    /* The signal handlers stay until the end (stop_finish): a second SIGTERM while the
     * last trainings and the final checkpoint finish must not kill the daemon. */
    if (d->trainer) {
        ad_trainer_close(d->trainer, stop_trainer_closed, d);
        d->trainer = NULL;
        d->fams.trainer = NULL;
    } else {
        stop_trainer_closed(d);
    }
}

void ad_daemon_free(ad_daemon *d)
{
    if (!d)
        return;
    ad_persist_close(d->persist);
    ad_series_table_free(d->series);
    ad_fam_free_all(&d->fams); /* after the members, which use the families' networks */
    ad_statsd_agg_free(d->statsd);
    for (int i = 0; i < d->anomaly_len; i++)
        free(d->anomalies[(d->anomaly_head + i) % d->anomaly_cap].series);
    free(d->anomalies);
    ad_promrw_free(d->promrw);
    ad_fanout_free(d->fanout);
    ad_fdbudget_close(&d->fdb);
    ad_config_free(&d->cfg);
    free(d);
}

/* ---- the receivers' remote write (ingest_sink.h) ---- */

static void prw_received(void *ctx, uint64_t ns)
{
    ad_daemon_received(ctx, ns);
}

static void prw_sample(void *ctx, int proto, const ad_sample *s)
{
    ad_daemon_sample(ctx, proto, s);
}

static int prw_prepare(void *ctx, int proto, const char *key, size_t len, int create)
{
    return ad_daemon_prepare_series(ctx, proto, key, len, create);
}

static void prw_flush(void *ctx)
{
    ad_daemon_flush(ctx);
}

ad_promrw *ad_daemon_promrw_open(ad_daemon *d)
{
    ad_promrw_sink sink = {prw_received, prw_sample, prw_prepare, prw_flush, d};

    if (!d->promrw && ad_promrw_create(&d->cfg, d->series, &sink, &d->promrw) < 0)
        d->promrw = NULL;
    return d->promrw;
}

/* ---- what readers see (stats.h) ---- */

const ad_daemon_stats *ad_daemon_get_stats(const ad_daemon *d)
{
    return &d->st;
}

const ad_config *ad_daemon_config(const ad_daemon *d)
{
    return &d->cfg;
}

int ad_daemon_stopping(const ad_daemon *d)
{
    return d->stopping;
}

ad_series_table *ad_daemon_series(const ad_daemon *d)
{
    return d->series;
}

const ad_trainer *ad_daemon_trainer(const ad_daemon *d)
{
    return d->trainer;
}

const ad_events *ad_daemon_events(const ad_daemon *d)
{
    return d->events;
}

const ad_listeners *ad_daemon_listeners(const ad_daemon *d)
{
    return d->listeners;
}

const ad_http_server *ad_daemon_http(const ad_daemon *d)
{
    return d->http;
}

const ad_persist *ad_daemon_persist(const ad_daemon *d)
{
    return d->persist;
}

const ad_promrw *ad_daemon_promrw(const ad_daemon *d)
{
    return d->promrw;
}

const ad_fdbudget *ad_daemon_fdbudget(const ad_daemon *d)
{
    return &d->fdb;
}

const ad_fams *ad_daemon_families(const ad_daemon *d)
{
    return &d->fams;
}

int ad_daemon_anomaly_count(const ad_daemon *d)
{
    return d->anomaly_len;
}

const ad_anomaly *ad_daemon_anomaly(const ad_daemon *d, int i)
{
    if (i < 0 || i >= d->anomaly_len)
        return NULL;
    return &d->anomalies[(d->anomaly_head + i) % d->anomaly_cap];
}

void ad_daemon_memstat(const ad_daemon *d, ad_memstat *m)
{
    ad_memstat_take(d->series, &d->fams, d->promrw, m);
}
