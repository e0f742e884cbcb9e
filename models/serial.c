/*
 * serial.c - a network (and optionally its optimiser's state) to and from a versioned,
 * checksummed little-endian blob (layout in serial.h).
 *
 * Loading is two passes over the bytes: the first validates everything (magic, version,
 * flags, exact length, checksum, shape, parameter count, expected shape, optimiser kind,
 * finiteness) without allocating; only a blob that passes is decoded into a new network
 * and optimiser. Every size computed from a blob's fields is checked for overflow, so a
 * blob claiming 2^63 parameters is refused as truncated rather than wrapping around.
 */
#include "serial.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "blob.h"

#define FLAG_OPTIM 0x1u

enum {
    HEADER_BYTES = 4 + 2 + 2 + 5 * 4 + 8, /* magic .. nparams */
    OPTIM_BYTES = 4 + 5 * 4 + 8,          /* optim kind .. t */
    CRC_BYTES = 4
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Floats of optimiser moments per parameter: 2 for Adam (m, v), 0 for SGD. */
static size_t moments_per_param(ad_optim_kind kind)
{
    return kind == AD_OPTIM_ADAM ? 2 : 0;
}


/* Writes the whole blob; with a counting writer it only measures it. */
static void write_blob(ad_wbuf *w, const ad_net *net, const ad_optim *opt)
{
    const ad_net_config *c = &net->cfg;
    ad_put_bytes(w, AD_NET_BLOB_MAGIC, 4);
    ad_put_u16(w, AD_NET_BLOB_VERSION);
    ad_put_u16(w, opt ? FLAG_OPTIM : 0);
    ad_put_u32(w, ad_cell_code(c->kind));
    ad_put_u32(w, (uint32_t)c->layers);
    ad_put_u32(w, (uint32_t)c->input);
    ad_put_u32(w, (uint32_t)c->hidden);
    ad_put_u32(w, (uint32_t)c->output);
    ad_put_u64(w, (uint64_t)net->nparams);
    if (net->params || !w->p) {
        ad_put_f32v(w, net->params, net->nparams);
    } else { /* packed only: the floats widened from the block, the format unchanged */
        float buf[256];
        for (size_t off = 0; off < net->nparams; off += 256) {
            const size_t n = net->nparams - off < 256 ? net->nparams - off : 256;
            ad_net_get_params(net, off, n, buf);
            ad_put_f32v(w, buf, n);
        }
    }
    if (opt) {
        ad_put_u32(w, ad_optim_code(opt->kind));
        ad_put_f32(w, opt->lr);
        ad_put_f32(w, opt->beta1);
        ad_put_f32(w, opt->beta2);
        ad_put_f32(w, opt->eps);
        ad_put_f32(w, opt->weight_decay);
        ad_put_u64(w, (uint64_t)opt->t);
        if (opt->kind == AD_OPTIM_ADAM) {
            ad_put_f32v(w, opt->m, opt->n);
            ad_put_f32v(w, opt->v, opt->n);
        }
    }
    uint32_t crc = (w->p && !w->err) ? ad_crc32(0, w->p, w->len) : 0;
    ad_put_u32(w, crc);
}

size_t ad_net_blob_size(const ad_net *net, const ad_optim *opt)
{
    if (!net)
        return 0;
    ad_wbuf w;
    ad_wbuf_init(&w, NULL, 0);
    write_blob(&w, net, opt);
    return w.err ? 0 : w.len;
}

/* Checks that net is consistent and opt (if any) can be saved with it. */
static int check_savable(const ad_net *net, const ad_optim *opt, char *err, size_t errlen)
{
    char why[160];
    if (ad_net_config_check(&net->cfg, why, sizeof(why)) != 0) {
        set_err(err, errlen, "cannot save: invalid shape: %s", why);
        return -AD_EINVAL;
    }
    if (net->nparams != ad_net_param_count(&net->cfg) ||
        (net->nparams && !net->params && !net->pack)) {
        set_err(err, errlen, "cannot save: network has %zu parameters, its shape needs %zu",
                net->nparams, ad_net_param_count(&net->cfg));
        return -AD_EINVAL;
    }
    if (!ad_net_params_finite(net)) {
        for (size_t i = 0; i < net->nparams; i++) {
            float v;
            ad_net_get_params(net, i, 1, &v);
            if (!isfinite(v)) {
                set_err(err, errlen, "cannot save: parameter %zu is not finite", i);
                break;
            }
        }
        return -AD_EINVAL;
    }
    if (!opt)
        return 0;
    if (!ad_optim_name(opt->kind)) {
        set_err(err, errlen, "cannot save: unknown optimiser kind %d", (int)opt->kind);
        return -AD_EINVAL;
    }
    if (opt->n != net->nparams) {
        set_err(err, errlen, "cannot save: optimiser updates %zu parameters, network has %zu",
                opt->n, net->nparams);
        return -AD_EINVAL;
    }
    if (opt->kind == AD_OPTIM_ADAM && opt->n && (!opt->m || !opt->v)) {
        set_err(err, errlen, "cannot save: Adam optimiser without moment buffers");
        return -AD_EINVAL;
    }
    if (opt->t < 0) {
        set_err(err, errlen, "cannot save: optimiser step count %lld is negative", opt->t);
        return -AD_EINVAL;
    }
    for (size_t i = 0; opt->kind == AD_OPTIM_ADAM && i < opt->n; i++) {
        if (!isfinite(opt->m[i]) || !isfinite(opt->v[i]) || opt->v[i] < 0.0f) {
            set_err(err, errlen, "cannot save: optimiser moment %zu is not finite", i);
            return -AD_EINVAL;
        }
    }
    return 0;
}

int ad_net_save(const ad_net *net, const ad_optim *opt, void *buf, size_t cap, size_t *len,
                char *err, size_t errlen)
{
    if (len)
        *len = 0;
    if (!net) {
        set_err(err, errlen, "cannot save: no network");
        return -AD_EINVAL;
    }
    int rc = check_savable(net, opt, err, errlen);
    if (rc)
        return rc;
    size_t need = ad_net_blob_size(net, opt);
    if (!buf || cap < need) {
        set_err(err, errlen, "buffer too small: blob needs %zu bytes, buffer has %zu", need,
                buf ? cap : 0);
        return -AD_EINVAL;
    }
    ad_wbuf w;
    ad_wbuf_init(&w, buf, cap);
    write_blob(&w, net, opt);
    if (w.err || w.len != need) { /* cannot happen: sized above */
        set_err(err, errlen, "internal error: blob size changed while writing");
        return -AD_EINVAL;
    }
    if (len)
        *len = w.len;
    return 0;
}

/* ---- loading ---- */

/* What the validation pass learns about a blob; the decode pass trusts it. */
typedef struct blob_info {
    ad_net_config cfg;
    size_t nparams;
    int has_optim;
    ad_optim_kind optim_kind;
    size_t params_off; /* offset of params[0] */
    size_t optim_off;  /* offset of the optimiser kind, if has_optim */
} blob_info;

/* a + b into *out unless it overflows (returns -1). */
static int add_size(size_t a, size_t b, size_t *out)
{
    if (a > SIZE_MAX - b)
        return -1;
    *out = a + b;
    return 0;
}

/* a * b into *out unless it overflows (returns -1). */
static int mul_size(size_t a, size_t b, size_t *out)
{
    if (a && b > SIZE_MAX / a)
        return -1;
    *out = a * b;
    return 0;
}

/* Checks an exact length: "truncated" if len < need, "trailing bytes" if len > need. */
static int check_length(size_t len, size_t need, char *err, size_t errlen)
{
    if (len < need) {
        set_err(err, errlen, "truncated: blob is %zu bytes, its header says %zu", len, need);
        return -AD_EFORMAT;
    }
    if (len > need) {
        set_err(err, errlen, "trailing bytes: blob is %zu bytes, its header says %zu (%zu extra)",
                len, need, len - need);
        return -AD_EFORMAT;
    }
    return 0;
}

static int check_crc(const uint8_t *b, size_t len, char *err, size_t errlen)
{
    ad_rbuf r;
    ad_rbuf_init(&r, b + len - CRC_BYTES, CRC_BYTES);
    uint32_t stored = ad_get_u32(&r);
    uint32_t computed = ad_crc32(0, b, len - CRC_BYTES);
    if (stored != computed) {
        set_err(err, errlen,
                "checksum mismatch: blob says 0x%08" PRIx32 ", bytes give 0x%08" PRIx32, stored,
                computed);
        return -AD_EFORMAT;
    }
    return 0;
}

/* Reads a u32 shape field as an int; values beyond INT_MAX become -1 (invalid). */
static int shape_field(ad_rbuf *r)
{
    uint32_t v = ad_get_u32(r);
    return v > INT_MAX ? -1 : (int)v;
}

/* The shape fields must form a valid shape that needs exactly the blob's nparams. */
static int check_shape(const uint8_t *b, size_t len, blob_info *bi, char *err, size_t errlen)
{
    ad_rbuf r;
    ad_rbuf_init(&r, b, len);
    r.pos = 8;
    uint32_t code = ad_get_u32(&r);
    const int kind = ad_cell_from_code(code);
    bi->cfg.kind = kind >= 0 ? (ad_cell_kind)kind : AD_CELL_NKINDS;
    bi->cfg.layers = shape_field(&r);
    bi->cfg.input = shape_field(&r);
    bi->cfg.hidden = shape_field(&r);
    bi->cfg.output = shape_field(&r);
    if (kind < 0) {
        set_err(err, errlen, "blob has an invalid shape: unknown cell kind %" PRIu32, code);
        return -AD_EFORMAT;
    }
    char why[160];
    why[0] = '\0';
    if (ad_net_config_check(&bi->cfg, why, sizeof(why)) != 0) {
        set_err(err, errlen, "blob has an invalid shape: %s", why);
        return -AD_EFORMAT;
    }
    size_t want = ad_net_param_count(&bi->cfg);
    if (bi->nparams != want) {
        set_err(err, errlen, "blob has %zu parameters, its %s shape needs %zu", bi->nparams,
                ad_cell_name(bi->cfg.kind), want);
        return -AD_EFORMAT;
    }
    return 0;
}

/*
 * Magic, version, flags, exact length and checksum: everything that says whether these
 * are the bytes ad_net_save wrote. Fills the offsets and counts in *bi.
 */
static int check_frame(const uint8_t *b, size_t len, blob_info *bi, char *err, size_t errlen)
{
    ad_rbuf r;
    ad_rbuf_init(&r, b, len);
    if (len < 4) {
        set_err(err, errlen, "truncated: blob is %zu bytes, too short for its magic", len);
        return -AD_EFORMAT;
    }
    if (memcmp(b, AD_NET_BLOB_MAGIC, 4) != 0) {
        set_err(err, errlen, "bad magic: not a network blob (expected \"%s\")", AD_NET_BLOB_MAGIC);
        return -AD_EFORMAT;
    }
    r.pos = 4;
    uint16_t version = ad_get_u16(&r);
    uint16_t flags = ad_get_u16(&r);
    if (r.err) {
        set_err(err, errlen, "truncated: blob is %zu bytes, too short for its version", len);
        return -AD_EFORMAT;
    }
    if (version != AD_NET_BLOB_VERSION) {
        set_err(err, errlen, "unsupported blob version %u, expected version %u", (unsigned)version,
                (unsigned)AD_NET_BLOB_VERSION);
        return -AD_EFORMAT;
    }
    if (flags & ~FLAG_OPTIM) {
        set_err(err, errlen, "unknown flags 0x%04x in blob header", (unsigned)flags);
        return -AD_EFORMAT;
    }
    if (len < HEADER_BYTES) {
        set_err(err, errlen, "truncated: blob is %zu bytes, its header alone needs %d", len,
                (int)HEADER_BYTES);
        return -AD_EFORMAT;
    }
    r.pos = HEADER_BYTES - 8;
    uint64_t np = ad_get_u64(&r);
    /* Without the optimiser, the smallest blob is header + params + crc; compare np with
     * what the bytes could hold before multiplying anything. */
    size_t room = len - HEADER_BYTES; /* >= 0: the header was read */
    if (np > room / 4) {
        set_err(err, errlen, "truncated: blob claims %" PRIu64 " parameters but is only %zu bytes",
                np, len);
        return -AD_EFORMAT;
    }
    bi->nparams = (size_t)np;
    bi->params_off = HEADER_BYTES;
    size_t need = HEADER_BYTES + 4 * bi->nparams; /* <= len */
    size_t extra;
    bi->has_optim = (flags & FLAG_OPTIM) != 0;
    if (bi->has_optim) {
        bi->optim_off = need;
        if (len - need < 4) {
            set_err(err, errlen, "truncated: blob is %zu bytes, ends before its optimiser state",
                    len);
            return -AD_EFORMAT;
        }
        r.pos = need;
        uint32_t ok = ad_get_u32(&r);
        const int okind = ad_optim_from_code(ok);
        if (okind < 0) {
            /* The length cannot be known; a damaged blob is the likelier story. */
            int rc = check_crc(b, len, err, errlen);
            if (!rc) /* or the count of parameters before it is wrong */
                rc = check_shape(b, len, bi, err, errlen);
            if (rc)
                return rc;
            set_err(err, errlen, "unknown optimiser kind %" PRIu32 " after %zu parameters", ok,
                    bi->nparams);
            return -AD_EFORMAT;
        }
        bi->optim_kind = (ad_optim_kind)okind;
        /* the moments: 4 bytes per float per parameter; np <= len / 4, but be exact */
        size_t moments = moments_per_param(bi->optim_kind);
        if (mul_size(4 * moments, bi->nparams, &extra) != 0 ||
            add_size(extra, OPTIM_BYTES, &extra) != 0 || add_size(need, extra, &need) != 0) {
            set_err(err, errlen,
                    "truncated: blob claims %zu parameters with Adam state but is only %zu bytes",
                    bi->nparams, len);
            return -AD_EFORMAT;
        }
    }
    if (add_size(need, CRC_BYTES, &need) != 0) {
        set_err(err, errlen, "truncated: blob claims %zu parameters but is only %zu bytes",
                bi->nparams, len);
        return -AD_EFORMAT;
    }
    int rc = check_length(len, need, err, errlen);
    if (rc)
        return rc;
    return check_crc(b, len, err, errlen);
}

static int finite_run(ad_rbuf *r, size_t n, const char *what, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        float x = ad_get_f32(r);
        if (!isfinite(x)) {
            set_err(err, errlen, "non-finite %s at index %zu", what, i);
            return -AD_EFORMAT;
        }
    }
    return 0;
}

