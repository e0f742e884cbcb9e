/*
 * net.c - the network object (shapes, one flat parameter buffer), its storage modes
 * (float, fp16 or int8 packed blocks: pack.h), per-stream states, the streaming step
 * through the layers and the head, and the sequence workspace that runs layers and head
 * forward and backward for BPTT.
 */
#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "kern.h"
#include "pack.h"
#include "rng.h"

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

void ad_net_init_defaults(ad_net_init_opts *o)
{
    o->scale = 1.0f;
    o->forget_bias = 1.0f;
}

void ad_net_init(ad_net *net, uint64_t seed)
{
    ad_net_init_with(net, seed, NULL);
}

void ad_net_init_with(ad_net *net, uint64_t seed, const ad_net_init_opts *o)
{
    const ad_net_config *cfg = &net->cfg;
    const int H = cfg->hidden, GH = ad_cell_gates(cfg->kind) * H;
    ad_net_init_opts def;
    ad_rng rng;

    if (!o) {
        ad_net_init_defaults(&def);
        o = &def;
    }
    const float k = o->scale * (1.0f / sqrtf((float)H)); /* scale 1: exactly 1/sqrt(H) */
    const int fg = ad_cell_forget_gate(cfg->kind);

    if (!net->params) { /* packed only: widen, initialise the floats, pack them again */
        const int mode = ad_net_storage(net);
        const int masters = mode == AD_NET_INT8_ONLY ? AD_NET_INT8 : AD_NET_FP16;
        if (ad_net_set_storage(net, masters) == 0) { /* the same block with masters */
            ad_net_init_with(net, seed, o);
            ad_net_set_storage(net, mode); /* frees the floats: cannot fail */
        }
        return;
    }
    ad_rng_seed(&rng, seed);
    memset(net->params, 0, net->nparams * sizeof(float));
    for (int l = 0; l < cfg->layers; l++) {
        ad_layer_params *p = &net->p.layer[l];
        int din = l == 0 ? cfg->input : H;
        for (size_t i = 0; i < (size_t)GH * din; i++)
            p->wx[i] = k * (2.0f * ad_rng_uniform(&rng) - 1.0f);
        for (size_t i = 0; i < (size_t)GH * H; i++)
            p->wh[i] = k * (2.0f * ad_rng_uniform(&rng) - 1.0f);
        if (fg >= 0)
            for (int i = 0; i < H; i++)
                p->b[fg * H + i] = o->forget_bias;
        if (cfg->kind == AD_CELL_PEEPHOLE)
            for (int i = 0; i < 3 * H; i++)
                p->extra[i] = k * (2.0f * ad_rng_uniform(&rng) - 1.0f);
    }
    for (size_t i = 0; i < (size_t)cfg->output * H; i++)
        net->p.wy[i] = k * (2.0f * ad_rng_uniform(&rng) - 1.0f);
    ad_net_refresh(net);
}

void ad_net_set_forget_bias(ad_net *net, float v)
{
    const int fg = ad_cell_forget_gate(net->cfg.kind), H = net->cfg.hidden;

    if (fg < 0)
        return;
    if (!net->params) { /* packed only: through the float masters, as ad_net_init */
        const int mode = ad_net_storage(net);
        const int masters = mode == AD_NET_INT8_ONLY ? AD_NET_INT8 : AD_NET_FP16;
        if (ad_net_set_storage(net, masters) == 0) {
            ad_net_set_forget_bias(net, v);
            ad_net_set_storage(net, mode);
        }
        return;
    }
    for (int l = 0; l < net->cfg.layers; l++)
        for (int i = 0; i < H; i++)
            net->p.layer[l].b[fg * H + i] = v;
    ad_net_refresh(net);
}

int ad_net_create(const ad_net_config *cfg, uint64_t seed, ad_net **out, char *err, size_t errlen)
{
    int rc = ad_net_config_check(cfg, err, errlen);
    ad_net *net;

    *out = NULL;
    if (rc)
        return rc;
    net = calloc(1, sizeof(*net));
    if (!net)
        goto out_nomem;
    net->cfg = *cfg;
    net->nparams = ad_net_param_count(cfg);
    net->params = malloc(net->nparams * sizeof(*net->params));
    if (!net->params)
        goto out_free_net;
    ad_net_views(cfg, net->params, &net->p);
    ad_net_init(net, seed);
    *out = net;
    return 0;

out_free_net:
    free(net);
out_nomem:
    ERR("out of memory for a network");
    return -AD_ENOMEM;
}

