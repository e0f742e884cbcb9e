/*
 * csv.h - the rows anomalyctl reads: `timestamp,value` CSV as NAB writes it (a header
 * line, then rows like `2014-04-10 00:02:00,42.5`), shared by `score` and `replay`.
 *
 * A timestamp is `YYYY-MM-DD HH:MM:SS[.frac]` (or with a `T`), taken as UTC, or seconds
 * since the epoch. Pure: no I/O, no malloc; lines are split in place.
 */
#ifndef AD_CSV_H
#define AD_CSV_H

/* Seconds since the epoch from "YYYY-MM-DD HH:MM:SS[.frac]" (UTC) or a number. Returns
 * 0, or -1 when s is neither. */
int ad_csv_parse_time(const char *s, double *out);

/* Splits "a,b" into two fields in place (trailing CR/LF removed, leading spaces
 * skipped). Returns 0, or -1 when the line does not hold exactly two fields. */
int ad_csv_split2(char *line, char **a, char **b);

/* Whether line (the first of a file) is a header: it names a "timestamp" column. */
int ad_csv_is_header(const char *line);

#endif
