/*
 * metrics.c - the Prometheus text exposition of the daemon's counters and series.
 */
#include "http/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

typedef struct buf {
    char *p;
    size_t len, cap;
    int err;
} buf;

static void reserve(buf *b, size_t n)
{
    size_t cap;
    char *p;

    if (b->err || b->len + n + 1 <= b->cap)
        return;
    cap = b->cap ? b->cap : 65536;
    while (cap < b->len + n + 1)
        cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->err = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

/* Formatted into the room left (one vsnprintf when it fits, as nearly every line does). */
static void put(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    reserve(b, 128);
    if (b->err)
        return;
    va_start(ap, fmt);
    n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= b->cap - b->len) {
        reserve(b, (size_t)n);
        if (b->err)
            return;
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    if (n < 0) {
        b->err = 1;
        return;
    }
    b->len += (size_t)n;
}

/* n bytes as they are. */
static void put_str(buf *b, const char *s, size_t n)
{
    reserve(b, n);
    if (b->err)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

#define put_lit(b, s) put_str(b, s, sizeof(s) - 1)

/* A whole number, in decimal. */
static void put_int(buf *b, long long v)
{
    char t[24], *p = t + sizeof(t);
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    put_str(b, p, (size_t)(t + sizeof(t) - p));
}

/* A label value escaped as the exposition format wants: \\, \" and \n. */
static void put_label(buf *b, const char *s)
{
    reserve(b, 2 * strlen(s));
    if (b->err)
        return;
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') {
            b->p[b->len++] = '\\';
            b->p[b->len++] = *s;
        } else if (*s == '\n') {
            b->p[b->len++] = '\\';
            b->p[b->len++] = 'n';
        } else {
            b->p[b->len++] = *s;
        }
    }
    b->p[b->len] = '\0';
}

/* A sample value: Prometheus spells non-finite values NaN, +Inf, -Inf; whole numbers
 * (counters, bytes, 0/1 gauges) as %.17g writes them, without printf. */
static void put_value(buf *b, double v)
{
    if (isnan(v)) {
        put_lit(b, " NaN\n");
    } else if (isinf(v)) {
        if (v > 0)
            put_lit(b, " +Inf\n");
        else
            put_lit(b, " -Inf\n");
    } else if (fabs(v) < 1e15 && v == (double)(long long)v && !(v == 0 && signbit(v))) {
        put_lit(b, " ");
        put_int(b, (long long)v);
        put_lit(b, "\n");
    } else {
        put(b, " %.17g\n", v);
    }
}

