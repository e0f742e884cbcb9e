/*
 * detector_history.c - a detector's history ring (detector_impl.h): values as kept for
 * training, flags, and timestamps in fixed point; the lookup by time the seasonal signal
 * uses; an incident's reference (incident_z); the departure reference (departure);
 * ad_detector_history.
 */
#include "detector_impl.h"

#include "inputs.h"

#define REF_MIN 16   /* values an incident's or departure's reference needs at least */
#define REF_MAX 4096 /* and takes at most (incident_ref's bound) */

/* A spread or scale of values around center, kept above 0 for a constant stretch. */
static double spread_floor(double s, double center)
{
    return fmax(s, 1e-6 * fmax(1.0, fabs(center)));
}

void ad_det_incident_open(ad_detector *d)
{
    double v[REF_MAX], med, mad_scale, sd;
    int n = d->hn < d->cfg.incident_ref ? d->hn : d->cfg.incident_ref;

    if (n > REF_MAX)
        n = REF_MAX;
    if (n < REF_MIN)
        return;
    for (int i = 0; i < n; i++)
        v[i] = d->hv[hist_index(d, d->hn - n + i)];
    ad_robust_stats(v, n, &med, &mad_scale, &sd); /* no allocation: a sample's path */
    d->inc_center = med;
    d->inc_spread = spread_floor(fmax(mad_scale, sd), med);
    d->incident = 1;
}

void ad_det_departure_ref(ad_detector *d)
{
    double v[REF_MAX], sum = 0.0;
    const int sw = d->cfg.scorer.short_window;
    int n = d->hn; /* the values the network was trained on (the newest 4096 at most) */

    d->dep_scale = 0.0;
    if (n > REF_MAX)
        n = REF_MAX;
    /* (short_window is bounded for the likelihood scorer only: no 3 * sw overflow) */
    if (sw < 1 || n < REF_MIN || sw > (n - REF_MIN) / 3)
        return;
    const int skip = 3 * sw;
    for (int i = 0; i < n; i++) {
        v[i] = d->hv[hist_index(d, d->hn - n + i)];
        sum += v[i];
    }
    const double center = sum / n;
    /* the moving mean as the sample path keeps it, replayed from the first value; its
     * distances from the center once it has settled (3 short_windows in) */
    double m = v[0];
    for (int i = 0; i < n; i++) {
        m += (v[i] - m) / (double)sw;
        v[i] = fabs(m - center);
    }
    d->dep_center = center;
    d->dep_scale = spread_floor(ad_quantile(v + skip, n - skip, 0.99), center);
}

/* The shift for a span of seconds: the largest, at most 30, with span * 2^shift < 2^30
 * (a quarter of the range). */
int ad_det_span_shift(double span)
{
    int e;
    if (!(span > 0.0))
        return 30;
    frexp(span, &e); /* span < 2^e */
    return 30 - e < -1000 ? -1000 : 30 - e > 30 ? 30 : 30 - e;
}

/* ts as an offset at the current base and shift, saturated to [0, 2^32 - 1]. */
uint32_t ad_det_hts_encode(const ad_detector *d, double ts)
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
    int shift = ad_det_span_shift(newest - base);
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
void ad_det_hts_put(ad_detector *d, double ts)
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
    d->hts[d->hpos] = ad_det_hts_encode(d, ts);
}

/* The history value nearest in time to t, if one lies within tol seconds of it. */
int ad_det_hist_at(const ad_detector *d, double t, double tol, double *v)
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
