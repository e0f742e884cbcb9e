/*
 * events.h - where anomaly events go: subscribers on the events sockets, an append-only
 * JSON-lines file, and the log.
 *
 * An event is one JSON object on one line:
 *   {"ts":1700000000,"series":"cpu.h1.user","value":97.5,"predicted":12.1,"error":8.4,
 *    "score":0.93,"threshold":0.5,"scorer":"likelihood","model":"lstm"}
 * Subscribers connect to the TCP and/or Unix stream socket and receive every event from
 * then on (anything they send is ignored). A slow subscriber never stalls the loop: each
 * has a buffer of `buffer` bytes; when it is full the oldest events waiting are dropped
 * (counted). The file is opened for appending and reopened by ad_events_reopen (SIGHUP,
 * after log rotation); a failed write is counted and logged once per kind of failure,
 * and detection goes on.
 */
#ifndef AD_EVENTS_H
#define AD_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "fdlimit.h"

typedef struct ad_event {
    double ts;          /* the sample's timestamp, seconds */
    const char *series; /* the series key */
    double value, predicted, error;
    double score, threshold;
    const char *scorer; /* "likelihood", ... */
    const char *model;  /* "lstm", "seq2seq/lstm", ... */
} ad_event;

typedef struct ad_events_stats {
    uint64_t published;    /* events published */
    uint64_t dropped;      /* events dropped from slow subscribers' buffers */
    uint64_t subscribers_total; /* subscribers accepted */
    size_t subscribers;    /* connected now */
    uint64_t file_written; /* events appended to the file */
    uint64_t file_errors;  /* events the file could not take */
} ad_events_stats;

typedef struct ad_events ad_events;

/* Binds the configured events sockets and opens the file; tcp_fd >= 0 is a listening
 * socket passed by the service manager, used instead of binding events.address. Returns
 * 0 or a negative ad_err with a message. */
int ad_events_start(uv_loop_t *loop, const ad_config *c, int tcp_fd, ad_events **out,
                    char *err, size_t errlen);

/* Formats an event as a JSON line into a malloc'd string (no newline); NULL on
 * allocation failure. */
char *ad_event_json(const ad_event *e);

/* Publishes an event to every sink. Returns 0 or -AD_ENOMEM. */
int ad_events_publish(ad_events *ev, const ad_event *e);

/* The TCP port bound (0 when none). */
int ad_events_port(const ad_events *ev);

/* Reopens the file (log rotation). */
void ad_events_reopen(ad_events *ev);

/* Makes subscribers take their descriptors from b (fdlimit.h; NULL: no budget): one the
 * budget refuses is closed at once, counted there. Set before the loop runs. */
void ad_events_set_fdbudget(ad_events *ev, ad_fdbudget *b);

const ad_events_stats *ad_events_get_stats(const ad_events *ev);

/* Closes the sockets, subscribers and file; frees itself once every handle is closed,
 * then calls done(arg) (done may be NULL). */
void ad_events_close(ad_events *ev, void (*done)(void *arg), void *arg);

#endif
