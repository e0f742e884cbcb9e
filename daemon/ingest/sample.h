/*
 * sample.h - what every protocol parser produces, and why a line was refused.
 *
 * A sample is one value of one series at one time. The key is the series' canonical
 * key (each parser's header says its form); it points into a buffer the caller gave the
 * parser and lives until the next call; a line whose key would hold a NUL byte is refused
 * (syntax, or bad_tags for a tag). Parsers return 0 for a sample, AD_PARSE_SKIP
 * for a line that carries nothing (blank, comment), or minus an ad_parse_error.
 */
#ifndef AD_SAMPLE_H
#define AD_SAMPLE_H

#include <stddef.h>

typedef struct ad_sample {
    const char *key; /* canonical series key, NUL-terminated */
    size_t key_len;  /* strlen(key) */
    double ts;       /* seconds since the epoch; NAN when the line gave none (the
                        receiver stamps it with its clock) */
    double value;    /* finite */
} ad_sample;

/* Called once per sample by parsers that give several per line (Influx, StatsD
 * flushes). Returns 0 to go on; anything else stops the caller's loop. */
typedef int (*ad_sample_fn)(void *ctx, const ad_sample *s);

#define AD_PARSE_SKIP 1 /* a line with nothing to do: blank, or a comment */

/* Why a line was refused (parsers return minus one of these). */
enum ad_parse_error {
    AD_PE_SYNTAX = 1,       /* not the protocol's shape */
    AD_PE_VALUE = 2,        /* the value is not a number */
    AD_PE_NONFINITE = 3,    /* the value is NaN or infinite */
    AD_PE_TIMESTAMP = 4,    /* the timestamp is not a number or out of range */
    AD_PE_KEY_TOO_LONG = 5, /* the canonical key does not fit the key buffer */
    AD_PE_TAGS = 6,         /* bad tags: empty name, duplicate name, too many */
    AD_PE_TYPE = 7,         /* unknown or unsupported metric type */
    AD_PE_TOO_LONG = 8,     /* the line passed the per-connection maximum (framer) */
    AD_PE_NO_FIELDS = 9,    /* Influx: no numeric field on the line */
    AD_PE_UTF8 = 10,        /* the line is not valid UTF-8 (text.h: keys must be) */
    AD_PE_NREASONS = 11
};

/* A short snake_case name for a reason (for logs and metric labels), "unknown" if
 * out of range. Takes the positive code. */
const char *ad_parse_error_name(int reason);

/* Parses the number token p[0..len) (not NUL-terminated) as strtod does, on a bounded
 * copy: decimal or exponent form only. Returns 0 with *out finite, -AD_PE_VALUE for an
 * empty, over-long (> AD_NUMBER_MAX bytes), hex or partly numeric token, or
 * -AD_PE_NONFINITE for NaN, infinities and overflow. Shared by the parsers. */
#define AD_NUMBER_MAX 64
int ad_parse_number(const char *p, size_t len, double *out);

/* A blank between a line's fields: space or tab. */
static inline int ad_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

#endif
