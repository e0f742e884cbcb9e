/*
 * check_kernels.c - the fused step kernels (kern.h) against the plain reference step
 * (cell.h's ad_cell_step), for every instruction set this CPU runs, every cell kind, 1
 * and 2 layers, hidden sizes that are and are not multiples of 8 and 16, on float, fp16
 * and int8 weights (the latter two against the reference stepping the same weights
 * widened); the fp16 conversions (half.h) against the CPU's F16C instructions; and fp16
 * networks (net.h's ad_net_set_storage): the prediction's distance from the float
 * network, and the copy's life cycle (refresh on install, clone, free); fp16-only
 * networks (no float masters): the same steps bit for bit, their bytes, and their floats
 * derived from the halves. int8 networks: tests/check_quant.c. Measured worst errors go
 * to stderr.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "half.h"
#include "kern.h"
#include "net.h"
#include "quant.h"
#include "rng.h"
#include "serial.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_X86 1
#endif

/*
 * Fused against reference, same weights: |fused - ref| <= KERN_TOL * max(1, |ref|) for
 * every h, c and output over STEPS steps. Why 1e-5: the fused kernel forms each
 * pre-activation with fused multiply-adds in another order (two column sets, no rounding
 * of the products), each sum of at most Din + H + 1 terms then differs by a few ulps of
 * its largest terms (~1e-7 relative to the sum's scale, which is O(1) here); the SIMD
 * activations are act.h's formulas with FMAs and a Newton reciprocal, within 2e-7
 * relative of act.h's; with weights at 3x PyTorch's scale (gates saturating, the
 * recurrence amplifying) the steps carry that over 30 steps. Measured worst: about 1e-6
 * (printed). A dropped term or a wrong gate is 1e-2 or more.
 */
#define KERN_TOL 1e-5
#define STEPS    30

static const int hidden_sizes[] = {1, 5, 8, 16, 17, 32, 33, 40};
#define NH ((int)(sizeof(hidden_sizes) / sizeof(hidden_sizes[0])))

static ad_net *mknet(ad_cell_kind kind, int layers, int D, int H, int O, uint64_t seed)
{
    ad_net_config cfg = {.kind = kind, .layers = layers, .input = D, .hidden = H, .output = O};
    ad_net *net = NULL;
    char err[256] = "";
    ck_assert_msg(ad_net_create(&cfg, seed, &net, err, sizeof(err)) == 0, "%s", err);
    return net;
}

static void gain(ad_net *net, float g)
{
    for (size_t i = 0; i < net->nparams; i++)
        net->params[i] *= g;
    ad_net_refresh(net);
}

static double worst_seen;

static void close_enough(const char *what, int step, int i, float got, float want)
{
    const double d = fabs((double)got - want), scale = fmax(1.0, fabs(want));
    if (d / scale > worst_seen)
        worst_seen = d / scale;
    ck_assert_msg(d <= KERN_TOL * scale, "%s: step %d value %d: fused %.9g, reference %.9g",
                  what, step, i, (double)got, (double)want);
}

/*
 * Steps ref (float weights, plain reference) and fused (isa; weights stored as wt, with
 * ref holding the same values widened: rounded to fp16, or int8 dequantised) through the
 * same inputs from the same random state; compares every layer's h and c and the head's
 * output at each step.
 */
