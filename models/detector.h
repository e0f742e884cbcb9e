/*
 * detector.h - one stream's anomaly detector: normaliser, history ring, network with its
 * rolling state, scorer, retraining policy, counters. Pure computation, no I/O.
 *
 * For each observed value (ad_detector_observe):
 *   1. refuse it, counted by reason, if it is NaN, infinite, beyond +-1e30, or its
 *      timestamp is earlier than the previous one (equal timestamps are accepted);
 *   2. score it against the prediction made at t-1: error = norm(value) - norm(predicted)
 *      in the normaliser's units (below); before the first training (warming up) the
 *      prediction is the running mean of the values so far and the error
 *      (value - mean) / sd (asinh of it with `asinh`), a simple statistical fallback, so
 *      a stream gets scores from its third sample on; with `warmup_naive` the prediction
 *      is the previous value and the error is scaled by the moving RMS of changes;
 *   3. the scorer (scorer.h) turns the error into a raw score in [0, 1] (with
 *      `seasonal_period`, once trained, the larger of it and the weighted score of the
 *      seasonal-naive error against the median of the values 1..seasonal_periods periods
 *      ago, from a second scorer; with `long_window`, the larger of it and a likelihood
 *      averaging long_window errors; with `alert_penalty`, once trained, the odds of these
 *      lose alert_penalty/5 per alert of roughly the last `alert_horizon` samples; with
 *      `raw_k`, a well-predicted series' raw error too, never penalised); a value whose
 *      raw score reaches the threshold is anomalous and is excluded: kept out of the
 *      scorer's statistics and replaced by its prediction in the history used for
 *      training (so neither learns the anomaly), until `relearn` anomalies in a row say
 *      the series has moved to a new normal, or excluded values pass `max_exclude` of
 *      the recent ones (a detector that flags that often is miscalibrated, and excluding
 *      more would keep it so); the reported score is the raw score damped for
 *      `cooldown` samples after an alert, and an alert (flag) is a reported score at
 *      the threshold, so one incident raises one alert;
 *   4. the network steps on the normalised value as it came, clipped to +-input_clip so
 *      one spike cannot wreck the hidden state, and the optional time features,
 *      predicting t+1;
 *   5. when a training is due (first after train_after samples, then every train_every)
 *      the result says so.
 *
 * Training is split so the daemon can run it off its event loop:
 *   ad_detector_snapshot()  copies what training needs into a job (loop thread);
 *   ad_train_job_run()      fits the normaliser (median and MAD of the history) and
 *                           trains the network by BPTT with early stopping on a
 *                           validation tail: a pure function of the job, safe on any
 *                           thread;
 *   ad_detector_install()   swaps the new weights and normaliser in (loop thread), then
 *                           re-primes: runs the new network over the last samples of the
 *                           history to rebuild the rolling state, the pending prediction
 *                           and the scorer's statistics.
 * ad_detector_train() does all three in a row (offline scoring, tests).
 *
 * Normalised values are (v - median) / scale, or with `asinh` set asinh of that: linear
 * within a scale of the median, logarithmic beyond, for heavy-tailed series; errors are
 * differences of normalised values. Constant series: the scale falls back from 1.4826*MAD to the
 * standard deviation and then to 1e-6*max(1, |median|), so a constant series scores 0
 * and its first change scores high. Gaps in time are seen by the network only through the GAP
 * feature.
 *
 * A detector saves to a versioned, checksummed blob (magic "ADDT") holding everything:
 * configuration, network, rolling state, pending prediction, normaliser, scorer, history
 * and counters; continuing after a load gives bit-identical results.
 */
#ifndef AD_DETECTOR_H
#define AD_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "detector_config.h"
#include "net.h"
#include "scorer.h"

/* Why a value was refused. */
enum ad_refusal {
    AD_REFUSE_NAN = 0,       /* value is NaN */
    AD_REFUSE_INF = 1,       /* value is infinite */
    AD_REFUSE_RANGE = 2,     /* |value| > 1e30 */
    AD_REFUSE_BACKWARDS = 3, /* timestamp earlier than the previous sample's */
    AD_REFUSE_BADTIME = 4,   /* timestamp is not finite */
    AD_REFUSE_NREASONS = 5
};

/* What observing one value gave. */
typedef struct ad_result {
    double value;     /* the value observed */
    double predicted; /* the prediction made for it at t-1 (NAN for the first sample) */
    double error;     /* norm(value) - norm(predicted) (warming up: the z-score) */
    float score;      /* [0, 1]: the raw score, damped within `cooldown` of an alert */
    float raw_score;  /* [0, 1]: the scorer's score */
    int flagged;      /* an alert: score >= the scorer's threshold; once per incident
                         (the cooldown damps the score after one) */
    int hit;          /* raw_score >= the threshold, this sample (excluded from
                         statistics and training while the budget allows), alert or not */
    int anomalous;    /* the state: the series is behaving abnormally now. On from a hit
                         until the scorer's short_window samples in a row have scored
                         below the threshold (the errors it averages have then left the
                         anomaly), bridging dips shorter than the averaging; and with
                         incident_z > 0 through the incident the hit opened, while the
                         values' moving mean stays away from what they were before it
                         (detector_config.h), so it lasts as long as the anomaly does;
                         and with departure > 0 while that moving mean is far from the
                         values the network was last trained on */
    int warming_up;   /* scored by the statistical fallback (no training yet) */
    int train_due;    /* a training is due: snapshot, train, install */
    int refused;      /* -1: the value was taken; else why it was refused (ad_refusal),
                         the only field a refusal writes */
} ad_result;