static void family(buf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample of a per-family metric: name{family="<pattern>"} v. */
static void per_family(buf *b, const char *name, const ad_fam *f, uint64_t v)
{
    put(b, "%s{family=\"", name);
    put_label(b, f->name + strlen(AD_FAMILY_PREFIX));
    put(b, "\"} %llu\n", (unsigned long long)v);
}

static void scalar(buf *b, const char *name, const char *type, const char *help, double v)
{
    family(b, name, type, help);
    put(b, "%s", name);
    put_value(b, v);
}

typedef double (*series_value_fn)(const ad_series *s);

static double sv_score(const ad_series *s)
{
    return s->have_last ? s->last.score : NAN;
}
static double sv_value(const ad_series *s)
{
    return s->have_last ? s->last.value : NAN;
}
static double sv_predicted(const ad_series *s)
{
    return s->have_last ? s->last.predicted : NAN;
}
static double sv_error(const ad_series *s)
{
    return s->have_last ? s->last.error : NAN;
}
static double sv_anomalies(const ad_series *s)
{
    return (double)s->anomalies;
}
static double sv_warming(const ad_series *s)
{
    return ad_detector_get_stats(s->det)->trainings == 0;
}
static double sv_trainings(const ad_series *s)
{
    return (double)ad_detector_get_stats(s->det)->trainings;
}
static double sv_training(const ad_series *s)
{
    return s->training;
}
static double sv_samples(const ad_series *s)
{
    return (double)ad_detector_get_stats(s->det)->samples;
}
static double sv_bytes(const ad_series *s)
{
    return (double)ad_series_bytes(s);
}

/* A family of one sample per series. */
typedef struct series_family {
    const char *name, *type, *help;
    series_value_fn fn;
} series_family;

static double sv_anomalous(const ad_series *s)
{
    return s->have_last && s->last.anomalous;
}

static const series_family per_series[] = {
    {"anomalyd_series_score", "gauge", "Anomaly score of the series' last value, [0, 1].",
     sv_score},
    {"anomalyd_series_value", "gauge", "The series' last value.", sv_value},
    {"anomalyd_series_predicted", "gauge", "What the model predicted for the last value.",
     sv_predicted},
    {"anomalyd_series_error", "gauge", "Prediction error of the last value, in normalised units.",
     sv_error},
    {"anomalyd_series_anomalous", "gauge",
     "1 while the series behaves abnormally: from an anomalous value until the scores have "
     "been below the threshold for the scorer's short window and the values are back "
     "where they were before it (incident_z); and while the values are far from those the "
     "model was trained on (departure).",
     sv_anomalous},
    {"anomalyd_series_anomalies_total", "counter", "Anomalies flagged in the series.",
     sv_anomalies},
    {"anomalyd_series_samples_total", "counter", "Values the series' detector accepted.",
     sv_samples},
    {"anomalyd_series_warming_up", "gauge",
     "1 while the series is scored by the statistical fallback (not trained yet).", sv_warming},
    {"anomalyd_series_trainings_total", "counter", "Trainings installed for the series.",
     sv_trainings},
    {"anomalyd_series_training", "gauge", "1 while a training job of the series is running.",
     sv_training},
    {"anomalyd_series_bytes", "gauge",
     "Bytes the series holds: detector, network, history and recent points.", sv_bytes},
};

#define NPER (sizeof(per_series) / sizeof(per_series[0]))

/* The descriptor budget's refusals of one class (fdlimit.h), by reason. */
static void fd_refusals(buf *b, const ad_daemon *d, const char *name, int cls)
{
    const ad_fdbudget *fdb = ad_daemon_fdbudget(d);

    put(b, "%s{reason=\"fd_limit\"} %llu\n", name, (unsigned long long)fdb->refused[cls]);
    put(b, "%s{reason=\"fd_exhausted\"} %llu\n", name, (unsigned long long)fdb->shed[cls]);
}

/* anomalyd_memory_bytes{part}: the resident set, and with the per-series families (one
 * pass over the series) what the daemon's parts hold (memstat.h). */
static void memory(buf *b, const ad_daemon *d, int with_series)
{
    static const char *const parts[] = {"detectors", "recent", "series", "families",
                                        "remote_write"};
    ad_memstat m = {0};
    size_t v[5];

    family(b, "anomalyd_memory_bytes", "gauge",
           "Resident set (rss) and bytes the daemon's parts hold: detectors (own networks, "
           "scorers, history), recent points, series structs and keys, shared families' "
           "networks, remote-write state.");
    if (!with_series) {
        put(b, "anomalyd_memory_bytes{part=\"rss\"} %zu\n", ad_memstat_rss());
        return;
    }
    ad_daemon_memstat(d, &m);
    put(b, "anomalyd_memory_bytes{part=\"rss\"} %zu\n", m.rss);
    v[0] = m.detectors;
    v[1] = m.recent;
    v[2] = m.series;
    v[3] = m.families;
    v[4] = m.remote_write;
    for (int i = 0; i < 5; i++)
        put(b, "anomalyd_memory_bytes{part=\"%s\"} %zu\n", parts[i], v[i]);
}

/* ---- Prometheus remote write: the counters, and per series its score with the labels
 * it came with ---- */

static void remote_write_counters(buf *b, const ad_daemon *d)
{
    static const char *const dropped[4] = {"excluded", "bad_series", "key_too_long",
                                           "own_output"};
    const ad_promrw_stats *st = ad_promrw_get_stats(ad_daemon_promrw(d));

    family(b, "anomalyd_remote_write_requests_total", "counter",
           "Prometheus remote-write requests (POST /api/v1/write), by result.");
    for (int r = 0; r < AD_PRW_NRESULTS; r++)
        put(b, "anomalyd_remote_write_requests_total{result=\"%s\"} %llu\n",
            ad_promrw_result_name(r), (unsigned long long)st->requests[r]);
    family(b, "anomalyd_remote_write_samples_total", "counter",
           "Remote-write samples, by what became of them (ingested, or why not).");
    for (int o = 0; o < AD_PRW_NOUTCOMES; o++)
        put(b, "anomalyd_remote_write_samples_total{result=\"%s\"} %llu\n",
            ad_promrw_outcome_name(o), (unsigned long long)st->samples[o]);
    family(b, "anomalyd_remote_write_series_dropped_total", "counter",
           "Remote-write series dropped (each time one comes), by reason.");
    for (int r = 0; r < 4; r++)
        put(b, "anomalyd_remote_write_series_dropped_total{reason=\"%s\"} %llu\n", dropped[r],
            (unsigned long long)st->series_dropped[r]);
    scalar(b, "anomalyd_remote_write_decoded_bytes_total", "counter",
           "Protobuf bytes decoded from remote-write bodies.", (double)st->decoded_bytes);
    scalar(b, "anomalyd_remote_write_series", "gauge",
           "Remote-write series whose state (last timestamp, rate) is kept.",
           (double)st->series);
}

static int label_name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/* Original labels that cannot stay as they are on a gauge: source_metric (ours), le and
 * quantile (promtool: only histograms and summaries have them). */
static int renamed(const char *name, size_t n)
{
    return (n == 13 && !strncmp(name, "source_metric", 13)) ||
           (n == 2 && !strncmp(name, "le", 2)) || (n == 8 && !strncmp(name, "quantile", 8));
}

/*
 * The labels of a remote-write key name{a="1",...} as exposition labels with
 * source_metric="name" added; an original source_metric, le or quantile label becomes
 * exported_<name>, as Prometheus renames clashing labels. 0, or -1 when the key is not
 * of that form (then nothing is written).
 */
static int put_rw_labels(buf *b, const char *key)
{
    const char *brace = strchr(key, '{'), *p;
    size_t nlen = brace ? (size_t)(brace - key) : strlen(key), start = b->len;

    if (!nlen)
        return -1;
    put(b, "{");
    for (p = brace ? brace + 1 : NULL; p && *p != '}';) {
        const char *name = p, *v;

        if (!label_name_char(*p, 1))
            goto out_bad;
        while (label_name_char(*p, 0))
            p++;
        if (p[0] != '=' || p[1] != '"')
            goto out_bad;
        v = p + 2;
        for (p = v; *p && *p != '"'; p++)
            if (*p == '\\' && !*++p)
                goto out_bad;
        if (*p != '"')
            goto out_bad;
        put(b, "%s%.*s=\"%.*s\",", renamed(name, (size_t)(v - 2 - name)) ? "exported_" : "",
            (int)(v - 2 - name), name, (int)(p - v), v);
        p++;
        if (*p == ',')
            p++;
        else if (*p != '}')
            goto out_bad;
    }
    if (p && p[1])
        goto out_bad;
    put(b, "source_metric=\"%.*s\"}", (int)nlen, key);
    return 0;

out_bad:
    if (!b->err) {
        b->len = start;
        b->p[start] = '\0';
    }
    return -1;
}


static const series_family rw_series[] = {
    {AD_PRW_FAMILY_SCORE, "gauge",
     "Anomaly score of the last value of a series Prometheus remote-wrote, [0, 1], with its "
     "labels and source_metric (its metric name).",
     sv_score},
    {AD_PRW_FAMILY_ANOMALOUS, "gauge",
     "1 while a remote-written series behaves abnormally (the state: from an anomalous value "
     "until the scores have been below the threshold for the scorer's short window and the "
     "values are back (incident_z, departure); alerts are anomalyd_series_anomalies_total).",
     sv_anomalous},
    {AD_PRW_FAMILY_VALUE, "gauge",
     "The last value anomalyd modelled for a remote-written series (a counter's per-second "
     "rate when prometheus.rate says so).",
     sv_value},
    {AD_PRW_FAMILY_PREDICTED, "gauge", "What the model predicted for that value.", sv_predicted},
};

#define NRW (sizeof(rw_series) / sizeof(rw_series[0]))

/* One series' samples: its line in each per-series family's buffer, and (a remote-written
 * series) in each remote-write family's, its labels turned once (into scratch). */
static void series_lines(buf *fam, buf *scratch, const ad_series *s)
{
    for (size_t f = 0; f < NPER; f++) {
        buf *b = &fam[f];

        put_str(b, per_series[f].name, strlen(per_series[f].name));
        put_lit(b, "{series=\"");
        put_label(b, s->key);
        put_lit(b, "\"}");
        put_value(b, per_series[f].fn(s));
    }
    if (s->proto != AD_PROTO_PROMETHEUS)
        return;
    scratch->len = 0;
    if (put_rw_labels(scratch, s->key) < 0)
        return;
    if (scratch->err) { /* out of memory: the scrape fails (500), not a partial 200 */
        fam[NPER].err = 1;
        return;
    }
    for (size_t f = 0; f < NRW; f++) {
        buf *b = &fam[NPER + f];

        put_str(b, rw_series[f].name, strlen(rw_series[f].name));
        put_str(b, scratch->p, scratch->len);
        put_value(b, rw_series[f].fn(s));
    }
}

/* The per-series families and, after the remote-write counters, the remote-written
 * series' own: the table is walked once, each family's samples gathered in a buffer of
 * its own and appended after its HELP and TYPE lines (walking it once per family read
 * each series' struct, key and detector fourteen times, a cache miss each). */
static void series_families(buf *b, const ad_daemon *d)
{
    ad_series_table *t = ad_daemon_series(d);
    const size_t n = ad_series_table_size(t);
    buf fam[NPER + NRW] = {{0}}, scratch = {0};
    ad_series_iter it;
    ad_series *s;
    size_t all = 4096; /* the families' HELP and TYPE lines, the counters between */

    for (size_t f = 0; f < NPER; f++) /* a guess at first (a key of 40 bytes): fewer copies */
        reserve(&fam[f], n * (strlen(per_series[f].name) + 70));
    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(t, &it)))
        series_lines(fam, &scratch, s);
    for (size_t f = 0; f < NPER + NRW; f++)
        all += fam[f].len;
    reserve(b, all); /* then each family is copied once */
    for (size_t f = 0; f < NPER + NRW; f++) {
        const series_family *sf = f < NPER ? &per_series[f] : &rw_series[f - NPER];

        if (f == NPER)
            remote_write_counters(b, d);
        family(b, sf->name, sf->type, sf->help);
        if (fam[f].err)
            b->err = 1;
        else if (fam[f].len)
            put_str(b, fam[f].p, fam[f].len);
        free(fam[f].p);
    }
    free(scratch.p);
}

