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

/* One batch of bn windows of T steps, gathered time-major in xb, yb: forward (from the
 * state batches h0, c0, or zero when h0 is NULL), MSE, backward, clipping, one optimiser
 * step. Returns the batch's loss, or -1 when the workspace is too small. */
static double train_batch(ad_net *net, ad_optim *opt, ad_seq *ws, const float *xb, const float *yb,
                          float *dy, int T, int bn, const float *h0, const float *c0, float clip)
{
    const float *yh =
        h0 ? ad_seq_forward_init(net, ws, xb, T, bn, h0, c0) : ad_seq_forward(net, ws, xb, T, bn);
    double loss;

    if (!yh)
        return -1.0;
    loss = ad_mse(yh, yb, (size_t)net->cfg.output * bn * T, dy);
    ad_seq_zero_grad(ws);
    ad_seq_backward(net, ws, dy, NULL);
    ad_clip_grad_norm(ad_seq_grad(ws), net->nparams, clip);
    ad_optim_step(opt, net->params, ad_seq_grad(ws));
    return loss;
}

/* Scratch of one ad_train. */
typedef struct train_buf {
    float *xb, *yb, *dy; /* (D|O, B, T) batches and the loss gradient */
    size_t *starts;      /* shuffled: (nwin) window starts */
    float *h, *c;        /* stateful: (H, S, layers) state batches carried over */
} train_buf;

/* Stateful: the S streams' windows starting at t0 of each, len steps (stream b is
 * [off + b L, off + (b+1) L) of the data), into time-major (rows, S, len) blocks. */
static void gather_streams(float *dst, const float *src, int rows, size_t off, size_t L, size_t t0,
                           int S, int len)
{
    for (int t = 0; t < len; t++)
        for (int b = 0; b < S; b++)
            memcpy(dst + (size_t)rows * (b + (size_t)S * t),
                   src + (size_t)rows * (off + (size_t)b * L + t0 + t),
                   (size_t)rows * sizeof(float));
}

/* One stateful epoch (ad_train_opts.stateful): S streams walked in consecutive windows,
 * each from the previous one's final state; *loss the mean over its batches. */
static int epoch_stateful(ad_net *net, ad_optim *opt, ad_seq *ws, const float *x, const float *y,
                          size_t n, const ad_train_opts *o, train_buf *tb, double *loss)
{
    const int D = net->cfg.input, O = net->cfg.output, T = o->window;
    const int S = n / (size_t)T < (size_t)o->batch ? (int)(n / (size_t)T) : o->batch;
    const size_t L = n / (size_t)S, off = n - (size_t)S * L;
    const size_t sb = (size_t)net->cfg.hidden * S * net->cfg.layers;
    size_t batches = 0;

    memset(tb->h, 0, sb * sizeof(*tb->h));
    memset(tb->c, 0, sb * sizeof(*tb->c));
    *loss = 0.0;
    for (size_t t0 = 0; t0 < L; t0 += (size_t)T) {
        const int len = L - t0 < (size_t)T ? (int)(L - t0) : T;
        gather_streams(tb->xb, x, D, off, L, t0, S, len);
        gather_streams(tb->yb, y, O, off, L, t0, S, len);
        double l = train_batch(net, opt, ws, tb->xb, tb->yb, tb->dy, len, S, tb->h, tb->c, o->clip);
        if (l < 0.0)
            return -1;
        ad_seq_final_states(ws, tb->h, tb->c);
        *loss += l;
        batches++;
    }
    *loss /= (double)batches;
    return 0;
}

/* One epoch over shuffled windows every stride samples, each from zero. */
static int epoch_shuffled(ad_net *net, ad_optim *opt, ad_seq *ws, const float *x, const float *y,
                          size_t nwin, size_t stride, const ad_train_opts *o, ad_rng *rng,
                          train_buf *tb, double *loss)
{
    const int D = net->cfg.input, O = net->cfg.output, T = o->window, B = o->batch;
    size_t batches = 0;

    ad_shuffled_starts(tb->starts, nwin, stride, rng);
    *loss = 0.0;
    for (size_t i = 0; i < nwin; i += (size_t)B) {
        int bn = nwin - i < (size_t)B ? (int)(nwin - i) : B;
        gather(tb->xb, x, D, tb->starts + i, bn, T);
        gather(tb->yb, y, O, tb->starts + i, bn, T);
        double l = train_batch(net, opt, ws, tb->xb, tb->yb, tb->dy, T, bn, NULL, NULL, o->clip);
        if (l < 0.0)
            return -1;
        *loss += l;
        batches++;
    }
    *loss /= (double)(batches ? batches : 1);
    return 0;
}

int ad_train(ad_net *net, ad_optim *opt, ad_seq *ws, const float *x, const float *y, size_t n,
             const ad_train_opts *o, float *loss, char *err, size_t errlen)
{
    const int D = net->cfg.input, O = net->cfg.output, T = o->window, B = o->batch;
    const size_t stride = o->stride > 0 ? (size_t)o->stride : (size_t)(T > 1 ? T / 2 : 1);
    const size_t sb = (size_t)net->cfg.hidden * B * net->cfg.layers;
    train_buf tb = {0};
    size_t nwin = 0;
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
    tb.xb = malloc((size_t)D * B * T * sizeof(*tb.xb));
    tb.yb = malloc((size_t)O * B * T * sizeof(*tb.yb));
    tb.dy = malloc((size_t)O * B * T * sizeof(*tb.dy));
    if (o->stateful) {
        tb.h = malloc(sb * sizeof(*tb.h));
        tb.c = malloc(sb * sizeof(*tb.c));
    } else {
        nwin = (n - (size_t)T) / stride + 1;
        tb.starts = malloc(nwin * sizeof(*tb.starts));
    }
    if (!tb.xb || !tb.yb || !tb.dy || (o->stateful ? !tb.h || !tb.c : !tb.starts)) {
        ERR("out of memory for training buffers");
        rc = -AD_ENOMEM;
        goto out_free;
    }
    ad_rng_seed(&rng, o->seed);
    for (int e = 0; e < o->epochs; e++) {
        if (o->stateful)
            rc = epoch_stateful(net, opt, ws, x, y, n, o, &tb, &epoch_loss);
        else
            rc = epoch_shuffled(net, opt, ws, x, y, nwin, stride, o, &rng, &tb, &epoch_loss);
        if (rc) {
            ERR("workspace is smaller than window %d x batch %d", T, B);
            rc = -AD_EINVAL;
            goto out_free;
        }
    }
    if (loss)
        *loss = (float)epoch_loss;

out_free:
    free(tb.starts);
    free(tb.xb);
    free(tb.yb);
    free(tb.dy);
    free(tb.h);
    free(tb.c);
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