static void cross_check(ad_isa isa, ad_cell_kind kind, int layers, int D, int H, ad_wtype wt)
{
    static const int mode[AD_W_N] = {AD_NET_FP32, AD_NET_FP16, AD_NET_INT8};
    const int packed = wt != AD_W_F32;
    const int O = 2;
    ad_net *net = mknet(kind, layers, D, H, O, 7 + (uint64_t)H);
    ad_net *ref = NULL;
    ad_state *sr, *sf;
    float x[8], yr[AD_MAX_OUTPUT], yf[AD_MAX_OUTPUT];
    char what[160];
    ad_rng r;

    gain(net, 3.0f);
    ck_assert_int_eq(ad_net_set_storage(net, mode[wt]), 0);
    ref = ad_net_clone(net);
    ck_assert_ptr_nonnull(ref);
    /* the reference sees exactly the values the packed kernel widens: the layers' weight
     * matrices rounded to fp16, or quantised and dequantised (biases, extras and the head
     * stay float) */
    for (int l = 0; packed && l < layers; l++) {
        const size_t GH = (size_t)ad_cell_gates(kind) * H, n = GH * ((l == 0 ? D : H) + H);
        float *w = ref->p.layer[l].wx; /* [Wx | Wh], one run */
        if (wt == AD_W_I8) {
            int8_t *q = malloc(n);
            float *sc = malloc(GH * sizeof(*sc));
            ck_assert(q && sc);
            ad_quant_rows(q, sc, w, GH, n / GH);
            ad_quant_get(w, q, sc, GH, 0, n);
            free(q);
            free(sc);
        } else {
            for (size_t i = 0; i < n; i++)
                w[i] = ad_half_to_float(ad_half_from_float(w[i]));
        }
    }
    sr = ad_state_create(ref);
    sf = ad_state_create(net);
    ck_assert(sr && sf);
    ad_rng_seed(&r, 11 + (uint64_t)H);
    for (int i = 0; i < layers * H; i++) {
        sr->h[i] = sf->h[i] = 0.5f * ad_rng_normal(&r);
        if (sr->c)
            sr->c[i] = sf->c[i] = ad_rng_normal(&r);
    }
    snprintf(what, sizeof(what), "%s %s %d layers D=%d H=%d %s", ad_kern_isa_name(isa),
             ad_cell_name(kind), layers, D, H, ad_wtype_name(wt));
    for (int t = 0; t < STEPS; t++) {
        const float *in_r = x, *in_f = x;
        for (int d = 0; d < D; d++)
            x[d] = 1.5f * ad_rng_normal(&r);
        for (int l = 0; l < layers; l++) {
            const int din = l == 0 ? D : H, GH = ad_cell_gates(kind) * H;
            const ad_layer_params *p = &net->p.layer[l];
            const ad_kern_layer Lf = {
                .w = p->wx, .ld = GH, .wt = AD_W_F32, .scale = NULL, .b = p->b, .extra = p->extra};
            float *hr = sr->h + (size_t)l * H, *hf = sf->h + (size_t)l * H;
            float *cr = sr->c ? sr->c + (size_t)l * H : NULL;
            float *cf = sf->c ? sf->c + (size_t)l * H : NULL;
            ad_cell_step(kind, din, H, &ref->p.layer[l], in_r, hr, cr);
            ad_kern_step(isa, kind, din, H, packed ? &net->pl[l] : &Lf, in_f, hf, cf);
            for (int i = 0; i < H; i++) {
                close_enough(what, t, i, hf[i], hr[i]);
                if (cr)
                    close_enough(what, t, H + i, cf[i], cr[i]);
            }
            /* carry on from the reference's state, so each step is checked on its own */
            memcpy(hf, hr, (size_t)H * sizeof(float));
            if (cr)
                memcpy(cf, cr, (size_t)H * sizeof(float));
            in_r = hr;
            in_f = hf;
        }
        memcpy(yr, ref->p.by, (size_t)O * sizeof(float));
        for (int k = 0; k < H; k++)
            for (int o = 0; o < O; o++)
                yr[o] += ref->p.wy[(size_t)k * O + o] * in_r[k];
        ad_kern_head(isa, O, H, packed ? net->pwy : net->p.wy, packed ? net->pby : net->p.by, in_f,
                     yf);
        for (int o = 0; o < O; o++)
            close_enough(what, t, -1 - o, yf[o], yr[o]);
    }
    ad_state_free(sr);
    ad_state_free(sf);
    ad_net_free(ref);
    ad_net_free(net);
}

