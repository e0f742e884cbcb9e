/*
 * check_detector.c - the detector (detector.h, detector*.c): configuration; refusal of
 * bad values (counted, and otherwise without effect, bit-exact against a twin); the
 * warm-up fallback; the issue's acceptance series (each anomaly flagged within 10 samples
 * of its onset, the clean series never); the snapshot/run/install split; flagged values
 * kept out of training; relearning after a permanent change; time features and huge
 * magnitudes; and the detector blob (exact continuation, refusal of every truncation and
 * byte flip, of other versions and of inconsistent contents).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "blob.h"
#include "detector.h"
#include "half.h"
#include "inputs.h"
#include "net.h"
#include "quant.h"
#include "rng.h"
#include "scorer.h"
#include "serial.h"

#include "detcfg.h"

/* ---- helpers ---- */

static ad_detector *make(const ad_detector_config *c)
{
    ad_detector *d = NULL;
    char err[256] = "";
    ck_assert_msg(ad_detector_create(c, &d, err, sizeof(err)) == 0, "create: %s", err);
    ck_assert_ptr_nonnull(d);
    return d;
}

static void train(ad_detector *d)
{
    char err[256] = "";
    ck_assert_msg(ad_detector_train(d, err, sizeof(err)) == 0, "train: %s", err);
}

/* Observes an accepted value; trains when the result says so, as the daemon will. */
static ad_result observe(ad_detector *d, double ts, double v)
{
    ad_result res;
    int rc = ad_detector_observe(d, ts, v, &res);
    ck_assert_msg(rc == 0, "observe(%g, %g) refused: %d", ts, v, rc);
    ck_assert_int_eq(res.refused, -1);
    ck_assert_msg(isfinite(res.score) && res.score >= 0.0f && res.score <= 1.0f,
                  "observe(%g, %g): score %g", ts, v, (double)res.score);
    if (res.train_due)
        train(d);
    return res;
}

static void assert_same_result(const ad_result *a, const ad_result *b, const char *what, int t)
{
    ck_assert_msg(memcmp(a, b, sizeof(*a)) == 0,
                  "%s, sample %d: (v %.17g pred %.17g err %.17g score %.9g flag %d warm %d due "
                  "%d) vs (v %.17g pred %.17g err %.17g score %.9g flag %d warm %d due %d)",
                  what, t, a->value, a->predicted, a->error, (double)a->score, a->flagged,
                  a->warming_up, a->train_due, b->value, b->predicted, b->error, (double)b->score,
                  b->flagged, b->warming_up, b->train_due);
}

/* The float parameters of a detector's network (widened from the block of a packed one):
 * a float clone, to free. */
static ad_net *float_net(const ad_detector *d)
{
    ad_net *n = ad_net_clone(ad_detector_net(d));
    ck_assert_ptr_nonnull(n);
    ck_assert_ptr_nonnull(n->params);
    return n;
}

static void assert_same_net(const ad_detector *a, const ad_detector *b, const char *what)
{
    ad_net *na = float_net(a), *nb = float_net(b);
    ck_assert_uint_eq(na->nparams, nb->nparams);
    ck_assert_msg(memcmp(na->params, nb->params, na->nparams * sizeof(float)) == 0,
                  "%s: networks differ", what);
    ad_net_free(na);
    ad_net_free(nb);
}

/* The test series: a sine of period 50 and amplitude 1 plus N(0, 0.1^2). */
#define PERIOD 50.0
#define SIGMA  0.1

static double sine(int t)
{
    return sin(2.0 * M_PI * t / PERIOD);
}

static double noisy_sine(int t, ad_rng *r)
{
    return sine(t) + SIGMA * ad_rng_normal(r);
}

/* Small and quick: for the contract tests that do not judge detection quality. */
static void small_config(ad_detector_config *c, ad_scorer_kind scorer, unsigned features)
{
    plain_defaults(c);
    c->hidden = 8;
    c->features = features;
    c->history = 400;
    c->train_after = 200;
    c->train_every = 300;
    c->window = 16;
    c->batch = 8;
    c->epochs = 4;
    c->prime = 64;
    ad_scorer_defaults(&c->scorer, scorer);
    if (scorer != AD_SCORER_STATIC) {
        c->scorer.window = 200;
        c->scorer.min_samples = 50;
        c->scorer.refit = 40;
    } else {
        c->scorer.k = 1.0f;
    }
}

/* ---- config ---- */

