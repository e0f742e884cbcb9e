/*
 * sd.c - systemd integration through libsystemd: the notify protocol (READY, STATUS,
 * RELOADING, STOPPING, WATCHDOG), the watchdog interval, and the sockets passed by
 * socket activation, handed out by their FileDescriptorName=.
 *
 * Status texts are copied into one line (a newline would start another assignment of
 * the protocol) of at most STATUS_MAX bytes. Nothing here keeps state: the passed
 * sockets live in the caller's ad_sd_fds.
 */
#include "sd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "err.h" /* enum ad_err */

#define STATUS_MAX 512 /* bytes of a STATUS= text, its NUL included */
#define NFDS_MAX   ((int)(sizeof(((ad_sd_fds *)0)->fds) / sizeof(int)))

/* status as one line in out (newlines become spaces, truncated); "" for NULL. */
static const char *one_line(const char *status, char out[STATUS_MAX])
{
    size_t i;

    if (!status)
        status = "";
    for (i = 0; i < STATUS_MAX - 1 && status[i]; i++)
        out[i] = (status[i] == '\n' || status[i] == '\r') ? ' ' : status[i];
    out[i] = '\0';
    return out;
}

/* sd_notify's result as ours: > 0 sent, 0 no $NOTIFY_SOCKET, < 0 -errno. */
static int sent(int r)
{
    if (r < 0) {
        errno = -r;
        return -AD_EIO;
    }
    return 0;
}

int ad_sd_ready(const char *status)
{
    char line[STATUS_MAX];

    return sent(sd_notifyf(0, "READY=1\nSTATUS=%s", one_line(status, line)));
}

int ad_sd_status(const char *status)
{
    char line[STATUS_MAX];

    return sent(sd_notifyf(0, "STATUS=%s", one_line(status, line)));
}

int ad_sd_reloading(const char *status)
{
    char line[STATUS_MAX];
    struct timespec ts;

    /* systemd >= 253 (Type=notify-reload) matches the reload by this timestamp; older
     * ones ignore the field. */
    if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
        return -AD_EIO;
    return sent(sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s",
                           (unsigned long long)ts.tv_sec * 1000000ULL +
                               (unsigned long long)ts.tv_nsec / 1000ULL,
                           one_line(status, line)));
}

int ad_sd_stopping(const char *status)
{
    char line[STATUS_MAX];

    return sent(sd_notifyf(0, "STOPPING=1\nSTATUS=%s", one_line(status, line)));
}

int ad_sd_watchdog(void)
{
    return sent(sd_notify(0, "WATCHDOG=1"));
}

uint64_t ad_sd_watchdog_usec(void)
{
    uint64_t usec = 0;

    /* > 0 only when $WATCHDOG_USEC is set, valid, and $WATCHDOG_PID (if set) is us. */
    if (sd_watchdog_enabled(0, &usec) <= 0)
        return 0;
    return usec;
}

static void free_names(char **names)
{
    char **p;

    if (!names)
        return;
    for (p = names; *p; p++)
        free(*p);
    free(names);
}

int ad_sd_listen_fds(ad_sd_fds *f)
{
    char **names = NULL;
    int i, n, ret = 0;

    memset(f, 0, sizeof(*f));
    for (i = 0; i < NFDS_MAX; i++)
        f->fds[i] = -1;

    /* Unsets LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES whatever the outcome; the
     * descriptors come with FD_CLOEXEC set. */
    n = sd_listen_fds_with_names(1, &names);
    if (n < 0) {
        errno = -n;
        ret = -AD_EINVAL;
        goto out_free_names;
    }
    if (n > NFDS_MAX) {
        ret = -AD_EFULL;
        goto out_free_names;
    }
    for (i = 0; i < n; i++) {
        f->fds[i] = SD_LISTEN_FDS_START + i;
        snprintf(f->names[i], sizeof(f->names[i]), "%s",
                 names && names[i] ? names[i] : "unknown");
    }
    f->n = n;

out_free_names:
    free_names(names);
    return ret;
}

int ad_sd_take(ad_sd_fds *f, const char *name)
{
    int i;

    if (!f || !name)
        return -1;
    for (i = 0; i < f->n; i++) {
        if (!f->taken[i] && strcmp(f->names[i], name) == 0) {
            f->taken[i] = 1;
            return f->fds[i];
        }
    }
    return -1;
}
