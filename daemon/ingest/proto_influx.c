/*
 * proto_influx.c - the InfluxDB line-protocol parser. A first pass checks the whole line
 * (measurement, tags, fields, timestamp) and records tokens as pointer + length pairs in
 * their escaped form on the stack; only then is the canonical key built (each token
 * unescaped and written back in InfluxDB's escaped form, so two spellings of one name
 * give one key) and one sample given per numeric field.
 */
#include "ingest/proto_influx.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "ingest/tagset.h"

#define AD_INFLUX_MAX_FIELDS 256

/* What a backslash escapes: in measurements, and in tag keys, tag values, field keys. */
static const char ESC_MEAS[] = ", ";
static const char ESC_TAG[] = ",= ";

typedef struct span {
    const char *p; /* escaped, in the line */
    size_t len;
} span;

typedef struct ifield {
    span key;
    double value;
    int numeric; /* 0 for a string field */
} ifield;

static int in_set(char c, const char *set)
{
    return c != '\0' && strchr(set, c) != NULL;
}

/* The next unescaped byte of s from *i (advanced). */
static char unesc_next(span s, size_t *i, const char *esc)
{
    char c = s.p[*i];
    if (c == '\\' && *i + 1 < s.len && in_set(s.p[*i + 1], esc)) {
        *i += 2;
        return s.p[*i - 1];
    }
    *i += 1;
    return c;
}

/* Order of the unescaped forms of a and b (bytewise, the shorter first). */
static int unesc_cmp(span a, span b, const char *esc)
{
    size_t i = 0, j = 0;
    while (i < a.len && j < b.len) {
        unsigned char ca = (unsigned char)unesc_next(a, &i, esc);
        unsigned char cb = (unsigned char)unesc_next(b, &j, esc);
        if (ca != cb)
            return ca < cb ? -1 : 1;
    }
    return (i < a.len) - (j < b.len);
}

/* Writes s unescaped then escaped again (the canonical spelling) to dst if not NULL;
 * returns its length. */
static size_t canon(char *dst, span s, const char *esc)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len;) {
        char c = unesc_next(s, &i, esc);
        if (in_set(c, esc)) {
            if (dst)
                dst[n] = '\\';
            n++;
        }
        if (dst)
            dst[n] = c;
        n++;
    }
    return n;
}

/* Scans from *i to the first unescaped byte of stop (or the end); returns the token. */
static span scan(const char *line, size_t len, size_t *i, const char *stop, const char *esc)
{
    span s = {line + *i, 0};
    while (*i < len && !in_set(line[*i], stop)) {
        if (line[*i] == '\\' && *i + 1 < len && in_set(line[*i + 1], esc))
            *i += 2;
        else
            *i += 1;
    }
    s.len = (size_t)(line + *i - s.p);
    return s;
}