START_TEST(test_defaults)
{
    ad_detector_config c;
    char err[256] = "";
    plain_defaults(&c);
    ck_assert_msg(ad_detector_config_check(&c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(c.kind, AD_CELL_LSTM);
    ck_assert_int_eq(c.layers, 1);
    ck_assert_int_eq(c.hidden, 16);
    ck_assert_uint_eq(c.features, 0);
    ck_assert_int_eq(c.history, 1500);
    ck_assert_int_eq(c.train_after, 400);
    ck_assert_int_eq(c.train_every, 2000);
    ck_assert_int_eq(c.window, 32);
    ck_assert_int_eq(c.batch, 16);
    ck_assert_int_eq(c.epochs, 30);
    ck_assert_int_eq(c.patience, 4);
    /* The suites pin the training length above; the defaults train up to 60 epochs with
     * patience 8 (docs/BENCHMARKS.md "Epochs 60, patience 8"). */
    ad_detector_config real;
    ad_detector_defaults(&real);
    ck_assert_int_eq(real.epochs, 60);
    ck_assert_int_eq(real.patience, 8);
    ck_assert_float_eq(c.val_frac, 0.2f);
    ck_assert_float_eq(c.lr, 0.01f);
    ck_assert_float_eq(c.clip, 1.0f);
    ck_assert_float_eq(c.input_clip, 8.0f);
    ck_assert_int_eq(c.prime, 256);
    ck_assert_int_eq(c.relearn, 64);
    ck_assert_float_eq(c.max_exclude, 0.02f);
    ck_assert_int_eq(c.cooldown, 0);
    ck_assert_int_eq(c.scorer.kind, AD_SCORER_LIKELIHOOD);
    ad_detector *d = make(&c);
    ck_assert_uint_gt(ad_detector_bytes(d), 1500 * sizeof(float));
    ck_assert_int_eq(ad_detector_get_config(d)->hidden, 16);
    ck_assert_uint_eq(ad_detector_get_stats(d)->samples, 0);
    ad_detector_free(d);
    ad_detector_free(NULL);
}
END_TEST

typedef struct bad_field {
    const char *field; /* a word the message must hold */
    void (*mutate)(ad_detector_config *c);
} bad_field;

/* clang-format off */
static void window_1(ad_detector_config *c) { c->window = 1; }
static void history_short(ad_detector_config *c) { c->history = 2 * c->window - 1; }
static void after_short(ad_detector_config *c) { c->train_after = 2 * c->window - 1; }
static void valfrac_big(ad_detector_config *c) { c->val_frac = 0.6f; }
static void valfrac_neg(ad_detector_config *c) { c->val_frac = -0.1f; }
static void lr_zero(ad_detector_config *c) { c->lr = 0.0f; }
static void lr_nan(ad_detector_config *c) { c->lr = NAN; }
static void iclip_half(ad_detector_config *c) { c->input_clip = 0.5f; }
static void feat_8(ad_detector_config *c) { c->features = 8; }
static void feat_high(ad_detector_config *c) { c->features = AD_FEAT_GAP | 0x80000000u; }
static void scorer_thr(ad_detector_config *c) { c->scorer.threshold = 0.0f; }
static void scorer_kind(ad_detector_config *c) { c->scorer.kind = (ad_scorer_kind)7; }
static void scorer_win(ad_detector_config *c) { c->scorer.window = 8; }
static void cell_kind(ad_detector_config *c) { c->kind = AD_CELL_NKINDS; }
static void hidden_0(ad_detector_config *c) { c->hidden = 0; }
static void layers_0(ad_detector_config *c) { c->layers = 0; }
static void batch_0(ad_detector_config *c) { c->batch = 0; }
static void epochs_0(ad_detector_config *c) { c->epochs = 0; }
static void patience_0(ad_detector_config *c) { c->patience = 0; }
static void every_neg(ad_detector_config *c) { c->train_every = -1; }
static void clip_neg(ad_detector_config *c) { c->clip = -1.0f; }
static void prime_neg(ad_detector_config *c) { c->prime = -1; }
static void relearn_neg(ad_detector_config *c) { c->relearn = -1; }
static void maxex_big(ad_detector_config *c) { c->max_exclude = 1.5f; }
static void cooldown_neg(ad_detector_config *c) { c->cooldown = -1; }
static void seasonal_neg(ad_detector_config *c) { c->seasonal_period = -1; }
static void speriods_0(ad_detector_config *c) { c->seasonal_periods = 0; }
static void speriods_9(ad_detector_config *c) { c->seasonal_periods = 9; }
static void sweight_0(ad_detector_config *c) { c->seasonal_weight = 0.0f; }
static void sweight_nan(ad_detector_config *c) { c->seasonal_weight = NAN; }
static void naive_2(ad_detector_config *c) { c->warmup_naive = 2; }
static void penalty_neg(ad_detector_config *c) { c->alert_penalty = -1.0f; }
static void penalty_nan(ad_detector_config *c) { c->alert_penalty = NAN; }
static void horizon_small(ad_detector_config *c) { c->alert_horizon = 99; }
static void longwin_neg(ad_detector_config *c) { c->long_window = -1; }
static void longwin_big(ad_detector_config *c) { c->long_window = c->scorer.window + 1; }
/* clang-format on */

static const bad_field bad_fields[] = {
    {"window", window_1},
    {"history", history_short},
    {"train_after", after_short},
    {"val_frac", valfrac_big},
    {"val_frac", valfrac_neg},
    {"lr", lr_zero},
    {"lr", lr_nan},
    {"input_clip", iclip_half},
    {"feature", feat_8},
    {"feature", feat_high},
    {"threshold", scorer_thr},
    {"kind", scorer_kind},
    {"window", scorer_win},
    {"cell kind", cell_kind},
    {"hidden", hidden_0},
    {"layers", layers_0},
    {"batch", batch_0},
    {"epochs", epochs_0},
    {"patience", patience_0},
    {"train_every", every_neg},
    {"clip", clip_neg},
    {"prime", prime_neg},
    {"relearn", relearn_neg},
    {"max_exclude", maxex_big},
    {"cooldown", cooldown_neg},
    {"seasonal_period", seasonal_neg},
    {"seasonal_periods", speriods_0},
    {"seasonal_periods", speriods_9},
    {"seasonal_weight", sweight_0},
    {"seasonal_weight", sweight_nan},
    {"warmup_naive", naive_2},
    {"alert_penalty", penalty_neg},
    {"alert_penalty", penalty_nan},
    {"alert_horizon", horizon_small},
    {"long_window", longwin_neg},
    {"long_window", longwin_big},
};

START_TEST(test_config_refusals)
{
    const bad_field *bf = &bad_fields[_i];
    ad_detector_config c;
    ad_detector *d = (ad_detector *)&c; /* must come back NULL */
    char err[256] = "";

    plain_defaults(&c);
    bf->mutate(&c);
    ck_assert_int_eq(ad_detector_config_check(&c, err, sizeof(err)), -AD_EINVAL);
    ck_assert_msg(strstr(err, bf->field) != NULL, "case %d: \"%s\" does not name %s", _i, err,
                  bf->field);
    err[0] = '\0';
    ck_assert_int_eq(ad_detector_create(&c, &d, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_null(d);
    ck_assert_msg(strstr(err, bf->field) != NULL, "create: \"%s\"", err);
    ck_assert_int_eq(ad_detector_config_check(&c, NULL, 0), -AD_EINVAL);
}
END_TEST

START_TEST(test_input_size)
{
    const int want[8] = {1, 3, 3, 5, 2, 4, 4, 6}; /* by feature bits */
    for (unsigned f = 0; f < 8; f++) {
        ck_assert_int_eq(ad_detector_input_size(f), want[f]);
        ad_detector_config c;
        plain_defaults(&c);
        c.features = f;
        c.hidden = 4;
        ad_detector *d = make(&c);
        ck_assert_int_eq(ad_detector_net(d)->cfg.input, want[f]);
        ck_assert_int_eq(ad_detector_net(d)->cfg.hidden, 4);
        ck_assert_int_eq(ad_detector_net(d)->cfg.output, 1);
        ad_detector_free(d);
    }
}
END_TEST

/* ---- refusals ---- */

typedef struct bad_value {
    int reason;
    double ts_offset; /* added to the last timestamp; NAN/INF taken as is */
    double value;
    int abs_ts; /* ts is ts_offset itself */
} bad_value;

static const bad_value bad_values[] = {
    {AD_REFUSE_NAN, 1.0, NAN, 0},           {AD_REFUSE_INF, 1.0, INFINITY, 0},
    {AD_REFUSE_INF, 1.0, -INFINITY, 0},     {AD_REFUSE_RANGE, 1.0, 1e31, 0},
    {AD_REFUSE_RANGE, 1.0, -1e31, 0},       {AD_REFUSE_RANGE, 1.0, 1.0000001e30, 0},
    {AD_REFUSE_BADTIME, NAN, 0.5, 1},       {AD_REFUSE_BADTIME, INFINITY, 0.5, 1},
    {AD_REFUSE_BADTIME, -INFINITY, 0.5, 1}, {AD_REFUSE_BACKWARDS, -1.0, 0.5, 0},
    {AD_REFUSE_BACKWARDS, -1e-6, 0.5, 0},
};
#define NBAD ((int)(sizeof(bad_values) / sizeof(bad_values[0])))

/*
 * Every kind of bad value, interleaved with a noisy sine through the warm-up and two
 * trainings, is refused and counted and changes nothing else: the detector's results
 * are bit-identical to those of a twin that never saw them.
 */
START_TEST(test_refusals_leave_no_trace)
{
    ad_detector_config c;
    small_config(&c, (ad_scorer_kind)_i, AD_FEAT_GAP);
    ad_detector *a = make(&c), *b = make(&c);
    uint64_t want[AD_REFUSE_NREASONS] = {0};
    double ts = 1000.0;
    int nbad = 0;
    ad_rng r;

    ad_rng_seed(&r, 17);
    for (int t = 0; t < 900; t++) {
        if (t > 0 && t % 7 == 0) {
            const bad_value *bv = &bad_values[nbad++ % NBAD];
            double bts = bv->abs_ts ? bv->ts_offset : ts + bv->ts_offset;
            ad_result res, untouched;
            memset(&res, 0x5a, sizeof(res));
            memcpy(&untouched, &res, sizeof(res));
            uint64_t samples = ad_detector_get_stats(a)->samples;
            ck_assert_int_eq(ad_detector_observe(a, bts, bv->value, &res), -AD_EINVAL);
            ck_assert_msg(res.refused == bv->reason, "refused %d, want %s", res.refused,
                          ad_refusal_name(bv->reason));
            res.refused = untouched.refused; /* the reason is all a refusal writes */
            ck_assert_msg(memcmp(&res, &untouched, sizeof(res)) == 0, "result written");
            want[bv->reason]++;
            const ad_detector_stats *s = ad_detector_get_stats(a);
            for (int k = 0; k < AD_REFUSE_NREASONS; k++)
                ck_assert_msg(s->refused[k] == want[k], "reason %s: %llu, want %llu",
                              ad_refusal_name(k), (unsigned long long)s->refused[k],
                              (unsigned long long)want[k]);
            ck_assert_uint_eq(s->samples, samples);
        }
        ts += (t % 5 == 0) ? 0.0 : 60.0; /* equal timestamps now and then */
        double v = noisy_sine(t, &r) + (t == 450 ? 3.0 : 0.0);
        ad_result ra = observe(a, ts, v), rb = observe(b, ts, v);
        assert_same_result(&ra, &rb, "with and without bad values", t);
    }
    const ad_detector_stats *sa = ad_detector_get_stats(a), *sb = ad_detector_get_stats(b);
    ck_assert_uint_ge(sa->trainings, 2);
    ck_assert_uint_eq(sa->samples, sb->samples);
    ck_assert_uint_eq(sa->flagged, sb->flagged);
    ck_assert_uint_eq(sa->trainings, sb->trainings);
    for (int k = 0; k < AD_REFUSE_NREASONS; k++) {
        ck_assert_uint_gt(sa->refused[k], 0);
        ck_assert_uint_eq(sb->refused[k], 0);
    }
    assert_same_net(a, b, "with and without bad values");
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

START_TEST(test_refusal_boundaries)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, AD_FEAT_GAP | AD_FEAT_TIME_OF_DAY);
    ad_detector *d = make(&c);
    ad_result res;

    /* any finite first timestamp, including a negative one */
    ck_assert_int_eq(ad_detector_observe(d, -5e9, 1e30, &res), 0);
    ck_assert_int_eq(ad_detector_observe(d, -5e9, -1e30, &res), 0); /* equal: accepted */
    ck_assert_int_eq(ad_detector_observe(d, -5e9, 0.0, &res), 0);
    ck_assert_int_eq(ad_detector_observe(d, -5e9, nextafter(1e30, 0.0), &res), 0);
    ck_assert_int_eq(ad_detector_observe(d, -5e9, nextafter(1e30, 2e30), &res), -AD_EINVAL);
    ck_assert_int_eq(ad_detector_observe(d, nextafter(-5e9, -1e10), 1.0, &res), -AD_EINVAL);
    ck_assert_int_eq(ad_detector_observe(d, 0.0, 1.0, &res), 0);
    ck_assert_int_eq(ad_detector_observe(d, 0.0, 1.0, &res), 0);
    const ad_detector_stats *s = ad_detector_get_stats(d);
    ck_assert_uint_eq(s->samples, 6);
    ck_assert_uint_eq(s->refused[AD_REFUSE_RANGE], 1);
    ck_assert_uint_eq(s->refused[AD_REFUSE_BACKWARDS], 1);
    ad_detector_free(d);

    for (int k = 0; k < AD_REFUSE_NREASONS; k++) {
        ck_assert_ptr_nonnull(ad_refusal_name(k));
        for (int j = 0; j < k; j++)
            ck_assert_str_ne(ad_refusal_name(k), ad_refusal_name(j));
    }
    ck_assert_ptr_null(ad_refusal_name(-1));
    ck_assert_ptr_null(ad_refusal_name(AD_REFUSE_NREASONS));
}
END_TEST

/* ---- warm-up ---- */

START_TEST(test_warmup)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.train_every = 500;
    ad_detector *d = make(&c);
    double sum = 0.0;
    ad_rng r;
    ad_result res;

    ad_rng_seed(&r, 23);
    for (int t = 0; t < c.train_after; t++) {
        double v = 10.0 + ad_rng_normal(&r);
        if (t == 300)
            v = 50.0; /* 40 sigma, after the scorer's min_samples: the fallback flags it */
        ck_assert_int_eq(ad_detector_observe(d, t, v, &res), 0);
        ck_assert_int_eq(res.warming_up, 1);
        if (t == 0) {
            ck_assert(isnan(res.predicted));
            ck_assert_float_eq(res.score, 0.0f);
        } else if (t <= 300) {
            double mean = sum / t; /* of the values before (none flagged before 300) */
            ck_assert_msg(fabs(res.predicted - mean) < 1e-9 * fabs(mean),
                          "t %d: predicted %.17g, running mean %.17g", t, res.predicted, mean);
        }
        if (t < c.scorer.min_samples)
            ck_assert_float_eq(res.score, 0.0f);
        if (t == 300)
            ck_assert_msg(res.flagged && res.score >= 0.5f, "warm-up spike scored %g",
                          (double)res.score);
        else
            ck_assert_msg(!res.flagged, "t %d: flagged with score %g", t, (double)res.score);
        ck_assert_int_eq(res.train_due, t + 1 >= c.train_after);
        sum += v;
    }
    /* a due training not done: still due, still warming up */
    ck_assert_int_eq(ad_detector_observe(d, 400, 10.0, &res), 0);
    ck_assert(res.train_due && res.warming_up);
    ck_assert_uint_eq(ad_detector_get_stats(d)->trainings, 0);
    train(d);
    const ad_detector_stats *s = ad_detector_get_stats(d);
    ck_assert_uint_eq(s->trainings, 1);
    ck_assert_int_ge(s->epochs, 1);
    ck_assert_int_le(s->epochs, c.epochs);
    ck_assert(isfinite(s->train_loss) && isfinite(s->val_loss));
    for (int t = 0; t < c.train_every; t++) {
        ck_assert_int_eq(ad_detector_observe(d, 401 + t, 10.0 + ad_rng_normal(&r), &res), 0);
        ck_assert_int_eq(res.warming_up, 0);
        ck_assert(isfinite(res.predicted) && fabs(res.predicted - 10.0) < 3.0);
        ck_assert_int_eq(res.train_due, t + 1 >= c.train_every);
    }
    ck_assert_uint_eq(ad_detector_get_stats(d)->flagged, 1);
    ad_detector_free(d);
}
END_TEST

/* Before the scorer has min_samples errors, even a huge spike scores 0. */
START_TEST(test_warmup_min_samples)
{
    ad_detector_config c;
    plain_defaults(&c);
    ad_detector *d = make(&c);
    ad_rng r;
    ad_result res;

    ad_rng_seed(&r, 24);
    for (int t = 0; t < 60; t++)
        ck_assert_int_eq(ad_detector_observe(d, t, 10.0 + ad_rng_normal(&r), &res), 0);
    ck_assert_int_eq(ad_detector_observe(d, 60, 1e6, &res), 0);
    ck_assert(res.warming_up && !res.flagged);
    ck_assert_float_eq(res.score, 0.0f);
    ck_assert(res.error > 10.0);
    ad_detector_free(d);
}
END_TEST

/*
 * The static scorer has no min_samples, so the fallback scores from the third sample on,
 * with a deviation from two values. A flagged value stays out of the running mean and
 * deviation; the warm-up must not lock itself into flagging everything after that.
 */
START_TEST(test_warmup_static_scorer)
{
    ad_detector_config c;
    plain_defaults(&c);
    ad_scorer_defaults(&c.scorer, AD_SCORER_STATIC);
    ad_detector *d = make(&c);
    int flags = 0, run = 0, longest = 0, first = -1;
    ad_rng r;
    ad_result res;

    ad_rng_seed(&r, 105);
    for (int t = 0; t < c.train_after - 1; t++) {
        ck_assert_int_eq(ad_detector_observe(d, t, noisy_sine(t, &r), &res), 0);
        ck_assert(res.warming_up);
        if (res.flagged) {
            first = first < 0 ? t : first;
            flags++;
            run++;
            longest = run > longest ? run : longest;
        } else {
            run = 0;
        }
    }
    fprintf(stderr,
            "static scorer, noisy sine, warm-up: %d flags in %d samples, the first at "
            "%d, longest run %d\n",
            flags, c.train_after - 1, first, longest);
    ck_assert_msg(longest < 5 && flags < 10,
                  "warm-up with the static scorer: %d flags, a run of %d from sample %d", flags,
                  longest, first);
    ad_detector_free(d);
}
END_TEST

START_TEST(test_snapshot_needs_history)
{
    ad_detector_config c;
    plain_defaults(&c);
    ad_detector *d = make(&c);
    ad_train_job *job = (ad_train_job *)&c;
    char err[256] = "";
    ad_result res;

    for (int t = 0; t < 2 * c.window - 1; t++)
        ck_assert_int_eq(ad_detector_observe(d, t, sine(t), &res), 0);
    ck_assert_int_eq(ad_detector_snapshot(d, &job, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_null(job);
    ck_assert_ptr_nonnull(strstr(err, "history"));
    err[0] = '\0';
    ck_assert_int_eq(ad_detector_train(d, err, sizeof(err)), -AD_EINVAL);
    ck_assert(err[0] != '\0');
    ck_assert_int_eq(ad_detector_observe(d, 99, sine(99), &res), 0);
    ck_assert_int_eq(ad_detector_snapshot(d, &job, err, sizeof(err)), 0);
    ad_train_job_free(job);
    ad_train_job_free(NULL);
    ad_detector_free(d);
}
END_TEST

/* ---- acceptance: hand-built series ---- */

enum series {
    S_SPIKE,      /* noisy sine, +2.0 (20 sigma) at the onset only */
    S_LEVEL,      /* noisy sine, +1.0 (10 sigma) from the onset on */
    S_FREQ,       /* noisy sine, period 50 -> 20 at the onset (phase-continuous) */
    S_NOISE,      /* sine, noise sigma 0.1 -> 0.5 at the onset */
    S_CONST_STEP, /* 5.0, then 5.5 from the onset on */
    S_CLEAN,      /* sine */
    S_NOISY,      /* noisy sine */
    S_CONST,      /* 5.0 */
    S_NSERIES
};

static const char *const series_names[S_NSERIES] = {"spike",       "level shift",   "frequency",
                                                    "noise level", "constant step", "clean sine",
                                                    "noisy sine",  "constant"};

#define ONSET 700 /* 300 samples after the first training */

static double series_value(int s, int t, ad_rng *r)
{
    double n = SIGMA * ad_rng_normal(r); /* drawn for every series: same noise before onset */
    const int after = t >= ONSET;
    switch (s) {
    case S_SPIKE:
        return sine(t) + n + (t == ONSET ? 2.0 : 0.0);
    case S_LEVEL:
        return sine(t) + n + (after ? 1.0 : 0.0);
    case S_FREQ:
        return after ? sin(2.0 * M_PI * (ONSET / PERIOD + (t - ONSET) / 20.0)) + n : sine(t) + n;
    case S_NOISE:
        return sine(t) + (after ? 5.0 : 1.0) * n;
    case S_CONST_STEP:
        return after ? 5.5 : 5.0;
    case S_CLEAN:
        return sine(t);
    case S_NOISY:
        return sine(t) + n;
    case S_CONST:
    default:
        return 5.0;
    }
}

typedef struct run_summary {
    int warm_flags;  /* flagged while warming up */
    int early_flags; /* flagged after the warm-up, before the onset */
    int onset_flags; /* flagged in [onset, onset + 10] */
    int first;       /* first flag at or after the onset, or -1 */
    int late_flags;  /* flagged after onset + 10 */
    uint64_t trainings;
} run_summary;

/*
 * The one configuration of the acceptance tests: the defaults (LSTM, 1 layer, H = 16,
 * history 1500, first training after 400 samples then every 2000, T 32, B 16, at most 30
 * epochs with patience 4, likelihood scorer with window 1000, short window 10, threshold 0.5).
 */
static run_summary run_series(int s, int n, uint64_t seed)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.seed = seed;
    ad_detector *d = make(&c);
    run_summary sum = {0, 0, 0, -1, 0, 0};
    ad_rng r;

    ad_rng_seed(&r, 99 + seed);
    for (int t = 0; t < n; t++) {
        ad_result res = observe(d, t, series_value(s, t, &r));
        ck_assert(isfinite(res.error) && (t == 0 || isfinite(res.predicted)));
        if (!res.flagged)
            continue;
        if (res.warming_up)
            sum.warm_flags++;
        else if (t < ONSET)
            sum.early_flags++;
        else if (t <= ONSET + 10)
            sum.onset_flags++;
        else
            sum.late_flags++;
        if (t >= ONSET && sum.first < 0)
            sum.first = t;
    }
    sum.trainings = ad_detector_get_stats(d)->trainings;
    ad_detector_free(d);
    return sum;
}

START_TEST(test_anomaly_flagged_at_onset)
{
    const int s = _i; /* S_SPIKE .. S_CONST_STEP */
    run_summary sum = run_series(s, ONSET + 100, 1);
    fprintf(stderr,
            "%-14s first flag %+d samples after the onset; %d flags in [onset, onset+10]; "
            "%d before (%d warming up); %d in the 89 after\n",
            series_names[s], sum.first < 0 ? -1 : sum.first - ONSET, sum.onset_flags,
            sum.early_flags + sum.warm_flags, sum.warm_flags, sum.late_flags);
    ck_assert_uint_eq(sum.trainings, 1);
    ck_assert_msg(sum.onset_flags >= 1, "%s not flagged within 10 samples of its onset (first %d)",
                  series_names[s], sum.first);
    ck_assert_msg(sum.early_flags == 0 && sum.warm_flags == 0, "%s: %d flags before the onset",
                  series_names[s], sum.early_flags + sum.warm_flags);
    if (s == S_CONST_STEP)
        ck_assert_int_eq(sum.first, ONSET);
}
END_TEST

START_TEST(test_clean_series_not_flagged)
{
    const int s = _i; /* S_CLEAN .. S_CONST */
    run_summary sum = run_series(s, 3000, 1);
    fprintf(stderr,
            "%-14s 3000 samples, %llu trainings: %d flags after the warm-up, %d while "
            "warming up\n",
            series_names[s], (unsigned long long)sum.trainings,
            sum.early_flags + sum.onset_flags + sum.late_flags, sum.warm_flags);
    ck_assert_uint_eq(sum.trainings, 2);
    ck_assert_msg(sum.early_flags + sum.onset_flags + sum.late_flags == 0,
                  "%s: %d flags after the warm-up", series_names[s],
                  sum.early_flags + sum.onset_flags + sum.late_flags);
    ck_assert_msg(sum.warm_flags == 0, "%s: %d flags while warming up", series_names[s],
                  sum.warm_flags);
}
END_TEST

/* ---- the split training API ---- */

START_TEST(test_split_training)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 12;
    ad_detector *a = make(&c), *b = make(&c), *ref = make(&c);
    ad_train_job *job = NULL;
    char err[256] = "";
    ad_rng r;
    ad_result ra, rb;
    int t = 0;

    ad_rng_seed(&r, 5);
    for (; t < c.train_after; t++) {
        double v = noisy_sine(t, &r);
        ck_assert_int_eq(ad_detector_observe(a, t, v, &ra), 0);
        ck_assert_int_eq(ad_detector_observe(b, t, v, &rb), 0);
        ck_assert_int_eq(ad_detector_observe(ref, t, v, &rb), 0);
    }
    ck_assert(ra.train_due);
    ck_assert_int_eq(ad_detector_snapshot(a, &job, err, sizeof(err)), 0);
    train(ref); /* the all-in-one path from the same point */
    /* the job runs "on another thread" while the loop keeps observing */
    for (; t < c.train_after + 37; t++) {
        double v = noisy_sine(t, &r);
        ck_assert_int_eq(ad_detector_observe(a, t, v, &ra), 0);
        ck_assert_int_eq(ad_detector_observe(b, t, v, &rb), 0);
        ck_assert(ra.warming_up && ra.train_due);
        assert_same_result(&ra, &rb, "before the install", t);
    }
    ck_assert_int_eq(ad_detector_install(a, job, err, sizeof(err)), -AD_EINVAL); /* not run */
    ck_assert_ptr_nonnull(strstr(err, "not run"));
    ck_assert_msg(ad_train_job_run(job, err, sizeof(err)) == 0, "run: %s", err);
    int epochs = 0;
    float tl = NAN, vl = NAN;
    ad_train_job_result(job, &epochs, &tl, &vl);
    ck_assert_msg(ad_detector_install(a, job, err, sizeof(err)) == 0, "install: %s", err);
    /* another detector of the same shape takes the same job */
    ck_assert_msg(ad_detector_install(b, job, err, sizeof(err)) == 0, "install: %s", err);
    ad_train_job_free(job);

    const ad_detector_stats *s = ad_detector_get_stats(a);
    ck_assert_uint_eq(s->trainings, 1);
    ck_assert_int_eq(s->epochs, epochs);
    ck_assert(s->train_loss == tl && s->val_loss == vl);
    assert_same_net(a, ref, "split and all-in-one training from one snapshot");
    /* the re-prime read the 37 samples observed after the snapshot: the next prediction is
     * of the sine at t, not at the snapshot's end */
    for (int k = 0; k < 300; k++, t++) {
        double v = noisy_sine(t, &r);
        ck_assert_int_eq(ad_detector_observe(a, t, v, &ra), 0);
        ck_assert_int_eq(ad_detector_observe(b, t, v, &rb), 0);
        assert_same_result(&ra, &rb, "after installing one job", t);
        ck_assert_int_eq(ra.warming_up, 0);
        if (k == 0)
            ck_assert_msg(fabs(ra.predicted - sine(t)) < 0.3, "first prediction %g, sine %g",
                          ra.predicted, sine(t));
    }
    ad_detector_free(a);
    ad_detector_free(b);
    ad_detector_free(ref);
}
END_TEST

START_TEST(test_install_refuses_other_shape)
{
    ad_detector_config c, o;
    plain_defaults(&c);
    c.hidden = 8;
    ad_detector *d = make(&c), *twin = make(&c);
    char err[256] = "";
    ad_rng r;
    ad_result rd, rt;

    for (int v = 0; v < 3; v++) {
        o = c;
        if (v == 0)
            o.hidden = 9;
        else if (v == 1)
            o.features = AD_FEAT_GAP;
        else
            o.kind = AD_CELL_GRU;
        ad_detector *other = make(&o);
        ad_train_job *job = NULL;
        ad_rng_seed(&r, 3);
        for (int t = 0; t < 100; t++)
            ck_assert_int_eq(ad_detector_observe(other, t, noisy_sine(t, &r), &rd), 0);
        ck_assert_int_eq(ad_detector_snapshot(other, &job, err, sizeof(err)), 0);
        ck_assert_int_eq(ad_train_job_run(job, err, sizeof(err)), 0);
        ck_assert_int_eq(ad_detector_install(d, job, err, sizeof(err)), -AD_EINVAL);
        ck_assert_msg(strstr(err, "shape") != NULL, "variant %d: \"%s\"", v, err);
        ad_train_job_free(job);
        ad_detector_free(other);
    }
    /* d is as if nothing happened */
    ck_assert_uint_eq(ad_detector_get_stats(d)->trainings, 0);
    ad_rng_seed(&r, 4);
    for (int t = 0; t < 700; t++) {
        double v = noisy_sine(t, &r);
        rd = observe(d, t, v);
        rt = observe(twin, t, v);
        assert_same_result(&rd, &rt, "after refused installs", t);
    }
    ad_detector_free(d);
    ad_detector_free(twin);
}
END_TEST

/* ---- flagged values stay out of training ---- */

/*
 * Detector a sees a spike and flags it; its twin b sees, instead, the value a predicted.
 * Both then train: if the history used for training holds the prediction in place of the
 * spike (and the network read the prediction), the two networks are identical, and so is
 * everything after (the install rebuilds the scorer from the history).
 * _i = 0: the spike comes while warming up; 1: after the first training.
 */
START_TEST(test_flagged_not_learned)
{
    const int spike_at = _i ? 600 : 250;
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 12;
    c.scorer.short_window = 1; /* this test is about exclusion: make sure the spike flags */
    ad_detector *a = make(&c), *b = make(&c);
    ad_rng r;
    ad_result ra, rb;

    ad_rng_seed(&r, 41);
    for (int t = 0; t < spike_at; t++) {
        double v = noisy_sine(t, &r);
        ra = observe(a, t, v);
        rb = observe(b, t, v);
        assert_same_result(&ra, &rb, "before the spike", t);
    }
    double v = noisy_sine(spike_at, &r);
    ck_assert_int_eq(ad_detector_observe(a, spike_at, v + 20.0, &ra), 0);
    ck_assert_msg(ra.flagged, "the spike was not flagged (score %g)", (double)ra.score);
    ck_assert_int_eq(ra.warming_up, _i ? 0 : 1);
    ck_assert_int_eq(ad_detector_observe(b, spike_at, ra.predicted, &rb), 0);
    ck_assert_int_eq(rb.flagged, 0);
    train(a);
    train(b);
    assert_same_net(a, b, "spike flagged vs its prediction seen");
    for (int t = spike_at + 1; t < spike_at + 400; t++) {
        double w = noisy_sine(t, &r);
        ra = observe(a, t, w);
        rb = observe(b, t, w);
        if (!_i) {
            assert_same_result(&ra, &rb, "after the training", t);
            continue;
        }
        /* A retraining keeps the scorer's statistics, and b's hold one more error (its
         * prediction, seen as a normal value) than a's (the spike, kept out): so the
         * network and its predictions are identical, the scores nearly so. */
        ck_assert_msg(ra.predicted == rb.predicted && ra.error == rb.error,
                      "after the training, sample %d: predictions differ", t);
        ck_assert_msg(fabsf(ra.score - rb.score) < 1e-3f && ra.flagged == rb.flagged,
                      "after the training, sample %d: scores %g vs %g", t, (double)ra.score,
                      (double)rb.score);
    }
    ck_assert_uint_eq(ad_detector_get_stats(a)->flagged, ad_detector_get_stats(b)->flagged + 1);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/*
 * Exactly which values are kept out, shown through training: detector a sees a noisy
 * constant (5 + N(0, 0.1^2)) that steps to 6 at the onset; its twin b never excludes
 * anything (max_exclude 0) and is shown, in place of each value the documented rule says
 * a keeps out (anomalous, and at most `relearn` anomalous in a row; relearn 0: all), the
 * value a predicted. a has no exclusion budget (max_exclude 1), so relearn alone decides.
 * If a kept out exactly those values, both histories and rolling states are equal and
 * every training gives both the same network. A twin c that follows the rule with
 * relearn - 1 must end up with another network (the test can tell).
 * _i = 0: relearn 0 (never relearn); 1: relearn 64 (the default).
 */
START_TEST(test_relearn_exact)
{
    const int relearn = _i ? 64 : 0;
    ad_detector_config c;
    plain_defaults(&c);
    c.train_every = 300;
    c.relearn = relearn;
    c.max_exclude = 1.0f;
    ad_detector *a = make(&c);
    c.max_exclude = 0.0f; /* never excludes */
    ad_detector *b = make(&c), *cc = make(&c);
    int run = 0, kept_out = 0, first = -1, last = -1, nflags = 0;
    ad_rng r;

    ad_rng_seed(&r, 100);
    for (int t = 0; t < 1600; t++) {
        double v = 5.0 + SIGMA * ad_rng_normal(&r) + (t >= ONSET ? 1.0 : 0.0);
        ad_result ra = observe(a, t, v);
        run = ra.hit ? run + 1 : 0;
        int out_a = ra.hit && (relearn == 0 || run <= relearn);
        int out_c = ra.hit && (relearn == 0 || run <= relearn - 1);
        kept_out += out_a;
        observe(b, t, out_a ? ra.predicted : v);
        observe(cc, t, out_c ? ra.predicted : v);
        if (ra.flagged) {
            first = first < 0 ? t : first;
            last = t;
            nflags++;
        }
        if (t == ONSET + 150) { /* a training of our own, well inside the effect */
            train(a);
            train(b);
            train(cc);
        }
        if (ra.train_due || t == ONSET + 150)
            assert_same_net(a, b, "a and the twin shown what a keeps out");
    }
    fprintf(stderr,
            "noisy constant step, relearn %d (no budget): %d values kept out, %d "
            "flags from %+d to %+d after the onset, %llu trainings\n",
            relearn, kept_out, nflags, first - ONSET, last - ONSET,
            (unsigned long long)ad_detector_get_stats(a)->trainings);
    ck_assert_uint_ge(ad_detector_get_stats(a)->trainings, 5);
    ck_assert_int_ge(kept_out, relearn ? relearn : 200);
    if (relearn) {
        const ad_net *na = ad_detector_net(a), *nc = ad_detector_net(cc);
        ck_assert_msg(memcmp(na->params, nc->params, na->nparams * sizeof(float)) != 0,
                      "keeping out one value more or less made no difference");
        ck_assert_msg(last < ONSET + relearn + 150, "flags went on until %+d", last - ONSET);
    } else {
        ck_assert_msg(last > ONSET + 400, "relearn 0: flags stopped at %+d", last - ONSET);
    }
    ad_detector_free(a);
    ad_detector_free(b);
    ad_detector_free(cc);
}
END_TEST

/*
 * The exclusion budget: with relearn 0 (never) but the default max_exclude (0.02 of ~1000
 * samples), a permanent step is kept out only briefly and then learned; without the budget
 * it is flagged on and on.
 */
START_TEST(test_exclusion_budget)
{
    int last[2] = {-1, -1}, count[2] = {0, 0};
    for (int v = 0; v < 2; v++) {
        ad_detector_config c;
        plain_defaults(&c);
        c.train_every = 500;
        c.relearn = 0;
        if (v == 1)
            c.max_exclude = 1.0f;
        ad_detector *d = make(&c);
        ad_rng r;
        ad_rng_seed(&r, 100);
        for (int t = 0; t < 2000; t++) {
            ad_result res = observe(d, t, 5.0 + SIGMA * ad_rng_normal(&r) + (t >= ONSET));
            if (res.flagged) {
                last[v] = t;
                count[v]++;
            }
        }
        ad_detector_free(d);
    }
    fprintf(stderr,
            "noisy constant step, relearn 0: max_exclude 0.02: %d flags, the last at "
            "%+d; max_exclude 1: %d flags, the last at %+d\n",
            count[0], last[0] - ONSET, count[1], last[1] - ONSET);
    ck_assert_msg(last[0] < ONSET + 150, "with the budget, flags went on until %+d",
                  last[0] - ONSET);
    ck_assert_msg(count[1] > 4 * count[0], "budget %d flags, none %d", count[0], count[1]);
}
END_TEST

/*
 * A permanent level shift of a noisy sine, with the defaults (relearn 64, max_exclude 0.02)
 * and a retraining every 500 samples: the flags stop for good (when is printed).
 */
START_TEST(test_relearn_level_shift)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.train_every = 500;
    ad_detector *d = make(&c);
    int first = -1, last = -1, count = 0;
    ad_rng r;

    ad_rng_seed(&r, 100);
    for (int t = 0; t < 4000; t++) {
        ad_result res = observe(d, t, noisy_sine(t, &r) + (t >= ONSET ? 1.0 : 0.0));
        if (res.flagged) {
            first = first < 0 ? t : first;
            last = t;
            count++;
        }
    }
    fprintf(stderr,
            "level shift +1.0 at %d, retraining every 500: %d flags, from %+d to %+d "
            "after the onset\n",
            ONSET, count, first - ONSET, last - ONSET);
    ck_assert_msg(first >= ONSET, "flagged before the shift, at %d", first);
    ck_assert_msg(last < ONSET + 1500, "still flagged %d samples after the shift", last - ONSET);
    ad_detector_free(d);
}
END_TEST

/* ---- time features, magnitudes ---- */

START_TEST(test_time_features)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 12;
    c.features = AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK | AD_FEAT_GAP;
    c.train_every = 600;
    ad_detector *d = make(&c);
    double ts = 1.7e9;
    ad_rng r;

    ck_assert_int_eq(ad_detector_net(d)->cfg.input, 6);
    ad_rng_seed(&r, 9);
    for (int t = 0; t < 1500; t++) {
        if (t % 400 == 399)
            ts += 3.0 * 86400.0; /* a three-day outage */
        else if (t % 97 == 0)
            ts += 0.0; /* a repeated timestamp */
        else if (t == 1000)
            ts += 1e8; /* three years */
        else
            ts += 300.0;
        double tod = fmod(ts, 86400.0) / 86400.0;
        double v = 20.0 + 5.0 * sin(2.0 * M_PI * tod) + 0.3 * ad_rng_normal(&r);
        ad_result res = observe(d, ts, v);
        ck_assert(isfinite(res.error) && (t == 0 || isfinite(res.predicted)));
    }
    const ad_detector_stats *s = ad_detector_get_stats(d);
    ck_assert_uint_ge(s->trainings, 2);
    ck_assert(isfinite(s->train_loss) && isfinite(s->val_loss));
    for (int k = 0; k < AD_REFUSE_NREASONS; k++)
        ck_assert_uint_eq(s->refused[k], 0);
    fprintf(stderr, "time features: %llu flags in 1500 samples with gaps, val loss %.4f\n",
            (unsigned long long)s->flagged, (double)s->val_loss);
    ad_detector_free(d);
}
END_TEST

/* The network's time inputs are the documented formulas' values whatever came before
 * (ad_make_input keeps the last timestamp's features per thread: samples of one round
 * share it): timestamps repeated, alternating, and a value or the gap changing alone. */
START_TEST(test_time_feature_values)
{
    static const double tss[] = {1.7e9,         1.7e9,     1.7e9 + 300.0, 1.7e9,
                                 1.7e9 + 300.0, 86399.999, 0.0,           -86400.5,
                                 1.7e9 + 300.0, 1.7e9 + 300.0};
    ad_detector_config c;
    float x[6];

    plain_defaults(&c);
    c.features = AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK | AD_FEAT_GAP;
    for (size_t i = 0; i < sizeof(tss) / sizeof(tss[0]); i++) {
        const double ts = tss[i], tod = fmod(ts, 86400.0) / 86400.0;
        const double day = fmod(floor(ts / 86400.0) + 3.0, 7.0);
        const double v = (double)i, prev = ts - 60.0 * (double)(i % 3);

        ad_make_input(&c, 1.0, 2.0, v, ts, prev, 1, 1, x);
        ck_assert(x[0] == ad_clipf((v - 1.0) / 2.0, c.input_clip));
        ck_assert_msg(x[1] == (float)sin(2.0 * M_PI * tod) && x[2] == (float)cos(2.0 * M_PI * tod),
                      "ts %.3f (sample %zu): time of day %g %g", ts, i, (double)x[1], (double)x[2]);
        ck_assert_msg(x[3] == (float)sin(2.0 * M_PI * ((day + tod) / 7.0)) &&
                          x[4] == (float)cos(2.0 * M_PI * ((day + tod) / 7.0)),
                      "ts %.3f (sample %zu): day of week %g %g", ts, i, (double)x[3], (double)x[4]);
        ck_assert(x[5] == (float)(log1p(ts - prev) / 10.0));
    }
}
END_TEST

START_TEST(test_huge_magnitudes)
{
    /* _i: 0 around 1e12 with relative noise 1e-4; 1: 1e12, relative noise 1e-9 (below float
     * resolution of the history); 2: around -3e29; 3: constant 1e12 then a step */
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 8;
    c.train_every = 400;
    ad_detector *d = make(&c);
    ad_rng r;
    int flagged_after = 0;

    ad_rng_seed(&r, 13);
    for (int t = 0; t < 1400; t++) {
        double v;
        switch (_i) {
        case 0:
            v = 1e12 * (1.0 + 1e-3 * sine(t) + 1e-4 * ad_rng_normal(&r));
            break;
        case 1:
            v = 1e12 * (1.0 + 1e-9 * ad_rng_normal(&r));
            break;
        case 2:
            v = -3e29 * (1.0 + 0.1 * sine(t) + 0.01 * ad_rng_normal(&r));
            break;
        default:
            v = t < 1000 ? 1e12 : 1.001e12;
            break;
        }
        ad_result res = observe(d, t, v);
        ck_assert_msg(isfinite(res.error) && (t == 0 || isfinite(res.predicted)),
                      "case %d, t %d: predicted %g error %g", _i, t, res.predicted, res.error);
        if (_i == 3 && t >= 1000 && res.flagged)
            flagged_after++;
    }
    ck_assert_uint_ge(ad_detector_get_stats(d)->trainings, 2);
    if (_i == 3)
        ck_assert_int_gt(flagged_after, 0);
    ad_detector_free(d);
}
END_TEST

/* ---- serialisation ---- */

static uint8_t *save(ad_detector *d, size_t *len)
{
    char err[256] = "";
    size_t need = ad_detector_blob_size(d);
    uint8_t *buf = malloc(need + 16);
    ck_assert_ptr_nonnull(buf);
    ck_assert_msg(ad_detector_save(d, buf, need + 16, len, err, sizeof(err)) == 0, "save: %s", err);
    ck_assert_uint_eq(*len, need);
    return buf;
}

static ad_detector *load(const uint8_t *buf, size_t len)
{
    ad_detector *d = NULL;
    char err[256] = "";
    ck_assert_msg(ad_detector_load(buf, len, &d, err, sizeof(err)) == 0, "load: %s", err);
    ck_assert_ptr_nonnull(d);
    return d;
}

/* A stream with spikes, equal timestamps and gaps, for the serialisation tests. */
static void stream_value(int t, ad_rng *r, double *ts, double *v)
{
    *ts = 1.6e9 + 60.0 * t - (t % 11 == 0 ? 60.0 : 0.0) + (t > 500 ? 86400.0 : 0.0);
    *v = noisy_sine(t, r) + (t % 173 == 172 ? 3.0 : 0.0);
}

/* _i: scorer kind (3) x features (2) x save point (2: warming up, after the first training) */
START_TEST(test_roundtrip)
{
    const ad_scorer_kind kind = (ad_scorer_kind)(_i % 3);
    const unsigned features =
        (_i / 3) % 2 ? (AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK | AD_FEAT_GAP) : 0;
    const int at = (_i / 6) ? 260 : 150;
    ad_detector_config c;
    small_config(&c, kind, features);
    if (features) { /* and the seasonal signal (10 samples a period), the naive warm-up, ... */
        c.seasonal_period = 600;
        c.seasonal_periods = 2;
        c.seasonal_weight = 0.8f;
        c.warmup_naive = 1;
        c.alert_penalty = 0.5f;
        c.long_window = 30; /* used by the likelihood only */
        c.range_window = 1600; /* blocks of 100 */
    }
    ad_detector *a = make(&c);
    ad_rng r;
    double ts, v;
    size_t len, len2;
    char what[96];

    ad_rng_seed(&r, 77);
    for (int t = 0; t < at; t++) {
        stream_value(t, &r, &ts, &v);
        observe(a, ts, v);
    }
    ck_assert_uint_eq(ad_detector_get_stats(a)->trainings, at > c.train_after ? 1 : 0);
    uint8_t *buf = save(a, &len);
    ad_detector *b = load(buf, len);
    /* the loaded detector saves to the same bytes */
    uint8_t *buf2 = save(b, &len2);
    ck_assert_uint_eq(len, len2);
    ck_assert_mem_eq(buf, buf2, len);
    free(buf2);
    ck_assert_mem_eq(ad_detector_get_config(a), ad_detector_get_config(b), sizeof(c));
    snprintf(what, sizeof(what), "%s, features %u, loaded at %d", ad_scorer_name(kind), features,
             at);
    for (int t = at; t < at + 900; t++) { /* through two or three more trainings */
        stream_value(t, &r, &ts, &v);
        ad_result ra = observe(a, ts, v), rb = observe(b, ts, v);
        assert_same_result(&ra, &rb, what, t);
        if (t == at + 10) { /* the same state (the range check's before its next block) */
            buf2 = save(b, &len2);
            free(buf);
            buf = save(a, &len);
            ck_assert_uint_eq(len, len2);
            ck_assert_mem_eq(buf, buf2, len);
            free(buf2);
        }
    }
    const ad_detector_stats *sa = ad_detector_get_stats(a), *sb = ad_detector_get_stats(b);
    ck_assert_uint_ge(sa->trainings, 3);
    ck_assert_mem_eq(sa, sb, sizeof(*sa));
    assert_same_net(a, b, what);
    free(buf);
    buf = save(a, &len);
    buf2 = save(b, &len2);
    ck_assert_uint_eq(len, len2);
    ck_assert_mem_eq(buf, buf2, len);
    free(buf);
    free(buf2);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

START_TEST(test_save_refusals)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, 0);
    ad_detector *d = make(&c);
    char err[256] = "";
    size_t len = 1234, need = ad_detector_blob_size(d);
    uint8_t *buf = malloc(need);

    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(ad_detector_save(d, buf, need - 1, &len, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "small"));
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(ad_detector_save(d, NULL, need, &len, err, sizeof(err)), -AD_EINVAL);
    ck_assert_int_eq(ad_detector_save(d, buf, need, &len, err, sizeof(err)), 0);
    ck_assert_uint_eq(len, need);
    free(buf);
    ad_detector_free(d);
}
END_TEST

