/*
 * train.h - fitting a network to a sequence with truncated BPTT, mini-batches and an
 * optimiser: the loop the detector's retraining, the demo, the benchmark and the tests
 * share.
 *
 * Inputs x (D, n) and targets y (O, n) are aligned: the network's output after reading
 * x[:, t] should be y[:, t] (for next-value prediction pass y = x shifted by one).
 * Each epoch cuts windows of T steps starting every `stride` samples, shuffles them
 * (deterministically from the seed), and runs them in batches of at most B windows:
 * forward, MSE, backward, gradient-norm clipping, one optimiser step per batch. Each
 * window starts from a zero state.
 *
 * Stateful truncated BPTT (`stateful` 1), as language models batch text: the data is cut
 * into S = min(B, n / T) contiguous streams of L = n / S samples (the oldest n - S*L
 * dropped), and each epoch walks them side by side in consecutive windows of T steps
 * (the last one L mod T steps when that is not 0), one batch of S windows per step in
 * time, each window starting from the state the previous window of its stream ended
 * with (no gradient through the boundary), the first from zero. Every sample is seen
 * once per epoch; the order is fixed (seed and stride play no part).
 */
#ifndef AD_TRAIN_H
#define AD_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "optim.h"
#include "rng.h"

typedef struct ad_train_opts {
    int window;    /* T: steps per window (BPTT truncation) */
    int batch;     /* B: windows per batch */
    int stride;    /* samples between window starts (0 = window / 2) */
    int epochs;    /* passes over the windows */
    float clip;    /* max gradient L2 norm (0 = no clipping) */
    uint64_t seed; /* shuffling */
    int stateful;  /* 1: stateful truncated BPTT instead of shuffled windows (below) */
} ad_train_opts;

/* The window starts 0, stride, 2*stride, ... (nwin of them) in an order shuffled by rng:
 * one epoch's order, for ad_train and the seq2seq trainer. */
void ad_shuffled_starts(size_t *starts, size_t nwin, size_t stride, ad_rng *rng);

/* Sensible defaults: T=32, B=16, stride T/2, 10 epochs, clip 1, seed 1. */
void ad_train_defaults(ad_train_opts *o);

/*
 * Trains net in place with opt on (x, y), using ws (created for at least window x batch
 * of this net) and scratch it allocates once. Returns 0 and the mean training loss of
 * the last epoch in *loss (if not NULL), or a negative ad_err with a message (n smaller
 * than one window, shapes that do not fit ws, allocation failure).
 */
int ad_train(ad_net *net, ad_optim *opt, ad_seq *ws, const float *x, const float *y, size_t n,
             const ad_train_opts *o, float *loss, char *err, size_t errlen);

/*
 * Mean squared error of one-step predictions over a sequence, stepping a fresh state
 * through x (D, n) and comparing each output with y (O, n); only t >= skip count.
 */
double ad_eval_mse(const ad_net *net, ad_state *st, const float *x, const float *y, size_t n,
                   size_t skip);

/*
 * One epoch of an early-stopped fit (ad_early_stopping): trains one pass over the data,
 * shuffled with the epoch's seed (the caller's seed + epoch), and gives its mean
 * training loss in *loss and the loss early stopping judges in *val (the validation
 * loss, or the training loss when nothing is held out). 0, or a negative ad_err with a
 * message: the fit stops there.
 */
typedef int (*ad_epoch_fn)(void *ctx, int epoch, float *loss, double *val, char *err,
                           size_t errlen);

/* What an early-stopped fit did. */
typedef struct ad_fit_result {
    int epochs;       /* epochs run */
    float train_loss; /* the last epoch's training loss */
    double best_val;  /* the best *val seen (INFINITY when no epoch ran) */
} ad_fit_result;

/*
 * The early-stopping epoch loop of every training (the detector's network, its seq2seq
 * model, a family's network): up to `epochs` calls of epoch(ctx, e, ...), e = 0, 1, ...
 * After each, params (n floats, what the epochs train) are copied into best (n floats,
 * the caller's scratch) when the epoch's val is below the best so far, or always without
 * has_val (then the last epoch's params are kept); once `patience` epochs in a row brought
 * no improvement the loop stops. At the end params are the kept ones (best's), and *res
 * says how it went. Returns 0, or the first epoch's error (params are then left as that
 * epoch made them; *res holds the epochs completed before it).
 */
int ad_early_stopping(float *params, float *best, size_t n, int epochs, int patience, int has_val,
                      ad_epoch_fn epoch, void *ctx, ad_fit_result *res, char *err, size_t errlen);

#endif
