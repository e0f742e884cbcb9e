/*
 * listener.c - TCP, UDP and Unix stream listeners feeding lines to the daemon's sink.
 */
#include "ingest/listener.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fdlimit.h"
#include "ingest/linebuf.h"
#include "log.h"
#include "sockpath.h"

/* Bytes per stream read; one buffer shared by every connection. Small, so the lines of
 * one read (about 100 Graphite lines) are scored well within a millisecond of their
 * receipt: receipt-to-score latency is bounded by one read's work (docs/BENCHMARKS.md:
 * 16 KiB reads gave a p99 of 2 ms at 10k series, 4 KiB ones 0.5 ms, at the same
 * throughput). */
#define READ_CHUNK 4096
#define READ_AHEAD 32 /* reads of a connection per callback after libuv's own (read_cb) */
/* Bytes per datagram read: the largest UDP payload, so a datagram always arrives whole
 * (one over max_line is still refused as too long). */
#define DGRAM_CHUNK 65536
#define BACKLOG 1024

typedef struct listener listener;

typedef struct conn {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;                  /* h.handle.data = the connection */
    ad_listeners *ls;
    listener *l;          /* its listener (closed before the listener is) */
    struct conn *prev, *next;
    ad_linebuf lb;
    char *buf;            /* max_line bytes, for lines split across reads */
    int budgeted;         /* holds a descriptor of ls->fdb */
} conn;

struct listener {
    union {
        uv_tcp_t tcp;
        uv_udp_t udp;
        uv_pipe_t pipe;
        uv_handle_t handle;
    } h;                  /* h.handle.data = the listener */
    ad_listeners *ls;
    ad_listener_config cfg;
    int bound;            /* handle initialised (must be closed) */
    int own_path;         /* UNIX: bound here (not passed): its file is removed at close */
    unsigned long long path_id[2]; /* UNIX: the bound socket file's device and inode */
    int port;
    size_t dgram_cap;     /* UDP: bytes at dgram_buf */
    char *dgram_buf;      /* UDP: max_line bytes for the line framer */
};

struct ad_listeners {
    uv_loop_t *loop;
    ad_ingest_sink sink;
    ad_fd_source fds;      /* socket activation, or NULL */
    void *fds_ctx;
    listener **v;          /* n running listeners, in configuration order */
    int n;
    conn *conns;           /* open stream connections */
    size_t max_line;
    size_t max_connections;
    char readbuf[READ_CHUNK];
    char dgrambuf[DGRAM_CHUNK];
    int handles;           /* open handles */
    int closing;
    void (*close_done)(void *);
    void *close_arg;
    ad_fdbudget *fdb;      /* descriptors shared with the other doors, or NULL */
    ad_listener_stats st;
};

static void handle_closed(ad_listeners *ls)
{
    if (--ls->handles == 0 && ls->closing) {
        void (*done)(void *) = ls->close_done;
        void *arg = ls->close_arg;

        free(ls->v);
        free(ls);
        if (done)
            done(arg);
    }
}

/* Line framer callback: hand the line to the sink. */
static void on_line(void *ctx, const char *line, size_t len)
{
    listener *l = ctx;
    ad_listeners *ls = l->ls;

    ls->sink.line(ls->sink.ctx, l->cfg.protocol, l->cfg.precision, line, len);
}

static void report_too_long(listener *l, size_t n)
{
    ad_listeners *ls = l->ls;

    while (n--)
        ls->sink.error(ls->sink.ctx, l->cfg.protocol, AD_PE_TOO_LONG);
}

static void conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    ad_listeners *ls = c->ls;

    free(c->buf);
    free(c);
    handle_closed(ls);
}

static void sink_done(ad_listeners *ls)
{
    if (ls->sink.done)
        ls->sink.done(ls->sink.ctx);
}

