/*
 * check_scorer.c - scorer.c: the likelihood, dynamic-threshold and static scorers. Config
 * refusals naming the field; scores in [0, 1] for any finite error; calibration on i.i.d.
 * |N(0,1)| errors (outliers high, clean noise rarely flagged); flagged values kept out of
 * the statistics and score() without commit changing nothing (both bit-exact against a
 * twin); each kind's formula; exact save/load, refusals of other configurations and of
 * truncated states; reset; names.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "net.h" /* ad_err */
#include "rng.h"
#include "scorer.h"

/* ---- helpers ---- */

static ad_scorer *make(const ad_scorer_config *c)
{
    ad_scorer *s = NULL;
    char err[200] = "";
    ck_assert_msg(ad_scorer_create(c, &s, err, sizeof(err)) == 0, "create: %s", err);
    ck_assert_ptr_nonnull(s);
    return s;
}

static ad_scorer *make_kind(ad_scorer_kind kind)
{
    ad_scorer_config c;
    ad_scorer_defaults(&c, kind);
    return make(&c);
}

/* |N(0, 1)|: the absolute prediction error of a good model, in scale units. */
static float abs_normal(ad_rng *r)
{
    return fabsf(ad_rng_normal(r));
}

/* Scores e, commits with the flag the scorer's threshold decides, returns the score. */
static float step(ad_scorer *s, float e)
{
    float sc = ad_scorer_score(s, e);
    ad_scorer_commit(s, sc >= ad_scorer_get_config(s)->threshold);
    return sc;
}

static int same_float(float a, float b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

/* Saves s into a new buffer; *len gets its size. */
static uint8_t *save(const ad_scorer *s, size_t *len)
{
    ad_wbuf w;
    ad_wbuf_init(&w, NULL, 0);
    ad_scorer_save(s, &w);
    ck_assert_int_eq(w.err, 0);
    uint8_t *buf = malloc(w.len);
    ck_assert_ptr_nonnull(buf);
    *len = w.len;
    ad_wbuf_init(&w, buf, *len);
    ad_scorer_save(s, &w);
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, *len);
    return buf;
}

static int load(ad_scorer *s, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    ad_rbuf r;
    ad_rbuf_init(&r, buf, len);
    return ad_scorer_load(s, &r, err, errlen);
}

/* Feeds both scorers the same n errors and asserts bit-identical scores and thresholds. */
static void assert_twins(ad_scorer *a, ad_scorer *b, ad_rng *r, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        float e = abs_normal(r) * (i % 97 == 0 ? 9.0f : 1.0f); /* an outlier now and then */
        float sa = step(a, e), sb = step(b, e);
        ck_assert_msg(same_float(sa, sb), "%s: step %d: scores %.9g vs %.9g", what, i, (double)sa,
                      (double)sb);
        float ta = ad_scorer_error_threshold(a), tb = ad_scorer_error_threshold(b);
        ck_assert_msg(same_float(ta, tb), "%s: step %d: thresholds %.9g vs %.9g", what, i,
                      (double)ta, (double)tb);
    }
}

/* ---- config ---- */

START_TEST(test_defaults_valid)
{
    for (int k = 0; k < AD_SCORER_NKINDS; k++) {
        ad_scorer_config c;
        char err[200] = "";
        ad_scorer_defaults(&c, (ad_scorer_kind)k);
        ck_assert_int_eq((int)c.kind, k);
        ck_assert_msg(ad_scorer_config_check(&c, err, sizeof(err)) == 0, "%s: %s",
                      ad_scorer_name((ad_scorer_kind)k), err);
    }
    ad_scorer_config c;
    ad_scorer_defaults(&c, AD_SCORER_LIKELIHOOD);
    ck_assert_int_eq(c.window, 1000);
    ck_assert_int_eq(c.short_window, 10);
    ck_assert_int_eq(c.min_samples, 100);
    ck_assert_float_eq(c.threshold, 0.5f);
}
END_TEST

/* One bad field: the kind it applies to, a mutation, and a word the message must hold. */
typedef struct bad_case {
    ad_scorer_kind kind;
    const char *field;
    void (*mutate)(ad_scorer_config *c);
} bad_case;

