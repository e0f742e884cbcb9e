/*
 * protocols.h - the registry of the protocols anomalyd takes samples in.
 *
 * One row per protocol: its name (configuration, metric labels, the store, logs), what it
 * may be spoken over, and its line parser in one shape. The daemon dispatches a line
 * through its row (ad_daemon_line); config.c takes the listener protocols and their
 * options from the rows; the store keeps the name. Adding a line protocol is its parser
 * (ingest/proto_<name>.[ch]), its tests, and one registration here: an enum value before
 * AD_PROTO_N and its row in protocols.c (docs/ARCHITECTURE.md).
 */
#ifndef AD_PROTOCOLS_H
#define AD_PROTOCOLS_H

#include <stddef.h>

#include "ingest/sample.h"

/* Which protocol a listener speaks (or, for prometheus, which HTTP route: remote write
 * comes only through POST /api/v1/write, never a socket listener; config.c refuses it).
 * The numbers are the index of the registry's rows and are never stored (the store keeps
 * the name): the order may change. */
typedef enum ad_proto {
    AD_PROTO_GRAPHITE,
    AD_PROTO_INFLUX,
    AD_PROTO_STATSD,
    AD_PROTO_JSONL,
    AD_PROTO_PROMETHEUS,
    AD_PROTO_N
} ad_proto;

/* A line parser in the registry's shape: parses one line (without its newline), calls fn
 * once per sample with the key in keybuf (keycap bytes), and returns how many samples it
 * gave (0 for a line with nothing to do: blank, comment), or -AD_PE_* with fn never
 * called. `precision` is the listener's (ad_influx_precision) for protocols taking one. */
typedef int (*ad_line_parse_fn)(const char *line, size_t len, int precision, char *keybuf,
                                size_t keycap, ad_sample_fn fn, void *ctx);

enum {
    AD_PROTO_F_LISTENER = 1 << 0,   /* a socket listener may speak it */
    AD_PROTO_F_PRECISION = 1 << 1,  /* its listeners take `precision` */
    AD_PROTO_F_AGGREGATED = 1 << 2, /* its lines go to the StatsD aggregator, whose flushes
                                       give the samples (no parse function) */
};

typedef struct ad_proto_info {
    const char *name;     /* "graphite", ... */
    unsigned flags;       /* AD_PROTO_F_* */
    ad_line_parse_fn parse; /* NULL: not line based here (aggregated, or HTTP only) */
} ad_proto_info;

/* The row of a protocol, or NULL out of range. */
const ad_proto_info *ad_proto_info_of(int proto);

/* "graphite", "influx", "statsd", "jsonl", "prometheus"; NULL if out of range. */
const char *ad_proto_name(int proto);
/* The protocol of a name, or -1. */
int ad_proto_from_name(const char *name);

#endif
