/*
 * statelock.h - one anomalyd per state directory.
 *
 * Two daemons on one state_dir would share the store (each overwriting the other's
 * series) and take over each other's sockets. At start anomalyd takes an exclusive
 * lock (flock) on <state_dir>/anomalyd.lock, and on <store.path>.lock when the store
 * lives elsewhere, and writes its pid into the file. A second instance finds the lock
 * held and refuses to start, naming the pid of the first. The kernel drops the lock
 * when the process ends, however it ends (SIGKILL included), so there is no stale lock
 * to clean up.
 */
#ifndef AD_STATELOCK_H
#define AD_STATELOCK_H

#include <stddef.h>

/* Takes the lock file at path (created if missing) and writes the caller's pid into it.
 * Returns the open descriptor (>= 0: keep it open while running; closing it releases
 * the lock), or a negative ad_err with a message in err: -AD_EFULL when another process
 * holds it (the message names its pid), -AD_EIO when the file cannot be opened. */
int ad_statelock_take(const char *path, char *err, size_t errlen);

/* The lock file's path for a state directory: <dir>/anomalyd.lock into out (cap bytes).
 * 0, or -AD_EINVAL if it does not fit. */
int ad_statelock_path(const char *dir, char *out, size_t cap);

#endif
