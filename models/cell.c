/*
 * cell.c - the cell kinds' metadata and kernels: the streaming step of one layer and the
 * batched sequence forward and backward of one layer (BPTT).
 *
 * The step and the sequence forward share the per-column activation code below and add
 * product terms in the same order (bias, then Wx columns, then Wh columns), so with the
 * reference product kernel (blas.h) they give bit-identical results.
 */
#include "cell.h"

#include <string.h>

#include "act.h"
#include "blas.h"

/*
 * The hot entry points are compiled for AVX-512, AVX2 and baseline x86-64 and the best is
 * picked at load time (GCC function multi-versioning), so one binary runs everywhere.
 * With -ffp-contract=off every variant computes the same IEEE operations per element, so
 * results are identical whichever is picked.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(AD_NO_CLONES)
#define AD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define AD_CLONES
#endif
/* Kernels' helpers are forced inline so each variant gets its own vector code. */
#define AD_INLINE inline __attribute__((always_inline))

/* One row per kind, by name: its code in blobs (fixed for good: a new kind takes a new
 * code, whatever its place in the enum), its name, and its gates. */
static const struct {
    uint32_t code;
    const char *name;
    int gates, has_c, forget;
} kinds[AD_CELL_NKINDS] = {
    [AD_CELL_ELMAN] = {0, "elman", 1, 0, -1},
    [AD_CELL_LSTM] = {1, "lstm", 4, 1, 1},
    [AD_CELL_PEEPHOLE] = {2, "peephole", 4, 1, 1},
    [AD_CELL_CIFG] = {3, "cifg", 3, 1, 0},
    [AD_CELL_GRU] = {4, "gru", 3, 0, -1},
    [AD_CELL_GRU_TORCH] = {5, "gru_torch", 3, 0, -1},
};

static int valid(ad_cell_kind kind)
{
    return (int)kind >= 0 && kind < AD_CELL_NKINDS;
}

int ad_cell_gates(ad_cell_kind kind)
{
    return valid(kind) ? kinds[kind].gates : 0;
}

int ad_cell_has_c(ad_cell_kind kind)
{
    return valid(kind) ? kinds[kind].has_c : 0;
}

size_t ad_cell_extra_size(ad_cell_kind kind, int H)
{
    if (kind == AD_CELL_PEEPHOLE)
        return 3 * (size_t)H;
    if (kind == AD_CELL_GRU_TORCH)
        return (size_t)H;
    return 0;
}

int ad_cell_forget_gate(ad_cell_kind kind)
{
    return valid(kind) ? kinds[kind].forget : -1;
}

const char *ad_cell_name(ad_cell_kind kind)
{
    return valid(kind) ? kinds[kind].name : NULL;
}

int ad_cell_from_name(const char *name)
{
    for (int k = 0; name && k < AD_CELL_NKINDS; k++)
        if (strcmp(name, kinds[k].name) == 0)
            return k;
    return -1;
}

uint32_t ad_cell_code(ad_cell_kind kind)
{
    return valid(kind) ? kinds[kind].code : UINT32_MAX;
}

int ad_cell_from_code(uint32_t code)
{
    for (int k = 0; k < AD_CELL_NKINDS; k++)
        if (kinds[k].code == code)
            return k;
    return -1;
}

/* ---- activations, shared by the step and the sequence forward ----
 *
 * Gates are stored gate-major: gate g's values for n = H*B units lie contiguously at
 * gp[g] (the step has B = 1). Each pass runs over all n values, so the loops vectorise
 * and independent vectors overlap instead of waiting on one long dependency chain. */

static AD_INLINE void vsig(float *restrict x, int n)
{
    for (int k = 0; k < n; k++)
        x[k] = ad_sigmoidf(x[k]);
}

static AD_INLINE void vtanh(float *restrict x, int n)
{
    for (int k = 0; k < n; k++)
        x[k] = ad_tanhf(x[k]);
}

