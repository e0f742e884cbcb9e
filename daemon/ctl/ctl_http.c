/*
 * ctl_http.c - the blocking HTTP client of anomalyctl: sockets with a deadline (poll),
 * one GET per connection, the response parsed by http-parser into a malloc'd body; and
 * what every command shares (addresses, the connect loop, reading the daemon's JSON).
 */
#include "ctl/ctl_http.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"

/* The request: Connection: close, so the answer ends where the connection does. */
#define REQ_FMT                                                                          \
    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: anomalyctl/%s\r\nAccept: */*\r\n"     \
    "%s%s%sConnection: close\r\n\r\n"
#define REQ_ARGS                                                                         \
    path, o->address, AD_VERSION, o->token ? "Authorization: Bearer " : "",              \
        o->token ? o->token : "", o->token ? "\r\n" : ""
#define HINT_HTTP "is anomalyd running? see http.address/http.port in its config"

void ad_ctl_http_opts_init(ad_ctl_http_opts *o)
{
    const char *a = getenv("ANOMALYD_HTTP"), *t = getenv("ANOMALYD_TOKEN");

    o->address = a && a[0] ? a : AD_CTL_HTTP_DEFAULT;
    o->token = t && t[0] ? t : NULL;
}

/* Waits until fd is ready for events or the deadline passes. 0, or -1 with errno
 * (ETIMEDOUT at the deadline). */
static int wait_fd(int fd, short events, double deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        double left = deadline - ad_mono_now();
        int r;

        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r > 0)
            return 0;
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
}

int ad_ctl_split_address(const char *address, const char *what, char *host, size_t hostcap,
                         char *port, size_t portcap, char *err, size_t errlen)
{
    const char *colon = strrchr(address, ':');
    size_t hl;
    long p;
    char *end;

    if (!colon || colon == address || !colon[1])
        goto bad;
    hl = (size_t)(colon - address);
    if (address[0] == '[') { /* [::1]:8080 */
        if (colon[-1] != ']' || hl < 3)
            goto bad;
        address++;
        hl -= 2;
    } else if (memchr(address, ':', hl)) {
        goto bad; /* a bare IPv6 address needs brackets */
    }
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (*end || errno || p < 1 || p > 65535 || hl >= hostcap ||
        strlen(colon + 1) >= portcap)
        goto bad;
    memcpy(host, address, hl);
    host[hl] = '\0';
    snprintf(port, portcap, "%ld", p);
    return 0;
bad:
    snprintf(err, errlen, "%s takes HOST:PORT (e.g. 127.0.0.1:8080, [::1]:8080), got '%s'",
             what, address);
    return -AD_EINVAL;
}

/* connect() on a non-blocking socket, waited for until the deadline. 0 or -1, errno. */
static int connect_by(int fd, const struct addrinfo *ai, double deadline)
{
    int soerr = 0;
    socklen_t sl = sizeof(soerr);

    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -1;
    if (wait_fd(fd, POLLOUT, deadline) < 0)
        return -1;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return -1;
    if (soerr) {
        errno = soerr;
        return -1;
    }
    return 0;
}

int ad_ctl_connect(const char *address, const char *what, int socktype, double timeout,
                   const char *hint, char *err, size_t errlen)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_socktype = socktype}, *res, *ai;
    double deadline = ad_mono_now() + timeout;
    int fd = -1, r, saved = ECONNREFUSED;

    r = ad_ctl_split_address(address, what, host, sizeof(host), port, sizeof(port), err,
                             errlen);
    if (r < 0)
        return r;
    r = getaddrinfo(host, port, &hints, &res);
    if (r) {
        snprintf(err, errlen, "cannot resolve %s: %s", address, gai_strerror(r));
        return -AD_EIO;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd >= 0 && connect_by(fd, ai, deadline) == 0)
            break;
        saved = errno;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s%s%s%s", address, strerror(saved),
                 hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
        return -AD_EIO;
    }
    return fd;
}

void ad_ctl_set_blocking(int fd, double send_timeout)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (send_timeout > 0) {
        struct timeval tv = {(time_t)send_timeout, 0};

        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
}