/* clang-format off */
static void thr_zero(ad_scorer_config *c) { c->threshold = 0.0f; }
static void thr_big(ad_scorer_config *c) { c->threshold = 1.01f; }
static void thr_nan(ad_scorer_config *c) { c->threshold = NAN; }
static void win_15(ad_scorer_config *c) { c->window = 15; }
static void min_over(ad_scorer_config *c) { c->min_samples = c->window + 1; }
static void min_zero(ad_scorer_config *c) { c->min_samples = 0; }
static void short_zero(ad_scorer_config *c) { c->short_window = 0; }
static void short_over(ad_scorer_config *c) { c->short_window = c->window + 1; }
static void alpha_zero(ad_scorer_config *c) { c->ewma_alpha = 0.0f; }
static void alpha_big(ad_scorer_config *c) { c->ewma_alpha = 1.5f; }
static void z_swapped(ad_scorer_config *c) { c->z_min = 5.0f; c->z_max = 3.0f; }
static void z_zero(ad_scorer_config *c) { c->z_min = 0.0f; }
static void prune_one(ad_scorer_config *c) { c->prune = 1.0f; }
static void prune_neg(ad_scorer_config *c) { c->prune = -0.1f; }
static void refit_zero(ad_scorer_config *c) { c->refit = 0; }
static void k_zero(ad_scorer_config *c) { c->k = 0.0f; }
static void k_neg(ad_scorer_config *c) { c->k = -1.0f; }
static void k_inf(ad_scorer_config *c) { c->k = INFINITY; }
static void bound_neg(ad_scorer_config *c) { c->error_bound = -1.0f; }
static void bound_nan(ad_scorer_config *c) { c->error_bound = NAN; }
static void kind_three(ad_scorer_config *c) { c->kind = (ad_scorer_kind)3; }
static void kind_neg(ad_scorer_config *c) { c->kind = (ad_scorer_kind)-1; }
/* clang-format on */

static const bad_case bad_cases[] = {
    {AD_SCORER_LIKELIHOOD, "threshold", thr_zero},
    {AD_SCORER_DYNAMIC, "threshold", thr_zero},
    {AD_SCORER_STATIC, "threshold", thr_zero},
    {AD_SCORER_LIKELIHOOD, "threshold", thr_big},
    {AD_SCORER_DYNAMIC, "threshold", thr_big},
    {AD_SCORER_STATIC, "threshold", thr_big},
    {AD_SCORER_LIKELIHOOD, "threshold", thr_nan},
    {AD_SCORER_LIKELIHOOD, "window", win_15},
    {AD_SCORER_DYNAMIC, "window", win_15},
    {AD_SCORER_LIKELIHOOD, "min_samples", min_over},
    {AD_SCORER_DYNAMIC, "min_samples", min_over},
    {AD_SCORER_LIKELIHOOD, "min_samples", min_zero},
    {AD_SCORER_LIKELIHOOD, "short_window", short_zero},
    {AD_SCORER_LIKELIHOOD, "short_window", short_over},
    {AD_SCORER_DYNAMIC, "ewma_alpha", alpha_zero},
    {AD_SCORER_DYNAMIC, "ewma_alpha", alpha_big},
    {AD_SCORER_DYNAMIC, "z_min", z_swapped},
    {AD_SCORER_DYNAMIC, "z_min", z_zero},
    {AD_SCORER_DYNAMIC, "prune", prune_one},
    {AD_SCORER_DYNAMIC, "prune", prune_neg},
    {AD_SCORER_DYNAMIC, "refit", refit_zero},
    {AD_SCORER_STATIC, "k ", k_zero},
    {AD_SCORER_STATIC, "k ", k_neg},
    {AD_SCORER_STATIC, "k ", k_inf},
    {AD_SCORER_LIKELIHOOD, "error_bound", bound_neg},
    {AD_SCORER_LIKELIHOOD, "error_bound", bound_nan},
    {AD_SCORER_LIKELIHOOD, "kind", kind_three},
    {AD_SCORER_LIKELIHOOD, "kind", kind_neg},
};

START_TEST(test_config_refusals)
{
    const bad_case *bc = &bad_cases[_i];
    ad_scorer_config c;
    ad_scorer *s = (ad_scorer *)&c; /* must be set to NULL on failure */
    char err[200] = "";

    ad_scorer_defaults(&c, bc->kind);
    bc->mutate(&c);
    ck_assert_int_eq(ad_scorer_config_check(&c, err, sizeof(err)), -AD_EINVAL);
    ck_assert_msg(strstr(err, bc->field) != NULL, "case %d: message \"%s\" does not name %s", _i,
                  err, bc->field);
    err[0] = '\0';
    ck_assert_int_eq(ad_scorer_create(&c, &s, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, bc->field) != NULL, "create: \"%s\"", err);
    /* no message buffer: still refused, nothing written */
    ck_assert_int_eq(ad_scorer_config_check(&c, NULL, 0), -AD_EINVAL);
}
END_TEST

/* Fields that do not apply to a kind are not checked for it. */
START_TEST(test_config_irrelevant_fields)
{
    ad_scorer_config c;
    char err[200] = "";
    ad_scorer_defaults(&c, AD_SCORER_STATIC);
    c.window = 0;
    c.min_samples = 0;
    c.ewma_alpha = 0.0f;
    ck_assert_msg(ad_scorer_config_check(&c, err, sizeof(err)) == 0, "%s", err);
    ad_scorer_defaults(&c, AD_SCORER_LIKELIHOOD);
    c.ewma_alpha = 0.0f;
    c.refit = 0;
    c.k = 0.0f;
    ck_assert_msg(ad_scorer_config_check(&c, err, sizeof(err)) == 0, "%s", err);
    /* the bounds themselves are accepted */
    c.threshold = 1.0f;
    c.window = 16;
    c.min_samples = 16;
    c.short_window = 16;
    ck_assert_msg(ad_scorer_config_check(&c, err, sizeof(err)) == 0, "%s", err);
}
END_TEST

