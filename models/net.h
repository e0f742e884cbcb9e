/*
 * net.h - stacked recurrent networks with a linear head (the anomalyd models library).
 *
 * A network is 1..AD_MAX_LAYERS layers of one cell kind (cell.h), input size D, hidden
 * size H, and a linear head mapping the top layer's h to O outputs (the prediction of
 * the next value). The network object holds shapes and parameters only; every stream
 * owns an ad_state (h, and c for the LSTM kinds, per layer), so one network's code and
 * weights can serve many streams.
 *
 * Parameters live in one contiguous float buffer carved by a size table (llm.c style):
 * per layer Wx (G*H, Din), Wh (G*H, H), b (G*H) and the kind's extra vector (cell.h),
 * then the head Wy (O, H) and by (O). Matrices are column-major: element (r, c) of an
 * (R, C) matrix is at [r + c*R]. A packed-only network (ad_net_set_storage,
 * AD_NET_FP16_ONLY or AD_NET_INT8_ONLY) has no float buffer: its weight matrices are
 * halves or int8 in the packed block, and the float parameters are derived from it when
 * asked for (ad_net_get_params, ad_net_clone).
 *
 * Three ways to run a network:
 *  - ad_net_step(): one sample for one stream, O(parameters), no allocation.
 *  - ad_net_step_batch(): one sample for each of n streams (a family's members), as
 *    matrix-matrix products over the streams once n is large enough.
 *  - ad_seq_forward()/ad_seq_backward(): B windows of T steps at once, for truncated
 *    BPTT, with matrix-matrix products (blas.h). Gradients accumulate into the
 *    workspace's flat gradient buffer, laid out exactly like the parameters.
 *
 * With the reference product kernel selected (ad_blas_set_reference(1)) the sequence
 * forward and the streaming step (then the plain reference step) add in the same order
 * and agree bit for bit; otherwise (OpenBLAS, and the fused SIMD step kernels with fused
 * multiply-adds) they agree to float rounding.
 *
 * No I/O, no globals but the product-kernel switch in blas.h.
 */
#ifndef AD_NET_H
#define AD_NET_H

#include <stddef.h>
#include <stdint.h>

#include "cell.h"
#include "err.h"
#include "kern.h"
#include "shape.h" /* ad_net_config, ad_params, the parameters' layout */

typedef struct ad_net {
    /* A step reads these first (with a packed block, only these: ad_net_step_bytes) */
    ad_net_config cfg;
    /* The packed block (ad_net_set_storage), or all NULL/0: */
    ad_wtype pack_wt;                /* AD_W_F16 or AD_W_I8 (AD_W_F32 without a block) */
    void *pack;                      /* one allocation: per layer [Wx | Wh] as halves or
                                      * int8, then (floats) the rows' scales (int8), b and
                                      * extra; then the head Wy, by as floats */
    const float *pwy, *pby;          /* the head inside pack (O, H) and (O) */
    ad_kern_layer pl[AD_MAX_LAYERS]; /* views into pack for the step kernels */
    size_t pack_bytes;               /* its size */
    size_t nparams; /* the parameter count (floats in params, when there are floats) */
    float *params;  /* (nparams) the float parameters (the masters), or NULL when packed
                     * only */
    ad_params p;    /* views into params (all NULL when packed only) */
} ad_net;

/* Per-stream rolling state. */
typedef struct ad_state {
    int layers, hidden, has_c;
    float *h; /* (layers, H) */
    float *c; /* (layers, H) for LSTM kinds, else NULL */
} ad_state;

/*
 * Allocates a network and initialises it deterministically from seed: weights uniform in
 * [-1/sqrt(H), 1/sqrt(H)] (PyTorch's rule), biases 0 except the forget gate's bias 1 for
 * the LSTM kinds. Returns 0 and *out, or a negative ad_err with a message.
 */
int ad_net_create(const ad_net_config *cfg, uint64_t seed, ad_net **out, char *err, size_t errlen);

/* Re-initialises the parameters of an existing network from seed (as ad_net_create). A
 * packed-only network is widened, initialised and packed again (unchanged if there is no
 * memory for the floats). */
void ad_net_init(ad_net *net, uint64_t seed);

/* How a network is initialised (ad_net_init_with); ad_net_init uses the defaults. */
typedef struct ad_net_init_opts {
    float scale;       /* weights (Wx, Wh, peepholes, Wy) uniform in [-scale/sqrt(H),
                        * scale/sqrt(H)] (1: PyTorch's rule) */
    float forget_bias; /* the LSTM kinds' forget-gate bias (1: the gate starts mostly open,
                        * so the cell state and its gradient carry far back; strongly
                        * negative closes it and the gradient vanishes as in an Elman
                        * network; docs/MODELS.md "Vanishing gradients, measured") */
} ad_net_init_opts;

