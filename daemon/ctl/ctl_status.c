/*
 * ctl_status.c - anomalyctl status, series and series show: GET the API's JSON, print it
 * for a person (aligned tables, sparklines) or raw with --json. Given several addresses
 * (the instances of a cluster, docs/SCALING.md) it asks each in turn: status prints a
 * line per instance and the totals, series merges the tables by key with an INSTANCE
 * column, series show prints the instance that has the key. An instance that does not
 * answer is named with the reason on stderr (and in status's table); the exit status is
 * 1 only when none answered (series show: when no instance has the key).
 */
#include "ctl/ctl_status.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl/ctl_http.h"
#include "ctl/ctl_spark.h"
#include "err.h"
#include "text.h"

#define AD_KEY_TEXT 1024 /* a key's bytes (the daemon's AD_KEY_MAX); escaped: 4x */

#define MAX_WIDTH 1000

enum { O_HTTP = 256, O_TOKEN, O_JSON, O_MATCH, O_LIMIT, O_WIDTH, O_ASCII, O_HELP };

static const struct option long_opts[] = {
    {"http", required_argument, NULL, O_HTTP},   {"token", required_argument, NULL, O_TOKEN},
    {"json", no_argument, NULL, O_JSON},         {"match", required_argument, NULL, O_MATCH},
    {"limit", required_argument, NULL, O_LIMIT}, {"width", required_argument, NULL, O_WIDTH},
    {"ascii", no_argument, NULL, O_ASCII},       {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* What the three commands take; each accepts the options it names in its usage. */
typedef struct args {
    ad_ctl_http_opts http;
    ad_ctl_addrs addrs;  /* http.address split at commas */
    int json, ascii, width;
    long limit;          /* -1: the daemon's default */
    const char *match;   /* NULL: every series */
    int help;
} args;

static const char common_help[] =
    "  --http HOST:PORT  anomalyd's HTTP API ($ANOMALYD_HTTP, else 127.0.0.1:8080); a\n"
    "                    comma-separated list asks every instance of a cluster\n"
    "  --token T         its http.token ($ANOMALYD_TOKEN; the same for every instance)\n";

/* Parses options into a (positional arguments are left in argv from optind). Returns 0
 * (free a->addrs with ad_ctl_addrs_free), or 2 after a message on a usage error. */
static int parse(int argc, char **argv, const char *cmd, const char *allowed, args *a)
{
    char err[512];
    int o;

    memset(a, 0, sizeof(*a));
    ad_ctl_http_opts_init(&a->http);
    a->limit = -1;
    a->width = 60;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        char *end;
        const char *name = NULL;

        for (const struct option *lo = long_opts; lo->name; lo++)
            if (lo->val == o)
                name = lo->name;
        if (o == 'h')
            o = O_HELP, name = "help";
        if (!name || (!strstr(allowed, name) && o != O_HELP)) {
            if (name)
                fprintf(stderr, "anomalyctl %s: --%s does not apply here\n", cmd, name);
            return 2;
        }
        switch (o) {
        case O_HTTP: a->http.address = optarg; break;
        case O_TOKEN: a->http.token = optarg[0] ? optarg : NULL; break;
        case O_JSON: a->json = 1; break;
        case O_ASCII: a->ascii = 1; break;
        case O_MATCH: a->match = optarg; break;
        case O_HELP: a->help = 1; break;
        case O_LIMIT:
            a->limit = strtol(optarg, &end, 10);
            if (!optarg[0] || *end || a->limit < 0) {
                fprintf(stderr, "anomalyctl %s: --limit takes a count >= 0\n", cmd);
                return 2;
            }
            break;
        case O_WIDTH: {
            long w = strtol(optarg, &end, 10);

            if (!optarg[0] || *end || w < 1 || w > MAX_WIDTH) {
                fprintf(stderr, "anomalyctl %s: --width takes 1..%d columns\n", cmd,
                        MAX_WIDTH);
                return 2;
            }
            a->width = (int)w;
            break;
        }
        }
    }
    if (ad_ctl_addrs_parse(&a->addrs, a->http.address, "--http", err, sizeof(err)) < 0) {
        fprintf(stderr, "anomalyctl %s: %s\n", cmd, err);
        return 2;
    }
    return 0;
}

/* GETs path as JSON from instance i of a->addrs. 0, or a negative ad_err and err; *status
 * as ad_ctl_http_get_json_status. */
static int fetch_at(const args *a, int i, const char *path, cJSON **out, int *status,
                    char *err, size_t errlen)
{
    ad_ctl_http_opts o = a->http;

    o.address = a->addrs.v[i];
    return ad_ctl_http_get_json_status(&o, path, out, status, err, errlen);
}

/* GETs path as JSON; on failure prints the message and gives the exit status. */
static int fetch(const args *a, const char *cmd, const char *path, cJSON **out)
{
    char err[1024];
    int status, r = fetch_at(a, 0, path, out, &status, err, sizeof(err));

    if (r < 0) {
        fprintf(stderr, "anomalyctl %s: %s\n", cmd, err);
        return r == -AD_EINVAL ? 2 : 1;
    }
    return 0;
}

static int print_json(const cJSON *j)
{
    char *s = cJSON_Print(j);

    if (!s) {
        fprintf(stderr, "anomalyctl: out of memory\n");
        return 1;
    }
    puts(s);
    free(s);
    return 0;
}

/* A series key as terminal-safe text: control bytes escaped (text.h), so a key holding
 * an escape sequence prints as \x1b[31m, never as a live one. */
static const char *key_text(const cJSON *o, char *buf, size_t cap)
{
    return ad_escape_str(buf, cap, ad_ctl_str(o, "key"));
}

static int truth(const cJSON *o, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, name));
}

