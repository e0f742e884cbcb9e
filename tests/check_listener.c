/*
 * check_listener.c - ingest/listener.c on a real libuv loop on loopback, driven by
 * blocking client sockets from the same thread (the loop is pumped between a client's
 * moves, so what the sink saw is read without locks): TCP lines framed and handed to the
 * sink with the listener's protocol and precision; a line split across writes; a last
 * line without a newline delivered at a clean close, lost and counted as truncated when
 * the client resets the connection; over-long lines refused to the sink and the stream
 * going on; UDP datagrams of several lines; a Unix socket (its file removed at close);
 * max_connections refusing and counting; the descriptor budget refusing; a big burst
 * read ahead (sink.more) with done after it; reload (reconcile) keeping an unchanged
 * listener and its connections; a listener that cannot bind; the counters. Each test
 * closes the listeners, checks done() ran and asserts uv_loop_close() == 0.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "config.h"
#include "fdlimit.h"
#include "ingest/listener.h"
#include "ingest/proto_influx.h"
#include "ingest/protocols.h"
#include "ingest/sample.h"

#define ERRLEN 1024
#define KEPT 64      /* lines whose text the sink keeps */
#define KEPT_BYTES 256 /* bytes kept of each */
#define WAIT_NS 5000000000ull /* how long PUMP_UNTIL waits: 5 s */

/* ---- what the sink saw ---- */

typedef struct seen {
    int lines;                  /* lines handed over */
    char text[KEPT][KEPT_BYTES];  /* the first KEPT of them */
    int proto[KEPT];
    int precision[KEPT];
    int too_long;               /* error(AD_PE_TOO_LONG) */
    int other_errors;
    int received;               /* received() calls */
    int done;                   /* done() calls */
    int more;                   /* more() calls */
    int more_open;              /* more() called, no done() since */
    long next_seq;              /* "seq N" lines: the N expected next */
    int out_of_order;
} seen;

static void on_line(void *ctx, int proto, int precision, const char *line, size_t len)
{
    seen *s = ctx;
    long n;

    if (s->lines < KEPT) {
        snprintf(s->text[s->lines], KEPT_BYTES, "%.*s", (int)len, line);
        s->proto[s->lines] = proto;
        s->precision[s->lines] = precision;
    }
    s->lines++;
    if (len > 4 && !memcmp(line, "seq ", 4)) {
        n = strtol(line + 4, NULL, 10);
        if (n != s->next_seq)
            s->out_of_order++;
        s->next_seq = n + 1;
    }
}

static void on_error(void *ctx, int proto, int reason)
{
    seen *s = ctx;

    (void)proto;
    if (reason == AD_PE_TOO_LONG)
        s->too_long++;
    else
        s->other_errors++;
}

static void on_received(void *ctx, uint64_t ns)
{
    seen *s = ctx;

    ck_assert_uint_gt(ns, 0);
    s->received++;
}

static void on_done(void *ctx)
{
    seen *s = ctx;

    s->done++;
    s->more_open = 0;
}

static void on_more(void *ctx)
{
    seen *s = ctx;

    s->more++;
    s->more_open = 1;
}

/* ---- the listeners under test ---- */

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes UV_RUN_ONCE so that waits can time out */
    ad_config cfg;
    ad_listeners *ls;
    seen s;
    int closed;      /* ad_listeners_close's done ran */
    char dir[64];    /* a temporary directory for Unix sockets */
} fixture;

static fixture fx;

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

static void parse(const char *yaml)
{
    char err[ERRLEN] = "";

    ck_assert_msg(ad_config_parse(yaml, strlen(yaml), "t.yaml", &fx.cfg, err, sizeof(err)) == 0,
                  "config: %s", err);
}

