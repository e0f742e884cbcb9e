/*
 * check_serial.c - blob.c (little-endian writer/reader, CRC-32) and serial.c (networks and
 * optimiser state to and from blobs): exact round trips for every cell kind and optimiser,
 * and refusal, with the right message and nothing allocated, of every kind of damage; the
 * codes the kinds are stored as, pinned.
 */
#include <check.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "detector_config.h"
#include "net.h"
#include "optim.h"
#include "rng.h"
#include "scorer.h"
#include "serial.h"

/* Offsets in a version-1 blob (serial.h). */
#define OFF_VERSION 4
#define OFF_FLAGS   6
#define OFF_KIND    8
#define OFF_LAYERS  12
#define OFF_INPUT   16
#define OFF_HIDDEN  20
#define OFF_OUTPUT  24
#define OFF_NPARAMS 28
#define OFF_PARAMS  36

enum { OPT_NONE = 0, OPT_SGD = 1, OPT_ADAM = 2, OPT_VARIANTS = 3 };

/* ---- helpers ---- */

static void put_le(uint8_t *d, uint64_t v, int nbytes)
{
    for (int i = 0; i < nbytes; i++)
        d[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *s, int nbytes)
{
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++)
        v |= (uint64_t)s[i] << (8 * i);
    return v;
}

static void put_f32_at(uint8_t *d, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    put_le(d, u, 4);
}

/* Rewrites the trailing CRC so that only the deliberate change is wrong. */
static void recrc(uint8_t *b, size_t len)
{
    put_le(b + len - 4, ad_crc32(0, b, len - 4), 4);
}

/* A network with every parameter random (biases and extras too), including a -0.0f. */
static ad_net *make_net(ad_cell_kind kind, int layers, int D, int H, int O, uint64_t seed)
{
    ad_net_config cfg = {kind, layers, D, H, O};
    ad_net *net = NULL;
    char err[128];
    ad_rng r;

    ck_assert_int_eq(ad_net_create(&cfg, seed, &net, err, sizeof(err)), 0);
    ad_rng_seed(&r, seed ^ 0x5eed);
    for (size_t i = 0; i < net->nparams; i++)
        net->params[i] = 2.0f * ad_rng_uniform(&r) - 1.0f;
    net->params[0] = -0.0f;
    return net;
}

/* An optimiser of the variant for net, with moments and step count made non-trivial. */
static ad_optim *make_opt(const ad_net *net, int variant, uint64_t seed)
{
    if (variant == OPT_NONE)
        return NULL;
    ad_optim *o =
        ad_optim_create(variant == OPT_ADAM ? AD_OPTIM_ADAM : AD_OPTIM_SGD, net->nparams, 0.0125f);
    ck_assert_ptr_nonnull(o);
    o->weight_decay = 1e-4f;
    o->beta1 = 0.85f;
    o->t = 12345;
    if (o->m) {
        ad_rng r;
        ad_rng_seed(&r, seed);
        for (size_t i = 0; i < o->n; i++) {
            o->m[i] = ad_rng_normal(&r);
            o->v[i] = ad_rng_uniform(&r) * 1e-3f;
        }
    }
    return o;
}

/* Saves into a new exact-size buffer; checks ad_net_blob_size against the length. */
static uint8_t *save_new(const ad_net *net, const ad_optim *opt, size_t *len)
{
    char err[128] = "";
    size_t need = ad_net_blob_size(net, opt);
    uint8_t *b = malloc(need + 1); /* +1: room for the trailing-byte test */
    ck_assert_ptr_nonnull(b);
    *len = 0;
    int rc = ad_net_save(net, opt, b, need, len, err, sizeof(err));
    ck_assert_msg(rc == 0, "save failed: %s", err);
    ck_assert_uint_eq(*len, need);
    return b;
}

/*
 * Loads a blob that must be refused: returns -AD_EFORMAT with a message containing one
 * of the alternatives (separated by '|'), and leaves both outputs NULL.
 */
static void expect_refused(const void *b, size_t len, const ad_net_config *expect, const char *alts,
                           const char *what)
{
    static int sentinel;
    ad_net *net = (ad_net *)&sentinel;
    ad_optim *opt = (ad_optim *)&sentinel;
    char err[256] = "";

    int rc = ad_net_load(b, len, expect, &net, &opt, err, sizeof(err));
    if (rc == 0) {
        ad_net_free(net);
        ad_optim_free(opt);
    }
    ck_assert_msg(rc == -AD_EFORMAT, "%s: load returned %d (%s)", what, rc, err);
    ck_assert_msg(net == NULL && opt == NULL, "%s: outputs not NULL", what);

    char buf[256];
    snprintf(buf, sizeof(buf), "%s", alts);
    int found = 0;
    for (char *tok = strtok(buf, "|"); tok && !found; tok = strtok(NULL, "|"))
        found = strstr(err, tok) != NULL;
    ck_assert_msg(found, "%s: message \"%s\" names none of \"%s\"", what, err, alts);
}

static void load_ok(const void *b, size_t len, ad_net **net, ad_optim **opt)
{
    char err[256] = "";
    int rc = ad_net_load(b, len, NULL, net, opt, err, sizeof(err));
    ck_assert_msg(rc == 0, "load failed: %s", err);
    ck_assert_ptr_nonnull(*net);
}

/* ---- blob.c ---- */

START_TEST(test_crc32_known)
{
    const char *s = "123456789";
    ck_assert_uint_eq(ad_crc32(0, s, 9), 0xCBF43926u);
    ck_assert_uint_eq(ad_crc32(0, s, 0), 0u);
    ck_assert_uint_eq(ad_crc32(0, NULL, 0), 0u);
    /* continuing from a previous value gives the whole-buffer CRC */
    ck_assert_uint_eq(ad_crc32(ad_crc32(0, s, 4), s + 4, 5), 0xCBF43926u);
    /* zlib: crc32 of "The quick brown fox jumps over the lazy dog" */
    const char *fox = "The quick brown fox jumps over the lazy dog";
    ck_assert_uint_eq(ad_crc32(0, fox, strlen(fox)), 0x414FA339u);
    /* a single zero byte and 0xff byte */
    const uint8_t z = 0, f = 0xff;
    ck_assert_uint_eq(ad_crc32(0, &z, 1), 0xD202EF8Du);
    ck_assert_uint_eq(ad_crc32(0, &f, 1), 0xFF000000u);
}
END_TEST

