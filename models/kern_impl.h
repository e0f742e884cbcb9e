/*
 * kern_impl.h - the body of the fused step kernels, written once over a small vector
 * vocabulary and included by kern.c once per instruction set (AVX-512, AVX2, C). Not a
 * header to include anywhere else.
 *
 * The includer defines: SFX(name) (the set's suffix), AINL (helper attributes: static,
 * always inline, the set's target), KFN (the kernels' attributes), V (a vector of VW
 * floats), TM (a lane mask for the first n lanes), VM (a comparison mask) and the
 * operations vset1 vloadu vstoreu vloadm vstorem tmask vadd vsub vmul vrcp vfma vmin
 * vmax vabs vlt vsel vloadh vloadq vscale vhsum, and MV_SPLIT_NB (see kern.c); all of
 * them are undefined at the end of this file.
 */

/* ---- activations: act.h's formulas, lane by lane ---- */

/* e^x: clamp, n = round(x/ln2), r = x - n ln2 (ln2 in two parts), degree-6 polynomial,
 * scale by 2^n (act.h's ad_expf). vscale gets y and t, t holding n both as the float
 * t - magic and in its low mantissa bits. */
AINL V SFX(vexp)(V x)
{
    const V magic = vset1(12582912.0f);
    x = vmax(x, vset1(-87.3f));
    x = vmin(x, vset1(88.72f));
    V t = vfma(x, vset1(1.44269504088896341f), magic);
    V n = vsub(t, magic);
    V r = vfma(n, vset1(-0.693359375f), x);
    r = vfma(n, vset1(2.12194440e-4f), r);
    V p = vset1(1.9875691500e-4f);
    p = vfma(p, r, vset1(1.3981999507e-3f));
    p = vfma(p, r, vset1(8.3334519073e-3f));
    p = vfma(p, r, vset1(4.1665795894e-2f));
    p = vfma(p, r, vset1(1.6666665459e-1f));
    p = vfma(p, r, vset1(5.0000001201e-1f));
    V y = vadd(vfma(vmul(p, r), r, r), vset1(1.0f));
    return vscale(y, t, n);
}

AINL V SFX(vsig)(V x)
{
    const V one = vset1(1.0f);
    return vrcp(vadd(one, SFX(vexp)(vsub(vset1(0.0f), x))));
}

/* tanh: odd polynomial below |x| = 0.625, else 1 - 2/(e^{2|x|} + 1) with x's sign. */
AINL V SFX(vtanh)(V x)
{
    const V one = vset1(1.0f), ax = vabs(x), z = vmul(x, x);
    V p = vset1(-5.70498872745e-3f);
    p = vfma(p, z, vset1(2.06390887954e-2f));
    p = vfma(p, z, vset1(-5.37397155531e-2f));
    p = vfma(p, z, vset1(1.33314422036e-1f));
    p = vfma(p, z, vset1(-3.33332819422e-1f));
    V small = vfma(vmul(p, z), x, x);
    V e = SFX(vexp)(vmul(vset1(2.0f), vmin(ax, vset1(10.0f))));
    V big = vsub(one, vmul(vset1(2.0f), vrcp(vadd(e, one))));
    big = vsel(vlt(x, vset1(0.0f)), big, vsub(vset1(0.0f), big));
    return vsel(vlt(ax, vset1(0.625f)), big, small);
}

/* ---- products ----
 *
 * out (NB vectors of rows) = init + W v over C columns: NB accumulators stay in registers
 * while the columns stream by, so every weight is read once and out written once. With
 * tail, the last vector holds only the lanes of tm. Weights are floats, halves (widened
 * by the conversion instruction) or int8 (sign-extended and converted); whole vectors of
 * halves or bytes are read, the lanes past the rows are never stored. int8 rows
 * accumulate q*v from zero and take init + scale * sum at the end (sc: the rows' scales),
 * which is right for any subset of a row's columns. NB, wt and tail are constants after
 * inlining. */
AINL V SFX(wload)(const int wt, const int tail, TM tm, const void *W, size_t o)
{
    if (wt == AD_W_F16)
        return vloadh((const uint16_t *)W + o);
    if (wt == AD_W_I8)
        return vloadq((const int8_t *)W + o);
    if (tail)
        return vloadm((const float *)W + o, tm);
    return vloadu((const float *)W + o);
}