ad_net *ad_net_clone(const ad_net *src)
{
    ad_net *net;
    if (ad_net_create(&src->cfg, 0, &net, NULL, 0) != 0)
        return NULL;
    ad_net_get_params(src, 0, src->nparams, net->params);
    return net;
}

int ad_net_copy_params(ad_net *dst, const ad_net *src)
{
    if (memcmp(&dst->cfg, &src->cfg, sizeof(dst->cfg)) != 0 || dst->nparams != src->nparams)
        return -AD_EINVAL;
    if (dst->params) { /* floats (and the block refreshed from them) */
        ad_net_get_params(src, 0, src->nparams, dst->params);
        ad_net_refresh(dst);
    } else if (src->params) { /* packed only: src's floats packed */
        ad_pack_narrow(&dst->cfg, dst->pl, dst->pwy, dst->pby, src->params);
    } else if (src->pack_wt == dst->pack_wt) { /* packed only from the same: one layout */
        memcpy(dst->pack, src->pack, dst->pack_bytes);
    } else { /* packed only from packed only of another type: through floats */
        float *flat = malloc(src->nparams * sizeof(*flat));
        if (!flat)
            return -AD_ENOMEM;
        ad_net_get_params(src, 0, src->nparams, flat);
        ad_pack_narrow(&dst->cfg, dst->pl, dst->pwy, dst->pby, flat);
        free(flat);
    }
    return 0;
}

void ad_net_free(ad_net *net)
{
    if (!net)
        return;
    free(net->pack);
    free(net->params);
    free(net);
}

size_t ad_net_bytes(const ad_net *net)
{
    return sizeof(*net) + (net->params ? net->nparams * sizeof(float) : 0) + net->pack_bytes;
}

void ad_net_prefetch(const ad_net *net)
{
    const char *p = net->pack ? (const char *)net->pack : (const char *)net->params;
    const size_t n = net->pack ? net->pack_bytes : net->nparams * sizeof(float);
    for (size_t off = 0; off < n; off += 64)
        __builtin_prefetch(p + off, 0, 3);
}

void ad_net_get_params(const ad_net *net, size_t off, size_t n, float *out)
{
    if (off >= net->nparams)
        return;
    if (n > net->nparams - off)
        n = net->nparams - off;
    if (net->params)
        memcpy(out, net->params + off, n * sizeof(float));
    else
        ad_pack_get(&net->cfg, net->pl, net->pwy, off, n, out);
}

int ad_net_params_finite(const ad_net *net)
{
    float buf[256];

    for (size_t off = 0; off < net->nparams; off += 256) {
        const size_t n = net->nparams - off < 256 ? net->nparams - off : 256;
        ad_net_get_params(net, off, n, buf);
        for (size_t i = 0; i < n; i++)
            if (!isfinite(buf[i]))
                return 0;
    }
    return 1;
}

void ad_net_refresh(ad_net *net)
{
    if (net->pack && net->params)
        ad_pack_narrow(&net->cfg, net->pl, net->pwy, net->pby, net->params);
}

/* The block type of a storage mode, and whether the mode keeps the float masters. */
static ad_wtype mode_wtype(enum ad_net_storage mode)
{
    switch (mode) {
    case AD_NET_FP16:
    case AD_NET_FP16_ONLY:
        return AD_W_F16;
    case AD_NET_INT8:
    case AD_NET_INT8_ONLY:
        return AD_W_I8;
    case AD_NET_FP32:
        break;
    }
    return AD_W_F32;
}

static int mode_floats(int mode)
{
    return mode == AD_NET_FP32 || mode == AD_NET_FP16 || mode == AD_NET_INT8;
}