/* A number for a person: "-" when absent or null, %.6g otherwise. */
static const char *fmt_num(double v, char *buf, size_t cap)
{
    if (!isfinite(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.6g", v);
    return buf;
}

/* Seconds as "45s", "12m 05s", "3h 04m", "2d 03h". */
static const char *fmt_duration(double s, char *buf, size_t cap)
{
    long t = isfinite(s) && s > 0 ? (long)s : 0;

    if (t < 60)
        snprintf(buf, cap, "%lds", t);
    else if (t < 3600)
        snprintf(buf, cap, "%ldm %02lds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, cap, "%ldh %02ldm", t / 3600, t % 3600 / 60);
    else
        snprintf(buf, cap, "%ldd %02ldh", t / 86400, t % 86400 / 3600);
    return buf;
}

static const char *fmt_time(double ts, char *buf, size_t cap)
{
    time_t t = (time_t)ts;
    struct tm tm;

    if (!isfinite(ts) || !gmtime_r(&t, &tm))
        snprintf(buf, cap, "-");
    else
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static void status_usage(FILE *f)
{
    fprintf(f, "usage: anomalyctl status [--json] [--http HOST:PORT[,HOST:PORT...]] [--token T]\n"
               "What a running anomalyd is doing: uptime, series, samples, training, events.\n"
               "Several instances: a line each (or why it did not answer) and the totals.\n"
               "  --json            print the API's JSON as it is (several instances:\n"
               "                    {\"instances\": [{\"address\", \"status\" or \"error\"}]})\n%s",
            common_help);
}

/* The sum of an object's numbers (the samples per protocol). */
static double sum_numbers(const cJSON *o)
{
    const cJSON *p;
    double t = 0;

    cJSON_ArrayForEach(p, o)
        t += cJSON_IsNumber(p) ? p->valuedouble : 0;
    return t;
}

/* status for several instances: a table, a line each, and the totals. */
static int status_many(const args *a)
{
    static const char *const sums[] = {"series", "samples", "parse_errors", "anomalies",
                                       "installed", "failed", "queued"};
    enum { NSUMS = sizeof(sums) / sizeof(*sums) };
    char (*errs)[1024] = calloc((size_t)a->addrs.n, sizeof(*errs));
    cJSON **js = calloc((size_t)a->addrs.n, sizeof(*js));
    double total[NSUMS] = {0};
    int answered = 0, iw = 8, rc = 1;
    char b1[64], tot[64];

    if (!errs || !js) {
        fprintf(stderr, "anomalyctl status: out of memory\n");
        goto out;
    }
    for (int i = 0; i < a->addrs.n; i++) {
        int status;

        if (fetch_at(a, i, "/api/v1/status", &js[i], &status, errs[i], sizeof(errs[i])) < 0)
            fprintf(stderr, "anomalyctl status: %s\n", errs[i]);
        else
            answered++;
        iw = (int)strlen(a->addrs.v[i]) > iw ? (int)strlen(a->addrs.v[i]) : iw;
    }
    if (a->json) {
        cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "instances");

        for (int i = 0; arr && i < a->addrs.n; i++) {
            cJSON *e = cJSON_CreateObject();

            cJSON_AddItemToArray(arr, e);
            cJSON_AddStringToObject(e, "address", a->addrs.v[i]);
            if (js[i]) {
                cJSON_AddItemToObject(e, "status", js[i]);
                js[i] = NULL;
            } else {
                cJSON_AddStringToObject(e, "error", errs[i]);
            }
        }
        cJSON_AddNumberToObject(o, "answered", answered);
        rc = print_json(o);
        cJSON_Delete(o);
        if (!rc && !answered)
            rc = 1;
        goto out;
    }
    printf("%-*s %-8s %-8s %8s %12s %8s %9s %9s %6s %6s\n", iw, "INSTANCE", "VERSION",
           "UPTIME", "SERIES", "SAMPLES", "ERRORS", "ANOMALIES", "TRAININGS", "FAILED",
           "QUEUED");
    for (int i = 0; i < a->addrs.n; i++) {
        const cJSON *j = js[i], *tr;
        double v[NSUMS];

        if (!j) {
            printf("%-*s unreachable: %s\n", iw, a->addrs.v[i], errs[i]);
            continue;
        }
        tr = cJSON_GetObjectItemCaseSensitive(j, "training");
        v[0] = ad_ctl_num(j, "series");
        v[1] = sum_numbers(cJSON_GetObjectItemCaseSensitive(j, "samples"));
        v[2] = ad_ctl_num(j, "parse_errors");
        v[3] = ad_ctl_num(j, "anomalies");
        v[4] = ad_ctl_num(tr, "installed");
        v[5] = ad_ctl_num(tr, "failed");
        v[6] = ad_ctl_num(tr, "queued");
        for (int k = 0; k < NSUMS; k++)
            total[k] += isfinite(v[k]) ? v[k] : 0;
        printf("%-*s %-8s %-8s %8.0f %12.0f %8.0f %9.0f %9.0f %6.0f %6.0f\n", iw, a->addrs.v[i],
               ad_ctl_str(j, "version"), fmt_duration(ad_ctl_num(j, "uptime"), b1, sizeof(b1)),
               v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    }
    snprintf(tot, sizeof(tot), "total %d/%d", answered, a->addrs.n);
    printf("%-*s %-8s %-8s %8.0f %12.0f %8.0f %9.0f %9.0f %6.0f %6.0f\n", iw, tot, "", "",
           total[0], total[1], total[2], total[3], total[4], total[5], total[6]);
    if (answered < a->addrs.n)
        printf("(%d of %d instances did not answer)\n", a->addrs.n - answered, a->addrs.n);
    rc = answered ? 0 : 1;
out:
    for (int i = 0; js && i < a->addrs.n; i++)
        cJSON_Delete(js[i]);
    free(js);
    free(errs);
    return rc;
}

static int status_one(const args *a)
{
    char b1[64], b2[64];
    cJSON *j = NULL;
    const cJSON *samples, *p, *tr, *ev;
    double total = 0;
    int rc;

    if ((rc = fetch(a, "status", "/api/v1/status", &j)))
        return rc;
    if (a->json) {
        rc = print_json(j);
        goto out;
    }
    printf("anomalyd %s at %s, up %s\n", ad_ctl_str(j, "version"), a->addrs.v[0],
           fmt_duration(ad_ctl_num(j, "uptime"), b1, sizeof(b1)));
    printf("  series        %.0f / %.0f\n", ad_ctl_num(j, "series"), ad_ctl_num(j, "max_series"));
    printf("  samples       ");
    samples = cJSON_GetObjectItemCaseSensitive(j, "samples");
    cJSON_ArrayForEach(p, samples) {
        printf("%s%s %.0f", p == samples->child ? "" : ", ", p->string,
               cJSON_IsNumber(p) ? p->valuedouble : 0);
        total += cJSON_IsNumber(p) ? p->valuedouble : 0;
    }
    printf(" (total %.0f)\n", total);
    printf("  parse errors  %.0f\n", ad_ctl_num(j, "parse_errors"));
    printf("  anomalies     %.0f\n", ad_ctl_num(j, "anomalies"));
    tr = cJSON_GetObjectItemCaseSensitive(j, "training");
    if (tr)
        printf("  training      queued %.0f, running %.0f, installed %.0f, failed %.0f, "
               "cpu %s s\n",
               ad_ctl_num(tr, "queued"), ad_ctl_num(tr, "running"), ad_ctl_num(tr, "installed"),
               ad_ctl_num(tr, "failed"), fmt_num(ad_ctl_num(tr, "cpu_seconds"), b2, sizeof(b2)));
    ev = cJSON_GetObjectItemCaseSensitive(j, "events");
    if (ev)
        printf("  events        published %.0f, dropped %.0f, subscribers %.0f\n",
               ad_ctl_num(ev, "published"), ad_ctl_num(ev, "dropped"),
               ad_ctl_num(ev, "subscribers"));
out:
    cJSON_Delete(j);
    return rc;
}

int ad_ctl_status(int argc, char **argv)
{
    args a;
    int rc = parse(argc, argv, "status", "http token json", &a);

    if (rc || a.help) {
        status_usage(rc ? stderr : stdout);
        ad_ctl_addrs_free(&a.addrs);
        return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "anomalyctl status: unexpected argument '%s'\n", argv[optind]);
        rc = 2;
    } else {
        rc = a.addrs.n > 1 ? status_many(&a) : status_one(&a);
    }
    ad_ctl_addrs_free(&a.addrs);
    return rc;
}

static void series_usage(FILE *f)
{
    fprintf(f, "usage: anomalyctl series [--match GLOB] [--limit N] [--json]\n"
               "       anomalyctl series show KEY [--width N] [--ascii] [--json]\n"
               "The daemon's series as a table, or one series with sparklines of its recent\n"
               "values and scores (^ marks flagged points). Several --http addresses: the\n"
               "tables merged by key with an INSTANCE column; show asks each for KEY.\n"
               "  --match GLOB      only keys matching the shell pattern (e.g. 'cpu.*')\n"
               "  --limit N         at most N rows (the daemon's default: 1000)\n"
               "  --width N         sparkline columns (60)\n"
               "  --ascii           plain ASCII sparklines\n"
               "  --json            print the API's JSON as it is\n%s", common_help);
}

/* One row of the merged table: instance i's series s. */
typedef struct row {
    int inst;
    const cJSON *s;
} row;

static int row_cmp(const void *x, const void *y)
{
    const row *a = x, *b = y;
    int c = strcmp(ad_ctl_str(a->s, "key"), ad_ctl_str(b->s, "key"));

    return c ? c : a->inst - b->inst;
}

/* series --json with several instances: {"series": [... each with "instance"], "total",
 * "instances": [{"address", "total" | "error"}]}. Returns the exit status. */
static int series_json_many(const args *a, const row *rows, int nrows, cJSON *const *js,
                            double total)
{
    cJSON *o = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(o, "series");
    cJSON *ins = cJSON_AddArrayToObject(o, "instances");
    int rc;

    for (int r = 0; arr && r < nrows; r++) {
        cJSON *c = cJSON_Duplicate(rows[r].s, 1);

        if (c) {
            cJSON_AddStringToObject(c, "instance", a->addrs.v[rows[r].inst]);
            cJSON_AddItemToArray(arr, c);
        }
    }
    cJSON_AddNumberToObject(o, "total", total);
    for (int i = 0; ins && i < a->addrs.n; i++) {
        cJSON *e = cJSON_CreateObject();

        cJSON_AddItemToArray(ins, e);
        cJSON_AddStringToObject(e, "address", a->addrs.v[i]);
        if (js[i])
            cJSON_AddNumberToObject(e, "total", ad_ctl_num(js[i], "total"));
        else
            cJSON_AddStringToObject(e, "error", "did not answer");
    }
    rc = print_json(o);
    cJSON_Delete(o);
    return rc;
}

/* The merged table (an INSTANCE column iw wide with several instances) and what is
 * missing from it: rows past --limit, instances that did not answer. */
static void series_table(const args *a, const row *rows, int nrows, double total, int answered,
                         int iw)
{
    char v[32], pr[32], sc[32], ek[4 * AD_KEY_TEXT];
    int n = a->addrs.n, many = n > 1, kw = 3;

    for (int r = 0; r < nrows; r++) {
        int l = (int)strlen(key_text(rows[r].s, ek, sizeof(ek)));

        kw = l > kw ? l : kw;
    }
    if (many)
        printf("%-*s ", iw, "INSTANCE");
    printf("%-*s %10s %9s %12s %12s %6s  %s\n", kw, "KEY", "SAMPLES", "ANOMALIES", "VALUE",
           "PREDICTION", "SCORE", "STATE");
    for (int r = 0; r < nrows; r++) {
        const cJSON *s = rows[r].s;
        double score = ad_ctl_num(s, "score");

        if (isfinite(score))
            snprintf(sc, sizeof(sc), "%.3f", score);
        if (many)
            printf("%-*s ", iw, a->addrs.v[rows[r].inst]);
        printf("%-*s %10.0f %9.0f %12s %12s %6s  %s\n", kw, key_text(s, ek, sizeof(ek)),
               ad_ctl_num(s, "samples"), ad_ctl_num(s, "anomalies"),
               fmt_num(ad_ctl_num(s, "value"), v, sizeof(v)),
               fmt_num(ad_ctl_num(s, "predicted"), pr, sizeof(pr)), isfinite(score) ? sc : "-",
               truth(s, "warming_up") ? "warming" : "trained");
    }
    if (nrows < total)
        printf("(%d of %.0f series; --limit shows more)\n", nrows, total);
    else if (!nrows)
        printf("(no series%s%s)\n", a->match ? " match " : "", a->match ? a->match : "");
    if (answered < n)
        printf("(%d of %d instances did not answer: their series are missing)\n",
               n - answered, n);
}

/* series: each instance's table (the same --match and --limit), merged by key. */
static int series_list(const args *a)
{
    char path[2048], esc[1536];
    int n = a->addrs.n, many = n > 1, iw = 8, rc = 1, answered = 0, nrows = 0;
    cJSON **js = calloc((size_t)n, sizeof(*js));
    row *rows = NULL;
    double total = 0;

    if (!js) {
        fprintf(stderr, "anomalyctl series: out of memory\n");
        return 1;
    }
    if (a->match && ad_ctl_url_escape(a->match, esc, sizeof(esc)) < 0) {
        fprintf(stderr, "anomalyctl series: --match is too long\n");
        rc = 2;
        goto out;
    }
    snprintf(path, sizeof(path), "/api/v1/series?match=%s", a->match ? esc : "*");
    if (a->limit >= 0)
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "&limit=%ld", a->limit);
    for (int i = 0; i < n; i++) {
        char err[1024];
        int status, r = fetch_at(a, i, path, &js[i], &status, err, sizeof(err));

        if (r < 0) {
            fprintf(stderr, "anomalyctl series: %s\n", err);
            if (!many) {
                rc = r == -AD_EINVAL ? 2 : 1;
                goto out;
            }
            continue;
        }
        answered++;
        nrows += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(js[i], "series"));
        total += isfinite(ad_ctl_num(js[i], "total")) ? ad_ctl_num(js[i], "total") : 0;
        iw = (int)strlen(a->addrs.v[i]) > iw ? (int)strlen(a->addrs.v[i]) : iw;
    }
    if (!answered)
        goto out;
    if (a->json && !many) {
        rc = print_json(js[0]);
        goto out;
    }
    rows = calloc(nrows ? (size_t)nrows : 1, sizeof(*rows));
    if (!rows) {
        fprintf(stderr, "anomalyctl series: out of memory\n");
        goto out;
    }
    nrows = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *s;

        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(js[i], "series"))
            rows[nrows++] = (row){.inst = i, .s = s};
    }
    qsort(rows, (size_t)nrows, sizeof(*rows), row_cmp);
    if (a->limit >= 0 && nrows > a->limit)
        nrows = (int)a->limit;
    if (a->json) {
        rc = series_json_many(a, rows, nrows, js, total);
    } else {
        series_table(a, rows, nrows, total, answered, iw);
        rc = 0;
    }
