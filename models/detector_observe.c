/*
 * detector_observe.c - the per-sample path of a detector (detector.h): the checks, the
 * signals (network or warm-up prediction, seasonal-naive, raw error, range) and how they
 * make a score, an alert and the anomalous state, the history written, the network's
 * step (at once, deferred, or batched across a family), and prefetching the next sample.
 */
#include "detector_impl.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"

#define MAX_MAGNITUDE 1e30
#define WARM_MIN      16      /* values before the warm-up fallback scores */
#define RANGE_MIN     100     /* values seen before the range check speaks */
#define EXCL_HORIZON  1000.0f /* samples over which the excluded fraction is averaged */
#define NAIVE_RATE    0.01    /* warmup_naive: rate of the moving mean square of changes */
#define SEASONAL_TOL  0.01    /* seasonal: a reference lies within this many periods of
                                 its time */
#define SEASONAL_MAX  8       /* seasonal_periods at most */

/* Where the window rings will write next, for ad_detector_prefetch (after every change);
 * the seasonal scorer's only with seasonal set (after a sample it did not score, its slot
 * is where it was, and its lines, not prefetched then, are not read). */
void ad_det_note_slots(ad_detector *d, int seasonal)
{
    d->next_write[0] = ad_scorer_next_write(d->sc);
    d->next_write[1] = d->lsc ? ad_scorer_next_write(d->lsc) : NULL;
    if (seasonal)
        d->next_write[2] = d->ssc ? ad_scorer_next_write(d->ssc) : NULL;
}

/* The same, and where the step's weights are (after a load, an install, a change of
 * storage). */
void ad_det_note_prefetch(ad_detector *d)
{
    ad_det_note_slots(d, 1);
    d->net_bytes = d->net ? (uint32_t)ad_net_step_bytes(d->net) : 0;
    if (!d->shared_net) {
        const size_t n = d->net->pack ? d->net->pack_bytes : d->net->nparams * sizeof(float);
        d->weights = d->net->pack ? d->net->pack : (const void *)d->net->params;
        d->weight_bytes = (uint32_t)(n < AD_PREFETCH_WEIGHT_BYTES ? n : AD_PREFETCH_WEIGHT_BYTES);
    }
}

void ad_detector_prefetch_struct(const ad_detector *d)
{
    for (size_t o = 0; o < offsetof(struct ad_detector, block_bytes); o += LINE)
        __builtin_prefetch((const char *)d + o, 1);
}

void ad_detector_prefetch(const ad_detector *d)
{
    const ad_scorer *s[3] = {d->sc, d->lsc, d->seasonal_hit ? d->ssc : NULL};
    for (int i = 0; i < 3; i++) {
        if (!s[i])
            continue;
        for (uint32_t o = 0; o < d->hot_bytes[i]; o += LINE)
            __builtin_prefetch((const char *)s[i] + o, 1);
        if (d->next_write[i])
            __builtin_prefetch(d->next_write[i], 1);
    }
    const size_t nst = (size_t)d->st->layers * d->st->hidden * (d->st->has_c ? 2 : 1);
    for (size_t o = 0; o < nst * sizeof(float); o += LINE)
        __builtin_prefetch((const char *)d->st->h + o, 1);
    __builtin_prefetch(d->hv + d->hpos, 1);
    __builtin_prefetch(d->hf + d->hpos / 8, 1);
    if (d->hts)
        __builtin_prefetch(d->hts + d->hpos, 1);
    for (uint32_t o = 0; o < d->net_bytes; o += LINE)
        __builtin_prefetch((const char *)d->net + o, 0);
    for (uint32_t o = 0; o < d->weight_bytes; o += LINE)
        __builtin_prefetch((const char *)d->weights + o, 0);
}

static int refuse(ad_detector *d, int reason, ad_result *res)
{
    d->stats.refused[reason]++;
    res->refused = reason;
    return -AD_EINVAL;
}

static int training_due(const ad_detector *d)
{
    if (d->shared_net && d->trained)
        return 0; /* a joined member: its family trains (ad_detector_join) */
    if (!d->trained)
        return d->stats.samples >= (uint64_t)d->cfg.train_after && d->hn >= 2 * d->cfg.window;
    return d->cfg.train_every > 0 && d->since_train >= (uint64_t)d->cfg.train_every;
}