int ad_net_set_storage(ad_net *net, int mode)
{
    float *params = NULL;
    char *base = NULL;
    size_t nb = 0;

    if (mode < AD_NET_FP32 || mode > AD_NET_INT8_ONLY)
        return -AD_EINVAL;
    const ad_wtype wt = mode_wtype((enum ad_net_storage)mode);
    /* the floats, widened from the block: for the mode, or to pack them another way */
    if (!net->params && (mode_floats(mode) || net->pack_wt != wt)) {
        params = malloc(net->nparams * sizeof(*params));
        if (!params)
            return -AD_ENOMEM;
        ad_net_get_params(net, 0, net->nparams, params);
    }
    if (wt != AD_W_F32 && (!net->pack || net->pack_wt != wt)) { /* a new block */
        nb = ad_pack_layout(&net->cfg, wt, NULL, NULL, NULL, NULL);
        base = aligned_alloc(AD_PACK_ALIGN, nb);
        if (!base) {
            free(params);
            return -AD_ENOMEM; /* unchanged */
        }
        memset(base, 0, nb); /* the slack is read (and discarded) by the kernels */
    }
    /* nothing fails from here on */
    if (params) {
        net->params = params;
        ad_net_views(&net->cfg, params, &net->p);
    }
    if (base || wt == AD_W_F32) { /* the old block goes */
        free(net->pack);
        net->pack = NULL;
        net->pack_bytes = 0;
        net->pack_wt = AD_W_F32;
        memset(net->pl, 0, sizeof(net->pl));
        net->pwy = net->pby = NULL;
    }
    if (base) {
        net->pack = base;
        net->pack_bytes = nb;
        net->pack_wt = wt;
        ad_pack_layout(&net->cfg, wt, base, net->pl, &net->pwy, &net->pby);
    }
    ad_net_refresh(net); /* the block from the floats, if both are there */
    if (!mode_floats(mode)) {
        free(net->params);
        net->params = NULL;
        memset(&net->p, 0, sizeof(net->p));
    }
    return 0;
}

int ad_net_storage(const ad_net *net)
{
    if (!net->pack)
        return AD_NET_FP32;
    if (net->pack_wt == AD_W_I8)
        return net->params ? AD_NET_INT8 : AD_NET_INT8_ONLY;
    return net->params ? AD_NET_FP16 : AD_NET_FP16_ONLY;
}

/* ---- states ---- */

ad_state *ad_state_create(const ad_net *net)
{
    const int L = net->cfg.layers, H = net->cfg.hidden;
    const int has_c = ad_cell_has_c(net->cfg.kind);
    size_t n = (size_t)L * H * (has_c ? 2 : 1);
    ad_state *st = calloc(1, sizeof(*st) + n * sizeof(float));

    if (!st)
        return NULL;
    st->layers = L;
    st->hidden = H;
    st->has_c = has_c;
    st->h = (float *)(st + 1);
    st->c = has_c ? st->h + (size_t)L * H : NULL;
    return st;
}

void ad_state_reset(ad_state *st)
{
    memset(st->h, 0, (size_t)st->layers * st->hidden * (st->has_c ? 2 : 1) * sizeof(float));
}

void ad_state_free(ad_state *st)
{
    free(st);
}

size_t ad_state_bytes(const ad_state *st)
{
    return sizeof(*st) + (size_t)st->layers * st->hidden * (st->has_c ? 2 : 1) * sizeof(float);
}

/* The head y (O) = by + Wy h (H): kern.h's kernel, or on the plain path the columns
 * added in order (as the reference product kernel). */
static void step_head(const ad_net *net, ad_isa isa, int plain, const float *h, float *y)
{
    const int H = net->cfg.hidden, O = net->cfg.output;
    const float *wy = net->pack ? net->pwy : net->p.wy;

    if (!plain) {
        ad_kern_head(isa, O, H, wy, net->pack ? net->pby : net->p.by, h, y);
        return;
    }
    memcpy(y, net->p.by, (size_t)O * sizeof(float));
    for (int k = 0; k < H; k++) {
        const float *w = wy + (size_t)k * O;
        for (int o = 0; o < O; o++)
            y[o] += w[o] * h[k];
    }
}