/* ---- range ---- */

START_TEST(test_scores_in_unit_interval)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    const float odd[] = {0.0f,  -0.0f,  FLT_MIN, 1e-45f,   1e-30f,  1.0f, -1.0f, 1e6f,     -1e6f,
                         1e30f, -1e30f, FLT_MAX, -FLT_MAX, 3.0e38f, 4.0f, 8.0f,  123456.f, 0.5f};
    const int nodd = (int)(sizeof(odd) / sizeof(odd[0]));
    ad_scorer *s = make_kind(kind);
    ad_rng r;

    ad_rng_seed(&r, 11 + (uint64_t)_i);
    /* huge values during the warm-up go into the statistics; then a mix */
    for (int i = 0; i < 5000; i++) {
        float e = (i % 7 == 3 || i < 50) ? odd[(i * 5 + 1) % nodd] : abs_normal(&r);
        if (i % 2)
            e = -e;
        for (int j = 0; j < nodd; j += 5) { /* probes, not committed */
            float p = ad_scorer_score(s, odd[j]);
            ck_assert_msg(p >= 0.0f && p <= 1.0f, "%s: step %d: score(%g) = %g",
                          ad_scorer_name(kind), i, (double)odd[j], (double)p);
        }
        float sc = step(s, e);
        ck_assert_msg(sc >= 0.0f && sc <= 1.0f, "%s: step %d: score(%g) = %g", ad_scorer_name(kind),
                      i, (double)e, (double)sc);
    }
    /* after a long run of huge errors, small ones and zero still score in range */
    for (int i = 0; i < 3000; i++) {
        float sc = step(s, i % 2 ? 1e30f : FLT_MAX);
        ck_assert(sc >= 0.0f && sc <= 1.0f);
    }
    for (int i = 0; i < 3000; i++) {
        float sc = step(s, i % 3 ? 0.0f : 1e-3f);
        ck_assert_msg(sc >= 0.0f && sc <= 1.0f, "%s: score %g", ad_scorer_name(kind), (double)sc);
    }
    ad_scorer_free(s);
}
END_TEST

START_TEST(test_zero_until_min_samples)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i; /* likelihood, dynamic */
    ad_scorer_config c;
    ad_scorer_defaults(&c, kind);
    c.min_samples = 40;
    ad_scorer *s = make(&c);
    ad_rng r;
    ad_rng_seed(&r, 3);

    /* flagged commits do not count towards min_samples */
    for (int i = 0; i < 100; i++) {
        ck_assert_float_eq(ad_scorer_score(s, 1e30f), 0.0f);
        ad_scorer_commit(s, 1);
    }
    for (int i = 0; i < c.min_samples; i++) {
        ck_assert_msg(ad_scorer_score(s, 1e30f) == 0.0f, "%s: score before %d commits",
                      ad_scorer_name(kind), i);
        ck_assert_float_eq(ad_scorer_score(s, abs_normal(&r)), 0.0f);
        ad_scorer_commit(s, 0);
    }
    float p = ad_scorer_score(s, 1e30f);
    ck_assert_msg(p >= c.threshold, "%s: after min_samples a huge error scores %g",
                  ad_scorer_name(kind), (double)p);
    ad_scorer_free(s);
}
END_TEST

/* ---- calibration on i.i.d. |N(0,1)| errors ---- */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The smallest single outlier each kind flags reliably (defaults): see the report below. */
static const float outlier_for[AD_SCORER_NKINDS] = {16.0f, 8.0f, 8.0f};

START_TEST(test_calibration)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    const int N = 30000, skip = 1000;
    const float big = outlier_for[kind];
    ad_scorer *s = make_kind(kind);
    const float thr = ad_scorer_get_config(s)->threshold;
    double probe_min[3] = {1.0, 1.0, 1.0}, probe_sum[3] = {0};
    const float probes[3] = {6.0f, 8.0f, big};
    int flags = 0, nprobe = 0, nsc = 0;
    float *scores = malloc((size_t)N * sizeof(*scores));
    ad_rng r;

    ad_rng_seed(&r, 2024);
    for (int i = 0; i < N; i++) {
        float e = abs_normal(&r);
        if (i >= skip) {
            /* what an outlier would score here (score() alone changes nothing) */
            for (int j = 0; j < 3; j++) {
                float p = ad_scorer_score(s, probes[j]);
                probe_min[j] = fmin(probe_min[j], p);
                probe_sum[j] += p;
            }
            nprobe++;
        }
        float sc = step(s, e);
        if (i >= skip) {
            flags += sc >= thr;
            scores[nsc++] = sc;
        }
    }
    qsort(scores, (size_t)nsc, sizeof(*scores), cmp_float);
    double median = scores[nsc / 2], p99 = scores[nsc * 99 / 100];
    free(scores);
    double frac = (double)flags / (N - skip);
    fprintf(
        stderr,
        "%-10s clean |N(0,1)|: %d/%d flagged (%.4f%%), median score %.3f, 99th pct %.3f; outlier "
        "6: min %.3f mean %.3f, 8: min %.3f mean %.3f, %g: min %.3f mean %.3f\n",
        ad_scorer_name(kind), flags, N - skip, 100.0 * frac, median, p99, probe_min[0],
        probe_sum[0] / nprobe, probe_min[1], probe_sum[1] / nprobe, (double)big, probe_min[2],
        probe_sum[2] / nprobe);
    ck_assert_msg(frac < 0.01, "%s: %.3f%% of clean noise flagged", ad_scorer_name(kind),
                  100.0 * frac);
    ck_assert_msg(median < 0.4 && p99 < thr, "%s: typical values score high (median %g, 99th %g)",
                  ad_scorer_name(kind), median, p99);
    ck_assert_msg(probe_min[2] >= thr, "%s: an outlier of %g scored only %g somewhere",
                  ad_scorer_name(kind), (double)big, probe_min[2]);
    ad_scorer_free(s);
}
END_TEST