/* Prediction and error for v: from the network once trained, else the running mean. */
static void predict(const ad_detector *d, double v, double *pred, double *error, int *has)
{
    if (d->trained) {
        *has = d->has_pred;
        *pred = ad_norm_inverse(&d->cfg, (double)d->pred_norm, d->center, d->scale);
        *error = ad_norm_value(&d->cfg, v, d->center, d->scale) - (double)d->pred_norm;
        return;
    }
    /* a spread needs a few values: until then there is a prediction but no score */
    *has = d->w_n >= WARM_MIN;
    if (!*has) {
        *pred = !d->w_n ? NAN : d->cfg.warmup_naive ? d->nv_last : d->w_mean;
        *error = 0.0;
        return;
    }
    double sd = d->w_n > 1 ? sqrt(d->w_m2 / (double)(d->w_n - 1)) : 0.0;
    double floor = 1e-6 * fmax(1.0, fabs(d->w_mean));
    *pred = d->w_mean;
    if (d->cfg.warmup_naive) { /* the previous value, changes' moving RMS */
        *pred = d->nv_last;
        sd = sqrt(d->nv_ms);
    }
    *error = (v - *pred) / (sd > floor ? sd : floor);
    if (d->cfg.asinh)
        *error = asinh(*error);
}

/*
 * SEQ2SEQ: slides the value (as it came, clipped) into the window and, once the window
 * is full, reconstructs it: the newest value's reconstruction is the "prediction" its
 * error is measured against.
 */
void ad_det_s2s_push(ad_detector *d, double value, double ts, double prev_ts, int has_prev)
{
    const int D = d->D, L = d->cfg.s2s_window;
    memmove(d->win, d->win + D, (size_t)D * (L - 1) * sizeof(*d->win));
    ad_make_input(&d->cfg, d->center, d->scale, value, ts, prev_ts, has_prev, d->time_on,
                  d->win + (size_t)D * (L - 1));
    if (d->win_n < L)
        d->win_n++;
    d->has_pred = d->win_n == L;
    if (d->has_pred) {
        ad_s2s_score(d->s2s, d->s2sc, d->win, d->recon, NULL, NULL);
        d->pred_norm = d->recon[(size_t)D * (L - 1)];
    }
}

/*
 * Range check (range_tolerance > 0): a value beyond everything seen so far by more than
 * the tolerance times the seen range scores at least the threshold, growing with the
 * excess, whatever the network predicted (Numenta's "spatial anomaly"). The range then
 * takes the value in.
 */
/* Size of one block of the range check's sliding window. */
int ad_det_range_block(const ad_detector *d)
{
    int b = (d->cfg.range_window + RANGE_BLOCKS - 1) / RANGE_BLOCKS;
    return b > 0 ? b : 1;
}

/* The span of the full blocks held into rb_wmin, rb_wmax (after a block joins, a load). */
void ad_det_range_blocks_span(ad_detector *d)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < d->rb_n; i++) {
        lo = d->rb_min[i] < lo ? d->rb_min[i] : lo;
        hi = d->rb_max[i] > hi ? d->rb_max[i] : hi;
    }
    d->rb_wmin = lo;
    d->rb_wmax = hi;
}

/* range_window > 0: the range of the last ~range_window values into vmin, vmax. */
static void range_window_span(ad_detector *d)
{
    double lo = d->rb_wmin, hi = d->rb_wmax;
    if (d->rb_fill > 0) {
        lo = d->rb_cmin < lo ? d->rb_cmin : lo;
        hi = d->rb_cmax > hi ? d->rb_cmax : hi;
    }
    if (lo <= hi) {
        d->vmin = lo;
        d->vmax = hi;
    }
}

