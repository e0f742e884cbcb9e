/*
 * scorer.c - anomaly likelihood, dynamic thresholding and a static threshold over
 * prediction errors (scorer.h). Rings of committed values with running sums in double,
 * recomputed from the ring every `window` pushes so they never drift.
 */
#include "scorer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h" /* ad_err */

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

#define SCORER_MAGIC 0x52435341u /* "ASCR" */

/* A ring of the last cap values with their running sum and sum of squares. */
typedef struct ring {
    float *v;
    int cap, n, pos; /* capacity, values held, next write */
    int pushes;      /* since the sums were last recomputed */
    double sum, sumsq;
} ring;

struct ad_scorer {
    ad_scorer_config cfg;
    ring win;      /* LIKELIHOOD: moving averages; DYNAMIC: smoothed errors */
    ring shortr;   /* LIKELIHOOD: last short_window absolute errors */
    uint64_t count;  /* values committed */
    float pending;   /* LIKELIHOOD: moving average incl. the last scored error;
                        DYNAMIC: smoothed error incl. it; STATIC: |error| */
    float pending_abs; /* |last scored error| */
    float es;        /* DYNAMIC: smoothed error after the last commit */
    float eps;       /* DYNAMIC: current threshold (mu + z sigma) */
    float max_normal;/* DYNAMIC: largest smoothed error below eps at the last fit */
    int since_refit; /* DYNAMIC */
    float last_thr;  /* threshold in error units of the last score */
    float *mem;
};

static const char *const names[AD_SCORER_NKINDS] = {"likelihood", "dynamic", "static"};

const char *ad_scorer_name(ad_scorer_kind kind)
{
    return (int)kind >= 0 && kind < AD_SCORER_NKINDS ? names[kind] : NULL;
}

int ad_scorer_from_name(const char *name)
{
    for (int k = 0; name && k < AD_SCORER_NKINDS; k++)
        if (strcmp(name, names[k]) == 0)
            return k;
    return -1;
}

void ad_scorer_defaults(ad_scorer_config *c, ad_scorer_kind kind)
{
    memset(c, 0, sizeof(*c));
    c->kind = kind;
    c->threshold = 0.5f;
    c->window = 1000;
    c->short_window = 10;
    c->min_samples = 100;
    c->ewma_alpha = 0.3f;
    c->z_min = 2.0f;
    c->z_max = 10.0f;
    c->prune = 0.13f;
    c->refit = 100;
    c->k = 4.0f;
    c->min_sd = 1e-3f;
}

