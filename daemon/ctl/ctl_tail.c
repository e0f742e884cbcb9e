/*
 * ctl_tail.c - anomalyctl tail: a blocking client of the events socket (TCP through
 * ad_ctl_connect, ctl_http.h; or a Unix socket).
 */
#include "ctl/ctl_tail.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/ctl_http.h"
#include "text.h"

#define HINT_EVENTS                                                                        \
    "is anomalyd running, with its events socket there? see events.address and "           \
    "events.port in its config"

static void usage(FILE *f)
{
    fprintf(f, "usage: anomalyctl tail [--address HOST:PORT | --unix PATH] [--json] [--count N]\n"
               "Follows anomalyd's anomaly events.\n"
               "  --address HOST:PORT  the events TCP socket (127.0.0.1:8096; config events.address/port)\n"
               "  --unix PATH          the events Unix socket instead (config events.unix)\n"
               "  --json               print the raw JSON lines\n"
               "  --count N            stop after N events\n");
}

int ad_ctl_format_event(const char *json, char *out, size_t outlen)
{
    cJSON *o = cJSON_Parse(json);
    char when[32] = "?", key[4 * 1024 + 4];
    double ts;

    if (!cJSON_IsObject(o) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, "series"))) {
        ad_escape(key, 81, json, strlen(json));
        snprintf(out, outlen, "not an event: %s", key);
        cJSON_Delete(o);
        return -1;
    }
    ts = ad_ctl_num(o, "ts");
    if (isfinite(ts)) {
        time_t t = (time_t)ts;
        struct tm tm;

        gmtime_r(&t, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    snprintf(out, outlen, "%s  %s  value %.6g  predicted %.6g  score %.3f >= %.3g  (%s, %s)",
             when, ad_escape_str(key, sizeof(key), ad_ctl_str(o, "series")),
             ad_ctl_num(o, "value"), ad_ctl_num(o, "predicted"), ad_ctl_num(o, "score"),
             ad_ctl_num(o, "threshold"), ad_ctl_str(o, "scorer"), ad_ctl_str(o, "model"));
    cJSON_Delete(o);
    return 0;
}

static int connect_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "socket path too long: %s", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s (is anomalyd running? see events.unix "
                 "in its config)", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int ad_ctl_tail(int argc, char **argv)
{
    static const struct option opts[] = {
        {"address", required_argument, NULL, 'a'}, {"unix", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},          {"count", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *address = "127.0.0.1:8096", *unix_path = NULL;
    char err[512], buf[65536], out[1024];
    size_t len = 0;
    long count = -1, seen = 0;
    int json = 0, o, fd;

    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'a':
            address = optarg;
            break;
        case 'u':
            unix_path = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'n': {
            char *end;

            count = strtol(optarg, &end, 10);
            if (*end || count < 1) {
                fprintf(stderr, "anomalyctl tail: --count takes a positive integer\n");
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    fd = unix_path ? connect_unix(unix_path, err, sizeof(err))
                   : ad_ctl_connect(address, "--address", SOCK_STREAM, AD_CTL_TIMEOUT, HINT_EVENTS,
                                    err, sizeof(err));
    if (fd < 0) {
        fprintf(stderr, "anomalyctl tail: %s\n", err);
        return 1;
    }
    ad_ctl_set_blocking(fd, 0); /* events come when they come */
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        char *line, *nl;

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        line = buf;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            if (json) {
                puts(line);
            } else if (ad_ctl_format_event(line, out, sizeof(out)) == 0) {
                puts(out);
            } else {
                fprintf(stderr, "anomalyctl tail: %s\n", out);
            }
            line = nl + 1;
            if (count > 0 && ++seen >= count) {
                close(fd);
                return 0;
            }
        }
        len -= (size_t)(line - buf);
        memmove(buf, line, len);
        if (len == sizeof(buf) - 1)
            len = 0; /* a line longer than any event: skip it */
    }
    close(fd);
    return 0;
}
