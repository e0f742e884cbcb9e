/*
 * fixture.c - the reader of the "ADFX" reference fixtures (format in fixture.h).
 *
 * Parsing makes two passes over the bytes with the bounded reader of blob.h: the first
 * validates every field and counts arrays and floats without allocating, the second
 * decodes into one array table and one float buffer (so the data is aligned whatever
 * the name lengths, and decoded little-endian on any host). The checksum is compared
 * after the structure, so a truncated file is reported as truncated at its offset.
 */
#include "fixture.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "net.h"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Header fields (magic, version, narrays) as read from the start of the file. */
static int parse_header(ad_rbuf *r, uint32_t *narrays, char *err, size_t errlen)
{
    char magic[4];
    uint32_t version;

    ad_get_bytes(r, magic, sizeof(magic));
    version = ad_get_u32(r);
    *narrays = ad_get_u32(r);
    if (r->err) {
        set_err(err, errlen, "fixture: truncated header (%zu bytes)", r->len);
        return -AD_EFORMAT;
    }
    if (memcmp(magic, AD_FX_MAGIC, 4) != 0) {
        set_err(err, errlen, "fixture: bad magic (not an ADFX file)");
        return -AD_EFORMAT;
    }
    if (version != AD_FX_VERSION) {
        set_err(err, errlen, "fixture: version %u, expected %d", (unsigned)version, AD_FX_VERSION);
        return -AD_EFORMAT;
    }
    if (*narrays > AD_FX_MAX_ARRAYS) {
        set_err(err, errlen, "fixture: %u arrays, at most %d", (unsigned)*narrays,
                AD_FX_MAX_ARRAYS);
        return -AD_EFORMAT;
    }
    return 0;
}

/*
 * Reads one array record's name and dims into a (data left NULL) and checks that its
 * data fits in the bytes left before the checksum; leaves r at the start of the data.
 */
static int parse_array_head(ad_rbuf *r, size_t end, uint32_t idx, ad_fx_array *a, char *err,
                            size_t errlen)
{
    size_t at = r->pos;
    uint32_t name_len = ad_get_u32(r);

    if (r->err || r->pos > end)
        goto out_truncated;
    if (name_len == 0 || name_len > AD_FX_MAX_NAME) {
        set_err(err, errlen, "fixture: array %u at offset %zu: name length %u not in 1..%d",
                (unsigned)idx, at, (unsigned)name_len, AD_FX_MAX_NAME);
        return -AD_EFORMAT;
    }
    if (name_len > end - r->pos)
        goto out_truncated;
    ad_get_bytes(r, a->name, name_len);
    a->name[name_len] = '\0';
    if (strlen(a->name) != name_len) {
        set_err(err, errlen, "fixture: array %u at offset %zu: NUL in name", (unsigned)idx, at);
        return -AD_EFORMAT;
    }

    uint32_t ndim = ad_get_u32(r);
    if (r->err || r->pos > end)
        goto out_truncated;
    if (ndim > AD_FX_MAX_DIM) {
        set_err(err, errlen, "fixture: array '%s': %u dims, at most %d", a->name, (unsigned)ndim,
                AD_FX_MAX_DIM);
        return -AD_EFORMAT;
    }
    a->ndim = (int)ndim;
    a->n = 1;
    for (int i = 0; i < a->ndim; i++) {
        uint32_t d = ad_get_u32(r);
        if (r->err || r->pos > end)
            goto out_truncated;
        a->dims[i] = d;
        /* the count must stay below the floats the rest of the file could hold */
        if (d != 0 && a->n > (end - r->pos) / sizeof(float) / d)
            goto out_truncated;
        a->n *= d;
    }
    if (a->n > (end - r->pos) / sizeof(float))
        goto out_truncated;
    a->data = NULL;
    return 0;

out_truncated:
    set_err(err, errlen, "fixture: array %u ('%s') at offset %zu runs past the end (%zu bytes)",
            (unsigned)idx, a->name, at, r->len);
    return -AD_EFORMAT;
}

