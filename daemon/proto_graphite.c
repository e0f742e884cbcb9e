/*
 * proto_graphite.c - the Graphite plaintext parser: splits a line into path, value and
 * timestamp, checks and sorts the tags of a tagged path, and writes the canonical key.
 * Tags are kept as pointer + length pairs on the stack (at most AD_GRAPHITE_MAX_TAGS);
 * nothing is copied before the line is known to be good.
 */
#include "proto_graphite.h"

#include <math.h>
#include <string.h>

#define AD_GRAPHITE_MAX_TAGS 64
#define AD_GRAPHITE_TS_MAX   1e11 /* seconds; a larger stamp is likely milliseconds */

typedef struct tag {
    const char *name;
    size_t name_len;
    size_t len; /* the whole `name=value` */
} tag;

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Bytewise order of tag names, the shorter first on a common prefix. */
static int tag_cmp(const tag *a, const tag *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c)
        return c;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* Checks one `name=value` tag (Graphite's rules) and records it. */
static int tag_parse(const char *p, size_t len, tag *t)
{
    const char *eq = memchr(p, '=', len);
    if (!eq || eq == p || eq == p + len - 1)
        return -AD_PE_TAGS; /* no '=', empty name or empty value */
    const char *v = eq + 1;
    if (*v == '~' || *v == '!')
        return -AD_PE_TAGS;
    t->name = p;
    t->name_len = (size_t)(eq - p);
    t->len = len;
    return 0;
}

/* Splits path into name and sorted tags. Returns the tag count or -AD_PE_*. */
static int path_parse(const char *path, size_t len, size_t *name_len, tag *tags)
{
    const char *semi = memchr(path, ';', len);
    *name_len = semi ? (size_t)(semi - path) : len;
    if (*name_len == 0)
        return -AD_PE_SYNTAX;
    int n = 0;
    const char *end = path + len;
    for (const char *p = semi; p;) {
        const char *t = p + 1;
        const char *next = memchr(t, ';', (size_t)(end - t));
        size_t tlen = (size_t)((next ? next : end) - t);
        if (n == AD_GRAPHITE_MAX_TAGS)
            return -AD_PE_TAGS;
        int rc = tag_parse(t, tlen, &tags[n]);
        if (rc < 0)
            return rc;
        /* insertion sort: a few tags, already nearly sorted as senders write them */
        int i = n++;
        tag cur = tags[i];
        while (i > 0 && tag_cmp(&tags[i - 1], &cur) > 0) {
            tags[i] = tags[i - 1];
            i--;
        }
        tags[i] = cur;
        if ((i > 0 && tag_cmp(&tags[i - 1], &cur) == 0) ||
            (i + 1 < n && tag_cmp(&tags[i + 1], &cur) == 0))
            return -AD_PE_TAGS; /* duplicate name */
        p = next;
    }
    return n;
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
        while (i < len && is_blank(line[i]))
            i++;
        if (i == len)
            break;
        if (nf == 3)
            return -AD_PE_SYNTAX;
        size_t start = i;
        while (i < len && !is_blank(line[i]))
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
    tag tags[AD_GRAPHITE_MAX_TAGS];
    size_t name_len;
    int ntags = path_parse(f[0], flen[0], &name_len, tags);
    if (ntags < 0)
        return ntags;

    double value, ts;
    int rc = ad_parse_number(f[1], flen[1], &value);
    if (rc < 0)
        return rc;
    rc = ts_parse(nf == 3 ? f[2] : NULL, nf == 3 ? flen[2] : 0, &ts);
    if (rc < 0)
        return rc;

    /* The canonical key has the path's length: the same name and tags, reordered. */
    if (flen[0] >= keycap)
        return -AD_PE_KEY_TOO_LONG;
    memcpy(keybuf, f[0], name_len);
    size_t k = name_len;
    for (int t = 0; t < ntags; t++) {
        keybuf[k++] = ';';
        memcpy(keybuf + k, tags[t].name, tags[t].len);
        k += tags[t].len;
    }
    keybuf[k] = '\0';

    out->key = keybuf;
    out->key_len = k;
    out->ts = ts;
    out->value = value;
    return 0;
}