/* loop index: kind */
START_TEST(test_fused_matches_reference)
{
    for (int isa = 0; isa < AD_ISA_N; isa++) {
        if (!ad_kern_isa_supported((ad_isa)isa))
            continue;
        worst_seen = 0.0;
        for (int layers = 1; layers <= 2; layers++)
            for (int j = 0; j < NH; j++)
                for (int D = 1; D <= 3; D += 2)
                    cross_check((ad_isa)isa, (ad_cell_kind)_i, layers, D, hidden_sizes[j],
                                AD_W_F32);
        fprintf(stderr, "%-9s %-6s float: worst |fused - reference| / max(1, |ref|) = %.3g\n",
                ad_cell_name((ad_cell_kind)_i), ad_kern_isa_name((ad_isa)isa), worst_seen);
    }
}
END_TEST

/* loop index: kind and packed type: fp16 for _i < AD_CELL_NKINDS, then int8 */
START_TEST(test_fused_packed_matches_reference)
{
    const ad_cell_kind kind = (ad_cell_kind)(_i % AD_CELL_NKINDS);
    const ad_wtype wt = _i < AD_CELL_NKINDS ? AD_W_F16 : AD_W_I8;
    for (int isa = 0; isa < AD_ISA_N; isa++) {
        if (!ad_kern_isa_supported((ad_isa)isa))
            continue;
        worst_seen = 0.0;
        for (int layers = 1; layers <= 2; layers++)
            for (int j = 0; j < NH; j++)
                for (int D = 1; D <= 3; D += 2)
                    cross_check((ad_isa)isa, kind, layers, D + (wt == AD_W_F16), hidden_sizes[j],
                                wt);
        fprintf(stderr, "%-9s %-6s %s: worst |fused - reference| / max(1, |ref|) = %.3g\n",
                ad_cell_name(kind), ad_kern_isa_name((ad_isa)isa), ad_wtype_name(wt), worst_seen);
    }
}
END_TEST

/* The O = 1 head (a dot product in two vector sums) against the ordered loop. */
START_TEST(test_head_dot)
{
    float w[70], h[70], y;
    ad_rng r;
    ad_rng_seed(&r, 5);
    for (int i = 0; i < 70; i++) {
        w[i] = ad_rng_normal(&r);
        h[i] = ad_rng_normal(&r);
    }
    for (int isa = 0; isa < AD_ISA_N; isa++) {
        if (!ad_kern_isa_supported((ad_isa)isa))
            continue;
        for (int H = 1; H <= 70; H++) {
            const float b = 0.25f;
            double want = b, mag = fabs(b);
            for (int k = 0; k < H; k++) {
                want += (double)w[k] * h[k];
                mag += fabs((double)w[k] * h[k]);
            }
            ad_kern_head((ad_isa)isa, 1, H, w, &b, h, &y);
            ck_assert_msg(fabs(y - want) <= 1e-6 * mag, "%s H=%d: %.9g, want %.9g",
                          ad_kern_isa_name((ad_isa)isa), H, (double)y, want);
        }
    }
}
END_TEST

/* ---- fp16 conversions ---- */

START_TEST(test_half_known_values)
{
    static const struct {
        float f;
        uint16_t h;
    } v[] = {
        {0.0f, 0x0000},       {-0.0f, 0x8000},        {1.0f, 0x3C00},     {-2.0f, 0xC000},
        {65504.0f, 0x7BFF},   {65519.99f, 0x7BFF},    {65520.0f, 0x7C00}, {1e6f, 0x7C00},
        {6.103515625e-05f, 0x0400} /* 2^-14 */,      {5.9604645e-08f, 0x0001} /* 2^-24 */,
        {2.98023224e-08f, 0x0000} /* 2^-25: tie to even */, {1.0009765625f, 0x3C01},
        {1.00048828125f, 0x3C00} /* tie to even */,  {1.00146484375f, 0x3C02} /* tie up */,
        {INFINITY, 0x7C00},   {-INFINITY, 0xFC00},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ck_assert_msg(ad_half_from_float(v[i].f) == v[i].h, "%.9g -> 0x%04x, want 0x%04x",
                      (double)v[i].f, ad_half_from_float(v[i].f), v[i].h);
    }
    ck_assert(isnan(ad_half_to_float(ad_half_from_float(NAN))));
    /* every finite half survives the round trip */
    for (uint32_t hv = 0; hv < 0x10000u; hv++) {
        if ((hv & 0x7C00u) == 0x7C00u)
            continue;
        ck_assert_uint_eq(ad_half_from_float(ad_half_to_float((uint16_t)hv)), hv);
    }
}
END_TEST

