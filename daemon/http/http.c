/*
 * http.c - the HTTP/1.1 server (http.h) on libuv and nodejs' http-parser.
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
 * The URL and the three headers of interest are gathered into one growable buffer
 * bounded by AD_HTTP_MAX_HEAD; the body into another, bounded by max_body. A connection
 * that must close after its answer (limits, parse errors, "Connection: close", HTTP/1.0)
 * stops parsing, shuts its write side down once the answer is written and discards what
 * still arrives until the client closes or a short linger expires: closing with unread
 * input would reset the connection and could lose the answer.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "err.h"

#define AD_HTTP_MAX_HEAD   (16 * 1024) /* URL + header names and values, bytes */
#define AD_HTTP_IDLE_MS    60000       /* an idle connection is closed after this */
#define AD_HTTP_LINGER_MS  5000        /* a closing connection waits this for the peer */
#define AD_HTTP_READ_BUF   (64 * 1024) /* the server's one read buffer */
#define AD_HTTP_MAX_QUEUED (1 << 20)   /* reading pauses above this many unwritten bytes */
#define AD_HTTP_FIELD_MAX  32          /* longer header names are of no interest */
#define AD_HTTP_BODY_KEEP  (64 * 1024) /* a larger body buffer is freed between requests */

enum { TOK_URL, TOK_AUTH, TOK_CTYPE, TOK_CENC, TOK_EXPECT, TOK_N, TOK_NONE = -1 };

static const char *const tok_names[TOK_N] = {
    [TOK_AUTH] = "authorization",
    [TOK_CTYPE] = "content-type",
    [TOK_CENC] = "content-encoding",
    [TOK_EXPECT] = "expect", /* "100-continue" is answered before the body */
};

enum conn_state {
    CONN_ACTIVE,   /* parsing requests */
    CONN_DRAINING, /* answered for the last time: input discarded, write side shut */
    CONN_CLOSED    /* uv_close called on both handles */
};

struct ad_http_conn {
    uv_tcp_t tcp;               /* tcp.data = this */
    uv_timer_t timer;           /* idle timeout, then linger; timer.data = this */
    uv_shutdown_t shutdown_req; /* used once, when draining */
    ad_http_server *server;
    struct ad_http_conn *prev, *next; /* the server's list of connections */
    int handles;                      /* handles not yet through their close callback */
    int counted;                      /* counted in stats.open (not a refused connection) */
    int budgeted;                     /* holds a descriptor of the server's budget */
    enum conn_state state;
    int shut, eof;   /* draining: shutdown done, peer's EOF seen */
    int read_paused; /* reading stopped: too many unwritten bytes */

    http_parser parser; /* parser.data = this */
    int complete;       /* on_message_complete ran for the current message */
    int keep_alive;     /* the current message allows another after it */
    int fail_status;    /* a callback's reason to stop: 400, 413 or 431 */
    int in_headers;     /* before on_headers_complete (trailers are not) */
    size_t head_bytes;  /* URL + header bytes of the current message */

    char *hbuf; /* URL and values of interest, each NUL-terminated */
    size_t hlen, hcap;
    int cur_tok;           /* the token being appended to hbuf, or TOK_NONE */
    size_t tok_off[TOK_N]; /* offsets into hbuf */
    size_t tok_len[TOK_N];
    int tok_seen[TOK_N];
    char field[AD_HTTP_FIELD_MAX + 1]; /* the header name being gathered */
    size_t field_len;                  /* > AD_HTTP_FIELD_MAX: too long, ignored */
    int last_was_value;

    char *body; /* body bytes + NUL; capacity bcap */
    size_t blen, bcap;

    int in_handler, responded, head_method;
    char peer[64];
};

struct ad_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener; /* listener.data = this */
    int listener_open;
    ad_http_handler fn;
    void *ctx;
    size_t max_body, max_conns;
    uint64_t idle_ms;
    int port;
    ad_http_stats stats;
    struct ad_http_conn *conns; /* every connection not yet freed */
    size_t nconns;
    int closing;
    void (*done)(void *arg);
    void *done_arg;
    http_parser_settings settings;
    int read_busy; /* read_buf is lent to a read in progress */
    ad_fdbudget *fdb; /* descriptors shared with the other doors, or NULL */
    char read_buf[AD_HTTP_READ_BUF];
};

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