/* A small trained detector with features (history timestamps) and its blob. */
static uint8_t *small_blob(size_t *len, ad_detector **out)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_DYNAMIC, AD_FEAT_GAP | AD_FEAT_TIME_OF_DAY);
    c.history = 100;
    c.train_after = 60;
    c.window = 8;
    c.hidden = 4;
    c.scorer.window = 32;
    c.scorer.min_samples = 20;
    ad_detector *d = make(&c);
    ad_rng r;
    double ts, v;
    ad_rng_seed(&r, 8);
    for (int t = 0; t < 150; t++) {
        stream_value(t, &r, &ts, &v);
        observe(d, ts, v);
    }
    ck_assert_uint_eq(ad_detector_get_stats(d)->trainings, 1);
    uint8_t *buf = save(d, len);
    *out = d;
    return buf;
}

static void assert_refused(const uint8_t *buf, size_t len, const char *word, const char *what)
{
    ad_detector *d = (ad_detector *)buf;
    char err[256] = "";
    /* an exact-size copy, so ASan sees any read past the end */
    uint8_t *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, buf, len);
    int rc = ad_detector_load(copy, len, &d, err, sizeof(err));
    free(copy);
    ck_assert_msg(rc == -AD_EFORMAT, "%s: load returned %d (%s)", what, rc, err);
    ck_assert_ptr_null(d);
    ck_assert_msg(err[0] != '\0', "%s: no message", what);
    if (word)
        ck_assert_msg(strstr(err, word) != NULL, "%s: \"%s\" lacks \"%s\"", what, err, word);
}

