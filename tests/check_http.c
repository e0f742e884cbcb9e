/*
 * check_http.c - http.c: the server on 127.0.0.1 (port 0) in a private loop run by a
 * second thread, driven by blocking sockets from the test thread. Each test ends by
 * closing the server from the loop thread (an async handle), joining the thread and
 * asserting uv_loop_close() == 0 and that done() ran. The handler echoes what it was
 * given, so the tests see exactly what the server parsed; GET /stats answers the
 * server's counters (read on the loop thread).
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "http/http.h"
#include "net.h"

/* Not in http.h: http.c's hook to shorten the idle timeout. */
void ad_http_test_set_idle_ms(ad_http_server *s, uint64_t ms);

/* ---- the server under test ---- */

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t stop; /* stop.data = this */
    ad_http_server *srv;
    pthread_t thread;
    int port;
    int done_called;
    ad_http_stats last; /* the counters just before closing */
} fixture;

static fixture fx;

/* A descriptor budget for the next server started, with room for next_room connections
 * beyond what the process has open (set before the loop thread starts). */
static ad_fdbudget *next_budget;
static size_t next_room;

static void handler(void *ctx, const ad_http_req *req, ad_http_conn *conn)
{
    fixture *f = ctx;
    if (strcmp(req->path, "/stats") == 0) {
        const ad_http_stats *st = ad_http_server_stats(f->srv);
        char b[256];
        int n = snprintf(b, sizeof(b),
                         "connections=%llu\nrefused=%llu\nrequests=%llu\nbad=%llu\nopen=%llu\n",
                         (unsigned long long)st->connections, (unsigned long long)st->refused,
                         (unsigned long long)st->requests, (unsigned long long)st->bad_requests,
                         (unsigned long long)st->open);
        ck_assert_int_eq(ad_http_respond(conn, 200, "text/plain", NULL, b, (size_t)n), 0);
        return;
    }
    if (strcmp(req->path, "/big") == 0) { /* 8 MiB, owned */
        size_t len = 8u << 20;
        char *b = malloc(len);
        ck_assert_ptr_nonnull(b);
        memset(b, 'x', len);
        ck_assert_int_eq(ad_http_respond_owned(conn, 200, NULL, NULL, b, len), 0);
        return;
    }
    if (strcmp(req->path, "/teapot") == 0) {
        ck_assert_int_eq(ad_http_respond(conn, 429, NULL, "Retry-After: 1\r\n", "", 0), 0);
        ck_assert_int_eq(ad_http_respond(conn, 200, NULL, NULL, "", 0), -AD_EINVAL);
        return;
    }
    size_t cap = 512 + req->body_len;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    int n = snprintf(b, cap,
                     "method=%s\npath=%s\nquery=%s\nauth=%s\nctype=%s\ncenc=%s\npeer=%s\n"
                     "len=%zu\nbody=%s\n",
                     req->method, req->path, req->query,
                     req->authorization ? req->authorization : "(null)",
                     req->content_type ? req->content_type : "(null)",
                     req->content_encoding ? req->content_encoding : "(null)", req->peer,
                     req->body_len, req->body);
    ck_assert_int_eq(ad_http_respond_owned(conn, 200, "text/plain", "X-Test: 1\r\n", b, (size_t)n),
                     0);
}

static void on_done(void *arg)
{
    ((fixture *)arg)->done_called++;
}

