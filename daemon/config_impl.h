/*
 * config_impl.h - what the parts of the configuration loader share, for them only (other
 * modules include config.h):
 *
 *   config_load.c   the entry points (config.h), the built-in listeners, the paths that
 *                   follow state_dir
 *   config_keys.c   the key tables (one row per key) and setting a field from a scalar
 *   config_yaml.c   the walk over the libyaml document: maps, lists, sections, rules
 *   config_check.c  what spans keys: a listener's keys together, the API's exposure,
 *                   the paths under state_dir, the Unix socket paths
 */
#ifndef AD_CONFIG_IMPL_H
#define AD_CONFIG_IMPL_H

#include <stddef.h>
#include <yaml.h>

#include "config.h"

/* ---- the key tables (config_keys.c) ---- */

enum ktype {
    K_INT,       /* int */
    K_SIZE,      /* size_t */
    K_DOUBLE,    /* double */
    K_FLOAT,     /* float */
    K_U64,       /* uint64_t, any value */
    K_BOOL,      /* int 0/1: true false yes no on off */
    K_STR,       /* char[size]; lo = minimum length */
    K_ADDR,      /* char[size]: an IPv4 or IPv6 address (inet_pton); lo = 0 allows "" */
    K_ENUM,      /* int: one of name_of(0), name_of(1), ... */
    K_SCORER,    /* ad_scorer_config: a kind; resets the scorer to its defaults */
    K_FEATURES,  /* unsigned AD_FEAT_* bits, from a list of tod, dow, gap */
    K_SECTION,   /* a map of the keys in sub, into the same struct */
    K_LISTENERS, /* the list of listeners */
    K_DETECTOR,  /* the `defaults` map of detector keys */
    K_SERIES,    /* the list of per-series rules */
    K_PATTERNS   /* ad_patterns: a list of relabel.h patterns */
};

/* A map's keys are applied in passes: F_EARLY ones first (scorer, which resets the
 * scorer fields the others then set), then the plain ones, then F_LATE (defaults), then
 * F_LAST (series, which inherit the defaults). */
#define F_EARLY   1u
#define F_LATE    2u
#define F_LAST    4u
#define F_LO_OPEN 8u  /* the lower bound is excluded */
#define F_HI_OPEN 16u /* the upper bound is excluded */

typedef struct ad_key {
    const char *name;
    enum ktype type;
    size_t off;                  /* offset in the struct the table describes */
    size_t size;                 /* K_STR, K_ADDR: buffer bytes */
    double lo, hi;               /* numbers: bounds; K_STR, K_ADDR: lo = minimum length */
    unsigned flags;              /* F_* */
    const char *(*name_of)(int); /* K_ENUM: names by value, NULL past the last */
    const char *def;             /* the default as YAML text; NULL: set elsewhere */
    const struct ad_key *sub;    /* K_SECTION: its keys */
} ad_key;

/* The tables, each ending with a row whose name is NULL: the top level (its sections
 * included), a listener, the detector keys (`defaults` and rules), a rule's own keys. */
extern const ad_key ad_cfg_top_keys[];
extern const ad_key ad_cfg_listener_keys[];
extern const ad_key ad_cfg_detector_keys[];
extern const ad_key ad_cfg_rule_keys[];

/* "tcp", "udp", "unix"; NULL if out of range. */
const char *ad_cfg_transport_name(int transport);

/* The protocols a socket listener speaks, "graphite | influx | ...", into buf: the
 * registry's rows flagged AD_PROTO_F_LISTENER (protocols.h), whatever their order. */
void ad_cfg_listener_protocols(char *buf, size_t n);

/* A YAML null: empty, "~", "null", "Null", "NULL". */
int ad_cfg_is_null(const char *s, size_t len);

/* The 4 or 16 bytes of an address into out[1..], its family (4 or 6) in out[0]; returns
 * 5 or 17, or 0 if s is not an address. */
size_t ad_cfg_addr_bytes(const char *s, unsigned char out[17]);

/* 127.0.0.0/8, ::1 or an IPv4-mapped 127.x address. */
int ad_cfg_is_loopback(const char *s);

/* Sets the field k describes in base from a scalar's text (quoted: it was written as a
 * string). Returns 0, or -AD_EINVAL with the reason in msg (without the key or place). */
int ad_cfg_set_scalar(const ad_key *k, void *base, const char *s, size_t len, int quoted, char *msg,
                      size_t msglen);

/* Fills the fields of a table from its rows' defaults (sections included). 0, or
 * -AD_EINVAL for a bad row (caught by the tests). */
int ad_cfg_table_defaults(const ad_key *keys, void *base);

/* Sets a pattern list from n strings (copied into one allocation; the old one freed).
 * 0 or -AD_ENOMEM. */
int ad_cfg_set_patterns(ad_patterns *out, const char *const *v, int n);

/* ---- the document walk (config_yaml.c) ---- */

typedef struct ad_cfg_walk {
    yaml_document_t *doc;
    const char *name; /* the file, for messages */
    char *err;
    size_t errlen;
    ad_config *c;
} ad_cfg_walk;

/* Writes "file:line:column: message" for node n; returns -AD_EINVAL. */
int ad_cfg_fail_at(ad_cfg_walk *w, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Node i of the document. */
yaml_node_t *ad_cfg_node(ad_cfg_walk *w, int i);

/* "a map", "a list", "nothing" or "a single value", for messages. */
const char *ad_cfg_node_kind(const yaml_node_t *n);

/* A scalar node's text. */
const char *ad_cfg_scalar(const yaml_node_t *n);

/* The value of key `name` in map m, or NULL (m NULL or not a map too); *key gets the key
 * node when key is not NULL. */
yaml_node_t *ad_cfg_lookup(ad_cfg_walk *w, const yaml_node_t *m, const char *name,
                           yaml_node_t **key);

/* Applies the document's root map through the top-level table, every section, listener
 * and rule included. 0 or a negative ad_err with the message in w->err. */
int ad_cfg_apply_root(ad_cfg_walk *w, const yaml_node_t *root);

/* ---- what spans keys (config_check.c) ---- */

/* Refuses what does not fit together in listener i (map m; earlier listeners are
 * c->listeners[0..i-1]). path names it in messages ("listeners[2]"). */
int ad_cfg_check_listener(ad_cfg_walk *w, const yaml_node_t *m, int i, const char *path);

/* Rules across the whole file once it is read: fp16 folded into weights, no
 * unauthenticated API beyond loopback. */
int ad_cfg_check_whole(ad_cfg_walk *w, const yaml_node_t *root);

/* Sets c->follow from the paths the file gives and moves the others under state_dir. */
int ad_cfg_check_state_paths(ad_cfg_walk *w, const yaml_node_t *root);

/* Every Unix socket path (listeners, events.unix), once the paths are final. */
int ad_cfg_check_socket_paths(ad_cfg_walk *w, const yaml_node_t *root);

/* ---- state_dir (config_load.c) ---- */

/* Sets the paths c->follow names to <dir>/name. Returns 0, or -AD_EINVAL with the
 * reason in msg when dir or one of them would not fit (c unchanged). dir may be
 * c->state_dir. */
int ad_cfg_follow_state_dir(ad_config *c, const char *dir, char *msg, size_t msglen);

#endif
