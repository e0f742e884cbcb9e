/*
 * relabel.c - include/exclude patterns on remote-write series (relabel.h): each pattern
 * parsed once into a name glob and label matchers, matched with fnmatch(3).
 */
#include "ingest/relabel.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h" /* enum ad_err */

#define MAX_MATCHERS 32 /* per pattern */

typedef struct matcher {
    char *label;      /* "__name__" for the metric name */
    char *glob;
    int negate;       /* != */
} matcher;

typedef struct pattern {
    char *name_glob;  /* NULL: any name */
    matcher m[MAX_MATCHERS];
    int nm;
    char *text;       /* one allocation holding every string above (the tokens) */
} pattern;

struct ad_relabel {
    pattern *p;
    int n;
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -AD_EINVAL;
}

static int label_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* Parsing: reads the pattern's text at r, writes each token NUL-terminated at w (the
 * pattern's own buffer, twice the text's size: never overrun). */
typedef struct cursor {
    const char *r;
    char *w;
} cursor;

/* A value: double-quoted (with \" and \\), or bytes up to one of stops. NULL on error. */
static char *read_value(cursor *c, const char *stops, char *err, size_t errlen)
{
    char *start = c->w;

    if (*c->r != '"') {
        while (*c->r && !strchr(stops, *c->r))
            *c->w++ = *c->r++;
        *c->w++ = '\0';
        return start;
    }
    c->r++;
    while (*c->r && *c->r != '"') {
        if (*c->r == '\\' && (c->r[1] == '"' || c->r[1] == '\\'))
            c->r++;
        *c->w++ = *c->r++;
    }
    if (*c->r != '"') {
        fail(err, errlen, "a quoted value is not closed");
        return NULL;
    }
    c->r++;
    *c->w++ = '\0';
    return start;
}

/* `label(=|!=)value`, the value up to one of stops. */
static int read_matcher(cursor *c, const char *stops, matcher *m, char *err, size_t errlen)
{
    const char *name = c->r;

    if (!label_char(*c->r, 1))
        return fail(err, errlen, "expected a label name at '%s'", *c->r ? c->r : "the end");
    m->label = c->w;
    while (label_char(*c->r, 0))
        *c->w++ = *c->r++;
    *c->w++ = '\0';
    m->negate = *c->r == '!';
    c->r += m->negate;
    if (*c->r != '=')
        return fail(err, errlen, "expected = or != after the label name '%.*s'",
                    (int)(c->r - name - m->negate), name);
    c->r++;
    m->glob = read_value(c, stops, err, errlen);
    return m->glob ? 0 : -AD_EINVAL;
}

static void skip_blanks(cursor *c)
{
    while (*c->r == ' ')
        c->r++;
}

/* Parses `text` into pt (its buffer pt->text already allocated). */
static int parse(const char *text, pattern *pt, char *err, size_t errlen)
{
    cursor c = {text, pt->text};
    const char *brace = strchr(text, '{'), *q = text;
    int r;

    if (!*text)
        return fail(err, errlen, "empty pattern");
    if (!brace) {
        while (label_char(*q, q == text))
            q++;
        if (q > text && (*q == '=' || (q[0] == '!' && q[1] == '='))) {
            /* job=node: one matcher, the rest of the text its value */
            if ((r = read_matcher(&c, "", &pt->m[0], err, errlen)) < 0)
                return r;
            if (*c.r)
                return fail(err, errlen, "unexpected '%s' after the quoted value", c.r);
            pt->nm = 1;
            return 0;
        }
        pt->name_glob = read_value(&c, "", err, errlen);
        if (!pt->name_glob)
            return -AD_EINVAL;
        if (*c.r)
            return fail(err, errlen, "unexpected '%s' after the quoted glob", c.r);
        return 0;
    }
    if (brace > text) {
        pt->name_glob = read_value(&c, "{", err, errlen);
        if (!pt->name_glob)
            return -AD_EINVAL;
        if (*c.r != '{')
            return fail(err, errlen, "the name glob runs into a quote");
    }
    c.r++;
    skip_blanks(&c);
    while (*c.r != '}') {
        if (!*c.r)
            return fail(err, errlen, "a '{' is not closed by '}'");
        if (pt->nm == MAX_MATCHERS)
            return fail(err, errlen, "more than %d label matchers", MAX_MATCHERS);
        if ((r = read_matcher(&c, ",} ", &pt->m[pt->nm++], err, errlen)) < 0)
            return r;
        skip_blanks(&c);
        if (*c.r == ',') {
            c.r++;
            skip_blanks(&c);
        } else if (*c.r != '}') {
            return fail(err, errlen, "expected ',' or '}' at '%s'", *c.r ? c.r : "the end");
        }
    }
    if (c.r[1])
        return fail(err, errlen, "unexpected '%s' after '}'", c.r + 1);
    return 0;
}

static int compile_one(const char *text, pattern *pt, char *err, size_t errlen)
{
    char msg[256];
    int r;

    memset(pt, 0, sizeof(*pt));
    pt->text = malloc(2 * strlen(text) + 2);
    if (!pt->text)
        return -AD_ENOMEM;
    if ((r = parse(text, pt, msg, sizeof(msg))) < 0) {
        free(pt->text);
        pt->text = NULL;
        return fail(err, errlen, "pattern '%s': %s", text, msg);
    }
    return 0;
}

int ad_relabel_check(const char *text, char *err, size_t errlen)
{
    pattern pt;
    int r = compile_one(text, &pt, err, errlen);

    if (r == 0)
        free(pt.text);
    return r;
}

int ad_relabel_compile(const char *const *patterns, int n, ad_relabel **out, char *err,
                       size_t errlen)
{
    ad_relabel *rl = calloc(1, sizeof(*rl));
    int r;

    if (!rl)
        return -AD_ENOMEM;
    rl->p = calloc((size_t)(n > 0 ? n : 1), sizeof(*rl->p));
    if (!rl->p) {
        free(rl);
        return -AD_ENOMEM;
    }
    for (int i = 0; i < n; i++) {
        if ((r = compile_one(patterns[i], &rl->p[i], err, errlen)) < 0) {
            ad_relabel_free(rl);
            return r;
        }
        rl->n++;
    }
    *out = rl;
    return 0;
}

static const char *label_value(const char *name, const ad_label *labels, size_t n,
                               const char *label)
{
    if (!strcmp(label, "__name__"))
        return name;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(labels[i].name, label))
            return labels[i].value;
    return "";
}

int ad_relabel_match(const ad_relabel *r, const char *name, const ad_label *labels,
                     size_t nlabels)
{
    if (!r)
        return 0;
    for (int i = 0; i < r->n; i++) {
        const pattern *pt = &r->p[i];
        int ok = !pt->name_glob || fnmatch(pt->name_glob, name, 0) == 0;

        for (int j = 0; ok && j < pt->nm; j++) {
            const matcher *m = &pt->m[j];
            int hit = fnmatch(m->glob, label_value(name, labels, nlabels, m->label), 0) == 0;

            ok = hit != m->negate;
        }
        if (ok)
            return 1;
    }
    return 0;
}

int ad_relabel_count(const ad_relabel *r)
{
    return r ? r->n : 0;
}

void ad_relabel_free(ad_relabel *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        free(r->p[i].text);
    free(r->p);
    free(r);
}