int ad_scorer_config_check(const ad_scorer_config *c, char *err, size_t errlen)
{
    if (!ad_scorer_name(c->kind)) {
        ERR("unknown scorer kind %d", (int)c->kind);
        return -AD_EINVAL;
    }
    if (!(c->threshold > 0.0f && c->threshold <= 1.0f)) {
        ERR("scorer threshold must be in (0, 1], got %g", (double)c->threshold);
        return -AD_EINVAL;
    }
    if (c->kind == AD_SCORER_STATIC) {
        if (!(c->k > 0.0f && isfinite(c->k))) {
            ERR("static scorer k must be positive, got %g", (double)c->k);
            return -AD_EINVAL;
        }
        return 0;
    }
    if (c->window < 16 || c->window > 1000000) {
        ERR("scorer window must be 16..1000000, got %d", c->window);
        return -AD_EINVAL;
    }
    if (!(c->error_bound >= 0.0f && c->error_bound <= 1e6f)) {
        ERR("scorer error_bound must be 0..1e6, got %g", (double)c->error_bound);
        return -AD_EINVAL;
    }
    if (!(c->min_sd >= 0.0f && c->min_sd <= 1e6f)) {
        ERR("scorer min_sd must be 0..1e6, got %g", (double)c->min_sd);
        return -AD_EINVAL;
    }
    if (c->min_samples < 1 || c->min_samples > c->window) {
        ERR("scorer min_samples must be 1..window (%d), got %d", c->window, c->min_samples);
        return -AD_EINVAL;
    }
    if (c->kind == AD_SCORER_LIKELIHOOD && (c->short_window < 1 || c->short_window > c->window)) {
        ERR("scorer short_window must be 1..window (%d), got %d", c->window, c->short_window);
        return -AD_EINVAL;
    }
    if (c->kind == AD_SCORER_DYNAMIC) {
        if (!(c->ewma_alpha > 0.0f && c->ewma_alpha <= 1.0f)) {
            ERR("scorer ewma_alpha must be in (0, 1], got %g", (double)c->ewma_alpha);
            return -AD_EINVAL;
        }
        if (!(c->z_min > 0.0f && c->z_max >= c->z_min && c->z_max <= 100.0f)) {
            ERR("scorer z range must satisfy 0 < z_min <= z_max <= 100, got %g..%g",
                (double)c->z_min, (double)c->z_max);
            return -AD_EINVAL;
        }
        if (!(c->prune >= 0.0f && c->prune < 1.0f)) {
            ERR("scorer prune must be in [0, 1), got %g", (double)c->prune);
            return -AD_EINVAL;
        }
        if (c->refit < 1) {
            ERR("scorer refit must be >= 1, got %d", c->refit);
            return -AD_EINVAL;
        }
    }
    return 0;
}

/* ---- rings ---- */

static void ring_clear(ring *r)
{
    r->n = r->pos = r->pushes = 0;
    r->sum = r->sumsq = 0.0;
}

static void ring_recompute(ring *r)
{
    double s = 0.0, q = 0.0;
    for (int i = 0; i < r->n; i++) {
        s += r->v[i];
        q += (double)r->v[i] * r->v[i];
    }
    r->sum = s;
    r->sumsq = q;
    r->pushes = 0;
}

static void ring_push(ring *r, float x)
{
    if (r->n == r->cap) {
        float old = r->v[r->pos];
        r->sum -= old;
        r->sumsq -= (double)old * old;
    } else {
        r->n++;
    }
    r->v[r->pos] = x;
    r->sum += x;
    r->sumsq += (double)x * x;
    r->pos = r->pos + 1 == r->cap ? 0 : r->pos + 1;
    if (++r->pushes >= r->cap)
        ring_recompute(r);
}

/* The value pushed k pushes ago (k = 0: the newest). */
static float ring_back(const ring *r, int k)
{
    int i = r->pos - 1 - k;
    while (i < 0)
        i += r->cap;
    return r->v[i];
}

static double ring_mean(const ring *r)
{
    return r->n ? r->sum / r->n : 0.0;
}

static double ring_var(const ring *r)
{
    if (r->n < 2)
        return 0.0;
    double m = r->sum / r->n, v = r->sumsq / r->n - m * m;
    return v > 0.0 ? v : 0.0;
}

/* ---- life cycle ---- */

int ad_scorer_create(const ad_scorer_config *c, ad_scorer **out, char *err, size_t errlen)
{
    int rc = ad_scorer_config_check(c, err, errlen);
    ad_scorer *s;
    size_t n = 0;

    *out = NULL;
    if (rc)
        return rc;
    s = calloc(1, sizeof(*s));
    if (!s)
        goto out_nomem;
    s->cfg = *c;
    if (c->kind != AD_SCORER_STATIC) {
        s->win.cap = c->window;
        s->shortr.cap = c->kind == AD_SCORER_LIKELIHOOD ? c->short_window : 0;
        n = (size_t)s->win.cap + (size_t)s->shortr.cap;
        s->mem = calloc(n, sizeof(float));
        if (!s->mem)
            goto out_free;
        s->win.v = s->mem;
        s->shortr.v = s->shortr.cap ? s->mem + s->win.cap : NULL;
    }
    ad_scorer_reset(s);
    *out = s;
    return 0;

out_free:
    free(s);
out_nomem:
    ERR("out of memory for a scorer");
    return -AD_ENOMEM;
}