AINL void SFX(mvblk)(const int NB, const int wt, const int tail, TM tm, float *out,
                     const float *init, const void *W, size_t w0, size_t ld, int C,
                     const float *v, const float *sc)
{
    /* with registers to spare, even and odd columns go to two sets of accumulators:
     * half the dependency chain, which is what a single stream's step waits on */
    const int two = NB <= MV_SPLIT_NB, q8 = wt == AD_W_I8;
    V acc[8], acc2[8];
    int k = 0;
    for (int j = 0; j < NB; j++) {
        if (q8)
            acc[j] = vset1(0.0f);
        else
            acc[j] = tail && j == NB - 1 ? vloadm(init + j * VW, tm) : vloadu(init + j * VW);
        acc2[j] = vset1(0.0f);
    }
    if (two) {
        for (; k + 2 <= C; k += 2) {
            const V x0 = vset1(v[k]), x1 = vset1(v[k + 1]);
            const size_t o = w0 + (size_t)k * ld;
            for (int j = 0; j < NB; j++) {
                const int t = tail && j == NB - 1;
                acc[j] = vfma(SFX(wload)(wt, t, tm, W, o + (size_t)j * VW), x0, acc[j]);
                acc2[j] = vfma(SFX(wload)(wt, t, tm, W, o + ld + (size_t)j * VW), x1, acc2[j]);
            }
        }
    }
    for (; k < C; k++) {
        const V xk = vset1(v[k]);
        const size_t o = w0 + (size_t)k * ld;
        for (int j = 0; j < NB; j++)
            acc[j] = vfma(SFX(wload)(wt, tail && j == NB - 1, tm, W, o + (size_t)j * VW), xk,
                          acc[j]);
    }
    for (int j = 0; j < NB; j++) {
        const int t = tail && j == NB - 1;
        V a = two ? vadd(acc[j], acc2[j]) : acc[j];
        if (q8)
            a = t ? vfma(a, vloadm(sc + j * VW, tm), vloadm(init + j * VW, tm))
                  : vfma(a, vloadu(sc + j * VW), vloadu(init + j * VW));
        if (t)
            vstorem(out + j * VW, tm, a);
        else
            vstoreu(out + j * VW, a);
    }
}

/* out (R) = init (R) + W[r, c] v (C) for the R rows starting at element w0 of column 0
 * (later columns every ld elements); out may be init; sc: the R rows' scales (int8),
 * else unused. */
AINL void SFX(mv)(const int wt, float *out, const float *init, const void *W, size_t w0,
                  size_t ld, int R, int C, const float *v, const float *sc)
{
    int r = 0;
#define SCR(r) (wt == AD_W_I8 ? sc + (r) : NULL) /* no offset on a NULL pointer */
    for (; r + 8 * VW <= R; r += 8 * VW)
        SFX(mvblk)(8, wt, 0, tmask(VW), out + r, init + r, W, w0 + r, ld, C, v, SCR(r));
    if (r + 4 * VW <= R) {
        SFX(mvblk)(4, wt, 0, tmask(VW), out + r, init + r, W, w0 + r, ld, C, v, SCR(r));
        r += 4 * VW;
    }
    if (r + 2 * VW <= R) {
        SFX(mvblk)(2, wt, 0, tmask(VW), out + r, init + r, W, w0 + r, ld, C, v, SCR(r));
        r += 2 * VW;
    }
    if (r + VW <= R) {
        SFX(mvblk)(1, wt, 0, tmask(VW), out + r, init + r, W, w0 + r, ld, C, v, SCR(r));
        r += VW;
    }
    if (r < R)
        SFX(mvblk)(1, wt, 1, tmask(R - r), out + r, init + r, W, w0 + r, ld, C, v, SCR(r));
#undef SCR
}

typedef void (*SFX(mv_fn))(float *, const float *, const void *, size_t, size_t, int, int,
                           const float *, const float *);

KFN void SFX(mv32)(float *out, const float *init, const void *W, size_t w0, size_t ld, int R,
                   int C, const float *v, const float *sc)
{
    SFX(mv)(AD_W_F32, out, init, W, w0, ld, R, C, v, sc);
}

KFN void SFX(mv16)(float *out, const float *init, const void *W, size_t w0, size_t ld, int R,
                   int C, const float *v, const float *sc)
{
    SFX(mv)(AD_W_F16, out, init, W, w0, ld, R, C, v, sc);
}

KFN void SFX(mv8)(float *out, const float *init, const void *W, size_t w0, size_t ld, int R,
                  int C, const float *v, const float *sc)
{
    SFX(mv)(AD_W_I8, out, init, W, w0, ld, R, C, v, sc);
}

/* The LSTM kinds' end at the lanes m: c_t (cn) into c, h = o * tanh(c_t). */
AINL void SFX(cell_store)(float *c, float *h, TM m, V cn, V o)
{
    vstorem(c, m, cn);
    vstorem(h, m, vmul(o, SFX(vtanh)(cn)));
}