/* ---- state: flagged values and score() ---- */

/*
 * A committed flag leaves no trace: a scorer that scored a huge error and committed it
 * flagged continues bit-identically to a twin that never saw it.
 */
START_TEST(test_flagged_kept_out)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    ad_scorer *a = make_kind(kind), *b = make_kind(kind);
    ad_rng r;
    char what[64];

    ad_rng_seed(&r, 77);
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < (round ? 300 : 50); i++) { /* round 0: before min_samples */
            float e = abs_normal(&r);
            float sa = step(a, e), sb = step(b, e);
            ck_assert(same_float(sa, sb));
        }
        /* a sees an anomaly and is told it was flagged; b never sees it */
        float sa = ad_scorer_score(a, 50.0f + (float)round);
        if (round > 0) /* past min_samples: the caller flags it */
            ck_assert_msg(sa >= 0.5f, "%s: outlier scored %g", ad_scorer_name(kind), (double)sa);
        ad_scorer_commit(a, 1);
        snprintf(what, sizeof(what), "%s after a flagged value (round %d)", ad_scorer_name(kind),
                 round);
        assert_twins(a, b, &r, 200, what);
    }
    ad_scorer_free(a);
    ad_scorer_free(b);
}
END_TEST

/* score() without commit changes nothing: twice gives the same; probes leave no trace. */
START_TEST(test_score_is_pure)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    ad_scorer *a = make_kind(kind), *b = make_kind(kind);
    ad_rng r, q;

    ad_rng_seed(&r, 5);
    ad_rng_seed(&q, 6);
    for (int i = 0; i < 3000; i++) {
        float e = abs_normal(&r) * (i % 211 == 0 ? 10.0f : 1.0f);
        /* a: probes with other errors first, and scores e twice */
        for (int j = 0; j < 3; j++)
            (void)ad_scorer_score(a, j == 2 ? 1e30f : 5.0f * abs_normal(&q));
        float s1 = ad_scorer_score(a, e), s2 = ad_scorer_score(a, e);
        ck_assert_msg(same_float(s1, s2), "%s: step %d: %g then %g", ad_scorer_name(kind), i,
                      (double)s1, (double)s2);
        float sb = ad_scorer_score(b, e);
        ck_assert_msg(same_float(s1, sb), "%s: step %d: probed %g, twin %g", ad_scorer_name(kind),
                      i, (double)s1, (double)sb);
        int f = s1 >= 0.5f;
        ad_scorer_commit(a, f);
        ad_scorer_commit(b, f);
    }
    ad_scorer_free(a);
    ad_scorer_free(b);
}
END_TEST

/* ---- each kind's formula ---- */

START_TEST(test_static_formula)
{
    ad_scorer_config c;
    ad_scorer_defaults(&c, AD_SCORER_STATIC);
    c.k = 2.5f;
    ad_scorer *s = make(&c);
    const float es[] = {0.0f, 1e-20f, 0.1f, 1.0f, 2.4999f, 2.5f, 2.5001f, 7.0f, 1e10f, 1e30f};

    ck_assert_float_eq(ad_scorer_error_threshold(s), 2.5f);
    for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            float e = (float)sign * es[i], a = fabsf(e);
            volatile float want = a / (a + c.k);
            float got = ad_scorer_score(s, e);
            ck_assert_msg(same_float(got, want), "score(%g) = %.9g, want %.9g", (double)e,
                          (double)got, (double)want);
            ad_scorer_commit(s, got >= c.threshold);
            ck_assert_float_eq(ad_scorer_error_threshold(s), 2.5f);
        }
    }
    ck_assert(ad_scorer_score(s, 2.5f) == 0.5f);
    ck_assert(ad_scorer_score(s, -2.5f) == 0.5f);
    ck_assert(ad_scorer_score(s, 2.4999f) < 0.5f);
    ad_scorer_free(s);
}
END_TEST

/* Replays the scorer's smoothing and window; returns (thr - mu) / sigma of the window. */
typedef struct dyn_model {
    float es;
    int count;
    float *win; /* (window) chronological ring */
    int n, pos, cap;
} dyn_model;