/* Samples, parse errors, the detectors' threads and refusals. */
static void ingest_counters(buf *b, const ad_daemon_stats *st)
{
    int p, r;

    family(b, "anomalyd_samples_total", "counter", "Samples parsed, by protocol.");
    for (p = 0; p < AD_PROTO_N; p++)
        put(b, "anomalyd_samples_total{protocol=\"%s\"} %llu\n", ad_proto_name(p),
            (unsigned long long)st->samples[p]);
    family(b, "anomalyd_parse_errors_total", "counter",
           "Lines refused by the protocol parsers, by protocol and reason.");
    for (p = 0; p < AD_PROTO_N; p++)
        for (r = 1; r < AD_PE_NREASONS; r++)
            put(b, "anomalyd_parse_errors_total{protocol=\"%s\",reason=\"%s\"} %llu\n",
                ad_proto_name(p), ad_parse_error_name(r),
                (unsigned long long)st->parse_errors[p][r]);
    family(b, "anomalyd_scored_samples_total", "counter",
           "Samples whose detector ran on the loop thread or on the score helper thread "
           "(score_threads: 2; it takes what it can of each batch).");
    put(b, "anomalyd_scored_samples_total{thread=\"loop\"} %llu\n",
        (unsigned long long)st->scored[0]);
    put(b, "anomalyd_scored_samples_total{thread=\"helper\"} %llu\n",
        (unsigned long long)st->scored[1]);
    family(b, "anomalyd_values_refused_total", "counter",
           "Values the detectors refused, by reason.");
    for (r = 0; r < AD_REFUSE_NREASONS; r++)
        put(b, "anomalyd_values_refused_total{reason=\"%s\"} %llu\n", ad_refusal_name(r),
            (unsigned long long)st->refused[r]);
}

