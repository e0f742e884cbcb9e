/*
 * config_check.c - the configuration's rules that span keys: a listener's keys together
 * (protocol and transport, what each transport takes, no two listeners on one address),
 * fp16 against weights, no unauthenticated API beyond loopback, the paths that follow
 * state_dir, and every Unix socket path (it fits, nothing but a socket is there, it is
 * not the store or the events file). Which protocols a listener may speak is the
 * registry's word (protocols.h flags), not the order of its enum.
 */
#include "config_impl.h"

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "sockpath.h"

int ad_cfg_check_listener(ad_cfg_walk *w, const yaml_node_t *m, int i, const char *path)
{
    ad_config *c = w->c;
    ad_listener_config *l = &c->listeners[i];
    yaml_node_t *k = NULL;
    char choices[96];
    const ad_proto_info *pi = ad_proto_info_of(l->protocol);
    int net = l->transport != AD_TRANSPORT_UNIX;

    if (!pi) {
        ad_cfg_listener_protocols(choices, sizeof(choices));
        return ad_cfg_fail_at(w, m, "%s: protocol is required (%s)", path, choices);
    }
    if (l->transport < 0)
        return ad_cfg_fail_at(w, m, "%s: transport is required (tcp | udp | unix)", path);
    if (net && ad_cfg_lookup(w, m, "path", &k))
        return ad_cfg_fail_at(w, k, "%s: path is for unix listeners (this one is %s)", path,
                              ad_cfg_transport_name(l->transport));
    if (!net && (ad_cfg_lookup(w, m, "address", &k) || ad_cfg_lookup(w, m, "port", &k)))
        return ad_cfg_fail_at(w, k, "%s: %s is for tcp and udp listeners (this one is unix)", path,
                              ad_cfg_scalar(k));
    if (l->protocol == AD_PROTO_PROMETHEUS)
        return ad_cfg_fail_at(
            w, m,
            "%s: prometheus is not a socket protocol: Prometheus sends remote "
            "write to the HTTP API (remote_write url http://<http.address>:<http.port>"
            "/api/v1/write; see docs/PROMETHEUS.md)",
            path);
    if (!(pi->flags & AD_PROTO_F_LISTENER)) {
        ad_cfg_listener_protocols(choices, sizeof(choices));
        return ad_cfg_fail_at(w, m, "%s: %s is not a socket protocol (listeners speak %s)", path,
                              pi->name, choices);
    }
    if (!(pi->flags & AD_PROTO_F_PRECISION) && ad_cfg_lookup(w, m, "precision", &k))
        return ad_cfg_fail_at(w, k, "%s: precision is for influx listeners (this one is %s)", path,
                              ad_proto_name(l->protocol));
    if (net && l->port < 0)
        return ad_cfg_fail_at(w, m, "%s: port is required for %s listeners", path,
                              ad_cfg_transport_name(l->transport));
    if (!net && !l->path[0])
        return ad_cfg_fail_at(w, m, "%s: path is required for unix listeners", path);
    for (int j = 0; j < i; j++) {
        const ad_listener_config *o = &c->listeners[j];
        unsigned char a[17], b[17];
        size_t na, nb;
        if (o->transport != l->transport)
            continue;
        if (!net && strcmp(o->path, l->path))
            continue;
        if (net) {
            na = ad_cfg_addr_bytes(l->address, a);
            nb = ad_cfg_addr_bytes(o->address, b);
            if (l->port == 0 || o->port != l->port || na != nb || memcmp(a, b, na))
                continue;
        }
        if (net)
            return ad_cfg_fail_at(w, m, "%s: listeners[%d] already listens on %s %s port %d", path,
                                  j, ad_cfg_transport_name(l->transport), l->address, l->port);
        return ad_cfg_fail_at(w, m, "%s: listeners[%d] already listens on unix path %s", path, j,
                              l->path);
    }
    return 0;
}

int ad_cfg_check_whole(ad_cfg_walk *w, const yaml_node_t *root)
{
    ad_config *c = w->c;
    yaml_node_t *fk = NULL;

    /* fp16 (the old key) folds into weights; both given, they must agree */
    if (ad_cfg_lookup(w, root, "fp16", &fk)) {
        if (ad_cfg_lookup(w, root, "weights", NULL) && c->fp16 != (c->weights == AD_W_F16))
            return ad_cfg_fail_at(
                w, fk,
                "fp16: %s disagrees with weights: %s (fp16: true is the old spelling "
                "of weights: float16; give weights only)",
                c->fp16 ? "true" : "false", ad_wtype_name(c->weights));
        if (c->fp16)
            c->weights = AD_W_F16;
    }
    if (c->http_enabled && !ad_cfg_is_loopback(c->http_address) && !c->http_token[0] &&
        !c->http_allow_unauthenticated) {
        yaml_node_t *http = ad_cfg_lookup(w, root, "http", NULL), *at = NULL;
        const yaml_node_t *where = ad_cfg_lookup(w, http, "address", NULL);
        at = http ? http : (yaml_node_t *)root;
        return ad_cfg_fail_at(w, where ? where : at,
                              "http.address: %s is not a loopback address and http.token is empty: "
                              "anyone who can reach it could read and write the API; set "
                              "http.token, or set http.allow_unauthenticated: true to opt out",
                              c->http_address);
    }
    return 0;
}

