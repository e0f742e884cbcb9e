/*
 * seq2seq.h - the recurrent encoder-decoder (Malhotra et al. 2016, "LSTM-based
 * encoder-decoder for multi-sensor anomaly detection"): reconstruction error of a window
 * as an anomaly signal.
 *
 * An encoder (a stacked network of one cell kind, net.h) reads a window x_0 .. x_{L-1}
 * (oldest first, D values each). Its final state (h, and c for the LSTM kinds, every
 * layer) is the initial state of a decoder (same kind, layers and H, its own weights and
 * a linear head with D outputs) that reconstructs the window newest first:
 *
 *   decoder step s = 0 .. L-1 outputs r_{L-1-s}, the reconstruction of x_{L-1-s};
 *   its input is 0 at step 0 and the true x_{L-s} at step s >= 1 (teacher forcing: the
 *   value the previous step had to reconstruct).
 *
 * The true values are fed both in training and in scoring, so the two compute the same
 * function (the batched forward and ad_s2s_score agree to rounding, bit for bit with the
 * reference product kernel). Loss: MSE of r against x over all D*L values of a window.
 *
 * The anomaly signal (ad_s2s_score): per window position t, e_t = mean over d of
 * (r_t - x_t)^2; e_{L-1} is the newest value's error, the mean of e the window's. The
 * newest value is reconstructed first, from the encoder's final state alone.
 *
 * Parameters are ONE flat buffer: the encoder network's parameters, then the decoder's,
 * each laid out exactly as net.h describes, so optimisers (optim.h) and checkpoints are
 * single loops over ad_s2s.params. The two halves are reachable as ordinary ad_net
 * structs (enc, dec) embedded in ad_s2s whose params point into that buffer (they own
 * nothing: never ad_net_free them). The encoder is a net.h network with a one-output head
 * that the model does not use (its gradient is always 0; Adam leaves it unchanged): H+1
 * floats spent so that each half is a plain network (ad_net_step, ad_seq_*, serial.h
 * work on it as on any other).
 *
 * No I/O, no globals. Scoring allocates nothing (a scorer is created once).
 */
#ifndef AD_SEQ2SEQ_H
#define AD_SEQ2SEQ_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "optim.h"
#include "train.h"

#define AD_S2S_MAX_WINDOW 1024 /* largest window L */

typedef struct ad_s2s_config {
    ad_cell_kind kind; /* cell kind of both halves */
    int layers;        /* 1..AD_MAX_LAYERS, both halves */
    int input;         /* D: values per time step, 1..AD_MAX_INPUT (also the outputs) */
    int hidden;        /* H: 1..AD_MAX_HIDDEN, both halves */
    int window;        /* L: time steps per window, 1..AD_S2S_MAX_WINDOW */
} ad_s2s_config;

typedef struct ad_s2s {
    ad_s2s_config cfg;
    size_t nparams; /* enc.nparams + dec.nparams */
    float *params;  /* (nparams) the one allocation: encoder's, then decoder's */
    ad_net enc;     /* encoder (kind, layers, D, H, output 1); params == params */
    ad_net dec;     /* decoder (kind, layers, D, H, output D); params == params + enc.nparams */
} ad_s2s;

/* Returns 0 if cfg is a valid shape, else -AD_EINVAL with a message in err. */
int ad_s2s_config_check(const ad_s2s_config *cfg, char *err, size_t errlen);

/* Parameters of a model of this shape (0 if the shape is invalid). */
size_t ad_s2s_param_count(const ad_s2s_config *cfg);

/*
 * Allocates a model and initialises it from seed (ad_s2s_init). Returns 0 and *out, or a
 * negative ad_err with a message.
 */
int ad_s2s_create(const ad_s2s_config *cfg, uint64_t seed, ad_s2s **out, char *err, size_t errlen);

/* Re-initialises the parameters: the encoder as ad_net_init(enc, seed), the decoder as
 * ad_net_init(dec, seed + 0x9E3779B97F4A7C15) (so the halves differ). */
void ad_s2s_init(ad_s2s *m, uint64_t seed);

/* A copy of src (shape and parameters); NULL on allocation failure. */
ad_s2s *ad_s2s_clone(const ad_s2s *src);

/* Copies the parameters of src into dst; -AD_EINVAL if their shapes differ. */
int ad_s2s_copy_params(ad_s2s *dst, const ad_s2s *src);

