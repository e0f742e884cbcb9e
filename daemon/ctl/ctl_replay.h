/*
 * ctl_replay.h - `anomalyctl replay`: feed a recorded series to a running anomalyd, as
 * its own senders would.
 *
 *   anomalyctl replay FILE --to HOST:PORT [--protocol graphite|influx|jsonl]
 *                    [--series NAME] [--rate N | --as-fast-as-possible] [--udp]
 *                    [--precision ns|us|ms|s]
 *
 * FILE (or - for stdin) is a timestamp,value CSV (csv.h: NAB's format). Each row becomes
 * one line of the protocol carrying the row's own timestamp:
 *   graphite  NAME VALUE TS                       (TS in seconds)
 *   influx    NAME value=VALUE TS                 (TS an integer in --precision, ns)
 *   jsonl     {"series":NAME,"value":VALUE,"ts":TS}
 * NAME defaults to the file's name without its directory and extension (characters
 * other than letters, digits, '_', '-' and '.' made '_'). Lines go over one TCP
 * connection (or UDP datagrams of at most 1400 bytes with --udp) at --rate lines a
 * second (1000), or as fast as the socket takes them. A bad row (unparsable, non-finite
 * value, timestamp outside [0, 1e11)) is reported with its line number on stderr and
 * skipped. At the end, one line on stdout says how many lines were sent. Exit status:
 * 0 (even with bad rows), 1 when the file cannot be read or the daemon cannot be
 * reached or stops taking lines, 2 on usage errors.
 */
#ifndef AD_CTL_REPLAY_H
#define AD_CTL_REPLAY_H

#include <stddef.h>

/* argv[0] is "replay". Returns the process exit status. */
int ad_ctl_replay(int argc, char **argv);

/* The protocols replay speaks. */
enum ad_replay_proto { AD_REPLAY_GRAPHITE, AD_REPLAY_INFLUX, AD_REPLAY_JSONL };

/* Formats one sample as a line of proto (newline included) into out. name must already
 * suit the protocol (graphite: no whitespace; influx: escaped; jsonl: a JSON string with
 * its quotes). prec_per_s: influx timestamp units per second (1, 1e3, 1e6, 1e9). Returns
 * the length, or -1 when it does not fit in outcap. */
int ad_replay_format(enum ad_replay_proto proto, const char *name, double ts, double value,
                     double prec_per_s, char *out, size_t outcap);

#endif