/* Closes a connection; a partial line is delivered when `deliver` (clean end). */
static void conn_close(conn *c, int deliver)
{
    ad_listeners *ls = c->ls;

    if (uv_is_closing(&c->h.handle))
        return;
    if (c->buf && ad_linebuf_finish(&c->lb, deliver, on_line, c->l) && !deliver)
        ls->st.truncated++;
    sink_done(ls);
    if (c->prev)
        c->prev->next = c->next;
    else
        ls->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ls->st.open--;
    if (c->budgeted)
        ad_fdbudget_put(ls->fdb); /* uv_close closes the descriptor now */
    uv_close(&c->h.handle, conn_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ad_listeners *ls;

    (void)suggested;
    if (h->type == UV_UDP)
        ls = ((listener *)h->data)->ls;
    else
        ls = ((conn *)h->data)->ls;
    if (h->type == UV_UDP) {
        buf->base = ls->dgrambuf;
        buf->len = sizeof(ls->dgrambuf);
    } else {
        buf->base = ls->readbuf;
        buf->len = sizeof(ls->readbuf);
    }
}

/* Bytes of a connection: received, counted, framed into lines for the sink. */
static void take_bytes(conn *c, const char *p, size_t n)
{
    listener *l = c->l;
    ad_listeners *ls = l->ls;

    if (ls->sink.received)
        ls->sink.received(ls->sink.ctx, uv_hrtime());
    ls->st.bytes[l->cfg.protocol] += (uint64_t)n;
    report_too_long(l, ad_linebuf_feed(&c->lb, p, n, on_line, l));
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = stream->data;
    ad_listeners *ls = c->ls;
    uv_os_fd_t fd;

    if (nread < 0) {
        conn_close(c, nread == UV_EOF);
        return;
    }
    if (nread == 0)
        return;
    take_bytes(c, buf->base, (size_t)nread);
    /* The buffer came back full: more bytes are likely waiting. libuv would read them
     * in further callbacks; reading them here instead lets the sink score one read's
     * samples on its helper thread while this one parses the next (sink.more). */
    if ((size_t)nread == sizeof(ls->readbuf) && ls->sink.more &&
        uv_fileno((const uv_handle_t *)stream, &fd) == 0) {
        for (int k = 0; k < READ_AHEAD; k++) {
            ssize_t m;

            ls->sink.more(ls->sink.ctx);
            do
                m = read(fd, ls->readbuf, sizeof(ls->readbuf));
            while (m < 0 && errno == EINTR);
            if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            if (m <= 0) { /* the end (a partial line is delivered) or an error (lost) */
                conn_close(c, m == 0);
                return;
            }
            take_bytes(c, ls->readbuf, (size_t)m);
            if ((size_t)m < sizeof(ls->readbuf))
                break;
        }
    }
    sink_done(ls);
}

/* Accepts and closes at once, so the client sees the refusal instead of a backlog. The
 * caller counted it. */
static void refuse(ad_listeners *ls, uv_stream_t *server)
{
    conn *c = calloc(1, sizeof(*c));

    if (!c)
        return;
    c->ls = ls;
    c->l = server->data;
    if (server->type == UV_TCP)
        uv_tcp_init(ls->loop, &c->h.tcp);
    else
        uv_pipe_init(ls->loop, &c->h.pipe, 0);
    c->h.handle.data = c;
    ls->handles++;
    ls->st.open++; /* conn_close takes it back */
    c->next = ls->conns;
    if (ls->conns)
        ls->conns->prev = c;
    ls->conns = c;
    uv_accept(server, &c->h.stream);
    conn_close(c, 0);
}

static void on_connection(uv_stream_t *server, int status)
{
    listener *l = server->data;
    ad_listeners *ls = l->ls;
    conn *c;

    if (status < 0) {
        if (!ad_fdbudget_shed(ls->fdb, AD_FD_STREAM, server, status))
            ad_log_warn("listener %s: accept failed: %s", ad_proto_name(l->cfg.protocol),
                        uv_strerror(status));
        return;
    }
    if (ls->closing)
        return;
    if (ls->st.open >= ls->max_connections) {
        if (ls->st.refused == 0)
            ad_log_warn("listener %s: over max_connections (%zu): refusing new connections "
                        "(counted in anomalyd_connections_refused_total"
                        "{reason=\"max_connections\"})",
                        ad_proto_name(l->cfg.protocol), ls->max_connections);
        ls->st.refused++;
        refuse(ls, server);
        return;
    }
    if (!ad_fdbudget_take(ls->fdb, AD_FD_STREAM)) { /* counted there */
        refuse(ls, server);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c || !(c->buf = malloc(ls->max_line))) {
        free(c);
        ad_fdbudget_put(ls->fdb);
        ad_log_warn("listener: out of memory accepting a connection");
        return;
    }
    c->budgeted = 1;
    c->ls = ls;
    c->l = l;
    ad_linebuf_init(&c->lb, c->buf, ls->max_line);
    if (server->type == UV_TCP)
        uv_tcp_init(ls->loop, &c->h.tcp);
    else
        uv_pipe_init(ls->loop, &c->h.pipe, 0);
    c->h.handle.data = c;
    ls->handles++;
    ls->st.open++;
    c->next = ls->conns;
    if (ls->conns)
        ls->conns->prev = c;
    ls->conns = c;
    if (uv_accept(server, &c->h.stream) < 0 ||
        uv_read_start(&c->h.stream, alloc_cb, read_cb) < 0) {
        conn_close(c, 0);
        return;
    }
    if (server->type == UV_TCP)
        uv_tcp_nodelay(&c->h.tcp, 1);
    ls->st.accepted++;
}

static void udp_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                     const struct sockaddr *addr, unsigned flags)
{
    listener *l = h->data;
    ad_listeners *ls = l->ls;
    ad_linebuf lb;

    (void)addr;
    if (nread <= 0)
        return; /* 0 with addr NULL: nothing more to read; errors: nothing to do */
    if (ls->sink.received)
        ls->sink.received(ls->sink.ctx, uv_hrtime());
    ls->st.bytes[l->cfg.protocol] += (uint64_t)nread;
    ls->st.datagrams[l->cfg.protocol]++;
    if (flags & UV_UDP_PARTIAL) {
        ls->sink.error(ls->sink.ctx, l->cfg.protocol, AD_PE_TOO_LONG);
        return;
    }
    ad_linebuf_init(&lb, l->dgram_buf, l->dgram_cap);
    report_too_long(l, ad_linebuf_feed(&lb, buf->base, (size_t)nread, on_line, l));
    ad_linebuf_finish(&lb, 1, on_line, l);
    sink_done(ls);
}