/* x (H, B) += p (H) * v (H, B), p broadcast over the B columns */
static AD_INLINE void add_peep(float *restrict x, const float *restrict p, const float *restrict v,
                               int H, int B)
{
    for (int b = 0; b < B; b++)
        for (int k = 0; k < H; k++)
            x[(size_t)H * b + k] += p[k] * v[(size_t)H * b + k];
}

/* c = f*cp + i*g (LSTM kinds) or f*cp + (1-f)*g (CIFG, i == NULL) */
static AD_INLINE void cell_update(int n, const float *restrict i, const float *restrict f,
                                  const float *restrict g, const float *restrict cp,
                                  float *restrict c)
{
    if (i) {
        for (int k = 0; k < n; k++)
            c[k] = f[k] * cp[k] + i[k] * g[k];
    } else {
        for (int k = 0; k < n; k++)
            c[k] = f[k] * cp[k] + (1.0f - f[k]) * g[k];
    }
}

/* tc = tanh(c); h = o*tc */
static AD_INLINE void cell_out(int n, const float *restrict o, const float *restrict c,
                               float *restrict tc, float *restrict h)
{
    for (int k = 0; k < n; k++)
        tc[k] = ad_tanhf(c[k]);
    for (int k = 0; k < n; k++)
        h[k] = o[k] * tc[k];
}

/*
 * Elman and the LSTM kinds: gp[g] (H, B) pre-activations become activated gates in place;
 * cp is c_{t-1} (H, B); writes c, tc = tanh(c) and h. peep is the peephole vector or NULL.
 */
static AD_INLINE void gates_forward(ad_cell_kind kind, int H, int B, float *const *gp,
                                    const float *cp, float *c, float *tc, float *h,
                                    const float *peep)
{
    const int n = H * B;
    switch (kind) {
    case AD_CELL_ELMAN:
        vtanh(gp[0], n);
        memcpy(h, gp[0], (size_t)n * sizeof(float));
        break;
    case AD_CELL_LSTM: /* i, f, g, o */
        vsig(gp[0], n);
        vsig(gp[1], n);
        vtanh(gp[2], n);
        vsig(gp[3], n);
        cell_update(n, gp[0], gp[1], gp[2], cp, c);
        cell_out(n, gp[3], c, tc, h);
        break;
    case AD_CELL_PEEPHOLE: /* i, f see c_{t-1}; o sees c_t */
        add_peep(gp[0], peep, cp, H, B);
        add_peep(gp[1], peep + H, cp, H, B);
        vsig(gp[0], n);
        vsig(gp[1], n);
        vtanh(gp[2], n);
        cell_update(n, gp[0], gp[1], gp[2], cp, c);
        add_peep(gp[3], peep + 2 * H, c, H, B);
        vsig(gp[3], n);
        cell_out(n, gp[3], c, tc, h);
        break;
    case AD_CELL_CIFG: /* f, g, o */
        vsig(gp[0], n);
        vtanh(gp[1], n);
        vsig(gp[2], n);
        cell_update(n, NULL, gp[0], gp[1], cp, c);
        cell_out(n, gp[2], c, tc, h);
        break;
    case AD_CELL_GRU:       /* not gate kinds: gru_rz and gru_n */
    case AD_CELL_GRU_TORCH:
    case AD_CELL_NKINDS:
        break;
    }
}

/* GRU kinds, first half: r and z activated in place; for the course form rh = r*h_{t-1}. */
static AD_INLINE void gru_rz(ad_cell_kind kind, int n, float *restrict r, float *restrict z,
                             const float *restrict hp, float *restrict rh)
{
    vsig(r, n);
    vsig(z, n);
    if (kind == AD_CELL_GRU)
        for (int k = 0; k < n; k++)
            rh[k] = r[k] * hp[k];
}

/*
 * GRU kinds, second half: nn holds the n pre-activation (course form: including
 * Whn (r*h); PyTorch form: Wxn x + b_n only, with hn = Whn h + b_hn). Writes n in place
 * and the new h.
 */
