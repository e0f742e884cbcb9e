/*
 * scorer.h - turning prediction errors into calibrated anomaly scores in [0, 1].
 *
 * A scorer sees one prediction error per sample (in units of the detector's normaliser
 * scale) and returns a score in [0, 1]; the sample is flagged when the score reaches
 * the configured threshold. Values that are flagged stay out of the scorer's statistics
 * (the caller reports the flag back with ad_scorer_commit), so an anomaly does not
 * teach the scorer that anomalies are normal.
 *
 *  LIKELIHOOD  Numenta's anomaly likelihood: the mean of the last `short_window`
 *              absolute errors is compared with a Gaussian fitted to that moving
 *              average over the last `window` samples (its deviation floored at
 *              max(min_sd, 1% of the mean)); the score is the Gaussian's
 *              (one-sided) tail probability q on a log scale, squashed into [0, 1)
 *              without saturating: with t = -log10(q), score = t / (t + 5), so 0.5 means
 *              q = 1e-5 and 2/3 means q = 1e-10; ever smaller tails keep ranking higher.
 *              With error_bound b > 0 each absolute error a enters as a / (a + b), in
 *              [0, 1) like Numenta's raw anomaly score: a single huge error then weighs
 *              at most 1/short_window in the average, and only sustained surprise flags.
 *  DYNAMIC     NASA JPL telemanom's nonparametric dynamic threshold: errors are
 *              EWMA-smoothed (a flagged value's smoothed error is scored but the
 *              smoothing then goes on from the last normal one); every `refit` samples the threshold mu + z*sigma over the
 *              last `window` smoothed errors is re-chosen, z in [z_min, z_max] maximising
 *              (dmu/mu + dsigma/sigma) / (n_above + n_sequences^2); a value above the
 *              threshold whose excess over the window's largest normal smoothed error is
 *              less than `prune` (fraction) is pruned. Score = e / (e + threshold) (0.5 at
 *              the threshold), 0 when pruned.
 *  STATIC      a fixed threshold k on the absolute normalised error:
 *              score = |e| / (|e| + k), 0.5 at |e| = k.
 *
 * Fixed-size state sized at creation (rings of `window` floats); no allocation per
 * sample; serialisable (ad_scorer_save / ad_scorer_load) for exact restores.
 *
 * Layout: one block per scorer, ad_scorer_size() bytes: the struct with the fields every
 * sample touches first, the short ring right after it (a likelihood scorer with the
 * default short_window reads two cache lines of its block per sample, plus the window
 * ring's slot ad_scorer_next_write() names), then the window ring. ad_scorer_create
 * allocates the block; ad_scorer_init builds one in memory the caller owns (the detector
 * puts its scorers in its own allocation).
 */
#ifndef AD_SCORER_H
#define AD_SCORER_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"

typedef enum ad_scorer_kind {
    AD_SCORER_LIKELIHOOD = 0,
    AD_SCORER_DYNAMIC = 1,
    AD_SCORER_STATIC = 2,
    AD_SCORER_NKINDS = 3
} ad_scorer_kind;

typedef struct ad_scorer_config {
    ad_scorer_kind kind;
    float threshold;   /* flag when score >= threshold, in (0, 1] */
    int window;        /* LIKELIHOOD, DYNAMIC: samples of history (>= 16) */
    int short_window;  /* LIKELIHOOD: errors averaged (>= 1) */
    int min_samples;   /* LIKELIHOOD, DYNAMIC: score 0 until this many samples */
    float ewma_alpha;  /* DYNAMIC: smoothing of errors, (0, 1] */
    float z_min, z_max;/* DYNAMIC: range of z tried, step 0.5 */
    float prune;       /* DYNAMIC: minimum excess over the largest normal error */
    int refit;         /* DYNAMIC: samples between threshold re-fits (>= 1) */
    float k;           /* STATIC: error at which the score is 0.5 */
    float min_sd;      /* LIKELIHOOD: floor on the deviation of the averaged errors
                          (also at least 1% of their mean), in error units */
    float error_bound; /* LIKELIHOOD: > 0: each |error| a is bounded to a / (a + error_bound)
                          before averaging, so one huge error cannot flag alone (0 = off) */
} ad_scorer_config;