/* range_window > 0: v into the block being filled; a full block joins the ring. */
static void range_window_push(ad_detector *d, double v)
{
    if (d->rb_fill == 0 || v < d->rb_cmin)
        d->rb_cmin = v;
    if (d->rb_fill == 0 || v > d->rb_cmax)
        d->rb_cmax = v;
    if (++d->rb_fill < ad_det_range_block(d))
        return;
    d->rb_min[d->rb_pos] = d->rb_cmin;
    d->rb_max[d->rb_pos] = d->rb_cmax;
    d->rb_pos = (d->rb_pos + 1) % (RANGE_BLOCKS - 1);
    if (d->rb_n < RANGE_BLOCKS - 1)
        d->rb_n++;
    d->rb_fill = 0;
    ad_det_range_blocks_span(d);
}

static float range_check(ad_detector *d, double v, float raw)
{
    const float tol = d->cfg.range_tolerance;
    if (d->cfg.range_window > 0)
        range_window_span(d);
    if (tol > 0.0f && d->stats.samples >= RANGE_MIN) {
        double span = d->vmax - d->vmin, lim = tol * span;
        double excess = v > d->vmax + lim ? v - d->vmax : v < d->vmin - lim ? d->vmin - v : 0.0;
        if (excess > 0.0 && span > 0.0) {
            float r = (float)(0.5 * (1.0 + excess / (excess + span)));
            float thr = d->cfg.scorer.threshold;
            r = thr + (1.0f - thr) * (2.0f * r - 1.0f); /* at least the threshold */
            raw = r > raw ? r : raw;
        }
    }
    if (d->stats.samples == 0 || v > d->vmax)
        d->vmax = v;
    if (d->stats.samples == 0 || v < d->vmin)
        d->vmin = v;
    if (d->cfg.range_window > 0)
        range_window_push(d, v);
    return raw;
}

/*
 * Seasonal-naive reference for a value at ts: the median of the history values (flagged
 * ones replaced by their prediction) at ts - j * seasonal_period, j = 1..seasonal_periods,
 * those found within SEASONAL_TOL periods. 0 if none is held.
 */
static int seasonal_ref(const ad_detector *d, double ts, double *ref)
{
    const double P = d->cfg.seasonal_period;
    double r[SEASONAL_MAX];
    int n = 0;
    for (int j = 1; j <= d->cfg.seasonal_periods; j++) {
        double v;
        if (ad_det_hist_at(d, ts - j * P, SEASONAL_TOL * P, &v)) {
            int i = n++; /* insertion sort */
            for (; i > 0 && r[i - 1] > v; i--)
                r[i] = r[i - 1];
            r[i] = v;
        }
    }
    if (n == 0)
        return 0;
    *ref = n % 2 ? r[n / 2] : 0.5 * (r[n / 2 - 1] + r[n / 2]);
    return 1;
}

/* The seasonal signal's raw score for value at ts (once trained; -1: no reference),
 * weighted: its odds s / (1 - s) times seasonal_weight. */
static float seasonal_score(ad_detector *d, double ts, double value)
{
    const ad_detector_config *c = &d->cfg;
    double ref;
    d->seasonal_hit = d->ssc && d->trained && seasonal_ref(d, ts, &ref);
    if (!d->seasonal_hit)
        return -1.0f;
    double e = ad_norm_value(c, value, d->center, d->scale) -
               ad_norm_value(c, ref, d->center, d->scale);
    double s = ad_scorer_score(d->ssc, (float)e), w = c->seasonal_weight;
    if (w < 1.0 && s < 1.0)
        s = w * s / (1.0 - s + w * s);
    return (float)s;
}

/* raw_k: takes e (clipped to +-RAW_KEEP) into the moving mean *m; returns |*m|. */
float ad_det_raw_mean(float *m, float e)
{
    const float x = e < -RAW_KEEP ? -RAW_KEEP : e > RAW_KEEP ? RAW_KEEP : e;
    *m += RAW_RATE * (x - *m);
    return fabsf(*m);
}

/* The network's input for the pending step (ad_detector_observe_defer). */
static void pending_input(const ad_detector *d, float *x)
{
    ad_make_input(&d->cfg, d->center, d->scale, d->pend_value, d->last_ts, d->pend_prev_ts,
                  d->pend_has_prev, d->time_on, x);
}

