/*
 * refnet.h - the tests' independent double-precision reference of the recurrent networks,
 * and the finite-difference checking helpers that compare the library against it.
 *
 * The reference is written from the equations in cell.h (every kind, its gate order and
 * extra vector) and the parameter layout in net.h, in double precision with libm's exp
 * and tanh. It calls none of the library's kernels and keeps its own table of each kind's
 * gate count, extra size and cell state, so a mistake in the library cannot be copied
 * into it. Parameters are read from a flat double buffer th at the offsets of a ref_net:
 * per layer Wx (G*H, Din), Wh (G*H, H), b (G*H), extra; head Wy (O, H), by (O); all
 * column-major. The caller fills the offsets, from net.h's description (ref_net_describe)
 * or from the library's own views (ad_net_views), and writes the sequence loop that its
 * model needs out of ref_net_step.
 *
 * Gradients are checked by central finite differences of the reference loss (ref_fd),
 * per tensor, under one rule (ref_compare):
 *
 *     |g - g_fd| <= REF_GRAD_RTOL * max(REF_GRAD_FLOOR, max over the tensor of |g_fd|)
 *
 * The step REF_GRAD_EPS = 1e-5: truncation (EPS^2/6 |L'''| ~ 1e-11) and rounding
 * (1e-16 |L| / EPS ~ 1e-11) are far below float resolution, so the differences serve as
 * the exact gradient. The library's gradients are float32; their error is rounding
 * spread over the terms of each sum, so it scales with the largest gradient of the same
 * tensor, not with each (possibly cancelling) element. REF_GRAD_RTOL = 2e-5 is about 170
 * float ulps of the tensor's scale; REF_GRAD_FLOOR = 1e-4 only keeps a tensor whose
 * gradient is all but zero from demanding precision below float resolution. The suites
 * that use these (check_grad.c, check_seq2seq.c) say what they measured against them.
 *
 * Errors are the models library's codes (net.h), negated. For tests only (library
 * ad_testutil).
 */
#ifndef AD_REFNET_H
#define AD_REFNET_H

#include <stddef.h>

#include "cell.h" /* ad_cell_kind */
#include "net.h"  /* AD_MAX_LAYERS, enum ad_err */
#include "rng.h"  /* ad_rng */

#define REF_GRAD_EPS   1e-5 /* central-difference step */
#define REF_GRAD_RTOL  2e-5 /* allowed error, relative to the tensor's scale */
#define REF_GRAD_FLOOR 1e-4 /* least tensor scale */

#define REF_MAX_HIDDEN  16                      /* largest H the reference steps */
#define REF_MAX_TENSORS (4 * AD_MAX_LAYERS + 2) /* tensors of one network */

/* ---- the cell kinds, as cell.h documents them ---- */

/* Gates G of kind (cell.h's table); 0 for an unknown kind. */
int ref_cell_gates(ad_cell_kind kind);

/* Floats in a layer's extra vector for hidden size H (PEEPHOLE 3H, GRU_TORCH H, else 0);
 * 0 for an unknown kind. */
size_t ref_cell_extra(ad_cell_kind kind, int H);

/* 1 if kind has a cell state c (LSTM, PEEPHOLE, CIFG), else 0. */
int ref_cell_has_c(ad_cell_kind kind);

/*
 * One step of one layer, straight from cell.h: wx (G*H, Din), wh (G*H, H), b (G*H), ex
 * the extra vector (ref_cell_extra floats; may be NULL when that is 0); x (Din) in; h, c
 * (H) the state, updated in place (c only for the kinds that have one; it may be scratch
 * for the others). The largest |pre-activation| seen is folded into *amax. Returns 0, or
 * -AD_EINVAL for an unknown kind, G other than ref_cell_gates(kind), or H outside
 * 1..REF_MAX_HIDDEN (h, c left unchanged).
 */
int ref_cell(ad_cell_kind kind, int G, int Din, int H, const double *wx, const double *wh,
             const double *b, const double *ex, const double *x, double *h, double *c,
             double *amax);

/* ---- a network in a flat parameter buffer ---- */

/* Where one network's tensors sit in the flat buffer, in floats from its start. */
typedef struct ref_net {
    ad_cell_kind kind;
    int layers;                                  /* 1..AD_MAX_LAYERS */
    int input, hidden, output;                   /* D, H (<= REF_MAX_HIDDEN), O */
    int G;                                       /* gates per kind */
    size_t nex;                                  /* floats in each layer's extra */
    size_t wx[AD_MAX_LAYERS], wh[AD_MAX_LAYERS]; /* (G*H, Din), (G*H, H) */
    size_t b[AD_MAX_LAYERS], ex[AD_MAX_LAYERS];  /* (G*H), (nex) */
    size_t wy, by;                               /* (O, H), (O) */
    size_t n;                                    /* floats of this network */
} ref_net;

