/*
 * cell.h - the recurrent cell kinds: their equations, gate layout and per-layer kernels.
 *
 * Notation: x is the layer input (Din), h and c the previous state (H), a = Wx x + Wh h + b
 * the gate pre-activations (G*H, gates stacked in the order listed), s = sigmoid.
 *
 *  ELMAN     G=1        h = tanh(a)
 *  LSTM      G=4 i,f,g,o    i,f,o = s(a), g = tanh(a); c = f*c + i*g; h = o*tanh(c)
 *                            (gate order and equations as PyTorch's nn.LSTM)
 *  PEEPHOLE  G=4 i,f,g,o    i = s(a_i + p_i*c_prev), f = s(a_f + p_f*c_prev),
 *                            c = f*c_prev + i*g, o = s(a_o + p_o*c); extra p (3H: i,f,o)
 *  CIFG      G=3 f,g,o      coupled input-forget: c = f*c_prev + (1-f)*g; h = o*tanh(c)
 *  GRU       G=3 r,z,n      the course notes' form (the default):
 *                            r,z = s(a); n = tanh(Wxn x + Whn (r*h) + b_n);
 *                            h = (1-z)*h + z*n
 *  GRU_TORCH G=3 r,z,n      PyTorch's nn.GRU form: n = tanh(Wxn x + b_n + r*(Whn h + b_hn)),
 *                            h = (1-z)*n + z*h; extra b_hn (H)
 *
 * Mind z: the course GRU keeps (1-z)*h of the old state, GRU_TORCH keeps z*h.
 * The LSTM kinds have a cell state c and start with forget-gate bias 1.
 */
#ifndef AD_CELL_H
#define AD_CELL_H

#include <stddef.h>
#include <stdint.h>

#define AD_MAX_HIDDEN 512 /* largest hidden size H */

typedef enum ad_cell_kind {
    AD_CELL_ELMAN = 0,
    AD_CELL_LSTM = 1,
    AD_CELL_PEEPHOLE = 2,
    AD_CELL_CIFG = 3,
    AD_CELL_GRU = 4,
    AD_CELL_GRU_TORCH = 5,
    AD_CELL_NKINDS = 6
} ad_cell_kind;

/* Number of stacked gates G of a kind (0 for an unknown kind). */
int ad_cell_gates(ad_cell_kind kind);

/* Whether the kind carries a cell state c (the LSTM kinds). */
int ad_cell_has_c(ad_cell_kind kind);

/* Floats in the kind's extra parameter vector for hidden size H (peepholes, b_hn). */
size_t ad_cell_extra_size(ad_cell_kind kind, int H);

/* Index of the gate whose bias starts at 1 (the forget gate), or -1. */
int ad_cell_forget_gate(ad_cell_kind kind);

/* Stable lower-case name ("lstm", "gru_torch", ...); NULL for an unknown kind. */
const char *ad_cell_name(ad_cell_kind kind);

/* Kind for a name as returned by ad_cell_name; -1 if unknown. */
int ad_cell_from_name(const char *name);

/* The kind's code in blobs (serial.h's network blob, the detector's configuration): fixed
 * by cell.c's table, never by the enum's order, so reordering the enum renumbers nothing
 * stored (tests/check_serial.c pins them). UINT32_MAX for an unknown kind. */
uint32_t ad_cell_code(ad_cell_kind kind);

/* Kind of a stored code; -1 if no kind has it. */
int ad_cell_from_code(uint32_t code);

/* One layer's views into a flat parameter (or gradient) buffer (net.h lays it out). */
typedef struct ad_layer_params {
    float *wx;    /* (G*H, Din) column-major */
    float *wh;    /* (G*H, H) column-major */
    float *b;     /* (G*H) */
    float *extra; /* kind's extra vector (ad_cell_extra_size), or NULL */
} ad_layer_params;

/* ---- layer kernels (used by net.c; the fused step kernels of a later stage replace
 * ad_cell_step without touching its callers) ---- */

/*
 * One streaming step of one layer: x (Din) in, h (H) and c (H, LSTM kinds; else unused)
 * updated in place. No allocation.
 */
void ad_cell_step(ad_cell_kind kind, int Din, int H, const ad_layer_params *p, const float *x,
                  float *h, float *c);

/*
 * One streaming step of one layer for n streams at once (net.h's ad_net_step_batch):
 * xh (Din + H, n) holds each stream's input x above its h_{t-1}, cp (H, n) its c_{t-1}
 * (LSTM kinds, else unused); the new h (H, n) and c (H, n, LSTM kinds) are written to h
 * and c (no aliasing with the inputs); a (G*H, n) and aux (H, n) are scratch. The gate
 * pre-activations of all n streams are matrix-matrix products (blas.h) adding their terms
 * in ad_cell_step's order (bias, Wx columns, Wh columns), so with the reference product
 * kernel the results are ad_cell_step's bit for bit. No allocation.
 */