/* Runs the pending step, if any, on its own: what ad_detector_observe would have done. */
void ad_det_settle(ad_detector *d)
{
    float x[AD_MAX_INPUT], y;

    if (!d->pend)
        return;
    pending_input(d, x);
    ad_net_step(d->net, d->st, x, &y);
    d->pred_norm = y;
    d->has_pred = 1;
    d->pend = 0;
}

/* The raw score of value at ts from every signal: the network's (or the warm-up
 * fallback's) error through the scorer and the long window, the seasonal-naive error (its
 * raw score in *sraw, -1 when it had no reference), the alert penalty on those, the raw
 * error (raw_k), and the range check last. */
static float raw_score(ad_detector *d, double ts, double value, double error, int has_pred,
                       float *sraw)
{
    const ad_detector_config *c = &d->cfg;
    float raw = has_pred ? ad_scorer_score(d->sc, (float)error) : 0.0f;

    if (has_pred && d->lsc) { /* long_window: the larger of the two */
        float lraw = ad_scorer_score(d->lsc, (float)error);
        raw = lraw > raw ? lraw : raw;
    }
    /* raw_k: a series the network predicts well also has its raw error scored against
     * the network's own validation errors: a = |moving mean of the signed errors| (a
     * wrong continuation errs the same way for several steps, the noise does not),
     * a / (a + raw_q), 0.5 at raw_q */
    float rsig = 0.0f;
    if (d->raw_q > 0.0f && has_pred) {
        const float a = ad_det_raw_mean(&d->raw_mean, (float)error);
        rsig = a / (a + d->raw_q);
    }
    /* the seasonal-naive signal: the larger of the two raw scores */
    *sraw = seasonal_score(d, ts, value);
    if (has_pred && *sraw > raw)
        raw = *sraw;
    /* alert_penalty: the odds lose alert_penalty / 5 per recent alert. The likelihood's
     * Gaussian tail is what a bursty series' normal bursts fool, again and again; the raw
     * signal is scaled by the network's own validation errors, so it is not penalised */
    if (c->alert_penalty > 0.0f && d->trained && raw < 1.0f) {
        double odds = raw / (1.0 - raw) -
                      c->alert_penalty / 5.0 * d->alert_rate * (double)c->alert_horizon;
        raw = odds > 0.0 ? (float)(odds / (1.0 + odds)) : 0.0f;
    }
    raw = rsig > raw ? rsig : raw;
    return range_check(d, value, raw);
}

/* The warm-up fallback's statistics take a value in: Welford's running mean and
 * variance; warmup_naive's last value and moving mean square of changes. */
static void warmup_push(ad_detector *d, double value)
{
    if (d->w_n == 0) {
        d->nv_ms = 0.0;
    } else {
        double ch = value - d->nv_last, rate = 1.0 / (double)(d->w_n + 1);
        rate = rate > NAIVE_RATE ? rate : NAIVE_RATE;
        d->nv_ms += (ch * ch - d->nv_ms) * rate;
    }
    d->nv_last = value;
    d->w_n++;
    double delta = value - d->w_mean;
    d->w_mean += delta / (double)d->w_n;
    d->w_m2 += delta * (value - d->w_mean);
}

/* The history takes the value kept for training, its flag and its time. */
static void history_push(ad_detector *d, double kept, int anomalous, double ts)
{
    d->hv[d->hpos] = (float)kept;
    if (anomalous)
        d->hf[d->hpos >> 3] |= (uint8_t)(1u << (d->hpos & 7));
    else
        d->hf[d->hpos >> 3] &= (uint8_t)~(1u << (d->hpos & 7));
    if (d->hts)
        ad_det_hts_put(d, ts);
    d->hpos = d->hpos + 1 == d->hcap ? 0 : d->hpos + 1;
    if (d->hn < d->hcap)
        d->hn++;
}

/* Moves the values' mean on (always: departure reads it too); with incident_z, opens an
 * incident at a hit when none is open,
 * closes it once the hits have stopped (short_window samples) and the mean is back within
 * incident_z spreads of the reference. Whether an incident is open. */
