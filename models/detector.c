/*
 * detector.c - one stream's detector (detector.h): observe, the snapshot/train/install
 * split of retraining, and the detector blob.
 */
#include "detector.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "half.h"
#include "inputs.h"
#include "seq2seq.h"
#include "optim.h"
#include "serial.h"
#include "train.h"

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

#define DET_MAGIC     "ADDT"
#define DET_VERSION   8 /* 8: feature_span, raw_k, raw_rms (AD_DETECTOR_V_RAW); whether
                             the time features are fed (time_on), the raw signal's scale
                             (raw_q); 7: forget_bias at the config's end; 6: the anomalous
                             state (since_hit); 5: compact history (fixed-point timestamps,
                             flag bits) */
#define DET_VERSION_OLDEST 4 /* 4: timestamps as doubles, flags as bytes: still loaded */
#define MAX_MAGNITUDE 1e30
#define WARM_MIN      16      /* values before the warm-up fallback scores */
#define RANGE_MIN     100     /* values seen before the range check speaks */
#define EXCL_HORIZON  1000.0f /* samples over which the excluded fraction is averaged */
#define RANGE_BLOCKS  16      /* blocks of the range check's sliding window */
#define NAIVE_RATE    0.01    /* warmup_naive: rate of the moving mean square of changes */
#define SEASONAL_TOL  0.01    /* seasonal: a reference lies within this many periods of
                                 its time */
#define SEASONAL_MAX  8       /* seasonal_periods at most */
#define ALERT_HORIZON 2000.0  /* alert_penalty: samples over which alerts are counted */
#define RAW_MEAN      3       /* raw_k: the raw signal scores the mean of this many |errors| */
#define RAW_KEEP      65504.0f /* |errors| kept for it are clipped to the largest half */
#define RAW_MIN_VAL   250     /* raw_k: validation values needed to trust their largest
                                 error (a short tail misses the phases where the network
                                 errs most: a history of 256 holds 51) */

/*
 * Layout: one allocation (detector_new), cache-line aligned, carved in this order:
 *   struct ad_detector      what every observe reads first, then the configuration, then
 *                           what training, the range check and the blob read;
 *   scorers sc, lsc, ssc    each one block (scorer.h): its hot fields and short ring,
 *                           then its window ring;
 *   state                   the network's rolling h (and c) (layers, H);
 *   hv                      (hcap) history values;
 *   hts                     (hcap) history timestamps, if kept (below);
 *   hf                      (hcap bits) history flags.
 * The network (own, or a family's) and the SEQ2SEQ parts are separate allocations.
 *
 * History timestamps are fixed-point: ts = hts_base + hts[k] * 2^-hts_shift, 32-bit
 * unsigned offsets from the base in units of 2^-hts_shift seconds, the shift the largest
 * (at most 30) that leaves the span held at most a quarter of the range; rebased (base
 * to the oldest held sample, shift re-chosen, every entry re-encoded) when a sample
 * falls outside the range, or the span held has shrunk so that the units could be 16
 * times finer (hts_put). Whole seconds are exact while the span held is under 2^30 s
 * (34 years); fractions are exact to 2^-shift s (about span / 2^30; a nanosecond
 * at most, 2^-22 s for a day's span).
 */
struct ad_detector {
    /* hot: read by every observe, in the order it reads them */
    ad_scorer *sc;
    ad_scorer *lsc; /* long_window > 0 (likelihood): the same errors, averaged longer */
    ad_scorer *ssc; /* seasonal_period > 0: the seasonal-naive error's scorer */
    ad_net *net;
    ad_state *st;   /* &st_mem, its h and c in the block */
    /* history ring, chronological from (pos - n): training values (flagged ones replaced
     * by their prediction), flags (bits), and timestamps when features need them */
    float *hv;
    uint32_t *hts;  /* fixed-point offsets (above), or NULL */
    uint8_t *hf;    /* (hcap bits) */
    int hcap, hn, hpos;
    int hts_shift;
    double hts_base;
    /* the network's prediction for the next value, in normalised units */
    float pred_norm;
    int has_pred;
    /* a deferred step (ad_detector_observe_defer): the value it steps on and the
     * previous sample's time (the step's inputs with last_ts), not yet run */
    double pend_value, pend_prev_ts;
    uint8_t pend, pend_has_prev;
    uint8_t seasonal_hit; /* the last observe found a seasonal reference (so the next one
                             likely will: ad_detector_prefetch fetches ssc only then) */
    uint8_t time_on;      /* the time features are fed (feature_span, decided at the last
                             training; 1 before it and for a family member) */
    int trained;
    int shared_net; /* net is a family's (ad_detector_create_member): not owned, not saved */
    uint16_t raw_prev[RAW_MEAN - 1]; /* raw_k: the previous |errors|, newest first (fp16) */
    /* normaliser (from the last training) */
    double center, scale;
    double last_ts;
    int has_ts;
    int flag_run;
    uint64_t since_train;
    uint64_t since_alert; /* samples since the last alert */
    uint64_t since_hit;   /* samples since the last hit (raw score at the threshold): the
                             anomalous state (ad_result) */
    double alert_rate;    /* moving average of the alert indicator (ALERT_HORIZON) */
    float excl_rate;      /* moving average of the excluded indicator (EXCL_HORIZON) */
    int D;                /* network input size */
    /* warm-up fallback: running mean and variance of accepted values (Welford); with
     * warmup_naive the last accepted value and the moving mean square of changes */
    double w_mean, w_m2;
    uint64_t w_n;
    double nv_last, nv_ms;
    double vmin, vmax;    /* range of the values seen (range check) */
    /* ad_detector_prefetch: the lines of the scorers' blocks a sample reads first, and
     * where each window ring's next write is (noted after every change) */
    uint32_t hot_bytes[3];
    float raw_q;           /* > 0: the raw error signal's scale (raw_k times the largest
                              validation error at the last training; 0: off, see raw_rms) */
    const void *next_write[3];
    const void *weights;   /* the network's step weights (packed block or floats), their */
    uint32_t weight_bytes; /* bytes of them to prefetch (own network only: 0 for a family), */
    uint32_t net_bytes;    /* the leading bytes of the network's struct a step reads */
    ad_detector_config cfg;
    /* range_window > 0: the min and max of the last RANGE_BLOCKS - 1 full blocks of
     * range_window / RANGE_BLOCKS values (a ring, rb_n held, next at rb_pos; the ring
     * itself is cold, below), their span (rb_wmin, rb_wmax: +-INFINITY while none is
     * held), and the min and max of the block being filled (rb_fill values) */
    double rb_wmin, rb_wmax;
    double rb_cmin, rb_cmax;
    int rb_n, rb_pos, rb_fill;
    int win_n;       /* SEQ2SEQ: inputs in the window (below; here, where it packs) */
    ad_detector_stats stats;
    ad_state st_mem;
    /* SEQ2SEQ: the model, its one-window scorer, the window of the last L inputs
     * (D, L) oldest first with win_n (above) of them filled, and the reconstruction
     * buffer */
    ad_s2s *s2s;
    ad_s2s_scorer *s2sc;
    float *win, *recon;
    /* cold: not read by a sample's observe (ad_detector_prefetch_struct stops here) */
    size_t block_bytes; /* of the one allocation */
    double rb_min[RANGE_BLOCKS], rb_max[RANGE_BLOCKS];
};

