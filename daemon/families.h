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
 *
 * The families live in a registry (ad_fams) the daemon owns, beside what they work with:
 * the running configuration (the shared rules, the weights), the series table (where the
 * members are) and the trainer. Everything here runs on the loop thread.
 */
#ifndef AD_FAMILIES_H
#define AD_FAMILIES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "detector.h"
#include "series.h"
#include "trainer.h"

#define AD_FAMILY_PREFIX "@family/"
#define AD_FAM_BATCH_MAX 1024 /* members stepped in one batch, at most */

typedef struct ad_fam {
    char *name;               /* "@family/<glob>": its key in the store and in /metrics */
    ad_detector_config det;   /* the rule's settings */
    uint64_t fingerprint;     /* of those settings, shared (ad_fingerprint(det, 1)) */
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

/* The daemon's families and what they work with. */
typedef struct ad_fams {
    ad_fam *head;             /* the families, newest first (f->next) */
    const ad_config *cfg;     /* the running configuration: the owner's, at an address
                                 that stays (a reload replaces what it holds) */
    ad_series_table *series;  /* the series table, where the members are */
    ad_trainer *trainer;      /* where family trainings go; NULL once stopping */
} ad_fams;

/* Sets up an empty registry over the owner's configuration, table and trainer. */
void ad_fams_init(ad_fams *fs, const ad_config *cfg, ad_series_table *series,
                  ad_trainer *trainer);

/* The storage (net.h, enum ad_net_storage) of a family's shared network under the
 * configuration's `weights` (ad_wtype): float32 keeps floats; float16 and int8 both step
 * on an fp16 block beside the float masters. A family's network is one per family and
 * stays in cache, so int8's fewer bytes would buy nothing but its rounding, and the
 * masters keep the family's pooled training exact (docs/CONFIG.md). */
int ad_fam_storage(int weights);

/* The family for shared rule `rule` of the running configuration, created (untrained)
 * when there is none yet. NULL on allocation failure. */
ad_fam *ad_fam_get(ad_fams *fs, int rule);

/* A member's value was accepted (r is what it gave): joins it or asks for a family
 * training when due. */
void ad_fam_observed(ad_fams *fs, ad_series *s, const ad_result *r);

/* A member's value was observed with its network step deferred
 * (ad_detector_observe_defer returned 1): it joins its family's pending list; a full
 * list (AD_FAM_BATCH_MAX) is stepped at once. */
void ad_fam_defer(ad_fam *f, ad_detector *det);

/* Steps every family's pending members, one batch per family (ad_detector_step_batch).
 * The daemon calls it after each read's lines, datagram, request body and StatsD flush,
 * and before anything else looks at or changes members (eviction, a family's install,
 * a reload): nothing else ever sees a step pending. Cheap when nothing is pending. */
void ad_fam_flush(ad_fams *fs);

/* A family training failed (too little history yet, out of memory): the next request
 * waits until every member has had another value. */
void ad_fam_failed(ad_fam *f);

/* The trainer's ops for the daemon (their ctx: the ad_fams): a family's entry trains the
 * family, any other series its own detector. */
extern const ad_trainer_ops ad_fam_trainer_ops;

/* The network as a blob (malloc'd) for the store, or NULL. */
void *ad_fam_save(const ad_fam *f, size_t *len);
/* Restores a family from a store row (pass 1 of the restore). 0 when restored; -1 when
 * no shared rule of the running configuration has that glob and fingerprint, or the blob
 * is refused (err says why). */
int ad_fam_restore(ad_fams *fs, const char *key, uint64_t fingerprint, const void *blob,
                   size_t len, char *err, size_t errlen);

/* Every family's network to the storage the configuration's `weights` (ad_wtype) gives
 * (ad_fam_storage): a reload that changes them. Flushes pending steps first. */
void ad_fams_set_weights(ad_fams *fs, int weights);

size_t ad_fam_count(const ad_fams *fs);
/* Frees every family (after their members, which use the families' networks). */
void ad_fam_free_all(ad_fams *fs);

#endif
