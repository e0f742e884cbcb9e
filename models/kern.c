/*
 * kern.c - the fused step kernels (kern.h) for each instruction set, and the dispatch.
 *
 * The kernels' body is kern_impl.h, written over a small vector vocabulary; this file
 * defines that vocabulary three times (AVX-512 intrinsics, AVX2 intrinsics, plain C with
 * one float per "vector") and includes the body after each. The SIMD versions carry
 * target attributes, so the library builds without -march flags and the CPU is asked at
 * run time (ad_kern_best_isa).
 *
 * Vocabulary notes: vmin(a, b) and vmax(a, b) return a when either is NaN (so NaN
 * propagates through the clamps, as in act.h); vsel(m, a, b) is m ? b : a per lane;
 * tmask(n) selects the first n lanes; vscale(y, t, n) is y * 2^n; vloadh(p) widens VW
 * halves, vloadq(p) sign-extends and converts VW int8 values (both read VW elements).
 */
#include "kern.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(AD_NO_SIMD)
#define AD_KERN_X86 1
#include <cpuid.h>
#include <immintrin.h>
#endif

/* ================= portable C: VW = 1 ================= */

#define SFX(n)  n##_c
#define AINL    static inline __attribute__((always_inline))
#define KFN     static
#define V       float
#define VW      1
#define TM      int
#define VM      int
#define vset1(f)          (f)
#define vloadu(p)         (*(p))
#define vstoreu(p, v)     (*(p) = (v))
#define vloadm(p, m)      ((m) ? *(p) : 0.0f)
#define vstorem(p, m, v)  ((m) ? (void)(*(p) = (v)) : (void)0)
#define tmask(n)          ((n) > 0)
#define vadd(a, b)        ((a) + (b))
#define vsub(a, b)        ((a) - (b))
#define vmul(a, b)        ((a) * (b))
#define vrcp(a)           (1.0f / (a))
#define vfma(a, b, c)     ((a) * (b) + (c))
#define vmin(a, b)        ((b) < (a) ? (b) : (a))
#define vmax(a, b)        ((b) > (a) ? (b) : (a))
#define vabs(a)           ((a) < 0.0f ? -(a) : (a))
#define vlt(a, b)         ((a) < (b))
#define vsel(m, a, b)     ((m) ? (b) : (a))
#define vloadh(p)         ad_half_to_float(*(p))
#define vloadq(p)         ((float)*(p))
#define vscale(y, t, n)   scale_c(y, t)
#define vhsum(a)          (a)
#define MV_SPLIT_NB       8

#include "half.h"

/* y * 2^n where t holds n in its low mantissa bits (act.h's ad_expf) */
static inline float scale_c(float y, float t)
{
    uint32_t tb, b1, b2;
    float s1, s2;
    memcpy(&tb, &t, sizeof(tb));
    int32_t ni = (int32_t)(tb - 0x4B400000u), n1 = ni >> 1, n2 = ni - n1;
    b1 = (uint32_t)(n1 + 127) << 23;
    b2 = (uint32_t)(n2 + 127) << 23;
    memcpy(&s1, &b1, sizeof(s1));
    memcpy(&s2, &b2, sizeof(s2));
    return y * s1 * s2;
}

#include "kern_impl.h" /* undefines the vocabulary at its end */

#ifdef AD_KERN_X86

/* ================= AVX2 + FMA + F16C: VW = 8 ================= */

#define AD_T2   __attribute__((target("avx2,fma,f16c")))
#define SFX(n)  n##_avx2
#define AINL    static inline __attribute__((always_inline)) AD_T2
#define KFN     static AD_T2
#define V       __m256
#define VW      8
#define TM      __m256i
#define VM      __m256
#define vset1(f)          _mm256_set1_ps(f)
#define vloadu(p)         _mm256_loadu_ps(p)
#define vstoreu(p, v)     _mm256_storeu_ps(p, v)
#define vloadm(p, m)      _mm256_maskload_ps(p, m)
#define vstorem(p, m, v)  _mm256_maskstore_ps(p, m, v)
#define tmask(n)          _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define vadd(a, b)        _mm256_add_ps(a, b)
#define vsub(a, b)        _mm256_sub_ps(a, b)
#define vmul(a, b)        _mm256_mul_ps(a, b)
#define vrcp(a)           rcp_avx2(a)
#define vfma(a, b, c)     _mm256_fmadd_ps(a, b, c)
#define vmin(a, b)        _mm256_min_ps(b, a)
#define vmax(a, b)        _mm256_max_ps(b, a)
#define vabs(a)           _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a)
#define vlt(a, b)         _mm256_cmp_ps(a, b, _CMP_LT_OQ)
#define vsel(m, a, b)     _mm256_blendv_ps(a, b, m)
#define vloadh(p)         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define vloadq(p)         _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(p))))
#define vscale(y, t, n)   scale_avx2(y, t)
#define vhsum(a)          hsum_avx2(a)
#define MV_SPLIT_NB       4

