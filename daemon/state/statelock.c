/*
 * statelock.c - the state directory's lock file (statelock.h).
 */
#include "state/statelock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "err.h" /* enum ad_err */

int ad_statelock_path(const char *dir, char *out, size_t cap)
{
    size_t n = strlen(dir);
    int sep = n > 0 && dir[n - 1] != '/';

    if ((size_t)snprintf(out, cap, "%s%sanomalyd.lock", dir, sep ? "/" : "") >= cap)
        return -AD_EINVAL;
    return 0;
}

/* The pid written in a held lock file, or 0 if it says none. */
static long holder(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

int ad_statelock_take(const char *path, char *err, size_t errlen)
{
    char pid[32];
    int fd, n;

    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open the lock file %s: %s", path, strerror(errno));
        return -AD_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        long other = holder(fd);

        close(fd);
        if (e == EWOULDBLOCK) {
            if (other > 0)
                snprintf(err, errlen,
                         "another anomalyd (pid %ld) holds %s: one instance per "
                         "state_dir; stop it, or give this one another state_dir",
                         other, path);
            else
                snprintf(err, errlen,
                         "another anomalyd holds %s: one instance per state_dir; "
                         "stop it, or give this one another state_dir",
                         path);
            return -AD_EFULL;
        }
        snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
        return -AD_EIO;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        /* The lock holds without the pid: a second instance is still refused. */
    }
    return fd;
}