static void listener_closed(uv_handle_t *h)
{
    listener *l = h->data;
    ad_listeners *ls = l->ls;

    free(l->dgram_buf);
    free(l);
    handle_closed(ls);
}

/* Closes a listener: its connections first (partial lines delivered), then its socket;
 * the listener is freed in its close callback. One never bound is freed at once. */
static void listener_close(ad_listeners *ls, listener *l)
{
    for (conn *c = ls->conns, *next; c; c = next) {
        next = c->next;
        if (c->l == l)
            conn_close(c, 1);
    }
    if (!l->bound) {
        free(l->dgram_buf);
        free(l);
        return;
    }
    if (l->cfg.transport == AD_TRANSPORT_UDP)
        uv_udp_recv_stop(&l->h.udp);
    if (l->own_path) /* only if the file there is still the socket bound here */
        ad_sockpath_remove(l->cfg.path, l->path_id);
    uv_close(&l->h.handle, listener_closed);
}

static int parse_addr(const char *address, int port, struct sockaddr_storage *sa)
{
    if (uv_ip4_addr(address, port, (struct sockaddr_in *)sa) == 0)
        return 0;
    return uv_ip6_addr(address, port, (struct sockaddr_in6 *)sa);
}

static int bound_port(uv_handle_t *h, int udp)
{
    struct sockaddr_storage sa;
    int len = sizeof(sa);

    if ((udp ? uv_udp_getsockname((uv_udp_t *)h, (struct sockaddr *)&sa, &len)
             : uv_tcp_getsockname((uv_tcp_t *)h, (struct sockaddr *)&sa, &len)) < 0)
        return 0;
    if (sa.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    return ntohs(((struct sockaddr_in *)&sa)->sin_port);
}

static const char *const transport_names[] = {"tcp", "udp", "unix"};

/* Binds (or adopts a socket passed by the service manager for) one listener. */
static int start_one(ad_listeners *ls, listener *l, char *err, size_t errlen)
{
    const ad_listener_config *c = &l->cfg;
    const char *proto = ad_proto_name(c->protocol);
    const char *tname = transport_names[c->transport];
    struct sockaddr_storage sa;
    char name[32];
    int fd = -1, r;

    snprintf(name, sizeof(name), "%s-%s", proto, tname);
    if (ls->fds)
        fd = ls->fds(ls->fds_ctx, name);
    if (fd < 0 && c->transport != AD_TRANSPORT_UNIX && parse_addr(c->address, c->port, &sa) < 0) {
        snprintf(err, errlen, "listener %s: '%s' is not an IP address", name, c->address);
        return -AD_EINVAL;
    }
    if (c->transport == AD_TRANSPORT_UDP) {
        l->dgram_cap = ls->max_line;
        if (!(l->dgram_buf = malloc(l->dgram_cap))) {
            snprintf(err, errlen, "out of memory");
            return -AD_ENOMEM;
        }
    }
    if (c->transport == AD_TRANSPORT_TCP)
        uv_tcp_init(ls->loop, &l->h.tcp);
    else if (c->transport == AD_TRANSPORT_UDP)
        uv_udp_init(ls->loop, &l->h.udp);
    else
        uv_pipe_init(ls->loop, &l->h.pipe, 0);
    l->h.handle.data = l;
    l->bound = 1;
    ls->handles++;

    if (fd >= 0) {
        if (c->transport == AD_TRANSPORT_TCP)
            r = uv_tcp_open(&l->h.tcp, fd);
        else if (c->transport == AD_TRANSPORT_UDP)
            r = uv_udp_open(&l->h.udp, fd);
        else
            r = uv_pipe_open(&l->h.pipe, fd);
    } else if (c->transport == AD_TRANSPORT_TCP) {
        r = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&sa, 0);
    } else if (c->transport == AD_TRANSPORT_UDP) {
        r = uv_udp_bind(&l->h.udp, (struct sockaddr *)&sa, UV_UDP_REUSEADDR);
    } else {
        /* Only a stale socket is removed; anything else there is refused (sockpath.h). */
        if ((r = ad_sockpath_prepare(c->path, err, errlen)) < 0)
            return r;
        r = uv_pipe_bind(&l->h.pipe, c->path);
        if (r == 0)
            l->own_path = ad_sockpath_id(c->path, l->path_id) == 0;
    }
    if (r == 0) {
        if (c->transport == AD_TRANSPORT_UDP) {
            int size = 4 << 20; /* bursts of datagrams wait in the kernel, not dropped */

            r = uv_udp_recv_start(&l->h.udp, alloc_cb, udp_recv);
            uv_recv_buffer_size(&l->h.handle, &size);
        } else {
            r = uv_listen((uv_stream_t *)&l->h.handle, BACKLOG, on_connection);
        }
    }
    if (r < 0) {
        if (fd >= 0)
            snprintf(err, errlen, "cannot use the socket passed as %s: %s", name,
                     uv_strerror(r));
        else if (c->transport == AD_TRANSPORT_UNIX)
            snprintf(err, errlen, "cannot listen (%s) on %s: %s", name, c->path, uv_strerror(r));
        else
            snprintf(err, errlen, "cannot listen (%s) on %s:%d: %s", name, c->address, c->port,
                     uv_strerror(r));
        return -AD_EIO;
    }
    if (c->transport == AD_TRANSPORT_UNIX) {
        ad_log_info("listening %s unix %s%s", proto, c->path, fd >= 0 ? " (passed)" : "");
    } else {
        l->port = bound_port(&l->h.handle, c->transport == AD_TRANSPORT_UDP);
        ad_log_info("listening %s %s %s:%d%s", proto, tname, c->address, l->port,
                    fd >= 0 ? " (passed)" : "");
    }
    return 0;
}

