/*
 * detector_train.c - a detector's retraining (detector.h): the snapshot into a training
 * job, the job (normaliser fit, BPTT with early stopping, the raw signal's scale), the
 * install and re-priming on the new weights; family members joining their family's
 * network.
 */
#include "detector_impl.h"

#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "optim.h"
#include "train.h"

#define RAW_MIN_VAL 250 /* raw_k: validation values needed to trust their errors' spread (a
                           short tail misses the phases where the network errs most: a
                           history of 256 holds 51) */

struct ad_train_job {
    ad_detector_config cfg;
    int D, n;
    float *values; /* (n) chronological */
    double *ts;    /* (n) or NULL */
    ad_net *net;   /* starts as the detector's network (or fresh), ends trained */
    ad_s2s *s2s;   /* SEQ2SEQ: the same for the encoder-decoder (net is then unused) */
    double center, scale;
    int time_on; /* the history spans feature_span: the time features are fed */
    float raw_q; /* raw_k times the RMS of the errors' moving mean on the validation tail,
                    when the series qualifies (raw_rms), else 0 */
    float val_rms; /* the RMS of the trained network's errors on the validation tail */
    int robust;  /* the normaliser's scale is the MAD's */
    int ran, epochs;
    float train_loss, val_loss;
};

int ad_detector_snapshot(const ad_detector *d, ad_train_job **out, char *err, size_t errlen)
{
    ad_train_job *job;

    *out = NULL;
    if (d->hn < 2 * d->cfg.window) {
        ERR("history holds %d samples, training needs at least %d", d->hn, 2 * d->cfg.window);
        return -AD_EINVAL;
    }
    job = calloc(1, sizeof(*job));
    if (!job)
        goto out_nomem;
    job->cfg = d->cfg;
    job->cfg.seed = d->cfg.seed + 7919 * d->stats.trainings; /* a new shuffle each time */
    job->D = d->D;
    job->n = d->hn;
    job->values = malloc((size_t)job->n * sizeof(*job->values));
    job->ts = d->hts ? malloc((size_t)job->n * sizeof(*job->ts)) : NULL;
    job->net = ad_net_clone(d->net);
    job->s2s = d->s2s ? ad_s2s_clone(d->s2s) : NULL;
    if (!job->values || (d->hts && !job->ts) || !job->net || (d->s2s && !job->s2s))
        goto out_free;
    for (int i = 0; i < job->n; i++) {
        int k = hist_index(d, i);
        job->values[i] = d->hv[k];
        if (job->ts)
            job->ts[i] = hts_get(d, k);
    }
    *out = job;
    return 0;

out_free:
    ad_train_job_free(job);
out_nomem:
    ERR("out of memory for a training job");
    return -AD_ENOMEM;
}

void ad_train_job_free(ad_train_job *job)
{
    if (!job)
        return;
    free(job->values);
    free(job->ts);
    ad_net_free(job->net);
    ad_s2s_free(job->s2s);
    free(job);
}

void ad_train_job_result(const ad_train_job *job, int *epochs, float *train_loss, float *val_loss)
{
    if (epochs)
        *epochs = job->epochs;
    if (train_loss)
        *train_loss = job->train_loss;
    if (val_loss)
        *val_loss = job->val_loss;
}

/* A training job's fit, for its epochs (ad_early_stopping). */
typedef struct job_fit {
    ad_train_job *job;
    ad_optim *opt;
    ad_train_opts o;
    const float *x;    /* (D, n) inputs (predict: (D, steps)) */
    const float *y;    /* predict: (steps) targets */
    int n, ntr, nval;  /* samples (predict: steps), the training part, the held-out tail */
    ad_seq *ws;        /* predict: the BPTT workspace */
    ad_state *st;      /* predict: the evaluation's state */
    ad_s2s_ws *s2s_ws; /* SEQ2SEQ: the encoder-decoder's workspace */
} job_fit;

/* SEQ2SEQ: one epoch, then the reconstruction MSE of the tail's windows. */
static int s2s_epoch(void *ctx, int e, float *loss, double *val, char *err, size_t errlen)
{
    job_fit *f = ctx;
    ad_s2s *m = f->job->s2s;
    const int D = f->job->D, L = f->job->cfg.s2s_window;
    const int vlen = f->nval > L ? f->nval : L;
    int rc;

    f->o.seed = f->job->cfg.seed + (uint64_t)e;
    rc = ad_s2s_train(m, f->opt, f->s2s_ws, f->x, (size_t)f->ntr, &f->o, loss, err, errlen);
    if (rc)
        return rc;
    *val = *loss;
    if (f->nval > 0)
        rc = ad_s2s_eval(m, f->s2s_ws, f->x + (size_t)D * (f->n - vlen), (size_t)vlen,
                         f->o.stride, val);
    return rc;
}