static int is_digits(const char *p, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

/* Parses [-]digits as an int64 (neg allowed) or digits as a uint64 into *mag and *neg.
 * Returns 0 or -1. */
static int parse_int(const char *p, size_t n, int allow_neg, uint64_t *mag, int *neg)
{
    *neg = 0;
    if (allow_neg && n > 0 && p[0] == '-') {
        *neg = 1;
        p++;
        n--;
    }
    if (!is_digits(p, n))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (allow_neg && v > (uint64_t)INT64_MAX + (uint64_t)*neg)
        return -1;
    *mag = v;
    return 0;
}

static int is_bool(const char *p, size_t n, double *v)
{
    static const char *const t[] = {"t", "T", "true", "True", "TRUE"};
    static const char *const f[] = {"f", "F", "false", "False", "FALSE"};
    for (int i = 0; i < 5; i++) {
        if (strlen(t[i]) == n && !memcmp(p, t[i], n)) {
            *v = 1;
            return 1;
        }
        if (strlen(f[i]) == n && !memcmp(p, f[i], n)) {
            *v = 0;
            return 1;
        }
    }
    return 0;
}

/* A field's value token: float, 12i, 12u or boolean. */
static int value_parse(const char *p, size_t n, double *v)
{
    uint64_t mag;
    int neg;
    if (is_bool(p, n, v))
        return 0;
    if (n > 0 && (p[n - 1] == 'i' || p[n - 1] == 'u')) {
        if (parse_int(p, n - 1, p[n - 1] == 'i', &mag, &neg) < 0)
            return -AD_PE_VALUE;
        *v = neg ? -(double)mag : (double)mag;
        return 0;
    }
    return ad_parse_number(p, n, v);
}

static int ts_parse(const char *p, size_t n, ad_influx_precision prec, double *ts)
{
    static const int64_t div[] = {1000000000, 1000000, 1000, 1};
    uint64_t mag;
    int neg;
    if (parse_int(p, n, 1, &mag, &neg) < 0)
        return -AD_PE_TIMESTAMP;
    int64_t d = div[(unsigned)prec < 4 ? prec : AD_PREC_NS];
    /* whole seconds and the rest apart, not to lose the nanoseconds to rounding twice */
    uint64_t sec = mag / (uint64_t)d, rest = mag % (uint64_t)d;
    double s = (double)sec + (double)rest / (double)d;
    *ts = neg ? -s : s;
    return 0;
}

int ad_influx_precision_from_name(const char *name)
{
    static const struct {
        const char *name;
        int prec;
    } names[] = {{"ns", AD_PREC_NS}, {"n", AD_PREC_NS},  {"us", AD_PREC_US},
                 {"u", AD_PREC_US},  {"ms", AD_PREC_MS}, {"s", AD_PREC_S}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (name && !strcmp(name, names[i].name))
            return names[i].prec;
    return -1;
}

/* Parses `key=value[,key=value]` from *i; fills fields. Returns the count or -AD_PE_*. */
static int fields_parse(const char *line, size_t len, size_t *i, ifield *fields)
{
    int n = 0;
    for (;;) {
        if (n == AD_INFLUX_MAX_FIELDS)
            return -AD_PE_SYNTAX;
        ifield *f = &fields[n++];
        f->key = scan(line, len, i, ESC_TAG, ESC_TAG);
        if (f->key.len == 0 || *i == len || line[*i] != '=' || memchr(f->key.p, '\0', f->key.len))
            return -AD_PE_SYNTAX;
        (*i)++;
        size_t start = *i;
        if (*i < len && line[*i] == '"') { /* a string: skipped, but checked */
            for ((*i)++; *i < len && line[*i] != '"'; (*i)++)
                if (line[*i] == '\\' && *i + 1 < len &&
                    (line[*i + 1] == '"' || line[*i + 1] == '\\'))
                    (*i)++;
            if (*i == len)
                return -AD_PE_SYNTAX;
            (*i)++;
            f->numeric = 0;
            f->value = 0;
        } else {
            while (*i < len && line[*i] != ',' && line[*i] != ' ')
                (*i)++;
            if (*i == start)
                return -AD_PE_SYNTAX;
            int rc = value_parse(line + start, *i - start, &f->value);
            if (rc < 0)
                return rc;
            f->numeric = 1;
        }
        if (*i == len || line[*i] == ' ')
            return n;
        if (line[*i] != ',')
            return -AD_PE_SYNTAX; /* a byte after a string's closing quote */
        (*i)++;
    }
}

static span tag_key(const ad_tag *t)
{
    return (span){t->name, t->name_len};
}

static span tag_value(const ad_tag *t)
{
    return (span){t->value, t->value_len};
}

/* The order of two tags: their keys unescaped, bytewise. */
static int tag_cmp(const ad_tag *a, const ad_tag *b)
{
    return unesc_cmp(tag_key(a), tag_key(b), ESC_TAG);
}

/* Parses `,key=value...` from *i into sorted tags (escaped spans of the line). Returns 0
 * or -AD_PE_TAGS. */
static int tags_parse(const char *line, size_t len, size_t *i, ad_tagset *tags)
{
    ad_tagset_init(tags, tag_cmp);
    while (*i < len && line[*i] == ',') {
        (*i)++;
        span key = scan(line, len, i, ESC_TAG, ESC_TAG);
        if (key.len == 0 || *i == len || line[*i] != '=')
            return -AD_PE_TAGS;
        (*i)++;
        span value = scan(line, len, i, ", ", ESC_TAG);
        if (value.len == 0 || memchr(key.p, '\0', key.len) || memchr(value.p, '\0', value.len))
            return -AD_PE_TAGS;
        int rc = ad_tagset_add(tags, key.p, key.len, value.p, value.len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int ad_influx_parse(const char *line, size_t len, ad_influx_precision prec, char *keybuf,
                    size_t keycap, ad_sample_fn fn, void *ctx)
{
    size_t i = 0;
    while (i < len && ad_is_blank(line[i]))
        i++;
    while (len > i && ad_is_blank(line[len - 1]))
        len--;
    if (i == len || line[i] == '#')
        return 0;

    span meas = scan(line, len, &i, ", ", ESC_MEAS);
    if (meas.len == 0 || memchr(meas.p, '\0', meas.len))
        return -AD_PE_SYNTAX; /* the key is a C string */
    ad_tagset tags;
    int rc = tags_parse(line, len, &i, &tags);
    if (rc < 0)
        return rc;
    while (i < len && line[i] == ' ')
        i++;
    if (i == len)
        return -AD_PE_NO_FIELDS;

    ifield fields[AD_INFLUX_MAX_FIELDS];
    int nfields = fields_parse(line, len, &i, fields);
    if (nfields < 0)
        return nfields;

    double ts = NAN;
    while (i < len && line[i] == ' ')
        i++;
    if (i < len) {
        size_t start = i;
        while (i < len && !ad_is_blank(line[i]))
            i++;
        if (i < len)
            return -AD_PE_SYNTAX; /* a fourth section */
        rc = ts_parse(line + start, i - start, prec, &ts);
        if (rc < 0)
            return rc;
    }

    /* the key: measurement, tags, a space, the field key; each must fit */
    size_t base = canon(NULL, meas, ESC_MEAS) + 1;
    for (int t = 0; t < tags.n; t++)
        base += 2 + canon(NULL, tag_key(&tags.tag[t]), ESC_TAG) +
                canon(NULL, tag_value(&tags.tag[t]), ESC_TAG);
    int numeric = 0;
    for (int f = 0; f < nfields; f++) {
        if (!fields[f].numeric)
            continue;
        numeric++;
        if (base + canon(NULL, fields[f].key, ESC_TAG) >= keycap)
            return -AD_PE_KEY_TOO_LONG;
    }
    if (numeric == 0)
        return 0; /* strings only: keybuf untouched (it may be too small) */

    size_t k = canon(keybuf, meas, ESC_MEAS);
    for (int t = 0; t < tags.n; t++) {
        keybuf[k++] = ',';
        k += canon(keybuf + k, tag_key(&tags.tag[t]), ESC_TAG);
        keybuf[k++] = '=';
        k += canon(keybuf + k, tag_value(&tags.tag[t]), ESC_TAG);
    }
    keybuf[k++] = ' ';
    int given = 0;
    for (int f = 0; f < nfields; f++) {
        if (!fields[f].numeric)
            continue;
        size_t n = k + canon(keybuf + k, fields[f].key, ESC_TAG);
        keybuf[n] = '\0';
        ad_sample s = {.key = keybuf, .key_len = n, .ts = ts, .value = fields[f].value};
        given++;
        if (fn(ctx, &s) != 0)
            break;
    }
    return given;
}