/* What the parser callbacks fill. */
typedef struct parse_ctx {
    ad_ctl_http_resp *resp;
    size_t cap;          /* bytes allocated for resp->body */
    int in_ctype;        /* the header being read is Content-Type */
    int complete;        /* on_message_complete was called */
    int oom;             /* the body could not grow, or passed AD_CTL_MAX_BODY */
} parse_ctx;

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    parse_ctx *c = p->data;

    c->in_ctype = len == 12 && !strncasecmp(at, "Content-Type", 12);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    parse_ctx *c = p->data;
    char *ct = c->resp->content_type;
    size_t have = strlen(ct), room = sizeof(c->resp->content_type) - 1 - have;

    if (c->in_ctype) {
        if (len > room)
            len = room;
        memcpy(ct + have, at, len);
        ct[have + len] = '\0';
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    parse_ctx *c = p->data;
    ad_ctl_http_resp *r = c->resp;

    if (r->body_len + len + 1 > c->cap) {
        size_t cap = (r->body_len + len + 1) * 2;
        char *b;

        if (cap > AD_CTL_MAX_BODY + 1 || !(b = realloc(r->body, cap))) {
            c->oom = 1;
            return -1;
        }
        r->body = b;
        c->cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    parse_ctx *c = p->data;

    c->complete = 1;
    return 0;
}

/* Writes all of buf before the deadline. 0 or -1 with errno. */
static int send_all(int fd, const char *buf, size_t len, double deadline)
{
    while (len) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLOUT, deadline) < 0)
                return -1;
            continue;
        }
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads and parses until the message is complete or the server closes. */
static int read_response(int fd, const char *address, double deadline, parse_ctx *c,
                         char *err, size_t errlen)
{
    http_parser_settings s;
    http_parser p;
    char buf[16384];

    http_parser_settings_init(&s);
    s.on_header_field = on_header_field;
    s.on_header_value = on_header_value;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = c;
    while (!c->complete) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        size_t used;

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (wait_fd(fd, POLLIN, deadline) < 0) {
                snprintf(err, errlen, "%s: no answer within %.0f s: %s", address,
                         AD_CTL_TIMEOUT, strerror(errno));
                return -AD_EIO;
            }
            continue;
        }
        if (n < 0) {
            snprintf(err, errlen, "%s: reading the answer: %s", address, strerror(errno));
            return -AD_EIO;
        }
        used = http_parser_execute(&p, &s, buf, (size_t)n);
        if (c->oom) {
            snprintf(err, errlen, "%s: the answer is larger than %u MiB or memory ran out",
                     address, AD_CTL_MAX_BODY >> 20);
            return -AD_ENOMEM;
        }
        if (HTTP_PARSER_ERRNO(&p) != HPE_OK || (n > 0 && used != (size_t)n)) {
            snprintf(err, errlen, "%s: not an HTTP answer (%s): is this anomalyd's HTTP "
                     "port?", address, http_errno_description(HTTP_PARSER_ERRNO(&p)));
            return -AD_EFORMAT;
        }
        if (n == 0)
            break;
    }
    if (!c->complete) {
        snprintf(err, errlen, "%s: the connection closed before a whole answer", address);
        return -AD_EIO;
    }
    c->resp->status = (int)p.status_code;
    return 0;
}

int ad_ctl_http_get(const ad_ctl_http_opts *o, const char *path, ad_ctl_http_resp *out,
                    char *err, size_t errlen)
{
    double deadline = ad_mono_now() + AD_CTL_TIMEOUT;
    char host[256], port[16];
    parse_ctx c = {.resp = out};
    char *req = NULL;
    int fd, r, n;

    memset(out, 0, sizeof(*out));
    r = ad_ctl_split_address(o->address, "--http", host, sizeof(host), port, sizeof(port),
                             err, errlen);
    if (r < 0)
        return r;
    fd = ad_ctl_connect(o->address, "--http", SOCK_STREAM, AD_CTL_TIMEOUT, HINT_HTTP, err,
                        errlen);
    if (fd < 0)
        return fd;
    n = snprintf(NULL, 0, REQ_FMT, REQ_ARGS);
    req = n < 0 ? NULL : malloc((size_t)n + 1);
    if (!req) {
        snprintf(err, errlen, "out of memory");
        r = -AD_ENOMEM;
        goto out_close;
    }
    snprintf(req, (size_t)n + 1, REQ_FMT, REQ_ARGS);
    if (send_all(fd, req, (size_t)n, deadline) < 0) {
        snprintf(err, errlen, "%s: sending the request: %s", o->address, strerror(errno));
        r = -AD_EIO;
        goto out_free_req;
    }
    r = read_response(fd, o->address, deadline, &c, err, errlen);
    if (r == 0 && !out->body) { /* an empty body: still a string */
        out->body = calloc(1, 1);
        if (!out->body) {
            snprintf(err, errlen, "out of memory");
            r = -AD_ENOMEM;
        }
    }
    if (r < 0)
        ad_ctl_http_resp_free(out);
out_free_req:
    free(req);
out_close:
    close(fd);
    return r;
}