/*
 * SEQ2SEQ training: windows of L inputs every L/4 samples of the first (1 - val_frac) of
 * the history, early stopping on the reconstruction MSE of the windows of the tail.
 */
static int s2s_job_run(ad_train_job *job, char *err, size_t errlen)
{
    const ad_detector_config *c = &job->cfg;
    const int D = job->D, n = job->n, L = c->s2s_window;
    const int nval = (int)((float)n * c->val_frac);
    const int ntr = n - nval;
    ad_s2s *m = job->s2s;
    float *x = NULL, *best = NULL;
    job_fit f = {.job = job, .n = n, .ntr = ntr, .nval = nval};
    ad_fit_result res;
    int rc;

    if (ntr < L) {
        ERR("%d training samples are fewer than one window of %d", ntr, L);
        return -AD_EINVAL;
    }
    rc = ad_norm_fit(job->values, n, &job->center, &job->scale);
    if (rc)
        goto out_nomem;
    x = malloc((size_t)D * n * sizeof(*x));
    best = malloc(m->nparams * sizeof(*best));
    f.opt = ad_optim_create(AD_OPTIM_ADAM, m->nparams, c->lr);
    if (!x || !best || !f.opt)
        goto out_nomem;
    for (int i = 0; i < n; i++) {
        double ts = job->ts ? job->ts[i] : 0.0, prev = job->ts && i ? job->ts[i - 1] : 0.0;
        ad_make_input(c, job->center, job->scale, job->values[i], ts, prev, i > 0, job->time_on,
                      x + (size_t)D * i);
    }
    rc = ad_s2s_ws_create(m, c->batch, &f.s2s_ws, err, errlen);
    if (rc)
        goto out_free;
    ad_train_defaults(&f.o);
    f.o.window = L;
    f.o.batch = c->batch;
    f.o.stride = L / 4 > 0 ? L / 4 : 1;
    f.o.epochs = 1;
    f.o.clip = c->clip;
    f.x = x;
    rc = ad_early_stopping(m->params, best, m->nparams, c->epochs, c->patience, nval > 0,
                           s2s_epoch, &f, &res, err, errlen);
    job->epochs = res.epochs;
    job->train_loss = res.train_loss;
    if (rc)
        goto out_free;
    job->val_loss = (float)res.best_val;
    job->ran = 1;
    goto out_free;

out_nomem:
    ERR("out of memory for training");
    rc = -AD_ENOMEM;
out_free:
    ad_optim_free(f.opt);
    ad_s2s_ws_free(f.s2s_ws);
    free(x);
    free(best);
    return rc;
}

/* feature_span: whether the job's history spans long enough for the time features. */
static int job_time_on(const ad_train_job *job)
{
    const int span = job->cfg.feature_span;
    return span == 0 || (job->ts && job->n > 1 && job->ts[job->n - 1] - job->ts[0] >= span);
}

/* Predict: one epoch of BPTT, then the validation: the network run over everything, the
 * MSE measured on the held-out tail. */
static int predict_epoch(void *ctx, int e, float *loss, double *val, char *err, size_t errlen)
{
    job_fit *f = ctx;
    ad_net *net = f->job->net;
    int rc;

    f->o.seed = f->job->cfg.seed + (uint64_t)e;
    rc = ad_train(net, f->opt, f->ws, f->x, f->y, (size_t)f->ntr, &f->o, loss, err, errlen);
    if (rc)
        return rc;
    *val = f->nval > 0 ? ad_eval_mse(net, f->st, f->x, f->y, (size_t)f->n, (size_t)f->ntr) : *loss;
    return 0;
}

/*
 * raw_k: the trained network's errors on the validation tail, run from the start as the
 * evaluation does; the raw signal only for a series it predicts to within raw_rms of the
 * normaliser's scale, and a scale that is the MAD's (a fallback's, for values mostly
 * equal, makes the errors the network's own wobble), over a tail of at least RAW_MIN_VAL
 * values.
 */
static void raw_scale(ad_train_job *job, const job_fit *f)
{
    const ad_detector_config *c = &job->cfg;
    float yy, mean = 0.0f;
    double ss = 0.0, ms = 0.0;

    ad_state_reset(f->st);
    for (int i = 0; i < f->n; i++) {
        ad_net_step(job->net, f->st, f->x + (size_t)job->D * i, &yy);
        const float e = yy - f->y[i], m = ad_det_raw_mean(&mean, e);
        if (i >= f->ntr) {
            ms += (double)m * m;
            ss += (double)e * e;
        }
    }
    const float q = (float)sqrt(ms / f->nval);
    job->val_rms = (float)sqrt(ss / f->nval);
    if (job->robust && job->val_rms < c->raw_rms && q > 0.0f && f->nval >= RAW_MIN_VAL)
        job->raw_q = c->raw_k * q;
}

