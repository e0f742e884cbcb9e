/*
 * daemon_batch.c - the daemon's scoring pipeline: samples queued in batches, each
 * sample's series found or created, the detectors run (on the loop thread and the score
 * helper), and what each result does beyond its series: counters, anomalies and events,
 * latency, training.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "daemon.h"
#include "daemon_impl.h"
#include "fingerprint.h"
#include "log.h"

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
        d->st.ignored++;
        return NULL;
    }
    if (!strncmp(key, AD_FAMILY_PREFIX, strlen(AD_FAMILY_PREFIX))) {
        d->st.series_failed++; /* the store's names for families */
        return NULL;
    }
    if (rule >= 0 && d->cfg.rules[rule].shared && !(fam = ad_fam_get(&d->fams, rule))) {
        d->st.series_failed++;
        return NULL;
    }
    r = ad_series_table_add(d->series, key, len, d->cfg.recent, &s);
    if (r == -AD_EFULL) {
        double now = ad_wall_now();

        d->st.series_refused++;
        if (now - d->last_full_warn >= AD_WARN_EVERY) {
            ad_log_warn("max_series (%zu) reached: new series are refused (%s, counted in "
                        "anomalyd_series_refused_total)",
                        ad_series_table_max(d->series), key);
            d->last_full_warn = now;
        }
        return NULL;
    }
    if (r < 0) {
        d->st.series_failed++;
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
        d->st.series_failed++;
        return NULL;
    }
    if (d->cfg.weights != AD_W_F32)
        ad_detector_set_weights(s->det, d->cfg.weights); /* out of memory: it steps in fp32 */
    s->rule = rule;
    s->proto = proto;
    s->created = ad_wall_now();
    s->family = fam;
    s->fingerprint = ad_fingerprint(det, fam != NULL);
    if (fam)
        fam->members++;
    d->st.series_created++;
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

int ad_daemon_score_threads(const ad_config *c)
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
    d->st.lat_hist[i]++;
    d->st.lat_sum += sec;
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

    if (b->rc < 0) { /* refused: the detector says why (and counts it too) */
        if (r->refused >= 0 && r->refused < AD_REFUSE_NREASONS)
            d->st.refused[r->refused]++;
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
        d->st.anomalies_total++;
        remember_anomaly(d, s, r, ts);
        if (d->events)
            ad_events_publish(d->events, &e);
        else
            ad_log_info("anomaly (no event sinks) series=%s value=%g score=%.3f", s->key,
                        r->value, (double)r->score);
    }
    record_latency(d, sec);
    if (s->family)
        ad_fam_observed(&d->fams, s, r);
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

            d->st.samples[b->proto]++;
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
    d->st.scored[0] += (uint64_t)bt->scored[0];
    d->st.scored[1] += (uint64_t)bt->scored[1];
    for (int i = 0; i < bt->n; i++) /* 3: the results */
        if (bt->v[i].s)
            take_result(d, &bt->v[i], sec);
    bt->n = 0;
    bt->keys_used = 0;
    ad_fam_flush(&d->fams); /* the family members' deferred steps, one product per family */
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