/* Starts the listeners of yaml (%s in it: the temporary directory) with the sink. */
static void start(const char *yaml_fmt)
{
    ad_ingest_sink sink = {on_line, on_error, on_received, on_done, on_more, &fx.s};
    char yaml[4096], err[ERRLEN] = "";

    memset(&fx, 0, sizeof(fx));
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/check_listener.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(fx.dir));
    snprintf(yaml, sizeof(yaml), yaml_fmt, fx.dir, fx.dir);
    parse(yaml);
    ck_assert_int_eq(uv_loop_init(&fx.loop), 0);
    ck_assert_int_eq(uv_timer_init(&fx.loop, &fx.tick), 0);
    ck_assert_int_eq(uv_timer_start(&fx.tick, tick_cb, 5, 5), 0);
    ck_assert_msg(ad_listeners_start(&fx.loop, &fx.cfg, &sink, NULL, NULL, &fx.ls, err,
                                     sizeof(err)) == 0, "start: %s", err);
    ck_assert_int_eq(ad_listeners_count(fx.ls), fx.cfg.nlisteners);
}

static void closed_cb(void *arg)
{
    ((fixture *)arg)->closed++;
}

/* Closes everything; the loop must end empty. */
static void finish(void)
{
    if (fx.ls)
        ad_listeners_close(fx.ls, closed_cb, &fx);
    uv_close((uv_handle_t *)&fx.tick, NULL);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    if (fx.ls)
        ck_assert_int_eq(fx.closed, 1);
    ck_assert_int_eq(uv_loop_close(&fx.loop), 0);
    ck_assert_int_eq(fx.s.more_open, 0);
    ad_config_free(&fx.cfg);
    rmdir(fx.dir);
}

/* One turn of the loop; a callback that called more() called done() before it
 * returned (listener.h). */
static void pump_once(void)
{
    uv_run(&fx.loop, UV_RUN_ONCE);
    ck_assert_msg(fx.s.more_open == 0, "more() without done() after it");
}

#define PUMP_UNTIL(cond)                                                                    \
    do {                                                                                    \
        uint64_t end_ = uv_hrtime() + WAIT_NS;                                              \
        while (!(cond)) {                                                                   \
            ck_assert_msg(uv_hrtime() < end_, "timed out waiting for %s", #cond);           \
            pump_once();                                                                    \
        }                                                                                   \
    } while (0)

/* Runs the loop for ms milliseconds (to see that nothing more happens). */
static void pump_for(int ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;

    while (uv_hrtime() < end)
        pump_once();
}

static const ad_listener_stats *stats(void)
{
    return ad_listeners_get_stats(fx.ls);
}

/* ---- clients ---- */

static int tcp_client(int i)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {2, 0}; /* a read nobody answers fails the test, not hangs */

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)ad_listeners_port(fx.ls, i));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_ne(ad_listeners_port(fx.ls, i), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    return fd;
}

static int unix_client(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void put(int fd, const char *text)
{
    size_t n = strlen(text), off = 0;

    while (off < n) {
        ssize_t w = send(fd, text + off, n - off, MSG_NOSIGNAL);

        ck_assert_int_gt(w, 0);
        off += (size_t)w;
    }
}

/* Writes n bytes without blocking, running the loop whenever the socket is full (the
 * loop is what empties it). */
static void put_pumping(int fd, const char *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (w < 0) {
            ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "send: errno %d", errno);
            pump_once();
            continue;
        }
        off += (size_t)w;
    }
}

static void datagram(int i, const char *text, size_t len)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    ck_assert_int_ge(fd, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)ad_listeners_port(fx.ls, i));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(sendto(fd, text, len, 0, (struct sockaddr *)&sa, sizeof(sa)), (ssize_t)len);
    close(fd);
}

/* Closes a client with a reset (RST), not a clean end. */
static void reset(int fd)
{
    struct linger lg = {1, 0};

    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    close(fd);
}

/* The listener closed the client's connection: its read sees the end (or a reset). */
static void assert_refused(int fd)
{
    char byte;
    ssize_t r = recv(fd, &byte, 1, 0);

    ck_assert_msg(r == 0 || (r < 0 && errno == ECONNRESET), "recv %zd errno %d", r, errno);
}

