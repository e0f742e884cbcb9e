/*
 * events.c - anomaly events to subscribers (TCP, Unix), a JSON-lines file and the log.
 */
#include "events.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sockpath.h"

typedef struct line {
    struct line *next;
    size_t len;
    char data[]; /* len bytes, ending in '\n' */
} line;

typedef struct subscriber {
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
        uv_stream_t stream;
        uv_handle_t handle;
    } h;                   /* h.handle.data = the subscriber */
    ad_events *ev;
    struct subscriber *prev, *next;
    line *head, *tail;     /* waiting to be written */
    size_t queued;         /* bytes waiting */
    int writing;           /* a write is out */
    int closing;
    int budgeted;          /* holds a descriptor of ev->fdb */
    uv_write_t wreq;       /* wreq.data = the subscriber */
    char *wbuf;            /* the buffer being written */
    char discard[256];     /* reads land here and are ignored */
} subscriber;

struct ad_events {
    uv_loop_t *loop;
    uv_tcp_t tcp;          /* TCP subscribers' listener */
    uv_pipe_t pipe;        /* Unix subscribers' listener */
    int have_tcp, have_pipe;
    int own_path;          /* the Unix socket file was bound here: removed at close */
    unsigned long long path_id[2]; /* its device and inode (sockpath.h) */
    char unix_path[AD_PATH_MAX];
    int port;
    char file_path[AD_PATH_MAX];
    int fd;                /* the events file, or -1 */
    int file_failing;      /* last write failed (log once until it works again) */
    size_t buffer;         /* bytes per subscriber */
    subscriber *subs;      /* connected subscribers */
    int handles;           /* open handles (for closing) */
    int closing;
    void (*close_done)(void *);
    void *close_arg;
    ad_fdbudget *fdb;      /* descriptors shared with the other doors, or NULL */
    ad_events_stats st;
};

char *ad_event_json(const ad_event *e)
{
    cJSON *o = cJSON_CreateObject();
    char *s = NULL;

    if (!o)
        return NULL;
    if (cJSON_AddNumberToObject(o, "ts", e->ts) && cJSON_AddStringToObject(o, "series", e->series) &&
        cJSON_AddNumberToObject(o, "value", e->value) &&
        cJSON_AddNumberToObject(o, "predicted", e->predicted) &&
        cJSON_AddNumberToObject(o, "error", e->error) &&
        cJSON_AddNumberToObject(o, "score", e->score) &&
        cJSON_AddNumberToObject(o, "threshold", e->threshold) &&
        cJSON_AddStringToObject(o, "scorer", e->scorer) &&
        cJSON_AddStringToObject(o, "model", e->model))
        s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static void handle_closed(ad_events *ev)
{
    if (--ev->handles == 0 && ev->closing) {
        void (*done)(void *) = ev->close_done;
        void *arg = ev->close_arg;

        free(ev);
        if (done)
            done(arg);
    }
}

static void free_lines(line *l)
{
    while (l) {
        line *next = l->next;

        free(l);
        l = next;
    }
}

static void sub_closed(uv_handle_t *h)
{
    subscriber *s = h->data;
    ad_events *ev = s->ev;

    free_lines(s->head);
    free(s);
    handle_closed(ev);
}

static void sub_close(subscriber *s)
{
    ad_events *ev = s->ev;

    if (s->closing)
        return;
    s->closing = 1;
    if (s->prev)
        s->prev->next = s->next;
    else
        ev->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    ev->st.subscribers--;
    if (s->budgeted)
        ad_fdbudget_put(ev->fdb); /* uv_close closes the descriptor now */
    uv_close(&s->h.handle, sub_closed);
}

static void sub_flush(subscriber *s);

static void write_cb(uv_write_t *req, int status)
{
    subscriber *s = req->data;

    free(s->wbuf);
    s->wbuf = NULL;
    s->writing = 0;
    if (s->closing)
        return;
    if (status < 0) {
        sub_close(s);
        return;
    }
    sub_flush(s);
}

/* Writes everything waiting as one buffer (one write out at a time per subscriber). */
static void sub_flush(subscriber *s)
{
    uv_buf_t b;
    size_t off = 0;

    if (s->writing || s->closing || !s->head)
        return;
    s->wbuf = malloc(s->queued);
    if (!s->wbuf)
        return; /* retried at the next event */
    for (line *l = s->head; l; l = l->next) {
        memcpy(s->wbuf + off, l->data, l->len);
        off += l->len;
    }
    free_lines(s->head);
    s->head = s->tail = NULL;
    s->queued = 0;
    b = uv_buf_init(s->wbuf, (unsigned)off);
    s->wreq.data = s;
    if (uv_write(&s->wreq, &s->h.stream, &b, 1, write_cb) < 0) {
        free(s->wbuf);
        s->wbuf = NULL;
        sub_close(s);
        return;
    }
    s->writing = 1;
}

/* Queues a line for a subscriber, dropping the oldest waiting lines beyond the buffer. */
static void sub_push(subscriber *s, const char *data, size_t len)
{
    ad_events *ev = s->ev;
    line *l;

    if (s->closing)
        return;
    if (len > ev->buffer) {
        ev->st.dropped++;
        return;
    }
    while (s->head && s->queued + len > ev->buffer) {
        line *old = s->head;

        s->head = old->next;
        if (!s->head)
            s->tail = NULL;
        s->queued -= old->len;
        free(old);
        ev->st.dropped++;
    }
    l = malloc(sizeof(*l) + len);
    if (!l) {
        ev->st.dropped++;
        return;
    }
    l->next = NULL;
    l->len = len;
    memcpy(l->data, data, len);
    if (s->tail)
        s->tail->next = l;
    else
        s->head = l;
    s->tail = l;
    s->queued += len;
    sub_flush(s);
}

static void sub_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    subscriber *s = h->data;

    (void)suggested;
    buf->base = s->discard; /* what subscribers send is read and ignored */
    buf->len = sizeof(s->discard);
}

