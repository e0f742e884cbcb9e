/*
 * family.c - pooled training of a family's shared network.
 */
#include "family.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "optim.h"
#include "train.h"

#define ERR(...)                                                                                   \
    do {                                                                                           \
        if (err && errlen)                                                                         \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
    } while (0)

struct ad_family_job {
    ad_detector_config cfg;
    ad_net *net;   /* a copy of the family's network; trained in place */
    int D, T;
    int nwin;      /* windows gathered */
    int members;   /* members that gave windows */
    float *x;      /* (D, nwin * T): inputs, window after window */
    float *y;      /* (nwin * T): targets */
    int ran, epochs;
    float train_loss, val_loss;
};

void ad_family_job_free(ad_family_job *job)
{
    if (!job)
        return;
    ad_net_free(job->net);
    free(job->x);
    free(job->y);
    free(job);
}

int ad_family_snapshot(const ad_net *net, const ad_detector_config *c,
                       ad_detector *const *members, int n, int per_member, int max_windows,
                       ad_family_job **out, char *err, size_t errlen)
{
    const int T = c->window, D = ad_detector_input_size(c->features);
    const int hmax = per_member * T + 1;
    ad_family_job *job = calloc(1, sizeof(*job));
    float *v = malloc((size_t)hmax * sizeof(*v));
    double *ts = malloc((size_t)hmax * sizeof(*ts));
    int rc;

    *out = NULL;
    if (!job || !v || !ts)
        goto out_nomem;
    job->cfg = *c;
    job->D = D;
    job->T = T;
    job->x = malloc((size_t)D * T * max_windows * sizeof(*job->x));
    job->y = malloc((size_t)T * max_windows * sizeof(*job->y));
    if (!job->x || !job->y)
        goto out_nomem;
    rc = ad_net_create(&net->cfg, c->seed, &job->net, err, errlen);
    if (rc)
        goto out_free;
    ad_net_copy_params(job->net, net);
    for (int m = 0; m < n && job->nwin < max_windows; m++) {
        int h = ad_detector_history(members[m], v, ts, hmax), k;
        double center, scale;

        k = (h - 1) / T;
        if (k > max_windows - job->nwin)
            k = max_windows - job->nwin;
        if (k < 1)
            continue; /* fewer than T + 1 values: not one window yet */
        if (ad_detector_trained(members[m])) {
            ad_detector_normaliser(members[m], &center, &scale);
        } else if (ad_norm_fit(v, h, &center, &scale) != 0) {
            goto out_nomem;
        }
        /* the newest k windows: v[h - 1 - k*T .. h - 1] */
        for (int w = 0; w < k; w++) {
            int base = h - 1 - (k - w) * T;
            float *xw = job->x + (size_t)D * T * job->nwin;
            float *yw = job->y + (size_t)T * job->nwin;

            for (int t = 0; t < T; t++) {
                int i = base + t;

                ad_make_input(c, center, scale, v[i], ts[i], i > 0 ? ts[i - 1] : 0.0, i > 0, 1,
                              xw + (size_t)D * t);
                yw[t] = ad_clipf(ad_norm_value(c, v[i + 1], center, scale), c->input_clip);
            }
            job->nwin++;
        }
        job->members++;
    }
    if (job->nwin < 2) {
        ERR("the family's members hold %d windows of %d steps: too few to train", job->nwin, T);
        rc = -AD_EINVAL;
        goto out_free;
    }
    free(v);
    free(ts);
    *out = job;
    return 0;

out_nomem:
    ERR("out of memory for a family training");
    rc = -AD_ENOMEM;
out_free:
    free(v);
    free(ts);
    ad_family_job_free(job);
    return rc;
}

/* Mean squared one-step error over windows [w0, w1), each from a fresh state. */
static double eval_windows(const ad_family_job *job, ad_state *st, int w0, int w1)
{
    double sum = 0.0;
    long cnt = 0;

    for (int w = w0; w < w1; w++) {
        ad_state_reset(st);
        for (int t = 0; t < job->T; t++) {
            float yhat;

            ad_net_step(job->net, st, job->x + (size_t)job->D * (job->T * w + t), &yhat);
            if (t >= job->T / 4) { /* skip the steps where the state is still settling */
                double e = (double)yhat - job->y[job->T * w + t];
                sum += e * e;
                cnt++;
            }
        }
    }
    return cnt ? sum / (double)cnt : 0.0;
}

/* The epochs' context (ad_early_stopping). */
typedef struct family_fit {
    ad_family_job *job;
    ad_optim *opt;
    ad_seq *ws;
    ad_state *st;
    ad_train_opts o;
    int ntr, nval; /* training windows (first), held-out windows (last) */
} family_fit;

