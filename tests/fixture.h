/*
 * fixture.h - reading the reference fixtures that scripts/gen_fixtures.py writes with
 * PyTorch (tests/fixtures/torch_*.bin): named float32 arrays with their dims.
 *
 * File format (all little-endian), version 1:
 *
 *   "ADFX"            4 bytes magic
 *   u32 version       1
 *   u32 narrays       at most AD_FX_MAX_ARRAYS
 *   narrays times:
 *       u32 name_len  1..AD_FX_MAX_NAME
 *       name bytes    no NUL
 *       u32 ndim      0..AD_FX_MAX_DIM
 *       u32 dims[ndim]
 *       f32 data[prod(dims)]  C (row-major) order of dims, i.e. PyTorch's natural layout;
 *                             ndim 0 is a scalar (one float)
 *   u32 CRC-32        zlib's crc32 of every byte before it
 *
 * There are no separate scalars: shapes are the dims of the arrays (the torch fixtures
 * store x as (T, B, D), and the loss as a 1-element array of dims (1)); see the script
 * for the array names of each fixture.
 *
 * A file that is truncated, has trailing bytes, fails its checksum, carries another magic
 * or version, has a name of bad length, too many dims or arrays, a size that overflows,
 * or a duplicate name is refused with a message naming the fault and the byte offset;
 * nothing is allocated when it is. Loading never reads outside the given bytes.
 *
 * Errors are the models library's codes (net.h), negated: -AD_EFORMAT for a damaged file,
 * -AD_ENOMEM, and -AD_EINVAL for bad arguments or a file that cannot be read (the message
 * then carries strerror(errno)).
 *
 * For tests only (library ad_testutil); reads files, so it stays out of ad_models.
 */
#ifndef AD_FIXTURE_H
#define AD_FIXTURE_H

#include <stddef.h>

#include "net.h" /* enum ad_err: the error codes returned */

#define AD_FX_MAGIC      "ADFX"
#define AD_FX_VERSION    1
#define AD_FX_MAX_NAME   255
#define AD_FX_MAX_DIM    8
#define AD_FX_MAX_ARRAYS 4096
#define AD_FX_MAX_FILE   (64u << 20) /* bytes: fixtures are small, refuse anything huge */

typedef struct ad_fx_array {
    char name[AD_FX_MAX_NAME + 1]; /* NUL-terminated */
    int ndim;                      /* 0..AD_FX_MAX_DIM */
    size_t dims[AD_FX_MAX_DIM];    /* (ndim), row-major: the last dim varies fastest */
    size_t n;                      /* prod(dims) floats (1 for ndim 0) */
    const float *data;             /* (n) decoded, aligned, owned by the ad_fx */
} ad_fx_array;

typedef struct ad_fx {
    int narrays;
    ad_fx_array *arrays; /* (narrays) in file order */
    float *data;         /* every array's floats, the one data allocation */
} ad_fx;

/*
 * Parses a fixture held in memory (len bytes at buf; buf is not kept). Returns 0 and a
 * new ad_fx in *out, or a negative ad_err with a message in err (if not NULL) and *out
 * NULL.
 */
int ad_fx_parse(const void *buf, size_t len, ad_fx **out, char *err, size_t errlen);

/* Reads the file at path and parses it (as ad_fx_parse). */
int ad_fx_load(const char *path, ad_fx **out, char *err, size_t errlen);

/*
 * Loads "$AD_FIXTURES/<name>" (tests/CMakeLists.txt sets AD_FIXTURES to tests/fixtures).
 * -AD_EINVAL if AD_FIXTURES is unset or the path too long.
 */
int ad_fx_open(const char *name, ad_fx **out, char *err, size_t errlen);

void ad_fx_free(ad_fx *fx);

/* The array called name, or NULL. */
const ad_fx_array *ad_fx_find(const ad_fx *fx, const char *name);

/*
 * The data of the array called name if it exists and has exactly the ndim dims given
 * (dims may be NULL when ndim is 0), else NULL with a message in err naming what differs.
 */
const float *ad_fx_get(const ad_fx *fx, const char *name, int ndim, const size_t *dims, char *err,
                       size_t errlen);

#endif