/* A new listener for a configuration entry, started. NULL (and a message) on failure;
 * a failed listener closes itself. */
static listener *listener_new(ad_listeners *ls, const ad_listener_config *c, char *err,
                              size_t errlen)
{
    listener *l = calloc(1, sizeof(*l));

    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->ls = ls;
    l->cfg = *c;
    if (start_one(ls, l, err, errlen) < 0) {
        listener_close(ls, l);
        return NULL;
    }
    return l;
}

static int same_listener(const ad_listener_config *a, const ad_listener_config *b)
{
    return a->protocol == b->protocol && a->transport == b->transport &&
           a->precision == b->precision &&
           (a->transport == AD_TRANSPORT_UNIX
                ? !strcmp(a->path, b->path)
                : !strcmp(a->address, b->address) && a->port == b->port);
}

int ad_listeners_start(uv_loop_t *loop, const ad_config *c, const ad_ingest_sink *sink,
                       ad_fd_source fds, void *fds_ctx, ad_listeners **out, char *err,
                       size_t errlen)
{
    ad_listeners *ls = calloc(1, sizeof(*ls));

    if (!ls || !(ls->v = calloc((size_t)(c->nlisteners ? c->nlisteners : 1), sizeof(*ls->v)))) {
        free(ls);
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    ls->loop = loop;
    ls->sink = *sink;
    ls->fds = fds;
    ls->fds_ctx = fds_ctx;
    ls->max_line = c->max_line;
    ls->max_connections = c->max_connections;
    for (int i = 0; i < c->nlisteners; i++) {
        listener *l = listener_new(ls, &c->listeners[i], err, errlen);

        if (!l) {
            ad_listeners_close(ls, NULL, NULL);
            return -AD_EIO;
        }
        ls->v[ls->n++] = l;
    }
    *out = ls;
    return 0;
}

int ad_listeners_reconcile(ad_listeners *ls, const ad_config *c, char *err, size_t errlen)
{
    listener **v = calloc((size_t)(c->nlisteners ? c->nlisteners : 1), sizeof(*v));
    int n = 0, rc = 0;

    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    ls->max_line = c->max_line;
    ls->max_connections = c->max_connections;
    for (int i = 0; i < c->nlisteners; i++) {
        listener *l = NULL;

        for (int j = 0; j < ls->n; j++) {
            if (ls->v[j] && same_listener(&ls->v[j]->cfg, &c->listeners[i])) {
                l = ls->v[j];
                ls->v[j] = NULL;
                break;
            }
        }
        if (!l) {
            char e[512];

            l = listener_new(ls, &c->listeners[i], e, sizeof(e));
            if (!l) {
                if (rc == 0)
                    snprintf(err, errlen, "%s", e);
                rc = -AD_EIO;
                continue;
            }
        }
        v[n++] = l;
    }
    for (int j = 0; j < ls->n; j++) {
        if (ls->v[j]) {
            const ad_listener_config *o = &ls->v[j]->cfg;

            if (o->transport == AD_TRANSPORT_UNIX)
                ad_log_info("closing listener %s unix %s", ad_proto_name(o->protocol), o->path);
            else
                ad_log_info("closing listener %s %s %s:%d", ad_proto_name(o->protocol),
                            transport_names[o->transport], o->address, ls->v[j]->port);
            listener_close(ls, ls->v[j]);
        }
    }
    free(ls->v);
    ls->v = v;
    ls->n = n;
    return rc;
}

int ad_listeners_count(const ad_listeners *ls)
{
    return ls->n;
}

int ad_listeners_port(const ad_listeners *ls, int i)
{
    return i >= 0 && i < ls->n ? ls->v[i]->port : 0;
}

void ad_listeners_set_fdbudget(ad_listeners *ls, ad_fdbudget *b)
{
    ls->fdb = b;
}

const ad_listener_stats *ad_listeners_get_stats(const ad_listeners *ls)
{
    return &ls->st;
}

void ad_listeners_close(ad_listeners *ls, void (*done)(void *arg), void *arg)
{
    ls->closing = 1;
    ls->close_done = done;
    ls->close_arg = arg;
    for (int i = 0; i < ls->n; i++)
        listener_close(ls, ls->v[i]);
    ls->n = 0;
    while (ls->conns) /* refused connections not yet closed */
        conn_close(ls->conns, 1);
    if (ls->handles == 0) {
        free(ls->v);
        free(ls);
        if (done)
            done(arg);
    }
}
