/*
 * detector_config.h - a detector's settings: the table of what can be set, its defaults
 * and bounds, and its place in the detector's blob. Every field is documented here; the
 * behaviour they drive is in detector.h. No I/O.
 */
#ifndef AD_DETECTOR_CONFIG_H
#define AD_DETECTOR_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"
#include "cell.h"
#include "scorer.h"

/* Optional inputs beyond the value (bit flags). */
enum ad_feature {
    AD_FEAT_TIME_OF_DAY = 1, /* sin and cos of the time of day (UTC) */
    AD_FEAT_DAY_OF_WEEK = 2, /* sin and cos of the day of the week (UTC) */
    AD_FEAT_GAP = 4          /* log1p(seconds since the previous sample) / 10 */
};

/* What the network does. */
enum ad_model {
    AD_MODEL_PREDICT = 0, /* predicts the next value; the error is value - prediction */
    AD_MODEL_SEQ2SEQ = 1  /* encoder-decoder over the last s2s_window values (seq2seq.h);
                             the error is the newest value's reconstruction error */
};

/* "predict" or "seq2seq"; NULL for an unknown model. */
const char *ad_model_name(int model);
/* The model's code in blobs (the detector's configuration): fixed by detector_config.c's
 * table, never by the enum's order (tests/check_serial.c pins them). UINT32_MAX for an
 * unknown model. */
uint32_t ad_model_code(int model);
/* The model (enum ad_model) of a stored code; -1 if none has it. */
int ad_model_from_code(uint32_t code);

typedef struct ad_detector_config {
    int model;              /* enum ad_model */
    int s2s_window;         /* SEQ2SEQ: values per window L, 2..1024 */
    ad_cell_kind kind; /* the network's cell kind */
    int layers;        /* 1..AD_MAX_LAYERS */
    int hidden;        /* H */
    unsigned features; /* AD_FEAT_* */
    int history;       /* samples kept for retraining (>= 2 * window) */
    int train_after;   /* first training after this many samples (>= 2 * window) */
    int train_every;   /* then every this many samples (0 = never again) */
    int window;        /* BPTT window T */
    int batch;         /* windows per batch B */
    int epochs;        /* at most this many passes */
    int patience;      /* stop after this many epochs without a better validation loss */
    float val_frac;    /* fraction of the history held out for validation, [0, 0.5] */
    float lr;          /* Adam learning rate */
    float clip;        /* gradient-norm clip */
    float forget_bias; /* the LSTM kinds' initial forget-gate bias (1; net.h's
                          ad_net_init_opts), -20..20: read when the network is made (new
                          detectors, families, and the seq2seq halves) */
    float input_clip;  /* |normalised value| fed to the network is clipped to this */
    int prime;         /* samples re-read after an install to rebuild the state */
    int relearn;       /* after this many flags in a row the values count as the new
                          normal again (0 = never) */
    float max_exclude; /* flagged values are excluded only while fewer than this
                          fraction of the last ~1000 samples were, [0, 1] */
    int asinh;         /* 1: normalise with asinh((v - median) / scale), for
                          heavy-tailed series; 0: linear (v - median) / scale */
    float range_tolerance;  /* > 0: a value beyond the range seen so far by more than this
                               times the range is anomalous (0 = off) */
    int range_window;  /* the range check's "seen so far": the last ~range_window values
                          (16 blocks of range_window/16), 0 = every value since the start */
    int seasonal_period;  /* > 0: a second signal, the seasonal-naive error: the value
                             against the median of the values (as kept for training) at
                             the same time 1..seasonal_periods periods of this many
                             seconds ago, scored by its own scorer; the raw score is the
                             larger of the two (0 = off). Needs the history to span the
                             periods; starts after the first training */
    int seasonal_periods; /* periods looked back, 1..8 */
    float seasonal_weight;/* (0, 1]: the seasonal score's odds s/(1-s) are multiplied by
                             this (likelihood: its -log10 tail), so it needs a smaller tail
                             than the network's error to flag */
    int warmup_naive;  /* before the first training: 1 = the prediction is the previous
                          value and the error is scaled by the moving RMS of changes;
                          0 = the running mean and standard deviation of all values */
    int long_window;   /* > 0, likelihood scorer: a second likelihood on the same errors
                          averaged over this many (instead of short_window), for slower,
                          sustained surprise; the raw score is the larger (0 = off;
                          at most the scorer's window) */
    float alert_penalty; /* >= 0: once trained, a series that alerted recently must be
                            more surprising to be anomalous: the odds s/(1-s) of the
                            likelihood and seasonal scores lose alert_penalty/5 per alert
                            of roughly the last alert_horizon samples (likelihood: its
                            -log10 tail loses alert_penalty); the raw signal and the range
                            check are not penalised (0 = off) */
    int alert_horizon; /* >= 100 samples: alert_penalty counts the alerts of roughly this
                          many samples (a moving average of the alert indicator of rate
                          1/alert_horizon, times alert_horizon) */
    int cooldown;      /* after an alert, the score is damped for this many samples
                          (rising linearly back), so one incident raises one alert
                          (0 = off) */
    uint64_t seed;     /* initialisation and shuffling */
    ad_scorer_config scorer;
    int feature_span;  /* >= 0 seconds: the time features (tod, dow) are fed only when the
                          history at a training spans at least this long (decided at each
                          training from its timestamps; otherwise their inputs are 0, the
                          shapes stay): a history of seconds makes the time of day a slow
                          ramp the network reads as a level (0 = always fed) */
    float raw_k;       /* >= 0: a series the network predicts well (below) also has its raw
                          error scored: a = |m|, m the moving mean (rate 1/5) of the signed
                          errors, against q = the RMS of m of the trained network on the
                          validation tail: a / (a + raw_k q), 0.5 at raw_k q;
                          the raw score is the larger (0 = off). The likelihood's averaged,
                          floored errors lose what a good predictor's errors show */
    float raw_rms;     /* raw_k applies when the validation errors' RMS is below this (in
                          the normaliser's units: a fraction of the series' robust scale),
                          the scale is the MAD's and the validation tail holds at least 250
                          values, decided at each training */
    int stateful;      /* 1: stateful truncated BPTT (train.h): the training part of the
                          history cut into `batch` contiguous streams (fewer when a stream
                          would hold less than one window), each walked in consecutive
                          windows that start from the state the previous one ended with;
                          and every install warms the rolling state over the whole history
                          (not the last `prime` values). 0: shuffled windows every
                          window/4 values, each from a zero state. The predict model's own
                          network only (not seq2seq, not a family's) */
    float incident_z;  /* > 0: the anomalous state (ad_result) also lasts through an
                          incident: from a hit, while the moving mean of the values
                          (over ~short_window) stays at least incident_z reference
                          spreads from the reference median, the median of the
                          incident_ref values kept before the hit (spread: the larger of
                          1.4826 MAD and their standard deviation); it ends when the
                          values are back, or at the next install (the new network has
                          learnt what it saw). 0 = off: the state is the short_window
                          samples after a hit */
    int incident_ref;  /* values before an incident's first hit its reference is made
                          of, 16..4096 (fewer while the history holds fewer; none below
                          16) */
    float departure;   /* > 0: the anomalous state is also on while the values' moving
                          mean (over ~short_window) is more than `departure` times as far
                          from its departure reference as it went over those values: the
                          mean of the history's values (the newest 4096 at most) when the
                          network was last installed (or joined its family's), and the
                          99th percentile of the moving mean's distance from it, replayed
                          over them. The state then lasts while the series stays away
                          from what its network was trained on, whether or not the errors
                          still say so. 0 = off; default 6 */
} ad_detector_config;