int ad_train_job_run(ad_train_job *job, char *err, size_t errlen)
{
    job->time_on = job_time_on(job);
    if (job->s2s)
        return s2s_job_run(job, err, errlen);
    const ad_detector_config *c = &job->cfg;
    const int D = job->D, n = job->n, steps = n - 1;
    const int nval = (int)((float)steps * c->val_frac);
    const int ntr = steps - nval;
    float *x = NULL, *y = NULL, *best = NULL;
    job_fit f = {.job = job, .n = steps, .ntr = ntr, .nval = nval};
    ad_fit_result res;
    int rc;

    rc = ad_norm_fit_robust(job->values, n, &job->center, &job->scale, &job->robust);
    if (rc)
        goto out_nomem;
    x = malloc((size_t)D * steps * sizeof(*x));
    y = malloc((size_t)steps * sizeof(*y));
    best = malloc(job->net->nparams * sizeof(*best));
    f.opt = ad_optim_create(AD_OPTIM_ADAM, job->net->nparams, c->lr);
    f.st = ad_state_create(job->net);
    if (!x || !y || !best || !f.opt || !f.st)
        goto out_nomem;
    for (int i = 0; i < steps; i++) {
        double ts = job->ts ? job->ts[i] : 0.0, prev = job->ts && i ? job->ts[i - 1] : 0.0;
        ad_make_input(c, job->center, job->scale, job->values[i], ts, prev, i > 0, job->time_on,
                      x + (size_t)D * i);
        y[i] =
            ad_clipf(ad_norm_value(c, job->values[i + 1], job->center, job->scale), c->input_clip);
    }
    if (ntr < c->window) {
        ERR("%d training steps are fewer than one window of %d", ntr, c->window);
        rc = -AD_EINVAL;
        goto out_free;
    }
    rc = ad_seq_create(job->net, c->window, c->batch, &f.ws, err, errlen);
    if (rc)
        goto out_free;

    ad_train_defaults(&f.o);
    f.o.window = c->window;
    f.o.batch = c->batch;
    f.o.stride = c->window / 4 > 0 ? c->window / 4 : 1;
    f.o.epochs = 1;
    f.o.clip = c->clip;
    f.o.stateful = c->stateful;
    f.x = x;
    f.y = y;
    rc = ad_early_stopping(job->net->params, best, job->net->nparams, c->epochs, c->patience,
                           nval > 0, predict_epoch, &f, &res, err, errlen);
    job->epochs = res.epochs;
    job->train_loss = res.train_loss;
    if (rc)
        goto out_free;
    ad_net_refresh(job->net);
    if (c->raw_k > 0.0f && nval > 0)
        raw_scale(job, &f);
    job->val_loss = (float)res.best_val;
    job->ran = 1;
    goto out_free;

out_nomem:
    ERR("out of memory for training");
    rc = -AD_ENOMEM;
out_free:
    ad_state_free(f.st);
    ad_optim_free(f.opt);
    ad_seq_free(f.ws);
    free(x);
    free(y);
    free(best);
    return rc;
}

/* SEQ2SEQ re-priming: refills the window from the newest P samples (scoring them into
 * the scorer with refill). */
static void reprime_s2s(ad_detector *d, int refill, int P)
{
    const ad_detector_config *c = &d->cfg;
    if (P > d->hn)
        P = d->hn;
    d->win_n = 0;
    for (int i = d->hn - P; i < d->hn; i++) {
        int k = hist_index(d, i);
        double ts = d->hts ? hts_get(d, k) : 0.0;
        double prev = d->hts && i > 0 ? hts_get(d, hist_index(d, i - 1)) : 0.0;
        ad_det_s2s_push(d, d->hv[k], ts, prev, i > 0);
        if (refill && d->has_pred) {
            double e = ad_norm_value(c, d->hv[k], d->center, d->scale) - (double)d->pred_norm;
            ad_scorer_score(d->sc, (float)e);
            ad_scorer_commit(d->sc, 0);
        }
    }
}

/*
 * Rebuilds the rolling state and the pending prediction by running the current network
 * over the newest samples of the history; with refill (the first training: until then
 * the errors were the warm-up fallback's) it also rebuilds the scorer's statistics from
 * the new network's errors there. A retraining keeps the scorer's statistics: they hold
 * out-of-sample errors, where errors on the history just trained on would be too small
 * and make the scorer jumpy. With `stateful` the state is warmed over the whole history
 * (the network was trained on states carried that far); the scorer is refilled from the
 * same newest samples as without.
 */