static void dyn_push(dyn_model *m, float a, float alpha, int flagged)
{
    float es = m->count == 0 ? a : alpha * a + (1.0f - alpha) * m->es;
    if (flagged)
        return; /* kept out: the smoothing goes on from the last normal value */
    m->es = es;
    m->count++;
    m->win[m->pos] = es;
    m->pos = (m->pos + 1) % m->cap;
    if (m->n < m->cap)
        m->n++;
}

static void dyn_stats(const dyn_model *m, double *mu, double *sd)
{
    double s = 0.0, q = 0.0;
    for (int i = 0; i < m->n; i++)
        s += m->win[i];
    *mu = s / m->n;
    for (int i = 0; i < m->n; i++)
        q += (m->win[i] - *mu) * (m->win[i] - *mu);
    *sd = sqrt(q / m->n);
}

START_TEST(test_dynamic_threshold)
{
    const int refit = _i ? 100 : 1;
    ad_scorer_config c;
    ad_scorer_defaults(&c, AD_SCORER_DYNAMIC);
    c.window = 400;
    c.min_samples = 100;
    c.refit = refit;
    ad_scorer *s = make(&c);
    dyn_model m = {0.0f, 0, calloc((size_t)c.window, sizeof(float)), 0, 0, c.window};
    ad_rng r;
    float last_thr = NAN;
    int changes = 0, since_change = 0, checked = 0;

    ck_assert_ptr_nonnull(m.win);
    ad_rng_seed(&r, 99);
    ck_assert(isnan(ad_scorer_error_threshold(s)));
    for (int i = 0; i < 3000; i++) {
        float e = abs_normal(&r) * (i % 150 == 149 ? 12.0f : 1.0f);
        double mu, sd;
        if (m.n > 0)
            dyn_stats(&m, &mu, &sd);
        float sc = ad_scorer_score(s, e);
        float thr = ad_scorer_error_threshold(s);
        if (m.count < c.min_samples) {
            ck_assert(isnan(thr));
        } else {
            ck_assert_msg(isfinite(thr) && thr > 0.0f, "step %d: threshold %g", i, (double)thr);
            if (!same_float(thr, last_thr)) {
                /* a refit: thr = mu + z sigma of the window as it is now */
                double z = ((double)thr - mu) / sd;
                double grid = c.z_min + 0.5 * round((z - c.z_min) / 0.5);
                ck_assert_msg(z >= c.z_min - 1e-3 && z <= c.z_max + 1e-3,
                              "step %d: threshold %g = mu %g + %g sigma %g, outside [%g, %g]", i,
                              (double)thr, mu, z, sd, (double)c.z_min, (double)c.z_max);
                ck_assert_msg(fabs(z - grid) < 1e-3, "step %d: z %g is not on the 0.5 grid", i, z);
                /* (the first interval after min_samples is one commit short) */
                ck_assert_msg(changes == 0 || since_change >= refit - 1,
                              "step %d: threshold changed after %d commits (refit %d)", i,
                              since_change, refit);
                changes++;
                since_change = 0;
                checked++;
            }
            /* the score follows the documented formula unless pruned */
            float ew =
                m.count == 0 ? fabsf(e) : c.ewma_alpha * fabsf(e) + (1.0f - c.ewma_alpha) * m.es;
            ck_assert_msg(sc == 0.0f || fabsf(sc - ew / (ew + thr)) < 1e-6f,
                          "step %d: score %g, e/(e+thr) = %g", i, (double)sc,
                          (double)(ew / (ew + thr)));
        }
        last_thr = thr;
        int f = sc >= c.threshold;
        ad_scorer_commit(s, f);
        dyn_push(&m, fabsf(e), c.ewma_alpha, f);
        since_change += !f;
    }
    fprintf(stderr, "dynamic refit %d: %d threshold re-fits checked\n", refit, checked);
    ck_assert_int_gt(checked, refit == 1 ? 100 : 10);
    free(m.win);
    ad_scorer_free(s);
}
END_TEST

/*
 * A run of errors 3x the usual drives the likelihood up within short_window samples. The
 * average of short_window errors is random, so this is a rate: 3 x the mean of ten |N(0,1)|
 * stays under the 0.5 score's level about 8% of the time (measured below).
 */
/*
 * The likelihood score against one computed afresh from every value committed, through
 * errors of 1e30 and 1e6 that enter and leave both rings: the rings keep running sums,
 * and what was added beside such a value must not be lost in its rounding when it leaves.
 */