START_TEST(test_writer_reader_roundtrip)
{
    uint8_t b[64];
    const float fv[3] = {1.5f, -0.0f, 3.4028235e38f};
    const uint8_t raw[3] = {0xde, 0xad, 0x01};
    ad_wbuf w;

    memset(b, 0xaa, sizeof(b));
    ad_wbuf_init(&w, b, sizeof(b));
    ad_put_u16(&w, 0x0102);
    ad_put_u32(&w, 0x03040506u);
    ad_put_u64(&w, 0x0708090a0b0c0d0eULL);
    ad_put_f32(&w, -2.5f);
    ad_put_f64(&w, 1.0 / 3.0);
    ad_put_f32v(&w, fv, 3);
    ad_put_bytes(&w, raw, 3);
    ad_put_f32v(&w, NULL, 0);
    ad_put_bytes(&w, NULL, 0);
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, 2 + 4 + 8 + 4 + 8 + 12 + 3);

    /* little-endian on the wire, whatever the host */
    const uint8_t head[14] = {0x02, 0x01, 0x06, 0x05, 0x04, 0x03, 0x0e,
                              0x0d, 0x0c, 0x0b, 0x0a, 0x09, 0x08, 0x07};
    ck_assert_mem_eq(b, head, 14);
    const uint8_t m25[4] = {0x00, 0x00, 0x20, 0xc0}; /* -2.5f = 0xc0200000 */
    ck_assert_mem_eq(b + 14, m25, 4);
    ck_assert_uint_eq(b[w.len], 0xaa); /* nothing past the end */

    ad_rbuf r;
    ad_rbuf_init(&r, b, w.len);
    ck_assert_uint_eq(ad_get_u16(&r), 0x0102);
    ck_assert_uint_eq(ad_get_u32(&r), 0x03040506u);
    ck_assert(ad_get_u64(&r) == 0x0708090a0b0c0d0eULL);
    ck_assert(ad_get_f32(&r) == -2.5f);
    ck_assert(ad_get_f64(&r) == 1.0 / 3.0);
    float gv[3];
    ad_get_f32v(&r, gv, 3);
    ck_assert_mem_eq(gv, fv, sizeof(fv));
    uint8_t graw[3];
    ck_assert_uint_eq(ad_rbuf_left(&r), 3);
    ad_get_bytes(&r, graw, 3);
    ck_assert_mem_eq(graw, raw, 3);
    ck_assert_uint_eq(ad_rbuf_left(&r), 0);
    ck_assert_int_eq(r.err, 0);
}
END_TEST

START_TEST(test_float_bits_preserved)
{
    /* NaN payloads, infinities, denormals and -0 survive bit for bit */
    const uint32_t pats[] = {0x7fc00001u, 0xffa00000u, 0x7f800000u, 0xff800000u,
                             0x00000001u, 0x80000000u, 0x007fffffu};
    const size_t n = sizeof(pats) / sizeof(pats[0]);
    float in[7], out[7];
    uint8_t b[64];
    ad_wbuf w;
    ad_rbuf r;

    memcpy(in, pats, sizeof(in));
    ad_wbuf_init(&w, b, sizeof(b));
    ad_put_f32v(&w, in, n);
    ad_rbuf_init(&r, b, w.len);
    ad_get_f32v(&r, out, n);
    ck_assert_mem_eq(out, pats, sizeof(pats));
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(get_le(b + 4 * i, 4), pats[i]);
}
END_TEST

START_TEST(test_writer_overflow_is_sticky)
{
    uint8_t b[8];
    const float fv[2] = {1.0f, 2.0f};
    ad_wbuf w;

    memset(b, 0xaa, sizeof(b));
    ad_wbuf_init(&w, b, 7);
    ad_put_u32(&w, 0x11223344u);
    ck_assert_int_eq(w.err, 0);
    ad_put_u64(&w, 1); /* 8 > 3 left */
    ck_assert_int_ne(w.err, 0);
    ck_assert_uint_eq(w.len, 4);
    ad_put_u16(&w, 0xbeef); /* would fit, but the writer has failed */
    ad_put_bytes(&w, "x", 1);
    ck_assert_uint_eq(w.len, 4);
    for (int i = 4; i < 8; i++)
        ck_assert_uint_eq(b[i], 0xaa);

    /* a vector that does not fit writes nothing at all */
    ad_wbuf_init(&w, b, 7);
    ad_put_f32v(&w, fv, 2);
    ck_assert_int_ne(w.err, 0);
    ck_assert_uint_eq(w.len, 0);
    ck_assert_uint_eq(b[0], 0x44); /* still the u32 from above */

    /* exactly full is fine */
    ad_wbuf_init(&w, b, 4);
    ad_put_f32(&w, 1.0f);
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, 4);
    ad_put_bytes(&w, "", 0);
    ck_assert_int_eq(w.err, 0);
    ad_put_bytes(&w, "y", 1);
    ck_assert_int_ne(w.err, 0);
}
END_TEST

START_TEST(test_counting_writer)
{
    const float fv[5] = {0};
    ad_wbuf w;

    ad_wbuf_init(&w, NULL, 0);
    ad_put_u16(&w, 1);
    ad_put_u32(&w, 2);
    ad_put_u64(&w, 3);
    ad_put_f32(&w, 4.0f);
    ad_put_f64(&w, 5.0);
    ad_put_f32v(&w, fv, 5);
    ad_put_bytes(&w, "abc", 3);
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, 2 + 4 + 8 + 4 + 8 + 20 + 3);

    /* a counting writer ignores cap */
    ad_wbuf_init(&w, NULL, 1);
    ad_put_u64(&w, 0);
    ck_assert_int_eq(w.err, 0);
    ck_assert_uint_eq(w.len, 8);
}
END_TEST

START_TEST(test_reader_past_end)
{
    const uint8_t b[5] = {1, 2, 3, 4, 5};
    ad_rbuf r;

    ad_rbuf_init(&r, b, 3);
    ck_assert_uint_eq(ad_get_u32(&r), 0); /* 4 > 3 */
    ck_assert_int_ne(r.err, 0);
    ck_assert_uint_eq(r.pos, 0);
    ck_assert_uint_eq(ad_get_u16(&r), 0); /* would fit: sticky */
    ck_assert_uint_eq(r.pos, 0);

    ad_rbuf_init(&r, b, 3);
    ck_assert_uint_eq(ad_get_u16(&r), 0x0201);
    ck_assert(ad_get_u64(&r) == 0);
    ck_assert(ad_get_f32(&r) == 0.0f);
    ck_assert(ad_get_f64(&r) == 0.0);
    float v[2] = {7.0f, 7.0f};
    ad_get_f32v(&r, v, 2);
    ck_assert(v[0] == 0.0f && v[1] == 0.0f);
    uint8_t d[4];
    memset(d, 0x55, sizeof(d));
    ad_get_bytes(&r, d, 4);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(d[i], 0);
    ck_assert_int_ne(r.err, 0);

    /* the last byte is readable; one more is not */
    ad_rbuf_init(&r, b, 5);
    ad_get_bytes(&r, d, 4);
    ck_assert_uint_eq(ad_rbuf_left(&r), 1);
    ck_assert_uint_eq(ad_get_u16(&r), 0);
    ck_assert_int_ne(r.err, 0);

    /* an empty reader */
    ad_rbuf_init(&r, NULL, 0);
    ck_assert_uint_eq(ad_rbuf_left(&r), 0);
    ck_assert_uint_eq(ad_get_u32(&r), 0);
    ck_assert_int_ne(r.err, 0);
}
END_TEST

