/*
 * ctl_replay.c - anomalyctl replay: CSV rows out as protocol lines, paced, over TCP or
 * UDP. A sender owns its socket and a buffer of whole lines not yet written.
 */
#include "ctl/ctl_replay.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl/csv.h"
#include "ctl/ctl_http.h"
#include "err.h"

#define MAX_LINE 4096
#define MAX_REPORTED 20
#define DGRAM_MAX 1400          /* bytes a UDP datagram carries at most (under an MTU) */
#define HINT_LISTENER "is anomalyd running with a listener there? see listeners in its config"

typedef struct sender {
    int fd;
    int udp;
    const char *to;             /* HOST:PORT, for messages */
    char buf[65536];            /* whole lines not yet written */
    size_t len;
    size_t cap;                 /* sizeof(buf), or DGRAM_MAX with udp */
    unsigned long long queued;  /* lines in buf */
    unsigned long long sent;    /* lines written */
} sender;

/* Writes out what is buffered (one datagram with udp). 0, or -AD_EIO with a message. */
static int flush(sender *s, char *err, size_t errlen)
{
    size_t off = 0;

    while (off < s->len) {
        ssize_t n = send(s->fd, s->buf + off, s->len - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "sending to %s: %s%s", s->to,
                     errno == EAGAIN ? "timed out (anomalyd stopped reading)" : strerror(errno),
                     errno == ECONNREFUSED ? " (" HINT_LISTENER ")" : "");
            return -AD_EIO;
        }
        off += (size_t)n;
    }
    s->len = 0;
    s->sent += s->queued;
    s->queued = 0;
    return 0;
}

/* Queues one line, writing out first when it would not fit. */
static int queue(sender *s, const char *line, size_t len, char *err, size_t errlen)
{
    if (s->len + len > s->cap && flush(s, err, errlen) < 0)
        return -AD_EIO;
    memcpy(s->buf + s->len, line, len);
    s->len += len;
    s->queued++;
    return 0;
}

int ad_replay_format(enum ad_replay_proto proto, const char *name, double ts, double value,
                     double prec_per_s, char *out, size_t outcap)
{
    int n = -1;

    switch (proto) {
    case AD_REPLAY_GRAPHITE:
        n = snprintf(out, outcap, "%s %.17g %.15g\n", name, value, ts);
        break;
    case AD_REPLAY_INFLUX:
        n = snprintf(out, outcap, "%s value=%.17g %.0f\n", name, value, round(ts * prec_per_s));
        break;
    case AD_REPLAY_JSONL:
        n = snprintf(out, outcap, "{\"series\":%s,\"value\":%.17g,\"ts\":%.15g}\n", name, value,
                     ts);
        break;
    }
    return n < 0 || (size_t)n >= outcap ? -1 : n;
}

/* The default series name: FILE's base name without extension, made a plain path. */
static void name_from_path(const char *path, char *out, size_t outcap)
{
    const char *base = strrchr(path, '/'), *dot;
    size_t n;

    base = base ? base + 1 : path;
    if (!strcmp(path, "-") || !base[0])
        base = "replay";
    dot = strrchr(base, '.');
    n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    if (n >= outcap)
        n = outcap - 1;
    for (size_t i = 0; i < n; i++) {
        char c = base[i];

        out[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.' ? c : '_';
    }
    out[n] = '\0';
}

/* The name as the protocol writes it. 0, or -1 with a message (a usage error). */
static int protocol_name(enum ad_replay_proto proto, const char *name, char *out,
                         size_t outcap, char *err, size_t errlen)
{
    size_t n = 0;

    if (!name[0]) {
        snprintf(err, errlen, "--series must not be empty");
        return -1;
    }
    if (proto == AD_REPLAY_GRAPHITE) {
        if (strpbrk(name, " \t\r\n") || strlen(name) >= outcap) {
            snprintf(err, errlen, "a Graphite series name has no spaces: '%.200s'", name);
            return -1;
        }
        strcpy(out, name);
        return 0;
    }
    if (proto == AD_REPLAY_INFLUX) { /* a measurement: escape commas and spaces */
        for (const char *p = name; *p; p++) {
            if (*p == '\n' || *p == '\r' || n + 3 > outcap) {
                snprintf(err, errlen, "not an Influx measurement: '%.200s'", name);
                return -1;
            }
            if (*p == ',' || *p == ' ')
                out[n++] = '\\';
            out[n++] = *p;
        }
        out[n] = '\0';
        return 0;
    }
    {
        cJSON *s = cJSON_CreateString(name);
        char *j = s ? cJSON_PrintUnformatted(s) : NULL;
        int ok = j && strlen(j) < outcap;

        if (ok)
            strcpy(out, j);
        else
            snprintf(err, errlen, "series name too long or out of memory");
        free(j);
        cJSON_Delete(s);
        return ok ? 0 : -1;
    }
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: anomalyctl replay FILE --to HOST:PORT [--protocol graphite|influx|jsonl]\n"
            "           [--series NAME] [--rate N | --as-fast-as-possible] [--udp]\n"
            "           [--precision ns|us|ms|s]\n"
            "Sends a timestamp,value CSV (NAB's format; - for stdin) to an anomalyd listener,\n"
            "one line per row with the row's timestamp.\n"
            "  --to HOST:PORT          the listener (see listeners in anomalyd's config)\n"
            "  --protocol P            graphite (default), influx or jsonl\n"
            "  --series NAME           the series (default: the file's name)\n"
            "  --rate N                lines a second (1000)\n"
            "  --as-fast-as-possible   no pacing\n"
            "  --udp                   UDP datagrams instead of one TCP connection\n"
            "  --precision P           influx: timestamp unit of the listener (ns)\n");
}