static AD_INLINE void gru_n(ad_cell_kind kind, int n, const float *restrict r,
                            const float *restrict z, float *restrict nn, const float *restrict hp,
                            const float *restrict hn, float *restrict h)
{
    if (kind == AD_CELL_GRU) {
        for (int k = 0; k < n; k++)
            nn[k] = ad_tanhf(nn[k]);
        for (int k = 0; k < n; k++)
            h[k] = (1.0f - z[k]) * hp[k] + z[k] * nn[k];
    } else {
        for (int k = 0; k < n; k++)
            nn[k] = nn[k] + r[k] * hn[k];
        for (int k = 0; k < n; k++)
            nn[k] = ad_tanhf(nn[k]);
        for (int k = 0; k < n; k++)
            h[k] = (1.0f - z[k]) * nn[k] + z[k] * hp[k];
    }
}

/*
 * a (R) += W (R, C; column stride ld) * x (C), adding columns in increasing order (as the
 * reference product kernel does). Rows go in blocks of 32 whose accumulators stay in
 * registers across all columns, so the weights are streamed once and a is touched once.
 */
static AD_INLINE void matvec_add(float *restrict a, const float *restrict W, int R, int C, int ld,
                                 const float *restrict x)
{
    int i0 = 0;
    for (; i0 + 32 <= R; i0 += 32) {
        float acc[32];
        for (int i = 0; i < 32; i++)
            acc[i] = a[i0 + i];
        for (int k = 0; k < C; k++) {
            const float *w = W + (size_t)k * ld + i0;
            const float xk = x[k];
            for (int i = 0; i < 32; i++)
                acc[i] += w[i] * xk;
        }
        for (int i = 0; i < 32; i++)
            a[i0 + i] = acc[i];
    }
    for (int k = 0; i0 < R && k < C; k++) {
        const float *w = W + (size_t)k * ld;
        const float xk = x[k];
        for (int i = i0; i < R; i++)
            a[i] += w[i] * xk;
    }
}

AD_CLONES void ad_cell_step(ad_cell_kind kind, int Din, int H, const ad_layer_params *p,
                            const float *x, float *h, float *c)
{
    const int G = ad_cell_gates(kind), GH = G * H;
    float a[4 * AD_MAX_HIDDEN];
    float hp[AD_MAX_HIDDEN], aux[AD_MAX_HIDDEN], tc[AD_MAX_HIDDEN], cp[AD_MAX_HIDDEN];
    float *gp[4] = {a, a + H, a + 2 * H, a + 3 * H};

    memcpy(a, p->b, (size_t)GH * sizeof(float));
    matvec_add(a, p->wx, GH, Din, GH, x);
    memcpy(hp, h, (size_t)H * sizeof(float));
    if (kind == AD_CELL_GRU || kind == AD_CELL_GRU_TORCH) {
        matvec_add(a, p->wh, 2 * H, H, GH, hp);
        gru_rz(kind, H, gp[0], gp[1], hp, aux);
        if (kind == AD_CELL_GRU) {
            matvec_add(gp[2], p->wh + 2 * H, H, H, GH, aux);
        } else {
            memcpy(aux, p->extra, (size_t)H * sizeof(float));
            matvec_add(aux, p->wh + 2 * H, H, H, GH, hp);
        }
        gru_n(kind, H, gp[0], gp[1], gp[2], hp, aux, h);
        return;
    }
    matvec_add(a, p->wh, GH, H, GH, hp);
    if (ad_cell_has_c(kind)) {
        memcpy(cp, c, (size_t)H * sizeof(float));
        gates_forward(kind, H, 1, gp, cp, c, tc, h, p->extra);
    } else {
        gates_forward(kind, H, 1, gp, NULL, NULL, NULL, h, NULL);
    }
}

/* ---- batched steps ---- */

/* a (rows r0 .. r0+R of a (G*H, n) matrix) += Wx x, and Wh h when withh: one product over
 * [Wx | Wh] when Wh follows Wx (net.h's layout), else two; terms in increasing column. */