typedef struct ad_scorer ad_scorer;

/* Defaults for a kind (likelihood: window 1000, short 10, min 100, threshold 0.5). */
void ad_scorer_defaults(ad_scorer_config *c, ad_scorer_kind kind);

/* Returns 0 if c is valid, else -AD_EINVAL with a message naming the field. */
int ad_scorer_config_check(const ad_scorer_config *c, char *err, size_t errlen);

/* Alignment of a scorer's block (a cache line). */
#define AD_SCORER_ALIGN 64

/* Bytes of the block a scorer of configuration c takes (a multiple of AD_SCORER_ALIGN),
 * 0 if c is invalid. */
size_t ad_scorer_size(const ad_scorer_config *c);

/* Bytes at the start of the block that every likelihood score and commit reads (the
 * struct's hot part and the short ring): what a caller prefetches. */
size_t ad_scorer_hot_bytes(const ad_scorer_config *c);

/* Builds a scorer in mem: ad_scorer_size(c) bytes aligned to AD_SCORER_ALIGN that the
 * caller owns (and frees; ad_scorer_free leaves it alone). Returns 0 and *out == mem, or
 * -AD_EINVAL with a message (*out NULL, mem untouched). */
int ad_scorer_init(void *mem, const ad_scorer_config *c, ad_scorer **out, char *err,
                   size_t errlen);

/* Allocates a scorer. Returns 0, or a negative ad_err with a message. */
int ad_scorer_create(const ad_scorer_config *c, ad_scorer **out, char *err, size_t errlen);
/* Frees a scorer from ad_scorer_create (NULL, or one built by ad_scorer_init: nothing). */
void ad_scorer_free(ad_scorer *s);
void ad_scorer_reset(ad_scorer *s);
/* Bytes of its block (ad_scorer_size of its configuration). */
size_t ad_scorer_bytes(const ad_scorer *s);
const ad_scorer_config *ad_scorer_get_config(const ad_scorer *s);

/*
 * Scores one error (finite, in normaliser units; the sign is ignored). Does not change
 * the statistics: call ad_scorer_commit next with the flag the caller decided on.
 * Returns the score in [0, 1].
 */
float ad_scorer_score(ad_scorer *s, float err);

/* Records the last scored error into the statistics, unless flagged. */
void ad_scorer_commit(ad_scorer *s, int flagged);

/* The address the next commit writes in the window ring (NULL for STATIC): for a caller
 * that prefetches (ad_detector_prefetch) and reads it while s is in cache. */
const void *ad_scorer_next_write(const ad_scorer *s);

/* The threshold in error units for the last score (DYNAMIC: mu + z*sigma of smoothed
 * errors; STATIC: k; LIKELIHOOD: NAN, it has none). */
float ad_scorer_error_threshold(const ad_scorer *s);

/* Serialisation into a blob writer / from a reader (the detector's blob embeds it). The
 * loaded scorer must have been created with the same configuration (else -AD_EFORMAT). */
void ad_scorer_save(const ad_scorer *s, ad_wbuf *w);
int ad_scorer_load(ad_scorer *s, ad_rbuf *r, char *err, size_t errlen);

const char *ad_scorer_name(ad_scorer_kind kind);
int ad_scorer_from_name(const char *name);

/* The kind's code in blobs (the scorer's state, the detector's configuration): fixed by
 * scorer.c's table, never by the enum's order (tests/check_serial.c pins them).
 * UINT32_MAX for an unknown kind. */
uint32_t ad_scorer_code(ad_scorer_kind kind);
/* Kind of a stored code; -1 if no kind has it. */
int ad_scorer_from_code(uint32_t code);

#endif
