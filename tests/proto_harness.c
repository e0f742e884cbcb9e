/*
 * proto_harness.c - the protocol suites' shared checks: the linebuf feeder, the per-line
 * records of a stream and their comparison, one-line ok/bad checks, and the sample
 * collector. See proto_harness.h.
 */
#include "proto_harness.h"

#include <check.h>
#include <math.h>
#include <string.h>

size_t ph_feed(const char *s, size_t n, size_t cap, size_t step, int deliver, ad_line_fn fn,
               void *ctx, int *finish_rc)
{
    char buf[PH_LINE_CAP];
    ad_linebuf lb;
    ck_assert_uint_le(cap, sizeof(buf));
    ad_linebuf_init(&lb, buf, cap);
    size_t dropped = 0;
    if (step == 0)
        step = n ? n : 1;
    for (size_t i = 0; i < n; i += step)
        dropped += ad_linebuf_feed(&lb, s + i, n - i < step ? n - i : step, fn, ctx);
    int rc = ad_linebuf_finish(&lb, deliver, fn, ctx);
    if (finish_rc)
        *finish_rc = rc;
    ck_assert_uint_eq(lb.len, 0);
    ck_assert_int_eq(lb.discarding, 0);
    return dropped;
}

ph_val *ph_rec_add(ph_rec *r, const char *key, size_t key_len, double value, double ts)
{
    ck_assert_int_lt(r->n, PH_REC_VALUES);
    ck_assert_uint_lt(key_len, PH_KEY_MAX);
    ph_val *v = &r->s[r->n++];
    memcpy(v->key, key, key_len);
    v->key[key_len] = '\0';
    v->value = value;
    v->ts = ts;
    return v;
}

int ph_rec_sample(void *ctx, const ad_sample *s)
{
    ck_assert_uint_eq(strlen(s->key), s->key_len);
    ph_rec_add(ctx, s->key, s->key_len, s->value, s->ts);
    return 0;
}

int ph_rec_parse(ph_parse_fn parse, const char *line, size_t len, ph_rec *r)
{
    char kb[64];
    ad_sample s;
    int rc = parse(line, len, kb, sizeof(kb), &s);
    if (rc == 0)
        ph_rec_sample(r, &s);
    return rc;
}

typedef struct stream_ctx {
    ph_line_fn parse;
    ph_recs *out;
} stream_ctx;

static void on_line(void *ctx, const char *line, size_t len)
{
    stream_ctx *c = ctx;
    ck_assert_int_lt(c->out->n, PH_REC_LINES);
    ph_rec *r = &c->out->r[c->out->n++];
    memset(r, 0, sizeof(*r));
    r->rc = c->parse(line, len, r);
}

void ph_stream(const char *in, size_t step, ph_line_fn parse, ph_recs *out)
{
    stream_ctx c = {parse, out};
    out->n = 0;
    ph_feed(in, strlen(in), PH_LINE_CAP, step, 1, on_line, &c, NULL);
}

static int same_double(double a, double b)
{
    return a == b || (isnan(a) && isnan(b));
}

void ph_same(const ph_recs *a, const ph_recs *b)
{
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const ph_rec *ra = &a->r[i], *rb = &b->r[i];
        ck_assert_int_eq(ra->rc, rb->rc);
        ck_assert_int_eq(ra->n, rb->n);
        for (int j = 0; j < ra->n; j++) {
            const ph_val *va = &ra->s[j], *vb = &rb->s[j];
            ck_assert_str_eq(va->key, vb->key);
            ck_assert_double_eq(va->value, vb->value);
            ck_assert(same_double(va->ts, vb->ts));
            ck_assert_double_eq(va->rate, vb->rate);
            ck_assert_int_eq(va->type, vb->type);
            ck_assert_int_eq(va->delta, vb->delta);
        }
    }
}

void ph_stream_bytewise(const char *in, ph_line_fn parse, ph_recs *whole)
{
    static ph_recs bytes;
    ph_stream(in, 0, parse, whole);
    ph_stream(in, 1, parse, &bytes);
    ph_same(whole, &bytes);
}

void ph_ok(ph_parse_fn parse, const char *line, const char *key, double value, double ts)
{
    char kb[256];
    ad_sample s;
    int rc = parse(line, strlen(line), kb, sizeof(kb), &s);
    ck_assert_msg(rc == 0, "'%s': rc %d", line, rc);
    ck_assert_ptr_eq(s.key, kb);
    ck_assert_str_eq(s.key, key);
    ck_assert_uint_eq(s.key_len, strlen(key));
    ck_assert_double_eq(s.value, value);
    if (isnan(ts))
        ck_assert(isnan(s.ts));
    else
        ck_assert_double_eq(s.ts, ts);
}

void ph_bad(ph_parse_fn parse, const char *line, int reason)
{
    char kb[256];
    ad_sample s = {.key = "sentinel", .key_len = 8, .ts = 1, .value = 2};
    int rc = parse(line, strlen(line), kb, sizeof(kb), &s);
    ck_assert_msg(rc == -reason, "'%s': rc %d, want %d", line, rc, -reason);
    ck_assert_str_eq(s.key, "sentinel");
    ck_assert_double_eq(s.value, 2);
}

int ph_got_sample(void *ctx, const ad_sample *s)
{
    ph_got *g = ctx;
    ck_assert_uint_lt(g->n, PH_GOT_MAX);
    ck_assert_uint_eq(strlen(s->key), s->key_len);
    ck_assert_uint_lt(s->key_len, sizeof(g->key[0]));
    ck_assert(isfinite(s->value));
    memcpy(g->key[g->n], s->key, s->key_len + 1);
    g->value[g->n] = s->value;
    g->ts[g->n] = s->ts;
    g->n++;
    return (int)g->n == g->stop_after;
}
