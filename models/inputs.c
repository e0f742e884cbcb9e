/*
 * inputs.c - the detector's normaliser and network inputs (inputs.h).
 */
#include "inputs.h"

#include <math.h>
#include <stdlib.h>

#include "net.h" /* ad_err */

#define TWO_PI 6.283185307179586

float ad_clipf(double x, float lim)
{
    return (float)(x > lim ? lim : x < -lim ? -lim : x);
}

/*
 * The normalised value: (v - center) / scale, or with `asinh` set asinh of it, linear
 * within a scale of the centre and logarithmic beyond, so heavy-tailed series (bursts
 * 1e5 times the baseline) stay in a range the network can work with.
 */
double ad_norm_value(const ad_detector_config *c, double v, double center, double scale)
{
    return c->asinh ? asinh((v - center) / scale) : (v - center) / scale;
}

double ad_norm_inverse(const ad_detector_config *c, double z, double center, double scale)
{
    return center + scale * (c->asinh ? sinh(z) : z);
}

/*
 * The time features of ts: sin/cos of the time of day, then of the position in the week.
 * Each thread keeps the last timestamp's (the samples of a round usually share it, and
 * sin, cos and fmod cost more than the rest of an input): the same values either way.
 */
typedef struct time_feats {
    double ts;
    int valid;
    float f[4];
} time_feats;

static const float *time_features(double ts)
{
    static _Thread_local time_feats last;

    if (!last.valid || last.ts != ts) { /* a NaN never equals itself */
        const double tod = fmod(ts, 86400.0) / 86400.0;
        /* 1970-01-01 was a Thursday; day 0 of the week is Monday */
        const double day = fmod(floor(ts / 86400.0) + 3.0, 7.0);
        const double ph = TWO_PI * tod, pw = TWO_PI * ((day + tod) / 7.0);

        last.f[0] = (float)sin(ph);
        last.f[1] = (float)cos(ph);
        last.f[2] = (float)sin(pw);
        last.f[3] = (float)cos(pw);
        last.ts = ts;
        last.valid = 1;
    }
    return last.f;
}

/* The network input for a value v at time ts after a sample at prev_ts (has_prev). */
void ad_make_input(const ad_detector_config *c, double center, double scale, double v, double ts,
                   double prev_ts, int has_prev, int time_on, float *x)
{
    static const float off[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int k = 0;
    x[k++] = ad_clipf(ad_norm_value(c, v, center, scale), c->input_clip);
    if (c->features & (AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK)) {
        const float *f = time_on ? time_features(ts) : off;

        if (c->features & AD_FEAT_TIME_OF_DAY) {
            x[k++] = f[0];
            x[k++] = f[1];
        }
        if (c->features & AD_FEAT_DAY_OF_WEEK) {
            x[k++] = f[2];
            x[k++] = f[3];
        }
    }
    if (c->features & AD_FEAT_GAP) {
        double gap = has_prev && ts > prev_ts ? ts - prev_ts : 0.0;
        x[k++] = (float)(log1p(gap) / 10.0);
    }
}

/* The k-th smallest of v[0..n) (Hoare's selection; v reordered, v[0..k) <= it). */
static double select_kth(double *v, int n, int k)
{
    int lo = 0, hi = n - 1;

    while (lo < hi) {
        const double pivot = v[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                const double t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return v[k];
}

double ad_quantile(double *v, int n, double p)
{
    const double pos = p * (n - 1);
    const int lo = (int)pos;
    const double a = select_kth(v, n, lo);
    if (lo + 1 >= n)
        return a;
    double b = v[lo + 1]; /* the next smallest: the least of v[lo+1..n) */
    for (int i = lo + 2; i < n; i++)
        b = v[i] < b ? v[i] : b;
    return a + (pos - lo) * (b - a);
}

/* The median of v[0..n) (v reordered): the middle value, or the mean of the two. */
static double median(double *v, int n)
{
    const double hi = select_kth(v, n, n / 2);
    if (n % 2)
        return hi;
    double lo = v[0];
    for (int i = 1; i < n / 2; i++)
        lo = v[i] > lo ? v[i] : lo;
    return 0.5 * (lo + hi);
}

void ad_robust_stats(double *v, int n, double *med, double *mad_scale, double *sd)
{
    double mean = 0.0, m2 = 0.0;
    for (int i = 0; i < n; i++) {
        const double delta = v[i] - mean;
        mean += delta / (i + 1);
        m2 += delta * (v[i] - mean);
    }
    *sd = n > 1 ? sqrt(m2 / (n - 1)) : 0.0;
    *med = median(v, n);
    for (int i = 0; i < n; i++)
        v[i] = fabs(v[i] - *med);
    *mad_scale = 1.4826 * median(v, n);
}

/* Median and scale (1.4826 MAD, else the standard deviation, else a floor) of v (n). */
int ad_norm_fit(const float *v, int n, double *center, double *scale)
{
    int robust;
    return ad_norm_fit_robust(v, n, center, scale, &robust);
}

int ad_norm_fit_robust(const float *v, int n, double *center, double *scale, int *robust)
{
    double *tmp = malloc((size_t)n * sizeof(*tmp));
    double med, s, sd;
    if (!tmp)
        return -AD_ENOMEM;
    for (int i = 0; i < n; i++)
        tmp[i] = v[i];
    ad_robust_stats(tmp, n, &med, &s, &sd);
    free(tmp);
    const double floor = 1e-6 * fmax(1.0, fabs(med));
    *robust = s > floor;
    if (!(s > floor))
        s = sd;
    if (!(s > floor))
        s = floor;
    *center = med;
    *scale = s;
    return 0;
}