/* ---- round trips ---- */

/* Every cell kind (i / 3) with every optimiser variant (i % 3). */
START_TEST(test_roundtrip_exact)
{
    const ad_cell_kind kind = (ad_cell_kind)(_i / OPT_VARIANTS);
    const int variant = _i % OPT_VARIANTS;
    ad_net *net = make_net(kind, 2, 3, 5, 2, 100 + (uint64_t)_i);
    ad_optim *opt = make_opt(net, variant, 200 + (uint64_t)_i);
    ad_net *back = NULL;
    ad_optim *oback = NULL;
    size_t len, len2;

    uint8_t *b = save_new(net, opt, &len);
    ck_assert_mem_eq(b, AD_NET_BLOB_MAGIC, 4);
    ck_assert_uint_eq(get_le(b + OFF_VERSION, 2), AD_NET_BLOB_VERSION);
    ck_assert_uint_eq(get_le(b + OFF_FLAGS, 2), opt ? 1 : 0);
    ck_assert_uint_eq(get_le(b + OFF_NPARAMS, 8), net->nparams);
    ck_assert_uint_eq(len,
                      36 + 4 * net->nparams + 4 + (opt ? 32 + (opt->m ? 8 * net->nparams : 0) : 0));

    load_ok(b, len, &back, &oback);
    ck_assert_mem_eq(&back->cfg, &net->cfg, sizeof(net->cfg));
    ck_assert_uint_eq(back->nparams, net->nparams);
    ck_assert_mem_eq(back->params, net->params, net->nparams * sizeof(float));
    /* the views point into the loaded buffer like a created network's */
    ad_params views;
    ad_net_views(&back->cfg, back->params, &views);
    ck_assert_mem_eq(&views, &back->p, sizeof(views));

    if (!opt) {
        ck_assert_ptr_null(oback);
    } else {
        ck_assert_ptr_nonnull(oback);
        ck_assert_int_eq(oback->kind, opt->kind);
        ck_assert_uint_eq(oback->n, opt->n);
        ck_assert(oback->lr == opt->lr && oback->beta1 == opt->beta1 &&
                  oback->beta2 == opt->beta2 && oback->eps == opt->eps &&
                  oback->weight_decay == opt->weight_decay);
        ck_assert(oback->t == opt->t);
        if (opt->m) {
            ck_assert_mem_eq(oback->m, opt->m, opt->n * sizeof(float));
            ck_assert_mem_eq(oback->v, opt->v, opt->n * sizeof(float));
        } else {
            ck_assert_ptr_null(oback->m);
        }
    }

    /* saving the loaded pair again gives the same bytes */
    uint8_t *b2 = save_new(back, oback, &len2);
    ck_assert_uint_eq(len2, len);
    ck_assert_mem_eq(b2, b, len);

    free(b2);
    free(b);
    ad_optim_free(oback);
    ad_net_free(back);
    ad_optim_free(opt);
    ad_net_free(net);
}
END_TEST

/* A loaded optimiser continues exactly like the original. */
START_TEST(test_roundtrip_resumes_training)
{
    const int variant = _i ? OPT_ADAM : OPT_SGD;
    ad_net *net = make_net(AD_CELL_LSTM, 1, 2, 4, 1, 11);
    ad_optim *opt = make_opt(net, variant, 12);
    ad_net *back = NULL;
    ad_optim *oback = NULL;
    size_t len;
    ad_rng r;

    uint8_t *b = save_new(net, opt, &len);
    load_ok(b, len, &back, &oback);
    ck_assert_ptr_nonnull(oback);

    float *g = malloc(net->nparams * sizeof(float));
    ck_assert_ptr_nonnull(g);
    ad_rng_seed(&r, 13);
    for (int step = 0; step < 5; step++) {
        for (size_t i = 0; i < net->nparams; i++)
            g[i] = ad_rng_normal(&r);
        ad_optim_step(opt, net->params, g);
        ad_optim_step(oback, back->params, g);
    }
    ck_assert_mem_eq(back->params, net->params, net->nparams * sizeof(float));
    ck_assert(back->nparams == net->nparams && oback->t == opt->t);

    free(g);
    free(b);
    ad_optim_free(oback);
    ad_net_free(back);
    ad_optim_free(opt);
    ad_net_free(net);
}
END_TEST

START_TEST(test_loaded_step_bit_identical)
{
    const ad_cell_kind kind = (ad_cell_kind)_i;
    ad_net *net = make_net(kind, 3, 2, 6, 2, 31 + (uint64_t)_i);
    ad_net *back = NULL;
    size_t len;
    ad_rng r;

    uint8_t *b = save_new(net, NULL, &len);
    load_ok(b, len, &back, NULL);

    ad_state *s1 = ad_state_create(net), *s2 = ad_state_create(back);
    ck_assert(s1 && s2);
    ad_rng_seed(&r, 32);
    for (int t = 0; t < 100; t++) {
        float x[2] = {ad_rng_normal(&r), ad_rng_normal(&r)}, y1[2], y2[2];
        ad_net_step(net, s1, x, y1);
        ad_net_step(back, s2, x, y2);
        ck_assert_msg(memcmp(y1, y2, sizeof(y1)) == 0, "%s: outputs differ at step %d",
                      ad_cell_name(kind), t);
        ck_assert(isfinite(y1[0]) && isfinite(y1[1]));
    }
    size_t sb = (size_t)s1->layers * s1->hidden * sizeof(float);
    ck_assert_mem_eq(s1->h, s2->h, sb);
    if (s1->c)
        ck_assert_mem_eq(s1->c, s2->c, sb);

    ad_state_free(s1);
    ad_state_free(s2);
    free(b);
    ad_net_free(back);
    ad_net_free(net);
}
END_TEST