#define TCP_GRAPHITE "  - {protocol: graphite, transport: tcp, address: 127.0.0.1, port: 0}\n"
#define UDP_STATSD "  - {protocol: statsd, transport: udp, address: 127.0.0.1, port: 0}\n"
#define TCP_INFLUX_MS \
    "  - {protocol: influx, transport: tcp, address: 127.0.0.1, port: 0, precision: ms}\n"
#define UNIX_JSONL "  - {protocol: jsonl, transport: unix, path: %s/j.sock}\n"
#define TCP_JSONL "  - {protocol: jsonl, transport: tcp, address: 127.0.0.1, port: 0}\n"

/* ---- TCP framing ---- */

START_TEST(test_tcp_lines_to_the_sink)
{
    static const char text[] = "a.b 1 1700000000\nc.d 2 1700000001\r\n\n";
    static const char influx[] = "m,h=a f=1 1700000000000\n";
    int fd;

    start("listeners:\n" TCP_GRAPHITE TCP_INFLUX_MS);
    fd = tcp_client(0);
    put(fd, text);
    PUMP_UNTIL(fx.s.lines == 3);
    ck_assert_str_eq(fx.s.text[0], "a.b 1 1700000000");
    ck_assert_str_eq(fx.s.text[1], "c.d 2 1700000001"); /* one '\r' dropped */
    ck_assert_str_eq(fx.s.text[2], "");                /* an empty line is a line */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(fx.s.proto[i], AD_PROTO_GRAPHITE);
    ck_assert_int_ge(fx.s.received, 1);
    ck_assert_int_ge(fx.s.done, 1);
    ck_assert_uint_eq(stats()->accepted, 1);
    ck_assert_uint_eq(stats()->open, 1);
    ck_assert_uint_eq(stats()->bytes[AD_PROTO_GRAPHITE], strlen(text));
    ck_assert_uint_eq(stats()->bytes[AD_PROTO_INFLUX], 0);

    /* the second listener: its own protocol and precision */
    {
        int fd2 = tcp_client(1);

        put(fd2, influx);
        PUMP_UNTIL(fx.s.lines == 4);
        ck_assert_str_eq(fx.s.text[3], "m,h=a f=1 1700000000000");
        ck_assert_int_eq(fx.s.proto[3], AD_PROTO_INFLUX);
        ck_assert_int_eq(fx.s.precision[3], AD_PREC_MS);
        ck_assert_uint_eq(stats()->accepted, 2);
        ck_assert_uint_eq(stats()->bytes[AD_PROTO_INFLUX], strlen(influx));
        close(fd2);
    }
    close(fd);
    PUMP_UNTIL(stats()->open == 0);
    ck_assert_int_eq(fx.s.lines, 4);
    ck_assert_uint_eq(stats()->truncated, 0);
    ck_assert_int_eq(fx.s.too_long + fx.s.other_errors, 0);
    finish();
}
END_TEST

START_TEST(test_line_split_across_writes)
{
    int fd;

    start("listeners:\n" TCP_GRAPHITE);
    fd = tcp_client(0);
    put(fd, "split.ke");
    PUMP_UNTIL(stats()->bytes[AD_PROTO_GRAPHITE] == 8);
    pump_for(20);
    ck_assert_int_eq(fx.s.lines, 0); /* held until its newline */
    put(fd, "y 4");
    PUMP_UNTIL(stats()->bytes[AD_PROTO_GRAPHITE] == 11);
    ck_assert_int_eq(fx.s.lines, 0);
    put(fd, "2 17\nnext 1 2\n");
    PUMP_UNTIL(fx.s.lines == 2);
    ck_assert_str_eq(fx.s.text[0], "split.key 42 17");
    ck_assert_str_eq(fx.s.text[1], "next 1 2");
    close(fd);
    PUMP_UNTIL(stats()->open == 0);
    ck_assert_int_eq(fx.s.lines, 2);
    ck_assert_uint_eq(stats()->truncated, 0);
    finish();
}
END_TEST

