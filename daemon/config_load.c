/*
 * config_load.c - the daemon's configuration (config.h): the entry points, the built-in
 * listeners, and the paths that follow state_dir. The loader's parts (config_impl.h):
 * the key tables and scalars (config_keys.c), the walk over the libyaml document
 * (config_yaml.c), the rules that span keys (config_check.c). A file is applied over the
 * defaults in a fixed order (scalars and sections, listeners, `defaults`, then `series`,
 * so rules inherit the defaults wherever they appear in the file); every error names
 * file:line:column of the node at fault.
 */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_impl.h"
#include "err.h"
#include "ingest/proto_influx.h"

/* The listeners when the file has no `listeners` key. */
static const struct {
    int protocol, transport;
    const char *address;
    int port;
    const char *path;
} default_listeners[] = {
    {AD_PROTO_GRAPHITE, AD_TRANSPORT_TCP, "127.0.0.1", 2003, ""},
    {AD_PROTO_GRAPHITE, AD_TRANSPORT_UDP, "127.0.0.1", 2003, ""},
    {AD_PROTO_INFLUX, AD_TRANSPORT_TCP, "127.0.0.1", 8094, ""},
    {AD_PROTO_STATSD, AD_TRANSPORT_UDP, "127.0.0.1", 8125, ""},
    {AD_PROTO_JSONL, AD_TRANSPORT_TCP, "127.0.0.1", 8095, ""},
    {AD_PROTO_JSONL, AD_TRANSPORT_UNIX, "", 0, ""}, /* <state_dir>/anomalyd.sock */
};
#define NDEFAULT_LISTENERS ((int)(sizeof(default_listeners) / sizeof(default_listeners[0])))

/* The paths that live in state_dir unless the file gives them: each is <state_dir>/name
 * (no second '/' after a state_dir ending in one), set again whenever state_dir is. */
enum state_path { SP_STORE, SP_EVENTS_UNIX, SP_EVENTS_FILE, SP_LISTENER };

static const struct {
    enum state_path which;
    unsigned bit;     /* AD_FOLLOW_* */
    const char *name; /* the file in state_dir */
    const char *what; /* for messages */
    const char *give; /* the key that sets it instead */
} state_paths[] = {
    {SP_STORE, AD_FOLLOW_STORE_PATH, "anomalyd.db", "store.path", "store.path"},
    {SP_EVENTS_UNIX, AD_FOLLOW_EVENTS_UNIX, "events.sock", "events.unix", "events.unix"},
    {SP_EVENTS_FILE, AD_FOLLOW_EVENTS_FILE, "events.jsonl", "events.file", "events.file"},
    {SP_LISTENER, AD_FOLLOW_LISTENER, "anomalyd.sock", "the default jsonl unix listener's path",
     "listeners"},
};
#define NSTATE_PATHS ((int)(sizeof(state_paths) / sizeof(state_paths[0])))

/* Where path i of state_paths lives in c (NULL: the listeners hold no unix one). */
static char *state_path_field(ad_config *c, int i)
{
    switch (state_paths[i].which) {
    case SP_STORE:
        return c->store_path;
    case SP_EVENTS_UNIX:
        return c->events_unix;
    case SP_EVENTS_FILE:
        return c->events_file;
    case SP_LISTENER:
        for (int j = 0; j < c->nlisteners; j++)
            if (c->listeners[j].transport == AD_TRANSPORT_UNIX)
                return c->listeners[j].path;
        return NULL;
    }
    return NULL;
}