/* The optimiser is optional on both sides. */
START_TEST(test_optim_optional)
{
    ad_net *net = make_net(AD_CELL_GRU, 1, 1, 3, 1, 41);
    ad_optim *opt = make_opt(net, OPT_ADAM, 42);
    ad_net *back = NULL;
    ad_optim *oback = (ad_optim *)net; /* must be overwritten with NULL */
    size_t len;

    /* no optimiser in the blob, one asked for: NULL */
    uint8_t *b = save_new(net, NULL, &len);
    load_ok(b, len, &back, &oback);
    ck_assert_ptr_null(oback);
    ad_net_free(back);
    free(b);

    /* an optimiser in the blob, none asked for: the network alone */
    b = save_new(net, opt, &len);
    load_ok(b, len, &back, NULL);
    ck_assert_mem_eq(back->params, net->params, net->nparams * sizeof(float));
    ad_net_free(back);

    /* with the right expectation it loads; the error buffer may be NULL */
    back = NULL;
    ck_assert_int_eq(ad_net_load(b, len, &net->cfg, &back, NULL, NULL, 0), 0);
    ck_assert_ptr_nonnull(back);
    ad_net_free(back);
    free(b);

    ad_optim_free(opt);
    ad_net_free(net);
}
END_TEST

/* The layout is the one serial.h describes, built here byte by byte by hand. */
START_TEST(test_layout_by_hand)
{
    ad_net *net = make_net(AD_CELL_ELMAN, 1, 1, 1, 1, 51); /* Wx, Wh, b, Wy, by */
    ad_optim *opt = make_opt(net, OPT_ADAM, 52);
    size_t len;

    ck_assert_uint_eq(net->nparams, 5);
    uint8_t *b = save_new(net, opt, &len);

    uint8_t want[36 + 20 + 32 + 40 + 4];
    uint8_t *p = want;
    memcpy(p, "ADNN", 4);
    put_le(p + 4, 1, 2);
    put_le(p + 6, 1, 2);
    put_le(p + 8, AD_CELL_ELMAN, 4);
    put_le(p + 12, 1, 4);
    put_le(p + 16, 1, 4);
    put_le(p + 20, 1, 4);
    put_le(p + 24, 1, 4);
    put_le(p + 28, 5, 8);
    p += 36;
    for (int i = 0; i < 5; i++, p += 4)
        put_f32_at(p, net->params[i]);
    put_le(p, AD_OPTIM_ADAM, 4);
    put_f32_at(p + 4, opt->lr);
    put_f32_at(p + 8, opt->beta1);
    put_f32_at(p + 12, opt->beta2);
    put_f32_at(p + 16, opt->eps);
    put_f32_at(p + 20, opt->weight_decay);
    put_le(p + 24, (uint64_t)opt->t, 8);
    p += 32;
    for (int i = 0; i < 5; i++, p += 4)
        put_f32_at(p, opt->m[i]);
    for (int i = 0; i < 5; i++, p += 4)
        put_f32_at(p, opt->v[i]);
    ck_assert_uint_eq((size_t)(p - want) + 4, sizeof(want));
    recrc(want, sizeof(want));

    ck_assert_uint_eq(len, sizeof(want));
    ck_assert_mem_eq(b, want, sizeof(want));

    free(b);
    ad_optim_free(opt);
    ad_net_free(net);
}
END_TEST

/* ---- saving ---- */

START_TEST(test_save_too_small)
{
    ad_net *net = make_net(AD_CELL_CIFG, 1, 2, 3, 1, 61);
    ad_optim *opt = make_opt(net, OPT_ADAM, 62);
    const size_t need = ad_net_blob_size(net, opt);
    uint8_t *b = malloc(need);
    char err[128];
    size_t len;

    ck_assert_ptr_nonnull(b);
    ck_assert_uint_gt(need, ad_net_blob_size(net, NULL));
    const size_t caps[] = {0, 1, 4, 36, need / 2, need - 4, need - 1};
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        memset(b, 0xaa, need);
        len = 12345;
        err[0] = '\0';
        ck_assert_int_eq(ad_net_save(net, opt, b, caps[k], &len, err, sizeof(err)), -AD_EINVAL);
        ck_assert_msg(strstr(err, "too small") != NULL, "message: %s", err);
        ck_assert_uint_eq(len, 0);
        for (size_t i = 0; i < need; i++) /* nothing written */
            ck_assert_uint_eq(b[i], 0xaa);
    }
    ck_assert_int_eq(ad_net_save(net, opt, NULL, need, &len, err, sizeof(err)), -AD_EINVAL);
    ck_assert_int_eq(ad_net_save(net, opt, b, need, &len, err, sizeof(err)), 0);
    ck_assert_uint_eq(len, need);
    /* a bigger buffer is fine and the length is still exact */
    uint8_t *big = malloc(need + 100);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(ad_net_save(net, opt, big, need + 100, &len, err, sizeof(err)), 0);
    ck_assert_uint_eq(len, need);
    ck_assert_mem_eq(big, b, need);

    free(big);
    free(b);
    ad_optim_free(opt);
    ad_net_free(net);
}
END_TEST

START_TEST(test_save_optim_mismatch)
{
    ad_net *net = make_net(AD_CELL_LSTM, 1, 1, 2, 1, 71);
    ad_optim *opt = ad_optim_create(AD_OPTIM_ADAM, net->nparams + 1, 0.1f);
    uint8_t b[4096];
    char err[128] = "";
    size_t len = 1;

    ck_assert_ptr_nonnull(opt);
    ck_assert_int_eq(ad_net_save(net, opt, b, sizeof(b), &len, err, sizeof(err)), -AD_EINVAL);
    ck_assert_msg(strstr(err, "optimiser") != NULL, "message: %s", err);
    ck_assert_uint_eq(len, 0);
    ad_optim_free(opt);
    ad_net_free(net);
}
END_TEST

START_TEST(test_save_refuses_non_finite)
{
    ad_net *net = make_net(AD_CELL_GRU, 1, 1, 2, 1, 72);
    ad_optim *opt = ad_optim_create(AD_OPTIM_ADAM, net->nparams, 0.1f);
    uint8_t b[4096];
    char err[128] = "";
    size_t len = 1;

    /* a blob that load would refuse is never written */
    net->params[3] = NAN;
    ck_assert_int_eq(ad_net_save(net, NULL, b, sizeof(b), &len, err, sizeof(err)), -AD_EINVAL);
    ck_assert_msg(strstr(err, "parameter 3") != NULL, "message: %s", err);
    ck_assert_uint_eq(len, 0);
    net->params[3] = 0.5f;
    opt->v[1] = INFINITY;
    ck_assert_int_eq(ad_net_save(net, opt, b, sizeof(b), &len, err, sizeof(err)), -AD_EINVAL);
    ck_assert_msg(strstr(err, "optimiser") != NULL, "message: %s", err);
    opt->v[1] = 0.0f;
    ck_assert_int_eq(ad_net_save(net, opt, b, sizeof(b), &len, err, sizeof(err)), 0);
    ad_optim_free(opt);
    ad_net_free(net);
}
END_TEST

