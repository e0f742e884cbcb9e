/*
 * serial.h - a network (kind, shapes, parameters, optionally its optimiser's state) to
 * and from a byte blob.
 *
 * Layout (all little-endian), version 1:
 *   "ADNN"  u16 version  u16 flags (bit 0: optimiser state follows)
 *   u32 kind  u32 layers  u32 input  u32 hidden  u32 output  u64 nparams
 *   f32 params[nparams]
 *   if flags & 1: u32 optim kind, f32 lr, beta1, beta2, eps, weight_decay, u64 t,
 *                 and for Adam f32 m[nparams], f32 v[nparams]
 *   u32 CRC-32 of every byte before it
 * The kinds are stored as their codes (ad_cell_code, ad_optim_code: fixed tables, not the
 * enums' order).
 * A blob that is truncated, has trailing bytes, fails its checksum, carries another magic
 * or version, an invalid or unexpected shape, or non-finite numbers is refused with a
 * message naming the fault; nothing is allocated or changed when it is.
 */
#ifndef AD_SERIAL_H
#define AD_SERIAL_H

#include <stddef.h>

#include "net.h"
#include "optim.h"

#define AD_NET_BLOB_MAGIC   "ADNN"
#define AD_NET_BLOB_VERSION 1

/* Exact size in bytes of the blob ad_net_save would write (opt may be NULL). */
size_t ad_net_blob_size(const ad_net *net, const ad_optim *opt);

/*
 * Writes net (and opt's state if opt is not NULL) into buf (cap bytes). Returns 0 and the
 * length in *len, or -AD_EINVAL if cap is too small or opt does not match net.
 */
int ad_net_save(const ad_net *net, const ad_optim *opt, void *buf, size_t cap, size_t *len,
                char *err, size_t errlen);

/*
 * Reads a blob. If expect is not NULL the blob's shape must equal it. On success returns
 * 0 and a new network in *net; if opt is not NULL it receives the saved optimiser (or
 * NULL if the blob has none). On failure returns -AD_EFORMAT (or -AD_ENOMEM) with a
 * message, and *net (and *opt) are NULL.
 */
int ad_net_load(const void *buf, size_t len, const ad_net_config *expect, ad_net **net,
                ad_optim **opt, char *err, size_t errlen);

#endif