void ad_net_step(const ad_net *net, ad_state *st, const float *x, float *y)
{
    const ad_net_config *cfg = &net->cfg;
    const int H = cfg->hidden, GH = ad_cell_gates(cfg->kind) * H;
    const int ref = ad_blas_reference();
    const ad_isa isa = ref ? AD_ISA_C : ad_kern_best_isa();
    /* float weights on the portable path: the plain kernel (what reference mode needs,
     * and auto-vectorised, faster there than the one-lane fused C kernel) */
    const int plain = !net->pack && isa == AD_ISA_C;
    const float *in = x;

    for (int l = 0; l < cfg->layers; l++) {
        const int din = l == 0 ? cfg->input : H;
        const ad_layer_params *p = &net->p.layer[l];
        float *h = st->h + (size_t)l * H;
        float *c = st->c ? st->c + (size_t)l * H : NULL;
        if (plain) {
            ad_cell_step(cfg->kind, din, H, p, in, h, c);
        } else if (net->pack) {
            ad_kern_step(isa, cfg->kind, din, H, &net->pl[l], in, h, c);
        } else {
            const ad_kern_layer L = {
                .w = p->wx, .ld = GH, .wt = AD_W_F32, .scale = NULL, .b = p->b, .extra = p->extra};
            ad_kern_step(isa, cfg->kind, din, H, &L, in, h, c);
        }
        in = h;
    }
    step_head(net, isa, plain, in, y);
}

size_t ad_net_step_bytes(const ad_net *net)
{
    return net->pack ? offsetof(ad_net, pl) + (size_t)net->cfg.layers * sizeof(ad_kern_layer)
                     : sizeof(ad_net);
}

/* ---- sequence workspace ---- */

struct ad_seq {
    ad_net_config cfg;
    int tmax, bmax; /* capacity */
    int T, B;       /* shape of the last forward */
    const float *x; /* input of the last forward (caller's) */
    ad_cell_cache cache[AD_MAX_LAYERS];
    ad_cell_scratch scratch;
    float *y;        /* (O, B*T) outputs */
    float *dhout[2]; /* (H, B*T) gradients arriving at a layer's outputs, ping-pong */
    float *grad;     /* (nparams) */
    size_t nparams;
    size_t bytes;
    float *mem; /* the one allocation */
};

/* Carves (or, with base NULL, measures) the workspace's buffers. */
static size_t seq_layout(ad_seq *ws, float *base)
{
    const ad_net_config *cfg = &ws->cfg;
    const size_t H = (size_t)cfg->hidden, GH = (size_t)ad_cell_gates(cfg->kind) * H;
    const size_t BT = (size_t)ws->tmax * ws->bmax, B = (size_t)ws->bmax;
    const int has_c = ad_cell_has_c(cfg->kind);
    const int gru = cfg->kind == AD_CELL_GRU || cfg->kind == AD_CELL_GRU_TORCH;
    size_t off = 0;
#define TAKE(ptr, n)                                                                               \
    do {                                                                                           \
        if (base)                                                                                  \
            (ptr) = base + off;                                                                    \
        off += (n);                                                                                \
    } while (0)

    for (int l = 0; l < cfg->layers; l++) {
        ad_cell_cache *cc = &ws->cache[l];
        TAKE(cc->gates, GH * BT);
        TAKE(cc->h, H * (BT + B));
        if (has_c) {
            TAKE(cc->c, H * (BT + B));
            TAKE(cc->tc, H * BT);
        }
        if (gru)
            TAKE(cc->aux, H * BT);
    }
    TAKE(ws->scratch.dax, GH * BT);
    if (cfg->kind == AD_CELL_GRU_TORCH)
        TAKE(ws->scratch.dah, GH * BT);
    TAKE(ws->scratch.dh, H * B);
    TAKE(ws->scratch.dhn, H * B);
    TAKE(ws->scratch.dc, H * B);
    TAKE(ws->scratch.tmp, H * B);
    TAKE(ws->y, (size_t)cfg->output * BT);
    TAKE(ws->dhout[0], H * BT);
    TAKE(ws->dhout[1], H * BT);
    TAKE(ws->grad, ws->nparams);
#undef TAKE
    return off;
}

