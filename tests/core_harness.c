/*
 * core_harness.c - a real daemon on a loop for the core's suites (core_harness.h).
 */
#include "core_harness.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "http/api.h"
#include "pbwrite.h"

void ch_start_in(ch_daemon *h, const char *dir, const char *extra)
{
    char yaml[8192], err[1024];
    ad_config cfg;
    int r;

    ad_log_init(AD_LOG_ERROR);
    snprintf(h->dir, sizeof(h->dir), "%s", dir);
    if (!extra)
        extra = "";
    snprintf(yaml, sizeof(yaml),
             "state_dir: %s\n"
             "listeners: []\n"
             "events: {address: \"\", unix: \"\", file: \"\"}\n"
             "%s%s%s",
             dir, extra, strstr(extra, "http:") ? "" : "http: {address: 127.0.0.1, port: 0}\n",
             strstr(extra, "store:") ? "" : "store: {enabled: false}\n");
    r = ad_config_parse(yaml, strlen(yaml), "test.yaml", &cfg, err, sizeof(err));
    ck_assert_msg(r == 0, "config: %s", err);
    ck_assert_int_eq(uv_loop_init(&h->loop), 0);
    r = ad_daemon_start(&h->loop, &cfg, NULL, ad_api_handle, &h->d, err, sizeof(err));
    ad_config_free(&cfg);
    ck_assert_msg(r == 0, "start: %s", err);
}

void ch_start(ch_daemon *h, const char *extra)
{
    char dir[] = "/tmp/check_core.XXXXXX";

    ck_assert_ptr_nonnull(mkdtemp(dir));
    ch_start_in(h, dir, extra);
}

void ch_stop(ch_daemon *h, int keep)
{
    char cmd[320];

    ad_daemon_stop(h->d);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    ad_daemon_free(h->d);
    h->d = NULL;
    ck_assert_int_eq(uv_loop_close(&h->loop), 0);
    if (!keep) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
        ck_assert_int_eq(system(cmd), 0);
    }
}

int ch_line(ch_daemon *h, int proto, const char *line)
{
    int r;

    ad_daemon_received(h->d, uv_hrtime());
    r = ad_daemon_line(h->d, proto, 0, line, strlen(line));
    ad_daemon_flush(h->d);
    return r;
}

int ch_port(const ch_daemon *h)
{
    return ad_http_server_port(ad_daemon_http(h->d));
}

/* ---- HTTP from a thread ---- */

typedef struct exchange {
    int port;
    const char *head;
    const void *body;
    size_t len;
    char *resp;          /* the whole response, NUL-terminated */
    size_t resp_len;
    atomic_int done;
} exchange;

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n) {
        ssize_t w = write(fd, c, n);

        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *client(void *arg)
{
    exchange *x = arg;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)x->port)};
    struct timeval tv = {10, 0};
    char hdr[256];
    size_t cap = 4096;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    x->resp = calloc(1, cap);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    snprintf(hdr, sizeof(hdr), "Content-Length: %zu\r\nConnection: close\r\n\r\n", x->len);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        write_all(fd, x->head, strlen(x->head)) == 0 && write_all(fd, hdr, strlen(hdr)) == 0 &&
        write_all(fd, x->body, x->len) == 0) {
        ssize_t n;

        while ((n = read(fd, x->resp + x->resp_len, cap - x->resp_len - 1)) > 0) {
            x->resp_len += (size_t)n;
            if (cap - x->resp_len < 1024)
                x->resp = realloc(x->resp, cap *= 2);
        }
        x->resp[x->resp_len] = '\0';
    }
    if (fd >= 0)
        close(fd);
    atomic_store(&x->done, 1);
    return NULL;
}

int ch_http(ch_daemon *h, const char *head, const void *body, size_t len, char **resp)
{
    return ch_http_full(h, head, body, len, NULL, resp);
}

int ch_http_full(ch_daemon *h, const char *head, const void *body, size_t len, char **rhead,
                 char **resp)
{
    exchange x = {.port = ch_port(h), .head = head, .body = body ? body : "", .len = len};
    pthread_t t;
    int status = 0;
    char *b;

    atomic_init(&x.done, 0);
    ck_assert_int_eq(pthread_create(&t, NULL, client, &x), 0);
    while (!atomic_load(&x.done)) {
        uv_run(&h->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    pthread_join(t, NULL);
    ck_assert_ptr_nonnull(x.resp);
    ck_assert_msg(sscanf(x.resp, "HTTP/1.1 %d", &status) == 1, "no response: '%s'", x.resp);
    b = strstr(x.resp, "\r\n\r\n");
    if (resp)
        *resp = strdup(b ? b + 4 : "");
    if (rhead)
        *rhead = strndup(x.resp, b ? (size_t)(b - x.resp) : x.resp_len);
    free(x.resp);
    return status;
}

/* ---- remote write ---- */

char *ch_remote_write(const char *name, const char *label, const char *value,
                      const int64_t *ts_ms, const double *v, int n, size_t *len)
{
    pb req = {0}, ts = {0};

    pb_label(&ts, "__name__", name);
    if (label)
        pb_label(&ts, label, value);
    for (int i = 0; i < n; i++)
        pb_sample(&ts, ts_ms[i], v[i]);
    pb_sub(&req, 1, &ts);
    return pb_snappy(&req, len);
}
