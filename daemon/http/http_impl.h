/*
 * http_impl.h - what the two halves of the HTTP server share, for them only (other
 * modules include http/http.h): server.c owns the listener, the connections, their
 * handles and the responses; request.c gathers a request from http-parser's callbacks
 * and percent-decodes.
 */
#ifndef AD_HTTP_IMPL_H
#define AD_HTTP_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include <http_parser.h>

#include "http/http.h"

#define AD_HTTP_MAX_HEAD   (16 * 1024) /* URL + header names and values, bytes */
#define AD_HTTP_IDLE_MS    60000       /* an idle connection is closed after this */
#define AD_HTTP_LINGER_MS  5000        /* a closing connection waits this for the peer */
#define AD_HTTP_READ_BUF   (64 * 1024) /* the server's one read buffer */
#define AD_HTTP_MAX_QUEUED (1 << 20)   /* reading pauses above this many unwritten bytes */
#define AD_HTTP_FIELD_MAX  32          /* longer header names are of no interest */
#define AD_HTTP_BODY_KEEP  (64 * 1024) /* a larger body buffer is freed between requests */

/* What a connection gathers into hbuf: the URL and the headers of interest. */
enum { TOK_URL, TOK_AUTH, TOK_CTYPE, TOK_CENC, TOK_EXPECT, TOK_N, TOK_NONE = -1 };

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

/* ---- request.c ---- */

/* Fills the parser callbacks that gather a request into its connection. */
void ad_http_parser_settings(http_parser_settings *s);

/* Forgets the request gathered so far (a new message begins). */
void ad_http_req_reset(ad_http_conn *c);

/* The complete message as the handler sees it: the URL parsed, the path percent-decoded
 * in place, the headers of interest, the body NUL-terminated. 0, or 400 when the URL or
 * its path is malformed. req points into c until the next message. */
int ad_http_req_build(ad_http_conn *c, ad_http_req *req);

/* ---- server.c ---- */

/* Queues an interim "100 Continue" (no body, the connection unchanged). 0, -AD_ENOMEM or
 * -AD_EIO. */
int ad_http_send_continue(ad_http_conn *c);

#endif
