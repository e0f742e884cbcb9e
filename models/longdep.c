/*
 * longdep.c - the recall task of longdep.h: sequences, training with plain BPTT over whole
 * sequences, held-out MSE.
 */
#include "longdep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

void ad_longdep_defaults(ad_longdep_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->lag = 20;
    o->batch = 32;
    o->steps = 400;
    o->lr = 0.005f;
    o->clip = 1.0f;
    o->eval = 1024;
    o->seed = 1;
}

void ad_longdep_batch(ad_rng *r, int lag, int B, float *x, float *target)
{
    const int T = lag + 1, D = AD_LONGDEP_INPUT;
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++) {
            float *xt = x + (size_t)D * (b + (size_t)B * t);
            xt[0] = 2.0f * ad_rng_uniform(r) - 1.0f;
            xt[1] = t == 0 ? 1.0f : 0.0f;
            if (t == 0)
                target[b] = xt[0];
        }
}

/* The network's shape must be the task's. */
static int check_net(const ad_net *net, int lag, char *err, size_t errlen)
{
    if (net->cfg.input != AD_LONGDEP_INPUT || net->cfg.output != 1 || !net->params) {
        ERR("the recall task needs a float network with 2 inputs and 1 output (got %d, %d%s)",
            net->cfg.input, net->cfg.output, net->params ? "" : ", packed only");
        return -AD_EINVAL;
    }
    if (lag < 1 || lag > 100000) {
        ERR("lag must be 1..100000, got %d", lag);
        return -AD_EINVAL;
    }
    return 0;
}

/* Squared errors of the last step's outputs y (1, B, T) against target (B), and if dy is
 * not NULL the MSE's gradient there (dy zero elsewhere). Returns the sum. */
static double last_step_loss(const float *y, const float *target, int B, int T, float *dy)
{
    const float *yl = y + (size_t)B * (T - 1);
    double ss = 0.0;
    if (dy)
        memset(dy, 0, (size_t)B * T * sizeof(*dy));
    for (int b = 0; b < B; b++) {
        float d = yl[b] - target[b];
        ss += (double)d * d;
        if (dy)
            dy[(size_t)B * (T - 1) + b] = 2.0f * d / (float)B;
    }
    return ss;
}

int ad_longdep_eval(const ad_net *net, int lag, int n, uint64_t seed, double *mse, double *trivial,
                    char *err, size_t errlen)
{
    const int T = lag + 1, B = n < 64 ? n : 64;
    double ss = 0.0, s0 = 0.0;
    float *x = NULL, *tgt = NULL;
    ad_seq *ws = NULL;
    ad_rng r;
    int rc = check_net(net, lag, err, errlen);

    if (rc)
        return rc;
    if (n < 1) {
        ERR("evaluation needs at least one sequence");
        return -AD_EINVAL;
    }
    rc = ad_seq_create(net, T, B, &ws, err, errlen);
    if (rc)
        return rc;
    x = malloc((size_t)AD_LONGDEP_INPUT * B * T * sizeof(*x));
    tgt = malloc((size_t)B * sizeof(*tgt));
    if (!x || !tgt) {
        ERR("out of memory for the recall task");
        rc = -AD_ENOMEM;
        goto out_free;
    }
    ad_rng_seed(&r, seed);
    for (int done = 0; done < n; done += B) {
        const int bn = n - done < B ? n - done : B;
        ad_longdep_batch(&r, lag, bn, x, tgt);
        ss += last_step_loss(ad_seq_forward(net, ws, x, T, bn), tgt, bn, T, NULL);
        for (int b = 0; b < bn; b++)
            s0 += (double)tgt[b] * tgt[b];
    }
    *mse = ss / n;
    *trivial = s0 / n;

out_free:
    free(x);
    free(tgt);
    ad_seq_free(ws);
    return rc;
}

int ad_longdep_train(ad_net *net, const ad_longdep_opts *o, ad_longdep_result *res, char *err,
                     size_t errlen)
{
    const int T = o->lag + 1, B = o->batch;
    const int tail = o->steps / 10 > 0 ? o->steps / 10 : 1; /* steps in loss_last */
    float *x = NULL, *tgt = NULL, *dy = NULL;
    ad_optim *opt = NULL;
    ad_seq *ws = NULL;
    double tail_loss = 0.0;
    long clipped = 0;
    ad_rng r;
    int rc = check_net(net, o->lag, err, errlen);

    if (rc)
        return rc;
    if (B < 1 || o->steps < 0 || !(o->lr > 0.0f) || !(o->clip >= 0.0f) || o->eval < 1) {
        ERR("the recall task needs batch >= 1, steps >= 0, lr > 0, clip >= 0, eval >= 1");
        return -AD_EINVAL;
    }
    memset(res, 0, sizeof(*res));
    rc = ad_seq_create(net, T, B, &ws, err, errlen);
    if (rc)
        return rc;
    x = malloc((size_t)AD_LONGDEP_INPUT * B * T * sizeof(*x));
    tgt = malloc((size_t)B * sizeof(*tgt));
    dy = malloc((size_t)B * T * sizeof(*dy));
    opt = ad_optim_create(AD_OPTIM_ADAM, net->nparams, o->lr);
    if (!x || !tgt || !dy || !opt) {
        ERR("out of memory for the recall task");
        rc = -AD_ENOMEM;
        goto out_free;
    }
    ad_rng_seed(&r, o->seed);
    for (int s = 0; s < o->steps; s++) {
        ad_longdep_batch(&r, o->lag, B, x, tgt);
        double loss = last_step_loss(ad_seq_forward(net, ws, x, T, B), tgt, B, T, dy) / B;
        ad_seq_zero_grad(ws);
        ad_seq_backward(net, ws, dy, NULL);
        float norm = ad_clip_grad_norm(ad_seq_grad(ws), net->nparams, o->clip);
        if (o->clip > 0.0f && !(norm <= o->clip))
            clipped++;
        if (norm > res->grad_max || !isfinite(norm))
            res->grad_max = norm;
        ad_optim_step(opt, net->params, ad_seq_grad(ws));
        if (s >= o->steps - tail)
            tail_loss += loss;
    }
    ad_net_refresh(net);
    res->loss_last = o->steps ? tail_loss / (o->steps < tail ? o->steps : tail) : 0.0;
    res->clipped = o->steps ? (double)clipped / o->steps : 0.0;
    rc = ad_longdep_eval(net, o->lag, o->eval, o->seed + 1, &res->mse, &res->trivial, err, errlen);

out_free:
    ad_optim_free(opt);
    free(x);
    free(tgt);
    free(dy);
    ad_seq_free(ws);
    return rc;
}