/* The listeners: bytes, connections, truncated lines. */
static void listener_counters(buf *b, const ad_daemon *d, const ad_listener_stats *ls)
{
    family(b, "anomalyd_received_bytes_total", "counter",
           "Bytes received by the listeners, by protocol.");
    for (int p = 0; p < AD_PROTO_N; p++)
        put(b, "anomalyd_received_bytes_total{protocol=\"%s\"} %llu\n", ad_proto_name(p),
            (unsigned long long)ls->bytes[p]);
    scalar(b, "anomalyd_connections_open", "gauge", "Stream connections open.",
           (double)ls->open);
    scalar(b, "anomalyd_connections_total", "counter", "Stream connections accepted.",
           (double)ls->accepted);
    family(b, "anomalyd_connections_refused_total", "counter",
           "Stream connections refused: over max_connections, over the file descriptor "
           "budget (fd_limit), or shed when none was left (fd_exhausted).");
    put(b, "anomalyd_connections_refused_total{reason=\"max_connections\"} %llu\n",
        (unsigned long long)ls->refused);
    fd_refusals(b, d, "anomalyd_connections_refused_total", AD_FD_STREAM);
    scalar(b, "anomalyd_lines_truncated_total", "counter",
           "Partial lines lost to connections that failed mid-line.", (double)ls->truncated);
}

