/*
 * daemon.c - the daemon's loop: lines to samples to detectors to events, trainings off
 * the loop, eviction, StatsD flushes, signals, graceful stop.
 */
#include "daemon.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "http/api.h"
#include "families.h"
#include "fanout.h"
#include "log.h"
#include "text.h"
#include "state/persist.h"
#include "ingest/proto_influx.h"
#include "ingest/proto_statsd.h"

#define ANOMALY_RING 1000 /* anomalies kept for GET /api/v1/anomalies */
#define WARN_EVERY 60.0   /* seconds between repeated warnings of one kind */

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

/* A new series for a key: its settings by rule, a detector (a family member's under a
 * shared rule). NULL when refused. */
static ad_series *create_series(ad_daemon *d, int proto, const char *key, size_t len)
{
    const ad_detector_config *det;
    ad_fam *fam = NULL;
    char err[256];
    ad_series *s;
    int ignore, rule, r;

    rule = ad_config_match(&d->cfg, key, &det, &ignore);
    if (ignore) {
        d->ignored++;
        return NULL;
    }
    if (!strncmp(key, AD_FAMILY_PREFIX, strlen(AD_FAMILY_PREFIX))) {
        d->series_failed++; /* the store's names for families */
        return NULL;
    }
    if (rule >= 0 && d->cfg.rules[rule].shared && !(fam = ad_fam_get(d, rule))) {
        d->series_failed++;
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
    if (fam)
        r = ad_detector_create_member(det, fam->net, &s->det, err, sizeof(err));
    else
        r = ad_detector_create(det, &s->det, err, sizeof(err));
    if (r < 0) {
        ad_log_error("series %s: cannot create its detector: %s", key, err);
        ad_series_table_remove(d->series, s);
        ad_series_free(s);
        d->series_failed++;
        return NULL;
    }
    if (d->cfg.weights != AD_W_F32)
        ad_detector_set_weights(s->det, d->cfg.weights); /* out of memory: it steps in fp32 */
    s->rule = rule;
    s->proto = proto;
    s->created = ad_wall_now();
    s->family = fam;
    s->fingerprint = fam ? ad_fam_fingerprint(det) : ad_persist_fingerprint(det);
    if (fam)
        fam->members++;
    d->series_created++;
    ad_log_debug("new series %s (%s, rule %d%s)", key, model_name(det), rule,
                 fam ? ", shared" : "");
    return s;
}

int ad_daemon_prepare_series(ad_daemon *d, int proto, const char *key, size_t len,
                             int create)
{
    const ad_detector_config *det;
    ad_series *s;
    int ignore;

    if (ad_series_table_find(d->series, key, len))
        return 0;
    ad_config_match(&d->cfg, key, &det, &ignore);
    if (ignore || !strncmp(key, AD_FAMILY_PREFIX, strlen(AD_FAMILY_PREFIX)))
        return 0;
    if (ad_series_table_size(d->series) >= ad_series_table_max(d->series))
        return -AD_EFULL;
    if (!create)
        return 1;
    if (!(s = create_series(d, proto, key, len)))
        return -AD_ENOMEM; /* counted as failed */
    s->last_seen = ad_wall_now(); /* not idle: its samples are on their way */
    return 1;
}

/* score_threads, 0 resolved by the CPUs this process may run on. */
static int score_threads(const ad_config *c)
{
    if (c->score_threads)
        return c->score_threads;
    return uv_available_parallelism() >= 2 ? 2 : 1;
}

static const double lat_le[AD_LAT_BUCKETS] = {
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3,
    1e-2, 2e-2, 5e-2, 0.1,  1.0,  INFINITY};

double ad_latency_le(int i)
{
    return lat_le[i];
}

/* One scored sample's latency: sec from the receipt of its bytes to the end of its
 * batch's scoring (one clock read per batch). */
static void record_latency(ad_daemon *d, double sec)
{
    int i = 0;

    while (i < AD_LAT_BUCKETS - 1 && sec > lat_le[i])
        i++;
    d->lat_hist[i]++;
    d->lat_sum += sec;
}

/* The series' own part of a sample, run on either thread of the fan-out (it touches
 * only the series): the detector (b->rc and b->r), the last result, the recent point. */
static void observe_one(ad_pending *b)
{
    ad_series *s = b->s;
    const ad_result *r = &b->r;
    ad_point p;

    /* a family member's network step waits for its family's batch (ad_fam_flush) */
    b->rc = s->family ? ad_detector_observe_defer(s->det, b->ts, b->value, &b->r)
                      : ad_detector_observe(s->det, b->ts, b->value, &b->r);
    if (b->rc < 0)
        return;
    s->last = *r;
    s->have_last = 1;
    s->dirty = 1;
    p.ts = b->ts;
    p.value = r->value;
    p.predicted = r->predicted;
    p.score = r->score;
    p.flagged = (uint8_t)r->flagged;
    p.anomalous = (uint8_t)r->anomalous;
    p.warming_up = (uint8_t)r->warming_up;
    ad_series_record(s, &p);
}

/* What a sample's result does beyond its series, on the loop thread, in the order the
 * samples came. */
static void take_result(ad_daemon *d, ad_pending *b, double sec)
{
    ad_series *s = b->s;
    const ad_result *r = &b->r;
    const double ts = b->ts;

    if (b->rc < 0) {
        /* Refused (the detector counts it too). Parsers pass only finite values. */
        if (!isfinite(ts))
            d->refused[AD_REFUSE_BADTIME]++;
        else if (fabs(b->value) > 1e30)
            d->refused[AD_REFUSE_RANGE]++;
        else
            d->refused[AD_REFUSE_BACKWARDS]++;
        return;
    }
    if (b->rc == 1)
        ad_fam_defer(s->family, s->det);
    if (r->flagged) {
        const ad_detector_config *c = ad_detector_get_config(s->det);
        ad_event e = {
            .ts = ts,
            .series = s->key,
            .value = r->value,
            .predicted = r->predicted,
            .error = r->error,
            .score = r->score,
            .threshold = c->scorer.threshold,
            .scorer = ad_scorer_name(c->scorer.kind),
            .model = model_name(c),
        };

        s->anomalies++;
        d->anomalies_total++;
        remember_anomaly(d, s, r, ts);
        if (d->events)
            ad_events_publish(d->events, &e);
        else
            ad_log_info("anomaly (no event sinks) series=%s value=%g score=%.3f", s->key,
                        r->value, (double)r->score);
    }
    record_latency(d, sec);
    if (s->family)
        ad_fam_observed(d, s, r);
    else if (r->train_due && ad_trainer_submit(d->trainer, s) == -AD_EFULL)
        ad_log_debug("series %s: training queue full, training skipped", s->key);
}

/*
 * The batch. Samples parsed from one read (or request, or StatsD flush) are gathered,
 * up to AD_BATCH at a time, then go through their series in three passes:
 *   1. on the loop thread, in order: each key's series is found, or created;
 *   2. the detectors (the bulk of the work): the batch's series are split into AD_BUCKETS
 *      buckets by hash, and the loop thread and the fan-out's helper (fanout.h) claim
 *      buckets in turn until none is left: when the helper is late (asleep, or its CPU
 *      busy) the loop thread does them all and never waits for it (score_threads: 1:
 *      no helper). A series' samples are all in one bucket, in order; buckets touch
 *      disjoint detectors; a family's shared network is only read (its members' steps
 *      wait for pass 3's ad_fam_flush);
 *   3. on the loop thread, in order: what the results do beyond their series (counters,
 *      events, latency, training), then the families' batched steps (pass 2 already
 *      kept each series' last result and recent point: they are the series' own).
 * Passes 1 and 2 run as software pipelines: the work of a sample is a chain of
 * dependent loads from lines no cache holds (the hash slot, the series, its detector
 * and what that points to, the network), so each stage prefetches what the next stage
 * of a sample PIPE_D places later will read, and the misses of several samples overlap
 * instead of following one another. The batch is always flushed before its caller's
 * callback returns. A stream listener with more bytes waiting flushes asynchronously
 * (ad_daemon_flush_async): the helper works on pass 2 while the loop thread reads and
 * parses the next bytes and runs their pass 1; the next flush finishes it.
 */
#define PIPE_D 2 /* samples between two stages of a pipeline */

/* Claims buckets until none is left and runs their detectors, each bucket a pipeline. */
static void observe_part(void *ctx, int part)
{
    ad_batch *bt = ctx;
    int k, scored = 0;

    while ((k = atomic_fetch_add(&bt->next, 1)) < AD_BUCKETS) {
        const int *idx = bt->ord + bt->start[k], m = bt->start[k + 1] - bt->start[k];

        scored += m;

        for (int i = 0; i < m + 2 * PIPE_D; i++) {
            int j;

            if (i < m)
                ad_detector_prefetch_struct(bt->v[idx[i]].s->det);
            if ((j = i - PIPE_D) >= 0 && j < m) {
                ad_detector_prefetch(bt->v[idx[j]].s->det); /* what it points to */
                ad_series_prefetch_recent(bt->v[idx[j]].s);
            }
            if ((j = i - 2 * PIPE_D) >= 0 && j < m)
                observe_one(&bt->v[idx[j]]);
        }
    }
    bt->scored[part] = scored;
}

/* Pass 1: each sample's series, found or created; then the buckets of pass 2. */
static void batch_lookup(ad_daemon *d, ad_batch *bt)
{
    const int n = bt->n;
    ad_pending *batch = bt->v;
    int count[AD_BUCKETS] = {0};

    for (int i = 0; i < n + 2 * PIPE_D; i++) {
        int j;

        if (i < n) { /* the slot */
            batch[i].hash = ad_series_hash(batch[i].key, batch[i].key_len);
            ad_series_table_prefetch(d->series, batch[i].hash);
        }
        if ((j = i - PIPE_D) >= 0 && j < n) /* the series and its key */
            ad_series_table_prefetch_series(d->series, batch[j].hash);
        if ((j = i - 2 * PIPE_D) >= 0 && j < n) {
            ad_pending *b = &batch[j];
            ad_series *s = ad_series_table_find_hashed(d->series, b->key, b->key_len, b->hash);

            d->samples[b->proto]++;
            if (isnan(b->ts))
                b->ts = d->recv_wall; /* the receipt time of the bytes being parsed */
            if (!s)
                s = create_series(d, b->proto, b->key, b->key_len);
            b->s = s;
            if (s) {
                s->last_seen = d->recv_wall;
                b->bucket = (int)((s->hash >> 32) % AD_BUCKETS);
                count[b->bucket]++;
            }
        }
    }
    bt->recv_hr = d->recv_hr;
    bt->start[0] = 0;
    for (int k = 0; k < AD_BUCKETS; k++)
        bt->start[k + 1] = bt->start[k] + count[k];
    for (int k = 0; k < AD_BUCKETS; k++)
        count[k] = bt->start[k];
    for (int i = 0; i < n; i++)
        if (batch[i].s)
            bt->ord[count[batch[i].bucket]++] = i;
    atomic_init(&bt->next, 0);
    bt->scored[0] = bt->scored[1] = 0;
}

/* Pass 2 begins: the helper may start on the buckets (batch_finish joins it). A few
 * samples are not worth its wake-up (nor keeping it spinning under light traffic). */
#define POST_MIN 16
static void batch_post(ad_daemon *d, ad_batch *bt)
{
    bt->posted = d->fanout && bt->n >= POST_MIN;
    if (bt->posted)
        ad_fanout_post(d->fanout, observe_part, bt);
}

/* Pass 2 ends (the loop thread claims what is left, then waits for the helper's
 * bucket), then pass 3; the batch is emptied. */
static void batch_finish(ad_daemon *d, ad_batch *bt)
{
    double sec;

    if (bt->posted)
        ad_fanout_join(d->fanout);
    else
        observe_part(bt, 0);
    sec = (double)(uv_hrtime() - bt->recv_hr) * 1e-9; /* every sample is scored now */
    d->scored[0] += (uint64_t)bt->scored[0];
    d->scored[1] += (uint64_t)bt->scored[1];
    for (int i = 0; i < bt->n; i++) /* 3: the results */
        if (bt->v[i].s)
            take_result(d, &bt->v[i], sec);
    bt->n = 0;
    bt->keys_used = 0;
    ad_fam_flush(d); /* the family members' deferred steps, one product per family */
}

/* The batch whose detectors are running (ad_daemon_flush_async), finished. */
static void settle(ad_daemon *d)
{
    ad_batch *bt = d->scoring;

    if (bt) {
        d->scoring = NULL;
        batch_finish(d, bt);
    }
}

void ad_daemon_flush(ad_daemon *d)
{
    ad_batch *bt = d->cur;

    settle(d);
    if (bt->n == 0)
        return;
    batch_lookup(d, bt);
    batch_post(d, bt);
    batch_finish(d, bt);
}

/*
 * Pass 1 of the new batch runs while the previous one's detectors may still be running
 * on the helper: it only finds series (their keys and hashes never change), creates new
 * ones and stamps last_seen, none of which a detector's pass touches. Then the previous
 * batch is finished (its pass 3 precedes the new batch's pass 2, so a series in both
 * sees its samples in order) and the new one posted.
 */
void ad_daemon_flush_async(ad_daemon *d)
{
    ad_batch *bt = d->cur;

    if (bt->n == 0)
        return;
    batch_lookup(d, bt);
    settle(d);
    batch_post(d, bt);
    d->scoring = bt;
    d->cur = bt == &d->bat[0] ? &d->bat[1] : &d->bat[0];
}

/* Queues a sample (its key copied) for the next flush; flushes when the batch is full. */
static void on_sample(ad_daemon *d, int proto, const ad_sample *smp)
{
    ad_batch *bt = d->cur;
    ad_pending *b;

    if (bt->n == AD_BATCH || bt->keys_used + smp->key_len + 1 > sizeof(bt->keys))
        ad_daemon_flush(d);
    b = &bt->v[bt->n++];
    b->key = bt->keys + bt->keys_used;
    memcpy(bt->keys + bt->keys_used, smp->key, smp->key_len);
    bt->keys[bt->keys_used + smp->key_len] = '\0';
    bt->keys_used += smp->key_len + 1;
    b->key_len = smp->key_len;
    b->ts = smp->ts;
    b->value = smp->value;
    b->proto = proto;
}

void ad_daemon_sample(ad_daemon *d, int proto, const ad_sample *s)
{
    on_sample(d, proto, s);
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
    const ad_proto_info *pi;
    ad_statsd_metric m;
    int r;

    d->cur_proto = proto;
    if (!ad_utf8_valid(line, len)) { /* a key must be (text.h); refused at every door */
        parse_error(d, proto, AD_PE_UTF8, line, len);
        return;
    }
    pi = ad_proto_info_of(proto);
    if (!pi)
        return;
    if (pi->flags & AD_PROTO_F_AGGREGATED) {
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
    } else if (pi->parse) {
        r = pi->parse(line, len, precision, d->keybuf, sizeof(d->keybuf), sample_cb, d);
    } else {
        return; /* not line based (remote write comes through promrw.h) */
    }
    if (r < 0)
        parse_error(d, proto, -r, line, len);
}

static void sink_line(void *ctx, int proto, int precision, const char *line, size_t len)
{
    ad_daemon_line(ctx, proto, precision, line, len);
}

static void sink_received(void *ctx, uint64_t ns)
{
    ad_daemon *d = ctx;

    if (d->cur->n) /* nothing is queued here; if it were, it is of the last read */
        ad_daemon_flush(d);
    d->recv_hr = ns;
    d->recv_wall = ad_wall_now();
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

    d->cur_proto = AD_PROTO_STATSD;
    d->recv_hr = uv_hrtime();
    d->recv_wall = ad_wall_now();
    ad_statsd_agg_flush(d->statsd, d->recv_wall, sample_cb, d);
    ad_daemon_flush(d);
}

static void evict(ad_daemon *d, ad_series *s)
{
    ad_fam_flush(d); /* no pending list may hold it when it is freed */
    ad_series_table_remove(d->series, s);
    ad_trainer_forget(d->trainer, s);
    ad_persist_forget(d, s->key);
    if (s->family)
        s->family->members--;
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
    const ad_detector_stats *st;

    if (s->family && !s->det) { /* a family's training */
        if (status < 0) {
            d->trainings_failed++;
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
        d->trainings_failed++;
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

    ad_persist_checkpoint(d, NULL);
}

/* The STATUS= line systemd shows. */
static void status_line(ad_daemon *d, char *buf, size_t len)
{
    uint64_t samples = 0;

    for (int p = 0; p < AD_PROTO_N; p++)
        samples += d->samples[p];
    snprintf(buf, len, "%zu series, %llu samples, %llu anomalies, training %zu running %zu "
             "queued",
             ad_series_table_size(d->series), (unsigned long long)samples,
             (unsigned long long)d->anomalies_total,
             d->trainer ? ad_trainer_get_stats(d->trainer)->running : 0,
             d->trainer ? ad_trainer_get_stats(d->trainer)->queued : 0);
}

static void watchdog_cb(uv_timer_t *t)
{
    ad_daemon *d = t->data;
    char status[256];

    ad_sd_watchdog();
    status_line(d, status, sizeof(status));
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

static int start_http(ad_daemon *d, char *err, size_t errlen)
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
                                    d->cfg.max_connections, ad_api_handle, d, &d->http, herr,
                                    sizeof(herr));
    else
        r = ad_http_server_start(d->loop, d->cfg.http_address, d->cfg.http_port,
                                 d->cfg.http_max_body, d->cfg.max_connections, ad_api_handle, d,
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

/* Every door takes its connections' descriptors from the one budget (fdlimit.h). */
static void share_fdbudget(ad_daemon *d)
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

static void start_timers(ad_daemon *d)
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
    if (d->store) {
        ms = (uint64_t)(d->cfg.store_interval * 1000);
        uv_timer_start(&d->checkpoint_timer, checkpoint_cb, ms, ms);
    }
}

int ad_daemon_start(uv_loop_t *loop, ad_config *cfg, const char *config_path,
                    ad_daemon **out, char *err, size_t errlen)
{
    ad_daemon *d = calloc(1, sizeof(*d));
    ad_ingest_sink sink;
    char status[256];
    size_t nofile;
    uint64_t wd;
    int r;

    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    *out = d;
    d->fdb.reserve = -1;
    d->cur = &d->bat[0];
    d->loop = loop;
    d->cfg = *cfg; /* the daemon owns the listeners and rules arrays from now on */
    memset(cfg, 0, sizeof(*cfg));
    snprintf(d->config_path, sizeof(d->config_path), "%s", config_path ? config_path : "");
    d->started = ad_wall_now();
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
    d->anomaly_cap = ANOMALY_RING;
    d->anomalies = calloc((size_t)d->anomaly_cap, sizeof(*d->anomalies));
    if (!d->anomalies || ad_series_table_create(d->cfg.max_series, &d->series) < 0 ||
        ad_statsd_agg_create(d->cfg.max_series, d->cfg.statsd_idle_flushes, &d->statsd) < 0 ||
        ad_trainer_create(loop, d->cfg.train_threads, d->cfg.train_cpu_budget,
                          d->cfg.train_queue, train_done, d, &d->trainer) < 0 ||
        ad_fanout_create(score_threads(&d->cfg), &d->fanout) < 0) {
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    ad_trainer_set_ops(d->trainer, &ad_fam_trainer_ops, d);
    ad_trainer_set_nice(d->trainer, d->cfg.train_nice);
    if (ad_sd_listen_fds(&d->sd_fds) < 0)
        ad_log_warn("systemd: LISTEN_FDS is malformed: binding every socket myself");
    else if (d->sd_fds.n)
        ad_log_info("systemd passed %d sockets", d->sd_fds.n);

    nofile = ad_fdlimit_apply(&d->cfg);
    /* State first, then the sockets: READY means both. */
    if ((r = ad_persist_restore(d)) < 0) {
        snprintf(err, errlen, "out of memory restoring the store");
        return r;
    }
    if ((r = start_events(d, err, errlen)) < 0)
        return r;
    sink.line = sink_line;
    sink.error = sink_error;
    sink.received = sink_received;
    sink.done = sink_done;
    sink.more = sink_more;
    sink.ctx = d;
    r = ad_listeners_start(loop, &d->cfg, &sink, take_fd, d, &d->listeners, err, errlen);
    if (r < 0) {
        d->listeners = NULL;
        return r;
    }
    if ((r = start_http(d, err, errlen)) < 0)
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
    if (ad_fdbudget_init(&d->fdb, nofile) < 0)
        ad_log_warn("cannot open a reserve descriptor (/dev/null): %s", strerror(errno));
    share_fdbudget(d);
    start_timers(d);
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
    status_line(d, status, sizeof(status));
    ad_sd_ready(status);
    return 0;
}

/* Stop, last step: the final checkpoint is written; close what is left. */
static void stop_finish(ad_daemon *d)
{
    ad_persist_close(d);
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

/* A periodic checkpoint was out when the trainer finished: the final one follows it. */
static void stop_after_checkpoint(ad_daemon *d)
{
    if (ad_persist_checkpoint(d, stop_finish) < 0)
        stop_finish(d); /* cannot happen (nothing is out now); do not hang */
}

/* Stop, second step: every training is back and installed; checkpoint everything. */
static void stop_trainer_closed(void *arg)
{
    ad_daemon *d = arg;

    if (ad_persist_busy(d)) {
        d->checkpoint_done = stop_after_checkpoint;
        return;
    }
    if (ad_persist_checkpoint(d, stop_finish) < 0)
        stop_finish(d);
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
        d->cur_proto = AD_PROTO_STATSD;
        d->recv_hr = uv_hrtime();
        d->recv_wall = ad_wall_now();
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
    } else {
        stop_trainer_closed(d);
    }
}

static int same_http(const ad_config *a, const ad_config *b)
{
    return a->http_enabled == b->http_enabled && !strcmp(a->http_address, b->http_address) &&
           a->http_port == b->http_port && a->http_max_body == b->http_max_body &&
           a->max_connections == b->max_connections;
}

static int same_events(const ad_config *a, const ad_config *b)
{
    return !strcmp(a->events_address, b->events_address) && a->events_port == b->events_port &&
           !strcmp(a->events_unix, b->events_unix) && !strcmp(a->events_file, b->events_file) &&
           a->events_buffer == b->events_buffer;
}

/* Series whose settings the new configuration changes start afresh (they are evicted
 * and come back with their next sample); those an ignore rule now matches go. */
static void reapply_rules(ad_daemon *d, const ad_config *nc)
{
    ad_series_iter it;
    ad_series *s;
    size_t changed = 0, ignored = 0;

    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(d->series, &it))) {
        const ad_detector_config *det;
        int ignore, rule = ad_config_match(nc, s->key, &det, &ignore);
        int shared = rule >= 0 && nc->rules[rule].shared;

        if (ignore) {
            evict(d, s);
            ignored++;
        } else if ((shared ? ad_fam_fingerprint(det) : ad_persist_fingerprint(det)) !=
                   s->fingerprint) {
            evict(d, s);
            changed++;
        } else {
            s->rule = rule;
        }
    }
    if (changed || ignored)
        ad_log_info("reload: %zu series start afresh with changed settings, %zu are now "
                    "ignored",
                    changed, ignored);
}

int ad_daemon_reload(ad_daemon *d)
{
    ad_config nc;
    char err[1024], status[256];
    int r, rc = 0;

    ad_sd_reloading("reloading the configuration");
    if (d->events)
        ad_events_reopen(d->events);
    if (!d->config_path[0]) {
        ad_log_info("reload: running on the built-in defaults, no file to read again");
        goto out_ready;
    }
    if (ad_config_load(d->config_path, &nc, err, sizeof(err)) < 0) {
        d->reload_failures++;
        ad_log_error("reload refused, the running configuration stays: %s", err);
        rc = -AD_EINVAL;
        goto out_ready;
    }
    /* What only a restart changes. The paths the file leaves to state_dir stay in the
     * running one (the new one may not even exist yet: it is created at start). */
    if (nc.store_enabled != d->cfg.store_enabled || strcmp(nc.store_path, d->cfg.store_path) ||
        strcmp(nc.state_dir, d->cfg.state_dir))
        ad_log_warn("reload: state_dir (with the paths that follow it) and store.enabled/path "
                    "take effect at the next restart");
    if (ad_config_set_state_dir(&nc, d->cfg.state_dir, err, sizeof(err)) < 0) {
        ad_config_free(&nc);
        d->reload_failures++;
        ad_log_error("reload refused, the running configuration stays: %s: %s (with the "
                     "running state_dir)",
                     d->config_path, err);
        rc = -AD_EINVAL;
        goto out_ready;
    }
    nc.store_enabled = d->cfg.store_enabled;
    memcpy(nc.store_path, d->cfg.store_path, sizeof(nc.store_path));

    ad_log_set_level(nc.log_level);
    if (d->listeners && ad_listeners_reconcile(d->listeners, &nc, err, sizeof(err)) < 0) {
        ad_log_error("reload: %s (the other listeners are as configured)", err);
        rc = -AD_EIO;
    }
    if (!same_http(&d->cfg, &nc)) {
        if (d->http) {
            ad_http_server_close(d->http, NULL, NULL);
            d->http = NULL;
        }
        d->cfg.http_enabled = nc.http_enabled;
        memcpy(d->cfg.http_address, nc.http_address, sizeof(nc.http_address));
        d->cfg.http_port = nc.http_port;
        d->cfg.http_max_body = nc.http_max_body;
        d->cfg.max_connections = nc.max_connections;
        if ((r = start_http(d, err, sizeof(err))) < 0) {
            ad_log_error("reload: http: %s (no HTTP API until fixed and reloaded)", err);
            rc = r;
        }
    }
    if (!same_events(&d->cfg, &nc)) {
        if (d->events) {
            ad_events_close(d->events, NULL, NULL);
            d->events = NULL;
        }
        if ((r = ad_events_start(d->loop, &nc, -1, &d->events, err, sizeof(err))) < 0) {
            d->events = NULL;
            ad_log_error("reload: events: %s (events go only to the log until fixed and "
                         "reloaded)",
                         err);
            rc = r;
        }
    }
    if (d->trainer)
    {
        ad_trainer_set_limits(d->trainer, nc.train_threads, nc.train_cpu_budget, nc.train_queue);
        ad_trainer_set_nice(d->trainer, nc.train_nice);
    }
    if (nc.weights != d->cfg.weights) {
        ad_series_iter it;
        ad_series *x;

        ad_fam_flush(d);
        ad_series_iter_start(&it);
        while ((x = ad_series_iter_next(d->series, &it)))
            ad_detector_set_weights(x->det, nc.weights);
        for (ad_fam *f = d->families; f; f = f->next)
            ad_net_set_storage(f->net, ad_fam_storage(nc.weights));
    }
    if (score_threads(&nc) != score_threads(&d->cfg)) {
        ad_fanout *f;

        if (ad_fanout_create(score_threads(&nc), &f) == 0) {
            ad_fanout_free(d->fanout);
            d->fanout = f;
        } /* else: out of memory, the running one stays */
    }
    ad_fdbudget_measure(&d->fdb, ad_fdlimit_apply(&nc));
    share_fdbudget(d);
    ad_series_table_set_max(d->series, nc.max_series);
    reapply_rules(d, &nc);
    ad_config_free(&d->cfg);
    d->cfg = nc;
    start_timers(d);
    d->reloads++;
    ad_log_info("reloaded %s", d->config_path);

out_ready:
    status_line(d, status, sizeof(status));
    ad_sd_ready(status);
    return rc;
}

void ad_daemon_free(ad_daemon *d)
{
    if (!d)
        return;
    ad_persist_close(d);
    ad_series_table_free(d->series);
    ad_fam_free_all(d); /* after the members, which use the families' networks */
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
