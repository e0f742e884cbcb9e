/*
 * protocols.c - the protocol registry (protocols.h): one row per protocol, and the
 * adapters giving each line parser the registry's shape.
 */
#include "ingest/protocols.h"

#include <string.h>

#include "ingest/proto_graphite.h"
#include "ingest/proto_influx.h"
#include "ingest/proto_jsonl.h"

/* A parser of one sample per line (0, AD_PARSE_SKIP or -AD_PE_*) in the registry's
 * shape. */
static int one_sample(int r, const ad_sample *s, ad_sample_fn fn, void *ctx)
{
    if (r == 0) {
        fn(ctx, s);
        return 1;
    }
    return r == AD_PARSE_SKIP ? 0 : r;
}

static int graphite_line(const char *line, size_t len, int precision, char *keybuf,
                         size_t keycap, ad_sample_fn fn, void *ctx)
{
    ad_sample s;

    (void)precision;
    return one_sample(ad_graphite_parse(line, len, keybuf, keycap, &s), &s, fn, ctx);
}

static int jsonl_line(const char *line, size_t len, int precision, char *keybuf,
                      size_t keycap, ad_sample_fn fn, void *ctx)
{
    ad_sample s;

    (void)precision;
    return one_sample(ad_jsonl_parse(line, len, keybuf, keycap, &s), &s, fn, ctx);
}

static int influx_line(const char *line, size_t len, int precision, char *keybuf,
                       size_t keycap, ad_sample_fn fn, void *ctx)
{
    return ad_influx_parse(line, len, (ad_influx_precision)precision, keybuf, keycap, fn, ctx);
}

static const ad_proto_info registry[AD_PROTO_N] = {
    [AD_PROTO_GRAPHITE] = {"graphite", AD_PROTO_F_LISTENER, graphite_line},
    [AD_PROTO_INFLUX] = {"influx", AD_PROTO_F_LISTENER | AD_PROTO_F_PRECISION, influx_line},
    [AD_PROTO_STATSD] = {"statsd", AD_PROTO_F_LISTENER | AD_PROTO_F_AGGREGATED, NULL},
    [AD_PROTO_JSONL] = {"jsonl", AD_PROTO_F_LISTENER, jsonl_line},
    [AD_PROTO_PROMETHEUS] = {"prometheus", 0, NULL}, /* POST /api/v1/write (promrw.h) */
};

const ad_proto_info *ad_proto_info_of(int proto)
{
    return proto >= 0 && proto < AD_PROTO_N ? &registry[proto] : NULL;
}

const char *ad_proto_name(int proto)
{
    const ad_proto_info *pi = ad_proto_info_of(proto);

    return pi ? pi->name : NULL;
}

int ad_proto_from_name(const char *name)
{
    for (int i = 0; i < AD_PROTO_N; i++)
        if (registry[i].name && !strcmp(name, registry[i].name))
            return i;
    return -1;
}