/* ---- percent-decoding ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out (cap bytes, room for a NUL included). '+' becomes a space if
 * plus. Returns the decoded length, -1 if malformed, -2 if it does not fit. out may be s
 * (decoding never lengthens). */
static long pct_decode(const char *s, size_t n, char *out, size_t cap, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return -2;
        out[o++] = ch;
    }
    if (cap == 0)
        return -2;
    out[o] = '\0';
    return (long)o;
}

int ad_http_query_get(const char *query, const char *name, char *out, size_t outcap)
{
    if (!query || !name || (!out && outcap))
        return -AD_EINVAL;
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        char key[256];
        long k = klen < sizeof(key) ? pct_decode(p, klen, key, sizeof(key), 1) : -2;
        if (k >= 0 && (size_t)k == nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : p + plen;
            size_t vlen = eq ? plen - klen - 1 : 0;
            long r = pct_decode(v, vlen, out, outcap, 1);
            if (r == -1)
                return -AD_EFORMAT;
            if (r == -2)
                return -AD_EFULL;
            return (int)r;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return -1;
}

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

/* Queues an interim "100 Continue" (no body, the connection unchanged). */
static int send_continue(ad_http_conn *c)
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

/* ---- gathering a request ---- */

static void req_reset(ad_http_conn *c)
{
    c->complete = 0;
    c->keep_alive = 0;
    c->fail_status = 0;
    c->in_headers = 1;
    c->head_bytes = 0;
    c->hlen = 0;
    c->cur_tok = TOK_NONE;
    memset(c->tok_seen, 0, sizeof(c->tok_seen));
    c->field_len = 0;
    c->last_was_value = 0;
    c->blen = 0;
    if (c->bcap > AD_HTTP_BODY_KEEP) {
        free(c->body);
        c->body = NULL;
        c->bcap = 0;
    }
}

static int hbuf_append(ad_http_conn *c, const char *p, size_t n)
{
    if (c->hlen + n + 1 > c->hcap) {
        size_t cap = c->hcap ? c->hcap : 256;
        while (cap < c->hlen + n + 1)
            cap *= 2;
        char *nb = realloc(c->hbuf, cap);
        if (!nb)
            return -AD_ENOMEM;
        c->hbuf = nb;
        c->hcap = cap;
    }
    memcpy(c->hbuf + c->hlen, p, n);
    c->hlen += n;
    return 0;
}

/* Ends the token being gathered: trims trailing blanks of header values, appends NUL. */
static int tok_finish(ad_http_conn *c)
{
    if (c->cur_tok == TOK_NONE)
        return 0;
    int t = c->cur_tok;
    c->cur_tok = TOK_NONE;
    if (t != TOK_URL)
        while (c->tok_len[t] && (c->hbuf[c->hlen - 1] == ' ' || c->hbuf[c->hlen - 1] == '\t')) {
            c->hlen--;
            c->tok_len[t]--;
        }
    return hbuf_append(c, "", 1);
}

static int head_count(ad_http_conn *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > AD_HTTP_MAX_HEAD) {
        c->fail_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    req_reset(p->data);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    ad_http_conn *c = p->data;
    if (head_count(c, n) < 0)
        return -1;
    if (c->cur_tok != TOK_URL) {
        c->cur_tok = TOK_URL;
        c->tok_off[TOK_URL] = c->hlen;
        c->tok_len[TOK_URL] = 0;
        c->tok_seen[TOK_URL] = 1;
    }
    c->tok_len[TOK_URL] += n;
    return hbuf_append(c, at, n) < 0 ? -1 : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    ad_http_conn *c = p->data;
    if (head_count(c, n) < 0)
        return -1;
    if (c->last_was_value || c->cur_tok == TOK_URL) {
        if (tok_finish(c) < 0)
            return -1;
        c->field_len = 0;
        c->last_was_value = 0;
    }
    if (c->field_len + n <= AD_HTTP_FIELD_MAX)
        memcpy(c->field + c->field_len, at, n);
    c->field_len += n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    ad_http_conn *c = p->data;
    if (head_count(c, n) < 0)
        return -1;
    if (!c->last_was_value) {
        c->last_was_value = 1;
        if (!c->in_headers || c->field_len > AD_HTTP_FIELD_MAX)
            return 0; /* a trailer, or a name too long to be of interest */
        c->field[c->field_len] = '\0';
        for (int t = TOK_AUTH; t < TOK_N; t++) {
            if (strcasecmp(c->field, tok_names[t]) != 0)
                continue;
            if (c->tok_seen[t]) { /* twice: ambiguous */
                c->fail_status = 400;
                return -1;
            }
            c->tok_seen[t] = 1;
            c->cur_tok = t;
            c->tok_off[t] = c->hlen;
            c->tok_len[t] = 0;
        }
    }
    if (c->cur_tok == TOK_NONE)
        return 0;
    c->tok_len[c->cur_tok] += n;
    return hbuf_append(c, at, n) < 0 ? -1 : 0;
}

static int on_headers_complete(http_parser *p)
{
    ad_http_conn *c = p->data;
    if (tok_finish(c) < 0)
        return -1; /* not 1 or 2: those mean "no body" and "upgrade" here */
    c->in_headers = 0;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->server->max_body) {
        c->fail_status = 413;
        return -1;
    }
    const char *expect = c->tok_seen[TOK_EXPECT] ? c->hbuf + c->tok_off[TOK_EXPECT] : NULL;
    if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1 &&
        ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)) &&
        send_continue(c) < 0)
        return -1;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    ad_http_conn *c = p->data;
    size_t max = c->server->max_body;
    if (n > max || c->blen > max - n) {
        c->fail_status = 413;
        return -1;
    }
    if (c->blen + n + 1 > c->bcap) {
        size_t cap = c->bcap ? c->bcap : 1024;
        while (cap < c->blen + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *nb = realloc(c->body, cap);
        if (!nb)
            return -1;
        c->body = nb;
        c->bcap = cap;
    }
    memcpy(c->body + c->blen, at, n);
    c->blen += n;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    ad_http_conn *c = p->data;
    c->complete = 1;
    c->keep_alive =
        http_should_keep_alive(p) && p->http_major == 1 && p->http_minor >= 1 && !p->upgrade;
    http_parser_pause(p, 1); /* execute returns here: one message at a time */
    return 0;
}

