/*
 * gradflow.h - how far back a network's gradient reaches: the vanishing (or exploding)
 * gradient, measured with the library's own BPTT.
 *
 * The chapter's argument: an Elman network's gradient passes through one tanh and one
 * product by Wh per step back, so its norm shrinks (or grows) geometrically and the
 * network learns only short dependencies; the LSTM kinds' additive cell state, and the
 * GRU's interpolation between old and new state, give the gradient a path that a gate
 * can keep open, so it reaches far back. Here that is a number per step back.
 *
 * The measurement: B sequences x of n steps run forward; the loss is the output at the
 * last step (the sum of the O outputs of each sequence); BPTT (ad_seq_backward_dh)
 * records dLoss/dh_t of the top layer at every step t. For each sequence,
 *     r_k = ||dLoss/dh_{n-1-k}|| / ||dLoss/dh_{n-1}||,   k = 0 .. n-1
 * (L2 norms over the H units; r_0 = 1), and ratio[k] is r_k averaged over the sequences.
 * A ratio that falls to 1e-6 by k = 50 means a value seen 50 steps before the loss has no
 * say in training any more. Pure computation, no I/O.
 */
#ifndef AD_GRADFLOW_H
#define AD_GRADFLOW_H

#include <stddef.h>

#include "net.h"

/*
 * ratio (n) as above, for net (float parameters) over the B sequences x (D, B, n)
 * time-major (ad_seq_forward's layout). Sequences whose gradient at the last step is 0
 * are left out of the average. Float arithmetic: a gradient below about 1e-45 of the
 * last step's flushes to 0 (ratio 0). Returns 0, or -AD_EINVAL (no float parameters,
 * n or B < 1, every sequence's last gradient 0) or -AD_ENOMEM, with a message.
 */
int ad_gradflow_ratio(const ad_net *net, const float *x, int n, int B, double *ratio, char *err,
                      size_t errlen);

#endif