START_TEST(test_every_truncation_refused)
{
    ad_detector *d;
    size_t len;
    uint8_t *buf = small_blob(&len, &d);
    char what[64];

    ck_assert_uint_lt(len, 8000);
    for (size_t n = 0; n < len; n++) {
        snprintf(what, sizeof(what), "%zu of %zu bytes", n, len);
        assert_refused(buf, n, NULL, what);
    }
    ad_detector *e = NULL;
    char err[256] = "";
    ck_assert_int_eq(ad_detector_load(NULL, len, &e, err, sizeof(err)), -AD_EFORMAT);
    ck_assert_ptr_null(e);
    free(buf);
    ad_detector_free(d);
}
END_TEST

START_TEST(test_every_byte_flip_refused)
{
    ad_detector *d;
    size_t len;
    uint8_t *buf = small_blob(&len, &d);
    char what[64];

    for (size_t i = 0; i < len; i++) {
        const uint8_t mask[3] = {(uint8_t)(1u << (i % 8)), 0x80, 0xff};
        for (int m = 0; m < 3; m++) {
            buf[i] ^= mask[m];
            snprintf(what, sizeof(what), "byte %zu of %zu ^ 0x%02x", i, len, mask[m]);
            assert_refused(buf, len, NULL, what);
            buf[i] ^= mask[m];
        }
    }
    ad_detector_free(load(buf, len)); /* intact, it still loads */
    free(buf);
    ad_detector_free(d);
}
END_TEST

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_f64(uint8_t *p, double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof(u));
    put_le(p, u, 8);
}

static double get_f64(const uint8_t *p)
{
    uint64_t u = get_le(p, 8);
    double x;
    memcpy(&x, &u, sizeof(x));
    return x;
}

static void recrc(uint8_t *b, size_t len)
{
    put_le(b + len - 4, ad_crc32(0, b, len - 4), 4);
}

/*
 * Where the fields of a detector blob are (detector_blob.c's write_body), found rather than
 * hard-coded so that fields added in the middle do not silently shift the tests: config
 * fields by saving two fresh detectors that differ in that field only; the normaliser
 * after the config and counters (checked: a fresh detector has centre 0, scale 1); the
 * history, state and network back from the scorer's state at the end.
 */
typedef struct blob_layout {
    size_t version, window, stats, center, scale; /* from the start */
    size_t hn, hpos, netlen, net, scorer;         /* from the end */
} blob_layout;

static size_t first_difference(const ad_detector_config *a, const ad_detector_config *b)
{
    ad_detector *da = make(a), *db = make(b);
    size_t la, lb;
    uint8_t *ba = save(da, &la), *bb = save(db, &lb);
    ck_assert_uint_eq(la, lb);
    size_t i = 0;
    while (i < la - 4 && ba[i] == bb[i])
        i++;
    ck_assert_uint_lt(i, la - 4);
    free(ba);
    free(bb);
    ad_detector_free(da);
    ad_detector_free(db);
    return i;
}

static blob_layout find_layout(const ad_detector *d, const uint8_t *buf, size_t len)
{
    const ad_detector_config *c = ad_detector_get_config(d);
    const ad_net *net = ad_detector_net(d);
    ad_detector_config o = *c;
    blob_layout L;

    L.version = 4;
    o.window = c->window + 1; /* low byte differs */
    L.window = first_difference(c, &o);
    o = *c;
    o.alert_horizon = c->alert_horizon + 1; /* low byte; then departure, the last field */
    L.stats = first_difference(c, &o) + 4 + 4;
    L.center = L.stats + 8 * (2 + AD_REFUSE_NREASONS + 1) + 4 * 3;
    L.scale = L.center + 8;
    {
        ad_detector *fresh = make(c);
        size_t n;
        uint8_t *b = save(fresh, &n);
        ck_assert_msg(get_f64(b + L.center) == 0.0 && get_f64(b + L.scale) == 1.0,
                      "blob layout: centre/scale not at %zu/%zu", L.center, L.scale);
        free(b);
        ad_detector_free(fresh);
    }
    /* the scorer's state, at the end before the CRC, has a size fixed by its config */
    ad_scorer *sc = NULL;
    char err[200] = "";
    ck_assert_int_eq(ad_scorer_create(&c->scorer, &sc, err, sizeof(err)), 0);
    ad_wbuf w;
    ad_wbuf_init(&w, NULL, 0);
    ad_scorer_save(sc, &w);
    ad_scorer_free(sc);
    L.scorer = len - 4 - w.len;
    L.net = L.scorer - ad_net_blob_size(net, NULL);
    L.netlen = L.net - 8;
    const size_t hcap = (size_t)c->history, LH = (size_t)net->cfg.layers * net->cfg.hidden;
    const int has_c =
        c->kind == AD_CELL_LSTM || c->kind == AD_CELL_PEEPHOLE || c->kind == AD_CELL_CIFG;
    size_t hv =
        L.netlen - LH * 4 * (has_c ? 2 : 1) -
        (c->features || c->seasonal_period > 0 ? 8 + 4 + hcap * 4 : 0) - (hcap + 7) / 8 - hcap * 4;
    L.hn = hv - 8;
    L.hpos = hv - 4;
    /* checks that the layout is right */
    ck_assert_uint_eq(get_le(buf, 4), get_le((const uint8_t *)"ADDT", 4));
    ck_assert_uint_eq(get_le(buf + L.window, 4), (uint64_t)c->window);
    ck_assert_uint_eq(get_le(buf + L.stats, 8), ad_detector_get_stats(d)->samples);
    ck_assert_uint_eq(get_le(buf + L.netlen, 8), ad_net_blob_size(net, NULL));
    ck_assert_uint_eq(get_le(buf + L.scorer, 4), 0x52435341u); /* "ASCR" */
    uint64_t samples = ad_detector_get_stats(d)->samples;
    ck_assert_uint_eq(get_le(buf + L.hn, 4), samples < hcap ? samples : hcap);
    ck_assert_uint_eq(get_le(buf + L.hpos, 4), samples % hcap);
    double scale = get_f64(buf + L.scale);
    ck_assert(isfinite(scale) && scale > 0.0);
    return L;
}

/* Changes with a valid checksum: the contents themselves must be refused. */
START_TEST(test_inconsistent_blob_refused)
{
    ad_detector *d;
    size_t len;
    uint8_t *buf = small_blob(&len, &d);
    const blob_layout L = find_layout(d, buf, len);
    const size_t hcap = (size_t)ad_detector_get_config(d)->history;
    const size_t netlen = L.scorer - L.net;
    uint8_t *b = malloc(len + 1);
    ck_assert_ptr_nonnull(b);

    struct {
        const char *what, *word;
        size_t off;
        int kind; /* 0: u32, 1: f64, 2: u64 */
        double value;
    } cases[] = {
        {"version 14", "version", L.version, 0, 14},
        {"version 3", "version", L.version, 0, 3},
        {"version 2", "version", L.version, 0, 2},
        {"version 0", "version", L.version, 0, 0},
        {"window 1", "configuration", L.window, 0, 1},
        {"hn > history", "inconsistent", L.hn, 0, (double)hcap + 1},
        {"hpos = history", "inconsistent", L.hpos, 0, (double)hcap},
        {"scale 0", "inconsistent", L.scale, 1, 0.0},
        {"scale -1", "inconsistent", L.scale, 1, -1.0},
        {"scale NaN", "inconsistent", L.scale, 1, NAN},
        {"center NaN", "inconsistent", L.center, 1, NAN},
        {"center Inf", "inconsistent", L.center, 1, INFINITY},
        /* after scale: trained (4), w_mean, w_m2, w_n (8 each), then warmup_naive's */
        {"last value NaN", "inconsistent", L.scale + 36, 1, NAN},
        {"changes' square -1", "inconsistent", L.scale + 44, 1, -1.0},
        /* then the raw signal's moving mean (v11, f32), then the incident's (v10) */
        {"raw mean NaN", "inconsistent", L.scale + 120, 0, 0x7fc00000},
        {"raw mean Inf", "inconsistent", L.scale + 120, 0, 0x7f800000},
        {"raw mean 1e30", "inconsistent", L.scale + 120, 0, 0x7149f2ca},
        {"incident mean NaN", "inconsistent", L.scale + 124, 1, NAN},
        {"incident centre Inf", "inconsistent", L.scale + 132, 1, INFINITY},
        {"incident spread -1", "inconsistent", L.scale + 140, 1, -1.0},
        {"incident open 2", "inconsistent", L.scale + 148, 0, 2},
        /* then the departure reference (v13) */
        {"departure centre NaN", "inconsistent", L.scale + 152, 1, NAN},
        {"departure scale -1", "inconsistent", L.scale + 160, 1, -1.0},
        {"departure scale Inf", "inconsistent", L.scale + 160, 1, INFINITY},
        {"net length", NULL, L.netlen, 2, (double)(len * 2)},
        {"net length short", NULL, L.netlen, 2, (double)(netlen - 4)},
        {"net magic", "network", L.net, 0, 0},
        {"scorer magic", "scorer", L.scorer, 0, 0},
        {"scorer kind", "scorer", L.scorer + 4, 0, AD_SCORER_STATIC},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(b, buf, len);
        if (cases[i].kind == 0)
            put_le(b + cases[i].off, (uint64_t)cases[i].value, 4);
        else if (cases[i].kind == 1)
            put_f64(b + cases[i].off, cases[i].value);
        else
            put_le(b + cases[i].off, (uint64_t)cases[i].value, 8);
        recrc(b, len);
        assert_refused(b, len, cases[i].word, cases[i].what);
    }
    /* wrong magic */
    memcpy(b, buf, len);
    b[3] = 'X';
    assert_refused(b, len, "magic", "magic ADDX");
    /* a byte too many before the checksum */
    memcpy(b, buf, len - 4);
    b[len - 4] = 0;
    recrc(b, len + 1);
    assert_refused(b, len + 1, "unexpected", "trailing byte");
    free(b);
    free(buf);
    ad_detector_free(d);
}
END_TEST

/*
 * The load checks the normaliser (scale > 0, finite center) but lets an infinite scale
 * through, and a detector so loaded predicts infinity: the checksum is valid, the
 * contents are not.
 */
START_TEST(test_infinite_scale_refused)
{
    ad_detector *d;
    size_t len;
    uint8_t *buf = small_blob(&len, &d);
    const blob_layout L = find_layout(d, buf, len);
    ad_detector *e = NULL;
    char err[256] = "";

    put_f64(buf + L.scale, INFINITY);
    recrc(buf, len);
    int rc = ad_detector_load(buf, len, &e, err, sizeof(err));
    if (rc == 0) {
        ad_result res;
        ck_assert_int_eq(ad_detector_observe(e, 2e9, 0.5, &res), 0);
        float score = res.score;
        double error = res.error, predicted = res.predicted;
        ad_detector_free(e);
        free(buf);
        ad_detector_free(d);
        ck_assert_msg(0,
                      "a blob with scale +Inf loads; the next value then gets predicted %g, "
                      "error %g, score %g",
                      predicted, error, (double)score);
    }
    ck_assert_int_eq(rc, -AD_EFORMAT);
    ck_assert_ptr_null(e);
    ck_assert(err[0] != '\0');
    free(buf);
    ad_detector_free(d);
}
END_TEST

/*
 * Random changes with the checksum recomputed: each blob is refused with a message or
 * loads into a detector that runs (ASan watches). Counts what loads and what then gives
 * non-finite results.
 */
START_TEST(test_rechecksummed_fuzz)
{
    ad_detector *d;
    size_t len;
    uint8_t *buf = small_blob(&len, &d);
    uint8_t *b = malloc(len);
    int refused = 0, loaded = 0, nonfinite = 0;
    ad_rng r;

    ck_assert_ptr_nonnull(b);
    ad_rng_seed(&r, 2718);
    for (int k = 0; k < 400; k++) {
        memcpy(b, buf, len);
        int nchanges = 1 + (int)ad_rng_below(&r, 3);
        for (int j = 0; j < nchanges; j++)
            b[8 + ad_rng_below(&r, (uint32_t)(len - 12))] ^= (uint8_t)(1 + ad_rng_below(&r, 255));
        recrc(b, len);
        ad_detector *e = NULL;
        char err[256] = "";
        if (ad_detector_load(b, len, &e, err, sizeof(err)) != 0) {
            ck_assert_ptr_null(e);
            ck_assert(err[0] != '\0');
            refused++;
            continue;
        }
        loaded++;
        int bad = 0;
        for (int t = 0; t < 60; t++) {
            ad_result res;
            if (ad_detector_observe(e, 2e9 + t, sine(t), &res) == 0)
                bad |= !(isfinite(res.score) && res.score >= 0.0f && res.score <= 1.0f);
        }
        nonfinite += bad;
        ad_detector_free(e);
    }
    fprintf(stderr,
            "re-checksummed random changes: %d refused, %d loaded (%d of them then "
            "scored outside [0, 1] or NaN)\n",
            refused, loaded, nonfinite);
    free(b);
    free(buf);
    ad_detector_free(d);
}
END_TEST