void ad_s2s_free(ad_s2s *m);

/* Bytes owned by a model (struct and parameters). */
size_t ad_s2s_bytes(const ad_s2s *m);

/* ---- batches: training and evaluation ----
 * Windows are time-major as in net.h: B windows of L steps, element (d, b, t) at
 * x[d + D*(b + B*t)], t = 0 the oldest. */

typedef struct ad_s2s_ws ad_s2s_ws; /* workspace: both halves' ad_seq, buffers, gradient */

/* Allocates a workspace for m's shape and up to B windows. */
int ad_s2s_ws_create(const ad_s2s *m, int B, ad_s2s_ws **out, char *err, size_t errlen);
void ad_s2s_ws_free(ad_s2s_ws *ws);
size_t ad_s2s_ws_bytes(const ad_s2s_ws *ws);

/*
 * Runs B windows x (D, B, L) (copied; B at most the workspace's) through encoder and
 * decoder. Returns the reconstructions (D, B, L), aligned with x (element (d, b, t)
 * reconstructs x's), valid until the next forward on ws; NULL if B does not fit ws or ws
 * was made for another shape. Cost: 2*L*B network steps.
 */
const float *ad_s2s_forward(const ad_s2s *m, ad_s2s_ws *ws, const float *x, int B);

/*
 * Backward of the last forward: dy (D, B, L), aligned like x, is dLoss/d(reconstruction).
 * ADDS the gradient of every parameter (encoder and decoder, through the decoder's
 * initial state into the encoder) into ws's flat gradient (ad_s2s_zero_grad clears it).
 */
void ad_s2s_backward(const ad_s2s *m, ad_s2s_ws *ws, const float *dy);

/* The flat gradient (nparams floats, laid out like m->params). */
float *ad_s2s_grad(ad_s2s_ws *ws);
void ad_s2s_zero_grad(ad_s2s_ws *ws);

/*
 * Trains m in place on the sequence x (D, n) (oldest first): each epoch cuts windows of
 * L samples every o->stride samples (0 = L/2), shuffles them (from o->seed), and for
 * each batch of at most o->batch windows runs forward, the MSE of the reconstruction,
 * backward, gradient-norm clipping at o->clip and one step of opt (made for m->nparams
 * parameters). o->window must be 0 or L. Allocates only the window index. Returns 0 and
 * the mean batch loss of the last epoch in *loss (if not NULL), or a negative ad_err with
 * a message (n < L, a batch larger than ws, wrong optimiser, allocation failure).
 */
int ad_s2s_train(ad_s2s *m, ad_optim *opt, ad_s2s_ws *ws, const float *x, size_t n,
                 const ad_train_opts *o, float *loss, char *err, size_t errlen);

/*
 * Mean reconstruction MSE over the windows of x (D, n) starting every stride samples
 * (stride >= 1), in batches of ws's size: for validation. Returns 0 and *mse, or
 * -AD_EINVAL (n < L, stride < 1, ws of another shape).
 */
int ad_s2s_eval(const ad_s2s *m, ad_s2s_ws *ws, const float *x, size_t n, int stride, double *mse);

/* ---- scoring one window: the anomaly signal ---- */

typedef struct ad_s2s_scorer ad_s2s_scorer; /* a rolling state for one window at a time */

/* Allocates a scorer for models of m's shape (any weights of that shape). */
int ad_s2s_scorer_create(const ad_s2s *m, ad_s2s_scorer **out, char *err, size_t errlen);
void ad_s2s_scorer_free(ad_s2s_scorer *sc);
size_t ad_s2s_scorer_bytes(const ad_s2s_scorer *sc);

/*
 * Scores one window x (D, L), element (d, t) at x[d + D*t], t = L-1 the newest value:
 * encoder and decoder stepped with ad_net_step. Writes, if not NULL, recon (D, L) aligned
 * with x, err (L) the per-position errors e_t = mean_d (recon - x)^2 (err[L-1] is the
 * newest value's) and *mean = their mean (the window's MSE, the training loss of this
 * one window). No allocation; 2*L network steps (each O(parameters of one half)); safe
 * on different scorers of one model from different threads. Returns 0, or -AD_EINVAL if
 * sc was made for another shape.
 */
int ad_s2s_score(const ad_s2s *m, ad_s2s_scorer *sc, const float *x, float *recon, float *err,
                 float *mean);

#endif
