/*
 * blob.h - bounded little-endian byte writers and readers, and CRC-32, for the
 * versioned, checksummed blobs the models library saves (serial.h) and the detector
 * will save. A writer or reader that runs past its end sets its err flag and does
 * nothing more, so callers check once at the end instead of after every field.
 */
#ifndef AD_BLOB_H
#define AD_BLOB_H

#include <stddef.h>
#include <stdint.h>

typedef struct ad_wbuf {
    uint8_t *p; /* destination, or NULL to only count bytes */
    size_t cap; /* bytes available at p */
    size_t len; /* bytes written (or counted) so far */
    int err;    /* set once a write did not fit */
} ad_wbuf;

typedef struct ad_rbuf {
    const uint8_t *p;
    size_t len; /* bytes available */
    size_t pos; /* bytes consumed */
    int err;    /* set once a read ran past the end */
} ad_rbuf;

void ad_wbuf_init(ad_wbuf *w, void *p, size_t cap);
void ad_put_bytes(ad_wbuf *w, const void *src, size_t n);
void ad_put_u16(ad_wbuf *w, uint16_t v);
void ad_put_u32(ad_wbuf *w, uint32_t v);
void ad_put_u64(ad_wbuf *w, uint64_t v);
void ad_put_f32(ad_wbuf *w, float v);
void ad_put_f64(ad_wbuf *w, double v);
void ad_put_f32v(ad_wbuf *w, const float *v, size_t n);

void ad_rbuf_init(ad_rbuf *r, const void *p, size_t len);
void ad_get_bytes(ad_rbuf *r, void *dst, size_t n);
uint16_t ad_get_u16(ad_rbuf *r);
uint32_t ad_get_u32(ad_rbuf *r);
uint64_t ad_get_u64(ad_rbuf *r);
float ad_get_f32(ad_rbuf *r);
double ad_get_f64(ad_rbuf *r);
void ad_get_f32v(ad_rbuf *r, float *v, size_t n);
/* Bytes left to read. */
size_t ad_rbuf_left(const ad_rbuf *r);

/* CRC-32 (IEEE 802.3, as zlib's crc32) of n bytes, continuing from crc (start with 0). */
uint32_t ad_crc32(uint32_t crc, const void *p, size_t n);

#endif