/* ---- the range check ---- */

START_TEST(test_range_check)
{
    /* a slow square wave between 0 and 1: values beyond the seen range by more than the
     * tolerance are anomalous even where the network's error alone says little */
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 8;
    c.range_tolerance = _i ? 0.05f : 0.0f;
    ad_detector *d = make(&c);
    ad_rng r;
    int flagged_at_new_max = 0, flagged_inside = 0;

    ad_rng_seed(&r, 91);
    for (int t = 0; t < 1200; t++) {
        double v = ((t / 25) % 2 ? 1.0 : 0.0) + 0.01 * ad_rng_normal(&r);
        if (t == 1100)
            v = 1.12; /* 12% of the range above everything seen */
        ad_result res = observe(d, t, v);
        if (res.train_due)
            train(d);
        if (t == 1100)
            flagged_at_new_max = res.hit;
        else if (t > 600)
            flagged_inside += res.hit;
    }
    fprintf(stderr, "range check %s: new maximum anomalous %d, %d anomalies inside the range\n",
            _i ? "0.05" : "off", flagged_at_new_max, flagged_inside);
    if (_i)
        ck_assert_msg(flagged_at_new_max, "a new maximum beyond the tolerance was not anomalous");
    ck_assert_int_le(flagged_inside, 2);
    /* the range survives a save and load */
    size_t len;
    uint8_t *buf = save(d, &len);
    ad_detector *e = load(buf, len);
    ad_result ra = observe(d, 1200, 1.3), rb = observe(e, 1200, 1.3);
    assert_same_result(&ra, &rb, "range after load", 1200);
    if (_i)
        ck_assert(ra.hit);
    free(buf);
    ad_detector_free(e);
    ad_detector_free(d);
}
END_TEST

/* The range check over a sliding window (range_window): an early spike widens the
 * all-time range for good, so a later excursion above the recent range is anomalous only
 * when the range forgets it; the blocks survive a save and load. */
START_TEST(test_range_window)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 8;
    c.range_tolerance = 0.05f;
    c.range_window = _i ? 400 : 0;
    ad_detector *d = make(&c);
    ad_rng r;
    int at_excursion = 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    ad_detector *e = NULL;

    ad_rng_seed(&r, 93);
    for (int t = 0; t < 1200; t++) {
        double v = ((t / 25) % 2 ? 1.0 : 0.0) + 0.01 * ad_rng_normal(&r);
        if (t == 150)
            v = 5.0; /* an early spike */
        if (t == 1100)
            v = 1.5; /* half the recent range above it, well inside the all-time one */
        ad_result res = observe(d, t, v);
        if (res.train_due)
            train(d);
        if (t == 1100)
            at_excursion = res.hit;
        if (t == 1000) { /* the blocks survive a save and load mid-stream */
            buf = save(d, &len);
            e = load(buf, len);
            ad_detector_free(d);
            d = e;
        }
    }
    fprintf(stderr, "range window %d: excursion above the recent range anomalous %d\n",
            c.range_window, at_excursion);
    if (_i)
        ck_assert_msg(at_excursion, "an excursion above the recent range was not anomalous");
    else
        ck_assert_msg(!at_excursion, "the all-time range should include the early spike");
    free(buf);
    ad_detector_free(d);
}
END_TEST


/* ---- the seasonal signal and the naive warm-up ---- */

/*
 * A sine of period 100 samples (1 s apart) goes flat at its mean for a whole period: the
 * network, reading the values as they come, predicts the flat values well, while the
 * seasonal-naive error (the value against the median of the last 3 periods) is as large as
 * the sine. With seasonal_period 100 the flat stretch is anomalous; without, not. A save
 * and load mid-stream continues exactly (the seasonal scorer's state is in the blob).
 */
START_TEST(test_seasonal_signal)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 8;
    c.history = 600;
    c.train_after = 400;
    c.train_every = 0;
    c.scorer.error_bound = 3.0f;
    c.seasonal_period = _i ? 100 : 0;
    c.seasonal_weight = 0.8f;
    ad_detector *d = make(&c), *e = NULL;
    ad_rng r;
    int flat_anomalous = 0, other_anomalous = 0;

    ad_rng_seed(&r, 95);
    for (int t = 0; t < 1400; t++) {
        const int flat = t >= 1200 && t < 1300;
        double v = (flat ? 0.0 : sin(2.0 * M_PI * t / 100.0)) + 0.05 * ad_rng_normal(&r);
        ad_result res = observe(d, t, v);
        if (t == 1000) {
            size_t len;
            uint8_t *buf = save(d, &len);
            e = load(buf, len);
            free(buf);
        }
        if (e && t > 1000) {
            ad_result re = observe(e, t, v);
            assert_same_result(&res, &re, "seasonal after load", t);
        }
        if (flat)
            flat_anomalous += res.hit;
        else if (t > 600 && t < 1200)
            other_anomalous += res.hit;
    }
    fprintf(stderr, "seasonal period %d: %d anomalous in the flat period, %d before it\n",
            c.seasonal_period, flat_anomalous, other_anomalous);
    if (_i)
        ck_assert_msg(flat_anomalous > 0, "the flat period was not anomalous");
    else
        ck_assert_msg(flat_anomalous == 0, "the network alone flagged the flat period");
    ck_assert_int_le(other_anomalous, 2);
    ad_detector_free(e);
    ad_detector_free(d);
}
END_TEST

/*
 * raw_k: a sine the network predicts to within a few hundredths of its scale (amplitude 1,
 * period 50, noise 0.002) takes a step of +0.4 at t 1500 where it crosses 0, inside the
 * range seen. Bounded and averaged, the likelihood sees it as nothing (0.4 / 3.4 over
 * 10 samples, under the deviation floor); against the network's own validation errors
 * it is many times their spread. With raw_k 6 it is a hit; without, not. Either way no
 * other sample after the training is (but for the step's echo in the next 20). A save
 * and load keeps the raw signal's scale and its moving mean. The raw score is
 * a / (a + q) with a = |m|, m the moving mean of the signed errors (m += (e - m) / 5,
 * from 0 at the training): one q for the step and the two samples after it. The series
 * does not qualify, and the step is not a hit, with raw_rms 0.001 (below the network's
 * validation RMS here), nor when the first training comes after 500 values (a validation
 * tail of 99, under RAW_MIN_VAL), nor when the blob is loaded as a version 10 (whose
 * raw_q was another signal's scale: off until the next training).
 */
/* The raw signal's tests: a sine of period 50 with noise 0.002, which the network predicts
 * to a fraction of a percent; trained once after 1300 values (a validation tail of 259),
 * raw_k 6, the likelihood as the defaults have it. */
static void raw_config(ad_detector_config *c)
{
    plain_defaults(c);
    c->train_after = 1300;
    c->train_every = 0;
    c->raw_k = 6.0f;
    c->scorer.error_bound = 3.0f;
    c->scorer.min_sd = 0.0173f;
}

static double raw_series(int t, ad_rng *r)
{
    return sin(2.0 * M_PI * t / 50.0) + 0.002 * ad_rng_normal(r);
}

START_TEST(test_raw_signal)
{
    static const struct {
        float k, rms;
        int after, hit, v10;
    } cases[] = {{0.0f, 0.05f, 1300, 0, 0}, {6.0f, 0.05f, 1300, 1, 0}, {6.0f, 0.001f, 1300, 0, 0},
                 {6.0f, 0.05f, 500, 0, 0},  {6.0f, 0.05f, 1300, 0, 1}};
    ad_detector_config c;
    raw_config(&c);
    c.train_after = cases[_i].after;
    c.raw_k = cases[_i].k;
    c.raw_rms = cases[_i].rms;
    ad_detector *d = make(&c);
    ad_rng r;
    ad_rng_seed(&r, 33);
    int at_step = 0, others = 0;
    double err[1700], raw[1700];
    for (int t = 0; t < 1700; t++) {
        double v = raw_series(t, &r);
        if (t == 1500)
            v += 0.4;
        if (t == 1450) { /* a round trip keeps raw_q and the moving mean */
            size_t n;
            uint8_t *buf = save(d, &n);
            if (cases[_i].v10) { /* the same bytes as a version 10 with last errors 0 */
                const blob_layout L = find_layout(d, buf, n);
                put_le(buf + L.version, 10, 4);
                put_le(buf + L.scale + 120, 0, 4);
                /* without version 13's departure reference after the incident's */
                const size_t dep = L.scale + 152;
                memmove(buf + dep, buf + dep + 16, n - dep - 16);
                n -= 16;
                /* and without version 12's alert_horizon and 13's departure, the config's
                 * last 8 bytes */
                memmove(buf + L.stats - 8, buf + L.stats, n - L.stats);
                n -= 8;
                recrc(buf, n);
            }
            ad_detector_free(d);
            d = load(buf, n);
            free(buf);
            /* a version 10 runs with the horizon before version 12 */
            ck_assert_int_eq(ad_detector_get_config(d)->alert_horizon,
                             cases[_i].v10 ? 2000 : 50000);
        }
        ad_result res = observe(d, t, v);
        err[t] = res.error;
        raw[t] = res.raw_score;
        if (t == 1500)
            at_step = res.hit;
        else if (t >= c.train_after && (t < 1500 || t >= 1520)) /* the step's echo aside */
            others += res.hit;
    }
    ck_assert_uint_eq(ad_detector_get_stats(d)->trainings, 1);
    fprintf(stderr, "raw_k %g, raw_rms %g, training after %d: step a hit %d, %d other hits\n",
            (double)c.raw_k, (double)c.raw_rms, c.train_after, at_step, others);
    ck_assert_int_eq(at_step, cases[_i].hit);
    ck_assert_int_eq(others, 0);
    if (cases[_i].hit) {
        /* the raw score is a / (a + q), a = |m|, m the moving mean of the signed errors
         * since the training (the step and the next two samples, where the raw signal is
         * the larger score, give one q) */
        double q[3], m = 0.0;
        for (int t = c.train_after; t < 1500; t++)
            m += 0.2 * (err[t] - m);
        for (int k = 0; k < 3; k++) {
            const int t = 1500 + k;
            m += 0.2 * (err[t] - m);
            q[k] = fabs(m) * (1.0 - raw[t]) / raw[t];
        }
        fprintf(stderr, "raw_k: q %g %g %g\n", q[0], q[1], q[2]);
        ck_assert(fabs(q[1] - q[0]) < 2e-3 * q[0] && fabs(q[2] - q[0]) < 2e-3 * q[0]);
    }
    ad_detector_free(d);
}
END_TEST

/*
 * feature_span: the time features are fed only when the history at a training spans
 * feature_span seconds. The same noisy sine, sampled every second (history of 450 s) and
 * every 10 minutes (3 days), seen by two detectors with time of day whose timestamps
 * differ by 5 hours: where the features are fed the network's inputs differ and so do
 * its predictions; where they are not (1-second steps, feature_span 2 days) the two run
 * identically. feature_span 0 feeds them always (the 1-second pair differs). A save and
 * load keeps the decision.
 */
START_TEST(test_feature_span)
{
    static const struct {
        double step;
        int span, same;
    } cases[] = {{1.0, 172800, 1}, {600.0, 172800, 0}, {1.0, 0, 0}};
    const double step = cases[_i].step;
    ad_detector_config c;
    plain_defaults(&c);
    c.features = AD_FEAT_TIME_OF_DAY;
    c.history = 450;
    c.train_after = 450;
    c.train_every = 0;
    c.epochs = 3;
    c.feature_span = cases[_i].span;
    ad_detector *a = make(&c), *b = make(&c);
    ad_rng r;
    ad_rng_seed(&r, 21);
    int differ = 0;
    for (int t = 0; t < 600; t++) {
        double v = sin(2.0 * M_PI * t / 50.0) + 0.05 * ad_rng_normal(&r);
        ad_result ra = observe(a, 1e9 + t * step, v), rb = observe(b, 1e9 + 18000 + t * step, v);
        if (t == 500) { /* a round trip keeps whether the features are fed */
            size_t n;
            uint8_t *buf = save(a, &n);
            ad_detector_free(a);
            a = load(buf, n);
            free(buf);
        }
        differ += t > 0 && ra.predicted != rb.predicted; /* t 0: no prediction (NaN) */
    }
    ck_assert_uint_eq(ad_detector_get_stats(a)->trainings, 1);
    fprintf(stderr, "feature_span %d, steps of %g s: %d predictions differ\n", c.feature_span,
            step, differ);
    if (cases[_i].same)
        ck_assert_int_eq(differ, 0);
    else
        ck_assert_int_ge(differ, 100);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/* The prediction the detector's network makes for the next value after stepping from a
 * zero state over the newest `last` values of its history (no features). */
static double pred_over(const ad_detector *d, int last)
{
    const ad_detector_config *c = ad_detector_get_config(d);
    const ad_net *net = ad_detector_net(d);
    static float v[4096];
    float x[AD_MAX_INPUT], y = 0.0f;
    double center, scale;
    const int n = ad_detector_history(d, v, NULL, 4096);
    ad_state *st = ad_state_create(net);

    ck_assert_ptr_nonnull(st);
    ck_assert_int_le(last, n);
    ad_detector_normaliser(d, &center, &scale);
    for (int i = n - last; i < n; i++) {
        ad_make_input(c, center, scale, v[i], 0.0, 0.0, i > 0, 1, x);
        ad_net_step(net, st, x, &y);
    }
    ad_state_free(st);
    return ad_norm_inverse(c, y, center, scale);
}

/*
 * stateful (_i 0 or 1): trained with stateful truncated BPTT (train.h; its walk is
 * checked in check_train.c), and after every install the rolling state is warmed over
 * the whole history, so the next prediction is the network's over all of it; with
 * stateful 0 over the newest `prime` values (8 here; the static scorer has no refill
 * window). The
 * setting survives a blob round trip (version 9), and the two settings train different
 * networks.
 */
START_TEST(test_stateful)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_STATIC, 0);
    c.train_every = 150;
    c.prime = 8; /* a state this short still differs from the whole history's */
    c.stateful = _i;
    ad_detector *d = make(&c);
    ad_rng r;
    ad_rng_seed(&r, 8);
    int t = 0, checked = 0;

    for (; t < 520; t++) {
        ad_result res = observe(d, t, noisy_sine(t, &r)); /* trains when due */
        if (t == 300) { /* a round trip keeps the setting */
            size_t n;
            uint8_t *buf = save(d, &n);
            ck_assert_uint_eq(get_le(buf + 4, 4), AD_DETECTOR_V_DEPARTURE);
            ad_detector_free(d);
            d = load(buf, n);
            free(buf);
            ck_assert_int_eq(ad_detector_get_config(d)->stateful, _i);
        }
        if (res.train_due) {
            /* just installed: the next prediction is the network's over... */
            float h[4096];
            const int hn = ad_detector_history(d, h, NULL, 4096);
            const double all = pred_over(d, hn), newest = pred_over(d, c.prime);
            const double v = noisy_sine(t + 1, &r);
            ad_result next = observe(d, ++t, v);
            ck_assert(all != newest);
            ck_assert_double_eq(next.predicted, _i ? all : newest);
            checked++;
        }
    }
    ck_assert_uint_eq(ad_detector_get_stats(d)->trainings, 3);
    ck_assert_int_eq(checked, 3);
    ad_detector_free(d);
}
END_TEST

/*
 * The anomalous state through an incident (incident_z; _i 0: off, 1: the default 12): a
 * noisy sine that steps up by 20 (some 28 of its spreads) for samples 600..799, then comes
 * back. With the incident the state is on through the step and off once the values are
 * back; without, only the short_window samples after each hit. A blob round trip in the middle of the step
 * goes on identically (version 10 holds the open incident); incident_z set to 0 there
 * closes it (ad_detector_set_incident, which refuses a value out of bounds).
 */
