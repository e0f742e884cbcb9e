/*
 * proto_graphite.h - the Graphite plaintext protocol, one line at a time.
 *
 *   path value [timestamp]            cpu.host1.user 12.5 1700000000
 *   name;tag=value;... value [ts]     cpu.user;host=h1;dc=eu 12.5 1700000000
 *
 * Fields are separated by runs of spaces or tabs. The value is a decimal or exponent
 * number (NaN and infinities are refused as non_finite); the timestamp is seconds since
 * the epoch, integer or fractional, in [0, 1e11) (a larger one is likely milliseconds:
 * bad_timestamp), and may be absent or -1 (both mean "now": ts=NAN).
 * The canonical key is the path; for a tagged name, the name followed by its tags
 * sorted by tag name, `name;a=1;b=2`. A tag needs a non-empty name and value, without
 * ';', '=' (in the name), '~' or '!' at the value's start (Graphite's own rules);
 * duplicate tag names and more than 64 tags are refused (bad_tags). Pure: no I/O, no
 * allocation.
 */
#ifndef AD_PROTO_GRAPHITE_H
#define AD_PROTO_GRAPHITE_H

#include <stddef.h>

#include "ingest/sample.h"

/* Parses one line (without its newline). On success returns 0, writes the canonical key
 * to keybuf (NUL-terminated, keycap bytes at most) and fills *out, whose key points into
 * keybuf. Returns AD_PARSE_SKIP for a blank line, or -AD_PE_* (out untouched). */
int ad_graphite_parse(const char *line, size_t len, char *keybuf, size_t keycap,
                      ad_sample *out);

#endif
