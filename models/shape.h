/*
 * shape.h - a network's shape (net.h) and the size table that lays its parameters out
 * in one flat float buffer: per layer Wx (G*H, Din), Wh (G*H, H), b (G*H) and the kind's
 * extra vector (cell.h), then the head Wy (O, H) and by (O), matrices column-major. The
 * lowest layer of the network: net.h and the packed block (pack.h) both build on it.
 */
#ifndef AD_SHAPE_H
#define AD_SHAPE_H

#include <stddef.h>

#include "cell.h"
#include "err.h"

#define AD_MAX_LAYERS 4
#define AD_MAX_INPUT  64 /* D */
#define AD_MAX_OUTPUT 64 /* O */
/* AD_MAX_HIDDEN (H) is in cell.h */

typedef struct ad_net_config {
    ad_cell_kind kind;
    int layers; /* 1..AD_MAX_LAYERS */
    int input;  /* D >= 1 */
    int hidden; /* H >= 1 */
    int output; /* O >= 1, usually 1 */
} ad_net_config;

/* Views of a whole network's parameters (or of a gradient buffer of the same shape). */
typedef struct ad_params {
    ad_layer_params layer[AD_MAX_LAYERS];
    float *wy; /* (O, H) column-major */
    float *by; /* (O) */
} ad_params;

/* Returns 0 if cfg is a valid shape, else -AD_EINVAL with a message in err. */
int ad_net_config_check(const ad_net_config *cfg, char *err, size_t errlen);

/* Number of parameters of a network of this shape (0 if the shape is invalid). */
size_t ad_net_param_count(const ad_net_config *cfg);

/* Carves a flat buffer laid out like a network of this shape into named views. */
void ad_net_views(const ad_net_config *cfg, float *flat, ad_params *out);

#endif
