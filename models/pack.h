/*
 * pack.h - a network's packed block (net.h, ad_net_set_storage): the one allocation the
 * streaming step reads when the weights are fp16 or int8, and the conversions between it
 * and the flat float parameter vector. Used by net.c; a layer of it, not an API of its own:
 * it knows a network's shape (shape.h) and the views into the block net.h's ad_net keeps
 * (pl, pwy, pby), passed in, never the network itself.
 *
 * Layout: per layer [Wx | Wh] (G*H, Din + H), column-major with ld = G*H, as halves
 * (half.h) or int8 (quant.h), with the kernels' slack after it (AD_KERN_HALF_SLACK or
 * AD_KERN_I8_SLACK elements, zeroed: read and discarded); then as floats the rows'
 * scales (int8 only), b and the kind's extra vector; after the layers the head Wy (O, H)
 * and by (O) as floats. Each piece starts on a 64-byte line (AD_PACK_ALIGN), so a step
 * reads whole lines and ad_net_prefetch one range.
 *
 * Sizes, LSTM H=32, D=1, O=1 (G*H = 128, 33 columns): fp16 8,448 + 32 bytes of weights
 * (8,512 on lines), 512 of biases, 192 of head: 9,216 bytes; int8 4,224 + 16 (4,288),
 * 512 of scales and 512 of biases, 192 of head: 5,504 bytes.
 */
#ifndef AD_PACK_H
#define AD_PACK_H

#include <stddef.h>

#include "kern.h"
#include "shape.h"

#define AD_PACK_ALIGN 64 /* the block's alignment, and its pieces' */

/* Walks a block of type wt (AD_W_F16 or AD_W_I8) for shape cfg: with base (aligned to
 * AD_PACK_ALIGN), carves the layers' views pl (cfg->layers of them) and the head's *wy and
 * *by into it; returns its size in bytes (a multiple of AD_PACK_ALIGN). Writes nothing
 * into the block (base NULL: measures only; pl, wy, by are then unused). */
size_t ad_pack_layout(const ad_net_config *cfg, ad_wtype wt, char *base, ad_kern_layer *pl,
                      const float **wy, const float **by);

/* Writes a block carved by ad_pack_layout (its views pl, wy, by; of pl's type) from a flat
 * float parameter vector laid out as shape.h says: the weight matrices narrowed to halves
 * or quantised to int8, the rest copied. */
void ad_pack_narrow(const ad_net_config *cfg, const ad_kern_layer *pl, const float *wy,
                    const float *by, const float *flat);

/* Floats [off, off + n) of the flat parameter vector (off + n <= the parameter count) from
 * the block (views pl, wy): halves widened, int8 dequantised (both exact), the float parts
 * copied. */
void ad_pack_get(const ad_net_config *cfg, const ad_kern_layer *pl, const float *wy, size_t off,
                 size_t n, float *out);

/* w (G*H, Din + H) = layer l's packed [Wx | Wh] (pl[l]) widened to floats (exact), with
 * isa's conversion instructions where there are some (ad_net_step_batch's products). */
void ad_pack_widen(const ad_net_config *cfg, const ad_kern_layer *pl, int l, ad_isa isa, float *w);

#endif