static int incident(ad_detector *d, double value, int hit)
{
    const ad_detector_config *c = &d->cfg;
    const uint64_t sw = (uint64_t)c->scorer.short_window;
    /* at least 1: short_window is bounded for the likelihood scorer only */
    const double span = sw > 1 ? (double)sw : 1.0;

    d->inc_mean = d->stats.samples ? d->inc_mean + (value - d->inc_mean) / span : value;
    if (!(c->incident_z > 0.0f))
        return 0;
    if (hit && !d->incident)
        ad_det_incident_open(d);
    if (d->incident && d->since_hit >= sw &&
        fabs(d->inc_mean - d->inc_center) < c->incident_z * d->inc_spread)
        d->incident = 0;
    return d->incident;
}

/* departure: the values' moving mean is further from the departure reference than
 * `departure` times the distance it kept within over the reference's values. */
static int departed(const ad_detector *d)
{
    return d->cfg.departure > 0.0f && d->dep_scale > 0.0 &&
           fabs(d->inc_mean - d->dep_center) > (double)d->cfg.departure * d->dep_scale;
}

/* Why (ts, value) is refused (enum ad_refusal), or -1 when it is accepted. */
static int refusal(const ad_detector *d, double ts, double value)
{
    if (isnan(value))
        return AD_REFUSE_NAN;
    if (isinf(value))
        return AD_REFUSE_INF;
    if (fabs(value) > MAX_MAGNITUDE)
        return AD_REFUSE_RANGE;
    if (!isfinite(ts))
        return AD_REFUSE_BADTIME;
    if (d->has_ts && ts < d->last_ts)
        return AD_REFUSE_BACKWARDS;
    return -1;
}

/* ad_detector_observe; with defer the network's step is left pending. Returns 1 when a
 * step was left pending, 0 when none, -AD_EINVAL when refused. */
static int observe(ad_detector *d, double ts, double value, ad_result *res, int defer)
{
    const ad_detector_config *c = &d->cfg;
    double pred, error;
    int has_pred, pending = 0;
    float x[AD_MAX_INPUT], y, sraw;
    const int why = refusal(d, ts, value);

    if (why >= 0)
        return refuse(d, why, res);
    ad_det_settle(d); /* the previous value's step comes first */

    if (d->s2s && d->trained)
        ad_det_s2s_push(d, value, ts, d->last_ts, d->has_ts);
    predict(d, value, &pred, &error, &has_pred);
    const float raw = raw_score(d, ts, value, error, has_pred, &sraw);
    int anomalous = has_pred && raw >= c->scorer.threshold;
    /* alerts: within `cooldown` samples of the last one the score is damped, rising
     * linearly back to the raw score, so one incident raises one alert */
    float score = raw;
    if (c->cooldown > 0 && d->since_alert < (uint64_t)c->cooldown)
        score = raw * (float)d->since_alert / (float)c->cooldown;
    int flagged = has_pred && score >= c->scorer.threshold;
    d->since_alert = flagged ? 0 : d->since_alert + 1;
    d->alert_rate += ((double)flagged - d->alert_rate) / (double)c->alert_horizon;
    d->flag_run = anomalous ? d->flag_run + 1 : 0;
    d->since_hit = anomalous ? 0 : d->since_hit + 1;
    const int open = incident(d, value, anomalous);
    int state = has_pred && (d->since_hit < (uint64_t)c->scorer.short_window || open ||
                             departed(d));
    /* excluded: kept out of statistics, training and the rolling state */
    int excluded = anomalous && (c->relearn == 0 || d->flag_run <= c->relearn) &&
                   d->excl_rate < c->max_exclude;
    d->excl_rate += ((float)excluded - d->excl_rate) * (1.0f / EXCL_HORIZON);
    if (has_pred)
        ad_scorer_commit(d->sc, excluded);
    if (has_pred && d->lsc)
        ad_scorer_commit(d->lsc, excluded);
    if (sraw >= 0.0f)
        ad_scorer_commit(d->ssc, excluded);
    if (!excluded)
        warmup_push(d, value);
    history_push(d, excluded ? pred : value, anomalous, ts);

    /* step the network on the value as it came (clipped), predicting t+1; feeding it its
     * own predictions instead would let it drift in closed loop through long runs */
    if (d->trained && !d->s2s && defer) {
        d->pend = 1;
        d->pend_value = value;
        d->pend_prev_ts = d->last_ts;
        d->pend_has_prev = (uint8_t)d->has_ts;
        pending = 1;
    } else if (d->trained && !d->s2s) {
        ad_make_input(c, d->center, d->scale, value, ts, d->last_ts, d->has_ts, d->time_on, x);
        ad_net_step(d->net, d->st, x, &y);
        d->pred_norm = y;
        d->has_pred = 1;
    }
    d->last_ts = ts;
    d->has_ts = 1;
    d->stats.samples++;
    d->stats.flagged += (uint64_t)flagged;
    d->since_train++;

    ad_det_note_slots(d, sraw >= 0.0f);
    memset(res, 0, sizeof(*res)); /* the padding too: results compare bytewise (tests) */
    res->value = value;
    res->predicted = pred;
    res->error = error;
    res->score = score;
    res->raw_score = raw;
    res->flagged = flagged;
    res->hit = anomalous;
    res->anomalous = state;
    res->warming_up = !d->trained;
    res->train_due = training_due(d);
    res->refused = -1;
    return pending;
}

