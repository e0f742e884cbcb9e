/*
 * half.c - binary16 <-> float32 in portable C (bit manipulation, no FPU modes touched).
 */
#include "half.h"

#include <string.h>

uint16_t ad_half_from_float(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    const uint32_t ax = x & 0x7FFFFFFFu;

    if (ax >= 0x7F800000u) /* infinity, or NaN (kept quiet, payload's top bits kept) */
        return (uint16_t)(sign | (ax > 0x7F800000u ? 0x7E00u | ((ax >> 13) & 0x3FFu) : 0x7C00u));
    if (ax >= 0x477FF000u) /* >= 65520 = 65504 + half an ulp: rounds to infinity */
        return (uint16_t)(sign | 0x7C00u);
    if (ax < 0x38800000u) { /* below 2^-14: a subnormal half (or zero) */
        if (ax < 0x33000000u) /* below 2^-25: rounds to zero (2^-25 itself is a tie to 0) */
            return sign;
        /* value = m * 2^(e-150) with the implicit bit; half subnormal unit is 2^-24 */
        const uint32_t e = ax >> 23, m = (ax & 0x7FFFFFu) | 0x800000u;
        const uint32_t shift = 126 - e; /* 14..24: m >> (shift) is the count of 2^-24 */
        uint32_t q = m >> shift;
        const uint32_t rem = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias the exponent, round the mantissa from 23 to 10 bits (a carry into
     * the exponent is the right answer, up to 65504 -> ok since 65520+ was caught above) */
    uint32_t h = ((ax >> 13) - ((127 - 15) << 10));
    const uint32_t rem = ax & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++;
    return (uint16_t)(sign | h);
}

float ad_half_to_float(uint16_t hv)
{
    const uint32_t sign = (uint32_t)(hv & 0x8000u) << 16;
    const uint32_t e = (hv >> 10) & 0x1Fu, m = hv & 0x3FFu;
    uint32_t x;
    float f;

    if (e == 0x1F) {
        x = sign | 0x7F800000u | (m << 13); /* infinity or NaN */
    } else if (e != 0) {
        x = sign | ((e + 127 - 15) << 23) | (m << 13);
    } else if (m == 0) {
        x = sign;
    } else { /* subnormal half: m * 2^-24, normal as a float */
        int sh = 0;
        uint32_t mm = m;
        while (!(mm & 0x400u)) {
            mm <<= 1;
            sh++;
        }
        x = sign | ((uint32_t)(127 - 14 - sh) << 23) | ((mm & 0x3FFu) << 13);
    }
    memcpy(&f, &x, sizeof(f));
    return f;
}

void ad_half_from_floats(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ad_half_from_float(src[i]);
}

void ad_half_to_floats(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = ad_half_to_float(src[i]);
}
