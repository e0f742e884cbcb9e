/*
 * http.h - a small HTTP/1.1 server on libuv, parsing with nodejs' http-parser (Debian's
 * libhttp-parser-dev).
 *
 * One listening TCP handle; each connection parses requests (keep-alive and pipelining:
 * requests on one connection are answered in order), hands each complete request to the
 * handler on the loop thread, and writes the response the handler gives. Limits, each
 * answered with its status and the connection closed after the answer: a request head
 * over 16 KiB (431), a body over max_body (413), a malformed request (400), more than
 * max_conns connections (the new one is closed at once, counted; so is one the descriptor
 * budget refuses, fdlimit.h, counted there; at EMFILE/ENFILE a pending one is shed with
 * the budget's reserve). A connection idle for 60 s is closed. Bodies with
 * Content-Length and chunked transfer encoding are gathered whole before the handler
 * runs. Bound by ad_http_server_start; closed (every connection too) by
 * ad_http_server_close. The process must ignore SIGPIPE (a client gone while its answer
 * is written).
 */
#ifndef AD_HTTP_H
#define AD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "fdlimit.h"

typedef struct ad_http_server ad_http_server;
typedef struct ad_http_conn ad_http_conn;

/* A request, valid only during the handler call. Strings are NUL-terminated. */
typedef struct ad_http_req {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* the URL's path, percent-decoded ("/api/v1/series/a%20b"
                                 gives "/api/v1/series/a b") */
    const char *query;        /* the raw query string after '?', "" if none */
    const char *authorization;/* the Authorization header, or NULL */
    const char *content_type; /* or NULL */
    const char *content_encoding; /* or NULL */
    const char *body;         /* body bytes (NUL-terminated for convenience) */
    size_t body_len;
    const char *peer;         /* the client's address as text */
} ad_http_req;

/* Called once per request. It must call ad_http_respond exactly once before
 * returning. */
typedef void (*ad_http_handler)(void *ctx, const ad_http_req *req, ad_http_conn *conn);

typedef struct ad_http_stats {
    uint64_t connections;     /* accepted and served (the refused not included) */
    uint64_t refused;         /* closed at once: over max_conns */
    uint64_t requests;        /* handed to the handler */
    uint64_t bad_requests;    /* answered 400, 413 or 431 by the server itself */
    uint64_t open;            /* connections open now */
} ad_http_stats;

/* Binds address:port (port 0: any free port; see ad_http_server_port) and starts
 * accepting. Returns 0, or a negative ad_err with a message (a libuv error name when
 * bind or listen failed). After a bind or listen failure the listening handle is left
 * closing: run the loop (it frees itself) before uv_loop_close. max_conns >= 1. */
int ad_http_server_start(uv_loop_t *loop, const char *address, int port, size_t max_body,
                         size_t max_conns, ad_http_handler fn, void *ctx,
                         ad_http_server **out, char *err, size_t errlen);

/* The same on a listening TCP socket already bound (socket activation); address is only
 * for messages. */
int ad_http_server_start_fd(uv_loop_t *loop, int fd, const char *address, size_t max_body,
                            size_t max_conns, ad_http_handler fn, void *ctx,
                            ad_http_server **out, char *err, size_t errlen);

/* The port bound. */
int ad_http_server_port(const ad_http_server *s);

/* Makes connections take their descriptors from b (NULL: no budget); set before the loop
 * runs. */
void ad_http_server_set_fdbudget(ad_http_server *s, ad_fdbudget *b);

const ad_http_stats *ad_http_server_stats(const ad_http_server *s);

/* Closes the listener and every connection; the server is freed once all its handles are
 * closed, after which `done(arg)` is called (done may be NULL). */
void ad_http_server_close(ad_http_server *s, void (*done)(void *arg), void *arg);

/* Answers the current request: status, content type (NULL for none), and body (copied).
 * Extra headers (each "Name: value\r\n") may be given in `headers` or NULL. Returns 0 or
 * -AD_ENOMEM. */
int ad_http_respond(ad_http_conn *conn, int status, const char *content_type,
                    const char *headers, const void *body, size_t len);

/* The same, taking ownership of a malloc'd body (freed once written). */
int ad_http_respond_owned(ad_http_conn *conn, int status, const char *content_type,
                          const char *headers, char *body, size_t len);

/* Looks up `name` in a query string ("a=1&b=x%20y"), percent- and '+'-decoding its
 * value into out (outcap bytes, NUL-terminated). Returns the value's length, -1 if
 * absent, -AD_EFULL if it does not fit, or -AD_EFORMAT if it is malformed (a bad %XX).
 * (-AD_EINVAL is -1: it would be mistaken for "absent".) */
int ad_http_query_get(const char *query, const char *name, char *out, size_t outcap);

#endif