/* Compares the blob's shape with the expected one and names the first field that differs. */
static int check_expect(const ad_net_config *got, const ad_net_config *want, char *err,
                        size_t errlen)
{
    if (got->kind != want->kind) {
        const char *g = ad_cell_name(got->kind), *w = ad_cell_name(want->kind);
        set_err(err, errlen, "blob has kind %s, expected %s", g ? g : "?", w ? w : "?");
        return -AD_EFORMAT;
    }
    const struct {
        const char *name;
        int got, want;
    } f[] = {
        {"layers", got->layers, want->layers},
        {"input", got->input, want->input},
        {"hidden", got->hidden, want->hidden},
        {"output", got->output, want->output},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        if (f[i].got != f[i].want) {
            set_err(err, errlen, "blob has %s %d, expected %d", f[i].name, f[i].got, f[i].want);
            return -AD_EFORMAT;
        }
    }
    return 0;
}

/* Everything after the frame: shape, parameter count, expectation, optimiser, numbers. */
static int check_contents(const uint8_t *b, size_t len, const ad_net_config *expect, blob_info *bi,
                          char *err, size_t errlen)
{
    ad_rbuf r;
    ad_rbuf_init(&r, b, len);
    int rc = check_shape(b, len, bi, err, errlen);
    if (rc)
        return rc;
    if (expect) {
        rc = check_expect(&bi->cfg, expect, err, errlen);
        if (rc)
            return rc;
    }
    r.pos = bi->params_off;
    rc = finite_run(&r, bi->nparams, "parameter", err, errlen);
    if (rc || !bi->has_optim)
        return rc;
    r.pos = bi->optim_off + 4; /* the kind was checked with the frame */
    static const char *const hyper[] = {"learning rate", "beta1", "beta2", "eps", "weight decay"};
    for (int i = 0; i < 5; i++) {
        float x = ad_get_f32(&r);
        if (!isfinite(x)) {
            set_err(err, errlen, "non-finite optimiser %s", hyper[i]);
            return -AD_EFORMAT;
        }
    }
    uint64_t t = ad_get_u64(&r);
    if (t > (uint64_t)LLONG_MAX) {
        set_err(err, errlen, "optimiser step count %" PRIu64 " out of range", t);
        return -AD_EFORMAT;
    }
    if (bi->optim_kind != AD_OPTIM_ADAM)
        return 0;
    rc = finite_run(&r, bi->nparams, "Adam first moment", err, errlen);
    if (rc)
        return rc;
    for (size_t i = 0; i < bi->nparams; i++) {
        float x = ad_get_f32(&r);
        if (!isfinite(x) || x < 0.0f) {
            set_err(err, errlen, "%s Adam second moment at index %zu",
                    isfinite(x) ? "negative" : "non-finite", i);
            return -AD_EFORMAT;
        }
    }
    return r.err ? -AD_EFORMAT : 0; /* r.err cannot be set: the length was checked */
}