void ad_scorer_free(ad_scorer *s)
{
    if (!s)
        return;
    free(s->mem);
    free(s);
}

void ad_scorer_reset(ad_scorer *s)
{
    ring_clear(&s->win);
    ring_clear(&s->shortr);
    s->count = 0;
    s->pending = s->pending_abs = 0.0f;
    s->es = 0.0f;
    s->eps = INFINITY;
    s->max_normal = 0.0f;
    s->since_refit = 0;
    s->last_thr = s->cfg.kind == AD_SCORER_STATIC ? s->cfg.k : NAN;
}

void ad_scorer_prefetch(const ad_scorer *s, int level)
{
    if (level == 0) {
        __builtin_prefetch(s);
        __builtin_prefetch((const char *)s + 64);
        return;
    }
    if (s->shortr.cap)
        __builtin_prefetch(s->shortr.v, 1);
    if (s->win.cap)
        __builtin_prefetch(&s->win.v[s->win.pos], 1);
}

size_t ad_scorer_bytes(const ad_scorer *s)
{
    return sizeof(*s) + ((size_t)s->win.cap + (size_t)s->shortr.cap) * sizeof(float);
}

const ad_scorer_config *ad_scorer_get_config(const ad_scorer *s)
{
    return &s->cfg;
}

float ad_scorer_error_threshold(const ad_scorer *s)
{
    return s->last_thr;
}

/* ---- likelihood ---- */

static float likelihood_score(ad_scorer *s, float a)
{
    const ring *sh = &s->shortr;
    /* moving average of the last short_window errors, this one included */
    double sum = a;
    int n = 1;
    for (int k = 0; k < sh->n && n < sh->cap; k++, n++)
        sum += ring_back(sh, k);
    s->pending = (float)(sum / n);
    if (s->count < (uint64_t)s->cfg.min_samples)
        return 0.0f;
    double mean = ring_mean(&s->win), var = ring_var(&s->win);
    /* a floor on the deviation (relative to the mean, and absolute: min_sd) keeps a
     * near-constant error history from turning rounding noise into certainty */
    double sdf = 0.01 * mean > s->cfg.min_sd ? 0.01 * mean : s->cfg.min_sd;
    double sd = sqrt(var > sdf * sdf ? var : sdf * sdf);
    double z = ((double)s->pending - mean) / sd;
    /* -log10 of the one-sided tail (small errors are not anomalous), accurate far out */
    double tail = 0.5 * erfc(z / sqrt(2.0)), L;
    if (tail > 1e-300)
        L = -log10(tail);
    else /* Mills ratio: ln Q(z) ~ -z^2/2 - ln(z sqrt(2 pi)) */
        L = (0.5 * z * z + log(z * 2.5066282746310002)) / log(10.0);
    /* squashed so it never saturates: 0.5 at a tail of 1e-5, 2/3 at 1e-10 */
    return (float)(L / (L + 5.0));
}

/* ---- dynamic threshold ---- */