START_TEST(test_incident)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 8;
    c.train_every = 0;
    c.departure = 0.0f; /* test_departure's */
    if (!_i)
        c.incident_z = 0.0f;
    ck_assert(!_i || c.incident_z == 12.0f);
    ad_detector *d = make(&c), *copy = NULL, *off = NULL;
    ad_rng r;
    ad_rng_seed(&r, 31);
    int on_step = 0, on_after = 0;

    for (int t = 0; t < 1000; t++) {
            double v = noisy_sine(t, &r) + (t >= 600 && t < 800 ? 20.0 : 0.0);
        ad_result res = observe(d, t, v);
        if (copy) {
            ad_result rc = observe(copy, t, v), ro = observe(off, t, v);
            assert_same_result(&res, &rc, "after a round trip in the incident", t);
            if (t >= 700 + c.scorer.short_window && t < 800)
                ck_assert_msg(!ro.anomalous, "incident_z 0 left the state on at %d", t);
        }
        if (t == 700) {
            size_t n;
            uint8_t *buf = save(d, &n);
            copy = load(buf, n);
            off = load(buf, n);
            free(buf);
            ck_assert_int_eq(ad_detector_set_incident(off, -1.0f, 400, 0.0f), -AD_EINVAL);
            ck_assert_int_eq(ad_detector_set_incident(off, 0.0f, 15, 0.0f), -AD_EINVAL);
            ck_assert(ad_detector_get_config(off)->incident_z == c.incident_z);
            ck_assert_int_eq(ad_detector_set_incident(off, 0.0f, 400, 0.0f), 0);
        }
        on_step += t >= 600 && t < 800 && res.anomalous;
        on_after += t >= 850 && res.anomalous;
    }
    fprintf(stderr, "incident_z %g: anomalous on %d of the step's 200, %d of the 150 from 50 "
            "after it\n", (double)c.incident_z, on_step, on_after);
    if (_i)
        ck_assert_int_ge(on_step, 195);
    else
        ck_assert_int_lt(on_step, 100);
    ck_assert_int_eq(on_after, 0);
    ad_detector_free(d);
    ad_detector_free(copy);
    ad_detector_free(off);
}
END_TEST

/* The departure tests' detector: small, trained once, and with incident_z 0 so that
 * only departure can hold the state past the hits' short states. */
static void departure_config(ad_detector_config *c)
{
    plain_defaults(c);
    c->hidden = 8;
    c->train_every = 0;
    c->incident_z = 0.0f;
}

/*
 * The anomalous state while the values are away from what the network was trained on
 * (departure; _i 0: off, 1: the default 6). Trained once on a noisy sine of amplitude 1
 * around 100, whose moving mean over short_window (10) keeps within about 0.64 of its
 * mean; samples 900..1099 step up by 6, which the network soon follows (its errors
 * settle), and then come back. With incident_z 0, so that only departure can hold the
 * state: with departure 6 it is on through the step once the moving mean has got there
 * (~10 samples) and off again soon after the values are back; without, it ends within
 * the step. A blob round trip in the step goes on identically (version 13 holds the
 * reference); departure set after the load acts at once (the reference is always taken),
 * 0 turns it off, 12 (a step of 6 is less than 12 times 0.64) leaves it off: the scale
 * is the moving mean's, not the values'; ad_detector_set_incident refuses a negative
 * one. The same blob made a version 12 before the step (no departure, no reference, and
 * the moving mean left at 0 as version 12 kept it with incident_z 0) loads with a
 * reference from the history and the moving mean at the newest value: with departure 6
 * set, off before the step and on through it.
 */
START_TEST(test_departure)
{
    ad_detector_config c;
    departure_config(&c);
    ck_assert(c.departure == 6.0f);
    if (!_i)
        c.departure = 0.0f;
    ck_assert_int_eq(c.scorer.short_window, 10);
    ad_detector *d = make(&c), *copy = NULL, *flip = NULL, *wide = NULL, *v12 = NULL;
    ad_rng r;
    ad_rng_seed(&r, 43);
    int on_step = 0, on_late = 0, on_after = 0, flip_late = 0, wide_on = 0;
    int v12_before = 0, v12_step = 0;

    for (int t = 0; t < 1300; t++) {
        const double v = 100.0 + noisy_sine(t, &r) + (t >= 900 && t < 1100 ? 6.0 : 0.0);
        ad_result res = observe(d, t, v);
        if (copy) {
            ad_result rc = observe(copy, t, v), rf = observe(flip, t, v);
            ad_result rw = observe(wide, t, v);
            assert_same_result(&res, &rc, "after a round trip in the step", t);
            flip_late += t >= 1050 && t < 1100 && rf.anomalous;
            wide_on += rw.anomalous;
        }
        if (v12) {
            ad_result r12 = observe(v12, t, v);
            v12_before += t < 900 && r12.anomalous;
            v12_step += t >= 915 && t < 1100 && r12.anomalous;
        }
        if (t == 850) { /* a version 12 of this detector */
            size_t n;
            uint8_t *buf = save(d, &n);
            const blob_layout L = find_layout(d, buf, n);
            put_le(buf + L.version, 12, 4);
            put_f64(buf + L.scale + 124, 0.0); /* the moving mean, as 12 left it */
            const size_t dep = L.scale + 152;  /* the reference: none */
            memmove(buf + dep, buf + dep + 16, n - dep - 16);
            n -= 16;
            memmove(buf + L.stats - 4, buf + L.stats, n - L.stats); /* departure: none */
            n -= 4;
            recrc(buf, n);
            v12 = load(buf, n);
            free(buf);
            ck_assert(ad_detector_get_config(v12)->departure == 0.0f);
            ck_assert_int_eq(ad_detector_set_incident(v12, 0.0f, 400, 6.0f), 0);
        }
        if (t == 1000) {
            size_t n;
            uint8_t *buf = save(d, &n);
            ck_assert_uint_eq(get_le(buf + 4, 4), AD_DETECTOR_V_DEPARTURE);
            copy = load(buf, n);
            flip = load(buf, n);
            wide = load(buf, n);
            free(buf);
            ck_assert(ad_detector_get_config(copy)->departure == c.departure);
            ck_assert_int_eq(ad_detector_set_incident(flip, 0.0f, 400, -1.0f), -AD_EINVAL);
            ck_assert(ad_detector_get_config(flip)->departure == c.departure);
            ck_assert_int_eq(ad_detector_set_incident(flip, 0.0f, 400, _i ? 0.0f : 6.0f), 0);
            ck_assert_int_eq(ad_detector_set_incident(wide, 0.0f, 400, 12.0f), 0);
        }
        on_step += t >= 915 && t < 1100 && res.anomalous;
        on_late += t >= 1050 && t < 1100 && res.anomalous;
        on_after += t >= 1150 && res.anomalous;
    }
    fprintf(stderr, "departure %g: anomalous on %d of the step's 185 from its 15th, %d of its "
            "last 50, %d of the 150 from 50 after it; flipped %d of the last 50; at 12 %d; "
            "version 12 at 6: %d before the step, %d of its 185\n",
            (double)c.departure, on_step, on_late, on_after, flip_late, wide_on, v12_before,
            v12_step);
    ck_assert_uint_eq(ad_detector_get_stats(d)->trainings, 1);
    if (_i) {
        ck_assert_int_eq(on_step, 185);
        ck_assert_int_eq(flip_late, 0);
    } else {
        ck_assert_int_eq(on_late, 0);
        ck_assert_int_eq(flip_late, 50);
    }
    ck_assert_int_le(wide_on, 12); /* the hits' short states only */
    ck_assert_int_eq(v12_before, 0);
    ck_assert_int_eq(v12_step, 185);
    ck_assert_int_eq(on_after, 0);
    ad_detector_free(d);
    ad_detector_free(copy);
    ad_detector_free(flip);
    ad_detector_free(wide);
    ad_detector_free(v12);
}
END_TEST

/*
 * departure's reference is the values the network was trained on, the whole history
 * (up to 4096), not the newest few hundred: a trend (0.01 a sample, N(0, 0.1^2) noise)
 * trained on once at 750 samples has its moving mean within 0.01 x 375 of their mean,
 * so with departure 3 it departs only once the trend has gone on past about sample
 * 1490; a reference of the newest 400 values (half the spread, a later centre) would
 * depart from about 1145. The state stays off from 900 (the new network's first
 * errors, just after its training, are hits on this series) through 1450.
 */
START_TEST(test_departure_trend)
{
    ad_detector_config c;
    departure_config(&c);
    c.departure = 3.0f;
    c.train_after = 750;
    ck_assert_int_ge(c.history, 750);
    ad_detector *d = make(&c);
    ad_rng r;
    ad_rng_seed(&r, 47);
    int on = 0, on_late = 0;
    for (int t = 0; t < 1700; t++) {
        ad_result res = observe(d, t, 0.01 * t + 0.1 * ad_rng_normal(&r));
        on += t >= 900 && t <= 1450 && res.anomalous;
        on_late += t >= 1600 && res.anomalous;
    }
    fprintf(stderr, "departure 3 on a trend: anomalous %d of samples 900..1450, %d of the "
            "last 100\n", on, on_late);
    ck_assert_uint_eq(ad_detector_get_stats(d)->trainings, 1);
    ck_assert_int_le(on, 20);
    ck_assert_int_eq(on_late, 100); /* it does depart once the trend has gone far enough */
    ad_detector_free(d);
}
END_TEST

/*
 * Warm-up on a smooth, wide sine (amplitude 10, period 200) with a spike of 6 at t 300
 * (where the sine crosses 0): against the running mean and deviation (about 7) it is
 * nothing; against the previous value and the RMS of changes (about 0.2) it is some 27
 * deviations. With warmup_naive the prediction is the previous value and the spike is
 * anomalous; without, not.
 */
START_TEST(test_warmup_naive)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.warmup_naive = _i;
    c.train_after = 1000;
    ad_detector *d = make(&c);
    ad_result res;
    double prev = 0.0;
    int at_step = 0, others = 0;

    for (int t = 0; t < 400; t++) {
        double v = 10.0 * sin(2.0 * M_PI * t / 200.0) + (t == 300 ? 6.0 : 0.0);
        ck_assert_int_eq(ad_detector_observe(d, t, v, &res), 0);
        ck_assert_int_eq(res.warming_up, 1);
        if (_i && t > 0 && t <= 300)
            ck_assert_msg(res.predicted == prev, "t %d: predicted %.17g, previous %.17g", t,
                          res.predicted, prev);
        if (t == 300)
            at_step = res.hit;
        else if (t < 300)
            others += res.hit;
        prev = v;
    }
    fprintf(stderr, "warmup_naive %d: spike anomalous %d, %d anomalies before it\n", _i, at_step,
            others);
    ck_assert_int_eq(at_step, _i);
    ck_assert_int_eq(others, 0);
    ad_detector_free(d);
}
END_TEST

/*
 * alert_penalty: two detectors, without and with a penalty of 2, see the same stream (a
 * noisy sine, then a level shift of 3, 30 noise deviations, held). Until
 * the first alert they agree exactly; at the next sample the penalised one's -log10 tail
 * (5 s / (1 - s), the likelihood's squashing undone) is 2 lower: one alert in the
 * moving count.
 */
START_TEST(test_alert_penalty)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, 0);
    c.train_every = 0;
    ad_detector *a = make(&c);
    c.alert_penalty = 2.0f;
    ad_detector *b = make(&c);
    ad_rng r;
    int first = -1;

    ad_rng_seed(&r, 97);
    for (int t = 0; t < 600 && (first < 0 || t <= first + 1); t++) {
        double v = noisy_sine(t, &r) + (t >= 400 ? 3.0 : 0.0);
        ad_result ra = observe(a, t, v), rb = observe(b, t, v);
        if (first < 0) {
            assert_same_result(&ra, &rb, "before the first alert", t);
            if (ra.flagged)
                first = t;
            continue;
        }
        double la = 5.0 * ra.raw_score / (1.0 - ra.raw_score);
        double lb = 5.0 * rb.raw_score / (1.0 - rb.raw_score);
        fprintf(stderr, "alert penalty: first alert at %d, next tail %.4f without, %.4f with\n",
                first, la, lb);
        ck_assert_msg(la > 2.0, "the shift should stay surprising: %g", la);
        ck_assert_msg(fabs(lb - (la - 2.0)) < 1e-3 * la, "tail %g with the penalty, %g without", lb,
                      la);
    }
    ck_assert_int_ge(first, 400);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/*
 * alert_horizon: how long an alert weighs. Two detectors, without and with a small penalty
 * (0.01, so that the penalised scores never cross the threshold where the other's do
 * not, and the two stay in step), see a noisy sine with a burst of 10 (a level shift of 3,
 * 30 noise deviations) and a cooldown of 200, one alert. 2000 samples after
 * it the penalised -log10 tail is lower by 0.01 times the alert's remaining
 * weight, (1 - 1/horizon)^2000: 0.961 with the default horizon of 50000 samples, 0.368
 * with 2000 (the horizon before issue #16's session 12).
 */
START_TEST(test_alert_horizon)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, 0);
    c.train_every = 0;
    c.cooldown = 200; /* one alert for the burst */
    ad_detector_config dflt;
    ad_detector_defaults(&dflt);
    c.alert_horizon = _i ? 2000 : dflt.alert_horizon;
    ad_detector *a = make(&c);
    c.alert_penalty = 0.01f;
    ad_detector *b = make(&c);
    ad_rng r;
    int first = -1, alerts = 0;
    double weight = -1.0;

    ad_rng_seed(&r, 98);
    for (int t = 0; t < 4000 && weight < 0.0; t++) {
        double v = noisy_sine(t, &r) + (t >= 500 && t < 510 ? 3.0 : 0.0);
        ad_result ra = observe(a, t, v), rb = observe(b, t, v);
        ck_assert_int_eq(ra.hit, rb.hit);
        ck_assert_int_eq(ra.flagged, rb.flagged);
        alerts += ra.flagged; /* any alert, warm-up too, counts in the penalty's rate */
        if (ra.flagged && first < 0)
            first = t;
        /* a score well inside (0, 1), where 5 s / (1 - s) is not swamped by rounding */
        if (first >= 0 && t >= first + 2000 && ra.raw_score > 0.1f && ra.raw_score < 0.9f) {
            double la = 5.0 * ra.raw_score / (1.0 - ra.raw_score);
            double lb = 5.0 * rb.raw_score / (1.0 - rb.raw_score);
            weight = (la - lb) / 0.01 / pow(1.0 - 1.0 / c.alert_horizon, t - first - 2000);
        }
    }
    double want = pow(1.0 - 1.0 / c.alert_horizon, 2000);
    fprintf(stderr, "alert horizon %d: first alert at %d, %d alerts, weight after 2000 %.4f "
                    "(expected %.4f)\n", c.alert_horizon, first, alerts, weight, want);
    ck_assert(first >= 500 && first < 510);
    ck_assert_int_eq(alerts, 1);
    ck_assert_msg(fabs(weight - want) < 0.01, "weight %g, expected %g", weight, want);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/*
 * The alert penalty spares the raw signal (raw_k): it corrects the likelihood's
 * calibration on bursty series, while the raw signal is scaled by the network's own
 * validation errors. test_raw_signal's series (a sine predicted to a fraction of a percent,
 * a step of 0.4 at 1500 that only the raw signal finds) with a spike at 1400 before it:
 * with alert penalty 50 the spike's alert takes 10 from every penalised score's odds, and
 * the step is still a hit, its raw score the same as without a penalty.
 */
