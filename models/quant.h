/*
 * quant.h - int8 storage of weight matrices for float32 math: per-row symmetric
 * quantisation, portable C.
 *
 * The models library can keep a network's weight matrices as int8 with one float scale
 * per row (net.h, ad_net_set_storage, AD_NET_INT8_ONLY): a quarter of the float bytes to
 * move per step, the arithmetic still in float (kern.h's kernels sign-extend and convert
 * the bytes, accumulate q*v in float and multiply the sum by the row's scale at the end).
 *
 * A row r of an (R, C) column-major matrix W (element (r, c) at [r + c*R]) is stored as
 * scale[r] and q[r + c*R] with W[r, c] ~ q * scale[r]:
 *   scale[r] = max_c |W[r, c]| / 127, rounded toward zero to 17 significant bits
 *   q        = round(W[r, c] / scale[r]) (ties away from zero), in [-127, 127]
 * (a row of zeros: scale 0 and q 0). Each weight moves by at most half its row's step,
 * scale[r] / 2 (plus the 2^-17 relative of the scale's rounding): 1/254 of the row's
 * largest magnitude.
 *
 * Why 17 significant bits: then every q * scale (|q| <= 127, 7 bits) is exact in float,
 * so dequantising is exact, and quantising a dequantised row gives back the same scale
 * and bytes: quantise(dequantise(q, s)) == (q, s), bit for bit (tests/check_quant.c).
 * Training widens a network's int8 weights to floats and installing the result
 * quantises them again; saved blobs hold the dequantised floats; a load quantises them
 * back to exactly what was saved.
 *
 * Non-finite weights: a row holding an infinity or NaN gets that as its scale and q 0,
 * so it dequantises to NaN (never to a finite value that would hide it).
 */
#ifndef AD_QUANT_H
#define AD_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* The scale of a row whose largest magnitude is amax (amax >= 0, or not finite). */
float ad_quant_scale(float amax);

/* q (R*C) and scale (R) from the (R, C) column-major floats w, as above. */
void ad_quant_rows(int8_t *q, float *scale, const float *w, size_t R, size_t C);

/*
 * dst (n) = elements [first, first + n) of the dequantised (R, C) column-major matrix
 * (q, scale): element i is q[i] * scale[i % R], exact. Any range (ad_net_get_params reads
 * pieces of the flat parameter vector).
 */
void ad_quant_get(float *dst, const int8_t *q, const float *scale, size_t R, size_t first,
                  size_t n);

#endif