int ad_detector_observe(ad_detector *d, double ts, double value, ad_result *res)
{
    return observe(d, ts, value, res, 0);
}

int ad_detector_observe_defer(ad_detector *d, double ts, double value, ad_result *res)
{
    return observe(d, ts, value, res, 1);
}

int ad_detector_pending(const ad_detector *d)
{
    return d->pend;
}

void ad_detector_batch_free(ad_detector_batch *b)
{
    ad_net_batch_free(&b->net);
    free(b->st);
    free(b->ds);
    free(b->x);
    free(b->y);
    memset(b, 0, sizeof(*b));
}

/* Room for n streams of input size D in b; 0, or -AD_ENOMEM (b still usable). */
static int batch_reserve(ad_detector_batch *b, int n, int D)
{
    ad_state **st;
    ad_detector **ds;
    float *x, *y;

    if (n <= b->cap && D <= b->dmax)
        return 0;
    if (n < b->cap)
        n = b->cap;
    if (D < b->dmax)
        D = b->dmax;
    b->cap = 0; /* until every array has the new size */
    st = realloc(b->st, (size_t)n * sizeof(*st));
    if (!st)
        return -AD_ENOMEM;
    b->st = st;
    ds = realloc(b->ds, (size_t)n * sizeof(*ds));
    if (!ds)
        return -AD_ENOMEM;
    b->ds = ds;
    x = realloc(b->x, (size_t)n * D * sizeof(*x));
    if (!x)
        return -AD_ENOMEM;
    b->x = x;
    y = realloc(b->y, (size_t)n * sizeof(*y));
    if (!y)
        return -AD_ENOMEM;
    b->y = y;
    b->cap = n;
    b->dmax = D;
    return 0;
}

void ad_detector_step_batch(ad_detector *const *ds, int n, ad_detector_batch *b)
{
    const ad_net *net = NULL;
    int m = 0, D = 0;

    for (int i = 0; i < n; i++) { /* the first pending detector's network is the batch's */
        if (ds[i]->pend) {
            net = ds[i]->net;
            D = ds[i]->D;
            break;
        }
    }
    if (!net)
        return;
    if (batch_reserve(b, n, D) < 0) { /* no room: one by one, nothing is lost */
        for (int i = 0; i < n; i++)
            ad_det_settle(ds[i]);
        return;
    }
    for (int i = 0; i < n; i++) {
        ad_detector *d = ds[i];

        if (!d->pend)
            continue; /* stepped already (listed twice, or run since) */
        if (d->net != net) {
            ad_det_settle(d); /* another network's: on its own */
            continue;
        }
        pending_input(d, b->x + (size_t)D * m);
        b->st[m] = d->st;
        b->ds[m++] = d;
        d->pend = 0;
    }
    ad_net_step_batch(net, b->st, b->x, b->y, m, &b->net);
    for (int k = 0; k < m; k++) {
        b->ds[k]->pred_norm = b->y[k];
        b->ds[k]->has_pred = 1;
    }
}