int ad_cfg_follow_state_dir(ad_config *c, const char *dir, char *msg, size_t msglen)
{
    size_t n = strlen(dir), sep = n && dir[n - 1] != '/';

    if (n >= AD_PATH_MAX) {
        snprintf(msg, msglen, "state_dir: too long (%zu bytes, at most %d)", n, AD_PATH_MAX - 1);
        return -AD_EINVAL;
    }
    for (int i = 0; i < NSTATE_PATHS; i++) {
        size_t len = n + sep + strlen(state_paths[i].name);

        if ((c->follow & state_paths[i].bit) && len >= AD_PATH_MAX) {
            snprintf(msg, msglen,
                     "state_dir: too long (%zu bytes) for the paths that follow it: %s would "
                     "be <state_dir>/%s, %zu bytes (at most %d); shorten state_dir or give %s "
                     "in the file",
                     n, state_paths[i].what, state_paths[i].name, len, AD_PATH_MAX - 1,
                     state_paths[i].give);
            return -AD_EINVAL;
        }
    }
    for (int i = 0; i < NSTATE_PATHS; i++) {
        char *f = (c->follow & state_paths[i].bit) ? state_path_field(c, i) : NULL;
        size_t k = strlen(state_paths[i].name);

        if (!f)
            continue;
        memcpy(f, dir, n); /* dir may be c->state_dir, never one of these */
        if (sep)
            f[n] = '/';
        memcpy(f + n + sep, state_paths[i].name, k + 1);
    }
    return 0;
}

/* ---- entry points ---- */

int ad_config_defaults(ad_config *c)
{
    char msg[512];

    memset(c, 0, sizeof(*c));
    if (ad_cfg_table_defaults(ad_cfg_top_keys, c))
        return -AD_EINVAL;
    ad_detector_defaults(&c->defaults);
    {
        static const char *const all[] = {"*"};

        if (ad_cfg_set_patterns(&c->prom_include, NULL, 0) < 0 ||
            ad_cfg_set_patterns(&c->prom_exclude, NULL, 0) < 0 ||
            ad_cfg_set_patterns(&c->prom_rate, all, 1) < 0)
            return -AD_ENOMEM;
    }
    c->listeners = calloc(NDEFAULT_LISTENERS, sizeof(*c->listeners));
    if (!c->listeners)
        return -AD_ENOMEM;
    for (int i = 0; i < NDEFAULT_LISTENERS; i++) {
        ad_listener_config *l = &c->listeners[i];
        l->protocol = default_listeners[i].protocol;
        l->transport = default_listeners[i].transport;
        snprintf(l->address, sizeof(l->address), "%s", default_listeners[i].address);
        l->port = default_listeners[i].port;
        snprintf(l->path, sizeof(l->path), "%s", default_listeners[i].path);
        l->precision = AD_PREC_NS;
    }
    c->nlisteners = NDEFAULT_LISTENERS;
    c->follow = AD_FOLLOW_ALL;
    if (ad_cfg_follow_state_dir(c, c->state_dir, msg, sizeof(msg)) < 0)
        return -AD_EINVAL; /* a bad row: caught by the tests */
    return 0;
}

int ad_config_set_state_dir(ad_config *c, const char *dir, char *err, size_t errlen)
{
    char msg[512];

    if (ad_cfg_follow_state_dir(c, dir, msg, sizeof(msg)) < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", msg);
        return -AD_EINVAL;
    }
    if (dir != c->state_dir)
        memcpy(c->state_dir, dir, strlen(dir) + 1);
    return 0;
}

void ad_config_free(ad_config *c)
{
    ad_patterns *lists[] = {&c->prom_include, &c->prom_exclude, &c->prom_rate};

    for (int i = 0; i < 3; i++) {
        free(lists[i]->v);
        lists[i]->v = NULL;
        lists[i]->n = 0;
    }
    free(c->listeners);
    c->listeners = NULL;
    c->nlisteners = 0;
    free(c->rules);
    c->rules = NULL;
    c->nrules = 0;
}

