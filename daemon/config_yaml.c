/*
 * config_yaml.c - the walk over the libyaml document tree: each map applied through its
 * key table in a fixed order (scalars and sections, listeners, `defaults`, then
 * `series`, so rules inherit the defaults wherever they appear in the file), lists of
 * listeners, rules, features and patterns. Unknown keys (with the nearest known one
 * suggested), duplicate keys and wrong node kinds are refused; every error names
 * file:line:column of the node at fault.
 */
#include "config_impl.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ingest/proto_influx.h"
#include "ingest/relabel.h"

/* One table and the struct its offsets are relative to. */
typedef struct binding {
    const ad_key *keys;
    void *base;
} binding;

int ad_cfg_fail_at(ad_cfg_walk *w, const yaml_node_t *n, const char *fmt, ...)
{
    if (w->err && w->errlen) {
        int k = snprintf(w->err, w->errlen, "%s:%zu:%zu: ", w->name, n->start_mark.line + 1,
                         n->start_mark.column + 1);
        if (k >= 0 && (size_t)k < w->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(w->err + k, w->errlen - (size_t)k, fmt, ap);
            va_end(ap);
        }
    }
    return -AD_EINVAL;
}

yaml_node_t *ad_cfg_node(ad_cfg_walk *w, int i)
{
    return yaml_document_get_node(w->doc, i);
}

const char *ad_cfg_node_kind(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a map";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (ad_cfg_is_null((const char *)n->data.scalar.value, n->data.scalar.length) &&
        n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
        return "nothing";
    return "a single value";
}

static int is_null_node(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           ad_cfg_is_null((const char *)n->data.scalar.value, n->data.scalar.length);
}

const char *ad_cfg_scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

yaml_node_t *ad_cfg_lookup(ad_cfg_walk *w, const yaml_node_t *m, const char *name,
                           yaml_node_t **key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = ad_cfg_node(w, p->key);
        if (k && k->type == YAML_SCALAR_NODE && !strcmp(ad_cfg_scalar(k), name)) {
            if (key)
                *key = k;
            return ad_cfg_node(w, p->value);
        }
    }
    return NULL;
}

static const ad_key *find_key(const binding *b, int nb, const char *name, void **base)
{
    for (int i = 0; i < nb; i++)
        for (const ad_key *k = b[i].keys; k->name; k++)
            if (!strcmp(k->name, name)) {
                *base = b[i].base;
                return k;
            }
    return NULL;
}

/* Edit distance of two short strings (longer ones count as far). */
static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int unknown_key(ad_cfg_walk *w, const yaml_node_t *kn, const binding *b, int nb,
                       const char *where)
{
    const char *name = ad_cfg_scalar(kn), *best = NULL;
    size_t bestd = SIZE_MAX, len = strlen(name);
    char list[1024];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < nb; i++) {
        for (const ad_key *k = b[i].keys; k->name; k++) {
            size_t d = distance(name, k->name);
            if (d < bestd)
                bestd = d, best = k->name;
            if (used < sizeof(list))
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                                         k->name);
        }
    }
    if (best && bestd <= (len < 6 ? 1 : len / 3))
        return ad_cfg_fail_at(w, kn, "unknown key '%s' in %s (did you mean '%s'?)", name, where,
                              best);
    return ad_cfg_fail_at(w, kn, "unknown key '%s' in %s (valid keys: %s)", name, where, list);
}

static int apply_map(ad_cfg_walk *w, const yaml_node_t *m, const binding *b, int nb,
                     const char *path);
static int apply_listeners(ad_cfg_walk *w, const yaml_node_t *n);
static int apply_defaults(ad_cfg_walk *w, const yaml_node_t *n);
static int apply_series(ad_cfg_walk *w, const yaml_node_t *n);

