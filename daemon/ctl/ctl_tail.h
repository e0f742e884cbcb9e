/*
 * ctl_tail.h - `anomalyctl tail`: follow the daemon's anomaly events.
 *
 * Connects to the events socket (TCP host:port, default 127.0.0.1:8096, or a Unix socket
 * path) and prints each event as it arrives, one readable line each:
 *   2026-11-28T01:02:03Z  cpu.h1.user  value 97.5  predicted 12.1  score 0.930 >= 0.5
 *   (likelihood, lstm)
 * or the raw JSON lines with --json. Stops at end of stream (exit 0), after --count
 * events, or on a signal. A daemon that is not running gives a clear error (exit 1).
 */
#ifndef AD_CTL_TAIL_H
#define AD_CTL_TAIL_H

#include <stddef.h>

/* argv[0] is "tail". Returns the process exit status. */
int ad_ctl_tail(int argc, char **argv);

/* Formats one event JSON line readably into out (NUL-terminated). Returns 0, or -1 when
 * the line is not an event (then out holds the reason). */
int ad_ctl_format_event(const char *json, char *out, size_t outlen);

#endif
