/*
 * sockpath.h - what may be at a Unix socket's path before anomalyd binds it.
 *
 * Binding needs the path free, and an old run leaves its socket file behind. Only that
 * is removed: a socket nobody listens on. A socket another process listens on (a second
 * anomalyd, another program) and anything that is not a socket (a regular file, the
 * store, a directory) are refused with a message naming what is there, so a mistyped
 * path never deletes a file. The path must also fit sun_path (107 bytes and the NUL).
 */
#ifndef AD_SOCKPATH_H
#define AD_SOCKPATH_H

#include <stddef.h>

/* The longest Unix socket path, bytes (sizeof(sun_path) - 1). */
size_t ad_sockpath_max(void);

/* Checks without changing anything (--check-config, config load): the path fits and,
 * if something is there, it is a socket. 0, or -AD_EINVAL with a message in err. */
int ad_sockpath_check(const char *path, char *err, size_t errlen);

/* Makes the path ready to bind: ad_sockpath_check, then a socket there is probed with
 * connect(2): refused (nobody listens) means stale and it is removed; accepted means in
 * use and it is refused. 0, -AD_EINVAL (not ours to remove, or too long) or -AD_EIO
 * (could not remove it), with a message in err. */
int ad_sockpath_prepare(const char *path, char *err, size_t errlen);

/* The identity (device, inode) of the file at path, for ad_sockpath_remove: 0 and *id
 * set, or -1. */
int ad_sockpath_id(const char *path, unsigned long long id[2]);

/* Removes the socket at path at stop, only if it is still the one bound (id from
 * ad_sockpath_id right after binding): a path another process has taken since is left
 * alone. */
void ad_sockpath_remove(const char *path, const unsigned long long id[2]);

#endif
