/*
 * act.h - cheap, accurate activations: exp, sigmoid and tanh in float.
 *
 * libm's expf and tanhf took about 70% of a naive LSTM step, so the library uses these
 * instead: a Cephes-style exp (range reduction by ln 2, degree-6 polynomial, exponent
 * built from bits) and a tanh that uses an odd polynomial near 0 and 1 - 2/(e^{2x}+1)
 * elsewhere. Relative error against double-precision libm is below 2e-7 wherever the
 * result is a normal float (tests/check_act.c measures it); tanh saturates to exactly
 * +-1 and sigmoid to 1. Branch-free, so loops over arrays
 * vectorise. Both the streaming step and the sequence kernels use exactly these.
 */
#ifndef AD_ACT_H
#define AD_ACT_H

#include <stdint.h>
#include <string.h>

/*
 * e^x for any float x: exact to ~1e-7 relative on [-87.3, 88.72]; below -87.3 it returns
 * e^-87.3 (about 1.2e-38, the bottom of the normal range), above 88.72 about 3.4e38.
 * NaN gives NaN. No undefined behaviour for any input (the exponent is read from bits).
 */
static inline __attribute__((always_inline)) float ad_expf(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.72f ? 88.72f : x;
    /* n = round(x / ln2) via the 1.5*2^23 trick (SSE2-friendly, no floorf); the integer n
     * sits in the low mantissa bits of t */
    const float magic = 12582912.0f;
    float t = x * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = x - n * 0.693359375f; /* ln2 split in two for an exact product */
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    /* scale by 2^n, n in [-126, 128], in two halves to stay in the normal range */
    uint32_t tb;
    memcpy(&tb, &t, sizeof(tb));
    int32_t ni = (int32_t)(tb - 0x4B400000u);
    int32_t n1 = ni >> 1, n2 = ni - n1;
    uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, sizeof(s1));
    memcpy(&s2, &b2, sizeof(s2));
    return y * s1 * s2;
}

static inline __attribute__((always_inline)) float ad_sigmoidf(float x)
{
    return 1.0f / (1.0f + ad_expf(-x));
}

static inline __attribute__((always_inline)) float ad_tanhf(float x)
{
    float ax = x < 0.0f ? -x : x;
    /* odd polynomial for |x| < 0.625 (Cephes tanhf) */
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    /* past |x| = 10, 1 - 2/(e^20 + 1) rounds to exactly 1 */
    float e = ad_expf(2.0f * (ax > 10.0f ? 10.0f : ax));
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0.0f ? -big : big;
    return ax < 0.625f ? small : big;
}

/* In-place over n floats. */
void ad_sigmoid_v(float *x, int n);
void ad_tanh_v(float *x, int n);

#endif