int ad_seq_create(const ad_net *net, int T, int B, ad_seq **out, char *err, size_t errlen)
{
    ad_seq *ws;
    size_t n;

    *out = NULL;
    if (T < 1 || B < 1 || (size_t)T * (size_t)B > ((size_t)1 << 24)) {
        ERR("sequence workspace needs 1 <= T, 1 <= B and T*B <= 2^24 (got T=%d, B=%d)", T, B);
        return -AD_EINVAL;
    }
    ws = calloc(1, sizeof(*ws));
    if (!ws)
        goto out_nomem;
    ws->cfg = net->cfg;
    ws->tmax = T;
    ws->bmax = B;
    ws->nparams = net->nparams;
    n = seq_layout(ws, NULL);
    ws->mem = calloc(n, sizeof(float));
    if (!ws->mem)
        goto out_free_ws;
    seq_layout(ws, ws->mem);
    ws->bytes = sizeof(*ws) + n * sizeof(float);
    *out = ws;
    return 0;

out_free_ws:
    free(ws);
out_nomem:
    ERR("out of memory for a T=%d, B=%d sequence workspace", T, B);
    return -AD_ENOMEM;
}

void ad_seq_free(ad_seq *ws)
{
    if (!ws)
        return;
    free(ws->mem);
    free(ws);
}

size_t ad_seq_bytes(const ad_seq *ws)
{
    return ws->bytes;
}

float *ad_seq_grad(ad_seq *ws)
{
    return ws->grad;
}

void ad_seq_zero_grad(ad_seq *ws)
{
    memset(ws->grad, 0, ws->nparams * sizeof(float));
}

const float *ad_seq_forward(const ad_net *net, ad_seq *ws, const float *x, int T, int B)
{
    return ad_seq_forward_init(net, ws, x, T, B, NULL, NULL);
}

const float *ad_seq_forward_init(const ad_net *net, ad_seq *ws, const float *x, int T, int B,
                                 const float *h0, const float *c0)
{
    const ad_net_config *cfg = &net->cfg;
    const int H = cfg->hidden, O = cfg->output, BT = B * T;
    const float *in = x;

    if (T < 1 || B < 1 || T > ws->tmax || B > ws->bmax || !net->params)
        return NULL;
    ws->T = T;
    ws->B = B;
    ws->x = x;
    for (int l = 0; l < cfg->layers; l++) {
        const size_t so = (size_t)H * B * l; /* layer l's block of a state batch */
        ad_cell_seq_forward_init(cfg->kind, l == 0 ? cfg->input : H, H, T, B, &net->p.layer[l], in,
                                 h0 ? h0 + so : NULL, c0 ? c0 + so : NULL, &ws->cache[l]);
        in = ws->cache[l].h + (size_t)H * B; /* h_0 .. h_{T-1} */
    }
    for (int j = 0; j < BT; j++)
        memcpy(ws->y + (size_t)j * O, net->p.by, (size_t)O * sizeof(float));
    ad_gemm(0, 0, O, BT, H, 1.0f, net->p.wy, O, in, H, 1.0f, ws->y, O);
    return ws->y;
}

void ad_seq_backward(const ad_net *net, ad_seq *ws, const float *dy, float *dx)
{
    ad_seq_backward_init(net, ws, dy, dx, NULL, NULL, NULL, NULL);
}

void ad_seq_backward_init(const ad_net *net, ad_seq *ws, const float *dy, float *dx,
                          const float *dhT, const float *dcT, float *dh0, float *dc0)
{
    ad_seq_backward_dh(net, ws, dy, dx, dhT, dcT, dh0, dc0, NULL);
}