typedef struct ad_detector_stats {
    uint64_t samples;                     /* values accepted */
    uint64_t flagged;                     /* values flagged */
    uint64_t refused[AD_REFUSE_NREASONS]; /* values refused, by reason */
    uint64_t trainings;                   /* installs done */
    float train_loss, val_loss;           /* of the last training */
    int epochs;                           /* run by the last training */
} ad_detector_stats;

typedef struct ad_detector ad_detector;
typedef struct ad_train_job ad_train_job;

int ad_detector_create(const ad_detector_config *c, ad_detector **out, char *err, size_t errlen);
void ad_detector_free(ad_detector *d);
size_t ad_detector_bytes(const ad_detector *d);

const ad_detector_config *ad_detector_get_config(const ad_detector *d);
const ad_detector_stats *ad_detector_get_stats(const ad_detector *d);
/* The detector's network (for inspection; shapes never change). */
const ad_net *ad_detector_net(const ad_detector *d);

/*
 * Observes one value at time ts (seconds since the epoch; any monotone clock works when
 * no time features are used). Returns 0 and fills *res (res->refused -1), or -AD_EINVAL
 * if the value is refused: the reason is counted and written to res->refused, and
 * nothing else changes (the rest of *res is untouched). No allocation.
 */
int ad_detector_observe(ad_detector *d, double ts, double value, ad_result *res);

/*
 * Deferred steps, for family members stepped together (net.h's ad_net_step_batch):
 * ad_detector_observe_defer does all of ad_detector_observe (the result is the same) but
 * leaves step 4, the network's step on the value, pending in the detector. Returns 1
 * when it left a step pending (hand d to ad_detector_step_batch), 0 when there is none
 * (no network yet), -AD_EINVAL when the value is refused. A pending step is never lost
 * or reordered: observing again (either way), save, install, join and set_weights run it
 * first on their own; snapshot reads nothing it changes. Only the network's rolling
 * state and the next prediction wait for it, so results (scores, flags) are exactly
 * ad_detector_observe's (tests/check_family.c compares them bit for bit).
 */
int ad_detector_observe_defer(ad_detector *d, double ts, double value, ad_result *res);

/* Whether d has a step pending. */
int ad_detector_pending(const ad_detector *d);

/* Scratch of ad_detector_step_batch, owned by the caller: start it zeroed; it grows to
 * the largest batch (the only allocation); ad_detector_batch_free releases it. */
typedef struct ad_detector_batch {
    ad_net_batch net; /* the products' scratch */
    ad_state **st;    /* (cap) the batch's states */
    ad_detector **ds; /* (cap) their detectors */
    float *x, *y;     /* (cap, dmax) inputs, (cap) outputs */
    int cap, dmax;
} ad_detector_batch;

void ad_detector_batch_free(ad_detector_batch *b);

/*
 * Runs the pending steps of ds[0..n-1]: those on the network of the first pending one
 * (a family's members) as one ad_net_step_batch, any other one by one; detectors without
 * a step pending, or listed again, are skipped. Cannot fail: when b cannot grow, the
 * steps run one by one.
 */
void ad_detector_step_batch(ad_detector *const *ds, int n, ad_detector_batch *b);

/*
 * Asks the CPU to start loading what the next ad_detector_observe(d) reads besides d's own
 * struct: the scorers' hot lines (struct and short ring) and the window slots they will
 * write, the rolling state, the history slot to be written (value, flag, timestamp), the
 * lines of the network's struct a step reads (ad_net_step_bytes) and its step weights, up
 * to AD_PREFETCH_WEIGHT_BYTES: the whole of an int8 or fp16 block of an LSTM H=32 (a
 * detector's lines are scattered, as the daemon visits them in hash order, so the
 * hardware's stream prefetch, which stops at page ends, fetched too little of them behind
 * the first lines; float32 weights gained nothing from more). A family's network is not
 * prefetched: its members share it, it stays in cache. No effect on results; reads only
 * d's struct (have that in cache, e.g. with ad_detector_prefetch_struct one step earlier,
 * or the prefetch itself waits on it). For a caller that has several series' samples at
 * hand: prefetch the next one or two while observing the current one. The seasonal
 * lookup's binary search over the history timestamps is not prefetched (where it lands
 * depends on what it reads).
 */
#define AD_PREFETCH_WEIGHT_BYTES 12288
void ad_detector_prefetch(const ad_detector *d);

/* Asks the CPU to start loading d's own struct (the lines ad_detector_prefetch reads and
 * observe reads first). Reads nothing. */
void ad_detector_prefetch_struct(const ad_detector *d);

