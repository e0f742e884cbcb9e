/*
 * remote_write.h - decoding a Prometheus remote-write 1.0 body: a snappy block
 * (libsnappy, not the framed format) holding a protobuf WriteRequest (protobuf-c, the
 * code generated from remote_write.proto), into label sets and samples.
 *
 * No I/O. Bounded: the snappy header's decoded length is checked against max_decoded
 * before anything is allocated, and every allocation protobuf-c and this module make
 * for one request comes from an arena capped at AD_RW_AMPLIFY times the decoded length
 * (plus 64 KiB): a body that needs more is refused as too large, not allowed to take the
 * memory. The result points into that arena and lives until ad_rw_request_free.
 *
 * Per series, the decoder (not trusting the sender):
 *   - takes the metric name from the __name__ label and keeps the other labels sorted
 *     by name (byte order, as Prometheus sorts them); labels with an empty value are
 *     dropped (Prometheus' own rule: an empty label is an absent label);
 *   - sorts the samples by timestamp (equal timestamps keep no particular order);
 *   - marks a series it cannot use (bad != 0) instead of failing the request: no
 *     __name__, an invalid metric or label name (the exposition's syntax: metric
 *     [a-zA-Z_:][a-zA-Z0-9_:]*, label [a-zA-Z_][a-zA-Z0-9_]*), a label name twice, a
 *     name or value that is not UTF-8.
 * Metadata entries (family name, TYPE) come through as they are.
 */
#ifndef AD_REMOTE_WRITE_H
#define AD_REMOTE_WRITE_H

#include <stddef.h>
#include <stdint.h>

#define AD_RW_AMPLIFY 16 /* arena bytes allowed per decoded byte (see above) */

/* Why a body was refused (ad_rw_decode returns minus one of these). */
enum ad_rw_error {
    AD_RW_ESNAPPY = 1,   /* not a snappy block */
    AD_RW_EPROTOBUF = 2, /* not a protobuf WriteRequest */
    AD_RW_ETOO_LARGE = 3, /* decoded length over max_decoded, or the arena cap */
    AD_RW_ENOMEM = 4     /* malloc failed */
};

/* Why one series is unusable (ad_rw_series.bad). */
enum ad_rw_bad {
    AD_RW_BAD_NO_NAME = 1,    /* no __name__ label (or an empty one) */
    AD_RW_BAD_NAME = 2,       /* a metric or label name outside the exposition syntax */
    AD_RW_BAD_DUPLICATE = 3,  /* a label name twice */
    AD_RW_BAD_UTF8 = 4        /* a name or value that is not UTF-8 */
};

/* MetricMetadata's types (Prometheus' numbering). */
enum ad_rw_type {
    AD_RW_UNKNOWN = 0,
    AD_RW_COUNTER = 1,
    AD_RW_GAUGE = 2,
    AD_RW_HISTOGRAM = 3,
    AD_RW_GAUGEHISTOGRAM = 4,
    AD_RW_SUMMARY = 5,
    AD_RW_INFO = 6,
    AD_RW_STATESET = 7
};

typedef struct ad_label {
    const char *name;  /* NUL-terminated */
    const char *value; /* NUL-terminated, not empty */
} ad_label;

typedef struct ad_rw_sample {
    int64_t ts_ms;     /* milliseconds since the epoch */
    double value;      /* as sent: may be NaN (staleness marker or not) or infinite */
} ad_rw_sample;

typedef struct ad_rw_series {
    const char *name;       /* the metric name ("" when bad == AD_RW_BAD_NO_NAME) */
    ad_label *labels;       /* nlabels, without __name__, sorted by name */
    size_t nlabels;
    ad_rw_sample *samples;  /* nsamples, sorted by timestamp */
    size_t nsamples;
    int bad;                /* 0, or an ad_rw_bad */
} ad_rw_series;

typedef struct ad_rw_meta {
    const char *family;     /* metric family name */
    int type;               /* ad_rw_type (other values as sent) */
} ad_rw_meta;

typedef struct ad_rw_request {
    ad_rw_series *series;   /* nseries, in body order */
    size_t nseries;
    ad_rw_meta *meta;       /* nmeta */
    size_t nmeta;
    size_t decoded_len;     /* bytes of protobuf the snappy block held */
    size_t arena_bytes;     /* bytes the arena took */
    void *priv;             /* the arena and the protobuf message */
} ad_rw_request;

/* Decodes body[0..len): snappy block, protobuf WriteRequest. Returns 0 with *out filled
 * (free it with ad_rw_request_free), or minus an ad_rw_error with *out empty (nothing to
 * free, though freeing is harmless). max_decoded >= 1 bounds the decoded length. */
int ad_rw_decode(const void *body, size_t len, size_t max_decoded, ad_rw_request *out);

/* Frees what a decode gave; r is left empty. */
void ad_rw_request_free(ad_rw_request *r);

/* Whether a value is Prometheus' staleness marker (the NaN with bits
 * 0x7ff0000000000002), as opposed to any other NaN. */
int ad_rw_is_stale(double v);

/* Writes the series' canonical key, Prometheus' own text form: name{a="1",b="2"} (name
 * alone without labels), label values escaped as the exposition escapes them (\\, \",
 * \n), into buf (cap bytes, NUL-terminated), length in *len. Returns 0, or
 * -AD_RW_ETOO_LARGE if it does not fit. */
int ad_rw_series_key(const char *name, const ad_label *labels, size_t nlabels, char *buf,
                     size_t cap, size_t *len);

/* Whether s is a metric name / label name of the exposition format. */
int ad_rw_valid_metric_name(const char *s);
int ad_rw_valid_label_name(const char *s);

/* "snappy", "protobuf", "too_large", "no_memory"; a series' reason: "no_name",
 * "bad_name", "duplicate_label", "not_utf8". "unknown" out of range. */
const char *ad_rw_error_name(int err);
const char *ad_rw_bad_name(int bad);

#endif
