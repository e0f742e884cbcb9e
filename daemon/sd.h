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

/* READY=1 with a STATUS= line. */
int ad_sd_ready(const char *status);
/* STATUS=... */
int ad_sd_status(const char *status);
/* RELOADING=1 (with MONOTONIC_USEC=, as systemd 253 wants) and STATUS= */
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

/* Collects the sockets systemd passed, if any (n = 0 otherwise), and unsets the
 * variables. Returns 0 or a negative ad_err (a malformed $LISTEN_FDS). */
int ad_sd_listen_fds(ad_sd_fds *f);

/* The descriptor passed under `name` not taken yet, marked taken; -1 if none. */
int ad_sd_take(ad_sd_fds *f, const char *name);

#endif