static void reprime(ad_detector *d, int refill)
{
    const ad_detector_config *c = &d->cfg;
    const int sw = c->scorer.kind == AD_SCORER_STATIC ? 0 : c->scorer.window;
    const int want = refill && sw > c->prime ? sw : c->prime;
    const int P = d->hn < want ? d->hn : want;
    const int burn = c->window < P / 4 ? c->window : P / 4; /* state still settling */
    float x[AD_MAX_INPUT], y = 0.0f;

    ad_state_reset(d->st);
    if (refill)
        ad_scorer_reset(d->sc);
    if (refill && d->lsc) /* it starts afresh on the network's errors (not refilled) */
        ad_scorer_reset(d->lsc);
    d->has_pred = 0;
    if (d->s2s) {
        reprime_s2s(d, refill, P > c->s2s_window ? P : c->s2s_window);
        return;
    }
    for (int i = c->stateful ? 0 : d->hn - P; i < d->hn; i++) {
        int k = hist_index(d, i);
        double v = d->hv[k];
        if (refill && d->has_pred && i - (d->hn - P) >= burn) {
            double e = ad_norm_value(c, v, d->center, d->scale) - (double)y;
            ad_scorer_score(d->sc, (float)e);
            ad_scorer_commit(d->sc, 0);
        }
        double ts = d->hts ? hts_get(d, k) : 0.0;
        double prev = d->hts && i > 0 ? hts_get(d, hist_index(d, i - 1)) : 0.0;
        ad_make_input(c, d->center, d->scale, v, ts, prev, i > 0, d->time_on, x);
        ad_net_step(d->net, d->st, x, &y);
        d->has_pred = 1;
    }
    d->pred_norm = y;
}

/* A network installed or joined: it has learnt what an open incident showed, and what it
 * was trained on (the history) is the new departure reference. */
static void new_network(ad_detector *d)
{
    d->incident = 0;
    ad_det_departure_ref(d);
    d->stats.trainings++;
}

int ad_detector_install(ad_detector *d, const ad_train_job *job, char *err, size_t errlen)
{
    if (!job->ran) {
        ERR("training job has not run");
        return -AD_EINVAL;
    }
    ad_det_settle(d); /* on the old weights, in order (re-priming then rebuilds the state) */
    if (job->cfg.features != d->cfg.features || job->cfg.asinh != d->cfg.asinh ||
        job->cfg.model != d->cfg.model || ad_net_copy_params(d->net, job->net) != 0 ||
        (d->s2s && (!job->s2s || ad_s2s_copy_params(d->s2s, job->s2s) != 0))) {
        ERR("training job is for a detector of another shape or inputs");
        return -AD_EINVAL;
    }
    int first = !d->trained;
    d->center = job->center;
    d->scale = job->scale;
    d->time_on = (uint8_t)job->time_on;
    d->raw_q = job->raw_q;
    d->raw_mean = 0.0f; /* the old network's errors: not these */
    d->trained = 1;
    d->since_train = 0;
    new_network(d);
    d->stats.epochs = job->epochs;
    d->stats.train_loss = job->train_loss;
    d->stats.val_loss = job->val_loss;
    reprime(d, first);
    if (first && d->ssc) /* it has seen nothing yet, but for clarity */
        ad_scorer_reset(d->ssc);
    ad_det_note_prefetch(d);
    return 0;
}

int ad_detector_train(ad_detector *d, char *err, size_t errlen)
{
    ad_train_job *job;
    int rc = ad_detector_snapshot(d, &job, err, errlen);
    if (rc)
        return rc;
    rc = ad_train_job_run(job, err, errlen);
    if (!rc)
        rc = ad_detector_install(d, job, err, errlen);
    ad_train_job_free(job);
    return rc;
}

int ad_detector_join(ad_detector *d, char *err, size_t errlen)
{
    if (!d->shared_net) {
        ERR("only a family member joins its family's network");
        return -AD_EINVAL;
    }
    ad_det_settle(d);
    if (!d->trained) {
        float *v;
        int n = d->hn, rc;

        if (n < 2 * d->cfg.window) {
            ERR("%d values of history are fewer than two windows of %d", n, d->cfg.window);
            return -AD_EINVAL;
        }
        v = malloc((size_t)n * sizeof(*v));
        if (!v) {
            ERR("out of memory");
            return -AD_ENOMEM;
        }
        ad_detector_history(d, v, NULL, n);
        rc = ad_norm_fit(v, n, &d->center, &d->scale);
        free(v);
        if (rc) {
            ERR("out of memory");
            return -AD_ENOMEM;
        }
        d->trained = 1;
        d->since_train = 0;
        new_network(d);
        reprime(d, 1);
        ad_det_note_slots(d, 1);
        return 0;
    }
    /* The family's network changed: rebuild the rolling state on it. */
    new_network(d);
    reprime(d, 0);
    ad_det_note_slots(d, 1);
    return 0;
}
