/*
 * families.h - shared models in the daemon: the families that `shared: true` rules make.
 *
 * A family is the set of series one shared rule matches; they share one network
 * (models/family.h) and each keeps its own detector state. The daemon keeps one ad_fam
 * per shared rule (identified by the rule's glob and its settings' fingerprint, so a
 * reload that keeps the rule keeps the family). A family trains through the trainer like
 * a series (its entry in the queue is `pseudo`): first when one of its members is due,
 * then whenever its members have seen train_every samples each on average since the last
 * training. After each training every member with enough history joins (re-primes on the
 * new weights); a member that arrives once the family is trained joins as soon as it has
 * two windows of history, without a training of its own.
 *
 * The store keeps a family's network as a row keyed "@family/<glob>" (series keys that
 * start with "@family/" are refused), and members' blobs without the network.
 */
#ifndef AD_FAMILIES_H
#define AD_FAMILIES_H

#include <stddef.h>
#include <stdint.h>

#include "daemon.h"

#define AD_FAMILY_PREFIX "@family/"
#define AD_FAM_BATCH_MAX 1024 /* members stepped in one batch, at most */

typedef struct ad_fam {
    char *name;               /* "@family/<glob>": its key in the store and in /metrics */
    ad_detector_config det;   /* the rule's settings */
    uint64_t fingerprint;     /* of those settings, shared (ad_fam_fingerprint) */
    ad_net *net;              /* the shared network */
    int trained;              /* the network has been trained (or restored trained) */
    uint64_t samples_since;   /* member samples since the last training */
    size_t members;           /* members in the series table */
    uint64_t trainings;       /* trainings installed */
    uint64_t retry_at;        /* after a failed training, not before samples_since
                                 reaches this (each member has had a new value) */
    int dirty;                /* network changed since the last checkpoint */
    ad_series pseudo;         /* the family's entry in the trainer's queue */
    ad_detector **pending;    /* members with a deferred step (npending of cap_pending):
                                 stepped as one batch by ad_fam_flush */
    size_t npending, cap_pending;
    ad_detector_batch batch; /* the batched steps' scratch */
    uint64_t batches;        /* batched steps run (ad_detector_step_batch calls) */
    uint64_t batched;        /* member steps in them */
    struct ad_fam *next;
} ad_fam;

/* The fingerprint a member of a family with these settings carries (differs from an
 * own-weight series' with the same settings). */
uint64_t ad_fam_fingerprint(const ad_detector_config *c);

/* The storage (net.h, enum ad_net_storage) of a family's shared network under the
 * configuration's `weights` (ad_wtype): float32 keeps floats; float16 and int8 both step
 * on an fp16 block beside the float masters. A family's network is one per family and
 * stays in cache, so int8's fewer bytes would buy nothing but its rounding, and the
 * masters keep the family's pooled training exact (docs/CONFIG.md). */
int ad_fam_storage(int weights);

/* The family for shared rule `rule` of the running configuration, created (untrained)
 * when there is none yet. NULL on allocation failure. */
ad_fam *ad_fam_get(ad_daemon *d, int rule);

/* A member's value was accepted (r is what it gave): joins it or asks for a family
 * training when due. */
void ad_fam_observed(ad_daemon *d, ad_series *s, const ad_result *r);

/* A member's value was observed with its network step deferred
 * (ad_detector_observe_defer returned 1): it joins its family's pending list; a full
 * list (AD_FAM_BATCH_MAX) is stepped at once. */
void ad_fam_defer(ad_fam *f, ad_detector *det);

/* Steps every family's pending members, one batch per family (ad_detector_step_batch).
 * The daemon calls it after each read's lines, datagram, request body and StatsD flush,
 * and before anything else looks at or changes members (eviction, a family's install,
 * a reload): nothing else ever sees a step pending. Cheap when nothing is pending. */
void ad_fam_flush(ad_daemon *d);

/* A family training failed (too little history yet, out of memory): the next request
 * waits until every member has had another value. */
void ad_fam_failed(ad_fam *f);

/* The trainer's ops for the daemon: a family's entry trains the family, any other
 * series its own detector. */
extern const ad_trainer_ops ad_fam_trainer_ops;

/* The network as a blob (malloc'd) for the store, or NULL. */
void *ad_fam_save(const ad_fam *f, size_t *len);
/* Restores a family from a store row (pass 1 of the restore). 0 when restored; -1 when
 * no shared rule of the running configuration has that glob and fingerprint, or the blob
 * is refused (err says why). */
int ad_fam_restore(ad_daemon *d, const char *key, uint64_t fingerprint, const void *blob,
                   size_t len, char *err, size_t errlen);

size_t ad_fam_count(const ad_daemon *d);
void ad_fam_free_all(ad_daemon *d);

#endif