/* ---- damage ---- */

/* Small blobs (net + Adam, + SGD, alone) of kind _i for the exhaustive damage loops. */
static uint8_t *small_blob(ad_cell_kind kind, int variant, size_t *len, size_t *nparams)
{
    ad_net *net = make_net(kind, 1, 1, 2, 1, 81 + (uint64_t)kind);
    ad_optim *opt = make_opt(net, variant, 82);
    uint8_t *b = save_new(net, opt, len);
    *nparams = net->nparams;
    ad_optim_free(opt);
    ad_net_free(net);
    return b;
}

START_TEST(test_every_truncation)
{
    const ad_cell_kind kind = (ad_cell_kind)(_i / OPT_VARIANTS);
    const int variant = _i % OPT_VARIANTS;
    size_t len, np;
    uint8_t *b = small_blob(kind, variant, &len, &np);
    char what[64];

    for (size_t n = 0; n < len; n++) {
        /* a fresh exact-size copy so ASan sees any read past the end */
        uint8_t *c = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(c);
        memcpy(c, b, n);
        snprintf(what, sizeof(what), "truncated to %zu of %zu", n, len);
        expect_refused(c, n, NULL, "truncated", what);
        if (n == 0)
            expect_refused(NULL, 0, NULL, "truncated", "no buffer");
        free(c);
    }
    /* one trailing byte, of any value */
    b[len] = 0;
    expect_refused(b, len + 1, NULL, "trailing bytes", "trailing byte");
    b[len] = 0xff;
    expect_refused(b, len + 1, NULL, "trailing bytes", "trailing byte");
    b[len] = 0;
    expect_refused(b, len + 1, NULL, "(1 extra)", "trailing byte count");
    free(b);
}
END_TEST

/* The messages a flip at offset off may produce (see serial.c's order of checks). */
static const char *flip_alternatives(size_t off, size_t np, int variant)
{
    const size_t optim_kind = OFF_PARAMS + 4 * np;
    if (off < OFF_VERSION)
        return "magic";
    if (off < OFF_FLAGS)
        return "version";
    if (off < OFF_KIND) /* unknown bits, or the optimiser bit: a length mismatch */
        return "flags|trailing|truncated|checksum";
    if (off < OFF_NPARAMS)
        return "checksum";
    if (off < OFF_PARAMS) /* the length no longer adds up */
        return "truncated|trailing|checksum";
    if (variant != OPT_NONE && off >= optim_kind && off < optim_kind + 4)
        return "truncated|trailing|checksum"; /* SGD <-> Adam, or unknown */
    return "checksum";
}

START_TEST(test_every_flip)
{
    const ad_cell_kind kind = (ad_cell_kind)(_i / OPT_VARIANTS);
    const int variant = _i % OPT_VARIANTS;
    size_t len, np;
    uint8_t *b = small_blob(kind, variant, &len, &np);
    char what[96];

    for (size_t off = 0; off < len; off++) {
        const char *alts = flip_alternatives(off, np, variant);
        for (int k = 0; k < 9; k++) {
            uint8_t mask = k < 8 ? (uint8_t)(1u << k) : 0xff;
            b[off] ^= mask;
            snprintf(what, sizeof(what), "%s/%d: byte %zu of %zu ^ 0x%02x", ad_cell_name(kind),
                     variant, off, len, mask);
            expect_refused(b, len, NULL, alts, what);
            b[off] ^= mask;
        }
    }
    /* undamaged, it still loads */
    ad_net *net = NULL;
    load_ok(b, len, &net, NULL);
    ad_net_free(net);
    free(b);
}
END_TEST

START_TEST(test_bad_magic_and_version)
{
    size_t len, np;
    uint8_t *b = small_blob(AD_CELL_LSTM, OPT_ADAM, &len, &np);

    memcpy(b, "ADNM", 4);
    recrc(b, len);
    expect_refused(b, len, NULL, "magic", "magic");
    memcpy(b, "PK\3\4", 4);
    expect_refused(b, len, NULL, "magic", "zip magic");
    memcpy(b, "ADNN", 4);

    put_le(b + OFF_VERSION, 2, 2);
    recrc(b, len);
    expect_refused(b, len, NULL, "version 2, expected version 1", "version 2");
    put_le(b + OFF_VERSION, 0, 2);
    recrc(b, len);
    expect_refused(b, len, NULL, "version 0, expected version 1", "version 0");
    put_le(b + OFF_VERSION, 0xffff, 2);
    recrc(b, len);
    expect_refused(b, len, NULL, "version 65535, expected version 1", "version 65535");
    put_le(b + OFF_VERSION, 1, 2);

    put_le(b + OFF_FLAGS, 3, 2);
    recrc(b, len);
    expect_refused(b, len, NULL, "unknown flags", "flags 3");
    put_le(b + OFF_FLAGS, 0x8001, 2);
    recrc(b, len);
    expect_refused(b, len, NULL, "unknown flags", "flags 0x8001");
    put_le(b + OFF_FLAGS, 1, 2);

    recrc(b, len);
    ad_net *net = NULL;
    load_ok(b, len, &net, NULL); /* restored */
    ad_net_free(net);
    free(b);
}
END_TEST

/* Sets a u32 shape field, re-checksums, expects refusal with the message, restores. */
static void shape_refused(uint8_t *b, size_t len, size_t off, uint32_t v, const char *alts)
{
    char what[64];
    uint64_t old = get_le(b + off, 4);
    put_le(b + off, v, 4);
    recrc(b, len);
    snprintf(what, sizeof(what), "field at %zu = %u", off, (unsigned)v);
    expect_refused(b, len, NULL, alts, what);
    put_le(b + off, old, 4);
    recrc(b, len);
}

