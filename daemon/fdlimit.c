/*
 * fdlimit.c - RLIMIT_NOFILE at start, and the connections' descriptor budget (fdlimit.h).
 */
#define _GNU_SOURCE /* accept4 */
#include "fdlimit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define WARN_EVERY_NS (60ull * 1000000000ull)

static const char *const class_names[AD_FD_NCLASSES] = {"stream", "http", "subscriber"};

/* What each class is called in a warning, and the metric that counts its refusals. */
static const char *const class_what[AD_FD_NCLASSES] = {
    "stream connections", "HTTP connections", "event subscribers"};
static const char *const class_metric[AD_FD_NCLASSES] = {
    "anomalyd_connections_refused_total", "anomalyd_http_connections_refused_total",
    "anomalyd_event_subscribers_refused_total"};

const char *ad_fd_class_name(int cls)
{
    return cls >= 0 && cls < AD_FD_NCLASSES ? class_names[cls] : "unknown";
}

void ad_fdlimit_need(const ad_config *c, ad_fd_need *n)
{
    n->stream = c->max_connections;
    n->http = c->http_enabled ? c->max_connections : 0;
    n->subscribers = c->events_address[0] || c->events_unix[0] ? AD_FD_SUBSCRIBERS : 0;
    n->sockets = (size_t)c->nlisteners + (c->http_enabled ? 1 : 0) +
                 (c->events_address[0] ? 1 : 0) + (c->events_unix[0] ? 1 : 0);
    n->fixed = AD_FD_FIXED + AD_FD_KEEP + AD_FD_KEEP_HTTP;
    n->total = n->stream + n->http + n->subscribers + n->sockets + n->fixed;
}

int ad_fdlimit_raise(size_t need, size_t *was, size_t *now, size_t *hard)
{
    struct rlimit rl;
    rlim_t want;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -AD_EIO;
    *was = *now = rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX : (size_t)rl.rlim_cur;
    *hard = rl.rlim_max == RLIM_INFINITY ? SIZE_MAX : (size_t)rl.rlim_max;
    if (*was >= need)
        return 0;
    want = (rlim_t)need;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return -AD_EIO;
        *now = (size_t)want;
    }
    return *now >= need ? 0 : -AD_EFULL;
}

size_t ad_fdlimit_apply(const ad_config *c)
{
    size_t was, now, hard;
    ad_fd_need n;
    int r;

    ad_fdlimit_need(c, &n);
    r = ad_fdlimit_raise(n.total, &was, &now, &hard);
    if (r == -AD_EIO) {
        ad_log_warn("RLIMIT_NOFILE: cannot read or raise the descriptor limit: %s",
                    strerror(errno));
        return 0;
    }
    if (now > was)
        ad_log_info("RLIMIT_NOFILE: soft limit raised from %zu to %zu (hard limit %zu)", was,
                    now, hard);
    if (r == -AD_EFULL)
        ad_log_warn("RLIMIT_NOFILE: %zu descriptors (hard limit %zu) is below the %zu this "
                    "configuration may need: max_connections %zu stream + %zu HTTP "
                    "connections, %zu event subscribers, %zu sockets, %zu the daemon's own; "
                    "connections beyond the limit are refused and counted "
                    "(anomalyd_connections_refused_total{reason=\"fd_limit\"}): raise the "
                    "limit (LimitNOFILE=, ulimit -n) or lower max_connections",
                    now, hard, n.total, n.stream, n.http, n.subscribers, n.sockets, n.fixed);
    return now == SIZE_MAX ? 0 : now;
}

long ad_fdlimit_open_count(void)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *e;
    long n = 0;

    if (!dir)
        return -1;
    while ((e = readdir(dir)))
        n += e->d_name[0] != '.';
    closedir(dir);
    return n - 1; /* the directory's own descriptor */
}

static int open_reserve(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

int ad_fdbudget_init(ad_fdbudget *b, size_t limit)
{
    memset(b, 0, sizeof(*b));
    b->reserve = open_reserve();
    ad_fdbudget_measure(b, limit);
    return b->reserve >= 0 ? 0 : -AD_EIO;
}

void ad_fdbudget_measure(ad_fdbudget *b, size_t limit)
{
    long open_now = ad_fdlimit_open_count();

    b->limit = open_now < 0 ? 0 : limit; /* no /proc: no budget */
    b->base = open_now > (long)b->used ? (size_t)open_now - b->used : 0;
}

/* A warning at most once a minute per class: "<verb> <class>", and the reason label. */
static void warn(ad_fdbudget *b, int cls, const char *verb, const char *reason)
{
    uint64_t now = uv_hrtime();

    if (b->warned[cls] && now - b->warned[cls] < WARN_EVERY_NS)
        return;
    b->warned[cls] = now;
    ad_log_warn("out of file descriptors: %s %s (RLIMIT_NOFILE %zu: %zu held by connections, "
                "%zu by the daemon itself); counted in %s{reason=\"%s\"}; at most one such "
                "warning a minute",
                verb, class_what[cls], b->limit, b->used, b->base, class_metric[cls], reason);
}

int ad_fdbudget_take(ad_fdbudget *b, int cls)
{
    size_t keep = AD_FD_KEEP + (cls == AD_FD_HTTP ? 0 : AD_FD_KEEP_HTTP);

    if (!b || !b->limit)
        return 1;
    if (b->base + b->used + keep >= b->limit) {
        b->refused[cls]++;
        warn(b, cls, "refusing new", "fd_limit");
        return 0;
    }
    b->used++;
    return 1;
}

void ad_fdbudget_put(ad_fdbudget *b)
{
    if (b && b->used)
        b->used--;
}

int ad_fdbudget_shed(ad_fdbudget *b, int cls, uv_stream_t *server, int status)
{
    uv_os_fd_t fd;
    int c;

    if (status != UV_EMFILE && status != UV_ENFILE)
        return 0;
    if (!b || uv_fileno((const uv_handle_t *)server, &fd) < 0)
        return 1;
    if (b->reserve >= 0)
        close(b->reserve);
    do
        c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    while (c < 0 && errno == EINTR);
    if (c >= 0) {
        close(c);
        b->shed[cls]++;
    }
    b->reserve = open_reserve();
    warn(b, cls, "shedding pending", "fd_exhausted");
    return 1;
}

void ad_fdbudget_close(ad_fdbudget *b)
{
    if (b->reserve >= 0)
        close(b->reserve);
    b->reserve = -1;
}
