/*
 * bench_loadgen.c - the load generator of scripts/bench_ingest: N series of synthetic
 * metrics in Graphite plaintext over TCP, one round (one sample of every series, the
 * timestamp one step later) after another, with spikes injected into chosen series at
 * known rounds. Plain sockets and threads, no libuv: each thread owns one connection and
 * the series i with i % conns == its index, formats whole rounds into a big buffer and
 * writes it in large chunks.
 *
 *   bench_loadgen --port P [--host 127.0.0.1] --series N [--conns C]
 *                 [--rounds R | --seconds S] [--round0 R0] [--rate SPS]
 *                 [--t0 TS] [--step S] [--prefix bench.s] [--seed N] [--chunk BYTES]
 *                 [--inject K (--inject-from R1 --inject-to R2 | --inject-at-from S1
 *                  --inject-at-to S2) --inject-file PATH]
 *
 * Series i is `<prefix><i>.value` with values
 *   offset_i + amp_i * sin(2 pi (round / period_i) + phase_i) + noise (sd = 2% of amp_i),
 * period_i in [24, 240) rounds, at timestamp t0 + round * step. --rate caps the total
 * samples/s (0, the default: as fast as the daemon takes them); --seconds stops each
 * thread at the first round boundary after S seconds, --rounds after R rounds
 * (starting at --round0, so a second run continues the first one's timestamps).
 *
 * --chunk: bytes formatted before each write() (default 1 MiB; a paced run wants less,
 * so the daemon sees a steady trickle rather than bursts).
 *
 * Injection: K series spread over 0..N-1 (shifted by --inject-offset: a series that
 * had a spike already has it in the range it has seen, so a second one of the same
 * size is no surprise to it) each get one spike of offset + 25 * amp
 * (over a thousand noise sigmas, far outside the range seen) at a round in
 * [inject-from, inject-to), spread evenly, or (--inject-at-*) in the first round that
 * starts at least S seconds after the thread started, S spread evenly over [S1, S2)
 * (for runs timed with --seconds, whose rounds are not known beforehand); each spike actually sent is written to the
 * inject file as {"series":"...","ts":...,"round":...,"value":...}.
 * At the end one JSON line goes to stdout: samples and bytes sent, rounds, seconds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_DEFAULT (1u << 20) /* bytes per write() */
#define LINE_MAX_BYTES 96
#define SIN_TABLE 4096

typedef struct series {
    char *prefix; /* "bench.s123.value " */
    int prefix_len;
    double offset, amp, phase, period;
    long inject_round; /* -1: none */
    double inject_at;  /* seconds after the start, -1: none (--inject-at) */
} series;

typedef struct opts {
    const char *host, *prefix, *inject_file;
    int port, conns;
    size_t chunk; /* bytes per write() */
    long inject_offset;
    long nseries, rounds, round0, inject, inject_from, inject_to;
    double seconds, rate, t0, step, inject_at_from, inject_at_to;
    uint64_t seed;
} opts;

typedef struct worker {
    int idx;
    pthread_t th;
    const opts *o;
    series *sv;   /* every series; this worker takes i % conns == idx */
    uint64_t rng;
    uint64_t sent, bytes;
    long rounds_done;
    int fd;
    int err;
} worker;