/* The paths under state_dir the file does not give follow it (it may come after them). */
int ad_cfg_check_state_paths(ad_cfg_walk *w, const yaml_node_t *root)
{
    ad_config *c = w->c;
    const yaml_node_t *store = ad_cfg_lookup(w, root, "store", NULL);
    const yaml_node_t *events = ad_cfg_lookup(w, root, "events", NULL);
    char msg[512];

    c->follow = AD_FOLLOW_ALL;
    if (ad_cfg_lookup(w, store, "path", NULL))
        c->follow &= ~AD_FOLLOW_STORE_PATH;
    if (ad_cfg_lookup(w, events, "unix", NULL))
        c->follow &= ~AD_FOLLOW_EVENTS_UNIX;
    if (ad_cfg_lookup(w, events, "file", NULL))
        c->follow &= ~AD_FOLLOW_EVENTS_FILE;
    if (ad_cfg_lookup(w, root, "listeners", NULL))
        c->follow &= ~AD_FOLLOW_LISTENER;
    if (ad_cfg_follow_state_dir(c, c->state_dir, msg, sizeof(msg)) < 0) {
        const yaml_node_t *at = ad_cfg_lookup(w, root, "state_dir", NULL);

        return ad_cfg_fail_at(w, at ? at : root, "%s", msg);
    }
    return 0;
}

/* Where a path came from in the file: the node of key `name` in map m, else the
 * state_dir value it follows, else the root. */
static const yaml_node_t *path_node(ad_cfg_walk *w, const yaml_node_t *root, const yaml_node_t *m,
                                    const char *name)
{
    const yaml_node_t *at = ad_cfg_lookup(w, m, name, NULL);

    if (!at)
        at = ad_cfg_lookup(w, root, "state_dir", NULL);
    return at ? at : root;
}

/* One Unix socket path: it fits sun_path, nothing but a socket is there (sockpath.h),
 * and it is not the store or the events file (binding would take their place). */
static int check_socket_path(ad_cfg_walk *w, const yaml_node_t *at, const char *what, const char *p)
{
    ad_config *c = w->c;
    char msg[AD_PATH_MAX + 256];

    if (ad_sockpath_check(p, msg, sizeof(msg)) < 0)
        return ad_cfg_fail_at(w, at, "%s: %s", what, msg);
    if (c->store_enabled && !strcmp(p, c->store_path))
        return ad_cfg_fail_at(w, at, "%s: %s is also store.path", what, p);
    if (c->events_file[0] && !strcmp(p, c->events_file))
        return ad_cfg_fail_at(w, at, "%s: %s is also events.file", what, p);
    return 0;
}

/* Every Unix socket path, once the paths that follow state_dir are set. */
int ad_cfg_check_socket_paths(ad_cfg_walk *w, const yaml_node_t *root)
{
    ad_config *c = w->c;
    const yaml_node_t *ls = ad_cfg_lookup(w, root, "listeners", NULL);
    char what[64];
    int rc;

    for (int i = 0; i < c->nlisteners; i++) {
        const yaml_node_t *m = NULL;

        if (c->listeners[i].transport != AD_TRANSPORT_UNIX)
            continue;
        if (ls && ls->type == YAML_SEQUENCE_NODE &&
            i < (int)(ls->data.sequence.items.top - ls->data.sequence.items.start))
            m = ad_cfg_node(w, ls->data.sequence.items.start[i]);
        snprintf(what, sizeof(what), "listeners[%d].path", i);
        if ((rc = check_socket_path(w, path_node(w, root, m, "path"), what, c->listeners[i].path)))
            return rc;
        if (c->events_unix[0] && !strcmp(c->listeners[i].path, c->events_unix))
            return ad_cfg_fail_at(w, path_node(w, root, m, "path"), "%s: %s is also events.unix",
                                  what, c->events_unix);
    }
    if (c->events_unix[0])
        return check_socket_path(w,
                                 path_node(w, root, ad_cfg_lookup(w, root, "events", NULL), "unix"),
                                 "events.unix", c->events_unix);
    return 0;
}