enum { O_TO = 256, O_PROTOCOL, O_SERIES, O_RATE, O_FAST, O_UDP, O_PRECISION, O_HELP };

/* What the command line asked for. */
typedef struct replay_args {
    const char *path, *to, *series;
    enum ad_replay_proto proto;
    double rate;                /* lines a second; 0: as fast as possible */
    double prec_per_s;          /* influx timestamp units a second */
    int udp;
} replay_args;

/* 0, or 2 after a message on a usage error (or 0 with a->path NULL after --help). */
static int parse_args(int argc, char **argv, replay_args *a)
{
    static const struct option opts[] = {
        {"to", required_argument, NULL, O_TO},
        {"protocol", required_argument, NULL, O_PROTOCOL},
        {"series", required_argument, NULL, O_SERIES},
        {"rate", required_argument, NULL, O_RATE},
        {"as-fast-as-possible", no_argument, NULL, O_FAST},
        {"udp", no_argument, NULL, O_UDP},
        {"precision", required_argument, NULL, O_PRECISION},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    char host[256], port[16], err[256];
    int o, rate_set = 0, fast = 0;

    memset(a, 0, sizeof(*a));
    a->rate = 1000;
    a->prec_per_s = 1e9;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;

        switch (o) {
        case O_TO: a->to = optarg; break;
        case O_SERIES: a->series = optarg; break;
        case O_UDP: a->udp = 1; break;
        case O_FAST: fast = 1; break;
        case O_PROTOCOL:
            if (!strcmp(optarg, "graphite"))
                a->proto = AD_REPLAY_GRAPHITE;
            else if (!strcmp(optarg, "influx"))
                a->proto = AD_REPLAY_INFLUX;
            else if (!strcmp(optarg, "jsonl"))
                a->proto = AD_REPLAY_JSONL;
            else {
                fprintf(stderr, "anomalyctl replay: --protocol takes graphite, influx or "
                        "jsonl, got '%s'\n", optarg);
                return 2;
            }
            break;
        case O_RATE:
            errno = 0;
            a->rate = strtod(optarg, &end);
            if (end == optarg || *end || errno || !(a->rate > 0) || !isfinite(a->rate)) {
                fprintf(stderr, "anomalyctl replay: --rate takes lines a second > 0, got "
                        "'%s'\n", optarg);
                return 2;
            }
            rate_set = 1;
            break;
        case O_PRECISION:
            if (!strcmp(optarg, "s"))
                a->prec_per_s = 1;
            else if (!strcmp(optarg, "ms"))
                a->prec_per_s = 1e3;
            else if (!strcmp(optarg, "us") || !strcmp(optarg, "u"))
                a->prec_per_s = 1e6;
            else if (!strcmp(optarg, "ns") || !strcmp(optarg, "n"))
                a->prec_per_s = 1e9;
            else {
                fprintf(stderr, "anomalyctl replay: --precision takes ns, us, ms or s\n");
                return 2;
            }
            break;
        case O_HELP:
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (rate_set && fast) {
        fprintf(stderr, "anomalyctl replay: --rate and --as-fast-as-possible exclude each "
                "other\n");
        return 2;
    }
    if (fast)
        a->rate = 0;
    if (optind != argc - 1) {
        fprintf(stderr, "anomalyctl replay: give one FILE (or - for stdin)\n");
        usage(stderr);
        return 2;
    }
    a->path = argv[optind];
    if (!a->to) {
        fprintf(stderr, "anomalyctl replay: --to HOST:PORT names the listener to send to\n");
        return 2;
    }
    if (ad_ctl_split_address(a->to, "--to", host, sizeof(host), port, sizeof(port), err,
                             sizeof(err)) < 0) {
        fprintf(stderr, "anomalyctl replay: %s\n", err);
        return 2;
    }
    return 0;
}

/* One row: 0 and the line in out, or a reason it is skipped. */
static const char *row(char *line, const replay_args *a, const char *name, char *out,
                       size_t outcap, int *len)
{
    char *ts_s, *v_s, *end;
    double ts, v;

    if (ad_csv_split2(line, &ts_s, &v_s))
        return "not two comma-separated fields";
    if (ad_csv_parse_time(ts_s, &ts))
        return "bad timestamp";
    if (!(ts >= 0 && ts < 1e11))
        return "timestamp outside 1970..5138";
    errno = 0;
    v = strtod(v_s, &end);
    while (*end == ' ' || *end == '\t')
        end++;
    if (end == v_s || *end)
        return "value is not a number";
    if (!isfinite(v))
        return "value is not finite";
    *len = ad_replay_format(a->proto, name, ts, v, a->prec_per_s, out, outcap);
    return *len < 0 ? "line too long" : NULL;
}

/* Waits until the i-th line is due. */
static void pace(double start, unsigned long long i, double rate)
{
    double due = start + (double)i / rate, left;

    while ((left = due - ad_mono_now()) > 0) {
        struct timespec ts = {(time_t)left, (long)((left - floor(left)) * 1e9)};

        nanosleep(&ts, NULL);
    }
}

int ad_ctl_replay(int argc, char **argv)
{
    static const char *const proto_names[] = {"graphite", "influx", "jsonl"};
    replay_args a;
    sender *s = NULL;
    FILE *in = stdin;
    char line[MAX_LINE], out[MAX_LINE + 512], name[1024], pname[3 * 1024], err[512];
    unsigned long long lineno = 0, bad = 0;
    double start;
    int rc = parse_args(argc, argv, &a), fd;

    if (rc || !a.path)
        return rc;
    if (a.series)
        snprintf(name, sizeof(name), "%s", a.series);
    else
        name_from_path(a.path, name, sizeof(name));
    if (protocol_name(a.proto, name, pname, sizeof(pname), err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyctl replay: %s\n", err);
        return 2;
    }
    rc = 1;
    if (strcmp(a.path, "-") && !(in = fopen(a.path, "r"))) {
        fprintf(stderr, "anomalyctl replay: %s: %s\n", a.path, strerror(errno));
        return 1;
    }
    fd = ad_ctl_connect(a.to, "--to", a.udp ? SOCK_DGRAM : SOCK_STREAM, AD_CTL_TIMEOUT,
                        HINT_LISTENER, err, sizeof(err));
    if (fd < 0) {
        fprintf(stderr, "anomalyctl replay: %s\n", err);
        goto out_close_file;
    }
    s = malloc(sizeof(*s));
    if (!s) {
        fprintf(stderr, "anomalyctl replay: out of memory\n");
        close(fd);
        goto out_close_file;
    }
    s->fd = fd;
    s->udp = a.udp;
    s->to = a.to;
    s->len = 0;
    s->queued = s->sent = 0;
    s->cap = a.udp ? DGRAM_MAX : sizeof(s->buf);
    ad_ctl_set_blocking(fd, AD_CTL_TIMEOUT); /* from here, with a deadline on each write */
    start = ad_mono_now();
    while (fgets(line, sizeof(line), in)) {
        size_t n = strlen(line);
        const char *why = NULL;
        int len = 0;

        lineno++;
        if (n == sizeof(line) - 1 && line[n - 1] != '\n') { /* giant line: skip the rest */
            int ch;

            while ((ch = fgetc(in)) != EOF && ch != '\n')
                ;
            why = "line too long";
        }
        if (!why && lineno == 1 && ad_csv_is_header(line))
            continue;
        if (!why && strspn(line, " \t\r\n") == n)
            continue; /* blank */
        if (!why)
            why = row(line, &a, pname, out, sizeof(out), &len);
        if (why) {
            if (bad++ < MAX_REPORTED)
                fprintf(stderr, "anomalyctl replay: %s:%llu: %s; skipped\n", a.path, lineno,
                        why);
            continue;
        }
        if (a.rate > 0 && ad_mono_now() < start + (double)(s->sent + s->queued) / a.rate) {
            if (flush(s, err, sizeof(err)) < 0)
                goto out_report;
            pace(start, s->sent, a.rate);
        }
        if (queue(s, out, (size_t)len, err, sizeof(err)) < 0)
            goto out_report;
    }
    if (ferror(in)) {
        snprintf(err, sizeof(err), "%s: read error: %s", a.path, strerror(errno));
        goto out_report;
    }
    if (flush(s, err, sizeof(err)) < 0)
        goto out_report;
    if (!a.udp)
        shutdown(fd, SHUT_WR);
    rc = 0;
out_report:
    if (rc)
        fprintf(stderr, "anomalyctl replay: %s\n", err);
    if (bad > MAX_REPORTED)
        fprintf(stderr, "anomalyctl replay: %s: %llu bad rows in all\n", a.path, bad);
    printf("%s: %llu lines sent to %s (%s over %s) in %.2f s; %llu bad rows skipped\n",
           a.path, s->sent, a.to, proto_names[a.proto],
           a.udp ? "udp" : "tcp", ad_mono_now() - start, bad);
    close(fd);
    free(s);
out_close_file:
    if (in != stdin)
        fclose(in);
    return rc;
}