struct ad_train_job {
    ad_detector_config cfg;
    int D, n;
    float *values; /* (n) chronological */
    double *ts;    /* (n) or NULL */
    ad_net *net;   /* starts as the detector's network (or fresh), ends trained */
    ad_s2s *s2s;   /* SEQ2SEQ: the same for the encoder-decoder (net is then unused) */
    double center, scale;
    int time_on; /* the history spans feature_span: the time features are fed */
    float raw_q; /* raw_k times the largest |error| on the validation tail, when the series
                    qualifies (raw_rms), else 0 */
    float val_max, val_rms; /* the trained network's |errors| on the validation tail */
    int robust;  /* the normaliser's scale is the MAD's */
    int ran, epochs;
    float train_loss, val_loss;
};

static const char *const refusal_names[AD_REFUSE_NREASONS] = {"nan", "inf", "out_of_range",
                                                              "time_backwards", "bad_timestamp"};

const char *ad_refusal_name(int reason)
{
    return reason >= 0 && reason < AD_REFUSE_NREASONS ? refusal_names[reason] : NULL;
}

#define LINE 64 /* cache line: the block's parts start on one */

static size_t line_up(size_t n)
{
    return (n + LINE - 1) / LINE * LINE;
}

/* The long window scorer's configuration: the main one averaging long_window errors. */
static ad_scorer_config long_config(const ad_detector_config *c)
{
    ad_scorer_config lc = c->scorer;
    lc.short_window = c->long_window;
    return lc;
}

/* Where the window rings will write next, for ad_detector_prefetch (after every change);
 * the seasonal scorer's only with seasonal set (after a sample it did not score, its slot
 * is where it was, and its lines, not prefetched then, are not read). */
static void note_slots(ad_detector *d, int seasonal)
{
    d->next_write[0] = ad_scorer_next_write(d->sc);
    d->next_write[1] = d->lsc ? ad_scorer_next_write(d->lsc) : NULL;
    if (seasonal)
        d->next_write[2] = d->ssc ? ad_scorer_next_write(d->ssc) : NULL;
}

/* The same, and where the step's weights are (after a load, an install, a change of
 * storage). */
static void note_prefetch(ad_detector *d)
{
    note_slots(d, 1);
    d->net_bytes = d->net ? (uint32_t)ad_net_step_bytes(d->net) : 0;
    if (!d->shared_net) {
        const size_t n = d->net->pack ? d->net->pack_bytes : d->net->nparams * sizeof(float);
        d->weights = d->net->pack ? d->net->pack : (const void *)d->net->params;
        d->weight_bytes = (uint32_t)(n < AD_PREFETCH_WEIGHT_BYTES ? n : AD_PREFETCH_WEIGHT_BYTES);
    }
}

static void range_blocks_span(ad_detector *d);

/* A detector with its own network, or (shared != NULL) using a family's. */
static int detector_new(const ad_detector_config *c, ad_net *shared, ad_detector **out, char *err,
                        size_t errlen)
{
    int rc = ad_detector_config_check(c, err, errlen);
    const int has_lsc = c->long_window > 0 && c->scorer.kind == AD_SCORER_LIKELIHOOD;
    const int need_ts = c->features || c->seasonal_period > 0;
    const ad_scorer_config lc = long_config(c);
    ad_detector *d;

    *out = NULL;
    if (rc)
        return rc;
    const int D = ad_detector_input_size(c->features);
    const size_t nstate = (size_t)c->layers * c->hidden * (ad_cell_has_c(c->kind) ? 2 : 1);
    const size_t hcap = (size_t)c->history;
    const size_t sz_d = line_up(sizeof(*d)), sz_sc = ad_scorer_size(&c->scorer),
                 sz_lsc = has_lsc ? ad_scorer_size(&lc) : 0,
                 sz_ssc = c->seasonal_period > 0 ? sz_sc : 0,
                 sz_st = line_up(nstate * sizeof(float)), sz_hv = line_up(hcap * sizeof(float)),
                 sz_hts = need_ts ? line_up(hcap * sizeof(uint32_t)) : 0,
                 sz_hf = line_up((hcap + 7) / 8);
    const size_t total = sz_d + sz_sc + sz_lsc + sz_ssc + sz_st + sz_hv + sz_hts + sz_hf;
    char *p = aligned_alloc(LINE, total);
    if (!p)
        goto out_nomem;
    memset(p, 0, total);
    d = (ad_detector *)(void *)p;
    d->block_bytes = total;
    p += sz_d;
    d->cfg = *c;
    d->D = D;
    range_blocks_span(d);
    ad_scorer_init(p, &c->scorer, &d->sc, NULL, 0);
    d->hot_bytes[0] = (uint32_t)ad_scorer_hot_bytes(&c->scorer);
    p += sz_sc;
    if (has_lsc) {
        ad_scorer_init(p, &lc, &d->lsc, NULL, 0);
        d->hot_bytes[1] = (uint32_t)ad_scorer_hot_bytes(&lc);
        p += sz_lsc;
    }
    if (sz_ssc) {
        ad_scorer_init(p, &c->scorer, &d->ssc, NULL, 0);
        d->hot_bytes[2] = d->hot_bytes[0];
        p += sz_ssc;
    }
    d->st = &d->st_mem;
    d->st->layers = c->layers;
    d->st->hidden = c->hidden;
    d->st->has_c = ad_cell_has_c(c->kind);
    d->st->h = (float *)(void *)p;
    d->st->c = d->st->has_c ? d->st->h + (size_t)c->layers * c->hidden : NULL;
    p += sz_st;
    d->hv = (float *)(void *)p;
    p += sz_hv;
    if (need_ts)
        d->hts = (uint32_t *)(void *)p;
    p += sz_hts;
    d->hf = (uint8_t *)p;
    d->hcap = c->history;
    d->hts_shift = 30;
    d->scale = 1.0;
    d->since_alert = UINT64_MAX / 2;
    d->since_hit = UINT64_MAX / 2;
    d->time_on = 1;

    ad_net_config nc = {c->kind, c->layers, D, c->hidden, 1};
    if (shared) {
        if (c->model != AD_MODEL_PREDICT || memcmp(&shared->cfg, &nc, sizeof(nc)) != 0) {
            ERR("a family member must predict with a network of the family's shape");
            free(d);
            return -AD_EINVAL;
        }
        d->net = shared;
        d->shared_net = 1;
    } else {
        rc = ad_net_create(&nc, c->seed, &d->net, err, errlen);
        if (rc)
            goto out_free;
        ad_net_set_forget_bias(d->net, c->forget_bias);
    }
    if (c->model == AD_MODEL_SEQ2SEQ) {
        ad_s2s_config sc = {c->kind, c->layers, D, c->hidden, c->s2s_window};
        rc = ad_s2s_create(&sc, c->seed, &d->s2s, err, errlen);
        if (!rc) {
            ad_net_set_forget_bias(&d->s2s->enc, c->forget_bias);
            ad_net_set_forget_bias(&d->s2s->dec, c->forget_bias);
        }
        if (!rc)
            rc = ad_s2s_scorer_create(d->s2s, &d->s2sc, err, errlen);
        if (rc)
            goto out_free;
        d->win = calloc((size_t)D * c->s2s_window, sizeof(*d->win));
        d->recon = calloc((size_t)D * c->s2s_window, sizeof(*d->recon));
        if (!d->win || !d->recon) {
            rc = -AD_ENOMEM;
            ERR("out of memory for a detector");
            goto out_free;
        }
    }
    note_prefetch(d);
    *out = d;
    return 0;

out_free:
    ad_detector_free(d);
    return rc;
out_nomem:
    ERR("out of memory for a detector");
    return -AD_ENOMEM;
}

int ad_detector_create(const ad_detector_config *c, ad_detector **out, char *err, size_t errlen)
{
    return detector_new(c, NULL, out, err, errlen);
}

int ad_detector_create_member(const ad_detector_config *c, ad_net *net, ad_detector **out,
                              char *err, size_t errlen)
{
    if (!net) {
        ERR("a family member needs its family's network");
        *out = NULL;
        return -AD_EINVAL;
    }
    return detector_new(c, net, out, err, errlen);
}