START_TEST(test_invalid_shape)
{
    size_t len, np;
    uint8_t *b = small_blob(AD_CELL_GRU, OPT_SGD, &len, &np);

    shape_refused(b, len, OFF_KIND, AD_CELL_NKINDS, "invalid shape");
    shape_refused(b, len, OFF_KIND, 0xffffffffu, "invalid shape");
    shape_refused(b, len, OFF_LAYERS, 0, "invalid shape");
    shape_refused(b, len, OFF_LAYERS, AD_MAX_LAYERS + 1, "invalid shape");
    shape_refused(b, len, OFF_INPUT, 0, "invalid shape");
    shape_refused(b, len, OFF_INPUT, 0x80000000u, "invalid shape");
    shape_refused(b, len, OFF_HIDDEN, AD_MAX_HIDDEN + 1, "invalid shape");
    shape_refused(b, len, OFF_HIDDEN, 0xffffffffu, "invalid shape");
    shape_refused(b, len, OFF_OUTPUT, 0, "invalid shape");
    shape_refused(b, len, OFF_OUTPUT, AD_MAX_OUTPUT + 1, "invalid shape");
    /* a valid shape that does not match nparams */
    shape_refused(b, len, OFF_HIDDEN, 3, "parameters");
    shape_refused(b, len, OFF_KIND, AD_CELL_LSTM, "parameters");
    shape_refused(b, len, OFF_LAYERS, 2, "parameters");
    /* GRU and GRU_TORCH differ by b_hn: same gates, other count */
    shape_refused(b, len, OFF_KIND, AD_CELL_GRU_TORCH, "parameters");

    ad_net *net = NULL;
    load_ok(b, len, &net, NULL);
    ad_net_free(net);
    free(b);
}
END_TEST

START_TEST(test_expect_mismatch)
{
    ad_net *net = make_net(AD_CELL_LSTM, 2, 3, 16, 1, 91);
    ad_net_config want = net->cfg;
    size_t len;
    uint8_t *b = save_new(net, NULL, &len);

    want.hidden = 32;
    expect_refused(b, len, &want, "blob has hidden 16, expected 32", "hidden");
    want = net->cfg;
    want.layers = 1;
    expect_refused(b, len, &want, "blob has layers 2, expected 1", "layers");
    want = net->cfg;
    want.input = 4;
    expect_refused(b, len, &want, "blob has input 3, expected 4", "input");
    want = net->cfg;
    want.output = 2;
    expect_refused(b, len, &want, "blob has output 1, expected 2", "output");
    want = net->cfg;
    want.kind = AD_CELL_GRU;
    expect_refused(b, len, &want, "blob has kind lstm, expected gru", "kind");

    ad_net *back = NULL;
    want = net->cfg;
    ck_assert_int_eq(ad_net_load(b, len, &want, &back, NULL, NULL, 0), 0);
    ad_net_free(back);
    free(b);
    ad_net_free(net);
}
END_TEST

