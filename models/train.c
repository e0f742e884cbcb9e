/*
 * train.c - truncated BPTT over shuffled windows of a sequence, in mini-batches.
 */
#include "train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

void ad_train_defaults(ad_train_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->window = 32;
    o->batch = 16;
    o->stride = 0;
    o->epochs = 10;
    o->clip = 1.0f;
    o->seed = 1;
}

void ad_shuffled_starts(size_t *starts, size_t nwin, size_t stride, ad_rng *rng)
{
    for (size_t i = 0; i < nwin; i++)
        starts[i] = i * stride;
    for (size_t i = nwin; i > 1; i--) { /* Fisher-Yates */
        size_t j = ad_rng_below(rng, (uint32_t)i);
        size_t tmp = starts[i - 1];
        starts[i - 1] = starts[j];
        starts[j] = tmp;
    }
}

/* Copies windows starts[0..B) of (rows, n) data into time-major (rows, B, T) blocks. */
static void gather(float *dst, const float *src, int rows, const size_t *starts, int B, int T)
{
    for (int t = 0; t < T; t++)
        for (int b = 0; b < B; b++)
            memcpy(dst + (size_t)rows * (b + (size_t)B * t), src + (size_t)rows * (starts[b] + t),
                   (size_t)rows * sizeof(float));
}

int ad_train(ad_net *net, ad_optim *opt, ad_seq *ws, const float *x, const float *y, size_t n,
             const ad_train_opts *o, float *loss, char *err, size_t errlen)
{
    const int D = net->cfg.input, O = net->cfg.output, T = o->window, B = o->batch;
    const size_t stride = o->stride > 0 ? (size_t)o->stride : (size_t)(T > 1 ? T / 2 : 1);
    size_t nwin, *starts = NULL;
    float *xb = NULL, *yb = NULL, *dy = NULL;
    double epoch_loss = 0.0;
    int rc = 0;
    ad_rng rng;

    if (T < 1 || B < 1 || o->epochs < 0 || n < (size_t)T) {
        ERR("training needs at least one window of %d samples, got %zu", T, n);
        return -AD_EINVAL;
    }
    if (opt->n != net->nparams) {
        ERR("optimiser is for %zu parameters, network has %zu", opt->n, net->nparams);
        return -AD_EINVAL;
    }
    nwin = (n - (size_t)T) / stride + 1;
    starts = malloc(nwin * sizeof(*starts));
    xb = malloc((size_t)D * B * T * sizeof(*xb));
    yb = malloc((size_t)O * B * T * sizeof(*yb));
    dy = malloc((size_t)O * B * T * sizeof(*dy));
    if (!starts || !xb || !yb || !dy) {
        ERR("out of memory for training buffers");
        rc = -AD_ENOMEM;
        goto out_free;
    }
    ad_rng_seed(&rng, o->seed);
    for (int e = 0; e < o->epochs; e++) {
        size_t batches = 0;
        ad_shuffled_starts(starts, nwin, stride, &rng);
        epoch_loss = 0.0;
        for (size_t i = 0; i < nwin; i += (size_t)B) {
            int bn = nwin - i < (size_t)B ? (int)(nwin - i) : B;
            const float *yh;
            gather(xb, x, D, starts + i, bn, T);
            gather(yb, y, O, starts + i, bn, T);
            yh = ad_seq_forward(net, ws, xb, T, bn);
            if (!yh) {
                ERR("workspace is smaller than window %d x batch %d", T, bn);
                rc = -AD_EINVAL;
                goto out_free;
            }
            epoch_loss += ad_mse(yh, yb, (size_t)O * bn * T, dy);
            ad_seq_zero_grad(ws);
            ad_seq_backward(net, ws, dy, NULL);
            ad_clip_grad_norm(ad_seq_grad(ws), net->nparams, o->clip);
            ad_optim_step(opt, net->params, ad_seq_grad(ws));
            batches++;
        }
        epoch_loss /= (double)(batches ? batches : 1);
    }
    if (loss)
        *loss = (float)epoch_loss;

out_free:
    free(starts);
    free(xb);
    free(yb);
    free(dy);
    return rc;
}

double ad_eval_mse(const ad_net *net, ad_state *st, const float *x, const float *y, size_t n,
                   size_t skip)
{
    const int D = net->cfg.input, O = net->cfg.output;
    float out[AD_MAX_OUTPUT];
    double ss = 0.0;
    size_t cnt = 0;

    ad_state_reset(st);
    for (size_t t = 0; t < n; t++) {
        ad_net_step(net, st, x + (size_t)D * t, out);
        if (t < skip)
            continue;
        for (int o = 0; o < O; o++) {
            double d = (double)out[o] - y[(size_t)O * t + o];
            ss += d * d;
            cnt++;
        }
    }
    return cnt ? ss / (double)cnt : 0.0;
}

/* One epoch's early-stopping verdict: params kept in best when val beats *best_val (or
 * always without has_val); 1 once patience epochs in a row did not. */
static int early_stop(const float *params, float *best, size_t n, int has_val, double val,
                      double *best_val, int *since_best, int patience)
{
    if (!has_val || val < *best_val) {
        memcpy(best, params, n * sizeof(*best));
        *best_val = val;
        *since_best = 0;
        return 0;
    }
    return ++*since_best >= patience;
}

int ad_early_stopping(float *params, float *best, size_t n, int epochs, int patience, int has_val,
                      ad_epoch_fn epoch, void *ctx, ad_fit_result *res, char *err, size_t errlen)
{
    int since_best = 0;

    res->epochs = 0;
    res->train_loss = 0.0f;
    res->best_val = INFINITY;
    memcpy(best, params, n * sizeof(*best));
    for (int e = 0; e < epochs; e++) {
        float loss;
        double val;
        int rc = epoch(ctx, e, &loss, &val, err, errlen);
        if (rc)
            return rc;
        res->epochs = e + 1;
        res->train_loss = loss;
        if (early_stop(params, best, n, has_val, val, &res->best_val, &since_best, patience))
            break;
    }
    memcpy(params, best, n * sizeof(*best));
    return 0;
}