static void batch_products(const ad_layer_params *p, int GH, int Din, int H, int r0, int R,
                           int withh, int n, const float *xh, float *a)
{
    const int ld = Din + H;

    if (withh && p->wh == p->wx + (size_t)GH * Din) {
        ad_gemm(0, 0, R, n, Din + H, 1.0f, p->wx + r0, GH, xh, ld, 1.0f, a + r0, GH);
        return;
    }
    ad_gemm(0, 0, R, n, Din, 1.0f, p->wx + r0, GH, xh, ld, 1.0f, a + r0, GH);
    if (withh)
        ad_gemm(0, 0, R, n, H, 1.0f, p->wh + r0, GH, xh + Din, ld, 1.0f, a + r0, GH);
}

AD_CLONES void ad_cell_step_batch(ad_cell_kind kind, int Din, int H, int n,
                                  const ad_layer_params *p, const float *xh, const float *cp,
                                  float *a, float *aux, float *h, float *c)
{
    const int G = ad_cell_gates(kind), GH = G * H, ld = Din + H;
    float tc[AD_MAX_HIDDEN];

    /* (G*H, n): column j is stream j's pre-activations, gates stacked as in the step */
    for (int j = 0; j < n; j++)
        memcpy(a + (size_t)GH * j, p->b, (size_t)GH * sizeof(float));
    if (kind != AD_CELL_GRU && kind != AD_CELL_GRU_TORCH) {
        batch_products(p, GH, Din, H, 0, GH, 1, n, xh, a);
        for (int j = 0; j < n; j++) {
            float *aj = a + (size_t)GH * j;
            float *gp[4] = {aj, aj + H, aj + 2 * H, aj + 3 * H};
            const size_t o = (size_t)H * j;

            if (ad_cell_has_c(kind))
                gates_forward(kind, H, 1, gp, cp + o, c + o, tc, h + o, p->extra);
            else
                gates_forward(kind, H, 1, gp, NULL, NULL, NULL, h + o, NULL);
        }
        return;
    }
    /* GRU kinds: r, z see Wh h now; n sees Whn (r*h) (course) or r*(Whn h + b_hn) later */
    batch_products(p, GH, Din, H, 0, 2 * H, 1, n, xh, a);
    batch_products(p, GH, Din, H, 2 * H, H, 0, n, xh, a);
    for (int j = 0; j < n; j++) {
        float *aj = a + (size_t)GH * j;
        gru_rz(kind, H, aj, aj + H, xh + (size_t)ld * j + Din, aux + (size_t)H * j);
    }
    if (kind == AD_CELL_GRU) {
        ad_gemm(0, 0, H, n, H, 1.0f, p->wh + 2 * H, GH, aux, H, 1.0f, a + 2 * H, GH);
    } else {
        for (int j = 0; j < n; j++)
            memcpy(aux + (size_t)H * j, p->extra, (size_t)H * sizeof(float));
        ad_gemm(0, 0, H, n, H, 1.0f, p->wh + 2 * H, GH, xh + Din, ld, 1.0f, aux, H);
    }
    for (int j = 0; j < n; j++) {
        float *aj = a + (size_t)GH * j;
        gru_n(kind, H, aj, aj + H, aj + 2 * H, xh + (size_t)ld * j + Din, aux + (size_t)H * j,
              h + (size_t)H * j);
    }
}

/* ---- sequences ----
 * Gate values and their gradients are kept gate-major: gate g's (H, B*T) block at
 * base + g*H*B*T, so one time step's (H, B) slice of a gate is contiguous. Products are
 * made per gate (G calls of H rows), which is what makes that layout possible. */