START_TEST(test_likelihood_reference)
{
    enum { N = 3000 };
    static float A[N], P[N]; /* committed |errors|, committed moving averages */
    ad_scorer_config c;
    ad_scorer_defaults(&c, AD_SCORER_LIKELIHOOD);
    c.window = 50;
    c.short_window = 10 + 20 * _i;
    c.min_samples = 20;
    ad_scorer *s = make(&c);
    ad_rng r;
    ad_rng_seed(&r, 5 + (uint64_t)_i);

    for (int n = 0; n < N; n++) {
        const float e = n % 397 == 100 ? 1e30f : n % 211 == 7 ? 1e6f : abs_normal(&r);
        const float got = ad_scorer_score(s, e);
        double sum = fabsf(e);
        int k = 1;
        for (int j = n - 1; j >= 0 && k < c.short_window; j--, k++)
            sum += A[j];
        const float pend = (float)(sum / k);
        float want = 0.0f;
        if (n >= c.min_samples) {
            const int w0 = n > c.window ? n - c.window : 0, m = n - w0;
            double s1 = 0.0, s2 = 0.0;
            for (int j = w0; j < n; j++) {
                s1 += P[j];
                s2 += (double)P[j] * P[j];
            }
            double mean = s1 / m, var = m < 2 ? 0.0 : s2 / m - mean * mean;
            var = var > 0.0 ? var : 0.0;
            const double sdf = 0.01 * mean > c.min_sd ? 0.01 * mean : c.min_sd;
            const double sd = sqrt(var > sdf * sdf ? var : sdf * sdf), z = (pend - mean) / sd;
            const double tail = 0.5 * erfc(z / sqrt(2.0));
            const double L = tail > 1e-300 ? -log10(tail)
                                           : (0.5 * z * z + log(z * 2.5066282746310002)) / log(10.0);
            want = (float)(L / (L + 5.0));
        }
        ck_assert_msg(fabsf(got - want) <= 1e-4f, "short_window %d, value %d (%g): score %.6f, "
                      "recomputed %.6f", c.short_window, n, (double)e, (double)got, (double)want);
        ad_scorer_commit(s, 0);
        A[n] = fabsf(e);
        P[n] = pend;
    }
    ad_scorer_free(s);
}
END_TEST

START_TEST(test_likelihood_sustained)
{
    const int runs = 200;
    ad_scorer *s = make_kind(AD_SCORER_LIKELIHOOD);
    const ad_scorer_config *c = ad_scorer_get_config(s);
    int hist[31] = {0}, within = 0, worst = 0;
    ad_rng r;

    ad_rng_seed(&r, 8);
    for (int run = 0; run < runs; run++) {
        for (int i = 0; i < 1500; i++) /* more than a window: runs are independent */
            step(s, abs_normal(&r));
        int delay = 30;
        for (int i = 0; i < 3 * c->short_window; i++) {
            float sc = step(s, 3.0f * abs_normal(&r));
            if (sc >= c->threshold && delay == 30)
                delay = i + 1; /* samples into the run */
        }
        hist[delay]++;
        within += delay <= c->short_window;
        worst = delay > worst ? delay : worst;
    }
    fprintf(stderr,
            "likelihood: runs of 3x errors flagged within %d samples in %d of %d runs "
            "(worst %d); samples to the first flag:",
            c->short_window, within, runs, worst);
    for (int i = 0; i <= 30; i++)
        if (hist[i])
            fprintf(stderr, " %d:%d", i, hist[i]);
    fprintf(stderr, "\n");
    ck_assert_msg(within >= runs * 85 / 100, "only %d of %d runs flagged within %d samples", within,
                  runs, c->short_window);
    ck_assert_msg(worst < 3 * c->short_window, "a run of 3x errors went unflagged for %d samples",
                  3 * c->short_window);
    ck_assert(isnan(ad_scorer_error_threshold(s)));
    ad_scorer_free(s);
}
END_TEST

/* With error_bound, one huge error among normal ones does not flag on its own (it
 * does without), while a sustained run of large errors still flags. */
START_TEST(test_likelihood_error_bound)
{
    ad_scorer_config c;
    ad_scorer_defaults(&c, AD_SCORER_LIKELIHOOD);
    c.error_bound = _i ? 3.0f : 0.0f;
    ad_scorer *s = make(&c);
    ad_rng r;
    ad_rng_seed(&r, 12);
    for (int i = 0; i < 1500; i++)
        step(s, abs_normal(&r));
    float spike = step(s, 1000.0f);
    int run_flagged = 0;
    for (int i = 0; i < 100; i++) /* the spike leaves the short window */
        step(s, abs_normal(&r));
    for (int i = 0; i < 30; i++)
        run_flagged |= step(s, 20.0f + abs_normal(&r)) >= c.threshold;
    fprintf(stderr, "error bound %g: one error of 1000 scores %.3f, a run of 20s %s\n",
            (double)c.error_bound, (double)spike, run_flagged ? "flagged" : "not flagged");
    if (_i)
        ck_assert_msg(spike < c.threshold, "a single bounded error scored %g", (double)spike);
    else
        ck_assert_msg(spike >= c.threshold, "a single unbounded error scored %g", (double)spike);
    ck_assert_msg(run_flagged, "a sustained run of large errors was not flagged");
    ad_scorer_free(s);
}
END_TEST

/* ---- serialisation ---- */