static void on_stop(uv_async_t *a)
{
    fixture *f = a->data;
    f->last = *ad_http_server_stats(f->srv);
    ad_http_server_close(f->srv, on_done, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *arg)
{
    fixture *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void srv_start_idle(size_t max_body, size_t max_conns, uint64_t idle_ms)
{
    char err[128];
    memset(&fx, 0, sizeof(fx));
    signal(SIGPIPE, SIG_IGN); /* as the daemon does: a vanished client is EPIPE */
    ck_assert_int_eq(uv_loop_init(&fx.loop), 0);
    ck_assert_int_eq(ad_http_server_start(&fx.loop, "127.0.0.1", 0, max_body, max_conns, handler,
                                          &fx, &fx.srv, err, sizeof(err)),
                     0);
    if (idle_ms)
        ad_http_test_set_idle_ms(fx.srv, idle_ms);
    if (next_budget) {
        ad_fdbudget_measure(next_budget, (size_t)ad_fdlimit_open_count() + AD_FD_KEEP + next_room);
        ad_http_server_set_fdbudget(fx.srv, next_budget);
        next_budget = NULL;
    }
    fx.port = ad_http_server_port(fx.srv);
    ck_assert_int_gt(fx.port, 0);
    ck_assert_int_eq(uv_async_init(&fx.loop, &fx.stop, on_stop), 0);
    fx.stop.data = &fx;
    ck_assert_int_eq(pthread_create(&fx.thread, NULL, loop_thread, &fx), 0);
}

static void srv_start(size_t max_body, size_t max_conns)
{
    srv_start_idle(max_body, max_conns, 0);
}

static void srv_stop(void)
{
    ck_assert_int_eq(uv_async_send(&fx.stop), 0);
    ck_assert_int_eq(pthread_join(fx.thread, NULL), 0);
    ck_assert_int_eq(fx.done_called, 1);
    ck_assert_int_eq(uv_loop_close(&fx.loop), 0);
}

/* ---- a blocking client ---- */

typedef struct client {
    int fd;
    char buf[1 << 16];
    size_t len; /* bytes received, not yet consumed */
} client;

typedef struct resp {
    int status;
    char head[4096];
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
} resp;

static void cl_open(client *c)
{
    struct sockaddr_in a;
    struct timeval tv = {5, 0};
    int one = 1;
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c->fd, 0);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)fx.port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
}

static void cl_close(client *c)
{
    close(c->fd);
    c->fd = -1;
}

static void cl_send(client *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        ck_assert_int_gt(w, 0);
        s += w;
        n -= (size_t)w;
    }
}

static void cl_sends(client *c, const char *s)
{
    cl_send(c, s, strlen(s));
}

/* Receives more bytes; returns how many (0 at EOF, -1 on error or timeout). */
static ssize_t cl_fill(client *c)
{
    ck_assert_uint_lt(c->len, sizeof(c->buf));
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    if (r > 0)
        c->len += (size_t)r;
    return r;
}