/* Pass one: validates everything, counts floats. Pass two (dst != NULL): decodes. */
static int parse_body(const void *buf, size_t len, ad_fx *dst, uint32_t *narrays_out,
                      size_t *nfloats_out, char *err, size_t errlen)
{
    ad_rbuf r;
    uint32_t narrays;
    size_t nfloats = 0;
    ad_fx_array tmp;
    int rc;

    if (len < 16) {
        set_err(err, errlen, "fixture: %zu bytes, too short for a header and checksum", len);
        return -AD_EFORMAT;
    }
    ad_rbuf_init(&r, buf, len);
    rc = parse_header(&r, &narrays, err, errlen);
    if (rc)
        return rc;

    size_t end = len - 4; /* the checksum's offset */
    for (uint32_t i = 0; i < narrays; i++) {
        ad_fx_array *a = dst ? &dst->arrays[i] : &tmp;
        memset(a, 0, sizeof(*a));
        rc = parse_array_head(&r, end, i, a, err, errlen);
        if (rc)
            return rc;
        if (dst) {
            ad_get_f32v(&r, dst->data + nfloats, a->n);
            a->data = dst->data + nfloats;
        } else {
            r.pos += a->n * sizeof(float); /* skip: fits, checked against end above */
        }
        nfloats += a->n;
    }
    if (r.pos != end) {
        set_err(err, errlen, "fixture: %zu trailing bytes after %u arrays", end - r.pos,
                (unsigned)narrays);
        return -AD_EFORMAT;
    }

    uint32_t want = ad_crc32(0, buf, end);
    uint32_t got = ad_get_u32(&r);
    if (r.err || got != want) {
        set_err(err, errlen, "fixture: checksum mismatch (stored %08x, computed %08x)",
                (unsigned)got, (unsigned)want);
        return -AD_EFORMAT;
    }
    *narrays_out = narrays;
    *nfloats_out = nfloats;
    return 0;
}

int ad_fx_parse(const void *buf, size_t len, ad_fx **out, char *err, size_t errlen)
{
    uint32_t narrays, n2;
    size_t nfloats, f2;
    ad_fx *fx;
    int rc;

    if (!out || (!buf && len)) {
        set_err(err, errlen, "fixture: bad arguments");
        return -AD_EINVAL;
    }
    *out = NULL;
    rc = parse_body(buf, len, NULL, &narrays, &nfloats, err, errlen);
    if (rc)
        return rc;

    fx = calloc(1, sizeof(*fx));
    if (!fx)
        goto out_nomem;
    fx->narrays = (int)narrays;
    fx->arrays = calloc(narrays ? narrays : 1, sizeof(*fx->arrays));
    fx->data = calloc(nfloats ? nfloats : 1, sizeof(*fx->data));
    if (!fx->arrays || !fx->data)
        goto out_free_fx;
    rc = parse_body(buf, len, fx, &n2, &f2, err, errlen);
    if (rc) /* cannot happen: pass one accepted the same bytes */
        goto out_free_fx_rc;

    for (int i = 1; i < fx->narrays; i++) {
        for (int j = 0; j < i; j++) {
            if (strcmp(fx->arrays[i].name, fx->arrays[j].name) == 0) {
                set_err(err, errlen, "fixture: duplicate array name '%s'", fx->arrays[i].name);
                rc = -AD_EFORMAT;
                goto out_free_fx_rc;
            }
        }
    }
    *out = fx;
    return 0;

out_free_fx:
    ad_fx_free(fx);
out_nomem:
    set_err(err, errlen, "fixture: out of memory for %u arrays, %zu floats", (unsigned)narrays,
            nfloats);
    return -AD_ENOMEM;

out_free_fx_rc:
    ad_fx_free(fx);
    return rc;
}

