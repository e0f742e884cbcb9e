/*
 * series.h - the series table: canonical key -> series, and what the daemon keeps per
 * series besides its detector (recent points for the API, counters, training state).
 *
 * A hash table with open addressing (FNV-1a over the key, the hash kept beside each
 * pointer), grown by doubling; at most
 * max_series entries (ad_series_table_add refuses beyond, counted by the caller). Keys
 * are copied. The table does not free detectors: the caller owns a series' contents and
 * calls ad_series_free when it is done with one (after an eviction, possibly later,
 * when its training job has come back).
 */
#ifndef AD_SERIES_H
#define AD_SERIES_H

#include <stddef.h>
#include <stdint.h>

#include "detector.h"

#define AD_KEY_MAX 1024 /* longest canonical series key, bytes */

/* One point kept for the API. */
typedef struct ad_point {
    double ts;        /* the sample's timestamp */
    double value;
    double predicted; /* NAN when none */
    float score;
    uint8_t flagged;    /* an alert */
    uint8_t anomalous;  /* the state (ad_result.anomalous) */
    uint8_t warming_up;
} ad_point;

/* One point as the ring keeps it (25 bytes, against 32 for an ad_point): the timestamp
 * and the value exactly, the prediction as a float offset from the value (so it keeps
 * a float's relative precision of the error, not of the value: exact enough for a
 * prediction from a float network), the flags as bits. */
typedef struct __attribute__((packed)) ad_rpoint {
    double ts, value;
    float pred_off; /* predicted - value, NAN when none */
    float score;
    uint8_t flags;  /* bit 0: flagged, bit 1: warming_up, bit 2: anomalous */
} ad_rpoint;

struct ad_fam; /* families.h */

typedef struct ad_series {
    char *key;            /* NUL-terminated, stored right after the struct */
    size_t key_len;
    uint64_t hash;

    ad_detector *det;     /* owned by the daemon; NULL for a family's training entry */
    struct ad_fam *family; /* the shared family it belongs to, or NULL */
    int rule;             /* config rule index, -1 for the defaults */
    int proto;            /* protocol of the first sample (ad_proto) */
    double created;       /* wall clock, seconds */
    double last_seen;     /* wall clock of the last sample, seconds */
    ad_result last;       /* what the last accepted value gave */
    int have_last;
    uint64_t anomalies;   /* alerts raised */

    int dirty;            /* changed since its last checkpoint */
    uint64_t fingerprint; /* of its detector settings (ad_daemon_fingerprint) */

    int training;         /* a training job is out (uv_queue_work) */
    int queued;           /* waiting in the trainer's queue */
    int evicted;          /* removed from the table; free once its job is back */
    struct ad_series *qnext; /* trainer queue link */

    ad_rpoint *recent;    /* ring of recent_cap points */
    int recent_cap, recent_len, recent_head; /* head: index of the oldest */
} ad_series;

typedef struct ad_series_table ad_series_table;

/* Returns 0 or -AD_ENOMEM. */
int ad_series_table_create(size_t max_series, ad_series_table **out);
/* Frees the table and every series still in it (ad_series_free on each). */
void ad_series_table_free(ad_series_table *t);

size_t ad_series_table_size(const ad_series_table *t);
size_t ad_series_table_max(const ad_series_table *t);
void ad_series_table_set_max(ad_series_table *t, size_t max_series);

/* The series of a key, or NULL. */
ad_series *ad_series_table_find(ad_series_table *t, const char *key, size_t len);

/* For callers that look up many keys in turn and pipeline them: the key's hash, the
 * same lookup given it, and prefetches of the slot the hash starts at and (once that
 * slot is in cache) of the series it names. */
uint64_t ad_series_hash(const char *key, size_t len);
ad_series *ad_series_table_find_hashed(ad_series_table *t, const char *key, size_t len,
                                       uint64_t h);
void ad_series_table_prefetch(const ad_series_table *t, uint64_t h);
void ad_series_table_prefetch_series(const ad_series_table *t, uint64_t h);

/* Adds a new series for a key not in the table, with a ring of recent_cap points and
 * no detector. Returns 0, -AD_EFULL at max_series, -AD_ENOMEM. */
int ad_series_table_add(ad_series_table *t, const char *key, size_t len, int recent_cap,
                        ad_series **out);

/* Unlinks a series from the table (not freed). */
void ad_series_table_remove(ad_series_table *t, ad_series *s);

/* Iteration over every series, in no particular order. The table must not gain series
 * during an iteration; removing the series just returned is fine. */
typedef struct ad_series_iter {
    size_t bucket;         /* next slot to visit */
} ad_series_iter;

void ad_series_iter_start(ad_series_iter *it);
/* The next series, or NULL at the end. */
ad_series *ad_series_iter_next(ad_series_table *t, ad_series_iter *it);

/* Frees a series and its detector. */
void ad_series_free(ad_series *s);

/* Appends a point to the series' ring (oldest dropped). */
void ad_series_record(ad_series *s, const ad_point *p);

/* Prefetches the recent point the next ad_series_record writes (a hint). */
void ad_series_prefetch_recent(const ad_series *s);

/* The i-th recent point, 0 = oldest (0 <= i < recent_len). */
ad_point ad_series_point(const ad_series *s, int i);

/* Bytes the series holds (struct, key, ring, detector). */
size_t ad_series_bytes(const ad_series *s);

#endif