/* Re-chooses eps = mu + z sigma over the window (telemanom's criterion). */
static void dynamic_refit(ad_scorer *s)
{
    const ring *r = &s->win;
    const double mu = ring_mean(r), sigma = sqrt(ring_var(r));
    double best = -1.0, best_eps = mu + s->cfg.z_max * sigma;

    if (sigma <= 0.0) {
        s->eps = (float)(mu > 0.0 ? mu * 1.5 : 1e-6);
        s->max_normal = (float)mu;
        return;
    }
    for (double z = s->cfg.z_min; z <= s->cfg.z_max + 1e-9; z += 0.5) {
        const double eps = mu + z * sigma;
        double bs = 0.0, bq = 0.0;
        int nb = 0, na = 0, nseq = 0, above_prev = 0;
        for (int i = 0; i < r->n; i++) {
            /* ring order is chronological from the oldest */
            float v = r->n < r->cap ? r->v[i] : r->v[(r->pos + i) % r->cap];
            if (v > eps) {
                na++;
                nseq += !above_prev;
                above_prev = 1;
            } else {
                bs += v;
                bq += (double)v * v;
                nb++;
                above_prev = 0;
            }
        }
        if (na == 0 || nb < 2)
            continue;
        double bm = bs / nb, bv = bq / nb - bm * bm;
        double dmu = mu - bm, dsd = sigma - sqrt(bv > 0.0 ? bv : 0.0);
        double crit = (dmu / mu + dsd / sigma) / (na + (double)nseq * nseq);
        if (crit > best) {
            best = crit;
            best_eps = eps;
        }
    }
    s->eps = (float)best_eps;
    double mx = 0.0;
    for (int i = 0; i < r->n; i++)
        if (r->v[i] <= best_eps && r->v[i] > mx)
            mx = r->v[i];
    s->max_normal = (float)mx;
}

static float dynamic_score(ad_scorer *s, float a)
{
    const float alpha = s->cfg.ewma_alpha;
    s->pending = s->count == 0 ? a : alpha * a + (1.0f - alpha) * s->es;
    if (s->count < (uint64_t)s->cfg.min_samples)
        return 0.0f;
    if (s->since_refit == 0 || !isfinite(s->eps))
        dynamic_refit(s);
    const float e = s->pending, eps = s->eps;
    s->last_thr = eps;
    if (e > eps && (e - s->max_normal) < s->cfg.prune * e)
        return 0.0f; /* pruned: barely above what the window calls normal */
    return e / (e + eps);
}

float ad_scorer_score(ad_scorer *s, float err)
{
    float a = fabsf(err);
    s->pending_abs = a;
    switch (s->cfg.kind) {
    case AD_SCORER_LIKELIHOOD:
        if (s->cfg.error_bound > 0.0f)
            s->pending_abs = a = a / (a + s->cfg.error_bound);
        return likelihood_score(s, a);
    case AD_SCORER_DYNAMIC:
        return dynamic_score(s, a);
    case AD_SCORER_STATIC:
    default:
        s->pending = a;
        return a / (a + s->cfg.k);
    }
}

void ad_scorer_commit(ad_scorer *s, int flagged)
{
    switch (s->cfg.kind) {
    case AD_SCORER_LIKELIHOOD:
        if (flagged)
            return;
        ring_push(&s->shortr, s->pending_abs);
        ring_push(&s->win, s->pending);
        s->count++;
        return;
    case AD_SCORER_DYNAMIC:
        if (flagged)
            return; /* kept out: the smoothing goes on from the last normal value */
        s->es = s->pending;
        ring_push(&s->win, s->pending);
        s->count++;
        if (s->count >= (uint64_t)s->cfg.min_samples &&
            ++s->since_refit >= s->cfg.refit)
            s->since_refit = 0;
        return;
    case AD_SCORER_STATIC:
    default:
        s->count += !flagged;
        return;
    }
}

/* ---- serialisation ---- */

static void save_ring(const ring *r, ad_wbuf *w)
{
    ad_put_u32(w, (uint32_t)r->n);
    ad_put_u32(w, (uint32_t)r->pos);
    ad_put_u32(w, (uint32_t)r->pushes);
    ad_put_f64(w, r->sum);
    ad_put_f64(w, r->sumsq);
    ad_put_f32v(w, r->v, (size_t)r->cap);
}