/* Copies what a training needs into a new job. -AD_ENOMEM on allocation failure,
 * -AD_EINVAL if the history is shorter than two windows. */
int ad_detector_snapshot(const ad_detector *d, ad_train_job **job, char *err, size_t errlen);

/* Runs the job: pure, touches nothing but the job. 0 or a negative ad_err. */
int ad_train_job_run(ad_train_job *job, char *err, size_t errlen);

/* Installs a job that ran (a job from another detector of another shape is refused). */
int ad_detector_install(ad_detector *d, const ad_train_job *job, char *err, size_t errlen);

/* The job's outcome: epochs run, last training and best validation loss. */
void ad_train_job_result(const ad_train_job *job, int *epochs, float *train_loss, float *val_loss);
void ad_train_job_free(ad_train_job *job);

/* Snapshot, run and install in a row. */
int ad_detector_train(ad_detector *d, char *err, size_t errlen);

/* Exact size of the blob ad_detector_save writes. */
size_t ad_detector_blob_size(const ad_detector *d);
/* Runs a pending step first (ad_detector_observe_defer): not const. */
int ad_detector_save(ad_detector *d, void *buf, size_t cap, size_t *len, char *err, size_t errlen);
/* Refuses a truncated, corrupted or other-version blob with a message; nothing leaks. */
int ad_detector_load(const void *buf, size_t len, ad_detector **out, char *err, size_t errlen);

const char *ad_refusal_name(int reason);

/*
 * How the detector's own network stores its weights (kern.h's ad_wtype; the daemon's
 * `weights`): AD_W_F16 or AD_W_I8 keep only the packed block (net.h, ad_net_set_storage,
 * AD_NET_FP16_ONLY or AD_NET_INT8_ONLY): half (fp16) or about a third (int8) of the
 * float weights' bytes read per step and held, predictions within about 1e-3 (fp16) or
 * 3e-3 (int8) relative (int8 costs about 0.4 NAB points, from retraining without the
 * float masters: docs/BENCHMARKS.md "int8 weights"). No float masters are kept: a training job (snapshot) trains the
 * block widened to floats, install packs its result back (rounding it: fp16 by at most
 * 2^-11 relative, int8 to its rows' steps of 1/127 of the row's largest), a save writes
 * the block widened (the blob's format is unchanged; loading it and setting the same
 * storage gives back the same block, bit for bit). AD_W_F32: the floats come back,
 * widened from the block. A family member's network is its family's: nothing to do.
 * 0, -AD_EINVAL for an unknown value, or -AD_ENOMEM (then unchanged).
 */
int ad_detector_set_weights(ad_detector *d, int wt);

/*
 * Sets how long the anomalous state lasts (incident_z, incident_ref, departure:
 * detector_config.h). They decide the state from what the detector sees and change
 * nothing else (scores, alerts, the network, the history), so a loaded detector can take
 * a configuration's values: the daemon applies them after restoring a series and on
 * reload. An open incident goes on against its reference and the new incident_z;
 * incident_z 0 closes it. The departure reference is taken at every training whatever
 * departure is, so turning departure on acts at once. 0, or
 * -AD_EINVAL (with nothing changed) for a value out of its bounds.
 */
int ad_detector_set_incident(ad_detector *d, float incident_z, int incident_ref,
                             float departure);

/*
 * Family members (shared models, family.h): a detector whose network is a family's,
 * shared with the other members; it keeps its own rolling state, normaliser, scorer and
 * history. It warms up like any detector; its first training_due asks its family (the
 * caller) for a network: once the family's network is trained, ad_detector_join fits
 * the member's normaliser on its own history and re-primes it on that network (the
 * member is then "trained" and never due again: the family retrains, and after each
 * family training ad_detector_join re-primes the member's state on the new weights).
 * A member's blob does not hold the network (the family saves it once).
 */

/* Creates a member on a family's network (not owned: it must outlive the member). The
 * network's shape must be what c gives (kind, layers, input size, hidden); predict
 * model only. */
int ad_detector_create_member(const ad_detector_config *c, ad_net *net, ad_detector **out,
                              char *err, size_t errlen);
/* Loads a member's blob onto its family's network. */
int ad_detector_load_member(const void *buf, size_t len, ad_net *net, ad_detector **out,
                            char *err, size_t errlen);
/* Joins (first time: fits the normaliser, re-primes and refills the scorer; later:
 * re-primes on the family's new weights). -AD_EINVAL when not a member, or the history
 * is shorter than two windows on the first join. */
int ad_detector_join(ad_detector *d, char *err, size_t errlen);
int ad_detector_is_member(const ad_detector *d);
/* Has a network been installed (or joined): its scores come from the network. */
int ad_detector_trained(const ad_detector *d);
/* The normaliser's centre and scale (from the last training or join). */
void ad_detector_normaliser(const ad_detector *d, double *center, double *scale);
/* Copies the newest min(max, held) history values (oldest first) and their timestamps
 * (ts may be NULL; 0 when the detector keeps none). Returns how many. */
int ad_detector_history(const ad_detector *d, float *values, double *ts, int max);

#endif