/* Elman and the LSTM kinds, from the pre-activations a (G*H) of one stream: h (H) out,
 * c (H) c_{t-1} in, c_t out (LSTM kinds; NULL for Elman); extra: the peepholes. The switch
 * names every kind (a new one must be placed); a value outside the enum (shapes are
 * checked: never) leaves h as it is. */
AINL void SFX(gates)(ad_cell_kind kind, int H, const float *extra, const float *a, float *h,
                     float *c)
{
    const V one = vset1(1.0f);
    for (int j = 0; j < H; j += VW) {
        const TM m = tmask(H - j < VW ? H - j : VW);
        switch (kind) {
        case AD_CELL_ELMAN:
            vstorem(h + j, m, SFX(vtanh)(vloadm(a + j, m)));
            continue;
        case AD_CELL_LSTM: {
            const V i = SFX(vsig)(vloadm(a + j, m)), f = SFX(vsig)(vloadm(a + H + j, m));
            const V g = SFX(vtanh)(vloadm(a + 2 * H + j, m));
            const V o = SFX(vsig)(vloadm(a + 3 * H + j, m));
            const V cp = vloadm(c + j, m);
            SFX(cell_store)(c + j, h + j, m, vadd(vmul(f, cp), vmul(i, g)), o);
            continue;
        }
        case AD_CELL_PEEPHOLE: {
            const float *pe = extra;
            const V cp = vloadm(c + j, m);
            const V i = SFX(vsig)(vfma(vloadm(pe + j, m), cp, vloadm(a + j, m)));
            const V f = SFX(vsig)(vfma(vloadm(pe + H + j, m), cp, vloadm(a + H + j, m)));
            const V g = SFX(vtanh)(vloadm(a + 2 * H + j, m));
            const V cn = vadd(vmul(f, cp), vmul(i, g));
            const V o = SFX(vsig)(vfma(vloadm(pe + 2 * H + j, m), cn, vloadm(a + 3 * H + j, m)));
            SFX(cell_store)(c + j, h + j, m, cn, o);
            continue;
        }
        case AD_CELL_CIFG: {
            const V f = SFX(vsig)(vloadm(a + j, m)), g = SFX(vtanh)(vloadm(a + H + j, m));
            const V o = SFX(vsig)(vloadm(a + 2 * H + j, m));
            const V cp = vloadm(c + j, m);
            SFX(cell_store)(c + j, h + j, m, vadd(vmul(f, cp), vmul(vsub(one, f), g)), o);
            continue;
        }
        case AD_CELL_GRU:       /* not gate kinds: the step runs the GRU kinds itself and */
        case AD_CELL_GRU_TORCH: /* ad_kern_gates is not for them */
        case AD_CELL_NKINDS:
            return;
        }
        return;
    }
}

/* ---- the step ---- */

KFN void SFX(step)(ad_cell_kind kind, int Din, int H, const ad_kern_layer *L, const float *x,
                   float *h, float *c)
{
    const int G = ad_cell_gates(kind), GH = G * H;
    const size_t ld = (size_t)L->ld, wh = (size_t)Din * ld; /* Wh's first element */
    const SFX(mv_fn) mv = L->wt == AD_W_I8 ? SFX(mv8) : L->wt == AD_W_F16 ? SFX(mv16) : SFX(mv32);
    /* the rows' scales (int8), from row 0 and from row 2H (the GRU kinds' n rows) */
    const float *sc = L->scale, *sc2 = sc ? sc + 2 * H : NULL;
    float a[4 * AD_MAX_HIDDEN + 16];     /* (G*H) pre-activations, then gates */
    float v[2 * AD_MAX_HIDDEN + 16];     /* [x; h_{t-1}] */
    float aux[AD_MAX_HIDDEN + 16];       /* GRU: r*h_{t-1}; GRU_TORCH: Whn h_{t-1} + b_hn */
    const float *hp = v + Din;
    const V one = vset1(1.0f);

    memcpy(v, x, (size_t)Din * sizeof(float));
    memcpy(v + Din, h, (size_t)H * sizeof(float));
    if (kind == AD_CELL_GRU || kind == AD_CELL_GRU_TORCH) {
        /* r and z see [x; h]; n's input part sees x; its recurrent part comes after */
        mv(a, L->b, L->w, 0, ld, 2 * H, Din + H, v, sc);
        mv(a + 2 * H, L->b + 2 * H, L->w, 2 * (size_t)H, ld, H, Din, x, sc2);
        if (kind == AD_CELL_GRU_TORCH)
            mv(aux, L->extra, L->w, wh + 2 * (size_t)H, ld, H, H, hp, sc2);
        for (int j = 0; j < H; j += VW) {
            const TM m = tmask(H - j < VW ? H - j : VW);
            const V r = SFX(vsig)(vloadm(a + j, m)), z = SFX(vsig)(vloadm(a + H + j, m));
            const V hv = vloadm(hp + j, m);
            if (kind == AD_CELL_GRU) {
                vstorem(a + H + j, m, z);
                vstorem(aux + j, m, vmul(r, hv));
            } else {
                const V n = SFX(vtanh)(vfma(r, vloadm(aux + j, m), vloadm(a + 2 * H + j, m)));
                vstorem(h + j, m, vadd(vmul(vsub(one, z), n), vmul(z, hv)));
            }
        }
        if (kind == AD_CELL_GRU_TORCH)
            return;
        mv(a + 2 * H, a + 2 * H, L->w, wh + 2 * (size_t)H, ld, H, H, aux, sc2);
        for (int j = 0; j < H; j += VW) {
            const TM m = tmask(H - j < VW ? H - j : VW);
            const V z = vloadm(a + H + j, m), n = SFX(vtanh)(vloadm(a + 2 * H + j, m));
            vstorem(h + j, m, vadd(vmul(vsub(one, z), vloadm(hp + j, m)), vmul(z, n)));
        }
        return;
    }

    /* Elman and the LSTM kinds: every gate sees [x; h], one pass over [Wx | Wh] */
    mv(a, L->b, L->w, 0, ld, GH, Din + H, v, sc);
    SFX(gates)(kind, H, L->extra, a, h, c);
}