/* The defaults: scale 1, forget bias 1. */
void ad_net_init_defaults(ad_net_init_opts *o);

/* As ad_net_init, with o's scale and forget bias (NULL = the defaults: then exactly
 * ad_net_init). The same seed draws the same numbers whatever the options, so two
 * networks differing in one option differ in that alone. */
void ad_net_init_with(ad_net *net, uint64_t seed, const ad_net_init_opts *o);

/* Sets every layer's forget-gate bias to v (the LSTM kinds; other kinds are unchanged):
 * on a network just initialised, the same as initialising it with forget_bias v. For
 * networks made elsewhere (seq2seq halves, a detector's network). A packed block is
 * refreshed. */
void ad_net_set_forget_bias(ad_net *net, float v);

/* Allocates a copy of src (shapes and parameters; float only: the copy has no packed
 * block, it is usually the one to train; a packed-only src's halves or int8 are widened,
 * exactly). Returns NULL on allocation failure. */
ad_net *ad_net_clone(const ad_net *src);

/* Copies parameters from src into dst; both must have the same shape (else -AD_EINVAL).
 * Either may be packed only: src's floats are its block widened; a packed-only dst gets
 * src's floats narrowed (fp16) or quantised (int8) into its block, and dst's block, if it
 * has floats too, is refreshed (this is how new weights are installed). -AD_ENOMEM only
 * from a packed-only src to a packed-only dst of the other type (through a float copy;
 * dst is then unchanged). */
int ad_net_copy_params(ad_net *dst, const ad_net *src);

/* Floats [off, off + n) of the flat parameter vector (clipped to nparams) into out: the
 * float parameters, or for a packed-only network its halves or int8 widened (exactly:
 * q * scale for int8, quant.h) and its float parts copied. No allocation. */
void ad_net_get_params(const ad_net *net, size_t off, size_t n, float *out);

/* 1 if every parameter (as ad_net_get_params gives it) is finite, else 0. */
int ad_net_params_finite(const ad_net *net);

void ad_net_free(ad_net *net);

/* Bytes owned by a network: the struct, the float parameters if any, the packed block
 * if any. */
size_t ad_net_bytes(const ad_net *net);

/*
 * Asks the CPU to start loading net's parameters into cache (no effect on results). A
 * caller stepping many streams in turn prefetches the next stream's network while it
 * steps the current one, so the step reads weights from cache rather than waiting on
 * memory.
 */
void ad_net_prefetch(const ad_net *net);

/* What a network holds (ad_net_set_storage, ad_net_storage). */
enum ad_net_storage {
    AD_NET_FP32 = 0,      /* the float parameters only */
    AD_NET_FP16 = 1,      /* the float parameters (masters) and the fp16 block steps read */
    AD_NET_FP16_ONLY = 2, /* the fp16 block only: about half the bytes of the floats */
    AD_NET_INT8 = 3,      /* the float parameters (masters) and the int8 block steps read */
    AD_NET_INT8_ONLY = 4  /* the int8 block only: about a third of the bytes of the floats */
};

/*
 * Packed inference weights. The packed block holds the layers' weight matrices as IEEE
 * binary16 (fp16, half.h) or as int8 with one float scale per row (quant.h), and
 * ad_net_step reads those instead of the floats: half or a quarter of the bytes per
 * weight, the math still float. Biases, the kind's extra vectors and the head stay float
 * (in the block, next to the weights, so a step reads one block). The prediction moves by
 * about 1e-3 relative with fp16 (weights rounded to 11 significant bits) and by about
 * 3e-3 with int8 (each weight within 1/254 of its row's largest); measured in
 * tests/check_kernels.c and tests/check_quant.c, docs/MODELS.md.
 *  - AD_NET_FP16 and AD_NET_INT8 keep the float parameters as masters beside the block
 *    (allocating the block if needed, else refreshing it from the floats): training and
 *    everything else (ad_seq_*, checkpoints, clones) use the floats.
 *  - AD_NET_FP16_ONLY and AD_NET_INT8_ONLY pack the floats into the block and free them.
 *    Steps (ad_net_step, ad_net_step_batch) are bit-identical to the masters' mode's on
 *    the same block. ad_seq_forward refuses them (NULL) and ad_seq_backward does nothing:
 *    train a clone (float, widened from the block) and ad_net_copy_params it back
 *    (packed again). Widening then packing gives back the same block, bit for bit (fp16:
 *    every half is a float; int8: quant.h's scales make q * scale exact); packing newly
 *    trained floats rounds them (fp16: by at most 2^-11 relative; int8: by at most 1/254
 *    of the row's largest magnitude), so each training of a packed-only network starts
 *    from its last weights so rounded.
 *  - AD_NET_FP32 frees the block (a packed-only network's floats are its block widened).
 * Switching between fp16 and int8 packs the floats (widened from the old block if there
 * are no masters). Setting the mode a network is in already does nothing (with masters:
 * a refresh). Returns 0, -AD_EINVAL for an unknown mode, or -AD_ENOMEM (the network is
 * then unchanged).
 */