START_TEST(test_save_load_roundtrip)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    const int points[] = {0, 1, 50, 99, 100, 999, 1000, 1001, 2345};
    for (size_t p = 0; p < sizeof(points) / sizeof(points[0]); p++) {
        ad_scorer *a = make_kind(kind), *b = make_kind(kind);
        ad_rng r;
        char err[200] = "", what[64];
        size_t len, len2;

        ad_rng_seed(&r, 1000 + p);
        /* b is dirty before the load: the load must overwrite everything */
        for (int i = 0; i < 321; i++)
            step(b, 2.0f * abs_normal(&r));
        for (int i = 0; i < points[p]; i++)
            step(a, abs_normal(&r) * (i % 89 == 0 ? 10.0f : 1.0f));
        uint8_t *buf = save(a, &len);
        ck_assert_msg(load(b, buf, len, err, sizeof(err)) == 0, "load: %s", err);
        uint8_t *buf2 = save(b, &len2);
        ck_assert_uint_eq(len, len2);
        ck_assert_mem_eq(buf, buf2, len);
        snprintf(what, sizeof(what), "%s loaded after %d", ad_scorer_name(kind), points[p]);
        assert_twins(a, b, &r, 2500, what);
        free(buf);
        free(buf2);
        ad_scorer_free(a);
        ad_scorer_free(b);
    }
}
END_TEST

START_TEST(test_load_refuses_other_config)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    ad_scorer_config c, o;
    ad_rng r;
    size_t len;

    ad_scorer_defaults(&c, kind);
    ad_scorer *src = make(&c);
    ad_rng_seed(&r, 31);
    for (int i = 0; i < 500; i++)
        step(src, abs_normal(&r));
    uint8_t *buf = save(src, &len);

    for (int v = 0; v < 4; v++) {
        o = c;
        switch (v) {
        case 0:
            o.kind = (ad_scorer_kind)((kind + 1) % AD_SCORER_NKINDS);
            break;
        case 1:
            o.threshold = 0.7f;
            break;
        case 2:
            o.window = 500;
            break;
        default:
            o.k = 3.0f;
            o.ewma_alpha = 0.2f;
            o.short_window = 5;
            break;
        }
        ad_scorer *s = make(&o), *twin = make(&o);
        char err[200] = "";
        ad_rng q;
        ad_rng_seed(&q, 4);
        for (int i = 0; i < 400; i++) {
            float e = abs_normal(&q);
            step(s, e);
            step(twin, e);
        }
        ck_assert_int_eq(load(s, buf, len, err, sizeof(err)), -AD_EFORMAT);
        ck_assert_msg(strstr(err, "configuration") != NULL, "variant %d: \"%s\"", v, err);
        /* the refused load left s as it was */
        assert_twins(s, twin, &q, 1200, "after a refused load");
        ad_scorer_free(s);
        ad_scorer_free(twin);
    }
    free(buf);
    ad_scorer_free(src);
}
END_TEST

START_TEST(test_load_refuses_truncated)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    ad_scorer *src = make_kind(kind), *s = make_kind(kind);
    ad_rng r;
    size_t len;

    ad_rng_seed(&r, 32);
    for (int i = 0; i < 700; i++)
        step(src, abs_normal(&r));
    uint8_t *buf = save(src, &len);
    for (size_t n = 0; n < len; n++) {
        char err[200] = "";
        /* a copy exactly n bytes long, so ASan sees any read past it */
        uint8_t *cut = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(cut);
        memcpy(cut, buf, n);
        ck_assert_msg(load(s, cut, n, err, sizeof(err)) == -AD_EFORMAT, "%zu of %zu bytes loaded",
                      n, len);
        ck_assert_msg(err[0] != '\0', "%zu bytes: no message", n);
        free(cut);
    }
    /* still usable: it scores in range, and loads a whole state afterwards */
    for (int i = 0; i < 300; i++) {
        float sc = step(s, abs_normal(&r));
        ck_assert(sc >= 0.0f && sc <= 1.0f);
    }
    char err[200] = "";
    ck_assert_msg(load(s, buf, len, err, sizeof(err)) == 0, "%s", err);
    assert_twins(src, s, &r, 1000, "loaded after refusals");
    /* a bad magic */
    buf[0] ^= 0x40;
    ck_assert_int_eq(load(s, buf, len, err, sizeof(err)), -AD_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err, "magic"));
    free(buf);
    ad_scorer_free(src);
    ad_scorer_free(s);
}
END_TEST

/* ---- layout: one block, placed by the caller or allocated ---- */

/* A scorer in a caller's block is the same scorer as an allocated one, its block is what
 * ad_scorer_size says (struct, short ring, window ring; a window of floats and a line or
 * three of the rest), and the next write's address lies in the block. */