/* The series table's counters. */
static void series_counters(buf *b, const ad_daemon *d, const ad_daemon_stats *st)
{
    scalar(b, "anomalyd_series", "gauge", "Series in the table.",
           (double)ad_series_table_size(ad_daemon_series(d)));
    scalar(b, "anomalyd_series_max", "gauge", "The max_series limit.",
           (double)ad_series_table_max(ad_daemon_series(d)));
    scalar(b, "anomalyd_series_created_total", "counter", "Series created.",
           (double)st->series_created);
    scalar(b, "anomalyd_series_evicted_total", "counter", "Series evicted after series_ttl.",
           (double)st->series_evicted);
    scalar(b, "anomalyd_series_refused_total", "counter",
           "Samples of new series refused: max_series reached.", (double)st->series_refused);
    scalar(b, "anomalyd_ignored_samples_total", "counter",
           "Samples of series an ignore rule matches.", (double)st->ignored);
    scalar(b, "anomalyd_statsd_refused_total", "counter",
           "StatsD metrics refused: the aggregator is full.", (double)st->statsd_full);
    scalar(b, "anomalyd_anomalies_total", "counter", "Anomalies flagged, all series.",
           (double)st->anomalies_total);
}

/* A histogram's buckets (cumulative counts), sum and count. */
static void histogram(buf *b, const char *name, int n, double (*le_of)(int),
                      const uint64_t *cum, double sum)
{
    for (int i = 0; i < n; i++) {
        double le = le_of(i);

        if (isinf(le))
            put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum[i]);
        else
            put(b, "%s_bucket{le=\"%g\"} %llu\n", name, le, (unsigned long long)cum[i]);
    }
    put(b, "%s_sum %.9g\n", name, sum);
    put(b, "%s_count %llu\n", name, (unsigned long long)cum[n - 1]);
}

static void training(buf *b, const ad_trainer_stats *ts)
{
    scalar(b, "anomalyd_training_queue_depth", "gauge", "Series waiting for training.",
           (double)ts->queued);
    scalar(b, "anomalyd_training_running", "gauge", "Training jobs running.",
           (double)ts->running);
    family(b, "anomalyd_training_jobs_total", "counter", "Training jobs, by result.");
    put(b, "anomalyd_training_jobs_total{result=\"installed\"} %llu\n",
        (unsigned long long)ts->done);
    put(b, "anomalyd_training_jobs_total{result=\"failed\"} %llu\n",
        (unsigned long long)ts->failed);
    scalar(b, "anomalyd_training_dropped_total", "counter",
           "Trainings not queued: the queue was full.", (double)ts->dropped);
    scalar(b, "anomalyd_training_cpu_seconds_total", "counter",
           "Thread CPU seconds spent training.", ts->cpu_seconds);
    scalar(b, "anomalyd_training_deferred_total", "counter",
           "Times a training waited for the CPU budget.", (double)ts->deferred);
    family(b, "anomalyd_training_duration_seconds", "histogram",
           "Wall time of training jobs, from snapshot to install.");
    histogram(b, "anomalyd_training_duration_seconds", AD_TRAIN_BUCKETS, ad_trainer_bucket_le,
              ts->wall_hist, ts->wall_sum);
}

