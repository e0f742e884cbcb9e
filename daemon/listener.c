/*
 * listener.c - TCP, UDP and Unix stream listeners feeding lines to the daemon's sink.
 */
#include "listener.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linebuf.h"
#include "log.h"

#define READ_CHUNK 65536 /* bytes per read; one buffer shared by every connection */
#define BACKLOG 1024

typedef struct listener listener;

typedef struct conn {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;                  /* h.handle.data = the connection */
    listener *l;
    struct conn *prev, *next;
    ad_linebuf lb;
    char *buf;            /* max_line bytes, for lines split across reads */
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
    int port;
    char *dgram_buf;      /* UDP: max_line bytes for the line framer */
};

struct ad_listeners {
    uv_loop_t *loop;
    ad_ingest_sink sink;
    listener *ls;          /* n entries */
    int n;
    conn *conns;           /* open stream connections */
    size_t max_line;
    size_t max_connections;
    char readbuf[READ_CHUNK];
    int handles;           /* open handles */
    int closing;
    void (*close_done)(void *);
    void *close_arg;
    ad_listener_stats st;
};

static void handle_closed(ad_listeners *ls)
{
    if (--ls->handles == 0 && ls->closing) {
        void (*done)(void *) = ls->close_done;
        void *arg = ls->close_arg;

        free(ls->ls);
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
    ad_listeners *ls = c->l->ls;

    free(c->buf);
    free(c);
    handle_closed(ls);
}

/* Closes a connection; a partial line is delivered when `deliver` (clean end). */
static void conn_close(conn *c, int deliver)
{
    ad_listeners *ls = c->l->ls;

    if (uv_is_closing(&c->h.handle))
        return;
    if (c->buf && ad_linebuf_finish(&c->lb, deliver, on_line, c->l) && !deliver)
        ls->st.truncated++;
    if (c->prev)
        c->prev->next = c->next;
    else
        ls->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ls->st.open--;
    uv_close(&c->h.handle, conn_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ad_listeners *ls;

    (void)suggested;
    if (h->type == UV_UDP)
        ls = ((listener *)h->data)->ls;
    else
        ls = ((conn *)h->data)->l->ls;
    buf->base = ls->readbuf;
    buf->len = sizeof(ls->readbuf);
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = stream->data;
    listener *l = c->l;

    if (nread > 0) {
        l->ls->st.bytes[l->cfg.protocol] += (uint64_t)nread;
        report_too_long(l, ad_linebuf_feed(&c->lb, buf->base, (size_t)nread, on_line, l));
    } else if (nread < 0) {
        conn_close(c, nread == UV_EOF);
    }
}

static void refuse(ad_listeners *ls, uv_stream_t *server)
{
    /* Accept and close at once, so the client sees the refusal instead of a backlog. */
    conn *c = calloc(1, sizeof(*c));

    ls->st.refused++;
    if (!c)
        return;
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
        ad_log_warn("listener %s: accept failed: %s", ad_proto_name(l->cfg.protocol),
                    uv_strerror(status));
        return;
    }
    if (ls->closing)
        return;
    if (ls->st.open >= ls->max_connections) {
        if (ls->st.refused == 0)
            ad_log_warn("listener %s: over max_connections (%zu): refusing new connections "
                        "(counted in anomalyd_connections_refused_total)",
                        ad_proto_name(l->cfg.protocol), ls->max_connections);
        refuse(ls, server);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c || !(c->buf = malloc(ls->max_line))) {
        free(c);
        ad_log_warn("listener: out of memory accepting a connection");
        return;
    }
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
    ls->st.bytes[l->cfg.protocol] += (uint64_t)nread;
    ls->st.datagrams[l->cfg.protocol]++;
    if (flags & UV_UDP_PARTIAL) {
        ls->sink.error(ls->sink.ctx, l->cfg.protocol, AD_PE_TOO_LONG);
        return;
    }
    ad_linebuf_init(&lb, l->dgram_buf, ls->max_line);
    report_too_long(l, ad_linebuf_feed(&lb, buf->base, (size_t)nread, on_line, l));
    ad_linebuf_finish(&lb, 1, on_line, l);
}

static void listener_closed(uv_handle_t *h)
{
    listener *l = h->data;
    ad_listeners *ls = l->ls;

    free(l->dgram_buf);
    l->dgram_buf = NULL;
    handle_closed(ls);
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

static int start_one(ad_listeners *ls, listener *l, char *err, size_t errlen)
{
    const ad_listener_config *c = &l->cfg;
    struct sockaddr_storage sa;
    const char *proto = ad_proto_name(c->protocol);
    int r;

    switch (c->transport) {
    case AD_TRANSPORT_TCP:
        if (parse_addr(c->address, c->port, &sa) < 0)
            goto out_addr;
        uv_tcp_init(ls->loop, &l->h.tcp);
        break;
    case AD_TRANSPORT_UDP:
        if (parse_addr(c->address, c->port, &sa) < 0)
            goto out_addr;
        if (!(l->dgram_buf = malloc(ls->max_line))) {
            snprintf(err, errlen, "out of memory");
            return -AD_ENOMEM;
        }
        uv_udp_init(ls->loop, &l->h.udp);
        break;
    default:
        uv_pipe_init(ls->loop, &l->h.pipe, 0);
        break;
    }
    l->h.handle.data = l;
    l->bound = 1;
    ls->handles++;
    switch (c->transport) {
    case AD_TRANSPORT_TCP:
        r = uv_tcp_bind(&l->h.tcp, (struct sockaddr *)&sa, 0);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&l->h.tcp, BACKLOG, on_connection);
        if (r == 0) {
            l->port = bound_port(&l->h.handle, 0);
            ad_log_info("listening %s tcp %s:%d", proto, c->address, l->port);
        }
        break;
    case AD_TRANSPORT_UDP:
        r = uv_udp_bind(&l->h.udp, (struct sockaddr *)&sa, UV_UDP_REUSEADDR);
        if (r == 0)
            r = uv_udp_recv_start(&l->h.udp, alloc_cb, udp_recv);
        if (r == 0) {
            int size = 4 << 20; /* bursts of datagrams wait in the kernel, not dropped */

            uv_recv_buffer_size(&l->h.handle, &size);
            l->port = bound_port(&l->h.handle, 1);
            ad_log_info("listening %s udp %s:%d", proto, c->address, l->port);
        }
        break;
    default:
        unlink(c->path); /* a stale socket from a previous run */
        r = uv_pipe_bind(&l->h.pipe, c->path);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&l->h.pipe, BACKLOG, on_connection);
        if (r == 0)
            ad_log_info("listening %s unix %s", proto, c->path);
        break;
    }
    if (r < 0) {
        if (c->transport == AD_TRANSPORT_UNIX)
            snprintf(err, errlen, "cannot listen (%s) on %s: %s", proto, c->path,
                     uv_strerror(r));
        else
            snprintf(err, errlen, "cannot listen (%s %s) on %s:%d: %s", proto,
                     c->transport == AD_TRANSPORT_UDP ? "udp" : "tcp", c->address, c->port,
                     uv_strerror(r));
        return -AD_EIO;
    }
    return 0;

out_addr:
    snprintf(err, errlen, "listener %s: '%s' is not an IP address", proto, c->address);
    return -AD_EINVAL;
}