out:
    for (int i = 0; i < n; i++)
        cJSON_Delete(js[i]);
    free(js);
    free(rows);
    return rc;
}

/* Prints one sparkline with its label and range, and the flags under it. */
static void spark(const char *label, const double *v, const unsigned char *flags, int n,
                  double lo, double hi, enum ad_spark_fold fold, const args *a,
                  const char *range)
{
    char line[4 * MAX_WIDTH + 1], marks[MAX_WIDTH + 1];

    printf("%s  %s\n", label, range);
    if (ad_spark_line(v, n, a->width, lo, hi, fold, a->ascii, line, sizeof(line)) < 0)
        line[0] = '\0';
    printf("  %s\n", line);
    if (ad_spark_marks(flags, n, a->width, marks, sizeof(marks)) > 0)
        printf("  %s\n", marks);
}

static void show_points(const cJSON *j, const args *a, double threshold)
{
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(j, "recent"), *p;
    int n = cJSON_GetArraySize(pts), i = 0, nflag = 0;
    double *val = calloc(n ? (size_t)n : 1, sizeof(*val));
    double *score = calloc(n ? (size_t)n : 1, sizeof(*score));
    unsigned char *flag = calloc(n ? (size_t)n : 1, 1);
    double lo = INFINITY, hi = -INFINITY;
    char range[160], b1[32], b2[32], t1[32], t2[32];

    if (!val || !score || !flag) {
        fprintf(stderr, "anomalyctl series: out of memory\n");
        goto out_free;
    }
    cJSON_ArrayForEach(p, pts) {
        val[i] = ad_ctl_num(p, "value");
        score[i] = ad_ctl_num(p, "score");
        flag[i] = (unsigned char)truth(p, "flagged");
        nflag += flag[i];
        if (isfinite(val[i]))
            lo = fmin(lo, val[i]), hi = fmax(hi, val[i]);
        i++;
    }
    if (!n) {
        printf("recent  (no points yet)\n");
        goto out_free;
    }
    printf("recent  %d points, %s .. %s, %d flagged\n", n,
           fmt_time(ad_ctl_num(cJSON_GetArrayItem(pts, 0), "ts"), t1, sizeof(t1)),
           fmt_time(ad_ctl_num(cJSON_GetArrayItem(pts, n - 1), "ts"), t2, sizeof(t2)), nflag);
    snprintf(range, sizeof(range), "(min %s, max %s)", fmt_num(lo, b1, sizeof(b1)),
             fmt_num(hi, b2, sizeof(b2)));
    spark("values", val, flag, n, lo, hi, AD_SPARK_EXTREME, a, range);
    snprintf(range, sizeof(range), "(0 .. 1, threshold %s; each column its maximum)",
             fmt_num(threshold, b1, sizeof(b1)));
    spark("scores", score, flag, n, 0, 1, AD_SPARK_MAX, a, range);
out_free:
    free(val);
    free(score);
    free(flag);
}

