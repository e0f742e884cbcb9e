/*
 * series.c - the series table (hash table with chaining) and per-series recent points.
 */
#include "series.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* Open addressing with linear probing: each slot holds a series' hash beside its pointer,
 * so a lookup touches a series only when the full hash matches. A removed series leaves a
 * tombstone (so iteration and removal mix safely); tombstones go when the array is
 * rebuilt (growth, or when they pass a quarter of it at an add). */
typedef struct slot {
    uint64_t hash;
    ad_series *s; /* NULL: empty; TOMB: removed */
} slot;

#define TOMB ((ad_series *)(uintptr_t)1)

struct ad_series_table {
    slot *slots;  /* cap slots */
    size_t cap;   /* a power of two */
    size_t size;  /* series held */
    size_t tombs; /* tombstones */
    size_t max;
};

int ad_series_table_create(size_t max_series, ad_series_table **out)
{
    ad_series_table *t = calloc(1, sizeof(*t));

    if (!t)
        return -AD_ENOMEM;
    t->cap = 1024;
    t->slots = calloc(t->cap, sizeof(*t->slots));
    if (!t->slots) {
        free(t);
        return -AD_ENOMEM;
    }
    t->max = max_series;
    *out = t;
    return 0;
}

void ad_series_table_free(ad_series_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].s && t->slots[i].s != TOMB)
            ad_series_free(t->slots[i].s);
    free(t->slots);
    free(t);
}

size_t ad_series_table_size(const ad_series_table *t)
{
    return t->size;
}

size_t ad_series_table_max(const ad_series_table *t)
{
    return t->max;
}

void ad_series_table_set_max(ad_series_table *t, size_t max_series)
{
    t->max = max_series;
}

uint64_t ad_series_hash(const char *key, size_t len)
{
    return ad_hash_key(key, len);
}

void ad_series_table_prefetch(const ad_series_table *t, uint64_t h)
{
    __builtin_prefetch(&t->slots[h & (t->cap - 1)]);
}

void ad_series_table_prefetch_series(const ad_series_table *t, uint64_t h)
{
    size_t mask = t->cap - 1;

    for (size_t i = h & mask; t->slots[i].s; i = (i + 1) & mask) {
        if (t->slots[i].hash == h && t->slots[i].s != TOMB) {
            const ad_series *s = t->slots[i].s;

            __builtin_prefetch(s);
            __builtin_prefetch((const char *)s + 64);
            __builtin_prefetch((const char *)(s + 1)); /* the key */
            return;
        }
    }
}

ad_series *ad_series_table_find(ad_series_table *t, const char *key, size_t len)
{
    return ad_series_table_find_hashed(t, key, len, ad_hash_key(key, len));
}

ad_series *ad_series_table_find_hashed(ad_series_table *t, const char *key, size_t len, uint64_t h)
{
    size_t mask = t->cap - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *sl = &t->slots[i];

        if (!sl->s)
            return NULL;
        if (sl->hash == h && sl->s != TOMB && sl->s->key_len == len &&
            !memcmp(sl->s->key, key, len))
            return sl->s;
    }
}

/* Rebuilds the slot array with cap slots (no tombstones). -AD_ENOMEM leaves it as it
 * was. */
static int rebuild(ad_series_table *t, size_t cap)
{
    slot *n = calloc(cap, sizeof(*n));

    if (!n)
        return -AD_ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        ad_series *s = t->slots[i].s;
        size_t j;

        if (!s || s == TOMB)
            continue;
        for (j = s->hash & (cap - 1); n[j].s; j = (j + 1) & (cap - 1))
            ;
        n[j].hash = s->hash;
        n[j].s = s;
    }
    free(t->slots);
    t->slots = n;
    t->cap = cap;
    t->tombs = 0;
    return 0;
}

