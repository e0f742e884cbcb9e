/*
 * persist.h - the daemon's series in the state store (store.h): restore at start,
 * checkpoints of changed series while running and at stop, deletes of evicted series.
 *
 * A series is saved as its detector blob with a fingerprint of its settings, its
 * protocol, creation time, last sample time and anomaly count. At start every row is
 * restored into the series table unless its blob is refused (damaged, other version:
 * the reason is logged, that series starts afresh), its settings' fingerprint differs
 * from what the configuration now gives it (it starts afresh with the new settings),
 * an ignore rule now matches it, or the table is full; each skip is counted.
 *
 * A checkpoint serialises the series changed since the last one on the loop thread
 * (ad_detector_save: a copy) and writes them, with the deletes, in one transaction on a
 * worker thread. One checkpoint is out at a time; a failed one (full disk, read-only
 * file) is logged, counted and its series stay changed, so the next one retries them.
 */
#ifndef AD_PERSIST_H
#define AD_PERSIST_H

#include <stdint.h>

#include "daemon.h"

/* The fingerprint of a series' detector settings. */
uint64_t ad_persist_fingerprint(const ad_detector_config *c);

/* Opens the store (cfg.store_path) and restores its series. Returns 0 (also when the
 * store could not be opened: the daemon runs without it, logged), or -AD_ENOMEM. */
int ad_persist_restore(ad_daemon *d);

/* Starts a checkpoint. `done`, if not NULL, is called when it is over (at once when there
 * was nothing to write or no store). Returns 0, or -AD_EFULL when one is already out
 * (done not called). */
int ad_persist_checkpoint(ad_daemon *d, void (*done)(ad_daemon *d));

/* Notes that an evicted series is to be deleted from the store. */
void ad_persist_forget(ad_daemon *d, const char *key);

/* A checkpoint is out. */
int ad_persist_busy(const ad_daemon *d);

/* Closes the store (no checkpoint may be out). */
void ad_persist_close(ad_daemon *d);

#endif
