/*
 * pack.c - the packed block (pack.h): layout, packing floats into it, reading them out.
 */
#include "pack.h"

#include <stdint.h>
#include <string.h>

#include "half.h"
#include "quant.h"

static size_t line_up(size_t n)
{
    return (n + AD_PACK_ALIGN - 1) / AD_PACK_ALIGN * AD_PACK_ALIGN;
}

/* Bytes of a packed [Wx | Wh] of n elements with the kernels' slack. */
static size_t packed_matrix_bytes(ad_wtype wt, size_t n)
{
    return wt == AD_W_I8 ? n + AD_KERN_I8_SLACK : (n + AD_KERN_HALF_SLACK) * sizeof(uint16_t);
}

size_t ad_pack_layout(const ad_net_config *cfg, ad_wtype wt, char *base, ad_kern_layer *pl,
                      const float **wy, const float **by)
{
    const size_t H = (size_t)cfg->hidden, GH = (size_t)ad_cell_gates(cfg->kind) * H;
    const size_t extra = ad_cell_extra_size(cfg->kind, cfg->hidden);
    const size_t nscale = wt == AD_W_I8 ? GH : 0;
    size_t off = 0;

    for (int l = 0; l < cfg->layers; l++) {
        const size_t din = l == 0 ? (size_t)cfg->input : H;
        const size_t wbytes = line_up(packed_matrix_bytes(wt, GH * (din + H)));
        if (base) {
            ad_kern_layer *L = &pl[l];
            const float *fl = (const float *)(void *)(base + off + wbytes);
            L->w = base + off;
            L->ld = (int)GH;
            L->wt = wt;
            L->scale = nscale ? fl : NULL;
            L->b = fl + nscale;
            L->extra = extra ? L->b + GH : NULL;
        }
        off += wbytes + line_up((nscale + GH + extra) * sizeof(float));
    }
    if (base) {
        *wy = (const float *)(void *)(base + off);
        *by = *wy + (size_t)cfg->output * H;
    }
    off += line_up((size_t)cfg->output * (H + 1) * sizeof(float));
    return off;
}

void ad_pack_narrow(const ad_net_config *cfg, const ad_kern_layer *pl, const float *wy,
                    const float *by, const float *flat)
{
    const size_t H = (size_t)cfg->hidden, GH = (size_t)ad_cell_gates(cfg->kind) * H;
    const size_t extra = ad_cell_extra_size(cfg->kind, cfg->hidden);
    ad_params p;

    ad_net_views(cfg, (float *)(void *)flat, &p); /* views only: nothing is written */
    for (int l = 0; l < cfg->layers; l++) {
        const size_t din = l == 0 ? (size_t)cfg->input : H;
        const ad_kern_layer *L = &pl[l];
        /* Wh follows Wx in the flat buffer: [Wx | Wh] is one run of GH*(din+H) floats */
        if (L->wt == AD_W_I8)
            ad_quant_rows((int8_t *)(void *)L->w, (float *)(void *)L->scale, p.layer[l].wx, GH,
                          din + H);
        else
            ad_half_from_floats((uint16_t *)(void *)L->w, p.layer[l].wx, GH * (din + H));
        memcpy((float *)(void *)L->b, p.layer[l].b, GH * sizeof(float));
        if (extra)
            memcpy((float *)(void *)L->extra, p.layer[l].extra, extra * sizeof(float));
    }
    memcpy((float *)(void *)wy, p.wy, (size_t)cfg->output * H * sizeof(float));
    memcpy((float *)(void *)by, p.by, (size_t)cfg->output * sizeof(float));
}

/* The part of the run [pos, pos + len) of the flat vector inside [off, off + n), from src
 * (floats; or, with L, L's packed matrix widened) into out (which holds [off, off + n)).
 * Returns pos + len, the next run's start. */
static size_t run_get(size_t pos, size_t len, const void *src, const ad_kern_layer *L, size_t off,
                      size_t n, float *out)
{
    const size_t lo = pos > off ? pos : off, hi = pos + len < off + n ? pos + len : off + n;

    if (lo >= hi)
        return pos + len;
    if (!L)
        memcpy(out + (lo - off), (const float *)src + (lo - pos), (hi - lo) * sizeof(float));
    else if (L->wt == AD_W_I8)
        ad_quant_get(out + (lo - off), (const int8_t *)L->w, L->scale, (size_t)L->ld, lo - pos,
                     hi - lo);
    else
        ad_half_to_floats(out + (lo - off), (const uint16_t *)L->w + (lo - pos), hi - lo);
    return pos + len;
}

void ad_pack_get(const ad_net_config *cfg, const ad_kern_layer *pl, const float *wy, size_t off,
                 size_t n, float *out)
{
    const size_t H = (size_t)cfg->hidden, GH = (size_t)ad_cell_gates(cfg->kind) * H;
    const size_t extra = ad_cell_extra_size(cfg->kind, cfg->hidden);
    size_t pos = 0;

    /* the flat order is per layer [Wx | Wh] (packed in the block), b and extra (floats,
     * adjacent in the block too); then Wy and by (adjacent floats) */
    for (int l = 0; l < cfg->layers; l++) {
        const size_t din = l == 0 ? (size_t)cfg->input : H;
        pos = run_get(pos, GH * (din + H), NULL, &pl[l], off, n, out);
        pos = run_get(pos, GH + extra, pl[l].b, NULL, off, n, out);
    }
    run_get(pos, (size_t)cfg->output * (H + 1), wy, NULL, off, n, out);
}

void ad_pack_widen(const ad_net_config *cfg, const ad_kern_layer *pl, int l, ad_isa isa, float *w)
{
    const ad_kern_layer *L = &pl[l];
    const size_t GH = (size_t)L->ld, din = l == 0 ? (size_t)cfg->input : (size_t)cfg->hidden;
    const size_t n = GH * (din + (size_t)cfg->hidden);

    if (L->wt == AD_W_I8)
        ad_quant_get(w, (const int8_t *)L->w, L->scale, GH, 0, n);
    else
        ad_kern_widen(isa, w, (const uint16_t *)L->w, n);
}