AINL float hsum_avx2(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 1/d: a division (the 12-bit estimate with one Newton step misses 1/1 = 1 and
 * 1/2 = 0.5 by an ulp, so sigmoid would not saturate to exactly 1) */
AINL __m256 rcp_avx2(__m256 d)
{
    return _mm256_div_ps(_mm256_set1_ps(1.0f), d);
}

AINL __m256 scale_avx2(__m256 y, __m256 t)
{
    const __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4B400000));
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
}

#include "kern_impl.h" /* undefines the vocabulary at its end */

/* ================= AVX-512F (+ FMA, F16C): VW = 16 ================= */

#define AD_T5   __attribute__((target("avx512f,avx2,fma,f16c")))
#define SFX(n)  n##_avx512
#define AINL    static inline __attribute__((always_inline)) AD_T5
#define KFN     static AD_T5
#define V       __m512
#define VW      16
#define TM      __mmask16
#define VM      __mmask16
#define vset1(f)          _mm512_set1_ps(f)
#define vloadu(p)         _mm512_loadu_ps(p)
#define vstoreu(p, v)     _mm512_storeu_ps(p, v)
#define vloadm(p, m)      _mm512_maskz_loadu_ps(m, p)
#define vstorem(p, m, v)  _mm512_mask_storeu_ps(p, m, v)
#define tmask(n)          ((__mmask16)((1u << (n)) - 1u))
#define vadd(a, b)        _mm512_add_ps(a, b)
#define vsub(a, b)        _mm512_sub_ps(a, b)
#define vmul(a, b)        _mm512_mul_ps(a, b)
#define vrcp(a)           rcp_avx512(a)
#define vfma(a, b, c)     _mm512_fmadd_ps(a, b, c)
#define vmin(a, b)        _mm512_min_ps(b, a)
#define vmax(a, b)        _mm512_max_ps(b, a)
#define vabs(a)           _mm512_abs_ps(a)
#define vlt(a, b)         _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ)
#define vsel(m, a, b)     _mm512_mask_blend_ps(m, a, b)
#define vloadh(p)         _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define vloadq(p)         _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define vscale(y, t, n)   _mm512_scalef_ps(y, n)
#define vhsum(a)          _mm512_reduce_add_ps(a)
#define MV_SPLIT_NB       8

/* 1/d: the 14-bit estimate and one Newton step (about 1 ulp; results below 2^-126 are
 * flushed to 0, where the activations' outputs are below 1e-38 anyway) */
AINL __m512 rcp_avx512(__m512 d)
{
    const __m512 r = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}

#include "kern_impl.h" /* undefines the vocabulary at its end */
#endif /* AD_KERN_X86 */

/* ================= dispatch ================= */

int ad_kern_isa_supported(ad_isa isa)
{
    switch (isa) {
    case AD_ISA_C:
        return 1;
#ifdef AD_KERN_X86
    case AD_ISA_AVX2: {
        unsigned a, b, c, d;
        /* F16C is CPUID.1:ECX bit 29 (every AVX2 CPU has it; asked anyway) */
        if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 29)))
            return 0;
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    case AD_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && ad_kern_isa_supported(AD_ISA_AVX2);
#else
    case AD_ISA_AVX2: /* not built here */
    case AD_ISA_AVX512:
#endif
    case AD_ISA_N:
        break;
    }
    return 0;
}

ad_isa ad_kern_best_isa(void)
{
#ifdef AD_KERN_X86
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
        return AD_ISA_AVX512; /* AVX512F implies F16C and AVX2 on every CPU that has it */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return AD_ISA_AVX2;
#endif
    return AD_ISA_C;
}