static float sin_table[SIN_TABLE];
static FILE *inject_fp;
static pthread_mutex_t inject_mu = PTHREAD_MUTEX_INITIALIZER;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s)
{
    return (double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Cheap noise: sum of 4 uniforms, centred, scaled to unit variance (close to normal). */
static double noise(uint64_t *s)
{
    uint64_t z = splitmix(s);
    double a = (double)(z & 0xffff) + (double)((z >> 16) & 0xffff) +
               (double)((z >> 32) & 0xffff) + (double)(z >> 48);

    return (a / 65536.0 - 2.0) * 1.7320508075688772; /* var of sum = 4/12 */
}

/* Writes v with 4 decimals (|v| < 1e12), returns the length. */
static int fmt_value(char *p, double v)
{
    char tmp[32];
    int n = 0, len = 0;
    int64_t x;
    uint64_t ip, fp;

    if (v < 0) {
        p[len++] = '-';
        v = -v;
    }
    x = (int64_t)(v * 10000.0 + 0.5);
    ip = (uint64_t)x / 10000u;
    fp = (uint64_t)x % 10000u;
    do {
        tmp[n++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip);
    while (n)
        p[len++] = tmp[--n];
    p[len++] = '.';
    p[len++] = (char)('0' + fp / 1000);
    p[len++] = (char)('0' + fp / 100 % 10);
    p[len++] = (char)('0' + fp / 10 % 10);
    p[len++] = (char)('0' + fp % 10);
    return len;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int connect_to(const char *host, int port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai, *a;
    char ps[16];
    int fd = -1, one = 1, sz = 8 << 20;

    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0)
        return -1;
    for (a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void *run(void *arg)
{
    worker *w = arg;
    const opts *o = w->o;
    char *buf = malloc(o->chunk + LINE_MAX_BYTES * 2);
    size_t len = 0;
    long nmine = o->nseries / o->conns + (w->idx < o->nseries % o->conns);
    double rate = o->rate > 0 ? o->rate / o->conns : 0, start;
    long r;

    if (!buf || nmine <= 0) {
        free(buf);
        return NULL;
    }
    start = now_s();
    for (r = o->round0; o->rounds <= 0 || r < o->round0 + o->rounds; r++) {
        double ts = o->t0 + (double)r * o->step;
        char tsbuf[40];
        int tslen;

        double tround = now_s() - start;

        if (o->seconds > 0 && r > o->round0 && tround >= o->seconds)
            break;
        tslen = snprintf(tsbuf, sizeof(tsbuf), " %.0f\n", ts);
        if (o->step != floor(o->step))
            tslen = snprintf(tsbuf, sizeof(tsbuf), " %.3f\n", ts);
        for (long i = w->idx; i < o->nseries; i += o->conns) {
            series *s = &w->sv[i];
            double ph = (double)r / s->period + s->phase;
            double v;
            char *p;

            ph -= floor(ph);
            v = s->offset + s->amp * sin_table[(int)(ph * SIN_TABLE) & (SIN_TABLE - 1)] +
                0.02 * s->amp * noise(&w->rng);
            if (s->inject_round == r || (s->inject_at >= 0 && tround >= s->inject_at)) {
                s->inject_at = -1;
                v = s->offset + 25.0 * s->amp;
                pthread_mutex_lock(&inject_mu);
                if (inject_fp)
                    fprintf(inject_fp,
                            "{\"series\":\"%.*s\",\"ts\":%.3f,\"round\":%ld,\"value\":%.4f}\n",
                            s->prefix_len - 1, s->prefix, ts, r, v);
                pthread_mutex_unlock(&inject_mu);
            }
            p = buf + len;
            memcpy(p, s->prefix, (size_t)s->prefix_len);
            p += s->prefix_len;
            p += fmt_value(p, v);
            memcpy(p, tsbuf, (size_t)tslen);
            p += tslen;
            len = (size_t)(p - buf);
            w->sent++;
            if (len >= o->chunk) {
                if (write_all(w->fd, buf, len) < 0) {
                    w->err = errno;
                    goto out;
                }
                w->bytes += len;
                len = 0;
                if (rate > 0) { /* sleep until the schedule catches up */
                    double due = start + (double)w->sent / rate;
                    double t = now_s();

                    if (due > t) {
                        struct timespec d = {.tv_sec = (time_t)(due - t),
                                             .tv_nsec = (long)(fmod(due - t, 1.0) * 1e9)};
                        nanosleep(&d, NULL);
                    }
                }
            }
        }
        w->rounds_done++;
        /* at a low rate a round may be far below a chunk: flush each round then */
        if (rate > 0 && len > 0 && (double)len < (double)o->chunk && rate < 2e5) {
            if (write_all(w->fd, buf, len) < 0) {
                w->err = errno;
                goto out;
            }
            w->bytes += len;
            len = 0;
            double due = start + (double)w->sent / rate, t = now_s();
            if (due > t) {
                struct timespec d = {.tv_sec = (time_t)(due - t),
                                     .tv_nsec = (long)(fmod(due - t, 1.0) * 1e9)};
                nanosleep(&d, NULL);
            }
        }
    }
    if (len > 0) {
        if (write_all(w->fd, buf, len) < 0)
            w->err = errno;
        else
            w->bytes += len;
    }
out:
    free(buf);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_loadgen --port P [--host H] --series N [--conns C] "
            "[--rounds R | --seconds S] [--round0 R0] [--rate SPS] [--t0 TS] [--step S] "
            "[--prefix P] [--seed N] [--chunk BYTES] [--inject-offset J] [--inject K (--inject-from R1 --inject-to R2 | "
            "--inject-at-from S1 --inject-at-to S2) --inject-file PATH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    opts o = {.host = "127.0.0.1", .prefix = "bench.s", .conns = 1, .nseries = 1000,
              .t0 = 1700000000.0, .step = 1.0, .seed = 1};
    worker *wv;
    series *sv;
    uint64_t rng, sent = 0, bytes = 0;
    long rmin = -1, rmax = 0;
    double t0, el;
    int err = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
        if (ARG("--host"))
            o.host = v;
        else if (ARG("--port"))
            o.port = atoi(v);
        else if (ARG("--series"))
            o.nseries = atol(v);
        else if (ARG("--conns"))
            o.conns = atoi(v);
        else if (ARG("--rounds"))
            o.rounds = atol(v);
        else if (ARG("--seconds"))
            o.seconds = atof(v);
        else if (ARG("--round0"))
            o.round0 = atol(v);
        else if (ARG("--rate"))
            o.rate = atof(v);
        else if (ARG("--t0"))
            o.t0 = atof(v);
        else if (ARG("--step"))
            o.step = atof(v);
        else if (ARG("--prefix"))
            o.prefix = v;
        else if (ARG("--seed"))
            o.seed = strtoull(v, NULL, 10);
        else if (ARG("--inject"))
            o.inject = atol(v);
        else if (ARG("--inject-from"))
            o.inject_from = atol(v);
        else if (ARG("--inject-to"))
            o.inject_to = atol(v);
        else if (ARG("--inject-at-from"))
            o.inject_at_from = atof(v);
        else if (ARG("--inject-at-to"))
            o.inject_at_to = atof(v);
        else if (ARG("--inject-offset"))
            o.inject_offset = atol(v);
        else if (ARG("--chunk"))
            o.chunk = (size_t)atol(v);
        else if (ARG("--inject-file"))
            o.inject_file = v;
        else
            usage();
#undef ARG
    }
    if (o.port <= 0 || o.nseries <= 0 || o.conns <= 0 || (o.rounds <= 0 && o.seconds <= 0))
        usage();
    if (o.chunk < 256)
        o.chunk = CHUNK_DEFAULT;
    if (o.conns > o.nseries)
        o.conns = (int)o.nseries;
    if (o.inject > o.nseries)
        o.inject = o.nseries;
    if (o.inject > 0 && ((o.inject_to <= o.inject_from && o.inject_at_to <= o.inject_at_from) ||
                         !o.inject_file))
        usage();

    for (int i = 0; i < SIN_TABLE; i++)
        sin_table[i] = (float)sin(2.0 * M_PI * i / SIN_TABLE);
    sv = calloc((size_t)o.nseries, sizeof(*sv));
    if (!sv)
        return 1;
    rng = o.seed;
    for (long i = 0; i < o.nseries; i++) {
        char tmp[256];

        sv[i].prefix_len = snprintf(tmp, sizeof(tmp), "%s%ld.value ", o.prefix, i);
        sv[i].prefix = strdup(tmp);
        sv[i].offset = 10.0 + 90.0 * uniform(&rng);
        sv[i].amp = 1.0 + 9.0 * uniform(&rng);
        sv[i].period = 24.0 + 216.0 * uniform(&rng);
        sv[i].phase = uniform(&rng);
        sv[i].inject_round = -1;
        sv[i].inject_at = -1;
    }
    for (long j = 0; j < o.inject; j++) {
        long i = ((long)((double)j * (double)o.nseries / (double)o.inject) + o.inject_offset) %
                 o.nseries;

        if (o.inject_at_to > o.inject_at_from)
            sv[i].inject_at = o.inject_at_from + (o.inject_at_to - o.inject_at_from) *
                                                     (double)j / (double)o.inject;
        else
            sv[i].inject_round =
                o.inject_from + (long)((double)j * (double)(o.inject_to - o.inject_from) /
                                       (double)o.inject);
    }
    if (o.inject_file && o.inject > 0 && !(inject_fp = fopen(o.inject_file, "a"))) {
        perror(o.inject_file);
        return 1;
    }

    wv = calloc((size_t)o.conns, sizeof(*wv));
    for (int k = 0; k < o.conns; k++) {
        wv[k].idx = k;
        wv[k].o = &o;
        wv[k].sv = sv;
        wv[k].rng = o.seed * 7919u + (uint64_t)k + (uint64_t)o.round0 * 104729u;
        wv[k].fd = connect_to(o.host, o.port);
        if (wv[k].fd < 0) {
            fprintf(stderr, "bench_loadgen: cannot connect to %s:%d: %s\n", o.host, o.port,
                    strerror(errno));
            return 1;
        }
    }
    t0 = now_s();
    for (int k = 0; k < o.conns; k++)
        pthread_create(&wv[k].th, NULL, run, &wv[k]);
    for (int k = 0; k < o.conns; k++) {
        pthread_join(wv[k].th, NULL);
        sent += wv[k].sent;
        bytes += wv[k].bytes;
        if (wv[k].err)
            err = wv[k].err;
        if (rmin < 0 || wv[k].rounds_done < rmin)
            rmin = wv[k].rounds_done;
        if (wv[k].rounds_done > rmax)
            rmax = wv[k].rounds_done;
    }
    el = now_s() - t0; /* everything written to the kernel; close waits for nothing */
    for (int k = 0; k < o.conns; k++)
        close(wv[k].fd);
    if (inject_fp)
        fclose(inject_fp);
    printf("{\"samples\":%llu,\"bytes\":%llu,\"rounds_min\":%ld,\"rounds_max\":%ld,"
           "\"round_end\":%ld,\"seconds\":%.3f,\"rate\":%.0f,\"conns\":%d,\"error\":\"%s\"}\n",
           (unsigned long long)sent, (unsigned long long)bytes, rmin, rmax,
           o.round0 + rmax, el, el > 0 ? (double)sent / el : 0.0, o.conns,
           err ? strerror(err) : "");
    for (long i = 0; i < o.nseries; i++)
        free(sv[i].prefix);
    free(sv);
    free(wv);
    return err ? 1 : 0;
}