int ad_series_table_add(ad_series_table *t, const char *key, size_t len, int recent_cap,
                        ad_series **out)
{
    ad_series *s;
    size_t i, mask;

    if (t->size >= t->max)
        return -AD_EFULL;
    /* at most half full, tombstones included, so probes stay short */
    if (2 * (t->size + t->tombs + 1) > t->cap &&
        rebuild(t, 2 * (t->size + 1) > t->cap ? 2 * t->cap : t->cap) < 0)
        return -AD_ENOMEM;
    /* the key lives right after the struct: one allocation, and a lookup's key compare
     * reads lines next to those it has just read */
    s = calloc(1, sizeof(*s) + len + 1);
    if (!s)
        return -AD_ENOMEM;
    s->key = (char *)(s + 1);
    if (recent_cap > 0) {
        s->recent = calloc((size_t)recent_cap, sizeof(*s->recent));
        if (!s->recent)
            goto out_free_series;
        s->recent_cap = recent_cap;
    }
    memcpy(s->key, key, len);
    s->key[len] = '\0';
    s->key_len = len;
    s->hash = ad_hash_key(key, len);
    s->rule = -1;
    mask = t->cap - 1;
    for (i = s->hash & mask; t->slots[i].s && t->slots[i].s != TOMB; i = (i + 1) & mask)
        ;
    if (t->slots[i].s == TOMB)
        t->tombs--;
    t->slots[i].hash = s->hash;
    t->slots[i].s = s;
    t->size++;
    *out = s;
    return 0;

out_free_series:
    free(s);
    return -AD_ENOMEM;
}

void ad_series_table_remove(ad_series_table *t, ad_series *s)
{
    size_t mask = t->cap - 1;

    for (size_t i = s->hash & mask; t->slots[i].s; i = (i + 1) & mask) {
        if (t->slots[i].s == s) {
            t->slots[i].s = TOMB;
            t->tombs++;
            t->size--;
            return;
        }
    }
}

void ad_series_iter_start(ad_series_iter *it)
{
    it->bucket = 0;
}

ad_series *ad_series_iter_next(ad_series_table *t, ad_series_iter *it)
{
    while (it->bucket < t->cap) {
        ad_series *s = t->slots[it->bucket++].s;

        if (s && s != TOMB)
            return s;
    }
    return NULL;
}

void ad_series_free(ad_series *s)
{
    if (!s)
        return;
    ad_detector_free(s->det);
    free(s->recent);
    free(s);
}

void ad_series_prefetch_recent(const ad_series *s)
{
    if (s->recent_cap)
        __builtin_prefetch(&s->recent[(s->recent_head + s->recent_len) % s->recent_cap], 1);
}

void ad_series_record(ad_series *s, const ad_point *p)
{
    int i;

    if (s->recent_cap == 0)
        return;
    if (s->recent_len < s->recent_cap) {
        i = (s->recent_head + s->recent_len) % s->recent_cap;
        s->recent_len++;
    } else {
        i = s->recent_head;
        s->recent_head = (s->recent_head + 1) % s->recent_cap;
    }
    ad_rpoint *r = &s->recent[i];
    r->ts = p->ts;
    r->value = p->value;
    r->pred_off = (float)(p->predicted - p->value);
    r->score = p->score;
    r->flags = (uint8_t)((p->flagged != 0) | (p->warming_up != 0) << 1 | (p->anomalous != 0) << 2);
}

ad_point ad_series_point(const ad_series *s, int i)
{
    const ad_rpoint *r = &s->recent[(s->recent_head + i) % s->recent_cap];
    ad_point p = {.ts = r->ts,
                  .value = r->value,
                  .predicted = r->value + (double)r->pred_off,
                  .score = r->score,
                  .flagged = r->flags & 1,
                  .anomalous = (uint8_t)(r->flags >> 2 & 1),
                  .warming_up = (uint8_t)(r->flags >> 1 & 1)};
    return p;
}

size_t ad_series_bytes(const ad_series *s)
{
    return sizeof(*s) + s->key_len + 1 + (size_t)s->recent_cap * sizeof(*s->recent) +
           (s->det ? ad_detector_bytes(s->det) : 0);
}