static int load_ring(ring *r, ad_rbuf *rb)
{
    uint32_t n = ad_get_u32(rb), pos = ad_get_u32(rb), pushes = ad_get_u32(rb);
    r->sum = ad_get_f64(rb);
    r->sumsq = ad_get_f64(rb);
    if (rb->err || n > (uint32_t)r->cap || pos >= (uint32_t)(r->cap ? r->cap : 1) ||
        pushes > (uint32_t)r->cap || !isfinite(r->sum) || !isfinite(r->sumsq))
        return -1;
    ad_get_f32v(rb, r->v, (size_t)r->cap);
    for (int i = 0; i < r->cap; i++)
        if (!isfinite(r->v[i]))
            return -1;
    r->n = (int)n;
    r->pos = (int)pos;
    r->pushes = (int)pushes;
    return rb->err ? -1 : 0;
}

void ad_scorer_save(const ad_scorer *s, ad_wbuf *w)
{
    const ad_scorer_config *c = &s->cfg;
    ad_put_u32(w, SCORER_MAGIC);
    ad_put_u32(w, (uint32_t)c->kind);
    ad_put_f32(w, c->threshold);
    ad_put_u32(w, (uint32_t)c->window);
    ad_put_u32(w, (uint32_t)c->short_window);
    ad_put_u32(w, (uint32_t)c->min_samples);
    ad_put_f32(w, c->ewma_alpha);
    ad_put_f32(w, c->z_min);
    ad_put_f32(w, c->z_max);
    ad_put_f32(w, c->prune);
    ad_put_u32(w, (uint32_t)c->refit);
    ad_put_f32(w, c->k);
    ad_put_f32(w, c->min_sd);
    ad_put_f32(w, c->error_bound);
    ad_put_u64(w, s->count);
    ad_put_f32(w, s->pending);
    ad_put_f32(w, s->pending_abs);
    ad_put_f32(w, s->es);
    ad_put_f32(w, s->eps);
    ad_put_f32(w, s->max_normal);
    ad_put_u32(w, (uint32_t)s->since_refit);
    ad_put_f32(w, s->last_thr);
    save_ring(&s->win, w);
    save_ring(&s->shortr, w);
}

int ad_scorer_load(ad_scorer *s, ad_rbuf *r, char *err, size_t errlen)
{
    ad_scorer_config c;
    memset(&c, 0, sizeof(c));
    if (ad_get_u32(r) != SCORER_MAGIC) {
        ERR("scorer state: bad magic");
        return -AD_EFORMAT;
    }
    c.kind = (ad_scorer_kind)ad_get_u32(r);
    c.threshold = ad_get_f32(r);
    c.window = (int)ad_get_u32(r);
    c.short_window = (int)ad_get_u32(r);
    c.min_samples = (int)ad_get_u32(r);
    c.ewma_alpha = ad_get_f32(r);
    c.z_min = ad_get_f32(r);
    c.z_max = ad_get_f32(r);
    c.prune = ad_get_f32(r);
    c.refit = (int)ad_get_u32(r);
    c.k = ad_get_f32(r);
    c.min_sd = ad_get_f32(r);
    c.error_bound = ad_get_f32(r);
    if (r->err || memcmp(&c, &s->cfg, sizeof(c)) != 0) {
        ERR("scorer state is for another scorer configuration");
        return -AD_EFORMAT;
    }
    s->count = ad_get_u64(r);
    s->pending = ad_get_f32(r);
    s->pending_abs = ad_get_f32(r);
    s->es = ad_get_f32(r);
    s->eps = ad_get_f32(r);
    s->max_normal = ad_get_f32(r);
    s->since_refit = (int)ad_get_u32(r);
    s->last_thr = ad_get_f32(r);
    if (r->err || load_ring(&s->win, r) || load_ring(&s->shortr, r) || s->since_refit < 0 ||
        !isfinite(s->pending) || !isfinite(s->pending_abs) || !isfinite(s->es) ||
        isnan(s->eps) || !isfinite(s->max_normal)) {
        ad_scorer_reset(s);
        ERR("scorer state is truncated or inconsistent");
        return -AD_EFORMAT;
    }
    return 0;
}
