/*
 * proto_harness.h - what the Check suites of the protocol parsers share: feeding a
 * stream through ad_linebuf in chunks of any size; a line-by-line record of what a parser
 * gave for each framed line, and the check that a stream fed whole and one byte at a
 * time gives the same record; ok/bad checks of one line for the parsers that fill one
 * ad_sample (Graphite, JSON lines); and an ad_sample_fn collecting samples (Influx lines,
 * StatsD flushes). Failures are Check assertions, so these run inside a test only.
 */
#ifndef AD_PROTO_HARNESS_H
#define AD_PROTO_HARNESS_H

#include <stddef.h>

#include "ingest/linebuf.h"
#include "ingest/sample.h"

/* ---- framing ---- */

#define PH_LINE_CAP 256 /* the largest line cap ph_feed takes */

/* Feeds s[0..n) to a fresh ad_linebuf of cap bytes (<= PH_LINE_CAP) in chunks of `step`
 * bytes (0: all at once), then finish(deliver). Writes finish()'s return to *finish_rc
 * unless NULL, checks the framer empty afterwards, and returns the lines dropped by the
 * feeds. */
size_t ph_feed(const char *s, size_t n, size_t cap, size_t step, int deliver, ad_line_fn fn,
               void *ctx, int *finish_rc);

/* A parser of one line into one ad_sample (Graphite, JSON lines). */
typedef int (*ph_parse_fn)(const char *line, size_t len, char *keybuf, size_t keycap,
                           ad_sample *out);

/* ---- streams: what a parser gave for each line ---- */

#define PH_KEY_MAX    96 /* a key's bytes and its NUL */
#define PH_REC_VALUES 4  /* samples recorded per line */
#define PH_REC_LINES  32 /* lines recorded per stream */

typedef struct ph_val {
    char key[PH_KEY_MAX];
    double value, ts; /* ts: NAN for "now" */
    double rate;      /* StatsD only, else 0 */
    int type, delta;  /* StatsD only, else 0 */
} ph_val;

typedef struct ph_rec {
    int rc;                  /* the parser's return for the line */
    int n;                   /* samples recorded */
    ph_val s[PH_REC_VALUES]; /* [n] */
} ph_rec;

typedef struct ph_recs {
    int n;                  /* lines framed */
    ph_rec r[PH_REC_LINES]; /* [n] */
} ph_recs;

/* Parses one framed line into r (zeroed; add samples with ph_rec_add or ph_rec_sample)
 * and returns the parser's return code. */
typedef int (*ph_line_fn)(const char *line, size_t len, ph_rec *r);

/* Appends a sample to r (key_len bytes of key, which must fit) and returns its slot for
 * the caller's further fields. */
ph_val *ph_rec_add(ph_rec *r, const char *key, size_t key_len, double value, double ts);

/* An ad_sample_fn appending each sample to the ph_rec ctx; returns 0 (go on). */
int ph_rec_sample(void *ctx, const ad_sample *s);

/* Parses line with parse (a 64-byte key buffer) and records the sample it gives; returns
 * parse's return. A ph_line_fn's body for the parsers of one ad_sample. */
int ph_rec_parse(ph_parse_fn parse, const char *line, size_t len, ph_rec *r);

/* Frames `in` (a C string) through a linebuf of PH_LINE_CAP bytes fed in chunks of step
 * bytes (0: whole), the last partial line delivered, and records parse's result for
 * each line into *out. */
void ph_stream(const char *in, size_t step, ph_line_fn parse, ph_recs *out);

/* Checks two records equal: lines, return codes, and every sample's fields. */
void ph_same(const ph_recs *a, const ph_recs *b);

/* Records `in` fed whole into *whole, and checks that fed one byte at a time it gives
 * the same. */
void ph_stream_bytewise(const char *in, ph_line_fn parse, ph_recs *whole);

/* ---- one line, one ad_sample ---- */

/* Parses line, which must succeed, and checks its key (in the parser's buffer), value and
 * timestamp (NAN: "now"). */
void ph_ok(ph_parse_fn parse, const char *line, const char *key, double value, double ts);

/* Parses line, which must be refused with reason, leaving the sample untouched. */
void ph_bad(ph_parse_fn parse, const char *line, int reason);

/* ---- collecting samples ---- */

#define PH_GOT_MAX 1100

typedef struct ph_got {
    size_t n;
    int stop_after; /* ph_got_sample returns 1 on this call (1-based); 0 never */
    char key[PH_GOT_MAX][PH_KEY_MAX];
    double value[PH_GOT_MAX], ts[PH_GOT_MAX];
} ph_got;

/* An ad_sample_fn appending to the ph_got ctx; checks the key whole and fitting and the
 * value finite. */
int ph_got_sample(void *ctx, const ad_sample *s);

#endif