/* A client that closes cleanly after a last line without a newline: delivered. */
START_TEST(test_clean_close_delivers_the_last_line)
{
    int fd;

    start("listeners:\n" TCP_GRAPHITE);
    fd = tcp_client(0);
    put(fd, "first 1 1\nlast 2 2");
    PUMP_UNTIL(fx.s.lines == 1);
    close(fd);
    PUMP_UNTIL(stats()->open == 0);
    ck_assert_int_eq(fx.s.lines, 2);
    ck_assert_str_eq(fx.s.text[1], "last 2 2");
    ck_assert_uint_eq(stats()->truncated, 0);
    finish();
}
END_TEST

/* A client whose connection fails mid-line: that partial line only is lost, counted. */
START_TEST(test_reset_mid_line_loses_the_partial_line)
{
    int fd;

    start("listeners:\n" TCP_GRAPHITE);
    fd = tcp_client(0);
    put(fd, "whole 1 1\nhal");
    PUMP_UNTIL(stats()->bytes[AD_PROTO_GRAPHITE] == 13);
    ck_assert_int_eq(fx.s.lines, 1);
    reset(fd);
    PUMP_UNTIL(stats()->open == 0);
    ck_assert_int_eq(fx.s.lines, 1);
    ck_assert_str_eq(fx.s.text[0], "whole 1 1");
    ck_assert_uint_eq(stats()->truncated, 1);
    /* a reset with nothing pending loses nothing */
    fd = tcp_client(0);
    put(fd, "again 1 1\n");
    PUMP_UNTIL(fx.s.lines == 2);
    reset(fd);
    PUMP_UNTIL(stats()->open == 0);
    ck_assert_uint_eq(stats()->truncated, 1);
    finish();
}
END_TEST

/* Lines over max_line are refused to the sink as AD_PE_TOO_LONG, whole, whether they
 * arrive in one read or several; the stream goes on. */
START_TEST(test_over_long_lines_refused_stream_goes_on)
{
    char big[200];
    int fd;

    start("max_line: 64\nlisteners:\n" TCP_GRAPHITE);
    memset(big, 'x', sizeof(big) - 2);
    big[sizeof(big) - 2] = '\n';
    big[sizeof(big) - 1] = 0;
    fd = tcp_client(0);
    put(fd, "ok.1 1 1\n");
    put(fd, big);
    put(fd, "ok.2 2 2\n");
    PUMP_UNTIL(fx.s.lines == 2);
    ck_assert_int_eq(fx.s.too_long, 1);
    ck_assert_str_eq(fx.s.text[1], "ok.2 2 2");
    /* split across writes: the first write alone passes max_line */
    big[sizeof(big) - 2] = 0;
    put(fd, big);
    PUMP_UNTIL(stats()->bytes[AD_PROTO_GRAPHITE] == 9 + 199 + 9 + 198);
    put(fd, "tail\nok.3 3 3\n");
    PUMP_UNTIL(fx.s.lines == 3);
    ck_assert_int_eq(fx.s.too_long, 2);
    ck_assert_str_eq(fx.s.text[2], "ok.3 3 3");
    /* a line of exactly max_line bytes passes */
    memset(big, 'y', 64);
    big[64] = '\n';
    big[65] = 0;
    put(fd, big);
    PUMP_UNTIL(fx.s.lines == 4);
    ck_assert_uint_eq(strlen(fx.s.text[3]), 64);
    ck_assert_int_eq(fx.s.too_long, 2);
    close(fd);
    PUMP_UNTIL(stats()->open == 0);
    finish();
}
END_TEST

/* A burst bigger than one read: read ahead with more() (done() always after it), every
 * line once, in order. */