#ifdef HAVE_X86
__attribute__((target("f16c"))) static float hw_to_float(uint16_t h)
{
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_set1_epi16((short)h)));
}

__attribute__((target("f16c"))) static uint16_t hw_from_float(float f)
{
    return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set1_ps(f), _MM_FROUND_TO_NEAREST_INT),
                                       0);
}
#endif

/* The portable conversions round exactly as the F16C instructions the kernels use. */
START_TEST(test_half_matches_f16c)
{
#ifdef HAVE_X86
    if (!ad_kern_isa_supported(AD_ISA_AVX2))
        return;
    for (uint32_t hv = 0; hv < 0x10000u; hv++) {
        float a = ad_half_to_float((uint16_t)hv), b = hw_to_float((uint16_t)hv);
        ck_assert_msg(memcmp(&a, &b, sizeof(a)) == 0 || (isnan(a) && isnan(b)),
                      "half 0x%04x: %.9g vs F16C %.9g", hv, (double)a, (double)b);
    }
    /* every float bit pattern with a stride that visits all exponents and rounding cases */
    for (uint64_t u = 0; u < 0x100000000ull; u += 4093) {
        uint32_t bits = (uint32_t)u;
        float f;
        memcpy(&f, &bits, sizeof(f));
        uint16_t a = ad_half_from_float(f), b = hw_from_float(f);
        ck_assert_msg(a == b || (isnan(f) && (a & 0x7C00u) == 0x7C00u && (a & 0x3FFu)),
                      "float 0x%08x (%.9g): 0x%04x vs F16C 0x%04x", bits, (double)f, a, b);
    }
    /* and every float near the half grid's rounding boundaries of [2^-25, 65520] */
    for (uint32_t hv = 0; hv < 0x7C00u; hv++) {
        float lo = ad_half_to_float((uint16_t)hv), hi = ad_half_to_float((uint16_t)(hv + 1));
        float mid = 0.5f * (lo + hi);
        const float probes[] = {mid, nextafterf(mid, 0.0f), nextafterf(mid, INFINITY)};
        for (int i = 0; i < 3; i++)
            ck_assert_uint_eq(ad_half_from_float(probes[i]), hw_from_float(probes[i]));
    }
#endif
}
END_TEST

/* ---- fp16 networks ---- */

/*
 * The fp16 network's prediction against the float one's, over a 200-step stream: the
 * weights move by at most 2^-11 relative (round to nearest, 11 significant bits); each
 * output is a sum over a few dozen products through one or two layers, so the prediction
 * moves by about 1e-3 relative to its scale (measured: printed). Asserted: 1e-2 of the
 * output's scale over the run, for every kind.
 */
START_TEST(test_fp16_prediction_close)
{
    const int T = 200;
    for (int k = 0; k < AD_CELL_NKINDS; k++) {
        for (int layers = 1; layers <= 2; layers++) {
            ad_net *a = mknet((ad_cell_kind)k, layers, 1, 32, 1, 3);
            ad_net *b = ad_net_clone(a);
            ad_state *sa = ad_state_create(a), *sb = ad_state_create(b);
            double scale = 0.0, worst = 0.0;
            float x = 0.0f, ya, yb;
            ck_assert(b && sa && sb);
            ck_assert_int_eq(ad_net_set_storage(b, AD_NET_FP16), 0);
            ck_assert(ad_net_storage(b) && !ad_net_storage(a));
            for (int t = 0; t < T; t++) {
                x = sinf(0.1f * (float)t) + 0.3f * sinf(0.37f * (float)t);
                ad_net_step(a, sa, &x, &ya);
                ad_net_step(b, sb, &x, &yb);
                scale = fmax(scale, fabs(ya));
                worst = fmax(worst, fabs((double)ya - yb));
            }
            fprintf(stderr, "%-9s %d layers H=32: fp16 vs float prediction %.3g of scale %.3g\n",
                    ad_cell_name((ad_cell_kind)k), layers, worst / scale, scale);
            ck_assert_msg(worst <= 1e-2 * scale, "%s: fp16 off by %.3g of %.3g",
                          ad_cell_name((ad_cell_kind)k), worst, scale);
            ck_assert_msg(worst > 0.0, "fp16 weights changed nothing: not used?");
            ad_state_free(sa);
            ad_state_free(sb);
            ad_net_free(a);
            ad_net_free(b);
        }
    }
}
END_TEST

