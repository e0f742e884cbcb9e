/*
 * persist.h - the daemon's series in the state store (store.h): restore at start,
 * checkpoints of changed series while running and at stop, deletes of evicted series.
 *
 * A series is saved as its detector blob with a fingerprint of its settings
 * (fingerprint.h), its protocol, creation time, last sample time and anomaly count. At
 * start every row is restored into the series table unless its blob is refused (damaged,
 * other version: the reason is logged, that series starts afresh), its settings'
 * fingerprint differs from what the configuration now gives it (it starts afresh with the
 * new settings), an ignore rule now matches it, or the table is full; each skip is
 * counted.
 *
 * A checkpoint serialises the series changed since the last one on the loop thread
 * (ad_detector_save: a copy) and writes them, with the deletes, in one transaction on a
 * worker thread. One checkpoint is out at a time; a failed one (full disk, read-only
 * file) is logged, counted and its series stay changed, so the next one retries them.
 *
 * An ad_persist holds the store and the checkpoints' state; it works on the owner's
 * configuration, series table and families (families.h), which outlive it. Everything
 * here runs on the loop thread.
 */
#ifndef AD_PERSIST_H
#define AD_PERSIST_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "families.h"
#include "series.h"
#include "state/store.h"

/* Saved series not restored at start, by reason. */
enum ad_persist_skip {
    AD_SKIP_DAMAGED = 0,  /* the blob is refused (damaged, another version) */
    AD_SKIP_SETTINGS = 1, /* the settings changed since it was saved */
    AD_SKIP_NO_ROOM = 2,  /* an ignore rule matches it now, or the table is full */
    AD_SKIP_BAD_KEY = 3,  /* its key is not valid UTF-8 */
    AD_SKIP_N
};

typedef struct ad_persist_stats {
    uint64_t restored;                   /* series restored at start */
    uint64_t restore_skipped[AD_SKIP_N]; /* rows not restored, by ad_persist_skip */
    uint64_t checkpoints_skipped;        /* a checkpoint was due while one was out */
} ad_persist_stats;

typedef struct ad_persist ad_persist;

/* Called when a checkpoint is over. */
typedef void (*ad_persist_done_fn)(void *arg);

/* Opens the store (cfg->store_path, when cfg->store_enabled) and restores its series
 * into `series` (families first, into `fams`). cfg is the owner's running configuration
 * at an address that stays (a reload replaces what it holds). Returns 0 with *out set
 * (also when the store could not be opened: the daemon runs without it, logged), or
 * -AD_ENOMEM with *out NULL. Every function below takes a NULL p as a persistence
 * without a store. */
int ad_persist_open(uv_loop_t *loop, const ad_config *cfg, ad_series_table *series,
                    ad_fams *fams, ad_persist **out);

/* Starts a checkpoint. `done`, if not NULL, is called with arg when it is over (at once
 * when there was nothing to write or no store). Returns 0, or -AD_EFULL when one is
 * already out (done not called; counted in checkpoints_skipped). */
int ad_persist_checkpoint(ad_persist *p, ad_persist_done_fn done, void *arg);

/* Calls fn(arg) once no checkpoint is out: at once, or when the one out is over (in place
 * of the done it was started with). For a stop's final checkpoint. */
void ad_persist_when_idle(ad_persist *p, ad_persist_done_fn fn, void *arg);

/* Notes that an evicted series is to be deleted from the store. */
void ad_persist_forget(ad_persist *p, const char *key);

/* A checkpoint is out. */
int ad_persist_busy(const ad_persist *p);

/* The store is open (checkpoints write somewhere). */
int ad_persist_has_store(const ad_persist *p);

/* The counters; and the store's (NULL without a store). */
const ad_persist_stats *ad_persist_get_stats(const ad_persist *p);
const ad_store_stats *ad_persist_store_stats(const ad_persist *p);

/* Closes the store and frees p (NULL is fine; no checkpoint may be out). */
void ad_persist_close(ad_persist *p);

#endif