static void cl_consume(client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Reads one response (Content-Length framed; none means no body). Returns 0, or -1 if
 * the connection ended first. */
static int cl_read(client *c, resp *r)
{
    char *end;
    memset(r, 0, sizeof(*r));
    for (;;) {
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end)
            break;
        if (cl_fill(c) <= 0)
            return -1;
    }
    size_t hl = (size_t)(end - c->buf) + 4;
    ck_assert_uint_lt(hl, sizeof(r->head));
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    cl_consume(c, hl);
    ck_assert_int_eq(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    const char *cl = strcasestr(r->head, "\r\nContent-Length: ");
    size_t want = cl ? strtoul(cl + 18, NULL, 10) : 0;
    r->body = malloc(want + 1);
    ck_assert_ptr_nonnull(r->body);
    while (r->body_len < want) {
        if (c->len == 0 && cl_fill(c) <= 0) {
            free(r->body);
            r->body = NULL;
            return -1;
        }
        size_t n = c->len < want - r->body_len ? c->len : want - r->body_len;
        memcpy(r->body + r->body_len, c->buf, n);
        r->body_len += n;
        cl_consume(c, n);
    }
    r->body[want] = '\0';
    return 0;
}

static void resp_free(resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Asserts that the server closes the connection (EOF, or a reset) with nothing more. */
static void cl_expect_eof(client *c)
{
    ck_assert_uint_eq(c->len, 0);
    ssize_t r = recv(c->fd, c->buf, sizeof(c->buf), 0);
    ck_assert(r == 0 || (r < 0 && errno == ECONNRESET));
}

/* One request on a fresh connection, its response in r; the connection is closed. */
static void one_shot(const char *req, resp *r)
{
    client *c = malloc(sizeof(*c));
    ck_assert_ptr_nonnull(c);
    cl_open(c);
    cl_sends(c, req);
    ck_assert_int_eq(cl_read(c, r), 0);
    cl_close(c);
    free(c);
}

/* The value of "name=" in a /stats or echo body. */
static unsigned long long field(const char *body, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%s=", name);
    const char *p = strstr(body, key);
    ck_assert_msg(p != NULL, "no %s in %s", name, body);
    return strtoull(p + strlen(key), NULL, 10);
}

static unsigned long long stat_of(const char *name)
{
    resp r;
    one_shot("GET /stats HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    unsigned long long v = field(r.body, name);
    resp_free(&r);
    return v;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Polls /stats until `name` equals v (the server closes asynchronously); 0 if it did. */
static int wait_stat(const char *name, unsigned long long v)
{
    for (int i = 0; i < 200; i++) {
        if (stat_of(name) == v)
            return 0;
        sleep_ms(10);
    }
    return -1;
}

/* ---- requests ---- */

START_TEST(test_get_query_path)
{
    resp r;
    srv_start(1024, 16);
    one_shot("GET /api/v1/series/a%20b%2Fc?x=1&y=a+b%20c HTTP/1.1\r\nHost: t\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "HTTP/1.1 200 OK\r\n"));
    ck_assert_ptr_nonnull(strstr(r.head, "Content-Type: text/plain\r\n"));
    ck_assert_ptr_nonnull(strstr(r.head, "X-Test: 1\r\n"));
    ck_assert_ptr_null(strstr(r.head, "Connection: close"));
    ck_assert_ptr_nonnull(strstr(r.body, "method=GET\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "path=/api/v1/series/a b/c\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "query=x=1&y=a+b%20c\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "peer=127.0.0.1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "len=0\nbody=\n"));
    resp_free(&r);

    /* no query; a fragment is dropped; '+' in a path stays */
    one_shot("GET /a+b#frag HTTP/1.1\r\n\r\n", &r);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/a+b\nquery=\n"));
    resp_free(&r);

    /* absolute form */
    one_shot("GET http://h:1/p%41?q HTTP/1.1\r\n\r\n", &r);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/pA\nquery=q\n"));
    resp_free(&r);
    srv_stop();
    ck_assert_uint_eq(fx.last.requests, 3);
    ck_assert_uint_eq(fx.last.bad_requests, 0);
}
END_TEST

START_TEST(test_bad_escape_in_path)
{
    static const char *const bad[] = {"/a%G1", "/a%2", "/a%", "/a%00b"};
    srv_start(1024, 16);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        client c;
        resp r;
        char req[128];
        snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", bad[i]);
        cl_open(&c);
        cl_sends(&c, req);
        ck_assert_int_eq(cl_read(&c, &r), 0);
        ck_assert_msg(r.status == 400, "%s: %d", bad[i], r.status);
        ck_assert_ptr_nonnull(strstr(r.head, "Connection: close\r\n"));
        resp_free(&r);
        cl_expect_eof(&c);
        cl_close(&c);
    }
    srv_stop();
    ck_assert_uint_eq(fx.last.bad_requests, 4);
    ck_assert_uint_eq(fx.last.requests, 0);
}
END_TEST

START_TEST(test_post_content_length)
{
    resp r;
    srv_start(1024, 16);
    one_shot("POST /w HTTP/1.1\r\nContent-Type: application/json\r\n"
             "content-encoding: gzip  \r\nContent-Length: 11\r\n\r\nhello world",
             &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "method=POST\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "ctype=application/json\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "cenc=gzip\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "len=11\nbody=hello world\n"));
    resp_free(&r);

    /* exactly max_body is accepted */
    char req[2048];
    int n = snprintf(req, sizeof(req), "POST /w HTTP/1.1\r\nContent-Length: 1024\r\n\r\n");
    memset(req + n, 'b', 1024);
    req[n + 1024] = '\0';
    one_shot(req, &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(field(r.body, "len"), 1024);
    resp_free(&r);
    srv_stop();
}
END_TEST

/* A large body grows its buffer from 1 KiB; the next request on the connection starts
 * afresh. */
START_TEST(test_large_body_keep_alive)
{
    enum { BIG = 300 * 1024 + 7 };
    client c;
    resp r;
    char *req = malloc(BIG + 128);
    ck_assert_ptr_nonnull(req);
    srv_start(1 << 20, 16);
    int n = sprintf(req, "PUT /big-body HTTP/1.1\r\nContent-Length: %d\r\n\r\n", BIG);
    for (int i = 0; i < BIG; i++)
        req[n + i] = (char)('a' + i % 26);
    cl_open(&c);
    cl_send(&c, req, (size_t)n + BIG);
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(field(r.body, "len"), BIG);
    const char *b = strstr(r.body, "body=") + 5;
    ck_assert_int_eq(memcmp(b, req + n, BIG), 0);
    resp_free(&r);
    cl_sends(&c, "POST /small HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "method=POST\npath=/small\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "len=2\nbody=hi\n"));
    resp_free(&r);
    cl_close(&c);
    free(req);
    srv_stop();
}
END_TEST

START_TEST(test_chunked_body)
{
    resp r;
    srv_start(1024, 16);
    one_shot("POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
             &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "len=11\nbody=hello world\n"));
    resp_free(&r);
    srv_stop();
}
END_TEST

/* The same request one byte per send: every parser callback resumes across reads, and a
 * header value arrives in pieces. */
START_TEST(test_byte_at_a_time)
{
    static const char req[] = "POST /p%20q?a=1 HTTP/1.1\r\nAuthorization: Bearer abc.def\r\n"
                              "Content-Type: text/x\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    client c;
    resp r;
    srv_start(1024, 16);
    cl_open(&c);
    for (size_t i = 0; i < sizeof(req) - 1; i++) {
        cl_send(&c, req + i, 1);
        if (i % 16 == 0)
            sleep_ms(1);
    }
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/p q\nquery=a=1\nauth=Bearer abc.def\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "ctype=text/x\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "body=abcde\n"));
    resp_free(&r);
    cl_close(&c);
    srv_stop();
}
END_TEST

/* Expect: 100-continue is answered before the body is sent (as curl waits for it). */
START_TEST(test_expect_continue)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    client c;
    resp r;
    srv_start(1024, 16);
    cl_open(&c);
    cl_sends(&c, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    while (c.len < sizeof(cont) - 1)
        ck_assert_int_gt(cl_fill(&c), 0);
    ck_assert_int_eq(memcmp(c.buf, cont, sizeof(cont) - 1), 0);
    cl_consume(&c, sizeof(cont) - 1);
    cl_sends(&c, "hello");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "body=hello\n"));
    resp_free(&r);
    /* too large: 413 instead of 100 */
    cl_sends(&c, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 413);
    resp_free(&r);
    cl_expect_eof(&c);
    cl_close(&c);
    srv_stop();
}
END_TEST

START_TEST(test_authorization)
{
    resp r;
    srv_start(1024, 16);
    one_shot("GET / HTTP/1.1\r\nAUTHORIZATION: Bearer s3cret\r\n\r\n", &r);
    ck_assert_ptr_nonnull(strstr(r.body, "auth=Bearer s3cret\n"));
    resp_free(&r);
    one_shot("GET / HTTP/1.1\r\nX-Authorization: no\r\n\r\n", &r);
    ck_assert_ptr_nonnull(strstr(r.body, "auth=(null)\n"));
    resp_free(&r);

    /* twice is ambiguous: refused */
    one_shot("GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", &r);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    srv_stop();
}
END_TEST

START_TEST(test_head_and_status)
{
    client c;
    resp r;
    srv_start(1024, 16);
    cl_open(&c);
    /* HEAD: the length of the body, no body; the connection stays usable */
    cl_sends(&c, "HEAD /h HTTP/1.1\r\n\r\n");
    while (!memmem(c.buf, c.len, "\r\n\r\n", 4))
        ck_assert_int_gt(cl_fill(&c), 0);
    ck_assert_int_eq(memcmp(c.buf, "HTTP/1.1 200 OK\r\n", 17), 0);
    ck_assert_ptr_nonnull(memmem(c.buf, c.len, "Content-Length: ", 16));
    char *end = memmem(c.buf, c.len, "\r\n\r\n", 4);
    cl_consume(&c, (size_t)(end + 4 - c.buf));
    /* the next answer follows at once: no body came between */
    cl_sends(&c, "GET /teapot HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 429);
    ck_assert_ptr_nonnull(strstr(r.head, "HTTP/1.1 429 Too Many Requests\r\n"));
    ck_assert_ptr_nonnull(strstr(r.head, "Retry-After: 1\r\n"));
    ck_assert_ptr_null(strstr(r.head, "Content-Type"));
    ck_assert_uint_eq(r.body_len, 0);
    resp_free(&r);
    cl_close(&c);
    srv_stop();
}
END_TEST

/* ---- connections ---- */

START_TEST(test_keep_alive)
{
    client c;
    resp r;
    srv_start(1024, 16);
    cl_open(&c);
    cl_sends(&c, "GET /one HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/one\n"));
    resp_free(&r);
    cl_sends(&c, "POST /two HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/two\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "body=xyz\n"));
    resp_free(&r);
    cl_sends(&c, "GET /stats HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_uint_eq(field(r.body, "connections"), 1);
    ck_assert_uint_eq(field(r.body, "requests"), 3);
    resp_free(&r);
    /* Connection: close is honoured */
    cl_sends(&c, "GET /last HTTP/1.1\r\nConnection: close\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.head, "Connection: close\r\n"));
    resp_free(&r);
    cl_expect_eof(&c);
    cl_close(&c);
    srv_stop();
}
END_TEST

START_TEST(test_http10_closes)
{
    client c;
    resp r;
    srv_start(1024, 16);
    cl_open(&c);
    cl_sends(&c, "GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "Connection: close\r\n"));
    resp_free(&r);
    cl_expect_eof(&c);
    cl_close(&c);
    srv_stop();
}
END_TEST

START_TEST(test_pipelined)
{
    client c;
    resp r;
    srv_start(1024, 16);
    cl_open(&c);
    cl_sends(&c, "GET /first HTTP/1.1\r\n\r\nPOST /second HTTP/1.1\r\nContent-Length: 2\r\n\r\n"
                 "ok"
                 "GET /third HTTP/1.1\r\nConnection: close\r\n\r\n"
                 "GET /never HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/first\n"));
    ck_assert_ptr_null(strstr(r.head, "Connection: close"));
    resp_free(&r);
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/second\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "body=ok\n"));
    resp_free(&r);
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/third\n"));
    ck_assert_ptr_nonnull(strstr(r.head, "Connection: close\r\n"));
    resp_free(&r);
    cl_expect_eof(&c); /* /never is not answered */
    cl_close(&c);
    srv_stop();
    ck_assert_uint_eq(fx.last.requests, 3);
}
END_TEST

/* Many pipelined requests whose answers are not read until all are sent. */
START_TEST(test_pipelined_many)
{
    enum { N = 200 };
    client c;
    resp r;
    char *all = malloc(N * 64);
    size_t len = 0;
    ck_assert_ptr_nonnull(all);
    srv_start(1024, 16);
    cl_open(&c);
    for (int i = 0; i < N; i++)
        len += (size_t)sprintf(all + len, "GET /r%d HTTP/1.1\r\n\r\n", i);
    cl_send(&c, all, len);
    for (int i = 0; i < N; i++) {
        char want[32];
        ck_assert_int_eq(cl_read(&c, &r), 0);
        snprintf(want, sizeof(want), "path=/r%d\n", i);
        ck_assert_msg(strstr(r.body, want) != NULL, "response %d: %s", i, r.body);
        resp_free(&r);
    }
    cl_close(&c);
    free(all);
    srv_stop();
    ck_assert_uint_eq(fx.last.requests, N);
}
END_TEST

START_TEST(test_max_conns)
{
    client a, b, extra;
    resp r;
    srv_start(1024, 2);
    cl_open(&a);
    cl_open(&b);
    cl_sends(&a, "GET /a HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&a, &r), 0);
    resp_free(&r);
    cl_sends(&b, "GET /b HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&b, &r), 0);
    resp_free(&r);
    /* a third: accepted by the kernel, closed at once by the server */
    cl_open(&extra);
    cl_expect_eof(&extra);
    cl_close(&extra);
    cl_sends(&a, "GET /stats HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&a, &r), 0);
    ck_assert_uint_eq(field(r.body, "refused"), 1);
    ck_assert_uint_eq(field(r.body, "open"), 2);
    ck_assert_uint_eq(field(r.body, "connections"), 2);
    resp_free(&r);
    /* once one goes, a new connection is served */
    cl_close(&b);
    int ok = 0;
    for (int i = 0; i < 200 && !ok; i++) {
        client c;
        cl_open(&c);
        static const char get_c[] = "GET /c HTTP/1.1\r\n\r\n";
        ssize_t w = send(c.fd, get_c, sizeof(get_c) - 1, MSG_NOSIGNAL);
        if (w == (ssize_t)sizeof(get_c) - 1 && cl_read(&c, &r) == 0) {
            ok = 1;
            ck_assert_ptr_nonnull(strstr(r.body, "path=/c\n"));
            resp_free(&r);
        } else {
            sleep_ms(10);
        }
        cl_close(&c);
    }
    ck_assert(ok);
    cl_close(&a);
    srv_stop();
    ck_assert_uint_ge(fx.last.refused, 1);
}
END_TEST

/* A descriptor budget with room for two connections: a third is closed at once and
 * counted by the budget (not as over max_conns); a connection that goes gives its
 * descriptor back. */
START_TEST(test_fd_budget)
{
    client a, b, extra;
    ad_fdbudget budget;
    resp r;
    int ok = 0;

    ck_assert_int_eq(ad_fdbudget_init(&budget, 0), 0);
    next_budget = &budget;
    next_room = 2;
    srv_start(1024, 100);
    cl_open(&a);
    cl_open(&b);
    cl_sends(&a, "GET /a HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&a, &r), 0);
    resp_free(&r);
    cl_sends(&b, "GET /b HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&b, &r), 0);
    resp_free(&r);
    cl_open(&extra);
    cl_expect_eof(&extra);
    cl_close(&extra);
    cl_close(&b);
    for (int i = 0; i < 200 && !ok; i++) {
        client c;
        static const char get_c[] = "GET /c HTTP/1.1\r\n\r\n";

        cl_open(&c);
        if (send(c.fd, get_c, sizeof(get_c) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(get_c) - 1 &&
            cl_read(&c, &r) == 0) {
            ok = 1;
            resp_free(&r);
        } else {
            sleep_ms(10);
        }
        cl_close(&c);
    }
    ck_assert(ok);
    cl_close(&a);
    srv_stop();
    ck_assert_uint_eq(fx.last.refused, 0);
    ck_assert_uint_ge(budget.refused[AD_FD_HTTP], 1);
    ck_assert_uint_eq(budget.used, 0);
    ad_fdbudget_close(&budget);
}
END_TEST

/* A client that sends half a request and vanishes; one that vanishes mid-response. */
START_TEST(test_client_vanishes)
{
    client c;
    resp r;
    srv_start(1024, 16);
    cl_open(&c);
    cl_sends(&c, "POST /half HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
    sleep_ms(20);
    cl_close(&c);
    cl_open(&c);
    cl_sends(&c, "GET /half-head HTTP/1.1\r\nAuthoriz");
    cl_close(&c);

    cl_open(&c);
    cl_sends(&c, "GET /big HTTP/1.1\r\n\r\n");
    ck_assert_int_gt(cl_fill(&c), 0);
    cl_close(&c); /* with 8 MiB mostly unread: a reset */

    ck_assert_int_eq(wait_stat("open", 1), 0); /* only the /stats connection */
    one_shot("GET /after HTTP/1.1\r\n\r\n", &r);
    ck_assert_ptr_nonnull(strstr(r.body, "path=/after\n"));
    resp_free(&r);
    ck_assert_uint_eq(stat_of("bad"), 0);
    srv_stop();
    ck_assert_uint_eq(fx.last.bad_requests, 0);
}
END_TEST

/* Closing with connections open (idle, mid-request, and mid-response) frees everything:
 * srv_stop asserts done() ran and uv_loop_close() == 0. */
START_TEST(test_close_with_open_conns)
{
    client a, b, c;
    resp r;
    srv_start(1024, 16);
    cl_open(&a);
    cl_sends(&a, "GET /a HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(cl_read(&a, &r), 0);
    resp_free(&r);
    cl_open(&b);
    cl_sends(&b, "POST /b HTTP/1.1\r\nContent-Length: 10\r\n\r\nab");
    cl_open(&c);
    cl_sends(&c, "GET /big HTTP/1.1\r\n\r\n");
    ck_assert_int_eq(wait_stat("open", 4), 0);
    srv_stop();
    ck_assert_uint_ge(fx.last.open, 3); /* and the last /stats one, if not yet gone */
    ck_assert_uint_le(fx.last.open, 4);
    cl_expect_eof(&a);
    cl_expect_eof(&b);
    cl_close(&a);
    cl_close(&b);
    cl_close(&c);
}
END_TEST

START_TEST(test_idle_timeout)
{
    client c;
    srv_start_idle(1024, 16, 100);
    cl_open(&c);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cl_expect_eof(&c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    ck_assert_double_lt(dt, 2.0);
    ck_assert_double_ge(dt, 0.05);
    cl_close(&c);
    srv_stop();
}
END_TEST

/* ---- limits ---- */

START_TEST(test_body_too_large)
{
    client c;
    resp r;
    srv_start(1024, 16);
    /* declared: answered before any body byte */
    cl_open(&c);
    cl_sends(&c, "POST /big HTTP/1.1\r\nContent-Length: 1025\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 413);
    ck_assert_ptr_nonnull(strstr(r.head, "HTTP/1.1 413 Payload Too Large\r\n"));
    ck_assert_ptr_nonnull(strstr(r.head, "Connection: close\r\n"));
    resp_free(&r);
    cl_expect_eof(&c);
    cl_close(&c);

    /* chunked: found while reading, with the rest still arriving */
    cl_open(&c);
    cl_sends(&c, "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[700];
    int n = snprintf(chunk, sizeof(chunk), "200\r\n");
    memset(chunk + n, 'z', 512);
    memcpy(chunk + n + 512, "\r\n", 2);
    for (int i = 0; i < 3; i++)
        cl_send(&c, chunk, (size_t)n + 514);
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 413);
    resp_free(&r);
    cl_expect_eof(&c);
    cl_close(&c);
    srv_stop();
    ck_assert_uint_eq(fx.last.bad_requests, 2);
    ck_assert_uint_eq(fx.last.requests, 0);
}
END_TEST

START_TEST(test_head_too_large)
{
    client c;
    resp r;
    size_t big = 20 * 1024;
    char *req = malloc(big + 128);
    ck_assert_ptr_nonnull(req);
    srv_start(1024, 16);

    int n = sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'h', big);
    strcpy(req + n + big, "\r\n\r\n");
    cl_open(&c);
    cl_sends(&c, req);
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 431);
    ck_assert_ptr_nonnull(strstr(r.head, "HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    resp_free(&r);
    cl_expect_eof(&c);
    cl_close(&c);

    /* a huge URL too */
    n = sprintf(req, "GET /");
    memset(req + n, 'u', big);
    strcpy(req + n + big, " HTTP/1.1\r\n\r\n");
    one_shot(req, &r);
    ck_assert_int_eq(r.status, 431);
    resp_free(&r);

    /* just under the limit is fine */
    n = sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'h', 15 * 1024);
    strcpy(req + n + 15 * 1024, "\r\n\r\n");
    one_shot(req, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    free(req);
    srv_stop();
}
END_TEST

START_TEST(test_garbage)
{
    static const char *const junk[] = {
        "\x01\x02garbage\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "GET / HTTP/9.Z\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    };
    srv_start(1024, 16);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        client c;
        resp r;
        cl_open(&c);
        cl_sends(&c, junk[i]);
        ck_assert_int_eq(cl_read(&c, &r), 0);
        ck_assert_msg(r.status == 400, "junk %zu: %d", i, r.status);
        ck_assert_ptr_nonnull(strstr(r.head, "Connection: close\r\n"));
        resp_free(&r);
        cl_expect_eof(&c);
        cl_close(&c);
    }
    /* garbage after a good request: the good one is answered first */
    client c;
    resp r;
    cl_open(&c);
    cl_sends(&c, "GET /ok HTTP/1.1\r\n\r\n\x01junk\r\n\r\n");
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(cl_read(&c, &r), 0);
    ck_assert_int_eq(r.status, 400);
    resp_free(&r);
    cl_expect_eof(&c);
    cl_close(&c);
    srv_stop();
    ck_assert_uint_eq(fx.last.bad_requests, 5);
}
END_TEST

/* ---- start ---- */

START_TEST(test_start_errors)
{
    uv_loop_t loop;
    ad_http_server *s = NULL, *s2 = NULL;
    char err[128];
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(
        ad_http_server_start(&loop, "not an address", 0, 1, 1, handler, NULL, &s, err, sizeof(err)),
        -AD_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "bad address"));
    ck_assert_int_eq(
        ad_http_server_start(&loop, "127.0.0.1", 0, 1, 0, handler, NULL, &s, err, sizeof(err)),
        -AD_EINVAL);
    ck_assert_int_eq(
        ad_http_server_start(&loop, "127.0.0.1", 0, 1, 1, handler, NULL, &s, err, sizeof(err)), 0);
    /* the same port again: refused with libuv's error name */
    ck_assert_int_eq(ad_http_server_start(&loop, "127.0.0.1", ad_http_server_port(s), 1, 1, handler,
                                          NULL, &s2, err, sizeof(err)),
                     -AD_EIO);
    ck_assert_ptr_nonnull(strstr(err, "EADDRINUSE"));
    ck_assert_ptr_null(s2);
    ad_http_server_close(s, NULL, NULL);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ---- ad_http_query_get ---- */

START_TEST(test_query_get)
{
    char out[16];
    const char *q = "a=1&b=x%20y&c=p+q&d=&e&f=%G1&g=%2&long=0123456789abcdef&%6Bey=v";
    ck_assert_int_eq(ad_http_query_get(q, "a", out, sizeof(out)), 1);
    ck_assert_str_eq(out, "1");
    ck_assert_int_eq(ad_http_query_get(q, "b", out, sizeof(out)), 3);
    ck_assert_str_eq(out, "x y");
    ck_assert_int_eq(ad_http_query_get(q, "c", out, sizeof(out)), 3);
    ck_assert_str_eq(out, "p q");
    ck_assert_int_eq(ad_http_query_get(q, "d", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(ad_http_query_get(q, "e", out, sizeof(out)), 0);
    ck_assert_int_eq(ad_http_query_get(q, "key", out, sizeof(out)), 1);
    ck_assert_str_eq(out, "v");
    ck_assert_int_eq(ad_http_query_get(q, "zz", out, sizeof(out)), -1);
    ck_assert_int_eq(ad_http_query_get(q, "", out, sizeof(out)), -1);
    ck_assert_int_eq(ad_http_query_get("", "a", out, sizeof(out)), -1);
    ck_assert_int_eq(ad_http_query_get(q, "f", out, sizeof(out)), -AD_EFORMAT);
    ck_assert_int_eq(ad_http_query_get(q, "g", out, sizeof(out)), -AD_EFORMAT);
    /* 16 characters need 17 bytes */
    ck_assert_int_eq(ad_http_query_get(q, "long", out, sizeof(out)), -AD_EFULL);
    ck_assert_int_eq(ad_http_query_get(q, "long", out, 0), -AD_EFULL);
    char big[17];
    ck_assert_int_eq(ad_http_query_get(q, "long", big, sizeof(big)), 16);
    ck_assert_str_eq(big, "0123456789abcdef");
    /* a prefix is not a match; the first of two wins */
    ck_assert_int_eq(ad_http_query_get("ab=1&a=2&a=3", "a", out, sizeof(out)), 1);
    ck_assert_str_eq(out, "2");
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *tc;

    tc = tcase_create("query");
    tcase_add_test(tc, test_query_get);
    suite_add_tcase(s, tc);

    tc = tcase_create("start");
    tcase_add_test(tc, test_start_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("requests");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_get_query_path);
    tcase_add_test(tc, test_bad_escape_in_path);
    tcase_add_test(tc, test_post_content_length);
    tcase_add_test(tc, test_large_body_keep_alive);
    tcase_add_test(tc, test_chunked_body);
    tcase_add_test(tc, test_byte_at_a_time);
    tcase_add_test(tc, test_expect_continue);
    tcase_add_test(tc, test_authorization);
    tcase_add_test(tc, test_head_and_status);
    suite_add_tcase(s, tc);

    tc = tcase_create("connections");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_keep_alive);
    tcase_add_test(tc, test_http10_closes);
    tcase_add_test(tc, test_pipelined);
    tcase_add_test(tc, test_pipelined_many);
    tcase_add_test(tc, test_max_conns);
    tcase_add_test(tc, test_fd_budget);
    tcase_add_test(tc, test_client_vanishes);
    tcase_add_test(tc, test_close_with_open_conns);
    tcase_add_test(tc, test_idle_timeout);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_body_too_large);
    tcase_add_test(tc, test_head_too_large);
    tcase_add_test(tc, test_garbage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