void ad_cell_step_batch(ad_cell_kind kind, int Din, int H, int n, const ad_layer_params *p,
                        const float *xh, const float *cp, float *a, float *aux, float *h, float *c);

/*
 * What one layer's sequence forward keeps for its backward. Columns are ordered
 * (b, t): column b + B*t. Gates are gate-major: gate g's (H, B*T) block starts at
 * gates + g*H*B*T, so a time step's (H, B) slice of one gate is contiguous.
 * Allocated by the caller (net.c) for the workspace's T and B.
 */
typedef struct ad_cell_cache {
    float *gates; /* (G, H, B*T) activated gates, gate-major */
    float *h;     /* (H, B*(T+1)) h_{-1} (initial state, default 0), then h_0 .. h_{T-1} */
    float *c;     /* (H, B*(T+1)) c_{-1} (likewise), then c_t (LSTM kinds) */
    float *tc;    /* (H, B*T) tanh(c_t) (LSTM kinds) */
    float *aux;   /* (H, B*T) GRU: r*h_{t-1}; GRU_TORCH: Whn h_{t-1} + b_hn */
} ad_cell_cache;

/* Scratch for a layer's backward, sized for the workspace's T and B. */
typedef struct ad_cell_scratch {
    float *dax; /* (G*H, B*T) dLoss/d(pre-activations) through Wx and b, gates stacked */
    float *dah; /* (G*H, B*T) dLoss/d(recurrent products), GRU_TORCH only */
    float *dh;  /* (H, B) */
    float *dhn; /* (H, B) gradient flowing to h_{t-1} */
    float *dc;  /* (H, B) */
    float *tmp; /* (H, B) */
    float *dhs; /* (H, B*T) or NULL: if set, the backward records dLoss/dh_t of every step
                 * here (net.h's ad_seq_backward_dh); the caller owns it */
} ad_cell_scratch;

/* Forward over B windows of T steps from zero state: x (Din, B*T) in, cache filled. */
void ad_cell_seq_forward(ad_cell_kind kind, int Din, int H, int T, int B, const ad_layer_params *p,
                         const float *x, ad_cell_cache *cc);

/*
 * As ad_cell_seq_forward, but each window starts from a given state: h0 (H, B) is
 * h_{-1}, c0 (H, B) is c_{-1} (LSTM kinds; ignored by the others). NULL means zero.
 * Both are copied into the cache, so they need not outlive the call.
 */
void ad_cell_seq_forward_init(ad_cell_kind kind, int Din, int H, int T, int B,
                              const ad_layer_params *p, const float *x, const float *h0,
                              const float *c0, ad_cell_cache *cc);

/*
 * Backward of the last forward. dhout (H, B*T) is dLoss/dh_t from above (read only).
 * ADDS parameter gradients into g; writes dLoss/dx (Din, B*T) into dx unless NULL.
 * If s->dhs is set, column b + B*t of it gets dLoss/dh_t: the gradient from above at t
 * plus the one from step t+1 (c_t held fixed for the LSTM kinds), i.e. what BPTT carries
 * back to h_t.
 */
void ad_cell_seq_backward(ad_cell_kind kind, int Din, int H, int T, int B, const ad_layer_params *p,
                          ad_layer_params *g, const float *x, const ad_cell_cache *cc,
                          const float *dhout, float *dx, ad_cell_scratch *s);

/*
 * As ad_cell_seq_backward, with the window's two ends in play (for a forward started by
 * ad_cell_seq_forward_init, or not):
 *  - dhT, dcT (H, B): dLoss/dh_{T-1} and dLoss/dc_{T-1} arriving from beyond the window
 *    (a later consumer of the final state), added to what comes from dhout; NULL = 0.
 *    dcT is ignored by kinds without c.
 *  - dh0, dc0 (H, B): if not NULL, overwritten with dLoss/dh_{-1} and dLoss/dc_{-1}, the
 *    gradient w.r.t. the initial state. dc0 is left untouched by kinds without c.
 */
void ad_cell_seq_backward_init(ad_cell_kind kind, int Din, int H, int T, int B,
                               const ad_layer_params *p, ad_layer_params *g, const float *x,
                               const ad_cell_cache *cc, const float *dhout, float *dx,
                               ad_cell_scratch *s, const float *dhT, const float *dcT, float *dh0,
                               float *dc0);

#endif
