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

/*
 * A ring of the last cap values with their running sum and sum of squares. The values
 * live in the scorer's block (struct ad_scorer, below), found by their offset from it.
 */
typedef struct ring {
    int cap, n, pos; /* capacity, values held, next write */
    int pushes;      /* since the sums were last recomputed */
    double sum, sumsq;
} ring;

/*
 * One block per scorer (ad_scorer_size): this struct, which holds only what every likelihood
 * score and commit touches, then right after it the short ring's floats (with the default
 * short_window of 10 the two share the block's first three cache lines), then the cold
 * part (struct cold: the configuration, the dynamic threshold), then the window ring, of
 * which a sample touches one slot (ad_scorer_next_write).
 */
struct ad_scorer {
    ring shortr;       /* LIKELIHOOD: last short_window absolute errors */
    ring win;          /* LIKELIHOOD: moving averages; DYNAMIC: smoothed errors */
    uint64_t count;    /* values committed */
    float pending;     /* LIKELIHOOD: moving average incl. the last scored error;
                          DYNAMIC: smoothed error incl. it; STATIC: |error| */
    float pending_abs; /* |last scored error| */
    ad_scorer_kind kind;       /* the configuration's, here beside the rest: */
    int min_samples;
    float error_bound, min_sd;
    float shortv[];    /* (shortr.cap) the short ring; struct cold follows */
};

struct cold {
    float es;          /* DYNAMIC: smoothed error after the last commit */
    float eps;         /* DYNAMIC: current threshold (mu + z sigma) */
    float max_normal;  /* DYNAMIC: largest smoothed error below eps at the last fit */
    int since_refit;   /* DYNAMIC */
    float last_thr;    /* threshold in error units of the last score */
    int owned;         /* allocated by ad_scorer_create (ad_scorer_free frees it) */
    ad_scorer_config cfg;
};

static size_t round_up(size_t n, size_t a)
{
    return (n + a - 1) / a * a;
}

/* Offsets in the block of struct cold and of the window ring. */
static size_t cold_offset(int shortcap)
{
    return round_up(sizeof(struct ad_scorer) + (size_t)shortcap * sizeof(float), 8);
}

static size_t win_offset(int shortcap)
{
    return round_up(cold_offset(shortcap) + sizeof(struct cold), 8);
}

static struct cold *cold(const ad_scorer *s)
{
    return (struct cold *)(void *)((char *)(uintptr_t)s + cold_offset(s->shortr.cap));
}

static float *win_v(const ad_scorer *s)
{
    return (float *)(void *)((char *)(uintptr_t)s + win_offset(s->shortr.cap));
}

/* One row per kind, by name: its code in blobs (fixed for good) and its name. */
static const struct {
    uint32_t code;
    const char *name;
} kinds[AD_SCORER_NKINDS] = {
    [AD_SCORER_LIKELIHOOD] = {0, "likelihood"},
    [AD_SCORER_DYNAMIC] = {1, "dynamic"},
    [AD_SCORER_STATIC] = {2, "static"},
};

const char *ad_scorer_name(ad_scorer_kind kind)
{
    return (int)kind >= 0 && kind < AD_SCORER_NKINDS ? kinds[kind].name : NULL;
}

int ad_scorer_from_name(const char *name)
{
    for (int k = 0; name && k < AD_SCORER_NKINDS; k++)
        if (strcmp(name, kinds[k].name) == 0)
            return k;
    return -1;
}

uint32_t ad_scorer_code(ad_scorer_kind kind)
{
    return (int)kind >= 0 && kind < AD_SCORER_NKINDS ? kinds[kind].code : UINT32_MAX;
}

