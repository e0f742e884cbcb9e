/*
 * proto_jsonl.h - JSON lines: one JSON object per line (parsed with cJSON).
 *
 *   {"series": "cpu.user", "value": 12.5, "ts": 1700000000.25, "tags": {"host": "h1"}}
 *
 * The series name is "series" (or "name" or "metric"), a non-empty string; "value" a
 * finite JSON number (or a string holding one, as some senders write); the timestamp
 * "ts" (or "timestamp" or "time") seconds since the epoch as a number in [0, 1e11), absent
 * or null for "now" (ts=NAN); "tags" an optional object of string (or number: spelled
 * as the shortest %g that reads back) values. Other members are ignored. Canonical key:
 * as a tagged Graphite name, the name (no ';') then its tags sorted by name as `;k=v`
 * (names non-empty without ';' or '=', values non-empty without ';'). No I/O; cJSON allocates while parsing a line and frees it
 * before returning.
 */
#ifndef AD_PROTO_JSONL_H
#define AD_PROTO_JSONL_H

#include <stddef.h>

#include "ingest/sample.h"

/* Parses one line. Returns 0 and fills *out (key in keybuf, keycap bytes),
 * AD_PARSE_SKIP for a blank line, or -AD_PE_* (out untouched). */
int ad_jsonl_parse(const char *line, size_t len, char *keybuf, size_t keycap, ad_sample *out);

#endif
