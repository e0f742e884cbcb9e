/*
 * proto_statsd.h - the StatsD line protocol with DogStatsD tags, one line at a time.
 *
 *   name:value|type[|@rate][|#tag:value,tag2:value2]
 *
 * Types: g (gauge; a value with a leading '+' or '-' is a delta to the current gauge),
 * c (counter), ms (timer), h (histogram, treated as a timer). Other types (s, d, ...) are
 * refused as bad_type. The sample rate is in (0, 1]. DogStatsD tags are `k:v` or a bare
 * `k` (value empty). Canonical key: the name, then its tags sorted by tag name as
 * `;k=v` (a bare tag gives `;k=`), so `req:1|c|#b:2,a:1` is `req;a=1;b=2`. Up to 64
 * tags; duplicates are refused. The key's separators are kept out of it: a name with ';',
 * '|' or a blank is syntax, a tag with ';' or a blank (or '=' in its name) bad_tags. A
 * datagram holds one or more lines. Pure: no I/O, no allocation.
 */
#ifndef AD_PROTO_STATSD_H
#define AD_PROTO_STATSD_H

#include <stddef.h>

#include "ingest/sample.h"

typedef enum ad_statsd_type {
    AD_STATSD_GAUGE = 0,
    AD_STATSD_COUNTER = 1,
    AD_STATSD_TIMER = 2 /* ms and h */
} ad_statsd_type;

typedef struct ad_statsd_metric {
    const char *key; /* canonical key in the caller's buffer, NUL-terminated */
    size_t key_len;
    double value;    /* finite; for a gauge delta, signed */
    double rate;     /* sample rate, (0, 1]; 1 when absent */
    int type;        /* ad_statsd_type */
    int delta;       /* gauge only: the value had a sign, add it to the current gauge */
} ad_statsd_metric;

/* Parses one line. Returns 0 and fills *out (key in keybuf, keycap bytes), AD_PARSE_SKIP
 * for a blank line, or -AD_PE_* (out untouched). */
int ad_statsd_parse(const char *line, size_t len, char *keybuf, size_t keycap,
                    ad_statsd_metric *out);

#endif