/* "name:line:column: problem" for a libyaml error. */
static int syntax_error(const yaml_parser_t *p, const char *text, size_t len, const char *name,
                        char *err, size_t errlen)
{
    size_t line = p->problem_mark.line, col = p->problem_mark.column;
    if (p->error == YAML_MEMORY_ERROR) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -AD_ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) { /* no mark: count up to the offset */
        line = col = 0;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n')
                line++, col = 0;
            else
                col++;
        }
    }
    if (p->context)
        snprintf(err, errlen, "%s:%zu:%zu: %s (%s at line %zu, column %zu)", name, line + 1,
                 col + 1, p->problem ? p->problem : "syntax error", p->context,
                 p->context_mark.line + 1, p->context_mark.column + 1);
    else
        snprintf(err, errlen, "%s:%zu:%zu: %s", name, line + 1, col + 1,
                 p->problem ? p->problem : "syntax error");
    return -AD_EINVAL;
}

int ad_config_parse(const char *text, size_t len, const char *name, ad_config *c, char *err,
                    size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    char dummy[1];
    int rc;

    if (!err || !errlen)
        err = dummy, errlen = sizeof(dummy);
    err[0] = '\0';
    rc = ad_config_defaults(c);
    if (rc) {
        snprintf(err, errlen, "%s: out of memory", name);
        goto out_free_config;
    }
    snprintf(c->source, sizeof(c->source), "%s", name);
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        rc = -AD_ENOMEM;
        goto out_free_config;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&parser, text, len, name, err, errlen);
        goto out_delete_parser;
    }
    ad_cfg_walk w = {&doc, name, err, errlen, c};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root) {
        if (!yaml_parser_load(&parser, &extra)) {
            rc = syntax_error(&parser, text, len, name, err, errlen);
            goto out_delete_doc;
        }
        yaml_node_t *second = yaml_document_get_root_node(&extra);
        if (second)
            rc = ad_cfg_fail_at(&w, second, "a second YAML document: the file holds one");
        yaml_document_delete(&extra);
        if (rc)
            goto out_delete_doc;
        rc = ad_cfg_apply_root(&w, root);
        if (!rc)
            rc = ad_cfg_check_whole(&w, root);
        if (!rc)
            rc = ad_cfg_check_state_paths(&w, root);
        if (!rc)
            rc = ad_cfg_check_socket_paths(&w, root);
    }
out_delete_doc:
    yaml_document_delete(&doc);
out_delete_parser:
    yaml_parser_delete(&parser);
out_free_config:
    if (rc)
        ad_config_free(c);
    return rc;
}

int ad_config_load(const char *path, ad_config *c, char *err, size_t errlen)
{
    char *text = NULL, *bigger;
    size_t len = 0, cap = 0, got;
    FILE *f;
    int rc;

    memset(c, 0, sizeof(*c));
    f = fopen(path, "rb");
    if (!f)
        goto out_io;
    do {
        if (len == cap) {
            cap = cap ? 2 * cap : 65536;
            bigger = realloc(text, cap);
            if (!bigger) {
                fclose(f);
                free(text);
                if (err && errlen)
                    snprintf(err, errlen, "%s: out of memory", path);
                return -AD_ENOMEM;
            }
            text = bigger;
        }
        got = fread(text + len, 1, cap - len, f);
        len += got;
    } while (got);
    if (ferror(f)) {
        int e = errno;
        fclose(f);
        free(text);
        errno = e;
        goto out_io;
    }
    fclose(f);
    rc = ad_config_parse(text, len, path, c, err, errlen);
    free(text);
    return rc;

out_io:
    if (err && errlen)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -AD_EIO;
}

int ad_config_match(const ad_config *c, const char *key, const ad_detector_config **det,
                    int *ignore)
{
    for (int i = 0; i < c->nrules; i++) {
        if (fnmatch(c->rules[i].match, key, 0) == 0) {
            if (det)
                *det = &c->rules[i].det;
            if (ignore)
                *ignore = c->rules[i].ignore;
            return i;
        }
    }
    if (det)
        *det = &c->defaults;
    if (ignore)
        *ignore = 0;
    return -1;
}