/* Installing weights (ad_net_copy_params) refreshes the copy; ad_net_init too; a clone
 * is float only; off frees; the byte count follows. */
START_TEST(test_fp16_life_cycle)
{
    ad_net *a = mknet(AD_CELL_LSTM, 2, 1, 32, 1, 1), *b = mknet(AD_CELL_LSTM, 2, 1, 32, 1, 2);
    ad_net *c;
    const size_t bytes = ad_net_bytes(a);
    ad_state *s1 = ad_state_create(a), *s2 = ad_state_create(a);
    float x = 0.5f, y1, y2;

    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16), 0);
    ck_assert_uint_gt(ad_net_bytes(a), bytes);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16), 0); /* again: a refresh, no leak */
    ck_assert_int_eq(ad_net_copy_params(a, b), 0);
    /* a now steps b's weights (in fp16): same as a fresh fp16 copy of b */
    c = ad_net_clone(b);
    ck_assert(!ad_net_storage(c));
    ck_assert_int_eq(ad_net_set_storage(c, AD_NET_FP16), 0);
    ad_net_step(a, s1, &x, &y1);
    ad_net_step(c, s2, &x, &y2);
    ck_assert_mem_eq(&y1, &y2, sizeof(y1));
    ck_assert_mem_eq(a->pl[1].w, c->pl[1].w, (size_t)128 * 64 * 2);
    /* re-initialising refreshes too */
    ad_net_init(a, 2);
    ad_state_reset(s1);
    ad_state_reset(s2);
    ad_net_step(a, s1, &x, &y1);
    ad_net_step(c, s2, &x, &y2);
    ck_assert_mem_eq(&y1, &y2, sizeof(y1));
    /* a clone of an fp16 network is float only */
    ad_net *d = ad_net_clone(a);
    ck_assert(d && !ad_net_storage(d));
    ck_assert_uint_eq(ad_net_bytes(d), bytes);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP32), 0);
    ck_assert(!ad_net_storage(a) && a->pack == NULL);
    ck_assert_uint_eq(ad_net_bytes(a), bytes);
    ad_state_free(s1);
    ad_state_free(s2);
    ad_net_free(a);
    ad_net_free(b);
    ad_net_free(c);
    ad_net_free(d);
}
END_TEST

/* Reference mode (ad_blas_set_reference(1)) steps fp16 networks with the portable C
 * kernel: the same results as calling it directly. */
START_TEST(test_fp16_reference_mode)
{
    ad_net *a = mknet(AD_CELL_GRU_TORCH, 1, 1, 20, 1, 4);
    ad_state *st = ad_state_create(a);
    float x = 0.3f, y, h[20];
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16), 0);
    ad_blas_set_reference(1);
    ad_net_step(a, st, &x, &y);
    ad_blas_set_reference(0);
    memset(h, 0, sizeof(h));
    ad_kern_step(AD_ISA_C, AD_CELL_GRU_TORCH, 1, 20, &a->pl[0], &x, h, NULL);
    ck_assert_mem_eq(h, st->h, sizeof(h));
    ad_state_free(st);
    ad_net_free(a);
}
END_TEST