AD_CLONES void ad_cell_seq_forward_init(ad_cell_kind kind, int Din, int H, int T, int B,
                                        const ad_layer_params *p, const float *x, const float *h0,
                                        const float *c0, ad_cell_cache *cc)
{
    const int G = ad_cell_gates(kind), GH = G * H, BT = B * T;
    const size_t HB = (size_t)H * B, HBT = (size_t)H * BT;
    const int has_c = ad_cell_has_c(kind);

    /* all input products at once: gate g = b_g + Wx_g x  (H, B*T) */
    for (int g = 0; g < G; g++) {
        float *blk = cc->gates + g * HBT;
        for (int j = 0; j < BT; j++)
            memcpy(blk + (size_t)H * j, p->b + g * H, (size_t)H * sizeof(float));
        ad_gemm(0, 0, H, BT, Din, 1.0f, p->wx + g * H, GH, x, Din, 1.0f, blk, H);
    }
    /* the initial state h_{-1}, c_{-1}: given, or zero */
    if (h0)
        memcpy(cc->h, h0, HB * sizeof(float));
    else
        memset(cc->h, 0, HB * sizeof(float));
    if (has_c && c0)
        memcpy(cc->c, c0, HB * sizeof(float));
    else if (has_c)
        memset(cc->c, 0, HB * sizeof(float));

    for (int t = 0; t < T; t++) {
        float *gp[4] = {NULL};
        const float *hp = cc->h + HB * t; /* (H, B) h_{t-1} */
        float *hc = cc->h + HB * (t + 1); /* (H, B) h_t */
        for (int g = 0; g < G; g++)
            gp[g] = cc->gates + g * HBT + HB * t;
        if (kind == AD_CELL_GRU || kind == AD_CELL_GRU_TORCH) {
            float *aux = cc->aux + HB * t;
            for (int g = 0; g < 2; g++)
                ad_gemm(0, 0, H, B, H, 1.0f, p->wh + g * H, GH, hp, H, 1.0f, gp[g], H);
            gru_rz(kind, (int)HB, gp[0], gp[1], hp, aux);
            if (kind == AD_CELL_GRU) {
                ad_gemm(0, 0, H, B, H, 1.0f, p->wh + 2 * H, GH, aux, H, 1.0f, gp[2], H);
            } else {
                for (int b = 0; b < B; b++)
                    memcpy(aux + (size_t)H * b, p->extra, (size_t)H * sizeof(float));
                ad_gemm(0, 0, H, B, H, 1.0f, p->wh + 2 * H, GH, hp, H, 1.0f, aux, H);
            }
            gru_n(kind, (int)HB, gp[0], gp[1], gp[2], hp, aux, hc);
            continue;
        }
        for (int g = 0; g < G; g++)
            ad_gemm(0, 0, H, B, H, 1.0f, p->wh + g * H, GH, hp, H, 1.0f, gp[g], H);
        if (has_c)
            gates_forward(kind, H, B, gp, cc->c + HB * t, cc->c + HB * (t + 1), cc->tc + HB * t, hc,
                          p->extra);
        else
            gates_forward(kind, H, B, gp, NULL, NULL, NULL, hc, NULL);
    }
}

void ad_cell_seq_forward(ad_cell_kind kind, int Din, int H, int T, int B, const ad_layer_params *p,
                         const float *x, ad_cell_cache *cc)
{
    ad_cell_seq_forward_init(kind, Din, H, T, B, p, x, NULL, NULL, cc);
}

/* Elementwise backward loops, one function each so that restrict on every argument
 * lets them vectorise. */

static AD_INLINE void elman_backward(int n, const float *restrict h, const float *restrict dh,
                                     float *restrict da)
{
    for (int k = 0; k < n; k++)
        da[k] = dh[k] * (1.0f - h[k] * h[k]);
}

static AD_INLINE void lstm_backward(int n, const float *restrict i, const float *restrict f,
                                    const float *restrict g, const float *restrict o,
                                    const float *restrict cp, const float *restrict tc,
                                    const float *restrict dh, float *restrict dc,
                                    float *restrict di, float *restrict df, float *restrict dg,
                                    float *restrict dout)
{
    for (int k = 0; k < n; k++) {
        float dct = dc[k] + dh[k] * o[k] * (1.0f - tc[k] * tc[k]);
        di[k] = dct * g[k] * i[k] * (1.0f - i[k]);
        df[k] = dct * cp[k] * f[k] * (1.0f - f[k]);
        dg[k] = dct * i[k] * (1.0f - g[k] * g[k]);
        dout[k] = dh[k] * tc[k] * o[k] * (1.0f - o[k]);
        dc[k] = dct * f[k];
    }
}

