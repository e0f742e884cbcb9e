/*
 * pack.h - a network's packed block (net.h, ad_net_set_storage): the one allocation the
 * streaming step reads when the weights are fp16 or int8, and the conversions between it
 * and the flat float parameter vector. Used by net.c; a layer of it, not an API of its own.
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
#include "net.h"

#define AD_PACK_ALIGN 64 /* the block's alignment, and its pieces' */

/* Walks a block of type wt (AD_W_F16 or AD_W_I8) for net's shape: with base (aligned to
 * AD_PACK_ALIGN), carves net->pl, pwy and pby into it; returns its size in bytes (a
 * multiple of AD_PACK_ALIGN). Writes nothing into the block. */
size_t ad_pack_layout(ad_net *net, ad_wtype wt, char *base);

/* Writes net's block (carved, of net->pack_wt) from a flat float parameter vector laid
 * out like net->params: the weight matrices narrowed to halves or quantised to int8, the
 * rest copied. */
void ad_pack_narrow(ad_net *net, const float *flat);

/* Floats [off, off + n) of net's flat parameter vector (off + n <= nparams) from its
 * block: halves widened, int8 dequantised (both exact), the float parts copied. */
void ad_pack_get(const ad_net *net, size_t off, size_t n, float *out);

/* w (G*H, Din + H) = layer l's packed [Wx | Wh] widened to floats (exact), with isa's
 * conversion instructions where there are some (ad_net_step_batch's products). */
void ad_pack_widen(const ad_net *net, int l, ad_isa isa, float *w);

#endif