void ad_ctl_http_resp_free(ad_ctl_http_resp *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

int ad_ctl_http_get_json(const ad_ctl_http_opts *o, const char *path, cJSON **out, char *err,
                         size_t errlen)
{
    int status;

    return ad_ctl_http_get_json_status(o, path, out, &status, err, errlen);
}

int ad_ctl_http_get_json_status(const ad_ctl_http_opts *o, const char *path, cJSON **out,
                                int *status, char *err, size_t errlen)
{
    ad_ctl_http_resp resp;
    cJSON *j;
    int r = ad_ctl_http_get(o, path, &resp, err, errlen);

    *status = 0;
    if (r < 0)
        return r;
    *status = resp.status;
    j = cJSON_ParseWithLength(resp.body, resp.body_len);
    if (resp.status != 200) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");

        if (resp.status == 401)
            snprintf(err, errlen, "%s answered 401: %s (give the daemon's http.token with "
                     "--token or $ANOMALYD_TOKEN)", o->address,
                     o->token ? "the token was refused" : "a bearer token is required");
        else
            snprintf(err, errlen, "%s%s answered %d: %s", o->address, path, resp.status,
                     cJSON_IsString(e) ? e->valuestring : "(no message)");
        r = -AD_EIO;
        goto out;
    }
    if (!j) {
        snprintf(err, errlen, "%s%s: the answer is not JSON", o->address, path);
        r = -AD_EFORMAT;
        goto out;
    }
    *out = j;
    j = NULL;
out:
    cJSON_Delete(j);
    ad_ctl_http_resp_free(&resp);
    return r;
}

double ad_ctl_num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

const char *ad_ctl_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) ? v->valuestring : "?";
}

int ad_ctl_url_escape(const char *s, char *out, size_t outcap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || strchr("-._~", *p);

        if (n + (keep ? 1 : 3) >= outcap)
            return -AD_EFULL;
        if (keep) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

void ad_ctl_addrs_free(ad_ctl_addrs *a)
{
    free(a->v);
    free(a->buf);
    memset(a, 0, sizeof(*a));
}

int ad_ctl_addrs_parse(ad_ctl_addrs *a, const char *list, const char *what, char *err,
                       size_t errlen)
{
    char host[256], port[16];
    size_t cap = 1;
    char *p;
    int r;

    memset(a, 0, sizeof(*a));
    for (const char *c = list; *c; c++)
        cap += *c == ',';
    if (cap > AD_CTL_MAX_INSTANCES) {
        snprintf(err, errlen, "%s takes at most %d addresses, got %zu", what,
                 AD_CTL_MAX_INSTANCES, cap);
        return -AD_EINVAL;
    }
    a->buf = strdup(list);
    a->v = calloc(cap, sizeof(*a->v));
    if (!a->buf || !a->v) {
        ad_ctl_addrs_free(a);
        snprintf(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    p = a->buf;
    for (;;) {
        char *comma = strchr(p, ','), *end;

        if (comma)
            *comma = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (!*p) {
            snprintf(err, errlen, "%s: an empty address in '%s' (HOST:PORT,HOST:PORT,...)",
                     what, list);
            r = -AD_EINVAL;
            goto fail;
        }
        r = ad_ctl_split_address(p, what, host, sizeof(host), port, sizeof(port), err,
                                 errlen);
        if (r < 0)
            goto fail;
        for (int i = 0; i < a->n; i++)
            if (!strcmp(a->v[i], p)) {
                snprintf(err, errlen, "%s names %s twice", what, p);
                r = -AD_EINVAL;
                goto fail;
            }
        a->v[a->n++] = p;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
fail:
    ad_ctl_addrs_free(a);
    return r;
}
