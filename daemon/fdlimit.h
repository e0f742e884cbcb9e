/*
 * fdlimit.h - file descriptors: RLIMIT_NOFILE checked (and raised) at start, and a
 * budget the connections share so that the daemon never runs out of them itself.
 *
 * What libuv does (1.44, src/unix/stream.c, uv__server_io): it keeps one spare
 * descriptor per loop (/dev/null, opened with the loop's first stream). When accept(2)
 * fails with EMFILE or ENFILE it closes the spare, accepts and closes every pending
 * connection, reopens the spare and returns without calling the connection callback:
 * the clients are shed silently (a /healthz request with them), nothing is logged or
 * counted. The callback sees UV_EMFILE/UV_ENFILE only when that spare is gone (another
 * thread took the descriptor it freed), and uv__server_io then retries the accept at once.
 *
 * So anomalyd keeps away from the limit instead of relying on that: every connection
 * (a listener's stream client, an HTTP client, an events subscriber) takes a descriptor
 * from the budget when accepted and gives it back when closed. A stream client or a
 * subscriber is refused (accepted and closed at once, counted, logged at most once a
 * minute) when fewer than AD_FD_KEEP_HTTP + AD_FD_KEEP descriptors would be left, an HTTP
 * client when fewer than AD_FD_KEEP would: /healthz and /metrics stay reachable while
 * clients hold every descriptor they may have, and the store, the events file and
 * libuv's spare keep theirs, so libuv's silent shedding stays a last resort. For a
 * callback that does see EMFILE/ENFILE, the budget keeps a reserve descriptor of its own:
 * ad_fdbudget_shed closes it, accepts and closes one pending connection, reopens it.
 *
 * Single-threaded: the loop thread only.
 */
#ifndef AD_FDLIMIT_H
#define AD_FDLIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

#define AD_FD_KEEP 8           /* never taken by a connection: store, files, spares */
#define AD_FD_KEEP_HTTP 16     /* besides: what stream clients and subscribers leave for
                                  HTTP (/healthz, /metrics, remote write) */
#define AD_FD_SUBSCRIBERS 64   /* event subscribers allowed for in the need (no cap) */
#define AD_FD_FIXED 32         /* stdio, the loop's own, the store's 3, the events file,
                                  libuv's spare and the budget's reserve, with room */

/* The descriptors a configuration may hold at once. */
typedef struct ad_fd_need {
    size_t stream;      /* max_connections: the listeners' stream clients */
    size_t http;        /* max_connections: the HTTP server's clients */
    size_t subscribers; /* AD_FD_SUBSCRIBERS */
    size_t sockets;     /* listening sockets and UDP sockets: listeners, HTTP, events */
    size_t fixed;       /* AD_FD_FIXED + AD_FD_KEEP + AD_FD_KEEP_HTTP */
    size_t total;
} ad_fd_need;

void ad_fdlimit_need(const ad_config *c, ad_fd_need *n);

/* Raises RLIMIT_NOFILE's soft limit to min(need, hard limit) when it is below need.
 * *was and *now are the soft limit before and after, *hard the hard limit. Returns 0
 * when the soft limit now covers need, -AD_EFULL when the hard limit is below need
 * (raised to the hard limit), -AD_EIO when the limit cannot be read or set. */
int ad_fdlimit_raise(size_t need, size_t *was, size_t *now, size_t *hard);

/* ad_fdlimit_need and ad_fdlimit_raise for a configuration, logged: an info line when
 * the soft limit was raised, a warning with the numbers when even the hard limit is
 * below the need. Returns the soft limit in force (0: unknown). */
size_t ad_fdlimit_apply(const ad_config *c);

/* Descriptors the process has open now (counts /proc/self/fd), or -1. */
long ad_fdlimit_open_count(void);

/* Who takes a descriptor from the budget. */
enum ad_fd_class {
    AD_FD_STREAM = 0,   /* a listener's stream client */
    AD_FD_HTTP,         /* an HTTP client */
    AD_FD_SUBSCRIBER,   /* an events subscriber */
    AD_FD_NCLASSES
};

typedef struct ad_fdbudget {
    size_t limit;       /* RLIMIT_NOFILE's soft limit; 0: no budget (every take passes) */
    size_t base;        /* descriptors open besides the connections (measured) */
    size_t used;        /* connections holding one now */
    int reserve;        /* a descriptor on /dev/null for ad_fdbudget_shed, or -1 */
    uint64_t refused[AD_FD_NCLASSES]; /* refused: the budget was spent */
    uint64_t shed[AD_FD_NCLASSES];    /* shed at EMFILE/ENFILE with the reserve */
    uint64_t warned[AD_FD_NCLASSES];  /* uv_hrtime() of the last warning, 0: none */
} ad_fdbudget;

/* Opens the reserve and measures the base (call once every socket is bound). limit 0
 * (unknown) makes a budget that never refuses. Returns 0 or -AD_EIO (no reserve: the
 * budget still works, shedding cannot). */
int ad_fdbudget_init(ad_fdbudget *b, size_t limit);

/* Measures the base again (after a reload bound or closed sockets) with a new limit. */
void ad_fdbudget_measure(ad_fdbudget *b, size_t limit);

/* Takes a descriptor for a connection of class cls just accepted: 1, or 0 when the budget
 * is spent (counted, a warning at most once a minute per class: the caller closes the
 * connection). NULL b: always 1. */
int ad_fdbudget_take(ad_fdbudget *b, int cls);

/* Gives one back (the connection's descriptor was closed). NULL b: nothing. */
void ad_fdbudget_put(ad_fdbudget *b);

/* A listening socket's accept failed with `status` (its connection callback's): for
 * UV_EMFILE or UV_ENFILE, sheds one pending connection with the reserve (counted,
 * warned at most once a minute per class). Other statuses are left to the caller.
 * Returns 1 when it was EMFILE or ENFILE (NULL b: nothing is shed), else 0. */
int ad_fdbudget_shed(ad_fdbudget *b, int cls, uv_stream_t *server, int status);

/* Closes the reserve. */
void ad_fdbudget_close(ad_fdbudget *b);

/* Names for metric labels: "stream", "http", "subscriber". */
const char *ad_fd_class_name(int cls);

#endif