static AD_INLINE void cifg_backward(int n, const float *restrict f, const float *restrict g,
                                    const float *restrict o, const float *restrict cp,
                                    const float *restrict tc, const float *restrict dh,
                                    float *restrict dc, float *restrict df, float *restrict dg,
                                    float *restrict dout)
{
    for (int k = 0; k < n; k++) {
        float dct = dc[k] + dh[k] * o[k] * (1.0f - tc[k] * tc[k]);
        df[k] = dct * (cp[k] - g[k]) * f[k] * (1.0f - f[k]);
        dg[k] = dct * (1.0f - f[k]) * (1.0f - g[k] * g[k]);
        dout[k] = dh[k] * tc[k] * o[k] * (1.0f - o[k]);
        dc[k] = dct * f[k];
    }
}

/* GRU (course form), first part: z's and n's gradients, and h_{t-1}'s direct term. */
static AD_INLINE void gru_backward_zn(int n, const float *restrict z, const float *restrict nv,
                                      const float *restrict hp, const float *restrict dh,
                                      float *restrict dz, float *restrict dn, float *restrict dhn)
{
    for (int k = 0; k < n; k++) {
        dz[k] = dh[k] * (nv[k] - hp[k]) * z[k] * (1.0f - z[k]);
        dn[k] = dh[k] * z[k] * (1.0f - nv[k] * nv[k]);
        dhn[k] = dh[k] * (1.0f - z[k]);
    }
}

/* GRU (course form), second part: r's gradient from d(r*h), and the h path through r*h. */
static AD_INLINE void gru_backward_r(int n, const float *restrict r, const float *restrict hp,
                                     const float *restrict drh, float *restrict dr,
                                     float *restrict dhn)
{
    for (int k = 0; k < n; k++) {
        dr[k] = drh[k] * hp[k] * r[k] * (1.0f - r[k]);
        dhn[k] += drh[k] * r[k];
    }
}

/* GRU (PyTorch form): all gates; dhh is the gradient into Whn h + b_hn. */
static AD_INLINE void grut_backward(int n, const float *restrict r, const float *restrict z,
                                    const float *restrict nv, const float *restrict hn,
                                    const float *restrict hp, const float *restrict dh,
                                    float *restrict dr, float *restrict dz, float *restrict dn,
                                    float *restrict dhh, float *restrict dhn)
{
    for (int k = 0; k < n; k++) {
        float dan = dh[k] * (1.0f - z[k]) * (1.0f - nv[k] * nv[k]);
        dr[k] = dan * hn[k] * r[k] * (1.0f - r[k]);
        dz[k] = dh[k] * (hp[k] - nv[k]) * z[k] * (1.0f - z[k]);
        dn[k] = dan;
        dhh[k] = dan * r[k];
        dhn[k] = dh[k] * z[k];
    }
}

/*
 * Backward through the activations of the Elman/LSTM kinds at one step, for n = H*B
 * values. gp: activated gates; dh: dLoss/dh_t; dc: in dLoss/dc_t from step t+1, out
 * dLoss/dc_{t-1}; writes dp (the gates' pre-activation gradients) and adds peephole
 * gradients into gpeep.
 */
