/*
 * fuzz_frame.h - what every fuzz target shares: the input's first bytes choose a cut
 * point, the framer's line cap and the key buffer's size; the rest is split into lines
 * by ad_linebuf three ways (one whole feed, two chunks cut at the chosen point, and a
 * plain reference splitter), and the target aborts unless all three agree. Each line is
 * then handed to the target's parser check, and so is the whole stream as one line.
 * Also the checks the targets share: the key buffer with its guard, the return codes,
 * and the one-sample parsers' contract (fz_parse_sample). Static functions only:
 * included by one fuzz_*.c each.
 */
#ifndef AD_FUZZ_FRAME_H
#define AD_FUZZ_FRAME_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/linebuf.h"
#include "ingest/sample.h"

#define FZ_MAX  4096 /* the longest input looked at (scripts/fuzz: -max_len=4096) */
#define FZ_HEAD 4    /* bytes of parameters before the stream */

typedef struct fz_params {
    size_t cut;    /* where the stream is cut in two chunks */
    size_t cap;    /* the framer's line cap, 1..FZ_MAX */
    size_t keycap; /* the key buffer's size given to the parser, 0..255 */
    int deliver;   /* finish() delivers the last partial line */
} fz_params;

typedef struct fz_lines {
    size_t n, used, dropped;
    int finished; /* finish()'s return */
    size_t len[FZ_MAX + 1];
    char buf[FZ_MAX];
} fz_lines;

static void fz_collect(void *ctx, const char *line, size_t len)
{
    fz_lines *l = ctx;
    if (l->n > FZ_MAX || len > sizeof(l->buf) - l->used)
        abort();
    memcpy(l->buf + l->used, line, len);
    l->used += len;
    l->len[l->n++] = len;
}

static void fz_reset(fz_lines *l)
{
    l->n = l->used = l->dropped = 0;
    l->finished = 0;
}

/* The framer's contract, written the plain way. */
static void fz_reference(const char *p, size_t n, const fz_params *pa, fz_lines *out)
{
    fz_reset(out);
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '\n')
            continue;
        size_t len = i - start;
        if (i == n) { /* the partial last line */
            if (len > pa->cap) {
                out->dropped++;
            } else if (len > 0) {
                out->finished = 1;
                if (pa->deliver)
                    fz_collect(out, p + start, len - (p[i - 1] == '\r'));
            }
            break;
        }
        if (len > pa->cap)
            out->dropped++;
        else
            fz_collect(out, p + start, len - (len > 0 && p[i - 1] == '\r'));
        start = i + 1;
    }
}

static int fz_same(const fz_lines *a, const fz_lines *b)
{
    return a->n == b->n && a->used == b->used && a->dropped == b->dropped &&
           a->finished == b->finished && !memcmp(a->len, b->len, a->n * sizeof(a->len[0])) &&
           !memcmp(a->buf, b->buf, a->used);
}

/* Reads the parameters; returns the stream, or NULL if the input is too short or long. */
static const char *fz_begin(const uint8_t *data, size_t size, fz_params *pa, size_t *n)
{
    if (size < FZ_HEAD || size > FZ_MAX + FZ_HEAD)
        return NULL;
    *n = size - FZ_HEAD;
    pa->cut = *n ? ((size_t)data[0] << 8 | data[1]) % (*n + 1) : 0;
    pa->cap = 1 + (size_t)(data[2] & 0x7f) * 32;
    pa->deliver = data[2] >> 7;
    pa->keycap = data[3];
    return (const char *)data + FZ_HEAD;
}

