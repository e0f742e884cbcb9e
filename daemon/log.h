/*
 * log.h - the daemon's log: leveled lines on stderr.
 *
 * A line is "2026-11-28T01:02:03.456Z warn: message" on a terminal or a file. Under
 * systemd (JOURNAL_STREAM is set and names stderr) the journal stamps lines itself, so a
 * line is "<4>message": the syslog priority prefix journald reads. The level and the
 * format are the one process-wide logging setting, set once by main before the loop
 * starts; lines are written with one write(2) each, so threads do not interleave them.
 */
#ifndef AD_LOG_H
#define AD_LOG_H

#include "config.h" /* enum ad_log_level */

/* Sets the level (lines above it are dropped) and detects the journal. */
void ad_log_init(int level);
void ad_log_set_level(int level);
int ad_log_level(void);

/* Logs one line at a level (a trailing newline is added). */
void ad_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define ad_log_error(...) ad_log(AD_LOG_ERROR, __VA_ARGS__)
#define ad_log_warn(...) ad_log(AD_LOG_WARN, __VA_ARGS__)
#define ad_log_info(...) ad_log(AD_LOG_INFO, __VA_ARGS__)
#define ad_log_debug(...) ad_log(AD_LOG_DEBUG, __VA_ARGS__)

#endif
