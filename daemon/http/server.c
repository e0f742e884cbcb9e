/*
 * server.c - the HTTP/1.1 server (http.h) on libuv and nodejs' http-parser: the
 * listener, the connections and the responses; request.c gathers each request.
 *
 * The server owns one listening uv_tcp_t and a list of connections. A connection owns
 * two handles, its uv_tcp_t and an idle uv_timer_t, both embedded in struct ad_http_conn;
 * it is freed in the close callback of the second of them. The server is freed once the
 * listener is closed and the last connection freed, then done() is called.
 *
 * Requests are parsed one message at a time: on_message_complete pauses the parser, so
 * http_parser_execute returns right after each message; the request is then handed to
 * the handler (which answers synchronously, queueing a write), the parser is unpaused
 * and the rest of the read buffer parsed. Responses to pipelined requests are therefore
 * queued, and written, in order. Each write request owns its bytes (head, and the body
 * copied or owned) until its callback.
 *
 * request.c gathers the URL and the headers of interest into one growable buffer
 * bounded by AD_HTTP_MAX_HEAD, the body into another, bounded by max_body. A connection
 * that must close after its answer (limits, parse errors, "Connection: close", HTTP/1.0)
 * stops parsing, shuts its write side down once the answer is written and discards what
 * still arrives until the client closes or a short linger expires: closing with unread
 * input would reset the connection and could lose the answer.
 */
#include "http/http_impl.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

/* A queued response: the uv_write_t, then the head, then (when copied) the body. */
struct wreq {
    uv_write_t req; /* req.data = this */
    char *owned;    /* a body to free, or NULL */
    uv_buf_t bufs[2];
    char bytes[];
};

static void conn_close(ad_http_conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static int send_response(ad_http_conn *c, int status, const char *ctype, const char *headers,
                         const void *body, size_t len, char *owned);

/* ---- responses ---- */

static const struct {
    int status;
    const char *text;
} reasons[] = {
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Payload Too Large"},
    {415, "Unsupported Media Type"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {503, "Service Unavailable"},
};

static const char *reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].text;
    return status < 400 ? "OK" : status < 500 ? "Bad Request" : "Server Error";
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = req->data;
    ad_http_conn *c = req->handle->data;
    free(w->owned);
    free(w);
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_ACTIVE) {
        uv_timer_again(&c->timer);
        if (c->read_paused && c->tcp.write_queue_size <= AD_HTTP_MAX_QUEUED / 2) {
            c->read_paused = 0;
            /* a resumed read that fails leaves the idle timer to close the conn */
            (void)uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
    }
}

int ad_http_send_continue(ad_http_conn *c)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct wreq *w = malloc(sizeof(*w) + sizeof(msg));
    if (!w)
        return -AD_ENOMEM;
    memcpy(w->bytes, msg, sizeof(msg) - 1);
    w->owned = NULL;
    w->bufs[0] = uv_buf_init(w->bytes, sizeof(msg) - 1);
    w->req.data = w;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, 1, on_write);
    if (rc < 0) {
        free(w);
        return -AD_EIO;
    }
    return 0;
}

/* Queues the response to the current request; closes after it if !c->keep_alive.
 * owned (if not NULL) is body and is freed once written, or here on failure. */
static int send_response(ad_http_conn *c, int status, const char *ctype, const char *headers,
                         const void *body, size_t len, char *owned)
{
    if (c->state != CONN_ACTIVE) { /* the connection is going: drop the answer */
        free(owned);
        return 0;
    }
    int no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
    int send_body = !no_body && !c->head_method;
    if (no_body)
        len = 0;
    const char *conn_hdr = c->keep_alive ? "" : "Connection: close\r\n";
    if (!headers)
        headers = "";
    size_t hmax = 128 + (ctype ? strlen(ctype) : 0) + strlen(headers) + strlen(conn_hdr);
    size_t copy = (send_body && !owned) ? len : 0;
    struct wreq *w = malloc(sizeof(*w) + hmax + copy);
    if (!w) {
        free(owned);
        return -AD_ENOMEM;
    }
    char *h = w->bytes;
    int n = snprintf(h, hmax, "HTTP/1.1 %d %s\r\n", status, reason(status));
    if (ctype)
        n += snprintf(h + n, hmax - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (!no_body)
        n += snprintf(h + n, hmax - (size_t)n, "Content-Length: %zu\r\n", len);
    n += snprintf(h + n, hmax - (size_t)n, "%s%s\r\n", headers, conn_hdr);
    w->bufs[0] = uv_buf_init(h, (unsigned)n);
    int nbufs = 1;
    w->owned = NULL;
    if (send_body && len) {
        if (owned) {
            w->owned = owned;
            w->bufs[1] = uv_buf_init(owned, (unsigned)len);
        } else {
            memcpy(h + hmax, body, len);
            w->bufs[1] = uv_buf_init(h + hmax, (unsigned)len);
        }
        nbufs = 2;
    } else {
        free(owned);
    }
    w->req.data = w;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, (unsigned)nbufs, on_write);
    if (rc < 0) {
        free(w->owned);
        free(w);
        conn_close(c);
        return 0; /* the answer is dropped with its connection */
    }
    if (c->tcp.write_queue_size > AD_HTTP_MAX_QUEUED && !c->read_paused) {
        c->read_paused = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    return 0;
}

int ad_http_respond(ad_http_conn *conn, int status, const char *content_type, const char *headers,
                    const void *body, size_t len)
{
    if (!conn || !conn->in_handler || conn->responded || (len && !body) || status < 100 ||
        status > 999 || len > UINT32_MAX)
        return -AD_EINVAL;
    conn->responded = 1;
    return send_response(conn, status, content_type, headers, body, len, NULL);
}

int ad_http_respond_owned(ad_http_conn *conn, int status, const char *content_type,
                          const char *headers, char *body, size_t len)
{
    if (!conn || !conn->in_handler || conn->responded || (len && !body) || status < 100 ||
        status > 999 || len > UINT32_MAX) {
        free(body);
        return -AD_EINVAL;
    }
    conn->responded = 1;
    return send_response(conn, status, content_type, headers, body, len, body);
}

/* ---- closing ---- */

static void server_maybe_free(ad_http_server *s)
{
    if (!s->closing || s->listener_open || s->nconns)
        return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    free(s);
    if (done)
        done(arg);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    ad_http_conn *c = h->data;
    if (--c->handles > 0)
        return;
    ad_http_server *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->counted)
        s->stats.open--;
    free(c->hbuf);
    free(c->body);
    free(c);
    server_maybe_free(s);
}