START_TEST(test_non_finite)
{
    size_t len, np;
    uint8_t *b = small_blob(AD_CELL_PEEPHOLE, OPT_ADAM, &len, &np);
    const size_t optim = OFF_PARAMS + 4 * np;
    const size_t m0 = optim + 32, v0 = m0 + 4 * np;
    const struct {
        size_t off;
        float val;
        const char *alts;
    } cases[] = {
        {OFF_PARAMS, NAN, "non-finite parameter at index 0"},
        {OFF_PARAMS + 4 * (np - 1), INFINITY, "non-finite parameter"},
        {OFF_PARAMS + 8, -INFINITY, "non-finite parameter at index 2"},
        {optim + 4, NAN, "non-finite optimiser learning rate"},
        {optim + 8, INFINITY, "beta1"},
        {optim + 20, NAN, "weight decay"},
        {m0 + 4, NAN, "non-finite Adam first moment at index 1"},
        {v0, INFINITY, "non-finite Adam second moment"},
        {v0 + 4 * (np - 1), -1.0f, "negative Adam second moment"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        uint8_t save[4];
        memcpy(save, b + cases[k].off, 4);
        put_f32_at(b + cases[k].off, cases[k].val);
        recrc(b, len);
        expect_refused(b, len, NULL, cases[k].alts, cases[k].alts);
        memcpy(b + cases[k].off, save, 4);
    }
    /* a huge step count */
    put_le(b + optim + 24, (uint64_t)LLONG_MAX + 1, 8);
    recrc(b, len);
    expect_refused(b, len, NULL, "step count", "t > LLONG_MAX");
    free(b);
}
END_TEST

START_TEST(test_optim_kind)
{
    size_t len, np;
    uint8_t *b = small_blob(AD_CELL_ELMAN, OPT_ADAM, &len, &np);
    const size_t optim = OFF_PARAMS + 4 * np;

    put_le(b + optim, 7, 4);
    expect_refused(b, len, NULL, "checksum", "kind 7, old crc");
    recrc(b, len);
    expect_refused(b, len, NULL, "unknown optimiser kind 7", "kind 7");
    /* Adam relabelled SGD: the moments are now trailing bytes */
    put_le(b + optim, AD_OPTIM_SGD, 4);
    recrc(b, len);
    expect_refused(b, len, NULL, "trailing", "Adam as SGD");
    free(b);

    b = small_blob(AD_CELL_ELMAN, OPT_SGD, &len, &np);
    put_le(b + optim, AD_OPTIM_ADAM, 4);
    recrc(b, len);
    expect_refused(b, len, NULL, "truncated", "SGD as Adam");
    free(b);
}
END_TEST

START_TEST(test_nparams_lying)
{
    size_t len, np;
    uint8_t *b = small_blob(AD_CELL_GRU_TORCH, OPT_ADAM, &len, &np);
    char what[64];

    /* the field alone: the length no longer adds up */
    put_le(b + OFF_NPARAMS, np + 1, 8);
    recrc(b, len);
    expect_refused(b, len, NULL, "blob has 30 parameters|truncated", "np + 1");
    put_le(b + OFF_NPARAMS, np - 1, 8);
    recrc(b, len);
    expect_refused(b, len, NULL, "blob has 28 parameters|trailing", "np - 1");
    put_le(b + OFF_NPARAMS, 0, 8);
    recrc(b, len);
    expect_refused(b, len, NULL, "blob has 0 parameters|trailing", "np = 0");

    /* huge claims must not overflow any size computation */
    const uint64_t huge[] = {1ULL << 63,
                             UINT64_MAX,
                             UINT64_MAX / 4,
                             UINT64_MAX / 4 + 1,
                             (UINT64_MAX - 35) / 4,
                             (1ULL << 62) + 1,
                             SIZE_MAX / 12 + 1};
    for (size_t k = 0; k < sizeof(huge) / sizeof(huge[0]); k++) {
        put_le(b + OFF_NPARAMS, huge[k], 8);
        recrc(b, len);
        snprintf(what, sizeof(what), "nparams %llu", (unsigned long long)huge[k]);
        expect_refused(b, len, NULL, "truncated", what);
    }
    free(b);

    /* a consistent blob whose count disagrees with its shape: one parameter dropped */
    b = small_blob(AD_CELL_GRU_TORCH, OPT_NONE, &len, &np);
    put_le(b + OFF_NPARAMS, np + 1, 8);
    recrc(b, len);
    expect_refused(b, len, NULL, "truncated", "no optimiser, np + 1");
    memmove(b + OFF_PARAMS + 4 * (np - 1), b + OFF_PARAMS + 4 * np, 4);
    len -= 4;
    put_le(b + OFF_NPARAMS, np - 1, 8);
    recrc(b, len);
    snprintf(what, sizeof(what), "blob has %zu parameters", np - 1);
    expect_refused(b, len, NULL, what, "consistent np - 1");
    free(b);

    /* and one too many, with the right room for it */
    ad_net *net = make_net(AD_CELL_ELMAN, 1, 1, 2, 1, 5);
    ad_optim *opt = make_opt(net, OPT_ADAM, 6);
    np = net->nparams;
    len = ad_net_blob_size(net, opt) + 12;
    b = calloc(1, len);
    ck_assert_ptr_nonnull(b);
    uint8_t *p = b;
    memcpy(p, "ADNN", 4);
    put_le(p + OFF_VERSION, 1, 2);
    put_le(p + OFF_FLAGS, 1, 2);
    put_le(p + OFF_KIND, AD_CELL_ELMAN, 4);
    put_le(p + OFF_LAYERS, 1, 4);
    put_le(p + OFF_INPUT, 1, 4);
    put_le(p + OFF_HIDDEN, 2, 4);
    put_le(p + OFF_OUTPUT, 1, 4);
    put_le(p + OFF_NPARAMS, np + 1, 8);
    p += OFF_PARAMS + 4 * (np + 1);
    put_le(p, AD_OPTIM_ADAM, 4);
    put_f32_at(p + 4, 0.1f);
    recrc(b, len);
    snprintf(what, sizeof(what), "blob has %zu parameters", np + 1);
    expect_refused(b, len, NULL, what, "consistent np + 1");
    free(b);
    ad_optim_free(opt);
    ad_net_free(net);
}
END_TEST

/* ---- the kinds' codes in blobs: pinned ---- */

/* The codes stored blobs hold. They never change: reordering an enum must not renumber
 * them (a new kind takes a new code). */
static const struct {
    ad_cell_kind kind;
    uint32_t code;
    const char *name;
} cell_codes[] = {
    {AD_CELL_ELMAN, 0, "elman"}, {AD_CELL_LSTM, 1, "lstm"},
    {AD_CELL_PEEPHOLE, 2, "peephole"}, {AD_CELL_CIFG, 3, "cifg"},
    {AD_CELL_GRU, 4, "gru"},     {AD_CELL_GRU_TORCH, 5, "gru_torch"},
};
static const struct {
    ad_optim_kind kind;
    uint32_t code;
    const char *name;
} optim_codes[] = {{AD_OPTIM_SGD, 0, "sgd"}, {AD_OPTIM_ADAM, 1, "adam"}};
static const struct {
    ad_scorer_kind kind;
    uint32_t code;
    const char *name;
} scorer_codes[] = {
    {AD_SCORER_LIKELIHOOD, 0, "likelihood"},
    {AD_SCORER_DYNAMIC, 1, "dynamic"},
    {AD_SCORER_STATIC, 2, "static"},
};
static const struct {
    enum ad_model model;
    uint32_t code;
    const char *name;
} model_codes[] = {{AD_MODEL_PREDICT, 0, "predict"}, {AD_MODEL_SEQ2SEQ, 1, "seq2seq"}};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_codes_pinned)
{
    /* every kind has its pinned code and name, and back */
    ck_assert_uint_eq(NELEM(cell_codes), AD_CELL_NKINDS);
    for (size_t i = 0; i < NELEM(cell_codes); i++) {
        ck_assert_uint_eq(ad_cell_code(cell_codes[i].kind), cell_codes[i].code);
        ck_assert_int_eq(ad_cell_from_code(cell_codes[i].code), (int)cell_codes[i].kind);
        ck_assert_str_eq(ad_cell_name(cell_codes[i].kind), cell_codes[i].name);
    }
    for (size_t i = 0; i < NELEM(optim_codes); i++) {
        ck_assert_uint_eq(ad_optim_code(optim_codes[i].kind), optim_codes[i].code);
        ck_assert_int_eq(ad_optim_from_code(optim_codes[i].code), (int)optim_codes[i].kind);
        ck_assert_str_eq(ad_optim_name(optim_codes[i].kind), optim_codes[i].name);
    }
    ck_assert_uint_eq(NELEM(scorer_codes), AD_SCORER_NKINDS);
    for (size_t i = 0; i < NELEM(scorer_codes); i++) {
        ck_assert_uint_eq(ad_scorer_code(scorer_codes[i].kind), scorer_codes[i].code);
        ck_assert_int_eq(ad_scorer_from_code(scorer_codes[i].code), (int)scorer_codes[i].kind);
        ck_assert_str_eq(ad_scorer_name(scorer_codes[i].kind), scorer_codes[i].name);
    }
    for (size_t i = 0; i < NELEM(model_codes); i++) {
        ck_assert_uint_eq(ad_model_code(model_codes[i].model), model_codes[i].code);
        ck_assert_int_eq(ad_model_from_code(model_codes[i].code), (int)model_codes[i].model);
        ck_assert_str_eq(ad_model_name(model_codes[i].model), model_codes[i].name);
    }
    /* every value of the enums has a name and a code of its own (a kind added without
     * its table row would share code 0) */
    for (int k = 0; k < AD_CELL_NKINDS; k++) {
        ck_assert_ptr_nonnull(ad_cell_name((ad_cell_kind)k));
        ck_assert_int_eq(ad_cell_from_code(ad_cell_code((ad_cell_kind)k)), k);
    }
    for (int k = 0; k < AD_SCORER_NKINDS; k++) {
        ck_assert_ptr_nonnull(ad_scorer_name((ad_scorer_kind)k));
        ck_assert_int_eq(ad_scorer_from_code(ad_scorer_code((ad_scorer_kind)k)), k);
    }
    /* codes that name nothing, kinds that are none */
    ck_assert_int_eq(ad_cell_from_code(6), -1);
    ck_assert_int_eq(ad_cell_from_code(UINT32_MAX), -1);
    ck_assert_int_eq(ad_optim_from_code(2), -1);
    ck_assert_int_eq(ad_scorer_from_code(3), -1);
    ck_assert_int_eq(ad_model_from_code(2), -1);
    ck_assert_uint_eq(ad_cell_code(AD_CELL_NKINDS), UINT32_MAX);
    ck_assert_uint_eq(ad_optim_code((ad_optim_kind)7), UINT32_MAX);
    ck_assert_uint_eq(ad_scorer_code(AD_SCORER_NKINDS), UINT32_MAX);
    ck_assert_uint_eq(ad_model_code(2), UINT32_MAX);
    ck_assert_ptr_null(ad_optim_name((ad_optim_kind)7));
    ck_assert_ptr_null(ad_model_name(-1));
}
END_TEST