START_TEST(test_burst_read_ahead_in_order)
{
    enum { LINES = 20000 };
    char *buf = malloc(LINES * 16), *p = buf;
    int fd;

    ck_assert_ptr_nonnull(buf);
    start("listeners:\n" TCP_GRAPHITE);
    fd = tcp_client(0);
    for (int i = 0; i < LINES; i++)
        p += sprintf(p, "seq %d\n", i);
    put_pumping(fd, buf, (size_t)(p - buf)); /* much of it waits before the loop reads */
    PUMP_UNTIL(fx.s.lines == LINES);
    ck_assert_int_eq(fx.s.out_of_order, 0);
    ck_assert_int_eq(fx.s.next_seq, LINES);
    ck_assert_int_ge(fx.s.more, 1);
    ck_assert_uint_eq(stats()->bytes[AD_PROTO_GRAPHITE], (uint64_t)(p - buf));
    close(fd);
    PUMP_UNTIL(stats()->open == 0);
    free(buf);
    finish();
}
END_TEST

/* A burst of exactly 8 reads (8 x 4096 bytes) ending in a line without a newline,
 * then a clean close: the listener reads ahead after the first full read, finds the end
 * of the stream there (not in libuv's read callback), and still delivers that last line. */
START_TEST(test_burst_then_clean_close_delivers_the_last_line)
{
    enum { TOTAL = 8 * 4096 }; /* in the kernel's buffers before the loop reads */
    char *buf = malloc(TOTAL + 1), *p = buf;
    int fd, n = 0;

    ck_assert_ptr_nonnull(buf);
    start("listeners:\n" TCP_GRAPHITE);
    fd = tcp_client(0);
    while (p - buf < TOTAL - 40)
        p += sprintf(p, "seq %d\n", n++);
    p += sprintf(p, "seq %d ", n);
    memset(p, 'x', (size_t)(buf + TOTAL - p)); /* the last line fills the last read */
    put_pumping(fd, buf, TOTAL);
    close(fd);
    PUMP_UNTIL(stats()->accepted == 1 && stats()->open == 0);
    ck_assert_int_eq(fx.s.lines, n + 1);
    ck_assert_int_eq(fx.s.next_seq, n + 1);
    ck_assert_int_eq(fx.s.out_of_order, 0);
    ck_assert_uint_eq(stats()->truncated, 0);
    ck_assert_uint_eq(stats()->bytes[AD_PROTO_GRAPHITE], TOTAL);
    free(buf);
    finish();
}
END_TEST

/* ---- UDP ---- */

START_TEST(test_udp_datagrams_of_several_lines)
{
    static const char d1[] = "a:1|c\nb:2|g\r\nc:3|ms";
    static const char d2[] = "d:4|c\n";
    char big[100];

    start("max_line: 64\nlisteners:\n" UDP_STATSD);
    ck_assert_int_ne(ad_listeners_port(fx.ls, 0), 0);
    datagram(0, d1, sizeof(d1) - 1);
    PUMP_UNTIL(fx.s.lines == 3);
    ck_assert_str_eq(fx.s.text[0], "a:1|c");
    ck_assert_str_eq(fx.s.text[1], "b:2|g");
    ck_assert_str_eq(fx.s.text[2], "c:3|ms"); /* a datagram's end ends its last line */
    ck_assert_int_eq(fx.s.proto[0], AD_PROTO_STATSD);
    ck_assert_uint_eq(stats()->datagrams[AD_PROTO_STATSD], 1);
    ck_assert_uint_eq(stats()->bytes[AD_PROTO_STATSD], sizeof(d1) - 1);
    datagram(0, d2, sizeof(d2) - 1);
    PUMP_UNTIL(fx.s.lines == 4);
    ck_assert_str_eq(fx.s.text[3], "d:4|c");
    ck_assert_uint_eq(stats()->datagrams[AD_PROTO_STATSD], 2);
    /* a partial line does not carry over to the next datagram */
    datagram(0, "e:5", 3);
    datagram(0, "|c\n", 3);
    PUMP_UNTIL(fx.s.lines == 6);
    ck_assert_str_eq(fx.s.text[4], "e:5");
    ck_assert_str_eq(fx.s.text[5], "|c");
    /* a line over max_line in a datagram is refused, the others kept */
    memset(big, 'z', sizeof(big));
    memcpy(big, "f:6|c\n", 6);
    big[sizeof(big) - 1] = '\n';
    datagram(0, big, sizeof(big));
    PUMP_UNTIL(stats()->datagrams[AD_PROTO_STATSD] == 5);
    PUMP_UNTIL(fx.s.lines == 7);
    ck_assert_str_eq(fx.s.text[6], "f:6|c");
    ck_assert_int_eq(fx.s.too_long, 1);
    ck_assert_uint_eq(stats()->accepted, 0); /* no stream connections */
    ck_assert_int_ge(fx.s.received, 5);
    finish();
}
END_TEST

