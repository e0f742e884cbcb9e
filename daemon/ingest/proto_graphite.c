/*
 * proto_graphite.c - the Graphite plaintext parser: splits a line into path, value and
 * timestamp, checks and sorts the tags of a tagged path, and writes the canonical key.
 * Tags are kept as pointer + length pairs on the stack (an ad_tagset); nothing is
 * copied before the line is known to be good.
 */
#include "ingest/proto_graphite.h"

#include <math.h>
#include <string.h>

#include "ingest/tagset.h"

#define AD_GRAPHITE_TS_MAX 1e11 /* seconds; a larger stamp is likely milliseconds */

/* Checks one `name=value` tag (Graphite's rules) and inserts it. */
static int tag_parse(const char *p, size_t len, ad_tagset *tags)
{
    const char *eq = memchr(p, '=', len);
    if (!eq || eq == p || eq == p + len - 1)
        return -AD_PE_TAGS; /* no '=', empty name or empty value */
    const char *v = eq + 1;
    if (*v == '~' || *v == '!')
        return -AD_PE_TAGS;
    return ad_tagset_add(tags, p, (size_t)(eq - p), v, (size_t)(p + len - v));
}

/* Splits path into name and sorted tags. Returns 0 or -AD_PE_*. */
static int path_parse(const char *path, size_t len, size_t *name_len, ad_tagset *tags)
{
    const char *semi = memchr(path, ';', len);
    *name_len = semi ? (size_t)(semi - path) : len;
    if (*name_len == 0)
        return -AD_PE_SYNTAX;
    ad_tagset_init(tags, NULL);
    const char *end = path + len;
    for (const char *p = semi; p;) {
        const char *t = p + 1;
        const char *next = memchr(t, ';', (size_t)(end - t));
        int rc = tag_parse(t, (size_t)((next ? next : end) - t), tags);
        if (rc < 0)
            return rc;
        p = next;
    }
    return 0;
}

static int ts_parse(const char *p, size_t len, double *ts)
{
    double v;
    if (len == 0) {
        *ts = NAN;
        return 0;
    }
    if (ad_parse_number(p, len, &v) < 0)
        return -AD_PE_TIMESTAMP;
    if (v == -1.0) {
        *ts = NAN;
        return 0;
    }
    if (!(v >= 0 && v < AD_GRAPHITE_TS_MAX))
        return -AD_PE_TIMESTAMP;
    *ts = v;
    return 0;
}

int ad_graphite_parse(const char *line, size_t len, char *keybuf, size_t keycap, ad_sample *out)
{
    const char *f[3];
    size_t flen[3];
    int nf = 0;
    size_t i = 0;

    for (;;) { /* fields: runs of spaces or tabs between them */
        while (i < len && ad_is_blank(line[i]))
            i++;
        if (i == len)
            break;
        if (nf == 3)
            return -AD_PE_SYNTAX;
        size_t start = i;
        while (i < len && !ad_is_blank(line[i]))
            i++;
        f[nf] = line + start;
        flen[nf++] = i - start;
    }
    if (nf == 0)
        return AD_PARSE_SKIP;
    if (nf < 2)
        return -AD_PE_SYNTAX;

    if (memchr(f[0], '\0', flen[0]))
        return -AD_PE_SYNTAX; /* the key is a C string */
    ad_tagset tags;
    size_t name_len;
    int rc = path_parse(f[0], flen[0], &name_len, &tags);
    if (rc < 0)
        return rc;

    double value, ts;
    rc = ad_parse_number(f[1], flen[1], &value);
    if (rc < 0)
        return rc;
    rc = ts_parse(nf == 3 ? f[2] : NULL, nf == 3 ? flen[2] : 0, &ts);
    if (rc < 0)
        return rc;

    /* The canonical key has the path's length: the same name and tags, reordered. */
    size_t k;
    rc = ad_tagset_key(&tags, f[0], name_len, keybuf, keycap, &k);
    if (rc < 0)
        return rc;
    out->key = keybuf;
    out->key_len = k;
    out->ts = ts;
    out->value = value;
    return 0;
}
