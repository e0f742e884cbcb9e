/*
 * half.h - IEEE 754 binary16 ("fp16") storage for float32 math: portable conversions.
 *
 * The models library can keep a read-only fp16 copy of a network's weights for the
 * streaming step (net.h, ad_net_set_storage): half the bytes to move per step, the
 * arithmetic still in float. The fast step kernels (kern.h) widen fp16 with the CPU's
 * F16C/AVX-512 instructions; these functions are the portable C equivalents and round
 * exactly as those instructions do (round to nearest, ties to even; overflow to
 * infinity; subnormals kept; NaN stays NaN), which tests/check_kernels.c checks
 * against the hardware on all 65536 halves and a sweep of floats.
 */
#ifndef AD_HALF_H
#define AD_HALF_H

#include <stddef.h>
#include <stdint.h>

/* Nearest binary16 of f (ties to even); beyond 65504 + half an ulp gives infinity. */
uint16_t ad_half_from_float(float f);

/* The float equal to binary16 h (exact: every half is a float). */
float ad_half_to_float(uint16_t h);

/* Bulk versions over n values. */
void ad_half_from_floats(uint16_t *dst, const float *src, size_t n);
void ad_half_to_floats(float *dst, const uint16_t *src, size_t n);

#endif
