/*
 * inputs.h - what the detector's network reads: the normaliser (a robust centre and
 * scale fitted on the history at each training, and the optional asinh compression) and
 * the optional time features built from timestamps. Pure functions, no I/O.
 */
#ifndef AD_INPUTS_H
#define AD_INPUTS_H

#include "detector_config.h"

/* x clipped to [-lim, lim]. */
float ad_clipf(double x, float lim);

/* The normalised value: (v - center) / scale, asinh of it when c->asinh is set. */
double ad_norm_value(const ad_detector_config *c, double v, double center, double scale);

/* The inverse of ad_norm_value. */
double ad_norm_inverse(const ad_detector_config *c, double z, double center, double scale);

/*
 * The median, 1.4826 * MAD and standard deviation (over n - 1) of v[0..n) (n > 0), in
 * place and without allocating: v is left reordered and overwritten (|v - median|).
 */
void ad_robust_stats(double *v, int n, double *median, double *mad_scale, double *sd);

/*
 * The p-quantile (0 <= p <= 1) of v[0..n) (n > 0), interpolated linearly between the
 * order statistics around p * (n - 1) (numpy's default), in place and without
 * allocating: v is left reordered.
 */
double ad_quantile(double *v, int n, double p);

/*
 * Fits the normaliser on v (n > 0): center = median, scale = 1.4826 * MAD, falling back
 * to the standard deviation and then to 1e-6 * max(1, |median|) (constant series).
 * Returns 0 or -AD_ENOMEM (it sorts a copy).
 */
int ad_norm_fit(const float *v, int n, double *center, double *scale);
/* The same, and *robust = 1 when the scale is the MAD's (0: a fallback, the values mostly
 * equal). */
int ad_norm_fit_robust(const float *v, int n, double *center, double *scale, int *robust);

/*
 * The network input (ad_detector_input_size(c->features) floats) for a value v at time
 * ts, after a sample at prev_ts if has_prev: the normalised value clipped to
 * +-c->input_clip, then sin/cos of the time of day, sin/cos of the position in the week
 * (UTC, Monday = 0), log1p(gap in seconds) / 10, as c->features asks; with time_on 0 the
 * time of day's and the week's inputs are 0 (feature_span: the history is too short).
 */
void ad_make_input(const ad_detector_config *c, double center, double scale, double v, double ts,
                   double prev_ts, int has_prev, int time_on, float *x);

#endif