int ad_net_set_storage(ad_net *net, int mode);

/* What net holds (enum ad_net_storage): nonzero if it steps with packed weights. */
int ad_net_storage(const ad_net *net);

/*
 * Re-derives the packed block from the float parameters (nothing to do without one, or
 * without floats). Call it after writing net->params directly (an optimiser step, a load
 * into params) and before the next ad_net_step; ad_net_init and ad_net_copy_params do it
 * themselves.
 */
void ad_net_refresh(ad_net *net);

/* Allocates a zeroed state for streams of this network. NULL on allocation failure. */
ad_state *ad_state_create(const ad_net *net);
void ad_state_reset(ad_state *st);
void ad_state_free(ad_state *st);
size_t ad_state_bytes(const ad_state *st);

/*
 * Advances one stream by one sample: x (D) in, st updated, y (O) out.
 * O(parameters), no allocation, no shared scratch (safe to call on different states of
 * one network from different threads).
 * Kernels: the fused SIMD step of kern.h for the CPU (float, fp16 or int8 weights). With
 * the reference product kernel selected (ad_blas_set_reference(1)) it runs the plain C
 * reference ad_cell_step instead, bit-identical to the sequence forward (packed networks:
 * kern.h's portable C kernel).
 */
void ad_net_step(const ad_net *net, ad_state *st, const float *x, float *y);

/* The leading bytes of the network's struct that ad_net_step reads (what a caller
 * prefetching a step fetches; the weights are elsewhere: the packed block, or params). */
size_t ad_net_step_bytes(const ad_net *net);

/* ---- batched steps: many streams through one network ---- */

/* Batches smaller than this step state by state (ad_net_step) by default: below it the
 * fused per-stream kernel beats the products' call overhead (docs/BENCHMARKS.md,
 * "Batched family steps"). */
#define AD_NET_BATCH_GEMM_MIN 4

/*
 * Scratch of ad_net_step_batch, owned by the caller. Start it zeroed; it grows (the only
 * allocation) to the largest batch and network it has served and keeps that size, so a
 * steady stream of batches allocates nothing. ad_net_batch_free releases it.
 */
typedef struct ad_net_batch {
    float *buf;   /* (cap) */
    size_t cap;   /* floats in buf */
    int gemm_min; /* smallest n stepped by products, 0 = AD_NET_BATCH_GEMM_MIN (tests and
                     benchmarks set 1 to force the products, INT_MAX to never use them) */
} ad_net_batch;

void ad_net_batch_free(ad_net_batch *ws);

/*
 * Advances n streams of one network by one sample each, what n calls of ad_net_step
 * would do: X (n, D) row-major in (stream i's input at X + i*D), st[i] stream i's state
 * (n distinct states of this network), Y (n, O) row-major out. No shared state but ws.
 * From ws's gemm_min streams on, each layer runs as matrix-matrix products over the n
 * streams: the states' h (and inputs) gathered into one (Din + H, n) matrix, the gate
 * pre-activations of all n as [Wx | Wh] times it (blas.h), the gate equations per
 * stream, the new h and c scattered back; the head per stream (kern.h). Packed networks
 * step on their block widened to float in ws, once per layer per call (the same weight
 * values as ad_net_step; int8: q * scale, which the fused step applies to each row's sum
 * instead, the same to float rounding).
 * Results agree with ad_net_step to float rounding (bit for bit with the reference
 * product kernel and float weights; tests/check_net.c). When ws cannot grow (out of
 * memory) the streams step one by one: the call cannot fail.
 */
void ad_net_step_batch(const ad_net *net, ad_state *const *st, const float *X, float *Y, int n,
                       ad_net_batch *ws);

/* ---- sequences: truncated BPTT over B windows of T steps ---- */