static void sub_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0)
        sub_close(stream->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    ad_events *ev = server->data;
    subscriber *s;
    int r;

    if (status < 0) {
        ad_fdbudget_shed(ev->fdb, AD_FD_SUBSCRIBER, server, status); /* EMFILE, ENFILE */
        return;
    }
    if (ev->closing)
        return;
    s = calloc(1, sizeof(*s));
    if (!s) {
        ad_log_warn("events: out of memory accepting a subscriber");
        return;
    }
    s->ev = ev;
    if (server == (uv_stream_t *)&ev->tcp)
        r = uv_tcp_init(ev->loop, &s->h.tcp);
    else
        r = uv_pipe_init(ev->loop, &s->h.pipe, 0);
    if (r < 0) {
        free(s);
        return;
    }
    s->h.handle.data = s;
    ev->handles++;
    s->next = ev->subs;
    if (ev->subs)
        ev->subs->prev = s;
    ev->subs = s;
    ev->st.subscribers++;
    if (uv_accept(server, &s->h.stream) < 0 || !ad_fdbudget_take(ev->fdb, AD_FD_SUBSCRIBER)) {
        sub_close(s); /* a refusal by the budget is counted there */
        return;
    }
    s->budgeted = 1;
    if (uv_read_start(&s->h.stream, sub_alloc, sub_read) < 0) {
        sub_close(s);
        return;
    }
    ev->st.subscribers_total++;
}

