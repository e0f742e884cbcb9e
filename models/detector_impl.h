/*
 * detector_impl.h - the inside of one stream's detector (detector.h), shared by the files
 * that make it up; not a header for anyone else:
 *   detector.c          the block: create, free, sizes, getters, weight storage;
 *   detector_observe.c  the per-sample path: checks, signals, scores, alerts, the
 *                       network's step (deferred or not, batched), prefetching;
 *   detector_history.c  the history ring and its fixed-point timestamps;
 *   detector_train.c    retraining: snapshot, the training job, install, re-priming,
 *                       family members joining;
 *   detector_blob.c     the detector's blob: save and load.
 */
#ifndef AD_DETECTOR_IMPL_H
#define AD_DETECTOR_IMPL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "detector.h"
#include "seq2seq.h"

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

#define RANGE_BLOCKS  16       /* blocks of the range check's sliding window */
#define RAW_RATE      0.2f     /* raw_k: the rate of the moving mean of the signed errors */
#define RAW_KEEP      65504.0f /* errors it takes are clipped to +-this */
#define LINE          64       /* cache line: the block's parts start on one */

/*
 * Layout: one allocation (ad_det_new), cache-line aligned, carved in this order:
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
    float raw_mean; /* raw_k: the moving mean of the signed errors since the last install */
    /* normaliser (from the last training) */
    double center, scale;
    double last_ts;
    int has_ts;
    int flag_run;
    uint64_t since_train;
    uint64_t since_alert; /* samples since the last alert */
    uint64_t since_hit;   /* samples since the last hit (raw score at the threshold): the
                             anomalous state (ad_result) */
    double alert_rate;    /* moving average of the alert indicator (rate 1 / alert_horizon) */
    /* the moving mean of the accepted values (over ~short_window: incident_z, departure),
     * and while an incident is open (incident) its reference median and spread */
    double inc_mean, inc_center, inc_spread;
    uint8_t incident;
    /* the departure reference (departure): the mean of the history's values at the last
     * install, and the 99th percentile of the moving mean's distance from it over them;
     * dep_scale 0: none (not trained, or too few values) */
    double dep_center, dep_scale;
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

/* Index in the ring of the i-th oldest sample held. */
static inline int hist_index(const ad_detector *d, int i)
{
    int k = d->hpos - d->hn + i;
    return k < 0 ? k + d->hcap : k;
}

/* The timestamp of history slot k (hts, fixed-point). */
static inline double hts_get(const ad_detector *d, int k)
{
    return d->hts_base + ldexp((double)d->hts[k], -d->hts_shift);
}

/* ---- detector.c ---- */

/* A detector with its own network, or (shared != NULL) using a family's. */
int ad_det_new(const ad_detector_config *c, ad_net *shared, ad_detector **out, char *err,
               size_t errlen);

/* ---- detector_observe.c ---- */

/* Where the window rings will write next, for ad_detector_prefetch (after every change);
 * the seasonal scorer's only with seasonal set. */
void ad_det_note_slots(ad_detector *d, int seasonal);
/* The same, and where the step's weights are (after a load, an install, a change of
 * storage). */
void ad_det_note_prefetch(ad_detector *d);
/* Runs the pending step, if any, on its own: what ad_detector_observe would have done. */
void ad_det_settle(ad_detector *d);
/* SEQ2SEQ: slides a value into the window and reconstructs it once full. */
void ad_det_s2s_push(ad_detector *d, double value, double ts, double prev_ts, int has_prev);
/* incident_z: a hit opens an incident when none is open and the history holds enough
 * values for its reference (taken before the hit's value joins the history). */
void ad_det_incident_open(ad_detector *d);
/* Takes the departure reference (dep_center, dep_scale) from the values the history
 * holds, the newest 4096 at most (none below 16 + 3 short_windows): at each install or
 * join, and on loading a blob older than AD_DETECTOR_V_DEPARTURE. */
void ad_det_departure_ref(ad_detector *d);
/* raw_k: takes the error e (clipped to +-RAW_KEEP) into the moving mean *m (rate
 * RAW_RATE) and returns |*m|. */
float ad_det_raw_mean(float *m, float e);
/* Size of one block of the range check's sliding window. */
int ad_det_range_block(const ad_detector *d);
/* The span of the full blocks held into rb_wmin, rb_wmax (after a block joins, a load). */
void ad_det_range_blocks_span(ad_detector *d);

/* ---- detector_history.c ---- */

/* The shift for a span of seconds: the largest, at most 30, with span * 2^shift < 2^30. */
int ad_det_span_shift(double span);
/* ts as an offset at the current base and shift, saturated to [0, 2^32 - 1]. */
uint32_t ad_det_hts_encode(const ad_detector *d, double ts);
/* Writes ts into the slot at hpos (before hpos and hn move on), rebasing when needed. */
void ad_det_hts_put(ad_detector *d, double ts);
/* The history value nearest in time to t, if one lies within tol seconds of it. */
int ad_det_hist_at(const ad_detector *d, double t, double tol, double *v);

#endif