START_TEST(test_in_place)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    ad_scorer_config c;
    ad_scorer *a = make_kind(kind), *b = NULL;
    char err[128] = "";
    ad_rng r;

    ad_scorer_defaults(&c, kind);
    const size_t size = ad_scorer_size(&c);
    const size_t rings = kind == AD_SCORER_STATIC ? 0 :
                         ((size_t)c.window + (kind == AD_SCORER_LIKELIHOOD ? c.short_window : 0)) *
                             sizeof(float);
    ck_assert_uint_eq(size % AD_SCORER_ALIGN, 0);
    ck_assert_uint_ge(size, rings);
    ck_assert_uint_le(size, rings + 4 * 64);
    ck_assert_uint_eq(ad_scorer_bytes(a), size);
    void *mem = aligned_alloc(AD_SCORER_ALIGN, size);
    ck_assert_ptr_nonnull(mem);
    memset(mem, 0xa5, size); /* init must not rely on zeroed memory */
    ck_assert_int_eq(ad_scorer_init(mem, &c, &b, err, sizeof(err)), 0);
    ck_assert_ptr_eq(b, mem);
    ad_rng_seed(&r, 5);
    for (int i = 0; i < 1500; i++) {
        const char *slot = ad_scorer_next_write(b);
        ck_assert(kind == AD_SCORER_STATIC ? slot == NULL :
                  slot >= (const char *)mem && slot < (const char *)mem + size);
        float e = abs_normal(&r) * (i % 97 == 0 ? 9.0f : 1.0f);
        float sa = step(a, e), sb = step(b, e);
        ck_assert_msg(same_float(sa, sb), "step %d: %.9g vs %.9g", i, (double)sa, (double)sb);
    }
    c.threshold = 0.0f; /* invalid: refused */
    ck_assert_int_eq(ad_scorer_init(mem, &c, &b, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_null(b);
    ad_scorer_free(a);
    free(mem);
}
END_TEST

/* ---- reset, names ---- */

START_TEST(test_reset)
{
    const ad_scorer_kind kind = (ad_scorer_kind)_i;
    ad_scorer *a = make_kind(kind), *fresh = make_kind(kind);
    ad_rng r;

    ad_rng_seed(&r, 12);
    for (int i = 0; i < 1700; i++)
        step(a, abs_normal(&r) * (i % 50 == 0 ? 20.0f : 1.0f));
    ad_scorer_reset(a);
    float ta = ad_scorer_error_threshold(a), tf = ad_scorer_error_threshold(fresh);
    ck_assert(same_float(ta, tf));
    assert_twins(a, fresh, &r, 2500, "after reset");
    ck_assert_uint_eq(ad_scorer_bytes(a), ad_scorer_bytes(fresh));
    ad_scorer_free(a);
    ad_scorer_free(fresh);
}
END_TEST

START_TEST(test_names)
{
    for (int k = 0; k < AD_SCORER_NKINDS; k++) {
        const char *n = ad_scorer_name((ad_scorer_kind)k);
        ck_assert_ptr_nonnull(n);
        ck_assert_int_eq(ad_scorer_from_name(n), k);
    }
    ck_assert_str_eq(ad_scorer_name(AD_SCORER_LIKELIHOOD), "likelihood");
    ck_assert_str_eq(ad_scorer_name(AD_SCORER_DYNAMIC), "dynamic");
    ck_assert_str_eq(ad_scorer_name(AD_SCORER_STATIC), "static");
    ck_assert_ptr_null(ad_scorer_name(AD_SCORER_NKINDS));
    ck_assert_ptr_null(ad_scorer_name((ad_scorer_kind)-1));
    ck_assert_int_eq(ad_scorer_from_name("Likelihood"), -1);
    ck_assert_int_eq(ad_scorer_from_name(""), -1);
    ck_assert_int_eq(ad_scorer_from_name("nab"), -1);
    ck_assert_int_eq(ad_scorer_from_name(NULL), -1);
}
END_TEST

static Suite *scorer_suite(void)
{
    Suite *s = suite_create("scorer");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults_valid);
    tcase_add_loop_test(tc, test_config_refusals, 0,
                        (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
    tcase_add_test(tc, test_config_irrelevant_fields);
    suite_add_tcase(s, tc);

    tc = tcase_create("range");
    tcase_add_loop_test(tc, test_scores_in_unit_interval, 0, AD_SCORER_NKINDS);
    tcase_add_loop_test(tc, test_zero_until_min_samples, AD_SCORER_LIKELIHOOD,
                        AD_SCORER_DYNAMIC + 1);
    suite_add_tcase(s, tc);

    tc = tcase_create("calibration");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_calibration, 0, AD_SCORER_NKINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_add_loop_test(tc, test_flagged_kept_out, 0, AD_SCORER_NKINDS);
    tcase_add_loop_test(tc, test_score_is_pure, 0, AD_SCORER_NKINDS);
    tcase_add_loop_test(tc, test_reset, 0, AD_SCORER_NKINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("formula");
    tcase_add_test(tc, test_static_formula);
    tcase_add_loop_test(tc, test_dynamic_threshold, 0, 2);
    tcase_add_test(tc, test_likelihood_sustained);
    tcase_add_loop_test(tc, test_likelihood_reference, 0, 2);
    tcase_add_loop_test(tc, test_likelihood_error_bound, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("serial");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_save_load_roundtrip, 0, AD_SCORER_NKINDS);
    tcase_add_loop_test(tc, test_load_refuses_other_config, 0, AD_SCORER_NKINDS);
    tcase_add_loop_test(tc, test_load_refuses_truncated, 0, AD_SCORER_NKINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("layout");
    tcase_add_loop_test(tc, test_in_place, 0, AD_SCORER_NKINDS);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(scorer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