static void open_file(ad_events *ev)
{
    if (!ev->file_path[0])
        return;
    ev->fd = open(ev->file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (ev->fd < 0)
        ad_log_error("events: cannot open %s: %s (events are not written to a file until "
                     "it can be reopened)",
                     ev->file_path, strerror(errno));
}

static void file_write(ad_events *ev, const char *data, size_t len)
{
    ssize_t n;

    if (!ev->file_path[0])
        return;
    if (ev->fd < 0) {
        ev->st.file_errors++;
        return;
    }
    n = write(ev->fd, data, len);
    if (n == (ssize_t)len) {
        ev->st.file_written++;
        if (ev->file_failing) {
            ad_log_info("events: writing to %s works again", ev->file_path);
            ev->file_failing = 0;
        }
        return;
    }
    ev->st.file_errors++;
    if (n > 0 && ftruncate(ev->fd, lseek(ev->fd, 0, SEEK_END) - n) < 0) {
        /* a partial line stays; the next reader skips it as malformed */
    }
    if (!ev->file_failing) {
        ad_log_error("events: writing to %s failed: %s (counted; retried with each event)",
                     ev->file_path, n < 0 ? strerror(errno) : "short write");
        ev->file_failing = 1;
    }
}

static void listener_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

int ad_events_start(uv_loop_t *loop, const ad_config *c, int tcp_fd, ad_events **out,
                    char *err, size_t errlen)
{
    ad_events *ev = calloc(1, sizeof(*ev));
    char msg[512];
    int r;

    if (!ev) {
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    ev->loop = loop;
    ev->fd = -1;
    ev->buffer = c->events_buffer;
    snprintf(ev->file_path, sizeof(ev->file_path), "%s", c->events_file);
    if (c->events_address[0] || tcp_fd >= 0) {
        struct sockaddr_storage sa;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&sa;
        struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
        int namelen = sizeof(sa);

        if (tcp_fd < 0 && uv_ip4_addr(c->events_address, c->events_port, s4) < 0 &&
            uv_ip6_addr(c->events_address, c->events_port, s6) < 0) {
            snprintf(err, errlen, "events.address: '%s' is not an IP address", c->events_address);
            free(ev);
            return -AD_EINVAL;
        }
        uv_tcp_init(loop, &ev->tcp);
        ev->tcp.data = ev;
        ev->have_tcp = 1;
        ev->handles++;
        r = tcp_fd >= 0 ? uv_tcp_open(&ev->tcp, tcp_fd)
                        : uv_tcp_bind(&ev->tcp, (struct sockaddr *)&sa, 0);
        if (r == 0)
            r = uv_listen((uv_stream_t *)&ev->tcp, 128, on_connection);
        if (r < 0) {
            snprintf(err, errlen, "events: cannot listen on %s:%d: %s", c->events_address,
                     c->events_port, uv_strerror(r));
            goto out_close;
        }
        uv_tcp_getsockname(&ev->tcp, (struct sockaddr *)&sa, &namelen);
        ev->port = ntohs(sa.ss_family == AF_INET6 ? s6->sin6_port : s4->sin_port);
        ad_log_info("listening events tcp %s:%d", c->events_address, ev->port);
    }
    if (c->events_unix[0]) {
        uv_pipe_init(loop, &ev->pipe, 0);
        ev->pipe.data = ev;
        ev->have_pipe = 1;
        ev->handles++;
        /* Only a stale socket is removed; anything else there is refused (sockpath.h). */
        if (ad_sockpath_prepare(c->events_unix, msg, sizeof(msg)) < 0) {
            snprintf(err, errlen, "events: %s", msg);
            goto out_close;
        }
        r = uv_pipe_bind(&ev->pipe, c->events_unix);
        if (r == 0) {
            snprintf(ev->unix_path, sizeof(ev->unix_path), "%s", c->events_unix);
            ev->own_path = ad_sockpath_id(c->events_unix, ev->path_id) == 0;
            r = uv_listen((uv_stream_t *)&ev->pipe, 128, on_connection);
        }
        if (r < 0) {
            snprintf(err, errlen, "events: cannot listen on %s: %s", c->events_unix,
                     uv_strerror(r));
            goto out_close;
        }
        ad_log_info("listening events unix %s", c->events_unix);
    }
    open_file(ev);
    *out = ev;
    return 0;

out_close:
    /* The handles close on the next loop turn; the caller's failure path runs the loop
     * until they are closed. */
    ad_events_close(ev, NULL, NULL);
    return -AD_EIO;
}

int ad_events_publish(ad_events *ev, const ad_event *e)
{
    char *json = ad_event_json(e);
    size_t len;

    if (!json)
        return -AD_ENOMEM;
    len = strlen(json);
    ad_log_info("anomaly %s", json);
    json[len] = '\n'; /* cJSON's string has room: its terminating NUL becomes the newline */
    ev->st.published++;
    file_write(ev, json, len + 1);
    for (subscriber *s = ev->subs, *next; s; s = next) {
        next = s->next;
        sub_push(s, json, len + 1);
    }
    free(json);
    return 0;
}

int ad_events_port(const ad_events *ev)
{
    return ev->port;
}

void ad_events_reopen(ad_events *ev)
{
    if (ev->fd >= 0)
        close(ev->fd);
    ev->fd = -1;
    open_file(ev);
}

void ad_events_set_fdbudget(ad_events *ev, ad_fdbudget *b)
{
    ev->fdb = b;
}

const ad_events_stats *ad_events_get_stats(const ad_events *ev)
{
    return &ev->st;
}

void ad_events_close(ad_events *ev, void (*done)(void *arg), void *arg)
{
    ev->closing = 1;
    ev->close_done = done;
    ev->close_arg = arg;
    if (ev->fd >= 0)
        close(ev->fd);
    ev->fd = -1;
    while (ev->subs)
        sub_close(ev->subs);
    if (ev->handles == 0) {
        free(ev);
        if (done)
            done(arg);
        return;
    }
    if (ev->have_tcp)
        uv_close((uv_handle_t *)&ev->tcp, listener_closed);
    if (ev->have_pipe) {
        if (ev->own_path) /* now, so a reload may bind the same path at once */
            ad_sockpath_remove(ev->unix_path, ev->path_id);
        uv_close((uv_handle_t *)&ev->pipe, listener_closed);
    }
}