void ad_seq_backward_dh(const ad_net *net, ad_seq *ws, const float *dy, float *dx,
                        const float *dhT, const float *dcT, float *dh0, float *dc0, float *dhs)
{
    const ad_net_config *cfg = &net->cfg;
    const int H = cfg->hidden, O = cfg->output, T = ws->T, B = ws->B, BT = B * T;
    const int top = cfg->layers - 1;
    const float *htop = ws->cache[top].h + (size_t)H * B;
    ad_params g;
    int cur = 0;

    if (!net->params) /* packed only: no forward ran on it either */
        return;
    ad_net_views(cfg, ws->grad, &g);
    /* head */
    if (dy) {
        ad_gemm(0, 1, O, H, BT, 1.0f, dy, O, htop, H, 1.0f, g.wy, O);
        for (int j = 0; j < BT; j++)
            for (int o = 0; o < O; o++)
                g.by[o] += dy[(size_t)j * O + o];
        ad_gemm(1, 0, H, BT, O, 1.0f, net->p.wy, O, dy, O, 0.0f, ws->dhout[cur], H);
    } else {
        memset(ws->dhout[cur], 0, (size_t)H * BT * sizeof(float));
    }

    for (int l = top; l >= 0; l--) {
        const float *in = l == 0 ? ws->x : ws->cache[l - 1].h + (size_t)H * B;
        float *din = l == 0 ? dx : ws->dhout[cur ^ 1];
        const size_t so = (size_t)H * B * l; /* layer l's block of a state batch */
        ws->scratch.dhs = dhs ? dhs + (size_t)H * BT * l : NULL; /* layer l's (H, B*T) */
        ad_cell_seq_backward_init(cfg->kind, l == 0 ? cfg->input : H, H, T, B, &net->p.layer[l],
                                  &g.layer[l], in, &ws->cache[l], ws->dhout[cur], din, &ws->scratch,
                                  dhT ? dhT + so : NULL, dcT ? dcT + so : NULL,
                                  dh0 ? dh0 + so : NULL, dc0 ? dc0 + so : NULL);
        cur ^= 1;
    }
    ws->scratch.dhs = NULL;
}

void ad_seq_final_state(const ad_seq *ws, int b, ad_state *st)
{
    const int H = ws->cfg.hidden, B = ws->B, T = ws->T;
    for (int l = 0; l < ws->cfg.layers; l++) {
        size_t off = (size_t)H * ((size_t)B * T + b);
        memcpy(st->h + (size_t)l * H, ws->cache[l].h + off, (size_t)H * sizeof(float));
        if (st->c)
            memcpy(st->c + (size_t)l * H, ws->cache[l].c + off, (size_t)H * sizeof(float));
    }
}

void ad_seq_final_states(const ad_seq *ws, float *h, float *c)
{
    const size_t HB = (size_t)ws->cfg.hidden * ws->B, last = HB * ws->T;
    for (int l = 0; l < ws->cfg.layers; l++) {
        memcpy(h + HB * l, ws->cache[l].h + last, HB * sizeof(float));
        if (c && ws->cache[l].c)
            memcpy(c + HB * l, ws->cache[l].c + last, HB * sizeof(float));
    }
}

float ad_mse(const float *y, const float *target, size_t n, float *dy)
{
    double ss = 0.0;
    const float s = 2.0f / (float)n;
    for (size_t i = 0; i < n; i++) {
        float d = y[i] - target[i];
        ss += (double)d * d;
        if (dy)
            dy[i] = s * d;
    }
    return (float)(ss / (double)n);
}

/* ---- batched steps ---- */

void ad_net_batch_free(ad_net_batch *ws)
{
    free(ws->buf);
    ws->buf = NULL;
    ws->cap = 0;
}

/* Floats of scratch a batch of n streams needs: the widened weights of the largest
 * layer (packed networks), then xh (max(D, H) + H, n), a (G*H, n), cp, c, h, aux (H, n). */
static size_t batch_floats(const ad_net *net, int n)
{
    const size_t H = (size_t)net->cfg.hidden, GH = (size_t)ad_cell_gates(net->cfg.kind) * H;
    const size_t in = (size_t)net->cfg.input > H ? (size_t)net->cfg.input : H;

    return (net->pack ? GH * (in + H) : 0) + (size_t)n * (in + H + GH + 4 * H);
}