/* Frames the stream three ways and aborts unless they agree; *out gets the lines. */
static void fz_frame(const char *p, size_t n, const fz_params *pa, fz_lines *out)
{
    static fz_lines split, ref;
    static char b1[FZ_MAX], b2[FZ_MAX];
    ad_linebuf l1, l2;

    fz_reset(out);
    ad_linebuf_init(&l1, b1, pa->cap);
    out->dropped = ad_linebuf_feed(&l1, p, n, fz_collect, out);
    out->finished = ad_linebuf_finish(&l1, pa->deliver, fz_collect, out);

    fz_reset(&split);
    ad_linebuf_init(&l2, b2, pa->cap);
    split.dropped = ad_linebuf_feed(&l2, p, pa->cut, fz_collect, &split);
    split.dropped += ad_linebuf_feed(&l2, p + pa->cut, n - pa->cut, fz_collect, &split);
    split.finished = ad_linebuf_finish(&l2, pa->deliver, fz_collect, &split);

    fz_reference(p, n, pa, &ref);
    if (!fz_same(out, &split) || !fz_same(out, &ref))
        abort();
    if (l1.len || l1.discarding || l2.len || l2.discarding)
        abort();
}

/* Calls fn on each line of l. */
static void fz_each(const fz_lines *l,
                    void (*fn)(const char *line, size_t len, const fz_params *pa),
                    const fz_params *pa)
{
    size_t off = 0;
    for (size_t i = 0; i < l->n; i++) {
        fn(l->buf + off, l->len[i], pa);
        off += l->len[i];
    }
}

/* The fuzzer's entry, once the target's check_line is known: frames the input and runs
 * fn on each line, then on the whole stream as one line, newlines and all. Returns 0
 * when the input was too short or too long to run. */
static int fz_run(const uint8_t *data, size_t size,
                  void (*fn)(const char *line, size_t len, const fz_params *pa))
{
    static fz_lines lines;
    fz_params pa;
    size_t n;
    const char *p = fz_begin(data, size, &pa, &n);
    if (!p)
        return 0;
    fz_frame(p, n, &pa, &lines);
    fz_each(&lines, fn, &pa);
    fn(p, n, &pa);
    return 1;
}

/* The key buffer given to a parser: keycap bytes, then a guard that must stay intact. */
#define FZ_GUARD 16
static char fz_keybuf[256 + FZ_GUARD];

static void fz_key_arm(size_t keycap)
{
    memset(fz_keybuf, 0x5a, sizeof(fz_keybuf));
    (void)keycap;
}

/* Aborts unless key is a NUL-terminated string of key_len bytes inside keycap bytes of
 * fz_keybuf, and nothing past keycap was written. */
static void fz_key_check(const char *key, size_t key_len, size_t keycap)
{
    if (key != fz_keybuf || key_len >= keycap || key[key_len] != '\0' || strlen(key) != key_len)
        abort();
}

static void fz_guard_check(size_t keycap)
{
    for (size_t i = keycap; i < sizeof(fz_keybuf); i++)
        if (fz_keybuf[i] != 0x5a)
            abort();
}

/* A parser's return is a skip or one of the refusal reasons. */
static int fz_refusal(int rc)
{
    return rc == AD_PARSE_SKIP || (rc < 0 && rc > -AD_PE_NREASONS);
}

/* Runs a one-sample parser (Graphite, JSON lines) on line with fz_keybuf and the input's
 * key cap, and aborts unless: nothing past the cap was written; on success the key is
 * whole inside the cap, the value finite and the timestamp NAN or in [0, 1e11); on a
 * skip or refusal the sample untouched; and no other return. Returns the parser's
 * return, *s the sample. (inline: not every target uses it.) */
static inline int fz_parse_sample(int (*parse)(const char *line, size_t len, char *keybuf,
                                               size_t keycap, ad_sample *out),
                                  const char *line, size_t len, const fz_params *pa, ad_sample *s)
{
    *s = (ad_sample){.key = "sentinel", .key_len = 8, .ts = 1, .value = 2};
    fz_key_arm(pa->keycap);
    int rc = parse(line, len, fz_keybuf, pa->keycap, s);
    fz_guard_check(pa->keycap);
    if (rc == 0) {
        fz_key_check(s->key, s->key_len, pa->keycap);
        if (!isfinite(s->value) || !(isnan(s->ts) || (s->ts >= 0 && s->ts < 1e11)))
            abort();
    } else if (fz_refusal(rc)) {
        if (strcmp(s->key, "sentinel") != 0 || s->value != 2 || s->ts != 1)
            abort();
    } else {
        abort();
    }
    return rc;
}

#endif