int ad_scorer_from_code(uint32_t code)
{
    for (int k = 0; k < AD_SCORER_NKINDS; k++)
        if (kinds[k].code == code)
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

static void ring_recompute(ring *r, const float *v)
{
    double s = 0.0, q = 0.0;
    for (int i = 0; i < r->n; i++) {
        s += v[i];
        q += (double)v[i] * v[i];
    }
    r->sum = s;
    r->sumsq = q;
    r->pushes = 0;
}

/*
 * The values are never negative, so the sums only lose precision when a value that made
 * up most of one leaves it (what was added to it beside that value is lost in its
 * rounding): then they are recomputed at once.
 */
static void ring_push(ring *r, float *v, float x)
{
    int big = 0;
    if (r->n == r->cap) {
        float old = v[r->pos];
        big = old > 0.5 * r->sum || (double)old * old > 0.5 * r->sumsq;
        r->sum -= old;
        r->sumsq -= (double)old * old;
    } else {
        r->n++;
    }
    v[r->pos] = x;
    r->sum += x;
    r->sumsq += (double)x * x;
    r->pos = r->pos + 1 == r->cap ? 0 : r->pos + 1;
    if (++r->pushes >= r->cap || big)
        ring_recompute(r, v);
}

/* The sum of the values a push would keep (all, or all but the oldest once full, the
 * one at the next write): the running sum, less the oldest; summed afresh when the
 * oldest is most of it (its rounding would swamp the rest). */
static double ring_sum_kept(const ring *r, const float *v)
{
    double s = 0.0;
    if (r->n < r->cap)
        return r->sum;
    if (v[r->pos] <= 0.5 * r->sum)
        return r->sum - v[r->pos];
    for (int i = 0; i < r->cap; i++)
        s += i == r->pos ? 0.0 : v[i];
    return s;
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

/* The short ring's and the window ring's capacities. */
static void ring_caps(const ad_scorer_config *c, int *shortcap, int *wincap)
{
    *wincap = c->kind == AD_SCORER_STATIC ? 0 : c->window;
    *shortcap = c->kind == AD_SCORER_LIKELIHOOD ? c->short_window : 0;
}

size_t ad_scorer_size(const ad_scorer_config *c)
{
    int sc, wc;
    if (ad_scorer_config_check(c, NULL, 0) != 0)
        return 0;
    ring_caps(c, &sc, &wc);
    return round_up(win_offset(sc) + (size_t)wc * sizeof(float), AD_SCORER_ALIGN);
}

size_t ad_scorer_hot_bytes(const ad_scorer_config *c)
{
    int sc, wc;
    ring_caps(c, &sc, &wc);
    return cold_offset(sc);
}

int ad_scorer_init(void *mem, const ad_scorer_config *c, ad_scorer **out, char *err,
                   size_t errlen)
{
    int rc = ad_scorer_config_check(c, err, errlen);
    ad_scorer *s = mem;

    *out = NULL;
    if (rc)
        return rc;
    memset(s, 0, sizeof(*s));
    s->kind = c->kind;
    s->min_samples = c->min_samples;
    s->error_bound = c->error_bound;
    s->min_sd = c->min_sd;
    ring_caps(c, &s->shortr.cap, &s->win.cap);
    memset(cold(s), 0, sizeof(struct cold));
    cold(s)->cfg = *c;
    ad_scorer_reset(s);
    *out = s;
    return 0;
}

int ad_scorer_create(const ad_scorer_config *c, ad_scorer **out, char *err, size_t errlen)
{
    int rc = ad_scorer_config_check(c, err, errlen);
    void *mem;

    *out = NULL;
    if (rc)
        return rc;
    mem = aligned_alloc(AD_SCORER_ALIGN, ad_scorer_size(c));
    if (!mem) {
        ERR("out of memory for a scorer");
        return -AD_ENOMEM;
    }
    ad_scorer_init(mem, c, out, err, errlen);
    cold(*out)->owned = 1;
    return 0;
}

void ad_scorer_free(ad_scorer *s)
{
    if (s && cold(s)->owned)
        free(s);
}

void ad_scorer_reset(ad_scorer *s)
{
    ring_clear(&s->win);
    ring_clear(&s->shortr);
    /* the rings' values are zeroed so a blob never carries stale memory */
    memset(s->shortv, 0, (size_t)s->shortr.cap * sizeof(float));
    memset(win_v(s), 0, (size_t)s->win.cap * sizeof(float));
    struct cold *k = cold(s);
    s->count = 0;
    s->pending = s->pending_abs = 0.0f;
    k->es = 0.0f;
    k->eps = INFINITY;
    k->max_normal = 0.0f;
    k->since_refit = 0;
    k->last_thr = s->kind == AD_SCORER_STATIC ? k->cfg.k : NAN;
}

size_t ad_scorer_bytes(const ad_scorer *s)
{
    return ad_scorer_size(&cold(s)->cfg);
}

const ad_scorer_config *ad_scorer_get_config(const ad_scorer *s)
{
    return &cold(s)->cfg;
}

float ad_scorer_error_threshold(const ad_scorer *s)
{
    return cold(s)->last_thr;
}

const void *ad_scorer_next_write(const ad_scorer *s)
{
    return s->win.cap ? win_v(s) + s->win.pos : NULL;
}

/* ---- likelihood ---- */

static float likelihood_score(ad_scorer *s, float a)
{
    const ring *sh = &s->shortr;
    /* moving average of the last short_window errors, this one included */
    const int kept = sh->n == sh->cap ? sh->n - 1 : sh->n;
    s->pending = (float)((ring_sum_kept(sh, s->shortv) + a) / (kept + 1));
    if (s->count < (uint64_t)s->min_samples)
        return 0.0f;
    double mean = ring_mean(&s->win), var = ring_var(&s->win);
    /* a floor on the deviation (relative to the mean, and absolute: min_sd) keeps a
     * near-constant error history from turning rounding noise into certainty */
    double sdf = 0.01 * mean > s->min_sd ? 0.01 * mean : s->min_sd;
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
    struct cold *cd = cold(s);
    const ring *r = &s->win;
    const float *rv = win_v(s);
    const double mu = ring_mean(r), sigma = sqrt(ring_var(r));
    double best = -1.0, best_eps = mu + cd->cfg.z_max * sigma;

    if (sigma <= 0.0) {
        cd->eps = (float)(mu > 0.0 ? mu * 1.5 : 1e-6);
        cd->max_normal = (float)mu;
        return;
    }
    for (double z = cd->cfg.z_min; z <= cd->cfg.z_max + 1e-9; z += 0.5) {
        const double eps = mu + z * sigma;
        double bs = 0.0, bq = 0.0;
        int nb = 0, na = 0, nseq = 0, above_prev = 0;
        for (int i = 0; i < r->n; i++) {
            /* ring order is chronological from the oldest */
            float v = r->n < r->cap ? rv[i] : rv[(r->pos + i) % r->cap];
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
    cd->eps = (float)best_eps;
    double mx = 0.0;
    for (int i = 0; i < r->n; i++)
        if (rv[i] <= best_eps && rv[i] > mx)
            mx = rv[i];
    cd->max_normal = (float)mx;
}

static float dynamic_score(ad_scorer *s, float a)
{
    struct cold *cd = cold(s);
    const float alpha = cd->cfg.ewma_alpha;
    s->pending = s->count == 0 ? a : alpha * a + (1.0f - alpha) * cd->es;
    if (s->count < (uint64_t)s->min_samples)
        return 0.0f;
    if (cd->since_refit == 0 || !isfinite(cd->eps))
        dynamic_refit(s);
    const float e = s->pending, eps = cd->eps;
    cd->last_thr = eps;
    if (e > eps && (e - cd->max_normal) < cd->cfg.prune * e)
        return 0.0f; /* pruned: barely above what the window calls normal */
    return e / (e + eps);
}

float ad_scorer_score(ad_scorer *s, float err)
{
    float a = fabsf(err);
    s->pending_abs = a;
    switch (s->kind) {
    case AD_SCORER_LIKELIHOOD:
        if (s->error_bound > 0.0f)
            s->pending_abs = a = a / (a + s->error_bound);
        return likelihood_score(s, a);
    case AD_SCORER_DYNAMIC:
        return dynamic_score(s, a);
    case AD_SCORER_STATIC:
    case AD_SCORER_NKINDS: /* not a kind: a checked configuration never holds it */
        break;
    }
    s->pending = a; /* STATIC */
    return a / (a + cold(s)->cfg.k);
}

void ad_scorer_commit(ad_scorer *s, int flagged)
{
    switch (s->kind) {
    case AD_SCORER_LIKELIHOOD:
        if (flagged)
            return;
        ring_push(&s->shortr, s->shortv, s->pending_abs);
        ring_push(&s->win, win_v(s), s->pending);
        s->count++;
        return;
    case AD_SCORER_DYNAMIC:
        if (flagged)
            return; /* kept out: the smoothing goes on from the last normal value */
        struct cold *cd = cold(s);
        cd->es = s->pending;
        ring_push(&s->win, win_v(s), s->pending);
        s->count++;
        if (s->count >= (uint64_t)s->min_samples &&
            ++cd->since_refit >= cd->cfg.refit)
            cd->since_refit = 0;
        return;
    case AD_SCORER_STATIC:
    case AD_SCORER_NKINDS: /* not a kind: a checked configuration never holds it */
        break;
    }
    s->count += !flagged; /* STATIC */
}

/* ---- serialisation ---- */

static void save_ring(const ring *r, const float *v, ad_wbuf *w)
{
    ad_put_u32(w, (uint32_t)r->n);
    ad_put_u32(w, (uint32_t)r->pos);
    ad_put_u32(w, (uint32_t)r->pushes);
    ad_put_f64(w, r->sum);
    ad_put_f64(w, r->sumsq);
    ad_put_f32v(w, v, (size_t)r->cap);
}

static int load_ring(ring *r, float *v, ad_rbuf *rb)
{
    uint32_t n = ad_get_u32(rb), pos = ad_get_u32(rb), pushes = ad_get_u32(rb);
    r->sum = ad_get_f64(rb);
    r->sumsq = ad_get_f64(rb);
    if (rb->err || n > (uint32_t)r->cap || pos >= (uint32_t)(r->cap ? r->cap : 1) ||
        pushes > (uint32_t)r->cap || !isfinite(r->sum) || !isfinite(r->sumsq))
        return -1;
    ad_get_f32v(rb, v, (size_t)r->cap);
    for (int i = 0; i < r->cap; i++)
        if (!isfinite(v[i]))
            return -1;
    r->n = (int)n;
    r->pos = (int)pos;
    r->pushes = (int)pushes;
    return rb->err ? -1 : 0;
}

void ad_scorer_save(const ad_scorer *s, ad_wbuf *w)
{
    struct cold *cd = cold(s);
    const ad_scorer_config *c = &cd->cfg;
    ad_put_u32(w, SCORER_MAGIC);
    ad_put_u32(w, ad_scorer_code(c->kind));
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
    ad_put_f32(w, cd->es);
    ad_put_f32(w, cd->eps);
    ad_put_f32(w, cd->max_normal);
    ad_put_u32(w, (uint32_t)cd->since_refit);
    ad_put_f32(w, cd->last_thr);
    save_ring(&s->win, win_v(s), w);
    save_ring(&s->shortr, s->shortv, w);
}

int ad_scorer_load(ad_scorer *s, ad_rbuf *r, char *err, size_t errlen)
{
    struct cold *cd = cold(s);
    ad_scorer_config c;
    memset(&c, 0, sizeof(c));
    if (ad_get_u32(r) != SCORER_MAGIC) {
        ERR("scorer state: bad magic");
        return -AD_EFORMAT;
    }
    const int kind = ad_scorer_from_code(ad_get_u32(r));
    c.kind = kind >= 0 ? (ad_scorer_kind)kind : AD_SCORER_NKINDS; /* unknown: no match */
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
    if (r->err || memcmp(&c, &cd->cfg, sizeof(c)) != 0) {
        ERR("scorer state is for another scorer configuration");
        return -AD_EFORMAT;
    }
    s->count = ad_get_u64(r);
    s->pending = ad_get_f32(r);
    s->pending_abs = ad_get_f32(r);
    cd->es = ad_get_f32(r);
    cd->eps = ad_get_f32(r);
    cd->max_normal = ad_get_f32(r);
    cd->since_refit = (int)ad_get_u32(r);
    cd->last_thr = ad_get_f32(r);
    if (r->err || load_ring(&s->win, win_v(s), r) || load_ring(&s->shortr, s->shortv, r) ||
        cd->since_refit < 0 ||
        !isfinite(s->pending) || !isfinite(s->pending_abs) || !isfinite(cd->es) ||
        isnan(cd->eps) || !isfinite(cd->max_normal)) {
        ad_scorer_reset(s);
        ERR("scorer state is truncated or inconsistent");
        return -AD_EFORMAT;
    }
    return 0;
}