START_TEST(test_alert_penalty_spares_raw)
{
    ad_detector_config c;
    raw_config(&c);
    ad_detector *a = make(&c);
    c.alert_penalty = 50.0f;
    ad_detector *b = make(&c);
    ad_rng r;
    ad_rng_seed(&r, 33);
    ad_result ra = {0}, rb = {0};
    int spike = 0, penalised = 0;
    for (int t = 0; t <= 1500; t++) {
        double v = raw_series(t, &r) + (t == 1400 ? 1.0 : t == 1500 ? 0.4 : 0.0);
        ra = observe(a, t, v);
        rb = observe(b, t, v);
        if (t == 1400)
            spike = ra.flagged && rb.flagged;
        else if (t > 1400 && t < 1500) /* the penalty does act on this series' other scores */
            penalised += rb.raw_score < ra.raw_score;
    }
    fprintf(stderr, "alert penalty and the raw signal: spike alerted %d, %d scores lower after "
                    "it; step raw score %.4f without a penalty, %.4f with\n", spike, penalised,
            (double)ra.raw_score, (double)rb.raw_score);
    ck_assert_int_eq(spike, 1);
    ck_assert_int_gt(penalised, 0);
    ck_assert_int_eq(ra.hit, 1);
    ck_assert_int_eq(rb.hit, 1);
    ck_assert_float_eq(ra.raw_score, rb.raw_score);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/*
 * long_window: a pulse train (10 every 30 samples on a floor of small noise) whose pulses
 * come every 20 samples from t 2000 on. Ten errors in a row hold at most one pulse either
 * way, so the short window's averages look as before; thirty hold one pulse before and
 * one or two after, an average half as large again. Without a long window the denser
 * pulses are not anomalous; with 30, they are. (Warming up all along: the errors are
 * z-scores against the running mean and deviation.) The long scorer's state survives a
 * save and load.
 */
START_TEST(test_long_window)
{
    ad_detector_config c;
    plain_defaults(&c);
    c.train_after = 1000000;
    c.long_window = _i ? 30 : 0;
    ad_detector *d = make(&c);
    ad_rng r;
    ad_result res;
    int before = 0, during = 0;

    ad_rng_seed(&r, 99);
    for (int t = 0; t < 2300; t++) {
        int pulse = t < 2000 ? t % 30 == 0 : t % 20 == 0;
        double v = (pulse ? 10.0 : 0.0) + 0.01 * ad_rng_normal(&r);
        ck_assert_int_eq(ad_detector_observe(d, t, v, &res), 0);
        if (t >= 2000)
            during += res.hit;
        else if (t >= 200)
            before += res.hit;
    }
    fprintf(stderr, "long window %d: %d anomalous among the denser pulses, %d before them\n",
            c.long_window, during, before);
    if (_i)
        ck_assert_msg(during > 0, "the denser pulses were not anomalous");
    else
        ck_assert_msg(during == 0, "the short window alone flagged the denser pulses");
    ck_assert_int_eq(before, 0);
    size_t len;
    uint8_t *buf = save(d, &len);
    ad_detector *e = load(buf, len);
    for (int t = 2300; t < 2400; t++) {
        double v = (t % 20 == 0 ? 10.0 : 0.0) + 0.01 * ad_rng_normal(&r);
        ad_result ra, rb;
        ck_assert_int_eq(ad_detector_observe(d, t, v, &ra), 0);
        ck_assert_int_eq(ad_detector_observe(e, t, v, &rb), 0);
        assert_same_result(&ra, &rb, "long window after load", t);
    }
    free(buf);
    ad_detector_free(e);
    ad_detector_free(d);
}
END_TEST

/* ---- the seq2seq model kind ---- */

static void s2s_config(ad_detector_config *c)
{
    plain_defaults(c);
    c->model = AD_MODEL_SEQ2SEQ;
    c->s2s_window = 16;
    c->hidden = 12;
    c->epochs = 15;
}

START_TEST(test_seq2seq_flags_spike)
{
    ad_detector_config c;
    s2s_config(&c);
    ad_detector *d = make(&c);
    int first = -1, before = 0;
    ad_rng r;

    ad_rng_seed(&r, 77);
    for (int t = 0; t < 1200; t++) {
        double v = noisy_sine(t, &r) + (t == ONSET ? 2.0 : 0.0);
        ad_result res = observe(d, t, v);
        if (res.train_due)
            train(d);
        if (t > c.train_after && t < ONSET)
            before += res.flagged;
        if (res.flagged && t >= ONSET && first < 0)
            first = t;
        if (t > c.train_after + c.s2s_window)
            ck_assert_msg(!res.warming_up && isfinite(res.predicted), "t %d", t);
    }
    fprintf(stderr, "seq2seq: spike at %d first flagged at %+d, %d flags before it\n", ONSET,
            first - ONSET, before);
    ck_assert_msg(first >= ONSET && first <= ONSET + 10, "spike flagged at %d", first);
    ck_assert_int_eq(before, 0);
    ck_assert_uint_ge(ad_detector_get_stats(d)->trainings, 1);
    ad_detector_free(d);
}
END_TEST

START_TEST(test_seq2seq_save_load_continues)
{
    ad_detector_config c;
    s2s_config(&c);
    c.train_every = 300;
    ad_detector *a = make(&c), *b = NULL;
    ad_rng r;
    size_t len;

    ad_rng_seed(&r, 78);
    for (int t = 0; t < 900; t++) {
        ad_result res = observe(a, t, noisy_sine(t, &r));
        if (res.train_due)
            train(a);
    }
    uint8_t *buf = save(a, &len);
    b = load(buf, len);
    free(buf);
    for (int t = 900; t < 1600; t++) { /* through a retraining */
        double v = noisy_sine(t, &r) + (t % 97 == 0 ? 1.5 : 0.0);
        ad_result ra = observe(a, t, v), rb = observe(b, t, v);
        assert_same_result(&ra, &rb, "seq2seq after load", t);
        if (ra.train_due) {
            train(a);
            train(b);
        }
    }
    /* a truncated blob is refused */
    buf = save(a, &len);
    ad_detector *x = NULL;
    char err[256] = "";
    ck_assert_int_eq(ad_detector_load(buf, len - 9, &x, err, sizeof(err)), -AD_EFORMAT);
    ck_assert_ptr_null(x);
    free(buf);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

START_TEST(test_seq2seq_job_mismatch_refused)
{
    ad_detector_config c, p;
    s2s_config(&c);
    plain_defaults(&p);
    p.hidden = c.hidden; /* same network shape, another model kind */
    ad_detector *a = make(&c), *b = make(&p);
    ad_train_job *job = NULL;
    char err[256] = "";
    ad_rng r;

    ad_rng_seed(&r, 79);
    for (int t = 0; t < 500; t++) {
        double v = noisy_sine(t, &r);
        observe(a, t, v);
        observe(b, t, v);
    }
    ck_assert_int_eq(ad_detector_snapshot(b, &job, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_train_job_run(job, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_detector_install(a, job, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "another"));
    ad_train_job_free(job);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/* ---- compact history, old blobs, layout ---- */

/*
 * A version-4 blob (before the compact history: timestamps as doubles, flags as bytes),
 * written by the version-4 build with tests/fixtures/detector_v4_gen.c.txt (time features,
 * the seasonal signal and the long window, saved after its first training), still loads
 * and continues exactly as the version-4 detector did: its next 230 results are in
 * detector_v4_next.csv (reference kernels, no training in between).
 */
START_TEST(test_old_blob_v4)
{
    const char *dir = getenv("AD_FIXTURES");
    char path[1024], line[512];
    ck_assert_ptr_nonnull(dir);
    snprintf(path, sizeof(path), "%s/detector_v4.blob", dir);
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    uint8_t *buf = malloc(1 << 16);
    ck_assert_ptr_nonnull(buf);
    size_t len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    ck_assert_uint_eq(get_le(buf + 4, 4), 4); /* really a version-4 blob */
    ad_blas_set_reference(1);
    ad_detector *d = load(buf, len);
    ck_assert_uint_eq(ad_detector_get_stats(d)->samples, 260);
    ck_assert_uint_eq(ad_detector_get_stats(d)->trainings, 1);
    /* the history's timestamps (whole minutes) come back exactly */
    double ts[400];
    float v[400];
    int n = ad_detector_history(d, v, ts, 400);
    ck_assert_int_eq(n, 260);
    for (int t = 0; t < n; t++) {
        double want = 1.6e9 + 60.0 * t - (t % 11 == 0 ? 60.0 : 0.0);
        ck_assert_msg(ts[t] == want, "history ts %d: %.17g, want %.17g", t, ts[t], want);
    }
    snprintf(path, sizeof(path), "%s/detector_v4_next.csv", dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof(line), f)); /* header */
    int rows = 0;
    while (fgets(line, sizeof(line), f)) {
        double x[8];
        char *p = line;
        for (int i = 0; i < 8; i++) {
            x[i] = strtod(p, &p);
            p += *p == ',';
        }
        ad_result res;
        ck_assert_int_eq(ad_detector_observe(d, x[0], x[1], &res), 0);
        ck_assert_msg(res.predicted == x[2] && res.error == x[3] &&
                          res.score == (float)x[4] && res.raw_score == (float)x[5] &&
                          res.flagged == (int)x[6] && res.hit == (int)x[7],
                      "row %d: pred %.17g err %.17g score %.9g raw %.9g, v4 gave %.17g %.17g "
                      "%.9g %.9g", rows, res.predicted, res.error, (double)res.score,
                      (double)res.raw_score, x[2], x[3], x[4], x[5]);
        rows++;
    }
    fclose(f);
    ck_assert_int_eq(rows, 230);
    /* and it saves in the current version, which loads back to the same bytes */
    size_t len2, len3;
    uint8_t *b2 = save(d, &len2);
    ck_assert_uint_eq(get_le(b2 + 4, 4), AD_DETECTOR_V_DEPARTURE);
    /* the fields added since version 4 hold what behaves as before them */
    ck_assert(ad_detector_get_config(d)->forget_bias == 1.0f);
    ck_assert_int_eq(ad_detector_get_config(d)->feature_span, 0);
    ck_assert(ad_detector_get_config(d)->raw_k == 0.0f);
    ck_assert(ad_detector_get_config(d)->incident_z == 0.0f);
    ck_assert_int_eq(ad_detector_get_config(d)->alert_horizon, 2000);
    ck_assert(ad_detector_get_config(d)->departure == 0.0f);
    ck_assert_uint_lt(len2, len); /* timestamps in 4 bytes, flags in bits */
    ad_detector *e = load(b2, len2);
    uint8_t *b3 = save(e, &len3);
    ck_assert_uint_eq(len2, len3);
    ck_assert_mem_eq(b2, b3, len2);
    ad_blas_set_reference(0);
    free(b2);
    free(b3);
    free(buf);
    ad_detector_free(d);
    ad_detector_free(e);
}
END_TEST

/*
 * forget_bias (blob version 7, at the configuration's end): a detector's LSTM starts with
 * it in every layer's forget gate, and a blob keeps it; a version-6 blob (the same bytes
 * without it) loads with the default 1 and otherwise the same detector: it saves back to
 * the version-7 blob byte for byte.
 */
START_TEST(test_forget_bias_blob)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_DYNAMIC, 0);
    c.hidden = 4;
    c.layers = 2;
    c.forget_bias = 3.0f;
    ad_detector *d = make(&c);
    const ad_net *net = ad_detector_net(d);
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 4 * 4; k++)
            ck_assert(net->p.layer[l].b[k] == (k / 4 == 1 ? 3.0f : 0.0f));
    size_t len;
    uint8_t *buf = save(d, &len);
    ck_assert_uint_eq(get_le(buf + 4, 4), AD_DETECTOR_V_DEPARTURE);
    ad_detector *e = load(buf, len);
    ck_assert(ad_detector_get_config(e)->forget_bias == 3.0f);
    ad_detector_free(e);
    ad_detector_free(d);
    free(buf);

    /* a blob older than forget_bias loads with 1: test_old_blob_v4 (version 4) */
}
END_TEST

/*
 * The history keeps timestamps as 32-bit offsets from a per-detector base in units of
 * 2^-shift seconds, rebased as time goes on: whole seconds come back exactly (beyond
 * 2^31 and 2^32 too, across gaps of years), fractions of a second to 2^-shift.
 * _i: 0 whole seconds from 2^31 - 100, a step of 60 and now and then a gap of years;
 *     1 whole seconds around 4e9 (beyond 2^32), one a second;
 *     2 tenths of a second (100 ms steps), from 1.7e9;
 *     3 1/1024 s steps, from 0;
 *     4 whole seconds, then a jump of 1e12 s (offsets then in units of 2^10 s, whole
 *       seconds again once the samples from before the jump have left the history).
 */
static double hist_ts(int kind, int t)
{
    switch (kind) {
    case 0: return 2147483648.0 - 100.0 + 60.0 * t + (t >= 150 ? 9.5e8 : 0.0) +
                   (t >= 250 ? 3.2e7 : 0.0);
    case 1: return 4e9 + t;
    case 2: return 1.7e9 + 0.1 * t;
    case 3: return ldexp(t, -10);
    default: return 1.6e9 + t + (t >= 200 ? 1e12 : 0.0);
    }
}

START_TEST(test_history_timestamps)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, AD_FEAT_GAP);
    c.history = 64;
    c.train_after = 10000; /* never trains: only the history matters */
    ad_detector *d = make(&c);
    double ts[64], lts[64];
    float v[64], lv[64];

    for (int t = 0; t < 400; t++) {
        double want_ts = hist_ts(_i, t);
        observe(d, want_ts, sin(t));
        int n = ad_detector_history(d, v, ts, 64);
        ck_assert_int_eq(n, t + 1 < 64 ? t + 1 : 64);
        for (int i = 0; i < n; i++) {
            const int j = t - n + 1 + i;
            double want = hist_ts(_i, j), tol = 0.0;
            if (_i == 2) /* tenths are not binary fractions: to a 2^-28th of the span held */
                tol = ldexp(want_ts - hist_ts(_i, t - n + 1), -28) + 1e-6;
            else if (_i == 4 && t >= 200 && j < 264) /* held while 1e12 s were */
                tol = ldexp(1.0, 9);
            ck_assert_msg(fabs(ts[i] - want) <= tol, "t %d, %d: %.17g vs %.17g", t, i, ts[i],
                          want);
        }
        if (t % 37 == 0 || t == 399) { /* and a blob keeps them exactly */
            size_t len;
            uint8_t *b = save(d, &len);
            ad_detector *e = load(b, len);
            ck_assert_int_eq(ad_detector_history(e, lv, lts, 64), n);
            ck_assert_mem_eq(lts, ts, (size_t)n * sizeof(double));
            ck_assert_mem_eq(lv, v, (size_t)n * sizeof(float));
            free(b);
            ad_detector_free(e);
        }
    }
    ad_detector_free(d);
}
END_TEST

/* Bytes per history entry: a float value, a flag bit, and a 4-byte timestamp only when a
 * time feature or the seasonal signal reads them. */
START_TEST(test_history_bytes)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, _i ? AD_FEAT_TIME_OF_DAY : 0);
    c.history = 1000;
    ad_detector *a = make(&c);
    c.history = 9000;
    ad_detector *b = make(&c);
    size_t per = (ad_detector_bytes(b) - ad_detector_bytes(a)) / 8000;
    fprintf(stderr, "history bytes per entry (features %d): %.3f\n", _i,
            (double)(ad_detector_bytes(b) - ad_detector_bytes(a)) / 8000.0);
    ck_assert_uint_le(ad_detector_bytes(b) - ad_detector_bytes(a), 8000 * (_i ? 8 : 4) + 8000 / 8 + 256);
    ck_assert_uint_ge(per, _i ? 8 : 4);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/* Prefetching changes nothing (and touches nothing it should not: ASan), for own
 * networks in float32, fp16 and int8 (_i: ad_wtype). */
START_TEST(test_prefetch)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK);
    c.seasonal_period = 600;
    c.long_window = 30;
    ad_detector *a = make(&c), *b = make(&c);
    ad_rng r;
    double ts, v;

    ck_assert_int_eq(ad_detector_set_weights(a, _i) | ad_detector_set_weights(b, _i), 0);
    ad_rng_seed(&r, 3);
    for (int t = 0; t < 700; t++) {
        stream_value(t, &r, &ts, &v);
        ad_detector_prefetch(b);
        ad_result ra = observe(a, ts, v), rb = observe(b, ts, v);
        assert_same_result(&ra, &rb, "prefetch", t);
    }
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/* ---- packed detectors: only the fp16 or int8 block ---- */

/* The packed types a detector's own network can keep (loop index _i picks one). */
static const ad_wtype packed_wt[2] = {AD_W_F16, AD_W_I8};

/* A packed detector's network holds its weights packed only: its bytes drop by about
 * half (fp16) or two thirds (int8) of the float weights' (not grow, as with float
 * masters beside the block). H=32, D=1: the float weights are 17,540 bytes, the fp16
 * block 9,216, the int8 block about 5,500 (weights, the rows' scales, biases, head). */