/* ---- networks holding only their packed block (AD_NET_FP16_ONLY, AD_NET_INT8_ONLY) ---- */

/* Steps (one stream, and a batch of streams with and without the products) on the packed
 * block alone (storage `only`: fp16 or int8) are bit-identical to the same network
 * stepping the same block with its float masters beside it (storage `with`); reference
 * mode too. */
static void packed_only_steps_identical(ad_cell_kind kind, int with, int only)
{
    for (int layers = 1; layers <= 2; layers++) {
        for (int ref = 0; ref < 2; ref++) {
            ad_net *a = mknet(kind, layers, 3, 17, 2, 11), *b = ad_net_clone(a);
            ad_state *sa[5], *sb[5];
            ad_net_batch wa = {0}, wb = {0};
            float x[15], ya[10], yb[10];

            ck_assert_ptr_nonnull(b);
            ck_assert_int_eq(ad_net_set_storage(a, with), 0);
            ck_assert_int_eq(ad_net_set_storage(b, only), 0);
            ck_assert_int_eq(ad_net_storage(a), with);
            ck_assert_int_eq(ad_net_storage(b), only);
            ck_assert_ptr_null(b->params);
            ck_assert_uint_eq(a->pack_bytes, b->pack_bytes);
            ck_assert_mem_eq(a->pack, b->pack, a->pack_bytes);
            for (int j = 0; j < 5; j++) {
                sa[j] = ad_state_create(a);
                sb[j] = ad_state_create(b);
            }
            wa.gemm_min = wb.gemm_min = 1;
            ad_blas_set_reference(ref);
            for (int t = 0; t < 20; t++) {
                for (int i = 0; i < 15; i++)
                    x[i] = sinf(0.3f * (float)(t + i)) + 0.1f * (float)i;
                ad_net_step(a, sa[0], x, ya);
                ad_net_step(b, sb[0], x, yb);
                ck_assert_mem_eq(ya, yb, 2 * sizeof(float));
                if (t == 10) /* from here on, the last four by the defaults */
                    wa.gemm_min = wb.gemm_min = 0;
                ad_net_step_batch(a, sa + 1, x, ya, 4, &wa);
                ad_net_step_batch(b, sb + 1, x, yb, 4, &wb);
                ck_assert_mem_eq(ya, yb, 8 * sizeof(float));
                for (int j = 0; j < 5; j++)
                    ck_assert_mem_eq(sa[j]->h, sb[j]->h, (size_t)layers * 17 * sizeof(float));
            }
            ad_blas_set_reference(0);
            for (int j = 0; j < 5; j++) {
                ad_state_free(sa[j]);
                ad_state_free(sb[j]);
            }
            ad_net_batch_free(&wa);
            ad_net_batch_free(&wb);
            ad_net_free(a);
            ad_net_free(b);
        }
    }
}

/* _i: the cell kind */
START_TEST(test_fp16_only_steps_identical)
{
    packed_only_steps_identical((ad_cell_kind)_i, AD_NET_FP16, AD_NET_FP16_ONLY);
}
END_TEST

START_TEST(test_int8_only_steps_identical)
{
    packed_only_steps_identical((ad_cell_kind)_i, AD_NET_INT8, AD_NET_INT8_ONLY);
}
END_TEST

/* An fp16-only network's bytes: its halves and float parts, about half of the floats'. */
START_TEST(test_fp16_only_bytes)
{
    ad_net *a = mknet(AD_CELL_LSTM, 1, 1, 32, 1, 1);
    const size_t floats = a->nparams * sizeof(float), b32 = ad_net_bytes(a);

    ck_assert_uint_eq(b32, sizeof(*a) + floats);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16), 0);
    const size_t b16 = ad_net_bytes(a);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16_ONLY), 0);
    const size_t b16o = ad_net_bytes(a);
    fprintf(stderr, "LSTM H=32: fp32 %zu bytes, fp16 with masters %zu, fp16 only %zu\n", b32, b16,
            b16o);
    ck_assert_uint_eq(b16o, sizeof(*a) + a->pack_bytes);
    ck_assert_uint_le(a->pack_bytes, floats * 55 / 100);
    ck_assert_uint_ge(a->pack_bytes, floats / 2);
    ad_net_free(a);
}
END_TEST