/* One epoch over the training windows, then the held-out windows' error. */
static int family_epoch(void *ctx, int e, float *loss, double *val, char *err, size_t errlen)
{
    family_fit *f = ctx;
    ad_family_job *job = f->job;
    int rc;

    f->o.seed = job->cfg.seed + (uint64_t)e;
    rc = ad_train(job->net, f->opt, f->ws, job->x, job->y, (size_t)f->ntr * job->T, &f->o, loss,
                  err, errlen);
    if (rc)
        return rc;
    *val = f->nval > 0 ? eval_windows(job, f->st, f->ntr, job->nwin) : *loss;
    return 0;
}

/* Reorders the pool: training windows first, the nval held-out windows (every k-th, so
 * every member's recent past is in both) last. 0 or -AD_ENOMEM. */
static int hold_out(ad_family_job *job, int ntr, int nval)
{
    const int T = job->T, stride = job->nwin / nval;
    float *x2 = malloc((size_t)job->D * T * job->nwin * sizeof(*x2));
    float *y2 = malloc((size_t)T * job->nwin * sizeof(*y2));
    int vi = 0, ti = 0;

    if (!x2 || !y2) {
        free(x2);
        free(y2);
        return -AD_ENOMEM;
    }
    for (int w = 0; w < job->nwin; w++) {
        /* every stride-th window, nval of them (nwin / stride >= nval) */
        int isval = w % stride == stride - 1 && w / stride < nval;
        int dst = isval ? ntr + vi++ : ti++;

        memcpy(x2 + (size_t)job->D * T * dst, job->x + (size_t)job->D * T * w,
               (size_t)job->D * T * sizeof(*x2));
        memcpy(y2 + (size_t)T * dst, job->y + (size_t)T * w, (size_t)T * sizeof(*y2));
    }
    free(job->x);
    free(job->y);
    job->x = x2;
    job->y = y2;
    return 0;
}

int ad_family_job_run(ad_family_job *job, char *err, size_t errlen)
{
    const ad_detector_config *c = &job->cfg;
    const int T = job->T;
    int nval = (int)((float)job->nwin * c->val_frac), rc;
    float *best = NULL;
    family_fit f = {.job = job};
    ad_fit_result res;

    /* The held-out windows are every k-th, so every member's recent past is in both. */
    if (nval < 1 && job->nwin >= 4)
        nval = 1;
    f.nval = nval;
    f.ntr = job->nwin - nval;
    if (nval > 0 && hold_out(job, f.ntr, nval) != 0)
        goto out_nomem;
    best = malloc(job->net->nparams * sizeof(*best));
    f.opt = ad_optim_create(AD_OPTIM_ADAM, job->net->nparams, c->lr);
    f.st = ad_state_create(job->net);
    if (!best || !f.opt || !f.st)
        goto out_nomem;
    rc = ad_seq_create(job->net, T, c->batch, &f.ws, err, errlen);
    if (rc)
        goto out_free;
    ad_train_defaults(&f.o);
    f.o.window = T;
    f.o.batch = c->batch;
    f.o.stride = T; /* windows tile the pool exactly: none crosses two series */
    f.o.epochs = 1;
    f.o.clip = c->clip;
    /* has_val 1 even when nothing is held out: the training loss then judges */
    rc = ad_early_stopping(job->net->params, best, job->net->nparams, c->epochs, c->patience, 1,
                           family_epoch, &f, &res, err, errlen);
    job->epochs = res.epochs;
    job->train_loss = res.train_loss;
    if (rc)
        goto out_free;
    job->val_loss = (float)res.best_val;
    job->ran = 1;
    goto out_free;

out_nomem:
    ERR("out of memory for a family training");
    rc = -AD_ENOMEM;
out_free:
    ad_seq_free(f.ws);
    ad_state_free(f.st);
    ad_optim_free(f.opt);
    free(best);
    return rc;
}

int ad_family_install(ad_net *net, const ad_family_job *job, char *err, size_t errlen)
{
    if (!job->ran) {
        ERR("family training job has not run");
        return -AD_EINVAL;
    }
    if (ad_net_copy_params(net, job->net) != 0) {
        ERR("family training job is for a network of another shape");
        return -AD_EINVAL;
    }
    return 0;
}

void ad_family_job_result(const ad_family_job *job, int *windows, int *members, int *epochs,
                          float *train_loss, float *val_loss)
{
    if (windows)
        *windows = job->nwin;
    if (members)
        *members = job->members;
    if (epochs)
        *epochs = job->epochs;
    if (train_loss)
        *train_loss = job->train_loss;
    if (val_loss)
        *val_loss = job->val_loss;
}