static void conn_close(ad_http_conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    c->state = CONN_CLOSED;
    if (c->budgeted)
        ad_fdbudget_put(c->server->fdb); /* uv_close closes the descriptor now */
    c->budgeted = 0;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    ad_http_conn *c = req->data;
    c->shut = 1;
    if (status < 0 || c->eof)
        conn_close(c);
}

static void on_timer(uv_timer_t *t)
{
    conn_close(t->data);
}

/* After the last answer: stop parsing, shut the write side once the queued answers are
 * written, then wait for the peer's EOF (or the linger) to close. */
static void conn_drain(ad_http_conn *c)
{
    if (c->state != CONN_ACTIVE)
        return;
    c->state = CONN_DRAINING;
    uv_timer_start(&c->timer, on_timer, AD_HTTP_LINGER_MS, 0);
    if (c->read_paused) {
        c->read_paused = 0;
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
            c->eof = 1;
    }
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0)
        conn_close(c);
}

/* ---- serving ---- */

/* Answers with the server's own status and closes after it. */
static void fail(ad_http_conn *c, int status)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
    c->server->stats.bad_requests++;
    c->keep_alive = 0;
    c->head_method = 0;
    send_response(c, status, "text/plain", NULL, body, (size_t)n, NULL);
    conn_drain(c);
}

/* Hands the complete message to the handler; returns its status if the server answers
 * instead (a malformed path), else 0. */
static int dispatch(ad_http_conn *c)
{
    ad_http_server *s = c->server;
    ad_http_req req;

    if (ad_http_req_build(c, &req))
        return 400;
    s->stats.requests++;
    c->head_method = c->parser.method == HTTP_HEAD;
    c->in_handler = 1;
    c->responded = 0;
    s->fn(s->ctx, &req, c);
    c->in_handler = 0;
    if (!c->responded) /* the handler broke its contract */
        send_response(c, 500, "text/plain", NULL, "no response\n", 12, NULL);
    c->head_method = 0;
    return 0;
}

/* Parses data, serving each complete request in turn. */
static void conn_feed(ad_http_conn *c, const char *data, size_t len)
{
    while (len > 0 && c->state == CONN_ACTIVE) {
        size_t n = http_parser_execute(&c->parser, &c->server->settings, data, len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED && c->complete) {
            data += n;
            len -= n;
            http_parser_pause(&c->parser, 0);
            int status = dispatch(c);
            if (status) {
                fail(c, status);
                return;
            }
            if (!c->keep_alive) {
                conn_drain(c);
                return;
            }
            ad_http_req_reset(c);
            continue;
        }
        if (e != HPE_OK) {
            int status = c->fail_status ? c->fail_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
            fail(c, status);
            return;
        }
        if (n < len) { /* stopped without an error: not HTTP any more */
            fail(c, 400);
            return;
        }
        break;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    ad_http_conn *c = h->data;
    ad_http_server *s = c->server;
    (void)suggested;
    if (s->read_busy) { /* not expected: reads are handled one at a time */
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    s->read_busy = 1;
    *buf = uv_buf_init(s->read_buf, sizeof(s->read_buf));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    ad_http_conn *c = st->data;
    ad_http_server *s = c->server;
    if (buf->base == s->read_buf)
        s->read_busy = 0;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->state == CONN_DRAINING && nread == UV_EOF) {
            c->eof = 1;
            if (c->shut)
                conn_close(c);
            return; /* the shutdown callback closes */
        }
        conn_close(c);
        return;
    }
    if (c->state != CONN_ACTIVE)
        return; /* draining: discard */
    uv_timer_again(&c->timer);
    conn_feed(c, buf->base, (size_t)nread);
}