START_TEST(test_codes_in_blobs)
{
    /* the network blob: the cell kind's code and the optimiser's */
    for (size_t i = 0; i < NELEM(cell_codes); i++) {
        ad_net *net = make_net(cell_codes[i].kind, 1, 1, 2, 1, 61);
        ad_optim *opt = make_opt(net, OPT_SGD, 62);
        size_t len;
        uint8_t *b = save_new(net, opt, &len);
        ck_assert_uint_eq(get_le(b + OFF_KIND, 4), cell_codes[i].code);
        ck_assert_uint_eq(get_le(b + OFF_PARAMS + 4 * net->nparams, 4), 0); /* sgd */
        free(b);
        ad_optim_free(opt);
        ad_net_free(net);
    }
    ad_net *net = make_net(AD_CELL_LSTM, 1, 1, 2, 1, 63);
    ad_optim *opt = make_opt(net, OPT_ADAM, 64);
    size_t len;
    uint8_t *b = save_new(net, opt, &len);
    ck_assert_uint_eq(get_le(b + OFF_PARAMS + 4 * net->nparams, 4), 1); /* adam */
    free(b);
    ad_optim_free(opt);
    ad_net_free(net);

    /* the detector's configuration: model at 0, cell kind at 8, scorer kind at 128 */
    ad_detector_config c, back;
    uint8_t buf[512];
    ad_wbuf w;
    ad_rbuf r;
    char err[128] = "";
    ad_detector_defaults(&c);
    c.model = AD_MODEL_SEQ2SEQ;
    c.kind = AD_CELL_GRU_TORCH;
    ad_scorer_defaults(&c.scorer, AD_SCORER_STATIC);
    ad_wbuf_init(&w, buf, sizeof(buf));
    ad_detector_config_write(&w, &c);
    ck_assert(!w.err);
    ck_assert_uint_eq(get_le(buf, 4), 1);
    ck_assert_uint_eq(get_le(buf + 8, 4), 5);
    ck_assert_uint_eq(get_le(buf + 128, 4), 2);
    ad_rbuf_init(&r, buf, w.len);
    ck_assert_int_eq(ad_detector_config_read(&r, &back, 8, err, sizeof(err)), 0);
    ck_assert(!r.err);
    ck_assert_int_eq(back.model, AD_MODEL_SEQ2SEQ);
    ck_assert_int_eq(back.kind, AD_CELL_GRU_TORCH);
    ck_assert_int_eq(back.scorer.kind, AD_SCORER_STATIC);
    /* a code that names nothing is refused by name */
    static const struct {
        size_t off;
        const char *want;
    } bad[] = {{8, "unknown cell kind 9"}, {0, "model must be 0..1, got 9"},
               {128, "unknown scorer kind 9"}};
    for (size_t i = 0; i < NELEM(bad); i++) {
        uint8_t copy[512];
        memcpy(copy, buf, w.len);
        put_le(copy + bad[i].off, 9, 4);
        ad_rbuf_init(&r, copy, w.len);
        ck_assert_int_eq(ad_detector_config_read(&r, &back, 8, err, sizeof(err)), -AD_EFORMAT);
        ck_assert_str_eq(err, bad[i].want);
    }

    /* the scorer's state: its kind's code after the magic */
    for (size_t i = 0; i < NELEM(scorer_codes); i++) {
        ad_scorer_config sc;
        ad_scorer *s = NULL;
        uint8_t *sb;
        ad_scorer_defaults(&sc, scorer_codes[i].kind);
        ck_assert_int_eq(ad_scorer_create(&sc, &s, NULL, 0), 0);
        ad_wbuf_init(&w, NULL, 0);
        ad_scorer_save(s, &w);
        sb = malloc(w.len);
        ad_wbuf_init(&w, sb, w.len);
        ad_scorer_save(s, &w);
        ck_assert(!w.err);
        ck_assert_uint_eq(get_le(sb + 4, 4), scorer_codes[i].code);
        free(sb);
        ad_scorer_free(s);
    }
}
END_TEST

static Suite *serial_suite(void)
{
    Suite *s = suite_create("serial");
    const int all = AD_CELL_NKINDS * OPT_VARIANTS;

    TCase *tc = tcase_create("blob");
    tcase_add_test(tc, test_crc32_known);
    tcase_add_test(tc, test_writer_reader_roundtrip);
    tcase_add_test(tc, test_float_bits_preserved);
    tcase_add_test(tc, test_writer_overflow_is_sticky);
    tcase_add_test(tc, test_counting_writer);
    tcase_add_test(tc, test_reader_past_end);
    suite_add_tcase(s, tc);

    tc = tcase_create("roundtrip");
    tcase_add_loop_test(tc, test_roundtrip_exact, 0, all);
    tcase_add_loop_test(tc, test_roundtrip_resumes_training, 0, 2);
    tcase_add_loop_test(tc, test_loaded_step_bit_identical, 0, AD_CELL_NKINDS);
    tcase_add_test(tc, test_optim_optional);
    tcase_add_test(tc, test_layout_by_hand);
    suite_add_tcase(s, tc);

    tc = tcase_create("codes");
    tcase_add_test(tc, test_codes_pinned);
    tcase_add_test(tc, test_codes_in_blobs);
    suite_add_tcase(s, tc);

    tc = tcase_create("save");
    tcase_add_test(tc, test_save_too_small);
    tcase_add_test(tc, test_save_optim_mismatch);
    tcase_add_test(tc, test_save_refuses_non_finite);
    suite_add_tcase(s, tc);

    tc = tcase_create("damage");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_every_truncation, 0, all);
    tcase_add_loop_test(tc, test_every_flip, 0, all);
    tcase_add_test(tc, test_bad_magic_and_version);
    tcase_add_test(tc, test_invalid_shape);
    tcase_add_test(tc, test_expect_mismatch);
    tcase_add_test(tc, test_non_finite);
    tcase_add_test(tc, test_optim_kind);
    tcase_add_test(tc, test_nparams_lying);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(serial_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