int ad_net_load(const void *buf, size_t len, const ad_net_config *expect, ad_net **net,
                ad_optim **opt, char *err, size_t errlen)
{
    const uint8_t *b = buf;
    blob_info bi;
    ad_net *n = NULL;
    ad_optim *o = NULL;
    int rc;

    if (opt)
        *opt = NULL;
    if (!net) {
        set_err(err, errlen, "no place for the network");
        return -AD_EINVAL;
    }
    *net = NULL;
    if (!b && len) {
        set_err(err, errlen, "no blob");
        return -AD_EINVAL;
    }
    memset(&bi, 0, sizeof(bi));
    rc = check_frame(b, len, &bi, err, errlen);
    if (rc)
        return rc;
    rc = check_contents(b, len, expect, &bi, err, errlen);
    if (rc)
        return rc;

    /* Valid: allocate, then decode (nothing below can fail on the bytes). */
    rc = ad_net_create(&bi.cfg, 0, &n, err, errlen);
    if (rc)
        return rc == -AD_EINVAL ? -AD_EFORMAT : rc;
    ad_rbuf r;
    ad_rbuf_init(&r, b, len);
    r.pos = bi.params_off;
    ad_get_f32v(&r, n->params, bi.nparams);
    if (opt && bi.has_optim) {
        r.pos = bi.optim_off + 4;
        o = ad_optim_create(bi.optim_kind, bi.nparams, 0.0f);
        if (!o) {
            set_err(err, errlen, "out of memory for the optimiser state");
            rc = -AD_ENOMEM;
            goto out_free_net;
        }
        o->lr = ad_get_f32(&r);
        o->beta1 = ad_get_f32(&r);
        o->beta2 = ad_get_f32(&r);
        o->eps = ad_get_f32(&r);
        o->weight_decay = ad_get_f32(&r);
        o->t = (long long)ad_get_u64(&r);
        if (bi.optim_kind == AD_OPTIM_ADAM) {
            ad_get_f32v(&r, o->m, bi.nparams);
            ad_get_f32v(&r, o->v, bi.nparams);
        }
    }
    *net = n;
    if (opt)
        *opt = o;
    if (err && errlen)
        err[0] = '\0';
    return 0;

out_free_net:
    ad_net_free(n);
    return rc;
}
