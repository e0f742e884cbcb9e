/*
 * text.h - client bytes made safe: UTF-8 validation (the rule for series keys) and
 * escaping for logs and terminals.
 *
 * Every series key is valid UTF-8: a line holding any byte sequence that is not (an
 * overlong form, a surrogate, a code point past U+10FFFF, a stray or missing
 * continuation byte) is refused whole at every door (parse error invalid_utf8), so no
 * key reaches /metrics, the API or the store that Prometheus or a JSON reader would
 * choke on. Valid UTF-8 may still hold control characters (an escape sequence in a
 * key): wherever a client's bytes are logged or printed they go through ad_escape.
 * Pure functions: no I/O, no allocation.
 */
#ifndef AD_TEXT_H
#define AD_TEXT_H

#include <stddef.h>

/* 1 if p[0..len) is well-formed UTF-8 (RFC 3629), else 0. NUL bytes count as valid
 * here (the parsers refuse them on their own). */
int ad_utf8_valid(const char *p, size_t len);

/* Copies src[0..len) to dst as text safe for a log line or a terminal: printable ASCII
 * and well-formed UTF-8 of printable code points pass; control characters (C0, DEL,
 * C1), bytes of malformed UTF-8 and backslashes are written as \xNN (a backslash as
 * \\), so the output says exactly which bytes came. Always NUL-terminates (cap > 0); an
 * escape that would not fit is not started, and the output ends with "..." when it was
 * cut. Returns the length written (without the NUL). */
size_t ad_escape(char *dst, size_t cap, const char *src, size_t len);

/* ad_escape of a NUL-terminated string into dst (cap bytes); returns dst, for use as a
 * printf argument. */
const char *ad_escape_str(char *dst, size_t cap, const char *s);

#endif