const char *ad_wtype_name(int wt)
{
    static const char *const names[AD_W_N] = {"float32", "float16", "int8"};
    return wt >= 0 && wt < AD_W_N ? names[wt] : NULL;
}

int ad_wtype_from_name(const char *name)
{
    for (int wt = 0; wt < AD_W_N; wt++)
        if (!strcmp(name, ad_wtype_name(wt)))
            return wt;
    return -1;
}

const char *ad_kern_isa_name(ad_isa isa)
{
    static const char *const names[AD_ISA_N] = {"c", "avx2", "avx512"};
    return (int)isa >= 0 && isa < AD_ISA_N ? names[isa] : NULL;
}

void ad_kern_step(ad_isa isa, ad_cell_kind kind, int Din, int H, const ad_kern_layer *L,
                  const float *x, float *h, float *c)
{
    switch (isa) {
#ifdef AD_KERN_X86
    case AD_ISA_AVX512:
        step_avx512(kind, Din, H, L, x, h, c);
        return;
    case AD_ISA_AVX2:
        step_avx2(kind, Din, H, L, x, h, c);
        return;
#else
    case AD_ISA_AVX512: /* not built here: the portable kernel */
    case AD_ISA_AVX2:
#endif
    case AD_ISA_C:
    case AD_ISA_N:
        break;
    }
    step_c(kind, Din, H, L, x, h, c);
}

void ad_kern_gates(ad_isa isa, ad_cell_kind kind, int H, int n, const float *extra, const float *a,
                   float *h, float *c)
{
    switch (isa) {
#ifdef AD_KERN_X86
    case AD_ISA_AVX512:
        gates_n_avx512(kind, H, n, extra, a, h, c);
        return;
    case AD_ISA_AVX2:
        gates_n_avx2(kind, H, n, extra, a, h, c);
        return;
#else
    case AD_ISA_AVX512: /* not built here: the portable kernel */
    case AD_ISA_AVX2:
#endif
    case AD_ISA_C:
    case AD_ISA_N:
        break;
    }
    gates_n_c(kind, H, n, extra, a, h, c);
}

void ad_kern_widen(ad_isa isa, float *dst, const uint16_t *src, size_t n)
{
    switch (isa) {
#ifdef AD_KERN_X86
    case AD_ISA_AVX512:
        widen_avx512(dst, src, n);
        return;
    case AD_ISA_AVX2:
        widen_avx2(dst, src, n);
        return;
#else
    case AD_ISA_AVX512: /* not built here: the portable kernel */
    case AD_ISA_AVX2:
#endif
    case AD_ISA_C:
    case AD_ISA_N:
        break;
    }
    widen_c(dst, src, n);
}

void ad_kern_head(ad_isa isa, int O, int H, const float *wy, const float *by, const float *h,
                  float *y)
{
    switch (isa) {
#ifdef AD_KERN_X86
    case AD_ISA_AVX512:
        head_avx512(O, H, wy, by, h, y);
        return;
    case AD_ISA_AVX2:
        head_avx2(O, H, wy, by, h, y);
        return;
#else
    case AD_ISA_AVX512: /* not built here: the portable kernel */
    case AD_ISA_AVX2:
#endif
    case AD_ISA_C:
    case AD_ISA_N:
        break;
    }
    head_c(O, H, wy, by, h, y);
}

void ad_kern_sigmoid(ad_isa isa, float *x, int n)
{
    switch (isa) {
#ifdef AD_KERN_X86
    case AD_ISA_AVX512:
        sigmoid_v_avx512(x, n);
        return;
    case AD_ISA_AVX2:
        sigmoid_v_avx2(x, n);
        return;
#else
    case AD_ISA_AVX512: /* not built here: the portable kernel */
    case AD_ISA_AVX2:
#endif
    case AD_ISA_C:
    case AD_ISA_N:
        break;
    }
    sigmoid_v_c(x, n);
}

void ad_kern_tanh(ad_isa isa, float *x, int n)
{
    switch (isa) {
#ifdef AD_KERN_X86
    case AD_ISA_AVX512:
        tanh_v_avx512(x, n);
        return;
    case AD_ISA_AVX2:
        tanh_v_avx2(x, n);
        return;
#else
    case AD_ISA_AVX512: /* not built here: the portable kernel */
    case AD_ISA_AVX2:
#endif
    case AD_ISA_C:
    case AD_ISA_N:
        break;
    }
    tanh_v_c(x, n);
}
