/*
 * core_harness.h - what the Check suites of the daemon's core share (check_daemon.c,
 * check_metrics.c): a real daemon (daemon.h) started on its own libuv loop from a YAML
 * configuration built in the test, in a temporary state_dir, stopped and freed with every
 * handle closed; an HTTP client that talks to its server on loopback from a thread while
 * the loop runs; and a remote-write body (protobuf, snappy) built by hand. Failures are
 * Check assertions, so these run inside a test only.
 */
#ifndef AD_CORE_HARNESS_H
#define AD_CORE_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon.h"

typedef struct ch_daemon {
    uv_loop_t loop;
    ad_daemon *d;
    char dir[256];   /* the temporary state_dir */
} ch_daemon;

/* Starts a daemon on h->loop: state_dir a new temporary directory, no listeners, no event
 * sinks, then `extra` YAML (top-level keys, NULL for none), then, unless extra has its
 * own, HTTP on 127.0.0.1 at a free port and no store. */
void ch_start(ch_daemon *h, const char *extra);

/* The same with a given state_dir (kept: for a restart on the same store). */
void ch_start_in(ch_daemon *h, const char *dir, const char *extra);

/* Stops the daemon, runs the loop until it ends, frees it and closes the loop (asserting
 * every handle closed). Removes the state_dir unless keep. */
void ch_stop(ch_daemon *h, int keep);

/* A line through the ingest door as a listener gives it: receipt now, the line, a flush.
 * Returns ad_daemon_line's answer. */
int ch_line(ch_daemon *h, int proto, const char *line);

/* The HTTP server's port. */
int ch_port(const ch_daemon *h);

/* An HTTP exchange with the daemon's server from a thread while this one runs the loop:
 * `head` is the request line and headers after which Content-Length and Connection:
 * close are added, then body (len bytes). Returns the status; the response body
 * (malloc'd, NUL-terminated) in *resp unless resp is NULL. */
int ch_http(ch_daemon *h, const char *head, const void *body, size_t len, char **resp);

/* The same, with the response's head too (status line and headers, malloc'd) in *rhead
 * unless NULL. */
int ch_http_full(ch_daemon *h, const char *head, const void *body, size_t len, char **rhead,
                 char **resp);

/* A remote-write request of one series name{label="value"} with n samples at ts_ms[i],
 * v[i], protobuf then snappy: malloc'd, *len bytes. */
char *ch_remote_write(const char *name, const char *label, const char *value,
                      const int64_t *ts_ms, const double *v, int n, size_t *len);

#endif