typedef struct ad_seq ad_seq; /* workspace: activations cached for backward, gradients */

/* Allocates a workspace for net's shape and up to T steps of B windows. */
int ad_seq_create(const ad_net *net, int T, int B, ad_seq **out, char *err, size_t errlen);
void ad_seq_free(ad_seq *ws);
size_t ad_seq_bytes(const ad_seq *ws);

/*
 * Runs the network over B windows of T steps (T and B at most the workspace's), each
 * starting from a zero state. x is time-major: (D, B) blocks for t = 0..T-1, i.e. element
 * (d, b, t) at x[d + D*(b + B*t)]. Returns the outputs, laid out the same way with O
 * rows: (O, B, T). The pointer stays valid until the next forward on ws.
 */
const float *ad_seq_forward(const ad_net *net, ad_seq *ws, const float *x, int T, int B);

/*
 * Backward pass for the last forward: dy (O, B, T) is dLoss/dy. ADDS the parameter
 * gradients into ws's gradient buffer (zero it with ad_seq_zero_grad). If dx is not NULL
 * it is overwritten with dLoss/dx (D, B, T).
 */
void ad_seq_backward(const ad_net *net, ad_seq *ws, const float *dy, float *dx);

/*
 * Initial and final states of a batch of windows (for an encoder handing its state to a
 * decoder): a state batch is (H, B, layers), element (j, b, l) at [j + H*(b + B*l)], so
 * each layer's (H, B) block is contiguous. c batches are for the LSTM kinds only; other
 * kinds ignore them.
 */

/*
 * As ad_seq_forward, but window b starts from the state (h0, c0)[:, b, :] instead of
 * zero. h0 and c0 are state batches as above, copied (they need not outlive the call);
 * either may be NULL for a zero start. ad_seq_forward(...) is
 * ad_seq_forward_init(..., NULL, NULL).
 */
const float *ad_seq_forward_init(const ad_net *net, ad_seq *ws, const float *x, int T, int B,
                                 const float *h0, const float *c0);

/*
 * As ad_seq_backward, with the windows' two ends in play:
 *  - dy may be NULL: no gradient arrives through the head (its gradients stay as they
 *    are), only through dhT/dcT;
 *  - dhT, dcT (state batches): dLoss/d(final h), dLoss/d(final c) of every layer, from a
 *    consumer of the final state (NULL = 0);
 *  - dh0, dc0 (state batches): if not NULL, overwritten with dLoss/dh0, dLoss/dc0, the
 *    gradient w.r.t. the initial state of the last forward (dc0 untouched without c).
 * ad_seq_backward(net, ws, dy, dx) is ad_seq_backward_init(net, ws, dy, dx, NULL x4).
 */
void ad_seq_backward_init(const ad_net *net, ad_seq *ws, const float *dy, float *dx,
                          const float *dhT, const float *dcT, float *dh0, float *dc0);

/*
 * As ad_seq_backward_init, and if dhs is not NULL it also gets the gradient reaching every
 * layer's hidden state at every step: dhs (H, B, T, layers), element (j, b, t, l) at
 * [j + H*(b + B*(t + T*l))], is dLoss/dh_t of layer l in window b, the whole of it: from
 * the head (top layer) or the layer above at step t, plus from step t+1 through the
 * recurrence (and dhT at t = T-1). For the LSTM kinds c_t is held fixed: its own gradient
 * is not in it. Its decay with the distance from the loss is the vanishing (or
 * exploding) gradient (gradflow.h). ad_seq_backward_init(...) is
 * ad_seq_backward_dh(..., NULL).
 */
void ad_seq_backward_dh(const ad_net *net, ad_seq *ws, const float *dy, float *dx,
                        const float *dhT, const float *dcT, float *dh0, float *dc0, float *dhs);

/* Final states of all B windows of the last forward into state batches h and c (c only
 * for LSTM kinds; may be NULL). */
void ad_seq_final_states(const ad_seq *ws, float *h, float *c);

/* The flat gradient buffer (nparams floats, laid out like net->params). */
float *ad_seq_grad(ad_seq *ws);
void ad_seq_zero_grad(ad_seq *ws);

/* Final state of window b after the last forward, copied into st (as if stepped). */
void ad_seq_final_state(const ad_seq *ws, int b, ad_state *st);

/*
 * Mean squared error of y against target (both (O, B, T), n = O*B*T values) and, if dy
 * is not NULL, its gradient 2*(y - target)/n. Returns the loss.
 */
float ad_mse(const float *y, const float *target, size_t n, float *dy);

#endif