static int apply_features(ad_cfg_walk *w, const yaml_node_t *n, unsigned *out, const char *path)
{
    static const char *const names[] = {"tod", "dow", "gap"};
    static const unsigned bits[] = {AD_FEAT_TIME_OF_DAY, AD_FEAT_DAY_OF_WEEK, AD_FEAT_GAP};
    unsigned f = 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return ad_cfg_fail_at(w, n, "%s: expected a list of tod, dow, gap ([] for none), got %s",
                              path, ad_cfg_node_kind(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *v = ad_cfg_node(w, *it);
        int i = 0;
        if (v->type != YAML_SCALAR_NODE)
            return ad_cfg_fail_at(w, v, "%s: expected tod, dow or gap, got %s", path,
                                  ad_cfg_node_kind(v));
        while (i < 3 && strcmp(ad_cfg_scalar(v), names[i]))
            i++;
        if (i == 3)
            return ad_cfg_fail_at(w, v, "%s: '%s' is not one of tod | dow | gap", path,
                                  ad_cfg_scalar(v));
        if (f & bits[i])
            return ad_cfg_fail_at(w, v, "%s: '%s' is listed twice", path, ad_cfg_scalar(v));
        f |= bits[i];
    }
    *out = f;
    return 0;
}

static int apply_patterns(ad_cfg_walk *w, const yaml_node_t *n, ad_patterns *out, const char *path)
{
    const char *items[1024];
    char msg[512];
    int count = 0;

    if (n->type != YAML_SEQUENCE_NODE)
        return ad_cfg_fail_at(w, n, "%s: expected a list of patterns ([] for none), got %s", path,
                              ad_cfg_node_kind(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *v = ad_cfg_node(w, *it);

        if (v->type != YAML_SCALAR_NODE)
            return ad_cfg_fail_at(w, v, "%s: expected a pattern (a string), got %s", path,
                                  ad_cfg_node_kind(v));
        if (strlen(ad_cfg_scalar(v)) != v->data.scalar.length)
            return ad_cfg_fail_at(w, v, "%s: contains a NUL byte", path);
        if (count == (int)(sizeof(items) / sizeof(items[0])))
            return ad_cfg_fail_at(w, v, "%s: more than %d patterns", path, count);
        if (ad_relabel_check(ad_cfg_scalar(v), msg, sizeof(msg)) < 0)
            return ad_cfg_fail_at(w, v, "%s: %s (docs/PROMETHEUS.md has the syntax)", path, msg);
        items[count++] = ad_cfg_scalar(v);
    }
    if (ad_cfg_set_patterns(out, items, count) < 0) {
        snprintf(w->err, w->errlen, "%s: out of memory", w->name);
        return -AD_ENOMEM;
    }
    return 0;
}

static int apply_value(ad_cfg_walk *w, const ad_key *k, void *base, const yaml_node_t *v,
                       const char *path)
{
    char msg[512];
    switch (k->type) {
    case K_FEATURES:
        return apply_features(w, v, (unsigned *)((char *)base + k->off), path);
    case K_SECTION: {
        binding sb = {k->sub, base};
        return apply_map(w, v, &sb, 1, path);
    }
    case K_LISTENERS:
        return apply_listeners(w, v);
    case K_DETECTOR:
        return apply_defaults(w, v);
    case K_SERIES:
        return apply_series(w, v);
    case K_PATTERNS:
        return apply_patterns(w, v, (ad_patterns *)((char *)base + k->off), path);
    case K_INT:
    case K_SIZE:
    case K_DOUBLE:
    case K_FLOAT:
    case K_U64:
    case K_BOOL:
    case K_STR:
    case K_ADDR:
    case K_ENUM:
    case K_SCORER:
        break; /* a scalar: below */
    }
    if (v->type != YAML_SCALAR_NODE)
        return ad_cfg_fail_at(w, v, "%s: expected a single value, got %s", path,
                              ad_cfg_node_kind(v));
    if (ad_cfg_set_scalar(k, base, ad_cfg_scalar(v), v->data.scalar.length,
                          v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE, msg, sizeof(msg)))
        return ad_cfg_fail_at(w, v, "%s: %s", path, msg);
    return 0;
}

/*
 * Applies map m through the tables in b: refuses non-scalar, unknown and duplicate keys,
 * then sets the keys pass by pass (F_EARLY, plain, F_LATE, F_LAST). `path` names the map
 * in messages ("" at the top). A null value counts as an empty map.
 */
static int apply_map(ad_cfg_walk *w, const yaml_node_t *m, const binding *b, int nb,
                     const char *path)
{
    static const unsigned pass_flag[4] = {F_EARLY, 0, F_LATE, F_LAST};
    const char *where = *path ? path : "the top level";
    char sub[256];
    yaml_node_pair_t *p, *q;
    void *base;

    if (is_null_node(m))
        return 0;
    if (m->type != YAML_MAPPING_NODE)
        return ad_cfg_fail_at(w, m, "%s: expected a map, got %s", where, ad_cfg_node_kind(m));
    for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = ad_cfg_node(w, p->key);
        if (kn->type != YAML_SCALAR_NODE)
            return ad_cfg_fail_at(w, kn, "%s: a key must be a single word, got %s", where,
                                  ad_cfg_node_kind(kn));
        if (!find_key(b, nb, ad_cfg_scalar(kn), &base))
            return unknown_key(w, kn, b, nb, where);
        for (q = m->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *prev = ad_cfg_node(w, q->key);
            if (!strcmp(ad_cfg_scalar(prev), ad_cfg_scalar(kn)))
                return ad_cfg_fail_at(
                    w, kn, "%s: duplicate key '%s' (first at line %zu, column %zu)", where,
                    ad_cfg_scalar(kn), prev->start_mark.line + 1, prev->start_mark.column + 1);
        }
    }
    for (int pass = 0; pass < 4; pass++) {
        for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
            const char *name = ad_cfg_scalar(ad_cfg_node(w, p->key));
            const ad_key *k = find_key(b, nb, name, &base);
            if ((k->flags & (F_EARLY | F_LATE | F_LAST)) != pass_flag[pass])
                continue;
            snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", name);
            int rc = apply_value(w, k, base, ad_cfg_node(w, p->value), sub);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int check_detector(ad_cfg_walk *w, const yaml_node_t *at, const ad_detector_config *d,
                          const char *path)
{
    char msg[256];
    if (ad_detector_config_check(d, msg, sizeof(msg)))
        return ad_cfg_fail_at(w, at, "%s: %s", path, msg);
    return 0;
}

static int apply_defaults(ad_cfg_walk *w, const yaml_node_t *n)
{
    binding b = {ad_cfg_detector_keys, &w->c->defaults};
    int rc = apply_map(w, n, &b, 1, "defaults");
    return rc ? rc : check_detector(w, n, &w->c->defaults, "defaults");
}

static int apply_series(ad_cfg_walk *w, const yaml_node_t *n)
{
    ad_config *c = w->c;
    char path[64];
    if (is_null_node(n))
        return 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return ad_cfg_fail_at(w, n, "series: expected a list of rules, got %s",
                              ad_cfg_node_kind(n));
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return 0;
    c->rules = calloc((size_t)count, sizeof(*c->rules));
    if (!c->rules) {
        snprintf(w->err, w->errlen, "%s: out of memory", w->name);
        return -AD_ENOMEM;
    }
    for (int i = 0; i < count; i++) {
        yaml_node_t *m = ad_cfg_node(w, n->data.sequence.items.start[i]);
        ad_series_rule *r = &c->rules[c->nrules++];
        binding b[2] = {{ad_cfg_rule_keys, r}, {ad_cfg_detector_keys, &r->det}};
        r->det = c->defaults;
        r->line = (int)m->start_mark.line + 1;
        r->column = (int)m->start_mark.column + 1;
        snprintf(path, sizeof(path), "series[%d]", i);
        if (m->type != YAML_MAPPING_NODE)
            return ad_cfg_fail_at(w, m, "%s: expected a map with match and detector keys, got %s",
                                  path, ad_cfg_node_kind(m));
        int rc = apply_map(w, m, b, 2, path);
        if (rc)
            return rc;
        if (!r->match[0])
            return ad_cfg_fail_at(w, m, "%s: a rule needs a match (a glob on the series key)",
                                  path);
        if ((rc = check_detector(w, m, &r->det, path)))
            return rc;
        if (r->shared && r->det.model != AD_MODEL_PREDICT)
            return ad_cfg_fail_at(w, m, "%s: shared families predict: model must be predict", path);
        if (r->shared && r->ignore)
            return ad_cfg_fail_at(w, m, "%s: a rule cannot both ignore and share", path);
    }
    return 0;
}

static int apply_listeners(ad_cfg_walk *w, const yaml_node_t *n)
{
    ad_config *c = w->c;
    char path[64];
    if (n->type != YAML_SEQUENCE_NODE)
        return ad_cfg_fail_at(w, n, "listeners: expected a list of listeners ([] for none), got %s",
                              ad_cfg_node_kind(n));
    free(c->listeners);
    c->listeners = NULL;
    c->nlisteners = 0;
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count == 0)
        return 0;
    c->listeners = calloc((size_t)count, sizeof(*c->listeners));
    if (!c->listeners) {
        snprintf(w->err, w->errlen, "%s: out of memory", w->name);
        return -AD_ENOMEM;
    }
    for (int i = 0; i < count; i++) {
        yaml_node_t *m = ad_cfg_node(w, n->data.sequence.items.start[i]);
        ad_listener_config *l = &c->listeners[c->nlisteners++];
        binding b = {ad_cfg_listener_keys, l};
        l->protocol = -1;
        l->transport = -1;
        l->port = -1;
        l->precision = AD_PREC_NS;
        snprintf(l->address, sizeof(l->address), "127.0.0.1");
        snprintf(path, sizeof(path), "listeners[%d]", i);
        if (m->type != YAML_MAPPING_NODE)
            return ad_cfg_fail_at(w, m, "%s: expected a map (protocol, transport, ...), got %s",
                                  path, ad_cfg_node_kind(m));
        int rc = apply_map(w, m, &b, 1, path);
        if (rc || (rc = ad_cfg_check_listener(w, m, i, path)))
            return rc;
        if (l->transport == AD_TRANSPORT_UNIX) {
            l->address[0] = '\0';
            l->port = 0;
        }
    }
    return 0;
}

int ad_cfg_apply_root(ad_cfg_walk *w, const yaml_node_t *root)
{
    binding b = {ad_cfg_top_keys, w->c};

    return apply_map(w, root, &b, 1, "");
}
