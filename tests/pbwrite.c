/*
 * pbwrite.c - the tests' protobuf writer (pbwrite.h).
 */
#include "pbwrite.h"

#include <check.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

void pb_put(pb *p, const void *d, size_t n)
{
    if (p->n + n > p->cap) {
        p->cap = (p->n + n) * 2 + 64;
        p->b = realloc(p->b, p->cap);
        ck_assert_ptr_nonnull(p->b);
    }
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

void pb_varint(pb *p, uint64_t v)
{
    unsigned char c;

    do {
        c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        pb_put(p, &c, 1);
    } while (v);
}

void pb_bytes(pb *p, int field, const void *d, size_t n)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, n);
    pb_put(p, d, n);
}

void pb_str(pb *p, int field, const char *s)
{
    pb_bytes(p, field, s, strlen(s));
}

void pb_sub(pb *p, int field, pb *sub)
{
    pb_bytes(p, field, sub->b, sub->n);
    free(sub->b);
    memset(sub, 0, sizeof(*sub));
}

void pb_label(pb *ts, const char *name, const char *value)
{
    pb l = {0};

    pb_str(&l, 1, name);
    pb_str(&l, 2, value);
    pb_sub(ts, 1, &l);
}

void pb_sample(pb *ts, int64_t t_ms, double v)
{
    pb s = {0};

    pb_varint(&s, 1 << 3 | 1); /* field 1, 64-bit: the value */
    pb_put(&s, &v, 8);         /* little-endian host */
    pb_varint(&s, 2 << 3 | 0); /* field 2, varint: the timestamp */
    pb_varint(&s, (uint64_t)t_ms);
    pb_sub(ts, 2, &s);
}

char *pb_snappy(pb *p, size_t *len)
{
    size_t cap = snappy_max_compressed_length(p->n);
    char *out = malloc(cap ? cap : 1);

    ck_assert_ptr_nonnull(out);
    ck_assert_int_eq(snappy_compress((const char *)(p->b ? p->b : (unsigned char *)""), p->n,
                                     out, &cap),
                     SNAPPY_OK);
    free(p->b);
    memset(p, 0, sizeof(*p));
    *len = cap;
    return out;
}
