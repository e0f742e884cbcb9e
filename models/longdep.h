/*
 * longdep.h - a long-dependency task: recall the value seen L steps ago.
 *
 * What a recurrent cell can learn depends on how far back its gradient reaches
 * (gradflow.h measures that); this task measures the other half, what it learns. A
 * sequence has L+1 steps and two inputs per step (D = 2): a value v_t uniform in [-1, 1]
 * and a marker m_t, 1 at step 0 and 0 after it. The target is v_0, the marked value, and
 * only the output at the last step L counts: the network must carry one number across L
 * steps of distracting values. Predicting 0 (the values' mean) scores the trivial MSE,
 * E[v^2] = 1/3; remembering scores near 0. Sequences are independent and start from a
 * zero state (plain truncated BPTT over windows of L+1 steps: the window spans the whole
 * dependency, so what limits learning is the gradient's reach, not the truncation).
 *
 * Pure computation, deterministic from the seeds, no I/O.
 */
#ifndef AD_LONGDEP_H
#define AD_LONGDEP_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "rng.h"

#define AD_LONGDEP_INPUT 2 /* D: value, marker */

typedef struct ad_longdep_opts {
    int lag;       /* L >= 1: steps from the marked value to its recall (sequences of L+1) */
    int batch;     /* sequences per optimiser step (32) */
    int steps;     /* optimiser steps, i.e. batches of fresh sequences (400) */
    float lr;      /* Adam's learning rate (0.005) */
    float clip;    /* gradient-norm clip (optim.h), 0 = none (1) */
    int eval;      /* held-out sequences for the final MSE (1024) */
    uint64_t seed; /* the training sequences (the held-out ones use seed + 1) */
} ad_longdep_opts;

/* What training measured. */
typedef struct ad_longdep_result {
    double mse;       /* the trained network's MSE on the held-out sequences */
    double trivial;   /* the MSE of predicting 0 on the same sequences (about 1/3) */
    double loss_last; /* mean training loss over the last tenth of the steps */
    double clipped;   /* fraction of steps whose gradient norm exceeded clip */
    double grad_max;  /* largest gradient norm seen before clipping */
} ad_longdep_result;

/* The defaults above. */
void ad_longdep_defaults(ad_longdep_opts *o);

/*
 * B fresh sequences of a task with lag L from r: x (2, B, L+1) time-major, as
 * ad_seq_forward reads it (element (d, b, t) at x[d + 2*(b + B*t)]: d = 0 the value,
 * d = 1 the marker), target (B) the marked values.
 */
void ad_longdep_batch(ad_rng *r, int lag, int B, float *x, float *target);

/*
 * Trains net (input 2, output 1, any kind, layers, hidden size) in place on o->steps
 * batches of fresh sequences: forward, MSE of the last step's output, backward, clipping,
 * Adam. Then the held-out MSE into res. Returns 0, or -AD_EINVAL (a network of another
 * shape, a bad option) or -AD_ENOMEM, with a message.
 */
int ad_longdep_train(ad_net *net, const ad_longdep_opts *o, ad_longdep_result *res, char *err,
                     size_t errlen);

/*
 * The MSE of net's last-step output against the marked value over n sequences drawn from
 * seed (*mse), and of predicting 0 on the same sequences (*trivial). Returns 0 or a
 * negative ad_err with a message.
 */
int ad_longdep_eval(const ad_net *net, int lag, int n, uint64_t seed, double *mse, double *trivial,
                    char *err, size_t errlen);

#endif