static void events(buf *b, const ad_daemon *d, const ad_events_stats *es)
{
    scalar(b, "anomalyd_events_total", "counter", "Anomaly events published.",
           (double)es->published);
    scalar(b, "anomalyd_events_dropped_total", "counter",
           "Events dropped from slow subscribers' buffers.", (double)es->dropped);
    scalar(b, "anomalyd_event_subscribers", "gauge", "Event subscribers connected.",
           (double)es->subscribers);
    scalar(b, "anomalyd_events_file_errors_total", "counter",
           "Events the events file could not take.", (double)es->file_errors);
    family(b, "anomalyd_event_subscribers_refused_total", "counter",
           "Event subscribers refused: over the file descriptor budget (fd_limit), or "
           "shed when none was left (fd_exhausted).");
    fd_refusals(b, d, "anomalyd_event_subscribers_refused_total", AD_FD_SUBSCRIBER);
}

static void http_server(buf *b, const ad_daemon *d, const ad_http_stats *hs)
{
    family(b, "anomalyd_http_connections_refused_total", "counter",
           "HTTP connections refused: over max_connections, over the file descriptor "
           "budget (fd_limit), or shed when none was left (fd_exhausted).");
    put(b, "anomalyd_http_connections_refused_total{reason=\"max_connections\"} %llu\n",
        (unsigned long long)hs->refused);
    fd_refusals(b, d, "anomalyd_http_connections_refused_total", AD_FD_HTTP);
    scalar(b, "anomalyd_http_requests_total", "counter", "HTTP requests handled.",
           (double)hs->requests);
    scalar(b, "anomalyd_http_bad_requests_total", "counter",
           "HTTP requests refused as malformed or too large.", (double)hs->bad_requests);
}

static uint64_t fam_members(const ad_fam *f)
{
    return f->members;
}
static uint64_t fam_trainings(const ad_fam *f)
{
    return f->trainings;
}
static uint64_t fam_batches(const ad_fam *f)
{
    return f->batches;
}
static uint64_t fam_batched(const ad_fam *f)
{
    return f->batched;
}
static uint64_t fam_bytes(const ad_fam *f)
{
    return ad_net_bytes(f->net);
}

/* The shared families, one sample per family in each. */
static void families(buf *b, const ad_fams *fs)
{
    static const struct {
        const char *name, *type, *help;
        uint64_t (*fn)(const ad_fam *f);
    } rows[] = {
        {"anomalyd_family_members", "gauge", "Series in a shared family.", fam_members},
        {"anomalyd_family_trainings_total", "counter",
         "Trainings of a shared family's network installed.", fam_trainings},
        {"anomalyd_family_batched_steps_total", "counter",
         "Batched network steps of a shared family's members (one matrix-matrix product "
         "per layer each).",
         fam_batches},
        {"anomalyd_family_batched_members_total", "counter",
         "Member steps run in a shared family's batched steps (divided by "
         "anomalyd_family_batched_steps_total: the mean batch size).",
         fam_batched},
        {"anomalyd_family_bytes", "gauge", "Bytes of a shared family's network.", fam_bytes},
    };

    scalar(b, "anomalyd_families", "gauge", "Shared families (rules with shared: true in use).",
           (double)ad_fam_count(fs));
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        family(b, rows[i].name, rows[i].type, rows[i].help);
        for (const ad_fam *f = fs->head; f; f = f->next)
            per_family(b, rows[i].name, f, rows[i].fn(f));
    }
}

static void latency(buf *b, const ad_daemon_stats *st)
{
    uint64_t cum[AD_LAT_BUCKETS], c = 0;

    family(b, "anomalyd_ingest_latency_seconds", "histogram",
           "Time from a sample's receipt (its read, datagram, request or StatsD flush) to "
           "its score.");
    for (int i = 0; i < AD_LAT_BUCKETS; i++)
        cum[i] = c += st->lat_hist[i];
    histogram(b, "anomalyd_ingest_latency_seconds", AD_LAT_BUCKETS, ad_latency_le, cum,
              st->lat_sum);
}