static AD_INLINE void gates_backward(ad_cell_kind kind, int H, int B, float *const *gp,
                                     const float *restrict cp, const float *restrict c,
                                     const float *restrict tc, const float *restrict hv,
                                     const float *restrict dh, float *restrict dc, float *const *dp,
                                     const float *peep, float *gpeep)
{
    const int n = H * B;
    switch (kind) {
    case AD_CELL_ELMAN:
        elman_backward(n, hv, dh, dp[0]);
        break;
    case AD_CELL_LSTM:
        lstm_backward(n, gp[0], gp[1], gp[2], gp[3], cp, tc, dh, dc, dp[0], dp[1], dp[2], dp[3]);
        break;
    case AD_CELL_PEEPHOLE: {
        const float *pi = peep, *pf = peep + H, *po = peep + 2 * H;
        for (int b = 0; b < B; b++) {
            const size_t o0 = (size_t)H * b;
            const float *i = gp[0] + o0, *f = gp[1] + o0, *g = gp[2] + o0, *o = gp[3] + o0;
            for (int k = 0; k < H; k++) {
                const size_t q = o0 + k;
                float dao = dh[q] * tc[q] * o[k] * (1.0f - o[k]);
                float dct = dc[q] + dh[q] * o[k] * (1.0f - tc[q] * tc[q]) + dao * po[k];
                float dai = dct * g[k] * i[k] * (1.0f - i[k]);
                float daf = dct * cp[q] * f[k] * (1.0f - f[k]);
                dp[0][q] = dai;
                dp[1][q] = daf;
                dp[2][q] = dct * i[k] * (1.0f - g[k] * g[k]);
                dp[3][q] = dao;
                gpeep[k] += dai * cp[q];
                gpeep[H + k] += daf * cp[q];
                gpeep[2 * H + k] += dao * c[q];
                dc[q] = dct * f[k] + dai * pi[k] + daf * pf[k];
            }
        }
        break;
    }
    case AD_CELL_CIFG:
        cifg_backward(n, gp[0], gp[1], gp[2], cp, tc, dh, dc, dp[0], dp[1], dp[2]);
        break;
    case AD_CELL_GRU:       /* not gate kinds: their own backward */
    case AD_CELL_GRU_TORCH:
    case AD_CELL_NKINDS:
        break;
    }
}

/* d = a + b over n values */
static AD_INLINE void add_into(float *restrict d, const float *restrict a, const float *restrict b,
                               size_t n)
{
    for (size_t k = 0; k < n; k++)
        d[k] = a[k] + b[k];
}

/* db (R) += row sums of D (R, N; column stride ld). */
static void add_row_sums_ld(float *restrict db, const float *restrict D, int R, int N, int ld)
{
    for (int j = 0; j < N; j++) {
        const float *d = D + (size_t)j * ld;
        for (int i = 0; i < R; i++)
            db[i] += d[i];
    }
}

static void add_row_sums(float *db, const float *D, int R, int N)
{
    add_row_sums_ld(db, D, R, N, R);
}