/* Reads a whole file (at most AD_FX_MAX_FILE bytes) into a new buffer. */
static int read_file(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = NULL, *nb;
    FILE *f;
    int rc = 0;

    f = fopen(path, "rb");
    if (!f) {
        set_err(err, errlen, "fixture: cannot open %s: %s", path, strerror(errno));
        return -AD_EINVAL;
    }
    for (;;) {
        nb = realloc(buf, cap);
        if (!nb) {
            set_err(err, errlen, "fixture: out of memory reading %s", path);
            rc = -AD_ENOMEM;
            goto out_free_buf;
        }
        buf = nb;
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) {
            set_err(err, errlen, "fixture: cannot read %s: %s", path, strerror(errno));
            rc = -AD_EINVAL;
            goto out_free_buf;
        }
        if (n < cap)
            break; /* end of file */
        if (cap >= AD_FX_MAX_FILE) {
            set_err(err, errlen, "fixture: %s is larger than %u bytes", path,
                    (unsigned)AD_FX_MAX_FILE);
            rc = -AD_EFORMAT;
            goto out_free_buf;
        }
        cap *= 2;
    }
    fclose(f);
    *out = buf;
    *len = n;
    return 0;

out_free_buf:
    free(buf);
    fclose(f);
    return rc;
}

int ad_fx_load(const char *path, ad_fx **out, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    char perr[256];
    int rc;

    if (!path || !out) {
        set_err(err, errlen, "fixture: bad arguments");
        return -AD_EINVAL;
    }
    *out = NULL;
    rc = read_file(path, &buf, &len, err, errlen);
    if (rc)
        return rc;
    rc = ad_fx_parse(buf, len, out, perr, sizeof(perr));
    if (rc)
        set_err(err, errlen, "%s: %s", path, perr);
    free(buf);
    return rc;
}

int ad_fx_open(const char *name, ad_fx **out, char *err, size_t errlen)
{
    const char *dir = getenv("AD_FIXTURES");
    char path[4096];

    if (out)
        *out = NULL;
    if (!dir || !*dir) {
        set_err(err, errlen, "fixture: AD_FIXTURES is not set (run the tests with ctest)");
        return -AD_EINVAL;
    }
    if (!name || snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        set_err(err, errlen, "fixture: bad name or path too long");
        return -AD_EINVAL;
    }
    return ad_fx_load(path, out, err, errlen);
}

void ad_fx_free(ad_fx *fx)
{
    if (!fx)
        return;
    free(fx->arrays);
    free(fx->data);
    free(fx);
}

const ad_fx_array *ad_fx_find(const ad_fx *fx, const char *name)
{
    if (!fx || !name)
        return NULL;
    for (int i = 0; i < fx->narrays; i++)
        if (strcmp(fx->arrays[i].name, name) == 0)
            return &fx->arrays[i];
    return NULL;
}

/* Writes "(d0, d1, ...)" into s. */
static void fmt_dims(char *s, size_t cap, int ndim, const size_t *dims)
{
    size_t k = 0;

    k += (size_t)snprintf(s + k, cap - k, "(");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s%zu", i ? ", " : "", dims[i]);
    if (k < cap)
        snprintf(s + k, cap - k, ")");
}

const float *ad_fx_get(const ad_fx *fx, const char *name, int ndim, const size_t *dims, char *err,
                       size_t errlen)
{
    const ad_fx_array *a = ad_fx_find(fx, name);
    char want[128], have[128];

    if (!a) {
        set_err(err, errlen, "fixture: no array '%s'", name ? name : "(null)");
        return NULL;
    }
    if (a->ndim == ndim && (ndim == 0 || memcmp(a->dims, dims, ndim * sizeof(*dims)) == 0))
        return a->data;
    fmt_dims(want, sizeof(want), ndim, dims);
    fmt_dims(have, sizeof(have), a->ndim, a->dims);
    set_err(err, errlen, "fixture: array '%s' has dims %s, expected %s", name, have, want);
    return NULL;
}