/*
 * Fills rn from net.h's description alone: layer by layer Wx, Wh, b, extra, then Wy, by,
 * packed from offset base (a network stored after another starts at the other's end).
 * G and nex come from the tables above, not from the library. Returns 0, or -AD_EINVAL
 * (rn zeroed) for an unknown kind, layers outside 1..AD_MAX_LAYERS, H outside
 * 1..REF_MAX_HIDDEN, or D or O below 1.
 */
int ref_net_describe(ad_cell_kind kind, int layers, int D, int H, int O, size_t base, ref_net *rn);

/*
 * One time step of the network: every layer in turn (layer 0 fed x (D), layer l > 0 fed
 * layer l-1's new h), then, if y is not NULL, the head's O outputs y = Wy h + by of the
 * last layer. th the flat parameters; h, c (H * layers) the state, layer l at [l*H],
 * updated in place; *amax as for ref_cell. Returns 0, or ref_cell's error (the state then
 * partly stepped).
 */
int ref_net_step(const ref_net *rn, const double *th, const double *x, double *h, double *c,
                 double *y, double *amax);

/* One named tensor of a network, for reporting. */
typedef struct ref_tensor {
    char name[40]; /* "encoder layer 0 Wx" */
    size_t off, n; /* offset in the flat buffer, floats */
} ref_tensor;

/* Lists rn's tensors in buffer order into ts (room for REF_MAX_TENSORS), each name
 * prefixed by who and a space unless who is NULL. Returns how many. */
int ref_net_tensors(const ref_net *rn, const char *who, ref_tensor *ts);

/* ---- data ---- */

/* v (n) uniform in [-scale, scale] from r. */
void ref_fill_uniform(ad_rng *r, float *v, size_t n, double scale);

/* v (n) standard normal from r. */
void ref_fill_normal(ad_rng *r, float *v, size_t n);

/* ---- finite differences and the comparison ---- */

/* A loss of everything ctx points at, in double. */
typedef double (*ref_loss_fn)(void *ctx);

/* The central difference (loss(v[i] + EPS) - loss(v[i] - EPS)) / (2 EPS), EPS =
 * REF_GRAD_EPS, of loss(ctx) w.r.t. v[i], where v is something loss reads through ctx.
 * v[i] is restored exactly. */
double ref_fd(ref_loss_fn loss, void *ctx, double *v, size_t i);

/* The scale a tensor's errors are measured against: max(REF_GRAD_FLOOR, max |fd|) over
 * fd (n). */
double ref_tensor_scale(const double *fd, size_t n);

/*
 * Compares the analytic gradient g (n, n >= 1) with the finite differences fd (n) under
 * the rule at the top (a NaN is out of tolerance). Returns the number of elements out of
 * tolerance; *worst gets the largest err/scale, and msg (msglen) a line naming what, the
 * count and the worst element.
 */
int ref_compare(const char *what, const float *g, const double *fd, size_t n, double *worst,
                char *msg, size_t msglen);

/* 1 if the environment variable AD_CHECK_VERBOSE is set and not "0": the suites then print
 * what they measured. */
int ref_verbose(void);

/*
 * A tally of ref_compare over the tensors of one check. ref_tally_add prints each tensor's
 * line to stderr as "<label>: <message>" when it is out of tolerance or ref_verbose(), and
 * keeps the first bad one's message; the caller asserts nbad == 0 and reports first.
 */
typedef struct ref_tally {
    char label[128]; /* "<kind> <layers> layers (<mode>)" */
    int nbad;        /* tensors with an element out of tolerance */
    double worst;    /* largest err/scale so far (0 before any) */
    char first[512]; /* the first bad tensor's message, or "" */
} ref_tally;

/* Starts an empty tally labelled "<kname> <layers> layers (<mode>)". */
void ref_tally_init(ref_tally *t, const char *kname, int layers, const char *mode);

/* ref_compare of one tensor into t; returns its elements out of tolerance. */
int ref_tally_add(ref_tally *t, const char *what, const float *g, const double *fd, size_t n);

/* If ref_verbose(), prints "<label>: worst err/scale <worst>" to stderr. */
void ref_tally_report(const ref_tally *t);

/* The largest |y - yd| / max(1, |yd|) over y (n) against the reference yd (n), and its
 * index into *wi (0 if none exceeds 0). A NaN anywhere is returned as NaN (with its index),
 * so a comparison against a tolerance fails on it. */
double ref_worst_rel(const float *y, const double *yd, size_t n, size_t *wi);

#endif /* AD_REFNET_H */
