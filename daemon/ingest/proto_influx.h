/*
 * proto_influx.h - the InfluxDB line protocol, one line at a time.
 *
 *   measurement[,tag=value...] field=value[,field=value...] [timestamp]
 *
 * Escaping as InfluxDB defines it: in measurements, '\,' and '\ '; in tag keys, tag
 * values and field keys, '\,', '\=' and '\ '; in string field values '\"' and '\\'. A
 * backslash before any other character is literal. Field values: floats (1, 1.5, -1e3),
 * integers (12i), unsigned integers (12u), booleans (t, T, true, True, TRUE, f, ...:
 * 1 or 0) and strings ("..."; skipped, they are not numbers). Each numeric field is one
 * series. The timestamp is an integer in the given precision (nanoseconds by default);
 * absent means "now" (ts=NAN). Lines starting with '#' are comments.
 *
 * Canonical key: the measurement and its tags sorted by tag key, in escaped line-protocol
 * form, then a space and the escaped field key: `cpu,host=a,region=eu usage_user` (an
 * unescaped '=' inside a tag value is taken as is and written `\=`). Up to 64 tags (more:
 * bad_tags) and 256 fields (more: syntax) per line. Pure: no I/O, no allocation.
 */
#ifndef AD_PROTO_INFLUX_H
#define AD_PROTO_INFLUX_H

#include <stddef.h>

#include "ingest/sample.h"

typedef enum ad_influx_precision {
    AD_PREC_NS = 0,
    AD_PREC_US = 1,
    AD_PREC_MS = 2,
    AD_PREC_S = 3
} ad_influx_precision;

/* The precision of a name as InfluxDB's /write takes it ("ns", "n", "us", "u", "ms",
 * "s"), or -1. */
int ad_influx_precision_from_name(const char *name);

/* Parses one line (without its newline). The whole line is checked first; only a valid
 * line calls fn, once per numeric field in order, with the key in keybuf (keycap bytes,
 * NUL-terminated; each call rewrites it). Returns the number of samples given to fn
 * (fn stopping early counts the ones given), 0 for a blank or comment line or one whose
 * fields are all strings, or -AD_PE_* with fn never called (AD_PE_NO_FIELDS: no field
 * set at all). */
int ad_influx_parse(const char *line, size_t len, ad_influx_precision prec, char *keybuf,
                    size_t keycap, ad_sample_fn fn, void *ctx);

#endif