/* Elman and the LSTM kinds for n streams whose pre-activations are made: column j of a
 * (G*H, n) is stream j's; h (H, n) out, c (H, n) c_{t-1} in, c_t out. */
KFN void SFX(gates_n)(ad_cell_kind kind, int H, int n, const float *extra, const float *a, float *h,
                      float *c)
{
    const size_t GH = (size_t)ad_cell_gates(kind) * H;
    for (int j = 0; j < n; j++)
        SFX(gates)
        (kind, H, extra, a + GH * (size_t)j, h + (size_t)H * j, c ? c + (size_t)H * j : NULL);
}

/* y (O) = by + Wy (O, H) h: for O = 1 a dot product in two vector sums, else columns. */
KFN void SFX(head)(int O, int H, const float *wy, const float *by, const float *h, float *y)
{
    if (O != 1) {
        SFX(mv32)(y, by, wy, 0, (size_t)O, O, H, h, NULL);
        return;
    }
    V s0 = vset1(0.0f), s1 = vset1(0.0f);
    int j = 0;
    for (; j + 2 * VW <= H; j += 2 * VW) {
        s0 = vfma(vloadu(wy + j), vloadu(h + j), s0);
        s1 = vfma(vloadu(wy + j + VW), vloadu(h + j + VW), s1);
    }
    for (; j < H; j += VW) {
        const TM m = tmask(H - j < VW ? H - j : VW);
        s0 = vfma(vloadm(wy + j, m), vloadm(h + j, m), s0);
    }
    y[0] = by[0] + vhsum(vadd(s0, s1));
}

KFN void SFX(sigmoid_v)(float *x, int n)
{
    for (int j = 0; j < n; j += VW) {
        const TM m = tmask(n - j < VW ? n - j : VW);
        vstorem(x + j, m, SFX(vsig)(vloadm(x + j, m)));
    }
}

KFN void SFX(tanh_v)(float *x, int n)
{
    for (int j = 0; j < n; j += VW) {
        const TM m = tmask(n - j < VW ? n - j : VW);
        vstorem(x + j, m, SFX(vtanh)(vloadm(x + j, m)));
    }
}

/* dst (n) = src (n) halves widened (exactly) to float. */
KFN void SFX(widen)(float *dst, const uint16_t *src, size_t n)
{
    size_t j = 0;
    for (; j + VW <= n; j += VW)
        vstoreu(dst + j, vloadh(src + j));
    for (; j < n; j++)
        dst[j] = ad_half_to_float(src[j]);
}

/* The vocabulary is the includer's, per instruction set: undefined here so the next set
 * can define its own. */
#undef vhsum
#undef MV_SPLIT_NB
#undef SFX
#undef AINL
#undef KFN
#undef V
#undef VW
#undef TM
#undef VM
#undef vset1
#undef vloadu
#undef vstoreu
#undef vloadm
#undef vstorem
#undef tmask
#undef vadd
#undef vsub
#undef vmul
#undef vrcp
#undef vfma
#undef vmin
#undef vmax
#undef vabs
#undef vlt
#undef vsel
#undef vloadh
#undef vloadq
#undef vscale