/* Every float parameter of a network, widened if it is fp16 only. */
static float *all_params(const ad_net *n)
{
    float *p = malloc(n->nparams * sizeof(*p));
    ck_assert_ptr_nonnull(p);
    ad_net_get_params(n, 0, n->nparams, p);
    return p;
}

/*
 * The fp16-only life cycle: its floats (get, clone, off) are the masters with the weight
 * matrices rounded to halves and the rest exact; pieces of the vector agree with the
 * whole; on again gives the same halves; copy_params narrows into it and widens out of
 * it; init re-initialises it; a saved fp16-only network loads as its widened floats.
 */
START_TEST(test_fp16_only_life_cycle)
{
    ad_net *a = mknet(AD_CELL_PEEPHOLE, 2, 2, 9, 2, 5), *m = ad_net_clone(a), *c, *e;
    const size_t n = a->nparams;
    float *want = malloc(n * sizeof(*want)), *got;
    ad_params v;
    char err[256] = "";

    ck_assert(m && want);
    /* want: m's floats with [Wx | Wh] of each layer rounded to halves */
    memcpy(want, m->params, n * sizeof(*want));
    ad_net_views(&m->cfg, want, &v);
    for (int l = 0; l < 2; l++) {
        const size_t cnt = (size_t)ad_cell_gates(m->cfg.kind) * 9 * ((l ? 9 : 2) + 9);
        for (size_t i = 0; i < cnt; i++)
            v.layer[l].wx[i] = ad_half_to_float(ad_half_from_float(v.layer[l].wx[i]));
    }
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16_ONLY), 0);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16_ONLY), 0); /* again: nothing */
    got = all_params(a);
    ck_assert_mem_eq(got, want, n * sizeof(float));
    for (size_t off = 0; off < n; off += 7) { /* pieces straddling the runs */
        float piece[7] = {0};
        const size_t k = n - off < 7 ? n - off : 7;
        ad_net_get_params(a, off, 7, piece);
        ck_assert_mem_eq(piece, got + off, k * sizeof(float));
    }
    ck_assert(ad_net_params_finite(a));
    free(got);
    /* the clone: float, widened */
    c = ad_net_clone(a);
    ck_assert(c && c->params && !ad_net_storage(c));
    ck_assert_mem_eq(c->params, want, n * sizeof(float));
    /* save and load: the widened floats, the same blob as the clone's */
    size_t la = ad_net_blob_size(a, NULL), lc = ad_net_blob_size(c, NULL), len = 0;
    ck_assert_uint_eq(la, lc);
    uint8_t *ba = malloc(la), *bc = malloc(lc);
    ck_assert_int_eq(ad_net_save(a, NULL, ba, la, &len, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_net_save(c, NULL, bc, lc, &len, err, sizeof(err)), 0);
    ck_assert_mem_eq(ba, bc, la);
    e = NULL;
    ck_assert_msg(ad_net_load(ba, la, &a->cfg, &e, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_mem_eq(e->params, want, n * sizeof(float));
    free(ba);
    free(bc);
    /* off: the floats come back widened; on again: the same halves */
    void *halves = malloc(a->pack_bytes);
    const size_t hb = a->pack_bytes;
    memcpy(halves, a->pack, hb);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP32), 0);
    ck_assert(!ad_net_storage(a) && a->pack == NULL && a->params);
    ck_assert_mem_eq(a->params, want, n * sizeof(float));
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16_ONLY), 0);
    ck_assert_mem_eq(a->pack, halves, hb);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16), 0); /* masters back, halves kept */
    ck_assert_mem_eq(a->params, want, n * sizeof(float));
    ck_assert_mem_eq(a->pack, halves, hb);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_FP16_ONLY), 0);
    ck_assert_int_eq(ad_net_set_storage(a, AD_NET_INT8_ONLY + 1), -AD_EINVAL);
    ck_assert_int_eq(ad_net_set_storage(a, -1), -AD_EINVAL);
    /* install: m's floats narrowed into a; a fresh network's (other) into a, out again */
    ad_net *o = mknet(AD_CELL_PEEPHOLE, 2, 2, 9, 2, 6);
    ck_assert_int_eq(ad_net_copy_params(a, o), 0);
    ck_assert_int_eq(ad_net_copy_params(a, m), 0);
    ck_assert_mem_eq(a->pack, halves, hb);
    ck_assert_int_eq(ad_net_copy_params(o, a), 0); /* widened out */
    ck_assert_mem_eq(o->params, want, n * sizeof(float));
    ck_assert_int_eq(ad_net_set_storage(o, AD_NET_FP16_ONLY), 0);
    ck_assert_int_eq(ad_net_copy_params(o, a), 0); /* fp16 only to fp16 only */
    ck_assert_mem_eq(o->pack, halves, hb);
    /* init: as a float network initialised and narrowed */
    ad_net_init(a, 6);
    ad_net_free(c);
    c = mknet(AD_CELL_PEEPHOLE, 2, 2, 9, 2, 6);
    ck_assert_int_eq(ad_net_set_storage(c, AD_NET_FP16_ONLY), 0);
    ck_assert_mem_eq(a->pack, c->pack, hb);
    /* sequences refuse it */
    ad_seq *ws = NULL;
    float x[2 * 3] = {0};
    ck_assert_int_eq(ad_seq_create(a, 3, 1, &ws, err, sizeof(err)), 0);
    ck_assert_ptr_null(ad_seq_forward(a, ws, x, 3, 1));
    ad_seq_free(ws);
    free(halves);
    free(want);
    ad_net_free(a);
    ad_net_free(c);
    ad_net_free(e);
    ad_net_free(m);
    ad_net_free(o);
}
END_TEST

