/*
 * shape.c - a network's shape: its check and the size table of its parameters (shape.h).
 */
#include "shape.h"

#include <stdio.h>
#include <string.h>

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

int ad_net_config_check(const ad_net_config *cfg, char *err, size_t errlen)
{
    if (!cfg) {
        ERR("no network configuration");
        return -AD_EINVAL;
    }
    if (!ad_cell_name(cfg->kind)) {
        ERR("unknown cell kind %d", (int)cfg->kind);
        return -AD_EINVAL;
    }
    if (cfg->layers < 1 || cfg->layers > AD_MAX_LAYERS) {
        ERR("layers must be 1..%d, got %d", AD_MAX_LAYERS, cfg->layers);
        return -AD_EINVAL;
    }
    if (cfg->input < 1 || cfg->input > AD_MAX_INPUT) {
        ERR("input size must be 1..%d, got %d", AD_MAX_INPUT, cfg->input);
        return -AD_EINVAL;
    }
    if (cfg->hidden < 1 || cfg->hidden > AD_MAX_HIDDEN) {
        ERR("hidden size must be 1..%d, got %d", AD_MAX_HIDDEN, cfg->hidden);
        return -AD_EINVAL;
    }
    if (cfg->output < 1 || cfg->output > AD_MAX_OUTPUT) {
        ERR("output size must be 1..%d, got %d", AD_MAX_OUTPUT, cfg->output);
        return -AD_EINVAL;
    }
    return 0;
}

/* Walks the size table: carves flat (if not NULL) and returns the total float count. */
static size_t layout(const ad_net_config *cfg, float *flat, ad_params *out)
{
    const size_t H = (size_t)cfg->hidden, GH = (size_t)ad_cell_gates(cfg->kind) * H;
    const size_t extra = ad_cell_extra_size(cfg->kind, cfg->hidden);
    size_t off = 0;

    if (out)
        memset(out, 0, sizeof(*out));
    for (int l = 0; l < cfg->layers; l++) {
        size_t din = l == 0 ? (size_t)cfg->input : H;
        if (out) {
            out->layer[l].wx = flat + off;
            out->layer[l].wh = flat + off + GH * din;
            out->layer[l].b = flat + off + GH * (din + H);
            out->layer[l].extra = extra ? flat + off + GH * (din + H + 1) : NULL;
        }
        off += GH * (din + H + 1) + extra;
    }
    if (out) {
        out->wy = flat + off;
        out->by = flat + off + (size_t)cfg->output * H;
    }
    off += (size_t)cfg->output * (H + 1);
    return off;
}

size_t ad_net_param_count(const ad_net_config *cfg)
{
    if (ad_net_config_check(cfg, NULL, 0) != 0)
        return 0;
    return layout(cfg, NULL, NULL);
}

void ad_net_views(const ad_net_config *cfg, float *flat, ad_params *out)
{
    layout(cfg, flat, out);
}