/* ---- serving ---- */

static const char *tok(ad_http_conn *c, int t)
{
    return c->tok_seen[t] ? c->hbuf + c->tok_off[t] : NULL;
}

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
    char *url = c->hbuf + c->tok_off[TOK_URL];
    size_t ulen = c->tok_len[TOK_URL];
    struct http_parser_url u;

    if (!c->tok_seen[TOK_URL])
        return 400;
    http_parser_url_init(&u);
    int is_connect = c->parser.method == HTTP_CONNECT;
    if (http_parser_parse_url(url, ulen, is_connect, &u) != 0)
        return 400;
    req.query = "";
    if (u.field_set & (1 << UF_QUERY)) {
        char *q = url + u.field_data[UF_QUERY].off;
        q[u.field_data[UF_QUERY].len] = '\0'; /* over '#', or the NUL already there */
        req.query = q;
    }
    req.path = "/";
    if (u.field_set & (1 << UF_PATH)) {
        char *path = url + u.field_data[UF_PATH].off;
        size_t plen = u.field_data[UF_PATH].len;
        long n = pct_decode(path, plen, path, plen + 1, 0); /* over '?', '#' or NUL */
        if (n < 0 || memchr(path, '\0', (size_t)n))
            return 400;
        req.path = path;
    }
    req.method = http_method_str(c->parser.method);
    req.authorization = tok(c, TOK_AUTH);
    req.content_type = tok(c, TOK_CTYPE);
    req.content_encoding = tok(c, TOK_CENC);
    if (c->body)
        c->body[c->blen] = '\0';
    req.body = c->body ? c->body : "";
    req.body_len = c->blen;
    req.peer = c->peer;

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
            req_reset(c);
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
    req_reset(c);
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
    s->settings.on_message_begin = on_message_begin;
    s->settings.on_url = on_url;
    s->settings.on_header_field = on_header_field;
    s->settings.on_header_value = on_header_value;
    s->settings.on_headers_complete = on_headers_complete;
    s->settings.on_body = on_body;
    s->settings.on_message_complete = on_message_complete;

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