/* The store's checkpoints (when there is one), the restore's figures, the reloads. */
static void store(buf *b, const ad_daemon *d, const ad_daemon_stats *st)
{
    const ad_persist *ps = ad_daemon_persist(d);
    const ad_persist_stats *pst = ad_persist_get_stats(ps);
    const ad_store_stats *ss = ad_persist_store_stats(ps);

    if (ss) {
        family(b, "anomalyd_store_checkpoints_total", "counter",
               "Checkpoints to the state store, by result.");
        put(b, "anomalyd_store_checkpoints_total{result=\"written\"} %llu\n",
            (unsigned long long)ss->writes);
        put(b, "anomalyd_store_checkpoints_total{result=\"failed\"} %llu\n",
            (unsigned long long)ss->write_errors);
        scalar(b, "anomalyd_store_checkpoints_skipped_total", "counter",
               "Checkpoints due while the previous one was still being written.",
               (double)pst->checkpoints_skipped);
        scalar(b, "anomalyd_store_rows_written_total", "counter",
               "Series states written to the store.", (double)ss->rows_put);
        scalar(b, "anomalyd_store_rows_deleted_total", "counter",
               "Evicted series deleted from the store.", (double)ss->rows_deleted);
        scalar(b, "anomalyd_store_bytes_written_total", "counter",
               "Detector blob bytes written to the store.", (double)ss->bytes);
        scalar(b, "anomalyd_store_last_checkpoint_seconds", "gauge",
               "Wall time the last successful checkpoint took.", ss->last_seconds);
    }
    scalar(b, "anomalyd_store_restored_series", "gauge",
           "Series restored from the store at start.", (double)pst->restored);
    family(b, "anomalyd_store_restore_skipped", "gauge",
           "Saved series not restored at start, by reason.");
    put(b, "anomalyd_store_restore_skipped{reason=\"damaged\"} %llu\n",
        (unsigned long long)pst->restore_skipped[AD_SKIP_DAMAGED]);
    put(b, "anomalyd_store_restore_skipped{reason=\"settings_changed\"} %llu\n",
        (unsigned long long)pst->restore_skipped[AD_SKIP_SETTINGS]);
    put(b, "anomalyd_store_restore_skipped{reason=\"ignored_or_full\"} %llu\n",
        (unsigned long long)pst->restore_skipped[AD_SKIP_NO_ROOM]);
    put(b, "anomalyd_store_restore_skipped{reason=\"invalid_key\"} %llu\n",
        (unsigned long long)pst->restore_skipped[AD_SKIP_BAD_KEY]);
    family(b, "anomalyd_reloads_total", "counter", "Configuration reloads (SIGHUP), by result.");
    put(b, "anomalyd_reloads_total{result=\"applied\"} %llu\n", (unsigned long long)st->reloads);
    put(b, "anomalyd_reloads_total{result=\"refused\"} %llu\n",
        (unsigned long long)st->reload_failures);
}

int ad_metrics_render(const ad_daemon *d, char **out, size_t *len)
{
    return ad_metrics_render_opt(d, 1, out, len);
}

int ad_metrics_render_opt(const ad_daemon *d, int with_series, char **out, size_t *len)
{
    buf b = {0};
    const ad_daemon_stats *st = ad_daemon_get_stats(d);
    const ad_trainer *tr = ad_daemon_trainer(d);
    const ad_events *ev = ad_daemon_events(d);
    const ad_listeners *ls = ad_daemon_listeners(d);
    const ad_http_server *hs = ad_daemon_http(d);

    family(&b, "anomalyd_build_info", "gauge", "Version of the running anomalyd.");
    put(&b, "anomalyd_build_info{version=\"%s\"} 1\n", AD_VERSION);
    scalar(&b, "anomalyd_uptime_seconds", "gauge", "Seconds since the daemon started.",
           ad_wall_now() - st->started);
    ingest_counters(&b, st);
    if (ls)
        listener_counters(&b, d, ad_listeners_get_stats(ls));
    series_counters(&b, d, st);
    if (tr)
        training(&b, ad_trainer_get_stats(tr));
    if (ev)
        events(&b, d, ad_events_get_stats(ev));
    memory(&b, d, with_series);
    scalar(&b, "anomalyd_fds_open", "gauge", "File descriptors the process has open.",
           (double)ad_fdlimit_open_count());
    scalar(&b, "anomalyd_fds_limit", "gauge",
           "RLIMIT_NOFILE's soft limit (after anomalyd raised it; 0: unknown).",
           (double)ad_daemon_fdbudget(d)->limit);
    if (hs)
        http_server(&b, d, ad_http_server_stats(hs));
    families(&b, ad_daemon_families(d));
    latency(&b, st);
    store(&b, d, st);
    if (with_series)
        series_families(&b, d); /* the remote-write counters among them, in their place */
    else
        remote_write_counters(&b, d);
    if (b.err) {
        free(b.p);
        return -AD_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