/* series show on several instances: asks each for the key. Found on more than one (a
 * series that moved when the cluster changed, its old copy not yet expired): the one
 * seen last, the others named on stderr. Returns 0 with *out and *inst, or 1 after saying
 * which instances did not have it and which did not answer. */
static int find_series(const args *a, const char *key, const char *path, cJSON **out,
                       int *inst)
{
    int answered = 0, found = 0;

    *out = NULL;
    *inst = -1;
    for (int i = 0; i < a->addrs.n; i++) {
        char err[1024];
        cJSON *j = NULL;
        int status, r = fetch_at(a, i, path, &j, &status, err, sizeof(err));

        if (r < 0 && status == 404) {
            answered++;
            continue;
        }
        if (r < 0) {
            fprintf(stderr, "anomalyctl series show: %s\n", err);
            continue;
        }
        answered++;
        found++;
        if (!*out || ad_ctl_num(j, "last_seen") > ad_ctl_num(*out, "last_seen")) {
            if (*out)
                fprintf(stderr, "anomalyctl series show: %s is also on %s (last seen earlier)\n",
                        key, a->addrs.v[*inst]);
            cJSON_Delete(*out);
            *out = j;
            *inst = i;
        } else {
            fprintf(stderr, "anomalyctl series show: %s is also on %s (last seen earlier)\n", key,
                    a->addrs.v[i]);
            cJSON_Delete(j);
        }
    }
    if (found)
        return 0;
    if (answered == a->addrs.n)
        fprintf(stderr, "anomalyctl series show: no such series '%s' on any of the %d "
                "instances\n", key, a->addrs.n);
    else
        fprintf(stderr, "anomalyctl series show: no such series '%s' on the %d of %d "
                "instances that answered\n", key, answered, a->addrs.n);
    return 1;
}

