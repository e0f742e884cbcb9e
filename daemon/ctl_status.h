/*
 * ctl_status.h - `anomalyctl status` and `anomalyctl series [show]`: what a running
 * anomalyd says about itself and its series, read from its HTTP API (ctl_http.h).
 *
 *   anomalyctl status [--json]
 *   anomalyctl series [--match GLOB] [--limit N] [--json]
 *   anomalyctl series show KEY [--width N] [--ascii] [--json]
 *
 * Each takes --http HOST:PORT and --token T (ctl_http.h). Exit status: 0, 1 when the
 * daemon cannot be reached or answers with an error (an unknown series, a refused
 * token), 2 on usage errors.
 */
#ifndef AD_CTL_STATUS_H
#define AD_CTL_STATUS_H

/* argv[0] is "status". Returns the process exit status. */
int ad_ctl_status(int argc, char **argv);

/* argv[0] is "series" (argv[1] may be "show"). Returns the process exit status. */
int ad_ctl_series(int argc, char **argv);

#endif
