/*
 * proto_statsd.c - the StatsD parser: name, value, type, sample rate and DogStatsD tags
 * of one line, checked whole before the canonical key (`name;a=1;b=2`, tags sorted by
 * name) is written. Tags are kept as pointer + length pairs on the stack (an ad_tagset).
 */
#include "ingest/proto_statsd.h"

#include <string.h>

#include "ingest/tagset.h"

/* Parses `k:v,k2,...` into sorted tags. Returns 0 or -AD_PE_TAGS. A name holds no ';',
 * '=' or blank; a value no ';', ',' or blank (the key's separators); neither a NUL. */
static int tags_parse(const char *p, size_t len, ad_tagset *tags)
{
    const char *end = p + len;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *te = comma ? comma : end;
        const char *colon = memchr(p, ':', (size_t)(te - p));
        const char *ne = colon ? colon : te;
        if (ne == p)
            return -AD_PE_TAGS;
        for (const char *c = p; c < te; c++)
            if (*c == ';' || *c == '\0' || ad_is_blank(*c) || (c < ne && *c == '='))
                return -AD_PE_TAGS;
        int rc = ad_tagset_add(tags, p, (size_t)(ne - p), colon ? colon + 1 : NULL,
                               colon ? (size_t)(te - colon - 1) : 0);
        if (rc < 0 || !comma)
            return rc;
        p = comma + 1;
    }
}

static int type_parse(const char *p, size_t len)
{
    if (len == 1 && p[0] == 'g')
        return AD_STATSD_GAUGE;
    if (len == 1 && p[0] == 'c')
        return AD_STATSD_COUNTER;
    if ((len == 2 && p[0] == 'm' && p[1] == 's') || (len == 1 && p[0] == 'h'))
        return AD_STATSD_TIMER;
    return -AD_PE_TYPE;
}

int ad_statsd_parse(const char *line, size_t len, char *keybuf, size_t keycap,
                    ad_statsd_metric *out)
{
    while (len > 0 && ad_is_blank(line[0])) {
        line++;
        len--;
    }
    while (len > 0 && ad_is_blank(line[len - 1]))
        len--;
    if (len == 0)
        return AD_PARSE_SKIP;

    const char *end = line + len;
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return -AD_PE_SYNTAX;
    size_t name_len = (size_t)(colon - line);
    for (size_t i = 0; i < name_len; i++)
        if (line[i] == ';' || ad_is_blank(line[i]) || line[i] == '|' || line[i] == '\0')
            return -AD_PE_SYNTAX;

    /* the sections: value|type[|@rate][|#tags], the last two in either order */
    const char *sec[4];
    size_t sec_len[4];
    int ns = 0;
    for (const char *p = colon + 1;;) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        if (ns == 4)
            return -AD_PE_SYNTAX;
        sec[ns] = p;
        sec_len[ns++] = (size_t)((bar ? bar : end) - p);
        if (!bar)
            break;
        p = bar + 1;
    }
    if (ns < 2)
        return -AD_PE_SYNTAX;

    int type = type_parse(sec[1], sec_len[1]);
    if (type < 0)
        return type;

    double value, rate = 1.0;
    int rc = ad_parse_number(sec[0], sec_len[0], &value);
    if (rc < 0)
        return rc;
    int delta = type == AD_STATSD_GAUGE && (sec[0][0] == '+' || sec[0][0] == '-');

    ad_tagset tags;
    ad_tagset_init(&tags, NULL);
    int have_rate = 0, have_tags = 0;
    for (int s = 2; s < ns; s++) {
        if (sec_len[s] > 0 && sec[s][0] == '@' && !have_rate) {
            have_rate = 1;
            rc = ad_parse_number(sec[s] + 1, sec_len[s] - 1, &rate);
            if (rc < 0)
                return -AD_PE_VALUE;
            if (!(rate > 0 && rate <= 1))
                return -AD_PE_VALUE;
        } else if (sec_len[s] > 0 && sec[s][0] == '#' && !have_tags) {
            have_tags = 1;
            rc = tags_parse(sec[s] + 1, sec_len[s] - 1, &tags);
            if (rc < 0)
                return rc;
        } else {
            return -AD_PE_SYNTAX;
        }
    }

    size_t k;
    rc = ad_tagset_key(&tags, line, name_len, keybuf, keycap, &k);
    if (rc < 0)
        return rc;

    out->key = keybuf;
    out->key_len = k;
    out->value = value;
    out->rate = rate;
    out->type = type;
    out->delta = delta;
    return 0;
}