void ad_net_step_batch(const ad_net *net, ad_state *const *st, const float *X, float *Y, int n,
                       ad_net_batch *ws)
{
    const ad_net_config *cfg = &net->cfg;
    const int D = cfg->input, H = cfg->hidden, O = cfg->output;
    const int GH = ad_cell_gates(cfg->kind) * H, has_c = ad_cell_has_c(cfg->kind);
    const int gmin = ws->gemm_min > 0 ? ws->gemm_min : AD_NET_BATCH_GEMM_MIN;
    const size_t in = D > H ? (size_t)D : (size_t)H;
    const int ref = ad_blas_reference();
    const ad_isa isa = ref ? AD_ISA_C : ad_kern_best_isa();
    const size_t need = n > 0 ? batch_floats(net, n) : 0;
    /* Elman and the LSTM kinds outside reference mode: kern.h's gate kernel (the step's
     * own activations); else cell.c's batch step (the reference, and the GRU kinds) */
    const int fused = !ref && cfg->kind != AD_CELL_GRU && cfg->kind != AD_CELL_GRU_TORCH;
    float *w, *xh, *a, *cp, *c, *h, *aux;

    if (n <= 0)
        return;
    if (need > ws->cap && n >= gmin) {
        float *nb = realloc(ws->buf, need * sizeof(float));
        if (nb) {
            ws->buf = nb;
            ws->cap = need;
        }
    }
    if (n < gmin || need > ws->cap) { /* small (or no room): the fused step per stream */
        for (int j = 0; j < n; j++)
            ad_net_step(net, st[j], X + (size_t)D * j, Y + (size_t)O * j);
        return;
    }
    w = ws->buf;
    xh = w + (net->pack ? (size_t)GH * (in + H) : 0);
    a = xh + (in + H) * n;
    cp = a + (size_t)GH * n;
    c = fused ? cp : cp + (size_t)H * n; /* the gate kernel updates c in place */
    h = c + (size_t)H * n;
    aux = h + (size_t)H * n;
    for (int l = 0; l < cfg->layers; l++) {
        const int din = l == 0 ? D : H, ld = din + H;
        const size_t lo = (size_t)H * l;
        ad_layer_params p = net->p.layer[l];

        if (net->pack) { /* the halves or int8 ad_net_step reads, widened (exactly) to
                          * float; b and extra the block's (the masters' values, if any) */
            ad_pack_widen(&net->cfg, net->pl, l, isa, w);
            p.wx = w;
            p.wh = w + (size_t)GH * din;
            p.b = (float *)(void *)net->pl[l].b;
            p.extra = (float *)(void *)net->pl[l].extra;
        }
        for (int j = 0; j < n; j++) { /* gather: [x; h_{t-1}] and c_{t-1} of each stream */
            float *col = xh + (size_t)ld * j;
            const float *x = l == 0 ? X + (size_t)D * j : st[j]->h + lo - H;

            memcpy(col, x, (size_t)din * sizeof(float));
            memcpy(col + din, st[j]->h + lo, (size_t)H * sizeof(float));
            if (has_c)
                memcpy(cp + (size_t)H * j, st[j]->c + lo, (size_t)H * sizeof(float));
        }
        if (fused) { /* the products, then kern.h's gate kernel over the n columns */
            for (int j = 0; j < n; j++)
                memcpy(a + (size_t)GH * j, p.b, (size_t)GH * sizeof(float));
            ad_gemm(0, 0, GH, n, ld, 1.0f, p.wx, GH, xh, ld, 1.0f, a, GH);
            ad_kern_gates(isa, cfg->kind, H, n, p.extra, a, h, has_c ? cp : NULL);
        } else {
            ad_cell_step_batch(cfg->kind, din, H, n, &p, xh, cp, a, aux, h, c);
        }
        for (int j = 0; j < n; j++) { /* scatter the new h and c */
            memcpy(st[j]->h + lo, h + (size_t)H * j, (size_t)H * sizeof(float));
            if (has_c)
                memcpy(st[j]->c + lo, c + (size_t)H * j, (size_t)H * sizeof(float));
        }
    }
    for (int j = 0; j < n; j++)
        step_head(net, isa, !net->pack && isa == AD_ISA_C, st[j]->h + (size_t)H * (cfg->layers - 1),
                  Y + (size_t)O * j);
}
