/*
 * kern.h - the fused streaming step kernels: one layer, one sample, every cell kind.
 *
 * One pass over the layer's weights for all gates (the pre-activations of all G*H rows
 * accumulate in vector registers while the weight columns stream by), then the gate
 * equations of cell.h with vectorised activations, in registers, to the new h and c.
 * Each kernel is compiled for AVX-512 (AVX512F, with FMA and the fp16 conversions),
 * AVX2 (with FMA and F16C) and portable C; the caller picks one per call, normally
 * ad_kern_best_isa() (runtime dispatch: one binary runs on any x86-64, and elsewhere
 * the C version is built alone).
 *
 * The weights are read as float, as IEEE binary16 ("fp16", half.h) widened to float on
 * the fly, or as int8 with one float scale per row (quant.h): the bytes sign-extended and
 * converted to float, q*v accumulated in float, the row's scale applied to the sum at the
 * end (out = init + scale * acc, so a product over any subset of the columns is right).
 * The math is float every way.
 *
 * Accuracy: the SIMD activations are act.h's formulas (same polynomials and range
 * reduction) evaluated with fused multiply-adds, within 1e-6 relative of double libm
 * (tests/check_act.c). The products use fused multiply-adds too, so a step agrees with
 * the plain reference ad_cell_step to float rounding, not bit for bit (tests/check_kernels.c
 * cross-checks them); net.h's reference mode uses the plain kernel where bits matter.
 */
#ifndef AD_KERN_H
#define AD_KERN_H

#include <stddef.h>
#include <stdint.h>

#include "cell.h"

/* The instruction sets a kernel is compiled for. */
typedef enum ad_isa {
    AD_ISA_C = 0,      /* portable C */
    AD_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C (x86-64-v3) */
    AD_ISA_AVX512 = 2, /* AVX512F + FMA + F16C */
    AD_ISA_N = 3
} ad_isa;

/* Whether this CPU (and OS) runs isa's kernels; AD_ISA_C always. */
int ad_kern_isa_supported(ad_isa isa);

/* The fastest supported isa. Cheap (a few loads): callers may ask on every step. */
ad_isa ad_kern_best_isa(void);

/* "avx512", "avx2" or "c"; NULL for an unknown value. */
const char *ad_kern_isa_name(ad_isa isa);

/* How a weight matrix is stored. */
typedef enum ad_wtype {
    AD_W_F32 = 0, /* float */
    AD_W_F16 = 1, /* IEEE binary16 (half.h) */
    AD_W_I8 = 2,  /* int8, one float scale per row (quant.h) */
    AD_W_N = 3
} ad_wtype;

/* "float32", "float16" or "int8" (the daemon's `weights` values); NULL for an unknown
 * value. */
const char *ad_wtype_name(int wt);
/* The ad_wtype of such a name, or -1. */
int ad_wtype_from_name(const char *name);

/* Elements a fp16 or int8 weight matrix must have readable after its last column (the
 * kernels load whole vectors of halves or bytes and discard the lanes past a row
 * range). */
#define AD_KERN_HALF_SLACK 16
#define AD_KERN_I8_SLACK   16

/*
 * One layer's parameters as the fused step reads them. The weights are the one matrix
 * [Wx | Wh] (G*H, Din + H), column-major with column stride ld >= G*H (net.h's flat
 * layout is exactly this with ld = G*H: Wh follows Wx).
 */
typedef struct ad_kern_layer {
    const void *w;      /* (ld, Din + H) floats, halves or int8 by wt */
    int ld;             /* column stride, in elements */
    ad_wtype wt;        /* how w is stored; AD_W_F16 and AD_W_I8 have AD_KERN_HALF_SLACK
                         * or AD_KERN_I8_SLACK more elements readable after it */
    const float *scale; /* (G*H) the rows' scales (AD_W_I8: row r is q * scale[r]), or NULL */
    const float *b;     /* (G*H) */
    const float *extra; /* the kind's extra vector (cell.h), or NULL */
} ad_kern_layer;

/*
 * One streaming step of one layer with isa's kernel (which must be supported): x (Din)
 * in, h (H) and c (H, LSTM kinds; else unused) updated in place, as ad_cell_step.
 * Din <= AD_MAX_HIDDEN. No allocation, no shared state.
 */
void ad_kern_step(ad_isa isa, ad_cell_kind kind, int Din, int H, const ad_kern_layer *L,
                  const float *x, float *h, float *c);

/*
 * The gate equations of Elman and the LSTM kinds (not the GRU kinds) for n streams whose
 * pre-activations are already made (net.h's ad_net_step_batch makes them as one
 * matrix-matrix product): column j of a (G*H, n) is stream j's, gates stacked as cell.h;
 * h (H, n) out; c (H, n) c_{t-1} in, c_t out (LSTM kinds; NULL for Elman); extra the
 * peepholes (PEEPHOLE), else unused. The same per-stream code as ad_kern_step's.
 */
void ad_kern_gates(ad_isa isa, ad_cell_kind kind, int H, int n, const float *extra, const float *a,
                   float *h, float *c);

/* The linear head y (O) = by (O) + Wy (O, H, column-major) h (H) with isa's kernel
 * (sums reassociated: agrees with the ordered reference loop to float rounding). */
void ad_kern_head(ad_isa isa, int O, int H, const float *wy, const float *by, const float *h,
                  float *y);

/* dst (n) = the binary16 values src (n) widened to float (exact), with isa's conversion
 * instructions: ad_half_to_floats, fast. */
void ad_kern_widen(ad_isa isa, float *dst, const uint16_t *src, size_t n);

/* isa's vectorised activations in place over n floats (for tests and benchmarks). */
void ad_kern_sigmoid(ad_isa isa, float *x, int n);
void ad_kern_tanh(ad_isa isa, float *x, int n);

#endif
