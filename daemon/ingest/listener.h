/*
 * listener.h - the ingestion sockets: TCP, UDP and Unix stream listeners, one per
 * configured entry, each speaking one protocol.
 *
 * Stream connections (TCP, Unix) are split into lines by a per-connection line buffer
 * (linebuf.h) of max_line bytes; each UDP datagram is split into lines on its own. Every
 * line is handed to the sink with the listener's protocol; the sink parses it. Lines
 * over max_line are dropped and reported to the sink as AD_PE_TOO_LONG; the connection
 * goes on. A client that closes cleanly after a last line without a newline still has
 * that line delivered; one whose connection fails mid-line loses only that partial line
 * (counted as truncated). Beyond max_connections open stream connections a new one is
 * accepted and closed at once (counted); so is one the descriptor budget refuses
 * (fdlimit.h: counted there), and at EMFILE/ENFILE a pending one is shed with the
 * budget's reserve.
 */
#ifndef AD_LISTENER_H
#define AD_LISTENER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "fdlimit.h"

typedef struct ad_ingest_sink {
    /* One line from a client of a listener speaking `proto` (precision: Influx's). */
    void (*line)(void *ctx, int proto, int precision, const char *line, size_t len);
    /* A line refused before parsing (reason: AD_PE_TOO_LONG). */
    void (*error)(void *ctx, int proto, int reason);
    /* Bytes arrived (a read or a datagram) at uv_hrtime() `ns`; the lines they hold
     * follow. For latency from receipt to score. May be NULL. */
    void (*received)(void *ctx, uint64_t ns);
    /* Every line of those bytes (or of a connection's last partial line) was handed
     * over. May be NULL. */
    void (*done)(void *ctx);
    /* As done, when the listener is about to read more bytes of the same connection at
     * once: the sink may leave work running that its next done (or more) finishes, and
     * done always follows before the listener's callback returns. May be NULL. */
    void (*more)(void *ctx);
    void *ctx;
} ad_ingest_sink;

typedef struct ad_listener_stats {
    uint64_t accepted;   /* stream connections accepted */
    uint64_t refused;    /* over max_connections (the descriptor budget counts its own) */
    uint64_t truncated;  /* partial lines lost to a failed connection */
    size_t open;         /* stream connections open now */
    uint64_t bytes[AD_PROTO_N];     /* received, by protocol */
    uint64_t datagrams[AD_PROTO_N]; /* UDP datagrams received, by protocol */
} ad_listener_stats;

typedef struct ad_listeners ad_listeners;

/* Takes a listening socket passed by the service manager for a name, or -1 (socket
 * activation: see sd.h). A listener asks for "<protocol>-<transport>" (graphite-tcp,
 * statsd-udp, jsonl-unix, ...); a socket taken this way is used instead of binding. */
typedef int (*ad_fd_source)(void *ctx, const char *name);

/* Binds every configured listener (fds may be NULL: always bind). Returns 0, or a
 * negative ad_err with a message naming the listener that failed (nothing stays bound
 * then; run the loop to let the handles close). */
int ad_listeners_start(uv_loop_t *loop, const ad_config *c, const ad_ingest_sink *sink,
                       ad_fd_source fds, void *fds_ctx, ad_listeners **out, char *err,
                       size_t errlen);

/* Makes the running listeners those of a new configuration (reload): a listener whose
 * settings are unchanged keeps its socket and connections; one no longer configured is
 * closed with its connections (their partial lines delivered); a new one is bound.
 * max_line and max_connections change for new connections. Returns 0, or a negative
 * ad_err when a new listener cannot bind (the message names it; the others, old and
 * new, stay as they are). */
int ad_listeners_reconcile(ad_listeners *ls, const ad_config *c, char *err, size_t errlen);

/* Listeners running, and the port listener i (in configuration order) is bound to; 0
 * for Unix sockets. */
int ad_listeners_count(const ad_listeners *ls);
int ad_listeners_port(const ad_listeners *ls, int i);

/* Makes stream connections take their descriptors from b (NULL: no budget); set before
 * the loop runs. */
void ad_listeners_set_fdbudget(ad_listeners *ls, ad_fdbudget *b);

const ad_listener_stats *ad_listeners_get_stats(const ad_listeners *ls);

/* Stops accepting and reading: closes every listener and connection. A partial line
 * waiting in a connection is delivered first (the client's bytes are not lost at
 * stop). Frees itself once every handle is closed, then calls done(arg). */
void ad_listeners_close(ad_listeners *ls, void (*done)(void *arg), void *arg);

#endif