static void format_peer(ad_http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    strcpy(c->peer, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof(c->peer));
    else if (ss.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof(c->peer));
}

static void on_connection(uv_stream_t *l, int status)
{
    ad_http_server *s = l->data;
    if (status < 0) {
        ad_fdbudget_shed(s->fdb, AD_FD_HTTP, l, status); /* EMFILE, ENFILE: shed one */
        return;
    }
    if (s->closing)
        return;
    ad_http_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        /* leave it in the backlog; the next connection retries */
        return;
    }
    c->server = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    if (s->stats.open >= s->max_conns) {
        s->stats.refused++;
        conn_close(c);
        return;
    }
    if (!ad_fdbudget_take(s->fdb, AD_FD_HTTP)) { /* counted there */
        conn_close(c);
        return;
    }
    c->budgeted = 1;
    c->counted = 1;
    s->stats.open++;
    s->stats.connections++;
    format_peer(c);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    ad_http_req_reset(c);
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_timer, s->idle_ms, s->idle_ms);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
        conn_close(c);
}

/* ---- the server ---- */

static int server_start(uv_loop_t *loop, const char *address, int port, int fd, size_t max_body,
                        size_t max_conns, ad_http_handler fn, void *ctx, ad_http_server **out,
                        char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!loop || !address || !fn || !out || port < 0 || port > 65535 || max_conns == 0) {
        if (err)
            snprintf(err, errlen, "http: invalid argument");
        return -AD_EINVAL;
    }
    if (fd < 0 && uv_ip4_addr(address, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(address, port, (struct sockaddr_in6 *)&addr) != 0) {
        if (err)
            snprintf(err, errlen, "http: bad address '%s'", address);
        return -AD_EINVAL;
    }
    ad_http_server *s = calloc(1, sizeof(*s));
    if (!s) {
        if (err)
            snprintf(err, errlen, "http: out of memory");
        return -AD_ENOMEM;
    }
    s->loop = loop;
    s->fn = fn;
    s->ctx = ctx;
    s->max_body = max_body;
    s->max_conns = max_conns;
    s->idle_ms = AD_HTTP_IDLE_MS;
    ad_http_parser_settings(&s->settings);

    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    const char *what = fd >= 0 ? "open passed socket" : "bind";
    rc = fd >= 0 ? uv_tcp_open(&s->listener, fd) : uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0) {
        what = "listen";
        rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    }
    if (rc == 0) {
        struct sockaddr_storage bound;
        int len = sizeof(bound);
        what = "getsockname";
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
        if (rc == 0)
            s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                        : ((struct sockaddr_in *)&bound)->sin_port);
    }
    if (rc < 0) {
        if (err)
            snprintf(err, errlen, "http: %s %s:%d: %s", what, address, port, uv_err_name(rc));
        goto out_close;
    }
    *out = s;
    return 0;

out_close:
    /* freed by the listener's close callback; the caller runs the loop as usual */
    ad_http_server_close(s, NULL, NULL);
    return -AD_EIO;
}

int ad_http_server_start(uv_loop_t *loop, const char *address, int port, size_t max_body,
                         size_t max_conns, ad_http_handler fn, void *ctx, ad_http_server **out,
                         char *err, size_t errlen)
{
    return server_start(loop, address, port, -1, max_body, max_conns, fn, ctx, out, err, errlen);
}

int ad_http_server_start_fd(uv_loop_t *loop, int fd, const char *address, size_t max_body,
                            size_t max_conns, ad_http_handler fn, void *ctx,
                            ad_http_server **out, char *err, size_t errlen)
{
    return server_start(loop, address, 0, fd, max_body, max_conns, fn, ctx, out, err, errlen);
}

int ad_http_server_port(const ad_http_server *s)
{
    return s->port;
}

void ad_http_server_set_fdbudget(ad_http_server *s, ad_fdbudget *b)
{
    s->fdb = b;
}

const ad_http_stats *ad_http_server_stats(const ad_http_server *s)
{
    return &s->stats;
}

static void on_listener_closed(uv_handle_t *h)
{
    ad_http_server *s = h->data;
    s->listener_open = 0;
    server_maybe_free(s);
}

void ad_http_server_close(ad_http_server *s, void (*done)(void *arg), void *arg)
{
    if (!s || s->closing)
        return;
    s->closing = 1;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (ad_http_conn *c = s->conns; c; c = c->next)
        conn_close(c);
}

/* Not in http.h: lets the tests shorten the idle timeout of connections accepted later. */
void ad_http_test_set_idle_ms(ad_http_server *s, uint64_t ms);
void ad_http_test_set_idle_ms(ad_http_server *s, uint64_t ms)
{
    s->idle_ms = ms;
}