/* The defaults: the one table the daemon (`defaults:` and every rule start from it) and
 * `anomalyctl score` with no options both use. LSTM, 1 layer, H=32, time-of-day and
 * day-of-week inputs, history 2500, first training after 750 samples then every 2000,
 * T=64, B=16, 60 epochs, patience 8, val 0.2, lr 0.005, clip 1, input clip 8, prime 256,
 * relearn 64, max_exclude 0.02, alert cooldown 30, range check at 2% of the range of the
 * last ~8000 values, seasonal-naive second signal (86400 s, 3 periods, weight 0.8), the
 * previous value as the warm-up prediction, a long window of 30, alert penalty 0.2 over
 * the alerts of the last ~50000 samples, time
 * features only over a history spanning 2 days (feature_span 172800), the raw error
 * signal for series predicted to within 5% of their scale (raw_k 6, raw_rms 0.05), and
 * the likelihood scorer with errors bounded to a/(a+3) and a deviation floor of 0.0173;
 * the anomalous state through incidents (incident_z 12) and departures (departure 6).
 * docs/DETECTOR.md says why, with the benchmark figures. */
void ad_detector_defaults(ad_detector_config *c);

/* Returns 0 if c is valid, else -AD_EINVAL with a message naming the field. */
int ad_detector_config_check(const ad_detector_config *c, char *err, size_t errlen);

/* Network input size for a feature set (1 + 2 + 2 + 1 at most). */
int ad_detector_input_size(unsigned features);

/* The detector blob version (detector_blob.c) that added forget_bias at the end of the
 * configuration. */
#define AD_DETECTOR_V_FORGET_BIAS 7
/* The version that added feature_span, raw_k and raw_rms after it. */
#define AD_DETECTOR_V_RAW 8
/* The version that added stateful after them. */
#define AD_DETECTOR_V_STATEFUL 9
/* The version that added incident_z and incident_ref after it, and the incident's state
 * to the detector. */
#define AD_DETECTOR_V_INCIDENT 10
/* The version whose raw signal scores a moving mean of the signed errors (8-10: the mean
 * of the last 3 |errors|, another scale: such a blob loads with the raw signal off until
 * the next training). */
#define AD_DETECTOR_V_RAW_MEAN 11
/* The version that added alert_horizon at the configuration's end; before it the horizon
 * was AD_ALERT_HORIZON_V11 samples (what an older blob loads with, and the value the
 * daemon's settings fingerprint leaves out). */
#define AD_DETECTOR_V_HORIZON 12
#define AD_ALERT_HORIZON_V11  2000
/* The version that added departure at the configuration's end, and the departure
 * reference to the detector. */
#define AD_DETECTOR_V_DEPARTURE 13

/* The configuration into a blob writer / from a reader (fields in a fixed order; fields
 * added later at the end; the model, cell and scorer kinds as their codes: ad_model_code,
 * ad_cell_code, ad_scorer_code). version is the detector blob's: a field the blob is too
 * old to hold gets its default (forget_bias 1 before AD_DETECTOR_V_FORGET_BIAS; before
 * AD_DETECTOR_V_RAW time features always fed and no raw signal; before AD_DETECTOR_V_STATEFUL
 * stateful 0; before AD_DETECTOR_V_INCIDENT incident_z 0, incident_ref 400; before
 * AD_DETECTOR_V_HORIZON alert_horizon 2000; before AD_DETECTOR_V_DEPARTURE departure 0). Reading returns
 * -AD_EFORMAT with a message when a stored code names no kind (a truncated read is r's
 * err, not this), else 0; the read configuration is not checked otherwise: call
 * ad_detector_config_check. */
void ad_detector_config_write(ad_wbuf *w, const ad_detector_config *c);
int ad_detector_config_read(ad_rbuf *r, ad_detector_config *c, uint32_t version, char *err,
                            size_t errlen);

#endif