START_TEST(test_packed_bytes)
{
    const ad_wtype wt = packed_wt[_i];
    ad_detector_config c;
    plain_defaults(&c);
    c.hidden = 32; /* LSTM H=32: the issue's series */
    ad_detector *a = make(&c), *b = make(&c);
    const size_t wbytes = ad_detector_net(a)->nparams * sizeof(float);
    /* the share of the float weights' bytes saved: at least lo, at most hi (the packed
     * weights are still there) */
    const double lo = wt == AD_W_F16 ? 0.4 : 0.6, hi = wt == AD_W_F16 ? 0.6 : 0.75;

    ck_assert_int_eq(ad_detector_set_weights(b, wt), 0);
    const size_t ba = ad_detector_bytes(a), bb = ad_detector_bytes(b);
    const double saved = ((double)ba - (double)bb) / (double)wbytes;
    fprintf(stderr, "fp32 detector %zu bytes, %s %zu (float weights %zu): saves %.3f of them\n",
            ba, ad_wtype_name(wt), bb, wbytes, saved);
    ck_assert_msg(saved >= lo && saved <= hi, "%s %zu bytes, fp32 %zu, weights %zu: saves %.3f",
                  ad_wtype_name(wt), bb, ba, wbytes, saved);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/* A packed detector saved and loaded (its storage set again, as the daemon does) goes on
 * exactly as the original, and the blob saves the same bytes again: for int8 the load
 * quantises the saved (dequantised) floats back to the same bytes and scales. _i: bit 0
 * save before or after the first training, bit 1 fp16 or int8. */
START_TEST(test_packed_roundtrip)
{
    const ad_wtype wt = packed_wt[_i >> 1];
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, AD_FEAT_TIME_OF_DAY | AD_FEAT_GAP);
    c.long_window = 30;
    const int at = (_i & 1) ? 260 : 150;
    ad_detector *a = make(&c);
    ad_rng r;
    double ts, v;
    size_t len, len2;

    ck_assert_int_eq(ad_detector_set_weights(a, wt), 0);
    ad_rng_seed(&r, 78);
    for (int t = 0; t < at; t++) {
        stream_value(t, &r, &ts, &v);
        observe(a, ts, v);
    }
    uint8_t *buf = save(a, &len);
    ad_detector *b = load(buf, len);
    ck_assert_int_eq(ad_detector_set_weights(b, wt), 0);
    const ad_net *na = ad_detector_net(a), *nb = ad_detector_net(b);
    ck_assert_uint_eq(na->pack_bytes, nb->pack_bytes);
    ck_assert_mem_eq(na->pack, nb->pack, na->pack_bytes);
    uint8_t *buf2 = save(b, &len2);
    ck_assert_uint_eq(len, len2);
    ck_assert_mem_eq(buf, buf2, len);
    free(buf2);
    for (int t = at; t < at + 700; t++) {
        stream_value(t, &r, &ts, &v);
        ad_result ra = observe(a, ts, v), rb = observe(b, ts, v);
        assert_same_result(&ra, &rb, "packed save and load", t);
    }
    ck_assert_uint_ge(ad_detector_get_stats(a)->trainings, 2);
    assert_same_net(a, b, "packed save and load");
    free(buf);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/* Every weight matrix entry of a float network is a wt value widened: a half, or (int8)
 * each row of [Wx | Wh] is on its own int8 grid (quantised and dequantised unchanged). */
static void assert_widened(const ad_net *n, ad_wtype wt)
{
    const int H = n->cfg.hidden, GH = ad_cell_gates(n->cfg.kind) * H;
    for (int l = 0; l < n->cfg.layers; l++) {
        const size_t cnt = (size_t)GH * ((l ? H : n->cfg.input) + H);
        const float *w = n->p.layer[l].wx; /* [Wx | Wh]: one run */
        if (wt == AD_W_I8) {
            int8_t *q = malloc(cnt);
            float *sc = malloc((size_t)GH * sizeof(*sc)), *back = malloc(cnt * sizeof(*back));
            ck_assert(q && sc && back);
            ad_quant_rows(q, sc, w, (size_t)GH, cnt / (size_t)GH);
            ad_quant_get(back, q, sc, (size_t)GH, 0, cnt);
            for (size_t i = 0; i < cnt; i++)
                ck_assert_msg(back[i] == w[i], "layer %d weight %zu = %.9g is not int8 (%.9g)", l,
                              i, (double)w[i], (double)back[i]);
            free(q);
            free(sc);
            free(back);
            continue;
        }
        for (size_t i = 0; i < cnt; i++)
            ck_assert_msg(ad_half_to_float(ad_half_from_float(w[i])) == w[i],
                          "layer %d weight %zu = %.9g is no half", l, i, (double)w[i]);
    }
}

/* Training a packed detector: the job trains floats widened from its block, the install
 * packs them into its block. b, a float detector holding those widened weights (a's
 * blob loaded), trains to the same loss; d, b's twin switched to a's storage before the
 * install of b's job, then steps exactly as a. _i: fp16 or int8. */
START_TEST(test_packed_split_training)
{
    const ad_wtype wt = packed_wt[_i];
    const int mode = wt == AD_W_I8 ? AD_NET_INT8_ONLY : AD_NET_FP16_ONLY;
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, 0);
    ad_detector *a = make(&c), *b = NULL, *d = NULL;
    ad_train_job *ja = NULL, *jb = NULL;
    char err[256] = "";
    ad_rng r;
    ad_result ra, rd;
    size_t len;
    int t = 0;

    ck_assert_int_eq(ad_detector_set_weights(a, wt), 0);
    ad_rng_seed(&r, 6);
    for (; t < c.train_after; t++)
        ck_assert_int_eq(ad_detector_observe(a, t, noisy_sine(t, &r), &ra), 0);
    ck_assert(ra.train_due);
    uint8_t *buf = save(a, &len);
    b = load(buf, len);
    d = load(buf, len);
    free(buf);
    ck_assert(!ad_net_storage(ad_detector_net(b)));
    assert_same_net(a, b, "widened");
    assert_widened(ad_detector_net(b), wt); /* the blob held the block, not float masters */
    ck_assert_int_eq(ad_detector_set_weights(d, wt), 0);
    ck_assert_int_eq(ad_detector_snapshot(a, &ja, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_detector_snapshot(b, &jb, err, sizeof(err)), 0);
    ck_assert_msg(ad_train_job_run(ja, err, sizeof(err)) == 0, "run: %s", err);
    ck_assert_msg(ad_train_job_run(jb, err, sizeof(err)) == 0, "run: %s", err);
    float la, lb;
    ad_train_job_result(ja, NULL, &la, NULL);
    ad_train_job_result(jb, NULL, &lb, NULL);
    ck_assert_msg(la == lb, "packed job trained from other weights: loss %g vs %g", la, lb);
    ck_assert_int_eq(ad_detector_install(a, ja, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_detector_install(d, jb, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_net_storage(ad_detector_net(a)), mode);
    ad_train_job_free(ja);
    ad_train_job_free(jb);
    assert_same_net(a, d, "installed");
    for (int k = 0; k < 300; k++, t++) {
        double v = noisy_sine(t, &r);
        ck_assert_int_eq(ad_detector_observe(a, t, v, &ra), 0);
        ck_assert_int_eq(ad_detector_observe(d, t, v, &rd), 0);
        assert_same_result(&ra, &rd, "packed after an install", t);
    }
    ad_detector_free(a);
    ad_detector_free(b);
    ad_detector_free(d);
}
END_TEST

/* float32 widens the block back into floats (the bytes grow back), packing again gives
 * the same block: the detector goes on exactly as a twin left packed. _i: fp16, int8. */
START_TEST(test_packed_off_on)
{
    const ad_wtype wt = packed_wt[_i];
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, 0);
    ad_detector *a = make(&c), *b = make(&c);
    const size_t bytes32 = ad_detector_bytes(a);
    ad_rng r;
    int t = 0;

    ck_assert_int_eq(ad_detector_set_weights(a, wt) | ad_detector_set_weights(b, wt), 0);
    const size_t bytesp = ad_detector_bytes(a);
    ad_rng_seed(&r, 7);
    for (; t < 300; t++) {
        double v = noisy_sine(t, &r);
        ad_result ra = observe(a, t, v), rb = observe(b, t, v);
        assert_same_result(&ra, &rb, "before", t);
    }
    ad_net *before = float_net(a);
    ck_assert_int_eq(ad_detector_set_weights(a, AD_W_F32), 0);
    ck_assert(!ad_net_storage(ad_detector_net(a)));
    ck_assert_uint_eq(ad_detector_bytes(a), bytes32);
    ck_assert_mem_eq(ad_detector_net(a)->params, before->params, before->nparams * sizeof(float));
    ck_assert_int_eq(ad_detector_set_weights(a, AD_W_F32), 0); /* again: nothing */
    ck_assert_int_eq(ad_detector_set_weights(a, wt), 0);
    ck_assert_int_eq(ad_detector_set_weights(a, wt), 0); /* again: nothing */
    ck_assert_int_eq(ad_detector_set_weights(a, AD_W_N), -AD_EINVAL);
    ck_assert_int_eq(ad_detector_set_weights(a, -1), -AD_EINVAL);
    ck_assert_uint_eq(ad_detector_bytes(a), bytesp);
    assert_same_net(a, b, "off and on again");
    for (; t < 900; t++) {
        double v = noisy_sine(t, &r);
        ad_result ra = observe(a, t, v), rb = observe(b, t, v);
        assert_same_result(&ra, &rb, "after off and on", t);
    }
    ad_net_free(before);
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/*
 * A packed detector trains from its block widened: each install rounds the trained
 * weights (fp16: to 11 significant bits, 2^-11 relative at most; int8: to its row's
 * grid of 1/127 of the row's largest magnitude) and the next training starts from those.
 * Trained 5 times on a noisy sine, its training loss stays near the float detector's and
 * does not creep up from one training to the next. _i: fp16, int8.
 */
START_TEST(test_packed_retrain_no_drift)
{
    const ad_wtype wt = packed_wt[_i];
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, 0);
    c.hidden = 16;
    c.train_every = 200;
    ad_detector *a = make(&c), *b = make(&c);
    float la[5], lb[5];
    int n = 0;
    ad_rng r;

    ck_assert_int_eq(ad_detector_set_weights(a, wt), 0);
    ad_rng_seed(&r, 8);
    for (int t = 0; n < 5 && t < 5000; t++) {
        double v = noisy_sine(t, &r);
        observe(a, t, v);
        observe(b, t, v);
        const ad_detector_stats *sa = ad_detector_get_stats(a), *sb = ad_detector_get_stats(b);
        ck_assert_uint_eq(sa->trainings, sb->trainings);
        if (sa->trainings > (uint64_t)n) {
            la[n] = sa->train_loss;
            lb[n] = sb->train_loss;
            fprintf(stderr, "training %d: train loss %s %.5f, float %.5f\n", n + 1,
                    ad_wtype_name(wt), (double)la[n], (double)lb[n]);
            n++;
        }
    }
    ck_assert_int_eq(n, 5);
    for (int i = 1; i < 5; i++) {
        ck_assert_msg(la[i] <= 1.25f * lb[i] + 0.01f, "training %d: %s loss %g, float %g", i + 1,
                      ad_wtype_name(wt), (double)la[i], (double)lb[i]);
        ck_assert_msg(la[i] <= 1.25f * la[1] + 0.01f, "training %d: %s loss %g crept from %g",
                      i + 1, ad_wtype_name(wt), (double)la[i], (double)la[1]);
    }
    ad_detector_free(a);
    ad_detector_free(b);
}
END_TEST

/* The refusal counters' place in the blob, pinned: after the header (8 bytes), the
 * configuration and the samples and flagged counters, in the order nan, inf,
 * out_of_range, time_backwards, bad_timestamp, whatever enum ad_refusal's. */
START_TEST(test_refusal_counters_in_blob)
{
    ad_detector_config c;
    small_config(&c, AD_SCORER_LIKELIHOOD, 0);
    ad_detector *d = make(&c), *e = NULL;
    ad_result res;
    ad_wbuf w;
    char err[256] = "";
    static const struct {
        double ts, value;
        int n;
    } bad[] = {{2000.0, NAN, 1}, {2000.0, INFINITY, 2}, {2000.0, 2e30, 3}, {500.0, 1.0, 4},
               {NAN, 1.0, 5}};
    static const int order[] = {AD_REFUSE_NAN, AD_REFUSE_INF, AD_REFUSE_RANGE,
                                AD_REFUSE_BACKWARDS, AD_REFUSE_BADTIME};

    ck_assert_int_eq(ad_detector_observe(d, 1000.0, 1.0, &res), 0);
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < bad[i].n; k++)
            ck_assert_int_eq(ad_detector_observe(d, bad[i].ts, bad[i].value, &res), -AD_EINVAL);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(ad_detector_get_stats(d)->refused[order[i]], (uint64_t)bad[i].n);
    size_t len = ad_detector_blob_size(d);
    uint8_t *b = malloc(len);
    ck_assert_int_eq(ad_detector_save(d, b, len, &len, err, sizeof(err)), 0);
    ad_wbuf_init(&w, NULL, 0);
    ad_detector_config_write(&w, &c);
    const uint8_t *p = b + 8 + w.len + 16;
    for (int i = 0; i < 5; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 8; j++)
            v |= (uint64_t)p[8 * i + j] << (8 * j);
        ck_assert_uint_eq(v, (uint64_t)bad[i].n);
    }
    ck_assert_int_eq(ad_detector_load(b, len, &e, err, sizeof(err)), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(ad_detector_get_stats(e)->refused[order[i]], (uint64_t)bad[i].n);
    free(b);
    ad_detector_free(e);
    ad_detector_free(d);
}
END_TEST

static Suite *detector_suite(void)
{
    Suite *s = suite_create("detector");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults);
    tcase_add_loop_test(tc, test_config_refusals, 0,
                        (int)(sizeof(bad_fields) / sizeof(bad_fields[0])));
    tcase_add_test(tc, test_input_size);
    suite_add_tcase(s, tc);

    tc = tcase_create("refusals");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_refusals_leave_no_trace, 0, AD_SCORER_NKINDS);
    tcase_add_test(tc, test_refusal_boundaries);
    suite_add_tcase(s, tc);

    tc = tcase_create("warmup");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_warmup);
    tcase_add_test(tc, test_warmup_min_samples);
    tcase_add_test(tc, test_warmup_static_scorer);
    tcase_add_test(tc, test_snapshot_needs_history);
    suite_add_tcase(s, tc);

    tc = tcase_create("acceptance");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_anomaly_flagged_at_onset, S_SPIKE, S_CONST_STEP + 1);
    tcase_add_loop_test(tc, test_clean_series_not_flagged, S_CLEAN, S_CONST + 1);
    suite_add_tcase(s, tc);

    tc = tcase_create("split");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_split_training);
    tcase_add_test(tc, test_install_refuses_other_shape);
    suite_add_tcase(s, tc);

    tc = tcase_create("exclusion");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_flagged_not_learned, 0, 2);
    tcase_add_loop_test(tc, test_relearn_exact, 0, 2);
    tcase_add_test(tc, test_exclusion_budget);
    tcase_add_test(tc, test_relearn_level_shift);
    suite_add_tcase(s, tc);

    tc = tcase_create("inputs");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_time_features);
    tcase_add_test(tc, test_time_feature_values);
    tcase_add_loop_test(tc, test_huge_magnitudes, 0, 4);
    suite_add_tcase(s, tc);

    tc = tcase_create("range");
    tcase_add_loop_test(tc, test_range_check, 0, 2);
    tcase_add_loop_test(tc, test_range_window, 0, 2);
    tcase_add_loop_test(tc, test_seasonal_signal, 0, 2);
    tcase_add_loop_test(tc, test_warmup_naive, 0, 2);
    tcase_add_test(tc, test_alert_penalty);
    tcase_add_loop_test(tc, test_alert_horizon, 0, 2);
    tcase_add_test(tc, test_alert_penalty_spares_raw);
    tcase_add_loop_test(tc, test_long_window, 0, 2);
    tcase_add_loop_test(tc, test_feature_span, 0, 3);
    tcase_add_loop_test(tc, test_stateful, 0, 2);
    tcase_add_loop_test(tc, test_incident, 0, 2);
    tcase_add_loop_test(tc, test_departure, 0, 2);
    tcase_add_test(tc, test_departure_trend);
    tcase_add_loop_test(tc, test_raw_signal, 0, 5);
    suite_add_tcase(s, tc);

    tc = tcase_create("seq2seq");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_seq2seq_flags_spike);
    tcase_add_test(tc, test_seq2seq_save_load_continues);
    tcase_add_test(tc, test_seq2seq_job_mismatch_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("serial");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_roundtrip, 0, 12);
    tcase_add_test(tc, test_save_refusals);
    tcase_add_test(tc, test_every_truncation_refused);
    tcase_add_test(tc, test_every_byte_flip_refused);
    tcase_add_test(tc, test_inconsistent_blob_refused);
    tcase_add_test(tc, test_infinite_scale_refused);
    tcase_add_test(tc, test_rechecksummed_fuzz);
    tcase_add_test(tc, test_old_blob_v4);
    tcase_add_test(tc, test_forget_bias_blob);
    tcase_add_test(tc, test_refusal_counters_in_blob);
    tcase_add_loop_test(tc, test_history_timestamps, 0, 5);
    tcase_add_loop_test(tc, test_history_bytes, 0, 2);
    tcase_add_loop_test(tc, test_prefetch, 0, AD_W_N);
    suite_add_tcase(s, tc);

    tc = tcase_create("packed weights (fp16, int8)");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_packed_bytes, 0, 2);
    tcase_add_loop_test(tc, test_packed_roundtrip, 0, 4);
    tcase_add_loop_test(tc, test_packed_split_training, 0, 2);
    tcase_add_loop_test(tc, test_packed_off_on, 0, 2);
    tcase_add_loop_test(tc, test_packed_retrain_no_drift, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(detector_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
