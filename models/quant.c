/*
 * quant.c - per-row symmetric int8 quantisation of column-major matrices (quant.h).
 */
#include "quant.h"

#include <math.h>
#include <string.h>

float ad_quant_scale(float amax)
{
    float s = amax / 127.0f;
    uint32_t b;

    if (!isfinite(s))
        return amax; /* an infinity or NaN: passed on */
    memcpy(&b, &s, sizeof(b));
    b &= ~(uint32_t)0x7Fu; /* 17 significant bits: q * s exact for |q| <= 127 */
    memcpy(&s, &b, sizeof(s));
    return s;
}

/* round(w / s) in [-127, 127]; 0 for s = 0, a non-finite s or a NaN quotient. */
static int8_t quantise(float w, float s)
{
    float r;

    if (!(s > 0.0f) || !isfinite(s))
        return 0;
    r = roundf(w / s);
    if (r > 127.0f)
        return 127;
    if (r < -127.0f)
        return -127;
    return r == r ? (int8_t)r : 0;
}

void ad_quant_rows(int8_t *q, float *scale, const float *w, size_t R, size_t C)
{
    for (size_t r = 0; r < R; r++) {
        float amax = 0.0f;
        for (size_t c = 0; c < C; c++) {
            const float a = fabsf(w[r + c * R]);
            if (a > amax || a != a) /* a NaN wins and stays */
                amax = a;
        }
        scale[r] = ad_quant_scale(amax);
    }
    for (size_t c = 0; c < C; c++)
        for (size_t r = 0; r < R; r++)
            q[r + c * R] = quantise(w[r + c * R], scale[r]);
}

void ad_quant_get(float *dst, const int8_t *q, const float *scale, size_t R, size_t first, size_t n)
{
    size_t r = R ? first % R : 0;

    for (size_t i = 0; i < n; i++) {
        const float s = scale[r];
        /* a non-finite scale gives NaN even where q is 0 (0 * inf) */
        dst[i] = isfinite(s) ? (float)q[first + i] * s : s - s;
        if (++r == R)
            r = 0;
    }
}
