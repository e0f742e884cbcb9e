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
 *
 * --http (and $ANOMALYD_HTTP) may list several HOST:PORT separated by commas, the
 * instances of a cluster sharded by series (docs/SCALING.md); they are asked in turn.
 * status prints a line per instance and the totals; series merges the tables by key,
 * with an INSTANCE column; series show prints the instance that has KEY (the one that saw
 * it last if several do, the others named on stderr). An instance that does not answer
 * is named with the reason on stderr (status also shows it in its table) and the others
 * still answer: the exit status is 1 only when none answered (series show: when none has
 * KEY), so a script can tell "partly down" only from stderr or --json. With --json and
 * several instances: status {"instances": [{"address", "status" | "error"}], "answered"},
 * series {"series": [... each with "instance"], "total", "instances": [{"address",
 * "total" | "error"}]}, series show the daemon's object with "instance" added.
 */
#ifndef AD_CTL_STATUS_H
#define AD_CTL_STATUS_H

/* argv[0] is "status". Returns the process exit status. */
int ad_ctl_status(int argc, char **argv);

/* argv[0] is "series" (argv[1] may be "show"). Returns the process exit status. */
int ad_ctl_series(int argc, char **argv);

#endif