static int series_show(const args *a, const char *key)
{
    char path[4096], esc[3 * 1024 + 1], b1[32], b2[32], b3[32], b4[32], b5[32];
    char ek[4 * AD_KEY_TEXT];
    cJSON *j = NULL;
    const cJSON *m;
    int rc, inst = -1;

    if (ad_ctl_url_escape(key, esc, sizeof(esc)) < 0) {
        fprintf(stderr, "anomalyctl series show: the key is too long\n");
        return 2;
    }
    snprintf(path, sizeof(path), "/api/v1/series/%s", esc);
    if (a->addrs.n == 1) {
        if ((rc = fetch(a, "series show", path, &j)))
            return rc;
    } else if ((rc = find_series(a, key, path, &j, &inst))) {
        return rc;
    }
    if (a->json) {
        if (inst >= 0)
            cJSON_AddStringToObject(j, "instance", a->addrs.v[inst]);
        rc = print_json(j);
        goto out;
    }
    m = cJSON_GetObjectItemCaseSensitive(j, "model");
    printf("%s  (%s, %s)\n", key_text(j, ek, sizeof(ek)), ad_ctl_str(j, "protocol"),
           truth(j, "warming_up") ? "warming up" : "trained");
    if (inst >= 0)
        printf("  instance    %s\n", a->addrs.v[inst]);
    printf("  model       %s %s, hidden %.0f, layers %.0f; scorer %s, threshold %s\n",
           ad_ctl_str(m, "cell"), ad_ctl_str(m, "model"), ad_ctl_num(m, "hidden"),
           ad_ctl_num(m, "layers"), ad_ctl_str(m, "scorer"),
           fmt_num(ad_ctl_num(m, "threshold"), b1, sizeof(b1)));
    printf("  training    after %.0f, every %.0f; trainings %.0f (%s), epochs %.0f, loss %s, "
           "val loss %s\n", ad_ctl_num(m, "train_after"), ad_ctl_num(m, "train_every"),
           ad_ctl_num(j, "trainings"), truth(j, "training") ? "one running" : "none running",
           ad_ctl_num(m, "epochs"), fmt_num(ad_ctl_num(m, "train_loss"), b2, sizeof(b2)),
           fmt_num(ad_ctl_num(m, "val_loss"), b3, sizeof(b3)));
    printf("  counters    samples %.0f, anomalies %.0f, bytes %.0f, rule %s\n",
           ad_ctl_num(j, "samples"), ad_ctl_num(j, "anomalies"), ad_ctl_num(j, "bytes"),
           ad_ctl_num(j, "rule") < 0 ? "defaults" : fmt_num(ad_ctl_num(j, "rule"), b4, sizeof(b4)));
    printf("  last        value %s, predicted %s, score %s, seen %s\n",
           fmt_num(ad_ctl_num(j, "value"), b1, sizeof(b1)),
           fmt_num(ad_ctl_num(j, "predicted"), b2, sizeof(b2)),
           fmt_num(ad_ctl_num(j, "score"), b3, sizeof(b3)),
           fmt_time(ad_ctl_num(j, "last_seen"), b5, sizeof(b5)));
    show_points(j, a, ad_ctl_num(m, "threshold"));
out:
    cJSON_Delete(j);
    return rc;
}

int ad_ctl_series(int argc, char **argv)
{
    int show = argc > 1 && !strcmp(argv[1], "show"), rc;
    int sargc = argc - show;
    char **sargv = argv + show; /* "show ..." parsed as a command of its own */
    args a;

    rc = parse(sargc, sargv, show ? "series show" : "series",
               show ? "http token json width ascii" : "http token json match limit", &a);
    if (rc || a.help) {
        series_usage(rc ? stderr : stdout);
    } else if (!show) {
        if (optind < argc) {
            fprintf(stderr, "anomalyctl series: unexpected argument '%s' (did you mean "
                    "'series show %s'?)\n", argv[optind], argv[optind]);
            rc = 2;
        } else {
            rc = series_list(&a);
        }
    } else if (optind != sargc - 1 || !sargv[optind][0]) {
        fprintf(stderr, "anomalyctl series show: give one KEY\n");
        rc = 2;
    } else {
        rc = series_show(&a, sargv[optind]);
    }
    ad_ctl_addrs_free(&a.addrs);
    return rc;
}