void ad_detector_free(ad_detector *d)
{
    if (!d)
        return;
    if (!d->shared_net)
        ad_net_free(d->net);
    ad_s2s_scorer_free(d->s2sc);
    ad_s2s_free(d->s2s);
    free(d->win);
    free(d->recon);
    free(d); /* the block: scorers, state and history with it */
}

size_t ad_detector_bytes(const ad_detector *d)
{
    size_t s2s = 0;
    if (d->s2s)
        s2s = ad_s2s_bytes(d->s2s) + ad_s2s_scorer_bytes(d->s2sc) +
              2 * (size_t)d->D * d->cfg.s2s_window * sizeof(float);
    return d->block_bytes + s2s + (d->shared_net ? 0 : ad_net_bytes(d->net));
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

const ad_detector_config *ad_detector_get_config(const ad_detector *d)
{
    return &d->cfg;
}

const ad_detector_stats *ad_detector_get_stats(const ad_detector *d)
{
    return &d->stats;
}

const ad_net *ad_detector_net(const ad_detector *d)
{
    return d->net;
}

/* ---- inputs ---- */

/* ---- observing ---- */

static int refuse(ad_detector *d, int reason)
{
    d->stats.refused[reason]++;
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
static void s2s_push(ad_detector *d, double value, double ts, double prev_ts, int has_prev)
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
static int range_block(const ad_detector *d)
{
    int b = (d->cfg.range_window + RANGE_BLOCKS - 1) / RANGE_BLOCKS;
    return b > 0 ? b : 1;
}

/* The span of the full blocks held into rb_wmin, rb_wmax (after a block joins, a load). */
static void range_blocks_span(ad_detector *d)
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
    if (++d->rb_fill < range_block(d))
        return;
    d->rb_min[d->rb_pos] = d->rb_cmin;
    d->rb_max[d->rb_pos] = d->rb_cmax;
    d->rb_pos = (d->rb_pos + 1) % (RANGE_BLOCKS - 1);
    if (d->rb_n < RANGE_BLOCKS - 1)
        d->rb_n++;
    d->rb_fill = 0;
    range_blocks_span(d);
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

/* Index in the ring of the i-th oldest sample held. */
static int hist_index(const ad_detector *d, int i)
{
    int k = d->hpos - d->hn + i;
    return k < 0 ? k + d->hcap : k;
}

/* The timestamp of history slot k (hts, fixed-point). */
static double hts_get(const ad_detector *d, int k)
{
    return d->hts_base + ldexp((double)d->hts[k], -d->hts_shift);
}

/* The shift for a span of seconds: the largest, at most 30, with span * 2^shift < 2^30
 * (a quarter of the range). */
static int span_shift(double span)
{
    int e;
    if (!(span > 0.0))
        return 30;
    frexp(span, &e); /* span < 2^e */
    return 30 - e < -1000 ? -1000 : 30 - e > 30 ? 30 : 30 - e;
}

/* ts as an offset at the current base and shift, saturated to [0, 2^32 - 1]. */
static uint32_t hts_encode(const ad_detector *d, double ts)
{
    double u = nearbyint(ldexp(ts - d->hts_base, d->hts_shift));
    return u <= 0.0 ? 0u : u >= 4294967295.0 ? UINT32_MAX : (uint32_t)u;
}

/*
 * Re-encodes the history with the base at its oldest sample that stays (oldest: i0 = 0,
 * or 1 when the next write replaces it) and the shift for a span up to newest: the
 * largest, at most 30, with span * 2^shift < 2^30 (a quarter of the range).
 */
static void hts_rebase(ad_detector *d, int i0, double newest)
{
    double base = d->hn > i0 ? hts_get(d, hist_index(d, i0)) : newest;
    int shift = span_shift(newest - base);
    for (int i = 0; i < d->hn; i++) {
        int k = hist_index(d, i);
        double t = hts_get(d, k);
        double u = nearbyint(ldexp(t - base, shift));
        d->hts[k] = u <= 0.0 ? 0u : u >= 4294967295.0 ? UINT32_MAX : (uint32_t)u;
    }
    d->hts_base = base;
    d->hts_shift = shift;
}

/* Writes ts into the slot at hpos (before hpos and hn move on), rebasing first when it
 * falls outside the range, or the span held fits 16 times finer units. */
static void hts_put(ad_detector *d, double ts)
{
    const int i0 = d->hn == d->hcap ? 1 : 0; /* the oldest sample that stays */
    double u = ldexp(ts - d->hts_base, d->hts_shift);
    int rebase = !(u >= 0.0 && u < 4294967295.0);
    if (!rebase && d->hts_shift < 30 && d->hn > i0) {
        uint32_t oldest = d->hts[hist_index(d, i0)];
        rebase = u - (double)oldest < 67108864.0; /* 2^26 */
    }
    if (rebase)
        hts_rebase(d, i0, ts);
    d->hts[d->hpos] = hts_encode(d, ts);
}

/* The history value nearest in time to t, if one lies within tol seconds of it. */
static int hist_at(const ad_detector *d, double t, double tol, double *v)
{
    int lo = 0, hi = d->hn - 1;
    if (d->hn == 0 || hts_get(d, hist_index(d, 0)) > t + tol)
        return 0;
    while (lo < hi) { /* the newest sample at or before t (or the oldest) */
        int mid = (lo + hi + 1) / 2;
        if (hts_get(d, hist_index(d, mid)) <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    double gap = fabs(hts_get(d, hist_index(d, lo)) - t);
    if (lo + 1 < d->hn && fabs(hts_get(d, hist_index(d, lo + 1)) - t) < gap)
        gap = fabs(hts_get(d, hist_index(d, ++lo)) - t);
    if (gap > tol)
        return 0;
    *v = d->hv[hist_index(d, lo)];
    return 1;
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
        if (hist_at(d, ts - j * P, SEASONAL_TOL * P, &v)) {
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

/* raw_k: the mean of |e| and the RAW_MEAN - 1 previous |errors| in prev (fp16, newest
 * first, clipped to RAW_KEEP); with push, e joins prev. */
static float raw_mean(uint16_t *prev, float e, int push)
{
    float a = fabsf(e);
    a = a < RAW_KEEP ? a : RAW_KEEP;
    float sum = a;
    for (int i = 0; i < RAW_MEAN - 1; i++)
        sum += ad_half_to_float(prev[i]);
    if (push) {
        for (int i = RAW_MEAN - 2; i > 0; i--)
            prev[i] = prev[i - 1];
        prev[0] = ad_half_from_float(a);
    }
    return sum / RAW_MEAN;
}

/* The network's input for the pending step (ad_detector_observe_defer). */
static void pending_input(const ad_detector *d, float *x)
{
    ad_make_input(&d->cfg, d->center, d->scale, d->pend_value, d->last_ts, d->pend_prev_ts,
                  d->pend_has_prev, d->time_on, x);
}

/* Runs the pending step, if any, on its own: what ad_detector_observe would have done. */
static void settle(ad_detector *d)
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

/* ad_detector_observe; with defer the network's step is left pending. Returns 1 when a
 * step was left pending, 0 when none, -AD_EINVAL when refused. */
static int observe(ad_detector *d, double ts, double value, ad_result *res, int defer)
{
    const ad_detector_config *c = &d->cfg;
    double pred, error;
    int has_pred, pending = 0;
    float x[AD_MAX_INPUT], y;

    if (isnan(value))
        return refuse(d, AD_REFUSE_NAN);
    if (isinf(value))
        return refuse(d, AD_REFUSE_INF);
    if (fabs(value) > MAX_MAGNITUDE)
        return refuse(d, AD_REFUSE_RANGE);
    if (!isfinite(ts))
        return refuse(d, AD_REFUSE_BADTIME);
    if (d->has_ts && ts < d->last_ts)
        return refuse(d, AD_REFUSE_BACKWARDS);
    settle(d); /* the previous value's step comes first */

    if (d->s2s && d->trained)
        s2s_push(d, value, ts, d->last_ts, d->has_ts);
    predict(d, value, &pred, &error, &has_pred);
    float raw = has_pred ? ad_scorer_score(d->sc, (float)error) : 0.0f;
    if (has_pred && d->lsc) { /* long_window: the larger of the two */
        float lraw = ad_scorer_score(d->lsc, (float)error);
        raw = lraw > raw ? lraw : raw;
    }
    /* raw_k: a series the network predicts well also has its raw error scored against
     * the network's own validation errors: the mean a of the last RAW_MEAN |errors|,
     * a / (a + raw_q), 0.5 at raw_q */
    if (d->raw_q > 0.0f && has_pred) {
        const float a = raw_mean(d->raw_prev, (float)error, 1), r = a / (a + d->raw_q);
        raw = r > raw ? r : raw;
    }
    /* the seasonal-naive signal: the larger of the two raw scores */
    float sraw = seasonal_score(d, ts, value);
    if (has_pred && sraw > raw)
        raw = sraw;
    /* alert_penalty: the odds lose alert_penalty / 5 per recent alert */
    if (c->alert_penalty > 0.0f && d->trained && raw < 1.0f) {
        double odds = raw / (1.0 - raw) - c->alert_penalty / 5.0 * d->alert_rate * ALERT_HORIZON;
        raw = odds > 0.0 ? (float)(odds / (1.0 + odds)) : 0.0f;
    }
    raw = range_check(d, value, raw);
    int anomalous = has_pred && raw >= c->scorer.threshold;
    /* alerts: within `cooldown` samples of the last one the score is damped, rising
     * linearly back to the raw score, so one incident raises one alert */
    float score = raw;
    if (c->cooldown > 0 && d->since_alert < (uint64_t)c->cooldown)
        score = raw * (float)d->since_alert / (float)c->cooldown;
    int flagged = has_pred && score >= c->scorer.threshold;
    d->since_alert = flagged ? 0 : d->since_alert + 1;
    d->alert_rate += ((double)flagged - d->alert_rate) / ALERT_HORIZON;
    d->flag_run = anomalous ? d->flag_run + 1 : 0;
    d->since_hit = anomalous ? 0 : d->since_hit + 1;
    int state = has_pred && d->since_hit < (uint64_t)c->scorer.short_window;
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
    double kept = excluded ? pred : value;

    if (!excluded) { /* Welford; warmup_naive's changes */
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

    /* history */
    d->hv[d->hpos] = (float)kept;
    if (anomalous)
        d->hf[d->hpos >> 3] |= (uint8_t)(1u << (d->hpos & 7));
    else
        d->hf[d->hpos >> 3] &= (uint8_t)~(1u << (d->hpos & 7));
    if (d->hts)
        hts_put(d, ts);
    d->hpos = d->hpos + 1 == d->hcap ? 0 : d->hpos + 1;
    if (d->hn < d->hcap)
        d->hn++;

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

    note_slots(d, sraw >= 0.0f);
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
            settle(ds[i]);
        return;
    }
    for (int i = 0; i < n; i++) {
        ad_detector *d = ds[i];

        if (!d->pend)
            continue; /* stepped already (listed twice, or run since) */
        if (d->net != net) {
            settle(d); /* another network's: on its own */
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

/* ---- training ---- */

int ad_detector_snapshot(const ad_detector *d, ad_train_job **out, char *err, size_t errlen)
{
    ad_train_job *job;

    *out = NULL;
    if (d->hn < 2 * d->cfg.window) {
        ERR("history holds %d samples, training needs at least %d", d->hn, 2 * d->cfg.window);
        return -AD_EINVAL;
    }
    job = calloc(1, sizeof(*job));
    if (!job)
        goto out_nomem;
    job->cfg = d->cfg;
    job->cfg.seed = d->cfg.seed + 7919 * d->stats.trainings; /* a new shuffle each time */
    job->D = d->D;
    job->n = d->hn;
    job->values = malloc((size_t)job->n * sizeof(*job->values));
    job->ts = d->hts ? malloc((size_t)job->n * sizeof(*job->ts)) : NULL;
    job->net = ad_net_clone(d->net);
    job->s2s = d->s2s ? ad_s2s_clone(d->s2s) : NULL;
    if (!job->values || (d->hts && !job->ts) || !job->net || (d->s2s && !job->s2s))
        goto out_free;
    for (int i = 0; i < job->n; i++) {
        int k = hist_index(d, i);
        job->values[i] = d->hv[k];
        if (job->ts)
            job->ts[i] = hts_get(d, k);
    }
    *out = job;
    return 0;

out_free:
    ad_train_job_free(job);
out_nomem:
    ERR("out of memory for a training job");
    return -AD_ENOMEM;
}

void ad_train_job_free(ad_train_job *job)
{
    if (!job)
        return;
    free(job->values);
    free(job->ts);
    ad_net_free(job->net);
    ad_s2s_free(job->s2s);
    free(job);
}

void ad_train_job_result(const ad_train_job *job, int *epochs, float *train_loss, float *val_loss)
{
    if (epochs)
        *epochs = job->epochs;
    if (train_loss)
        *train_loss = job->train_loss;
    if (val_loss)
        *val_loss = job->val_loss;
}

/*
 * One epoch's early-stopping verdict. With a validation loss (has_val), params are kept
 * in best when val beats *best_val, and 1 is returned once `patience` epochs in a row
 * did not; without one, the latest params and loss are kept.
 */

/*
 * SEQ2SEQ training: windows of L inputs every L/4 samples of the first (1 - val_frac) of
 * the history, early stopping on the reconstruction MSE of the windows of the tail.
 */
static int s2s_job_run(ad_train_job *job, char *err, size_t errlen)
{
    const ad_detector_config *c = &job->cfg;
    const int D = job->D, n = job->n, L = c->s2s_window;
    const int nval = (int)((float)n * c->val_frac);
    const int ntr = n - nval, vlen = nval > L ? nval : L;
    ad_s2s *m = job->s2s;
    float *x = NULL, *best = NULL;
    ad_s2s_ws *ws = NULL;
    ad_optim *opt = NULL;
    double best_val = INFINITY;
    int rc, since_best = 0;

    if (ntr < L) {
        ERR("%d training samples are fewer than one window of %d", ntr, L);
        return -AD_EINVAL;
    }
    rc = ad_norm_fit(job->values, n, &job->center, &job->scale);
    if (rc)
        goto out_nomem;
    x = malloc((size_t)D * n * sizeof(*x));
    best = malloc(m->nparams * sizeof(*best));
    opt = ad_optim_create(AD_OPTIM_ADAM, m->nparams, c->lr);
    if (!x || !best || !opt)
        goto out_nomem;
    for (int i = 0; i < n; i++) {
        double ts = job->ts ? job->ts[i] : 0.0, prev = job->ts && i ? job->ts[i - 1] : 0.0;
        ad_make_input(c, job->center, job->scale, job->values[i], ts, prev, i > 0, job->time_on,
                      x + (size_t)D * i);
    }
    rc = ad_s2s_ws_create(m, c->batch, &ws, err, errlen);
    if (rc)
        goto out_free;
    ad_train_opts o;
    ad_train_defaults(&o);
    o.window = L;
    o.batch = c->batch;
    o.stride = L / 4 > 0 ? L / 4 : 1;
    o.epochs = 1;
    o.clip = c->clip;
    memcpy(best, m->params, m->nparams * sizeof(*best));
    for (int e = 0; e < c->epochs; e++) {
        float loss;
        double val;
        o.seed = c->seed + (uint64_t)e;
        rc = ad_s2s_train(m, opt, ws, x, (size_t)ntr, &o, &loss, err, errlen);
        if (rc)
            goto out_free;
        job->epochs = e + 1;
        job->train_loss = loss;
        val = loss;
        if (nval > 0) {
            rc = ad_s2s_eval(m, ws, x + (size_t)D * (n - vlen), (size_t)vlen, o.stride, &val);
            if (rc)
                goto out_free;
        }
        if (ad_early_stop(m->params, best, m->nparams, nval > 0, val, &best_val, &since_best,
                       c->patience))
            break;
    }
    memcpy(m->params, best, m->nparams * sizeof(*best));
    job->val_loss = (float)best_val;
    job->ran = 1;
    rc = 0;
    goto out_free;

out_nomem:
    ERR("out of memory for training");
    rc = -AD_ENOMEM;
out_free:
    ad_optim_free(opt);
    ad_s2s_ws_free(ws);
    free(x);
    free(best);
    return rc;
}

/* feature_span: whether the job's history spans long enough for the time features. */
static int job_time_on(const ad_train_job *job)
{
    const int span = job->cfg.feature_span;
    return span == 0 || (job->ts && job->n > 1 && job->ts[job->n - 1] - job->ts[0] >= span);
}

int ad_train_job_run(ad_train_job *job, char *err, size_t errlen)
{
    job->time_on = job_time_on(job);
    if (job->s2s)
        return s2s_job_run(job, err, errlen);
    const ad_detector_config *c = &job->cfg;
    const int D = job->D, n = job->n, steps = n - 1;
    const int nval = (int)((float)steps * c->val_frac);
    const int ntr = steps - nval;
    float *x = NULL, *y = NULL, *best = NULL;
    ad_seq *ws = NULL;
    ad_optim *opt = NULL;
    ad_state *st = NULL;
    double best_val = INFINITY;
    int rc, since_best = 0;

    rc = ad_norm_fit_robust(job->values, n, &job->center, &job->scale, &job->robust);
    if (rc)
        goto out_nomem;
    x = malloc((size_t)D * steps * sizeof(*x));
    y = malloc((size_t)steps * sizeof(*y));
    best = malloc(job->net->nparams * sizeof(*best));
    opt = ad_optim_create(AD_OPTIM_ADAM, job->net->nparams, c->lr);
    st = ad_state_create(job->net);
    if (!x || !y || !best || !opt || !st)
        goto out_nomem;
    for (int i = 0; i < steps; i++) {
        double ts = job->ts ? job->ts[i] : 0.0, prev = job->ts && i ? job->ts[i - 1] : 0.0;
        ad_make_input(c, job->center, job->scale, job->values[i], ts, prev, i > 0, job->time_on,
                      x + (size_t)D * i);
        y[i] =
            ad_clipf(ad_norm_value(c, job->values[i + 1], job->center, job->scale), c->input_clip);
    }
    if (ntr < c->window) {
        ERR("%d training steps are fewer than one window of %d", ntr, c->window);
        rc = -AD_EINVAL;
        goto out_free;
    }
    rc = ad_seq_create(job->net, c->window, c->batch, &ws, err, errlen);
    if (rc)
        goto out_free;

    ad_train_opts o;
    ad_train_defaults(&o);
    o.window = c->window;
    o.batch = c->batch;
    o.stride = c->window / 4 > 0 ? c->window / 4 : 1;
    o.epochs = 1;
    o.clip = c->clip;
    memcpy(best, job->net->params, job->net->nparams * sizeof(*best));
    job->epochs = 0;
    for (int e = 0; e < c->epochs; e++) {
        float loss;
        o.seed = c->seed + (uint64_t)e;
        rc = ad_train(job->net, opt, ws, x, y, (size_t)ntr, &o, &loss, err, errlen);
        if (rc)
            goto out_free;
        job->epochs = e + 1;
        job->train_loss = loss;
        /* validation: run over everything, measure the held-out tail */
        double val = nval > 0 ? ad_eval_mse(job->net, st, x, y, (size_t)steps, (size_t)ntr) : loss;
        if (ad_early_stop(job->net->params, best, job->net->nparams, nval > 0, val, &best_val,
                       &since_best, c->patience))
            break;
    }
    memcpy(job->net->params, best, job->net->nparams * sizeof(*best));
    ad_net_refresh(job->net);
    /* raw_k: the trained network's errors on the validation tail, run from the start as
     * the evaluation does; the raw signal only for a series it predicts to within raw_rms
     * of the normaliser's scale, and a scale that is the MAD's (a fallback's, for values
     * mostly equal, makes the errors the network's own wobble), over a tail of at least
     * RAW_MIN_VAL values */
    if (c->raw_k > 0.0f && nval > 0) {
        float q = 0.0f, yy;
        double ss = 0.0;
        uint16_t prev[RAW_MEAN - 1] = {0};
        ad_state_reset(st);
        for (int i = 0; i < steps; i++) {
            ad_net_step(job->net, st, x + (size_t)D * i, &yy);
            const float e = yy - y[i], m = raw_mean(prev, e, 1);
            if (i >= ntr) {
                q = m > q ? m : q;
                ss += (double)e * e;
            }
        }
        job->val_max = q;
        job->val_rms = (float)sqrt(ss / nval);
        if (job->robust && job->val_rms < c->raw_rms && q > 0.0f && nval >= RAW_MIN_VAL)
            job->raw_q = c->raw_k * q;
    }
    job->val_loss = (float)best_val;
    job->ran = 1;
    rc = 0;
    goto out_free;

out_nomem:
    ERR("out of memory for training");
    rc = -AD_ENOMEM;
out_free:
    ad_state_free(st);
    ad_optim_free(opt);
    ad_seq_free(ws);
    free(x);
    free(y);
    free(best);
    return rc;
}

/*
 * Rebuilds the rolling state and the pending prediction by running the current network
 * over the newest samples of the history; with refill (the first training: until then
 * the errors were the warm-up fallback's) it also rebuilds the scorer's statistics from
 * the new network's errors there. A retraining keeps the scorer's statistics: they hold
 * out-of-sample errors, where errors on the history just trained on would be too small
 * and make the scorer jumpy.
 */
/* SEQ2SEQ re-priming: refills the window from the newest P samples (scoring them into
 * the scorer with refill). */
static void reprime_s2s(ad_detector *d, int refill, int P)
{
    const ad_detector_config *c = &d->cfg;
    if (P > d->hn)
        P = d->hn;
    d->win_n = 0;
    for (int i = d->hn - P; i < d->hn; i++) {
        int k = hist_index(d, i);
        double ts = d->hts ? hts_get(d, k) : 0.0;
        double prev = d->hts && i > 0 ? hts_get(d, hist_index(d, i - 1)) : 0.0;
        s2s_push(d, d->hv[k], ts, prev, i > 0);
        if (refill && d->has_pred) {
            double e = ad_norm_value(c, d->hv[k], d->center, d->scale) - (double)d->pred_norm;
            ad_scorer_score(d->sc, (float)e);
            ad_scorer_commit(d->sc, 0);
        }
    }
}

static void reprime(ad_detector *d, int refill)
{
    const ad_detector_config *c = &d->cfg;
    const int sw = c->scorer.kind == AD_SCORER_STATIC ? 0 : c->scorer.window;
    const int want = refill && sw > c->prime ? sw : c->prime;
    const int P = d->hn < want ? d->hn : want;
    const int burn = c->window < P / 4 ? c->window : P / 4; /* state still settling */
    float x[AD_MAX_INPUT], y = 0.0f;

    ad_state_reset(d->st);
    if (refill)
        ad_scorer_reset(d->sc);
    if (refill && d->lsc) /* it starts afresh on the network's errors (not refilled) */
        ad_scorer_reset(d->lsc);
    d->has_pred = 0;
    if (d->s2s) {
        reprime_s2s(d, refill, P > c->s2s_window ? P : c->s2s_window);
        return;
    }
    for (int i = d->hn - P; i < d->hn; i++) {
        int k = hist_index(d, i);
        double v = d->hv[k];
        if (refill && d->has_pred && i - (d->hn - P) >= burn) {
            double e = ad_norm_value(c, v, d->center, d->scale) - (double)y;
            ad_scorer_score(d->sc, (float)e);
            ad_scorer_commit(d->sc, 0);
        }
        double ts = d->hts ? hts_get(d, k) : 0.0;
        double prev = d->hts && i > 0 ? hts_get(d, hist_index(d, i - 1)) : 0.0;
        ad_make_input(c, d->center, d->scale, v, ts, prev, i > 0, d->time_on, x);
        ad_net_step(d->net, d->st, x, &y);
        d->has_pred = 1;
    }
    d->pred_norm = y;
}

int ad_detector_install(ad_detector *d, const ad_train_job *job, char *err, size_t errlen)
{
    if (!job->ran) {
        ERR("training job has not run");
        return -AD_EINVAL;
    }
    settle(d); /* on the old weights, in order (re-priming then rebuilds the state) */
    if (job->cfg.features != d->cfg.features || job->cfg.asinh != d->cfg.asinh ||
        job->cfg.model != d->cfg.model || ad_net_copy_params(d->net, job->net) != 0 ||
        (d->s2s && (!job->s2s || ad_s2s_copy_params(d->s2s, job->s2s) != 0))) {
        ERR("training job is for a detector of another shape or inputs");
        return -AD_EINVAL;
    }
    int first = !d->trained;
    d->center = job->center;
    d->scale = job->scale;
    d->time_on = (uint8_t)job->time_on;
    d->raw_q = job->raw_q;
    memset(d->raw_prev, 0, sizeof(d->raw_prev)); /* the old network's errors: not these */
    d->trained = 1;
    d->since_train = 0;
    d->stats.trainings++;
    d->stats.epochs = job->epochs;
    d->stats.train_loss = job->train_loss;
    d->stats.val_loss = job->val_loss;
    reprime(d, first);
    if (first && d->ssc) /* it has seen nothing yet, but for clarity */
        ad_scorer_reset(d->ssc);
    note_prefetch(d);
    return 0;
}

int ad_detector_train(ad_detector *d, char *err, size_t errlen)
{
    ad_train_job *job;
    int rc = ad_detector_snapshot(d, &job, err, errlen);
    if (rc)
        return rc;
    rc = ad_train_job_run(job, err, errlen);
    if (!rc)
        rc = ad_detector_install(d, job, err, errlen);
    ad_train_job_free(job);
    return rc;
}

/* ---- serialisation ---- */

/* Everything after the header, through the scorer; the CRC follows. */
static void write_body(ad_wbuf *w, const ad_detector *d, size_t netlen)
{
    const ad_detector_stats *s = &d->stats;
    ad_detector_config_write(w, &d->cfg);
    ad_put_u64(w, s->samples);
    ad_put_u64(w, s->flagged);
    for (int i = 0; i < AD_REFUSE_NREASONS; i++)
        ad_put_u64(w, s->refused[i]);
    ad_put_u64(w, s->trainings);
    ad_put_f32(w, s->train_loss);
    ad_put_f32(w, s->val_loss);
    ad_put_u32(w, (uint32_t)s->epochs);
    ad_put_f64(w, d->center);
    ad_put_f64(w, d->scale);
    ad_put_u32(w, (uint32_t)d->trained);
    ad_put_f64(w, d->w_mean);
    ad_put_f64(w, d->w_m2);
    ad_put_u64(w, d->w_n);
    ad_put_f64(w, d->nv_last);
    ad_put_f64(w, d->nv_ms);
    ad_put_f32(w, d->pred_norm);
    ad_put_u32(w, (uint32_t)d->has_pred);
    ad_put_f64(w, d->last_ts);
    ad_put_u32(w, (uint32_t)d->has_ts);
    ad_put_u64(w, d->since_train);
    ad_put_u32(w, (uint32_t)d->flag_run);
    ad_put_f32(w, d->excl_rate);
    ad_put_u64(w, d->since_alert);
    ad_put_f64(w, d->alert_rate);
    ad_put_u64(w, d->since_hit);
    ad_put_u32(w, d->time_on); /* version 8 on (AD_DETECTOR_V_RAW) */
    ad_put_f32(w, d->raw_q);
    for (int i = 0; i < RAW_MEAN - 1; i++)
        ad_put_u16(w, d->raw_prev[i]);
    ad_put_f64(w, d->vmin);
    ad_put_f64(w, d->vmax);
    for (int i = 0; i < RANGE_BLOCKS; i++) {
        ad_put_f64(w, d->rb_min[i]);
        ad_put_f64(w, d->rb_max[i]);
    }
    ad_put_f64(w, d->rb_cmin);
    ad_put_f64(w, d->rb_cmax);
    ad_put_u32(w, (uint32_t)d->rb_n);
    ad_put_u32(w, (uint32_t)d->rb_pos);
    ad_put_u32(w, (uint32_t)d->rb_fill);
    ad_put_u32(w, (uint32_t)d->hn);
    ad_put_u32(w, (uint32_t)d->hpos);
    ad_put_f32v(w, d->hv, (size_t)d->hcap);
    ad_put_bytes(w, d->hf, ((size_t)d->hcap + 7) / 8);
    if (d->hts) {
        ad_put_f64(w, d->hts_base);
        ad_put_u32(w, (uint32_t)d->hts_shift);
        for (int i = 0; i < d->hcap; i++)
            ad_put_u32(w, d->hts[i]);
    }
    const int L = d->st->layers, H = d->st->hidden;
    ad_put_f32v(w, d->st->h, (size_t)L * H);
    if (d->st->c)
        ad_put_f32v(w, d->st->c, (size_t)L * H);
    /* the network as its own blob (serial.h), length-prefixed */
    ad_put_u64(w, (uint64_t)netlen); /* 0: a family member's (the family saves it) */
    if (netlen && w->p && !w->err && w->cap - w->len >= netlen) {
        size_t got = 0;
        ad_net_save(d->net, NULL, w->p + w->len, netlen, &got, NULL, 0);
        w->len += netlen;
    } else {
        ad_put_bytes(w, NULL, netlen);
    }
    if (d->s2s) { /* SEQ2SEQ: the encoder-decoder's parameters and the window */
        ad_put_u64(w, (uint64_t)d->s2s->nparams);
        ad_put_f32v(w, d->s2s->params, d->s2s->nparams);
        ad_put_u32(w, (uint32_t)d->win_n);
        ad_put_f32v(w, d->win, (size_t)d->D * d->cfg.s2s_window);
    }
    ad_scorer_save(d->sc, w);
    if (d->ssc)
        ad_scorer_save(d->ssc, w);
    if (d->lsc)
        ad_scorer_save(d->lsc, w);
}

size_t ad_detector_blob_size(const ad_detector *d)
{
    ad_wbuf w;
    ad_wbuf_init(&w, NULL, 0);
    ad_put_bytes(&w, DET_MAGIC, 4);
    ad_put_u32(&w, DET_VERSION);
    write_body(&w, d, d->shared_net ? 0 : ad_net_blob_size(d->net, NULL));
    ad_put_u32(&w, 0);
    return w.err ? 0 : w.len;
}

int ad_detector_save(ad_detector *d, void *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
    size_t need = ad_detector_blob_size(d);
    ad_wbuf w;

    settle(d); /* the blob holds the state after every value observed */

    if (len)
        *len = 0;
    if (!buf || cap < need) {
        ERR("buffer too small: detector blob needs %zu bytes, buffer has %zu", need, buf ? cap : 0);
        return -AD_EINVAL;
    }
    if (!ad_net_params_finite(d->net)) {
        for (size_t i = 0; i < d->net->nparams; i++) {
            float v;
            ad_net_get_params(d->net, i, 1, &v);
            if (!isfinite(v)) {
                ERR("cannot save: network parameter %zu is not finite", i);
                break;
            }
        }
        return -AD_EINVAL;
    }
    ad_wbuf_init(&w, buf, cap);
    ad_put_bytes(&w, DET_MAGIC, 4);
    ad_put_u32(&w, DET_VERSION);
    write_body(&w, d, d->shared_net ? 0 : ad_net_blob_size(d->net, NULL));
    ad_put_u32(&w, ad_crc32(0, buf, w.len));
    if (w.err || w.len != need) {
        ERR("internal error: detector blob size changed while writing");
        return -AD_EINVAL;
    }
    if (len)
        *len = w.len;
    return 0;
}

/* Whether the loaded history, timestamps and rolling state are all finite. */
static int finite_state(const ad_detector *d)
{
    const size_t n = (size_t)d->st->layers * d->st->hidden;
    for (int i = 0; i < d->hcap; i++)
        if (!isfinite(d->hv[i]))
            return 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(d->st->h[i]) || (d->st->c && !isfinite(d->st->c[i])))
            return 0;
    return 1;
}

/* Loads a blob; member_net != NULL: a family member's, on that network. */
static int load_common(const void *buf, size_t len, ad_net *member_net, ad_detector **out,
                       char *err, size_t errlen)
{
    const uint8_t *b = buf;
    ad_detector_config c;
    ad_detector *d = NULL;
    ad_net *net = NULL;
    double *ts4 = NULL; /* version 4: the history's timestamps as doubles */
    int ts_bad = 0;
    char why[200];
    ad_rbuf r;
    int rc;

    *out = NULL;
    if (!buf || len < 12) {
        ERR("detector blob truncated: %zu bytes", buf ? len : 0);
        return -AD_EFORMAT;
    }
    if (memcmp(b, DET_MAGIC, 4) != 0) {
        ERR("not a detector blob (bad magic)");
        return -AD_EFORMAT;
    }
    ad_rbuf_init(&r, b + 4, len - 4);
    uint32_t version = ad_get_u32(&r);
    if (version < DET_VERSION_OLDEST || version > DET_VERSION) {
        ERR("detector blob version %u, expected %u..%u", version, DET_VERSION_OLDEST,
            DET_VERSION);
        return -AD_EFORMAT;
    }
    uint32_t crc = (uint32_t)b[len - 4] | (uint32_t)b[len - 3] << 8 | (uint32_t)b[len - 2] << 16 |
                   (uint32_t)b[len - 1] << 24;
    if (ad_crc32(0, b, len - 4) != crc) {
        ERR("detector blob fails its checksum (damaged or truncated)");
        return -AD_EFORMAT;
    }
    r.len = len - 4 - 4; /* body only: the CRC is not part of it */
    ad_detector_config_read(&r, &c, version);
    if (r.err || ad_detector_config_check(&c, why, sizeof(why)) != 0) {
        ERR("detector blob has an invalid configuration: %s", r.err ? "truncated" : why);
        return -AD_EFORMAT;
    }
    rc = detector_new(&c, member_net, &d, err, errlen);
    if (rc)
        return rc;
    ad_detector_stats *s = &d->stats;
    s->samples = ad_get_u64(&r);
    s->flagged = ad_get_u64(&r);
    for (int i = 0; i < AD_REFUSE_NREASONS; i++)
        s->refused[i] = ad_get_u64(&r);
    s->trainings = ad_get_u64(&r);
    s->train_loss = ad_get_f32(&r);
    s->val_loss = ad_get_f32(&r);
    s->epochs = (int)ad_get_u32(&r);
    d->center = ad_get_f64(&r);
    d->scale = ad_get_f64(&r);
    d->trained = (int)ad_get_u32(&r);
    d->w_mean = ad_get_f64(&r);
    d->w_m2 = ad_get_f64(&r);
    d->w_n = ad_get_u64(&r);
    d->nv_last = ad_get_f64(&r);
    d->nv_ms = ad_get_f64(&r);
    d->pred_norm = ad_get_f32(&r);
    d->has_pred = (int)ad_get_u32(&r);
    d->last_ts = ad_get_f64(&r);
    d->has_ts = (int)ad_get_u32(&r);
    d->since_train = ad_get_u64(&r);
    d->flag_run = (int)ad_get_u32(&r);
    d->excl_rate = ad_get_f32(&r);
    d->since_alert = ad_get_u64(&r);
    d->alert_rate = ad_get_f64(&r);
    d->since_hit = version >= 6 ? ad_get_u64(&r) : UINT64_MAX / 2; /* 5: the state off */
    uint32_t time_on = version >= AD_DETECTOR_V_RAW ? ad_get_u32(&r) : 1; /* before: always fed */
    d->time_on = (uint8_t)(time_on != 0);
    d->raw_q = version >= AD_DETECTOR_V_RAW ? ad_get_f32(&r) : 0.0f; /* before: no raw signal */
    int raw_bad = 0;
    for (int i = 0; version >= AD_DETECTOR_V_RAW && i < RAW_MEAN - 1; i++) {
        d->raw_prev[i] = ad_get_u16(&r);
        const float p = ad_half_to_float(d->raw_prev[i]);
        raw_bad |= !(p >= 0.0f && p <= RAW_KEEP);
    }
    d->vmin = ad_get_f64(&r);
    d->vmax = ad_get_f64(&r);
    int rb_bad = 0;
    for (int i = 0; i < RANGE_BLOCKS; i++) {
        d->rb_min[i] = ad_get_f64(&r);
        d->rb_max[i] = ad_get_f64(&r);
        rb_bad |= !isfinite(d->rb_min[i]) || !isfinite(d->rb_max[i]);
    }
    d->rb_cmin = ad_get_f64(&r);
    d->rb_cmax = ad_get_f64(&r);
    d->rb_n = (int)ad_get_u32(&r);
    d->rb_pos = (int)ad_get_u32(&r);
    d->rb_fill = (int)ad_get_u32(&r);
    rb_bad |= !isfinite(d->rb_cmin) || !isfinite(d->rb_cmax) || !isfinite(d->vmin) ||
              !isfinite(d->vmax) || d->rb_n < 0 || d->rb_n > RANGE_BLOCKS - 1 ||
              d->rb_pos < 0 || d->rb_pos >= RANGE_BLOCKS - 1 || d->rb_fill < 0 ||
              d->rb_fill >= range_block(d);
    if (!rb_bad)
        range_blocks_span(d);
    uint32_t hn = ad_get_u32(&r), hpos = ad_get_u32(&r);
    ad_get_f32v(&r, d->hv, (size_t)d->hcap);
    if (version == 4) { /* flags as bytes, timestamps as doubles (encoded below) */
        for (int i = 0; i < d->hcap; i++) {
            uint8_t f = 0;
            ad_get_bytes(&r, &f, 1);
            d->hf[i >> 3] |= (uint8_t)((f != 0) << (i & 7));
        }
        if (d->hts) {
            ts4 = malloc((size_t)d->hcap * sizeof(*ts4));
            if (!ts4) {
                ERR("out of memory for a detector");
                ad_detector_free(d);
                return -AD_ENOMEM;
            }
            for (int i = 0; i < d->hcap; i++) {
                ts4[i] = ad_get_f64(&r);
                ts_bad |= !isfinite(ts4[i]);
            }
        }
    } else {
        ad_get_bytes(&r, d->hf, ((size_t)d->hcap + 7) / 8);
        if (d->hts) {
            d->hts_base = ad_get_f64(&r);
            d->hts_shift = (int32_t)ad_get_u32(&r);
            for (int i = 0; i < d->hcap; i++)
                d->hts[i] = ad_get_u32(&r);
            ts_bad = !isfinite(d->hts_base) || d->hts_shift < -1000 || d->hts_shift > 30;
        }
    }
    const int L = d->st->layers, H = d->st->hidden;
    ad_get_f32v(&r, d->st->h, (size_t)L * H);
    if (d->st->c)
        ad_get_f32v(&r, d->st->c, (size_t)L * H);
    uint64_t netlen = ad_get_u64(&r);
    if (r.err || hn > (uint32_t)d->hcap || hpos >= (uint32_t)d->hcap || netlen > ad_rbuf_left(&r) ||
        !(d->scale > 0.0 && isfinite(d->scale)) || !isfinite(d->center) ||
        !isfinite(d->pred_norm) || !isfinite(d->w_mean) || !(d->w_m2 >= 0.0 && isfinite(d->w_m2)) ||
        !isfinite(d->nv_last) || !(d->nv_ms >= 0.0 && isfinite(d->nv_ms)) ||
        !finite_state(d) || rb_bad || ts_bad || time_on > 1 ||
        !(d->raw_q >= 0.0f && isfinite(d->raw_q)) || raw_bad || d->flag_run < 0 ||
        !(d->excl_rate >= 0.0f && d->excl_rate <= 1.0f) ||
        !(d->alert_rate >= 0.0 && d->alert_rate <= 1.0)) {
        ERR("detector blob is truncated or inconsistent");
        goto out_format;
    }
    d->hn = (int)hn;
    d->hpos = (int)hpos;
    if (ts4 && d->hn) { /* version 4: encode the doubles (whole seconds exactly) */
        d->hts_base = ts4[hist_index(d, 0)];
        d->hts_shift = span_shift(ts4[hist_index(d, d->hn - 1)] - d->hts_base);
        for (int i = 0; i < d->hn; i++)
            d->hts[hist_index(d, i)] = hts_encode(d, ts4[hist_index(d, i)]);
    }
    free(ts4);
    ts4 = NULL;
    if ((netlen == 0) != (member_net != NULL)) {
        ERR(netlen ? "detector blob has its own network: not a family member's"
                   : "detector blob is a family member's: load it with its family's network");
        goto out_format;
    }
    if (netlen) {
        ad_net_config expect = d->net->cfg;
        rc = ad_net_load(r.p + r.pos, (size_t)netlen, &expect, &net, NULL, why, sizeof(why));
        if (rc) {
            ERR("detector blob's network: %s", why);
            goto out_format;
        }
        ad_net_copy_params(d->net, net);
        ad_net_free(net);
        r.pos += (size_t)netlen;
    }
    if (d->s2s) {
        const size_t nw = (size_t)d->D * d->cfg.s2s_window;
        int bad = ad_get_u64(&r) != (uint64_t)d->s2s->nparams;
        if (!bad)
            ad_get_f32v(&r, d->s2s->params, d->s2s->nparams);
        uint32_t wn = ad_get_u32(&r);
        if (!bad)
            ad_get_f32v(&r, d->win, nw);
        for (size_t i = 0; !bad && i < d->s2s->nparams; i++)
            bad = !isfinite(d->s2s->params[i]);
        for (size_t i = 0; !bad && i < nw; i++)
            bad = !isfinite(d->win[i]);
        if (bad || r.err || wn > (uint32_t)d->cfg.s2s_window) {
            ERR("detector blob's encoder-decoder is truncated or inconsistent");
            goto out_format;
        }
        d->win_n = (int)wn;
    }
    rc = ad_scorer_load(d->sc, &r, why, sizeof(why));
    if (!rc && d->ssc)
        rc = ad_scorer_load(d->ssc, &r, why, sizeof(why));
    if (!rc && d->lsc)
        rc = ad_scorer_load(d->lsc, &r, why, sizeof(why));
    if (rc) {
        ERR("detector blob's scorer: %s", why);
        goto out_format;
    }
    if (ad_rbuf_left(&r) != 0) {
        ERR("detector blob has %zu unexpected bytes before its checksum", ad_rbuf_left(&r));
        goto out_format;
    }
    note_prefetch(d);
    *out = d;
    return 0;

out_format:
    free(ts4);
    ad_detector_free(d);
    return -AD_EFORMAT;
}

int ad_detector_load(const void *buf, size_t len, ad_detector **out, char *err, size_t errlen)
{
    return load_common(buf, len, NULL, out, err, errlen);
}

int ad_detector_load_member(const void *buf, size_t len, ad_net *net, ad_detector **out,
                            char *err, size_t errlen)
{
    if (!net) {
        *out = NULL;
        ERR("a family member needs its family's network");
        return -AD_EINVAL;
    }
    return load_common(buf, len, net, out, err, errlen);
}

/* ---- family members ---- */

int ad_detector_is_member(const ad_detector *d)
{
    return d->shared_net;
}

int ad_detector_trained(const ad_detector *d)
{
    return d->trained;
}

void ad_detector_normaliser(const ad_detector *d, double *center, double *scale)
{
    *center = d->center;
    *scale = d->scale;
}

int ad_detector_history(const ad_detector *d, float *values, double *ts, int max)
{
    int n = d->hn < max ? d->hn : max;

    for (int i = 0; i < n; i++) {
        int k = hist_index(d, d->hn - n + i);
        values[i] = d->hv[k];
        if (ts)
            ts[i] = d->hts ? hts_get(d, k) : 0.0;
    }
    return n;
}

int ad_detector_join(ad_detector *d, char *err, size_t errlen)
{
    if (!d->shared_net) {
        ERR("only a family member joins its family's network");
        return -AD_EINVAL;
    }
    settle(d);
    if (!d->trained) {
        float *v;
        int n = d->hn, rc;

        if (n < 2 * d->cfg.window) {
            ERR("%d values of history are fewer than two windows of %d", n, d->cfg.window);
            return -AD_EINVAL;
        }
        v = malloc((size_t)n * sizeof(*v));
        if (!v) {
            ERR("out of memory");
            return -AD_ENOMEM;
        }
        ad_detector_history(d, v, NULL, n);
        rc = ad_norm_fit(v, n, &d->center, &d->scale);
        free(v);
        if (rc) {
            ERR("out of memory");
            return -AD_ENOMEM;
        }
        d->trained = 1;
        d->since_train = 0;
        d->stats.trainings++;
        reprime(d, 1);
        note_slots(d, 1);
        return 0;
    }
    /* The family's network changed: rebuild the rolling state on it. */
    d->stats.trainings++;
    reprime(d, 0);
    note_slots(d, 1);
    return 0;
}

int ad_detector_set_weights(ad_detector *d, int wt)
{
    static const int mode[AD_W_N] = {AD_NET_FP32, AD_NET_FP16_ONLY, AD_NET_INT8_ONLY};

    if (wt < 0 || wt >= AD_W_N)
        return -AD_EINVAL;
    settle(d);
    int rc = d->shared_net ? 0 : ad_net_set_storage(d->net, mode[wt]);
    note_prefetch(d);
    return rc;
}
