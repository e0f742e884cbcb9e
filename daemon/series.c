/*
 * series.c - the series table (hash table with chaining) and per-series recent points.
 */
#include "series.h"

#include <stdlib.h>
#include <string.h>

struct ad_series_table {
    ad_series **buckets; /* nbuckets chains */
    size_t nbuckets;     /* a power of two */
    size_t size;
    size_t max;
};

static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

int ad_series_table_create(size_t max_series, ad_series_table **out)
{
    ad_series_table *t = calloc(1, sizeof(*t));

    if (!t)
        return -AD_ENOMEM;
    t->nbuckets = 1024;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (!t->buckets) {
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
    for (size_t b = 0; b < t->nbuckets; b++) {
        ad_series *s = t->buckets[b];

        while (s) {
            ad_series *next = s->next;

            ad_series_free(s);
            s = next;
        }
    }
    free(t->buckets);
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

ad_series *ad_series_table_find(ad_series_table *t, const char *key, size_t len)
{
    uint64_t h = fnv1a(key, len);

    for (ad_series *s = t->buckets[h & (t->nbuckets - 1)]; s; s = s->next)
        if (s->hash == h && s->key_len == len && !memcmp(s->key, key, len))
            return s;
    return NULL;
}

/* Doubles the bucket array; on allocation failure the table stays as it was (longer
 * chains, still correct). */
static void grow(ad_series_table *t)
{
    size_t n = t->nbuckets * 2;
    ad_series **b = calloc(n, sizeof(*b));

    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        ad_series *s = t->buckets[i];

        while (s) {
            ad_series *next = s->next;
            size_t j = s->hash & (n - 1);

            s->next = b[j];
            b[j] = s;
            s = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

int ad_series_table_add(ad_series_table *t, const char *key, size_t len, int recent_cap,
                        ad_series **out)
{
    ad_series *s;
    size_t b;

    if (t->size >= t->max)
        return -AD_EFULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -AD_ENOMEM;
    s->key = malloc(len + 1);
    if (!s->key)
        goto out_free_series;
    if (recent_cap > 0) {
        s->recent = calloc((size_t)recent_cap, sizeof(*s->recent));
        if (!s->recent)
            goto out_free_key;
        s->recent_cap = recent_cap;
    }
    memcpy(s->key, key, len);
    s->key[len] = '\0';
    s->key_len = len;
    s->hash = fnv1a(key, len);
    s->rule = -1;
    if (t->size + 1 > t->nbuckets)
        grow(t);
    b = s->hash & (t->nbuckets - 1);
    s->next = t->buckets[b];
    t->buckets[b] = s;
    t->size++;
    *out = s;
    return 0;

out_free_key:
    free(s->key);
out_free_series:
    free(s);
    return -AD_ENOMEM;
}

void ad_series_table_remove(ad_series_table *t, ad_series *s)
{
    ad_series **pp = &t->buckets[s->hash & (t->nbuckets - 1)];

    for (; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            s->next = NULL;
            t->size--;
            return;
        }
    }
}

void ad_series_iter_start(ad_series_iter *it)
{
    it->bucket = 0;
    it->next = NULL;
}

ad_series *ad_series_iter_next(ad_series_table *t, ad_series_iter *it)
{
    ad_series *s = it->next;

    while (!s && it->bucket < t->nbuckets)
        s = t->buckets[it->bucket++];
    if (s)
        it->next = s->next;
    return s;
}

void ad_series_free(ad_series *s)
{
    if (!s)
        return;
    ad_detector_free(s->det);
    free(s->recent);
    free(s->key);
    free(s);
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
    s->recent[i] = *p;
}

const ad_point *ad_series_point(const ad_series *s, int i)
{
    return &s->recent[(s->recent_head + i) % s->recent_cap];
}

size_t ad_series_bytes(const ad_series *s)
{
    return sizeof(*s) + s->key_len + 1 + (size_t)s->recent_cap * sizeof(*s->recent) +
           (s->det ? ad_detector_bytes(s->det) : 0);
}