START_TEST(test_isa_table)
{
    ck_assert(ad_kern_isa_supported(AD_ISA_C));
    ck_assert(ad_kern_isa_supported(ad_kern_best_isa()));
    ck_assert_str_eq(ad_kern_isa_name(AD_ISA_C), "c");
    ck_assert_ptr_null(ad_kern_isa_name(AD_ISA_N));
    fprintf(stderr, "best isa on this CPU: %s\n", ad_kern_isa_name(ad_kern_best_isa()));
    /* the weight types' names, both ways */
    for (int wt = 0; wt < AD_W_N; wt++)
        ck_assert_int_eq(ad_wtype_from_name(ad_wtype_name(wt)), wt);
    ck_assert_ptr_null(ad_wtype_name(AD_W_N));
    ck_assert_int_eq(ad_wtype_from_name("fp16"), -1);
    ck_assert_int_eq(ad_wtype_from_name(""), -1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("fused vs reference");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_fused_matches_reference, 0, AD_CELL_NKINDS);
    tcase_add_loop_test(tc, test_fused_packed_matches_reference, 0, 2 * AD_CELL_NKINDS);
    tcase_add_test(tc, test_head_dot);
    tcase_add_test(tc, test_isa_table);
    suite_add_tcase(s, tc);
    tc = tcase_create("half");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_half_known_values);
    tcase_add_test(tc, test_half_matches_f16c);
    suite_add_tcase(s, tc);
    tc = tcase_create("fp16 networks");
    tcase_add_test(tc, test_fp16_prediction_close);
    tcase_add_test(tc, test_fp16_life_cycle);
    tcase_add_test(tc, test_fp16_reference_mode);
    tcase_add_loop_test(tc, test_fp16_only_steps_identical, 0, AD_CELL_NKINDS);
    tcase_add_loop_test(tc, test_int8_only_steps_identical, 0, AD_CELL_NKINDS);
    tcase_add_test(tc, test_fp16_only_bytes);
    tcase_add_test(tc, test_fp16_only_life_cycle);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