int ad_listeners_start(uv_loop_t *loop, const ad_config *c, const ad_ingest_sink *sink,
                       ad_listeners **out, char *err, size_t errlen)
{
    ad_listeners *ls = calloc(1, sizeof(*ls));
    int r = 0;

    if (!ls || !(ls->ls = calloc((size_t)(c->nlisteners ? c->nlisteners : 1), sizeof(*ls->ls)))) {
        free(ls);
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    ls->loop = loop;
    ls->sink = *sink;
    ls->n = c->nlisteners;
    ls->max_line = c->max_line;
    ls->max_connections = c->max_connections;
    for (int i = 0; i < ls->n && r == 0; i++) {
        ls->ls[i].ls = ls;
        ls->ls[i].cfg = c->listeners[i];
        r = start_one(ls, &ls->ls[i], err, errlen);
    }
    if (r < 0) {
        ad_listeners_close(ls, NULL, NULL);
        return r;
    }
    *out = ls;
    return 0;
}

int ad_listeners_port(const ad_listeners *ls, int i)
{
    return i >= 0 && i < ls->n ? ls->ls[i].port : 0;
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
    while (ls->conns)
        conn_close(ls->conns, 1);
    for (int i = 0; i < ls->n; i++) {
        listener *l = &ls->ls[i];

        if (!l->bound)
            continue;
        if (l->cfg.transport == AD_TRANSPORT_UDP)
            uv_udp_recv_stop(&l->h.udp);
        if (l->cfg.transport == AD_TRANSPORT_UNIX)
            unlink(l->cfg.path);
        uv_close(&l->h.handle, listener_closed);
    }
    if (ls->handles == 0) {
        for (int i = 0; i < ls->n; i++)
            free(ls->ls[i].dgram_buf);
        free(ls->ls);
        free(ls);
        if (done)
            done(arg);
    }
}
