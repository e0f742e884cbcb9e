/*
 * sd.h - systemd integration through libsystemd: readiness and status notifications,
 * the watchdog, and socket activation.
 *
 * Notifications go to $NOTIFY_SOCKET (sd_notify); without it every call is a no-op
 * returning 0, so the daemon runs the same under a shell. Socket activation takes the
 * listening sockets systemd passed ($LISTEN_FDS, $LISTEN_PID, $LISTEN_FDNAMES via
 * sd_listen_fds_with_names) and hands them out by name; the environment variables are
 * removed so children do not inherit them.
 */
#ifndef AD_SD_H
#define AD_SD_H

#include <stdint.h>

/* Each notification returns 0 when sent and when there is no $NOTIFY_SOCKET, or
 * -AD_EIO (errno set) when it could not be sent. A status (NULL is "") is sent as one
 * line: newlines become spaces, and it is cut at 511 bytes. */

/* READY=1 with a STATUS= line. */
int ad_sd_ready(const char *status);
/* STATUS=... */
int ad_sd_status(const char *status);
/* RELOADING=1 (with MONOTONIC_USEC=, CLOCK_MONOTONIC now, as systemd 253 wants) and
 * STATUS=; send ad_sd_ready once the reload is done. */
int ad_sd_reloading(const char *status);
/* STOPPING=1 and STATUS= */
int ad_sd_stopping(const char *status);
/* WATCHDOG=1 */
int ad_sd_watchdog(void);

/* The watchdog interval systemd asked for, in microseconds (WatchdogSec=), or 0 when
 * there is none (or it is meant for another process). */
uint64_t ad_sd_watchdog_usec(void);

/* Socket activation. */
typedef struct ad_sd_fds {
    int n;          /* sockets passed */
    int fds[64];    /* their descriptors (3, 4, ...) */
    char names[64][64]; /* their FileDescriptorName= ("unknown" when unnamed) */
    int taken[64];  /* handed out by ad_sd_take */
} ad_sd_fds;

/* Collects the sockets systemd passed, if any (n = 0 otherwise: also when $LISTEN_PID
 * is another process), and unsets the variables whatever the outcome. Returns 0, or
 * -AD_EINVAL (n = 0) for a malformed $LISTEN_FDS or $LISTEN_FDNAMES, or -AD_EFULL
 * (n = 0) for more than 64 sockets. The descriptors are close-on-exec; the ones never
 * taken stay open (the caller closes them). */
int ad_sd_listen_fds(ad_sd_fds *f);

/* The descriptor passed under `name` not taken yet, marked taken; -1 if none. */
int ad_sd_take(ad_sd_fds *f, const char *name);

#endif
