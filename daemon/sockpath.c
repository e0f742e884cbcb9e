/*
 * sockpath.c - checks and removes Unix socket paths (sockpath.h).
 */
#include "sockpath.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "err.h" /* enum ad_err */

size_t ad_sockpath_max(void)
{
    return sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
}

static const char *kind(mode_t m)
{
    if (S_ISREG(m))
        return "a regular file";
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    return "not a socket";
}

int ad_sockpath_check(const char *path, char *err, size_t errlen)
{
    struct stat st;
    size_t n = strlen(path);

    if (n == 0) {
        snprintf(err, errlen, "unix socket path is empty");
        return -AD_EINVAL;
    }
    if (n > ad_sockpath_max()) {
        snprintf(err, errlen,
                 "unix socket path of %zu bytes: at most %zu fit a socket "
                 "address (sun_path): %s",
                 n, ad_sockpath_max(), path);
        return -AD_EINVAL;
    }
    if (lstat(path, &st) < 0)
        return 0; /* nothing there (or not reachable: bind says why) */
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen,
                 "unix socket path %s: %s is there; anomalyd removes only a "
                 "stale socket, never another file: choose another path or move it away",
                 path, kind(st.st_mode));
        return -AD_EINVAL;
    }
    return 0;
}

int ad_sockpath_prepare(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, r, e;

    if ((r = ad_sockpath_check(path, err, errlen)) < 0)
        return r;
    if (lstat(path, &st) < 0)
        return 0;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* Non-blocking: a listener with a full backlog answers EAGAIN at once instead of
     * holding the caller (the loop thread, on a reload) until it accepts. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "unix socket path %s: socket: %s", path, strerror(errno));
        return -AD_EIO;
    }
    r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    e = errno;
    close(fd);
    if (r == 0 || e == EAGAIN) { /* EAGAIN: a listener with a full backlog */
        snprintf(err, errlen,
                 "unix socket path %s: another process listens on it (another "
                 "anomalyd?); stop it or choose another path",
                 path);
        return -AD_EINVAL;
    }
    if (e == EPROTOTYPE) { /* a datagram socket: whoever has it, it is not ours */
        snprintf(err, errlen,
                 "unix socket path %s: a datagram socket is there, not a stale "
                 "stream socket of anomalyd's; choose another path or remove it",
                 path);
        return -AD_EINVAL;
    }
    if (e != ECONNREFUSED) {
        snprintf(err, errlen, "unix socket path %s: cannot tell whether it is in use (%s)", path,
                 strerror(e));
        return -AD_EIO;
    }
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(err, errlen, "unix socket path %s: cannot remove the stale socket: %s", path,
                 strerror(errno));
        return -AD_EIO;
    }
    return 0;
}

int ad_sockpath_id(const char *path, unsigned long long id[2])
{
    struct stat st;

    if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
        return -1;
    id[0] = (unsigned long long)st.st_dev;
    id[1] = (unsigned long long)st.st_ino;
    return 0;
}

void ad_sockpath_remove(const char *path, const unsigned long long id[2])
{
    unsigned long long now[2];

    if (ad_sockpath_id(path, now) == 0 && now[0] == id[0] && now[1] == id[1])
        unlink(path);
}