/* ---- Unix sockets ---- */

START_TEST(test_unix_socket)
{
    static const char part1[] = "{\"series\":\"u\",\"value\":1}\n{\"series\":";
    static const char part2[] = "\"v\",\"value\":2}\n";
    char path[128];
    struct stat st;
    int fd;

    start("listeners:\n" UNIX_JSONL);
    snprintf(path, sizeof(path), "%s/j.sock", fx.dir);
    ck_assert_int_eq(ad_listeners_port(fx.ls, 0), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    fd = unix_client(path);
    put(fd, part1);
    PUMP_UNTIL(fx.s.lines == 1);
    ck_assert_str_eq(fx.s.text[0], "{\"series\":\"u\",\"value\":1}");
    ck_assert_int_eq(fx.s.proto[0], AD_PROTO_JSONL);
    put(fd, part2);
    PUMP_UNTIL(fx.s.lines == 2);
    ck_assert_str_eq(fx.s.text[1], "{\"series\":\"v\",\"value\":2}");
    ck_assert_uint_eq(stats()->accepted, 1);
    ck_assert_uint_eq(stats()->bytes[AD_PROTO_JSONL], strlen(part1) + strlen(part2));
    close(fd);
    PUMP_UNTIL(stats()->open == 0);
    finish();
    ck_assert_int_eq(stat(path, &st), -1); /* the socket file it bound is removed */
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_max_connections_refuses_and_counts)
{
    int a, b, c, d;

    start("max_connections: 2\nlisteners:\n" TCP_GRAPHITE UNIX_JSONL);
    a = tcp_client(0);
    b = tcp_client(0);
    PUMP_UNTIL(stats()->accepted == 2);
    ck_assert_uint_eq(stats()->open, 2);
    c = tcp_client(0); /* the kernel completes it; the listener closes it at once */
    PUMP_UNTIL(stats()->refused == 1);
    assert_refused(c);
    close(c);
    {
        char path[128];

        snprintf(path, sizeof(path), "%s/j.sock", fx.dir);
        d = unix_client(path); /* the limit is for every stream listener together */
        PUMP_UNTIL(stats()->refused == 2);
        assert_refused(d);
        close(d);
    }
    ck_assert_uint_eq(stats()->open, 2);
    ck_assert_uint_eq(stats()->accepted, 2);
    /* those accepted still work */
    put(a, "from.a 1 1\n");
    put(b, "from.b 1 1\n");
    PUMP_UNTIL(fx.s.lines == 2);
    /* room again once one leaves */
    close(a);
    PUMP_UNTIL(stats()->open == 1);
    c = tcp_client(0);
    PUMP_UNTIL(stats()->accepted == 3);
    put(c, "from.c 1 1\n");
    PUMP_UNTIL(fx.s.lines == 3);
    ck_assert_str_eq(fx.s.text[2], "from.c 1 1");
    ck_assert_uint_eq(stats()->refused, 2);
    close(b);
    close(c);
    PUMP_UNTIL(stats()->open == 0);
    finish();
}
END_TEST

/* The descriptor budget refuses a connection (counted there, not as max_connections);
 * a closed connection gives its descriptor back. */
START_TEST(test_fd_budget_refuses)
{
    ad_fdbudget b;
    int x, y;

    start("listeners:\n" TCP_GRAPHITE);
    ck_assert_int_eq(ad_fdbudget_init(&b, 0), 0);
    ad_fdbudget_measure(&b, b.base + AD_FD_KEEP + AD_FD_KEEP_HTTP + 1); /* room for one */
    ad_listeners_set_fdbudget(fx.ls, &b);
    x = tcp_client(0);
    PUMP_UNTIL(stats()->accepted == 1);
    ck_assert_uint_eq(b.used, 1);
    y = tcp_client(0);
    PUMP_UNTIL(b.refused[AD_FD_STREAM] == 1);
    assert_refused(y);
    close(y);
    ck_assert_uint_eq(stats()->refused, 0);
    ck_assert_uint_eq(stats()->accepted, 1);
    put(x, "kept 1 1\n");
    PUMP_UNTIL(fx.s.lines == 1);
    close(x);
    PUMP_UNTIL(stats()->open == 0);
    ck_assert_uint_eq(b.used, 0);
    y = tcp_client(0);
    PUMP_UNTIL(stats()->accepted == 2);
    ck_assert_uint_eq(b.used, 1);
    close(y);
    PUMP_UNTIL(stats()->open == 0);
    ck_assert_uint_eq(b.used, 0);
    finish();
    ad_fdbudget_close(&b);
}
END_TEST

/* ---- lifecycle ---- */

/* Closing the listeners delivers a partial line still waiting in a connection. */
START_TEST(test_close_delivers_waiting_partial_line)
{
    int fd;

    start("listeners:\n" TCP_GRAPHITE UDP_STATSD);
    fd = tcp_client(0);
    put(fd, "pending 7 7");
    PUMP_UNTIL(stats()->bytes[AD_PROTO_GRAPHITE] == 11);
    ck_assert_int_eq(fx.s.lines, 0);
    ad_listeners_close(fx.ls, closed_cb, &fx);
    ck_assert_int_eq(fx.s.lines, 1);
    ck_assert_str_eq(fx.s.text[0], "pending 7 7");
    fx.ls = NULL;
    uv_close((uv_handle_t *)&fx.tick, NULL);
    uv_run(&fx.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(fx.closed, 1);
    ck_assert_int_eq(uv_loop_close(&fx.loop), 0);
    assert_refused(fd);
    close(fd);
    ad_config_free(&fx.cfg);
    rmdir(fx.dir);
}
END_TEST

/* A reload: the unchanged listener keeps its port and its open connection (a partial
 * line in it survives), the one no longer configured closes, a new one binds. */
START_TEST(test_reconcile_keeps_unchanged_listeners)
{
    ad_config next;
    char yaml[1024], err[ERRLEN] = "";
    int port, fd, fd2;

    start("listeners:\n" TCP_GRAPHITE UDP_STATSD);
    port = ad_listeners_port(fx.ls, 0);
    fd = tcp_client(0);
    put(fd, "kept.partial");
    PUMP_UNTIL(stats()->bytes[AD_PROTO_GRAPHITE] == 12);

    snprintf(yaml, sizeof(yaml), "listeners:\n" TCP_JSONL TCP_GRAPHITE);
    ck_assert_int_eq(ad_config_parse(yaml, strlen(yaml), "t2.yaml", &next, err, sizeof(err)), 0);
    ck_assert_msg(ad_listeners_reconcile(fx.ls, &next, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(ad_listeners_count(fx.ls), 2);
    ck_assert_int_eq(ad_listeners_port(fx.ls, 1), port); /* the graphite one, now second */
    ck_assert_int_ne(ad_listeners_port(fx.ls, 0), 0);
    ck_assert_int_ne(ad_listeners_port(fx.ls, 0), port);
    ck_assert_int_eq(fx.s.lines, 0);
    put(fd, " 1 1\n");
    PUMP_UNTIL(fx.s.lines == 1);
    ck_assert_str_eq(fx.s.text[0], "kept.partial 1 1");
    ck_assert_int_eq(fx.s.proto[0], AD_PROTO_GRAPHITE);
    fd2 = tcp_client(0);
    put(fd2, "{\"series\":\"n\",\"value\":1}\n");
    PUMP_UNTIL(fx.s.lines == 2);
    ck_assert_int_eq(fx.s.proto[1], AD_PROTO_JSONL);
    close(fd);
    close(fd2);
    PUMP_UNTIL(stats()->open == 0);
    finish();
    ad_config_free(&next);
}
END_TEST

/* A listener that cannot bind: an error naming it, nothing left bound, the loop ends. */
START_TEST(test_bind_failure_names_the_listener)
{
    ad_ingest_sink sink = {on_line, on_error, NULL, NULL, NULL, &fx.s};
    ad_listeners *ls = NULL;
    char yaml[512], err[ERRLEN] = "";
    ad_config c2;

    start("listeners:\n" TCP_GRAPHITE);
    /* a set whose second listener wants the port the first set holds: the set is refused,
     * naming that listener, and its first listener (bound) is closed again */
    snprintf(yaml, sizeof(yaml),
             "listeners:\n" UDP_STATSD
             "  - {protocol: graphite, transport: tcp, address: 127.0.0.1, port: %d}\n",
             ad_listeners_port(fx.ls, 0));
    ck_assert_int_eq(ad_config_parse(yaml, strlen(yaml), "t3.yaml", &c2, err, sizeof(err)), 0);
    ck_assert_int_lt(ad_listeners_start(&fx.loop, &c2, &sink, NULL, NULL, &ls, err, sizeof(err)),
                     0);
    ck_assert_ptr_null(ls);
    ck_assert_msg(strstr(err, "graphite-tcp") && strstr(err, "127.0.0.1"), "%s", err);
    /* an address that is not one */
    snprintf(c2.listeners[1].address, sizeof(c2.listeners[1].address), "not-an-ip");
    ck_assert_int_lt(ad_listeners_start(&fx.loop, &c2, &sink, NULL, NULL, &ls, err, sizeof(err)),
                     0);
    ck_assert_ptr_null(ls);
    ck_assert_msg(strstr(err, "not-an-ip"), "%s", err);
    ad_config_free(&c2);
    ck_assert_uint_eq(stats()->accepted, 0);
    finish(); /* uv_loop_close: the failed sets closed every handle they opened */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("listener");
    TCase *tcp = tcase_create("tcp");
    TCase *udp = tcase_create("udp");
    TCase *unx = tcase_create("unix");
    TCase *lim = tcase_create("limits");
    TCase *life = tcase_create("lifecycle");

    /* room for a wait to time out as a failure with its message (WAIT_NS) */
    tcase_set_timeout(tcp, 30);
    tcase_set_timeout(udp, 30);
    tcase_set_timeout(unx, 30);
    tcase_set_timeout(lim, 30);
    tcase_set_timeout(life, 30);
    tcase_add_test(tcp, test_tcp_lines_to_the_sink);
    tcase_add_test(tcp, test_line_split_across_writes);
    tcase_add_test(tcp, test_clean_close_delivers_the_last_line);
    tcase_add_test(tcp, test_reset_mid_line_loses_the_partial_line);
    tcase_add_test(tcp, test_over_long_lines_refused_stream_goes_on);
    tcase_add_test(tcp, test_burst_read_ahead_in_order);
    tcase_add_test(tcp, test_burst_then_clean_close_delivers_the_last_line);
    tcase_add_test(udp, test_udp_datagrams_of_several_lines);
    tcase_add_test(unx, test_unix_socket);
    tcase_add_test(lim, test_max_connections_refuses_and_counts);
    tcase_add_test(lim, test_fd_budget_refuses);
    tcase_add_test(life, test_close_delivers_waiting_partial_line);
    tcase_add_test(life, test_reconcile_keeps_unchanged_listeners);
    tcase_add_test(life, test_bind_failure_names_the_listener);
    suite_add_tcase(s, tcp);
    suite_add_tcase(s, udp);
    suite_add_tcase(s, unx);
    suite_add_tcase(s, lim);
    suite_add_tcase(s, life);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
