/*
 * statsd_agg.c - the StatsD aggregation table: one entry per key (a hash table of chained
 * entries, each holding its own copy of the key), the running sums of the interval, and
 * the flush that turns them into samples and forgets the keys gone quiet.
 */
#include "ingest/statsd_agg.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h" /* ad_err */
#include "hash.h"

#define AD_AGG_MIN_BUCKETS 64

typedef struct entry {
    struct entry *next; /* in its bucket */
    int type;           /* ad_statsd_type, fixed by the first metric */
    int fresh;          /* had data this interval */
    int quiet;          /* flushes in a row without data */
    double sum;         /* counter: sum of value / rate; timer: sum of value / rate */
    double weight;      /* timer: sum of 1 / rate */
    double gauge;       /* gauge: its current value */
    size_t key_len;
    char key[]; /* key_len bytes and a NUL */
} entry;

struct ad_statsd_agg {
    entry **buckets;  /* nbuckets chains */
    size_t nbuckets;  /* a power of two */
    size_t n;         /* keys held */
    size_t max_keys;  /* new keys beyond it are refused */
    int idle_flushes; /* quiet flushes before a key is forgotten */
};

int ad_statsd_agg_create(size_t max_keys, int idle_flushes, ad_statsd_agg **out)
{
    *out = NULL;
    if (idle_flushes < 0)
        return -AD_EINVAL;
    ad_statsd_agg *a = calloc(1, sizeof(*a));
    if (!a)
        return -AD_ENOMEM;
    a->nbuckets = AD_AGG_MIN_BUCKETS;
    a->buckets = calloc(a->nbuckets, sizeof(*a->buckets));
    if (!a->buckets)
        goto out_free_agg;
    a->max_keys = max_keys;
    a->idle_flushes = idle_flushes;
    *out = a;
    return 0;
out_free_agg:
    free(a);
    return -AD_ENOMEM;
}

void ad_statsd_agg_free(ad_statsd_agg *a)
{
    if (!a)
        return;
    for (size_t b = 0; b < a->nbuckets; b++) {
        entry *e = a->buckets[b];
        while (e) {
            entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(a->buckets);
    free(a);
}

size_t ad_statsd_agg_size(const ad_statsd_agg *a)
{
    return a->n;
}

/* Doubles the bucket array; on failure the chains just grow longer. */
static void grow(ad_statsd_agg *a)
{
    size_t nb = a->nbuckets * 2;
    entry **b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < a->nbuckets; i++) {
        entry *e = a->buckets[i];
        while (e) {
            entry *next = e->next;
            size_t j = ad_hash_key(e->key, e->key_len) & (nb - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(a->buckets);
    a->buckets = b;
    a->nbuckets = nb;
}

static entry *find(const ad_statsd_agg *a, const char *key, size_t len)
{
    entry *e = a->buckets[ad_hash_key(key, len) & (a->nbuckets - 1)];
    for (; e; e = e->next)
        if (e->key_len == len && !memcmp(e->key, key, len))
            return e;
    return NULL;
}

int ad_statsd_agg_add(ad_statsd_agg *a, const ad_statsd_metric *m)
{
    if (!m->key || m->type < AD_STATSD_GAUGE || m->type > AD_STATSD_TIMER || !isfinite(m->value) ||
        !(m->rate > 0 && m->rate <= 1))
        return -AD_EINVAL;
    entry *e = find(a, m->key, m->key_len);
    if (e && e->type != m->type)
        return -AD_EINVAL;

    /* the new sums first: a metric that would make them infinite is refused whole */
    double sum = 0, weight = 0, gauge = 0;
    switch ((ad_statsd_type)m->type) { /* in range: checked above */
    case AD_STATSD_COUNTER:
        sum = (e ? e->sum : 0) + m->value / m->rate;
        break;
    case AD_STATSD_TIMER:
        sum = (e ? e->sum : 0) + m->value / m->rate;
        weight = (e ? e->weight : 0) + 1 / m->rate;
        break;
    case AD_STATSD_GAUGE:
        gauge = m->delta ? (e ? e->gauge : 0) + m->value : m->value;
        break;
    }
    if (!isfinite(sum) || !isfinite(weight) || !isfinite(gauge))
        return -AD_EINVAL;

    if (!e) {
        if (a->n >= a->max_keys)
            return -AD_EFULL;
        e = calloc(1, sizeof(*e) + m->key_len + 1);
        if (!e)
            return -AD_ENOMEM;
        memcpy(e->key, m->key, m->key_len);
        e->key[m->key_len] = '\0';
        e->key_len = m->key_len;
        e->type = m->type;
        size_t b = ad_hash_key(e->key, e->key_len) & (a->nbuckets - 1);
        e->next = a->buckets[b];
        a->buckets[b] = e;
        if (++a->n > a->nbuckets)
            grow(a);
    }
    e->sum = sum;
    e->weight = weight;
    e->gauge = gauge;
    e->fresh = 1;
    return 0;
}

size_t ad_statsd_agg_flush(ad_statsd_agg *a, double ts, ad_sample_fn fn, void *ctx)
{
    size_t given = 0;
    int stopped = 0;
    for (size_t b = 0; b < a->nbuckets; b++) {
        entry **link = &a->buckets[b];
        while (*link) {
            entry *e = *link;
            int emit = 0, forget = 0;
            double v = 0;
            if (e->fresh) {
                e->quiet = 0;
                emit = 1;
                v = e->type == AD_STATSD_COUNTER ? e->sum
                    : e->type == AD_STATSD_TIMER ? e->sum / e->weight
                                                 : e->gauge;
            } else {
                e->quiet++;
                emit = e->type == AD_STATSD_COUNTER && e->quiet <= a->idle_flushes;
                forget = e->quiet >= a->idle_flushes;
            }
            if (emit && !stopped) {
                ad_sample s = {.key = e->key, .key_len = e->key_len, .ts = ts, .value = v};
                given++;
                stopped = fn(ctx, &s) != 0;
            }
            e->fresh = 0;
            e->sum = 0;
            e->weight = 0;
            if (forget) {
                *link = e->next;
                free(e);
                a->n--;
            } else {
                link = &e->next;
            }
        }
    }
    return given;
}
