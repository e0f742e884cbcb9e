/*
 * sample.c - names of parse errors and protocols, and the number syntax the parsers
 * share (strtod on a bounded copy, with hex floats and non-finite values refused).
 */
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const perr_names[AD_PE_NREASONS] = {
    [0] = "none",
    [AD_PE_SYNTAX] = "syntax",
    [AD_PE_VALUE] = "bad_value",
    [AD_PE_NONFINITE] = "non_finite",
    [AD_PE_TIMESTAMP] = "bad_timestamp",
    [AD_PE_KEY_TOO_LONG] = "key_too_long",
    [AD_PE_TAGS] = "bad_tags",
    [AD_PE_TYPE] = "bad_type",
    [AD_PE_TOO_LONG] = "line_too_long",
    [AD_PE_NO_FIELDS] = "no_fields",
};

const char *ad_parse_error_name(int reason)
{
    if (reason <= 0 || reason >= AD_PE_NREASONS)
        return "unknown";
    return perr_names[reason];
}

int ad_parse_number(const char *p, size_t len, double *out)
{
    char tmp[AD_NUMBER_MAX + 1];
    if (len == 0 || len > AD_NUMBER_MAX)
        return -AD_PE_VALUE;
    /* strtod would skip leading white space and read hex floats: neither is ours. */
    if (!memchr("+-.0123456789nNiI", p[0], 17))
        return -AD_PE_VALUE;
    if (memchr(p, 'x', len) || memchr(p, 'X', len))
        return -AD_PE_VALUE;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (end != tmp + len) /* trailing bytes, or a NUL inside the token */
        return -AD_PE_VALUE;
    if (!isfinite(v))
        return -AD_PE_NONFINITE;
    *out = v;
    return 0;
}

static const char *const proto_names[AD_PROTO_N] = {"graphite", "influx", "statsd", "jsonl",
                                                    "prometheus"};

const char *ad_proto_name(int proto)
{
    return proto >= 0 && proto < AD_PROTO_N ? proto_names[proto] : NULL;
}

int ad_proto_from_name(const char *name)
{
    for (int i = 0; i < AD_PROTO_N; i++)
        if (!strcmp(name, proto_names[i]))
            return i;
    return -1;
}
