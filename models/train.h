/*
 * train.h - fitting a network to a sequence with truncated BPTT, mini-batches and an
 * optimiser: the loop the detector's retraining, the demo, the benchmark and the tests
 * share.
 *
 * Inputs x (D, n) and targets y (O, n) are aligned: the network's output after reading
 * x[:, t] should be y[:, t] (for next-value prediction pass y = x shifted by one).
 * Each epoch cuts windows of T steps starting every `stride` samples, shuffles them
 * (deterministically from the seed), and runs them in batches of at most B windows:
 * forward, MSE, backward, gradient-norm clipping, one optimiser step per batch.
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
 * One epoch's early-stopping step: with a validation loss (has_val) better than
 * *best_val, or without one, copies params (n floats) into best and resets
 * *since_best; otherwise counts the epoch. Returns 1 when patience epochs in a row
 * brought no improvement (stop), else 0.
 */
int ad_early_stop(const float *params, float *best, size_t n, int has_val, double val,
                  double *best_val, int *since_best, int patience);

#endif