AD_CLONES void ad_cell_seq_backward_init(ad_cell_kind kind, int Din, int H, int T, int B,
                                         const ad_layer_params *p, ad_layer_params *g,
                                         const float *x, const ad_cell_cache *cc,
                                         const float *dhout, float *dx, ad_cell_scratch *s,
                                         const float *dhT, const float *dcT, float *dh0, float *dc0)
{
    const int G = ad_cell_gates(kind), GH = G * H, BT = B * T;
    const size_t HB = (size_t)H * B, HBT = (size_t)H * BT;
    const int gru = kind == AD_CELL_GRU || kind == AD_CELL_GRU_TORCH;
    const int has_c = ad_cell_has_c(kind);
    /* the gradient into the recurrent products: dax itself except for GRU_TORCH */
    float *dah = kind == AD_CELL_GRU_TORCH ? s->dah : s->dax;

    /* gradients arriving from beyond the window at h_{T-1}, c_{T-1}: given, or zero */
    if (dhT)
        memcpy(s->dhn, dhT, HB * sizeof(float));
    else
        memset(s->dhn, 0, HB * sizeof(float));
    if (has_c && dcT)
        memcpy(s->dc, dcT, HB * sizeof(float));
    else
        memset(s->dc, 0, HB * sizeof(float));

    for (int t = T - 1; t >= 0; t--) {
        const float *hp = cc->h + HB * t;
        const float *hc = cc->h + HB * (t + 1);
        float *daxt = s->dax + (size_t)GH * B * t; /* (GH, B) stacked */
        float *daht = dah + (size_t)GH * B * t;
        float *dh = s->dh, *dhn = s->dhn;

        add_into(dh, dhout + HB * t, dhn, HB);
        if (s->dhs) /* dLoss/dh_t, whole: what reaches h_t from above and from t+1 */
            memcpy(s->dhs + HB * t, dh, HB * sizeof(float));
        /* column by column: gates read gate-major, gradients written stacked */
        for (int b = 0; b < B; b++) {
            const size_t o = (size_t)H * b, t0 = HB * t + o;
            float *gp[4] = {NULL}, *dp[4] = {NULL};
            for (int q = 0; q < G; q++) {
                gp[q] = cc->gates + q * HBT + t0;
                dp[q] = daxt + (size_t)GH * b + (size_t)q * H;
            }
            if (!gru) {
                gates_backward(kind, H, 1, gp, has_c ? cc->c + t0 : NULL,
                               has_c ? cc->c + t0 + HB : NULL, has_c ? cc->tc + t0 : NULL, hc + o,
                               dh + o, s->dc + o, dp, p->extra, g->extra);
            } else if (kind == AD_CELL_GRU) {
                gru_backward_zn(H, gp[1], gp[2], hp + o, dh + o, dp[1], dp[2], dhn + o);
            } else {
                float *dhh = daht + (size_t)GH * b;
                grut_backward(H, gp[0], gp[1], gp[2], cc->aux + t0, hp + o, dh + o, dp[0], dp[1],
                              dp[2], dhh + 2 * H, dhn + o);
                memcpy(dhh, dp[0], 2 * (size_t)H * sizeof(float));
            }
        }
        if (!gru) {
            ad_gemm(1, 0, H, B, GH, 1.0f, p->wh, GH, daxt, GH, 0.0f, dhn, H);
        } else if (kind == AD_CELL_GRU) {
            /* d(r*h) = Whn^T dn; then r's gradient and the h path through r*h */
            ad_gemm(1, 0, H, B, H, 1.0f, p->wh + 2 * H, GH, daxt + 2 * H, GH, 0.0f, s->tmp, H);
            for (int b = 0; b < B; b++) {
                const size_t o = (size_t)H * b;
                gru_backward_r(H, cc->gates + HB * t + o, hp + o, s->tmp + o, daxt + (size_t)GH * b,
                               dhn + o);
            }
            ad_gemm(1, 0, H, B, 2 * H, 1.0f, p->wh, GH, daxt, GH, 1.0f, dhn, H);
        } else {
            ad_gemm(1, 0, H, B, GH, 1.0f, p->wh, GH, daht, GH, 1.0f, dhn, H);
        }
    }

    /* parameter gradients over all steps at once */
    ad_gemm(0, 1, GH, Din, BT, 1.0f, s->dax, GH, x, Din, 1.0f, g->wx, GH);
    add_row_sums(g->b, s->dax, GH, BT);
    if (kind == AD_CELL_GRU) {
        /* the course GRU's n gate sees r*h_{t-1}, not h_{t-1} */
        ad_gemm(0, 1, 2 * H, H, BT, 1.0f, s->dax, GH, cc->h, H, 1.0f, g->wh, GH);
        ad_gemm(0, 1, H, H, BT, 1.0f, s->dax + 2 * H, GH, cc->aux, H, 1.0f, g->wh + 2 * H, GH);
    } else {
        ad_gemm(0, 1, GH, H, BT, 1.0f, dah, GH, cc->h, H, 1.0f, g->wh, GH);
    }
    if (kind == AD_CELL_GRU_TORCH)
        add_row_sums_ld(g->extra, s->dah + 2 * H, H, BT, GH);
    if (dx)
        ad_gemm(1, 0, Din, BT, GH, 1.0f, p->wx, GH, s->dax, GH, 0.0f, dx, Din);
    /* after step 0, dhn and dc hold dLoss/dh_{-1} and dLoss/dc_{-1} */
    if (dh0)
        memcpy(dh0, s->dhn, HB * sizeof(float));
    if (dc0 && has_c)
        memcpy(dc0, s->dc, HB * sizeof(float));
}

void ad_cell_seq_backward(ad_cell_kind kind, int Din, int H, int T, int B, const ad_layer_params *p,
                          ad_layer_params *g, const float *x, const ad_cell_cache *cc,
                          const float *dhout, float *dx, ad_cell_scratch *s)
{
    ad_cell_seq_backward_init(kind, Din, H, T, B, p, g, x, cc, dhout, dx, s, NULL, NULL, NULL,
                              NULL);
}
