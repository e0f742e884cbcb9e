/*
 * check_config.c - the configuration (config.h, config_*.c): the built-in defaults;
 * config/anomalyd.yaml equal to them field by field and naming every key the loader
 * knows; a file setting every key; each class of error with its exact
 * "file:line:column" prefix and c left freed; per-series rules (inheritance from
 * `defaults` wherever it is, first match, ignore, scorer reset); the rule refusing an
 * unauthenticated API beyond loopback; the listeners' protocols from the registry's
 * flags; error paths that leak nothing (the ASan build checks).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "net.h" /* ad_err */
#include "ingest/proto_influx.h"
#include "ingest/protocols.h"

#define ERRLEN 4096

/* ---- helpers ---- */

static int parse(const char *text, ad_config *c, char *err)
{
    return ad_config_parse(text, strlen(text), "t.yaml", c, err, ERRLEN);
}

/* Parses text that must load; returns the config (free it). */
static ad_config ok(const char *text)
{
    ad_config c;
    char err[ERRLEN] = "";
    int rc = parse(text, &c, err);
    ck_assert_msg(rc == 0, "parse of:\n%s\nfailed: %s", text, err);
    return c;
}

/* Parses text that must fail with -AD_EINVAL, err starting with `prefix` and holding
 * `needle` (when not NULL), and c left freed. */
static void bad(const char *text, const char *prefix, const char *needle)
{
    ad_config c;
    char err[ERRLEN] = "";
    int rc = parse(text, &c, err);
    ck_assert_msg(rc == -AD_EINVAL, "parse of:\n%s\nreturned %d (%s)", text, rc, err);
    ck_assert_msg(!strncmp(err, prefix, strlen(prefix)), "parse of:\n%s\nwant '%s...', got '%s'",
                  text, prefix, err);
    ck_assert_msg(!needle || strstr(err, needle), "parse of:\n%s\nwant '%s' in '%s'", text, needle,
                  err);
    ck_assert_ptr_null(c.listeners);
    ck_assert_int_eq(c.nlisteners, 0);
    ck_assert_ptr_null(c.rules);
    ck_assert_int_eq(c.nrules, 0);
}

/* config/anomalyd.yaml, found from this file's path. */
static void default_file(char *out, size_t n)
{
    const char *f = __FILE__, *t = strstr(f, "tests/check_config.c");
    ck_assert_ptr_nonnull(t);
    snprintf(out, n, "%.*sconfig/anomalyd.yaml", (int)(t - f), f);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    static char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    ck_assert_int_lt(n, sizeof(buf) - 1);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

#define EQ_INT(f)                                                                                  \
    ck_assert_msg(a->f == b->f, "%s: %lld != %lld", #f, (long long)a->f, (long long)b->f)
#define EQ_FLT(f) ck_assert_msg(a->f == b->f, "%s: %g != %g", #f, (double)a->f, (double)b->f)
#define EQ_STR(f) ck_assert_msg(!strcmp(a->f, b->f), "%s: '%s' != '%s'", #f, a->f, b->f)

static void same_detector(const ad_detector_config *a, const ad_detector_config *b)
{
    EQ_INT(model);
    EQ_INT(s2s_window);
    EQ_INT(kind);
    EQ_INT(layers);
    EQ_INT(hidden);
    EQ_INT(features);
    EQ_INT(history);
    EQ_INT(train_after);
    EQ_INT(train_every);
    EQ_INT(window);
    EQ_INT(batch);
    EQ_INT(epochs);
    EQ_INT(patience);
    EQ_FLT(val_frac);
    EQ_FLT(lr);
    EQ_FLT(clip);
    EQ_FLT(input_clip);
    EQ_FLT(forget_bias);
    EQ_INT(prime);
    EQ_INT(relearn);
    EQ_FLT(max_exclude);
    EQ_INT(asinh);
    EQ_INT(seasonal_period);
    EQ_INT(seasonal_periods);
    EQ_FLT(seasonal_weight);
    EQ_INT(warmup_naive);
    EQ_FLT(alert_penalty);
    EQ_INT(alert_horizon);
    EQ_INT(long_window);
    EQ_INT(feature_span);
    EQ_FLT(raw_k);
    EQ_FLT(raw_rms);
    EQ_FLT(range_tolerance);
    EQ_INT(range_window);
    EQ_INT(cooldown);
    EQ_INT(seed);
    EQ_INT(scorer.kind);
    EQ_FLT(scorer.threshold);
    EQ_INT(scorer.window);
    EQ_INT(scorer.short_window);
    EQ_INT(scorer.min_samples);
    EQ_FLT(scorer.ewma_alpha);
    EQ_FLT(scorer.z_min);
    EQ_FLT(scorer.z_max);
    EQ_FLT(scorer.prune);
    EQ_INT(scorer.refit);
    EQ_FLT(scorer.k);
    EQ_FLT(scorer.min_sd);
    EQ_FLT(scorer.error_bound);
}

static void same_config(const ad_config *a, const ad_config *b)
{
    EQ_INT(log_level);
    EQ_INT(max_series);
    EQ_FLT(series_ttl);
    EQ_INT(max_line);
    EQ_INT(max_connections);
    EQ_INT(recent);
    EQ_STR(state_dir);
    EQ_INT(nlisteners);
    for (int i = 0; i < a->nlisteners; i++) {
        const ad_listener_config *x = &a->listeners[i], *y = &b->listeners[i];
        ck_assert_msg(x->protocol == y->protocol && x->transport == y->transport &&
                          !strcmp(x->address, y->address) && x->port == y->port &&
                          !strcmp(x->path, y->path) && x->precision == y->precision,
                      "listener %d differs", i);
    }
    EQ_FLT(statsd_flush);
    EQ_INT(statsd_idle_flushes);
    EQ_INT(http_enabled);
    EQ_STR(http_address);
    EQ_INT(http_port);
    EQ_STR(http_token);
    EQ_INT(http_allow_unauthenticated);
    EQ_INT(http_max_body);
    EQ_STR(events_address);
    EQ_INT(events_port);
    EQ_STR(events_unix);
    EQ_STR(events_file);
    EQ_INT(events_buffer);
    EQ_INT(train_threads);
    EQ_FLT(train_cpu_budget);
    EQ_INT(train_queue);
    EQ_INT(weights);
    EQ_INT(fp16);
    EQ_INT(store_enabled);
    EQ_STR(store_path);
    EQ_FLT(store_interval);
    EQ_INT(store_batch_bytes);
    EQ_INT(prom_include.n);
    EQ_INT(prom_exclude.n);
    EQ_INT(prom_rate.n);
    for (int i = 0; i < a->prom_rate.n; i++)
        ck_assert_str_eq(a->prom_rate.v[i], b->prom_rate.v[i]);
    for (int i = 0; i < a->prom_include.n; i++)
        ck_assert_str_eq(a->prom_include.v[i], b->prom_include.v[i]);
    for (int i = 0; i < a->prom_exclude.n; i++)
        ck_assert_str_eq(a->prom_exclude.v[i], b->prom_exclude.v[i]);
    EQ_INT(prom_exclude_own);
    EQ_INT(prom_max_decoded);
    same_detector(&a->defaults, &b->defaults);
    EQ_INT(nrules);
    for (int i = 0; i < a->nrules; i++) {
        ck_assert_str_eq(a->rules[i].match, b->rules[i].match);
        ck_assert_int_eq(a->rules[i].ignore, b->rules[i].ignore);
        same_detector(&a->rules[i].det, &b->rules[i].det);
    }
}

/* ---- defaults ---- */

START_TEST(test_defaults)
{
    ad_config c;
    ad_detector_config d;
    ck_assert_int_eq(ad_config_defaults(&c), 0);
    ck_assert_str_eq(c.source, "");
    ck_assert_int_eq(c.log_level, AD_LOG_INFO);
    ck_assert_uint_eq(c.max_series, 100000);
    ck_assert_double_eq(c.series_ttl, 86400);
    ck_assert_uint_eq(c.max_line, 65536);
    ck_assert_uint_eq(c.max_connections, 10000);
    ck_assert_int_eq(c.recent, 256);
    ck_assert_int_eq(c.weights, AD_W_F32);
    ck_assert_int_eq(c.fp16, 0);
    ck_assert_str_eq(c.state_dir, "./var");
    ck_assert_int_eq(c.nlisteners, 6);
    ck_assert_int_eq(c.listeners[0].protocol, AD_PROTO_GRAPHITE);
    ck_assert_int_eq(c.listeners[0].transport, AD_TRANSPORT_TCP);
    ck_assert_str_eq(c.listeners[0].address, "127.0.0.1");
    ck_assert_int_eq(c.listeners[0].port, 2003);
    ck_assert_int_eq(c.listeners[1].transport, AD_TRANSPORT_UDP);
    ck_assert_int_eq(c.listeners[2].protocol, AD_PROTO_INFLUX);
    ck_assert_int_eq(c.listeners[2].port, 8094);
    ck_assert_int_eq(c.listeners[2].precision, AD_PREC_NS);
    ck_assert_int_eq(c.listeners[3].protocol, AD_PROTO_STATSD);
    ck_assert_int_eq(c.listeners[3].port, 8125);
    ck_assert_int_eq(c.listeners[4].protocol, AD_PROTO_JSONL);
    ck_assert_int_eq(c.listeners[4].port, 8095);
    ck_assert_int_eq(c.listeners[5].transport, AD_TRANSPORT_UNIX);
    ck_assert_str_eq(c.listeners[5].path, "./var/anomalyd.sock");
    ck_assert_double_eq(c.statsd_flush, 10);
    ck_assert_int_eq(c.statsd_idle_flushes, 360);
    ck_assert_int_eq(c.http_enabled, 1);
    ck_assert_str_eq(c.http_address, "127.0.0.1");
    ck_assert_int_eq(c.http_port, 8080);
    ck_assert_str_eq(c.http_token, "");
    ck_assert_int_eq(c.http_allow_unauthenticated, 0);
    ck_assert_uint_eq(c.http_max_body, 16777216);
    ck_assert_str_eq(c.events_address, "127.0.0.1");
    ck_assert_int_eq(c.events_port, 8096);
    ck_assert_str_eq(c.events_unix, "./var/events.sock");
    ck_assert_str_eq(c.events_file, "./var/events.jsonl");
    ck_assert_uint_eq(c.events_buffer, 1048576);
    ck_assert_int_eq(c.train_threads, 1);
    ck_assert_double_eq(c.train_cpu_budget, 1.0);
    ck_assert_uint_eq(c.train_queue, 10000);
    ck_assert_int_eq(c.store_enabled, 1);
    ck_assert_str_eq(c.store_path, "./var/anomalyd.db");
    ck_assert_double_eq(c.store_interval, 60);
    ck_assert_int_eq(c.nrules, 0);
    ck_assert_ptr_null(c.rules);
    /* the daemon's defaults are the models' one table (anomalyctl score's too) */
    ad_detector_defaults(&d);
    ck_assert_int_eq(d.cooldown, 30);
    ck_assert_int_eq(d.train_after, 750);
    ck_assert_uint_eq(d.features, AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK);
    ck_assert_int_eq(d.seasonal_period, 86400);
    same_detector(&c.defaults, &d);
    ck_assert_int_eq(ad_detector_config_check(&c.defaults, NULL, 0), 0);
    ad_config_free(&c);
    ck_assert_ptr_null(c.listeners);
    ad_config_free(&c); /* twice is harmless */
}
END_TEST

START_TEST(test_empty_file_is_defaults)
{
    ad_config def;
    static const char *const empties[] = {"", "# nothing\n", "---\n", "~\n", "{}\n"};
    ck_assert_int_eq(ad_config_defaults(&def), 0);
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        ad_config c = ok(empties[i]);
        ck_assert_str_eq(c.source, "t.yaml");
        same_config(&c, &def);
        ad_config_free(&c);
    }
    /* an empty section is an empty map */
    ad_config c = ok("statsd:\nhttp: {}\ndefaults:\nseries:\n");
    same_config(&c, &def);
    ad_config_free(&c);
    ad_config_free(&def);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(ad_log_level_name(AD_LOG_ERROR), "error");
    ck_assert_str_eq(ad_log_level_name(AD_LOG_WARN), "warn");
    ck_assert_str_eq(ad_log_level_name(AD_LOG_INFO), "info");
    ck_assert_str_eq(ad_log_level_name(AD_LOG_DEBUG), "debug");
    ck_assert_ptr_null(ad_log_level_name(4));
    ck_assert_ptr_null(ad_log_level_name(-1));
}
END_TEST

/* ---- config/anomalyd.yaml ---- */

START_TEST(test_file_equals_defaults)
{
    char path[4096], err[ERRLEN] = "";
    ad_config c, def;
    default_file(path, sizeof(path));
    ck_assert_msg(ad_config_load(path, &c, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(c.source, path);
    ck_assert_int_eq(ad_config_defaults(&def), 0);
    same_config(&c, &def);
    ad_config_free(&c);
    ad_config_free(&def);
}
END_TEST

/* Does `key:` start a line of text, after spaces, '#' and a list's "- "? */
static int documented(const char *text, const char *key)
{
    size_t n = strlen(key);
    for (const char *line = text; line; line = strchr(line, '\n')) {
        while (*line == '\n' || *line == ' ' || *line == '#')
            line++;
        if (line[0] == '-' && line[1] == ' ')
            line += 2;
        while (*line == ' ')
            line++;
        if (!strncmp(line, key, n) && line[n] == ':')
            return 1;
    }
    return 0;
}

/* Every key the loader knows, as its unknown-key message lists them, is in the file. */
START_TEST(test_file_documents_every_key)
{
    static const char *const probes[] = {"zzzzzzzzzzzz: 1\n",
                                         "statsd: {zzzzzzzzzzzz: 1}\n",
                                         "http: {zzzzzzzzzzzz: 1}\n",
                                         "events: {zzzzzzzzzzzz: 1}\n",
                                         "training: {zzzzzzzzzzzz: 1}\n",
                                         "store: {zzzzzzzzzzzz: 1}\n",
                                         "prometheus: {zzzzzzzzzzzz: 1}\n",
                                         "listeners: [{zzzzzzzzzzzz: 1}]\n",
                                         "defaults: {zzzzzzzzzzzz: 1}\n",
                                         "series: [{zzzzzzzzzzzz: 1}]\n"};
    char path[4096];
    int nkeys = 0;
    default_file(path, sizeof(path));
    const char *text = read_all(path);
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        ad_config c;
        char err[ERRLEN] = "";
        ck_assert_int_eq(parse(probes[i], &c, err), -AD_EINVAL);
        char *list = strstr(err, "(valid keys: ");
        ck_assert_msg(list != NULL, "%s", err);
        list += strlen("(valid keys: ");
        char *end = strchr(list, ')');
        ck_assert_ptr_nonnull(end);
        *end = '\0';
        for (char *k = strtok(list, ", "); k; k = strtok(NULL, ", ")) {
            ck_assert_msg(documented(text, k), "key '%s' (from %s) is not in %s", k, probes[i],
                          path);
            nkeys++;
        }
    }
    ck_assert_int_eq(nkeys, 19 + 2 + 6 + 5 + 4 + 4 + 5 + 6 + 53 + 56);
}
END_TEST

/* A file that sets every key to something other than its default. */
static const char full_text[] =
    "log_level: debug\n"
    "max_series: 5000\n"
    "series_ttl: 3600.5\n"
    "max_line: 1024\n"
    "max_connections: 50\n"
    "recent: 64\n"
    "weights: int8\n"
    "state_dir: /tmp/ad\n"
    "listeners:\n"
    "  - {protocol: influx, transport: udp, address: '::1', port: 9000, precision: ms}\n"
    "  - {protocol: statsd, transport: tcp, address: 10.0.0.1, port: 0}\n"
    "  - {protocol: statsd, transport: tcp, address: 10.0.0.1, port: 0}\n"
    "  - {protocol: graphite, transport: unix, path: /tmp/g.sock}\n"
    "  - {protocol: jsonl, transport: tcp, port: 7000}\n"
    "statsd: {flush_interval: 0.5, idle_flushes: 3}\n"
    "http:\n"
    "  enabled: no\n"
    "  address: 0.0.0.0\n"
    "  port: 0\n"
    "  token: s3cret\n"
    "  allow_unauthenticated: on\n"
    "  max_body: 2048\n"
    "events: {address: '', port: 1, unix: '', file: /tmp/e.jsonl, buffer: 8192}\n"
    "training: {threads: 4, cpu_budget: 0.25, queue: 7}\n"
    "store: {enabled: false, path: /tmp/s.db, checkpoint_interval: 2.5}\n"
    "defaults:\n"
    "  model: seq2seq\n"
    "  s2s_window: 16\n"
    "  cell: gru\n"
    "  hidden: 8\n"
    "  layers: 2\n"
    "  features: [gap, tod]\n"
    "  seed: 18446744073709551615\n"
    "  history: 900\n"
    "  train_after: 300\n"
    "  train_every: 0\n"
    "  window: 24\n"
    "  batch: 8\n"
    "  epochs: 5\n"
    "  patience: 2\n"
    "  lr: 0.003\n"
    "  val_frac: 0.1\n"
    "  input_clip: 4\n"
    "  clip: 0.5\n"
    "  forget_bias: -2\n"
    "  prime: 10\n"
    "  relearn: 0\n"
    "  max_exclude: 0.5\n"
    "  cooldown: 0\n"
    "  range_tolerance: 0\n"
    "  asinh: yes\n"
    "  threshold: 0.7\n" /* before scorer: still applied after its reset */
    "  scorer: dynamic\n"
    "  scorer_window: 500\n"
    "  short_window: 5\n"
    "  min_samples: 50\n"
    "  k: 3\n"
    "  min_sd: 0.01\n"
    "  alpha: 0.5\n"
    "  z_min: 1.5\n"
    "  z_max: 8\n"
    "  prune: 0.2\n"
    "  refit: 10\n"
    "series:\n"
    "  - match: 'cpu.*'\n"
    "    ignore: false\n"
    "    hidden: 4\n"
    "  - match: 'debug.*'\n"
    "    ignore: true\n";

START_TEST(test_full_file)
{
    ad_config c = ok(full_text);
    ck_assert_int_eq(c.log_level, AD_LOG_DEBUG);
    ck_assert_uint_eq(c.max_series, 5000);
    ck_assert_double_eq(c.series_ttl, 3600.5);
    ck_assert_uint_eq(c.max_line, 1024);
    ck_assert_uint_eq(c.max_connections, 50);
    ck_assert_int_eq(c.recent, 64);
    ck_assert_int_eq(c.weights, AD_W_I8);
    ck_assert_str_eq(c.state_dir, "/tmp/ad");
    ck_assert_int_eq(c.nlisteners, 5);
    ck_assert_int_eq(c.listeners[0].protocol, AD_PROTO_INFLUX);
    ck_assert_int_eq(c.listeners[0].transport, AD_TRANSPORT_UDP);
    ck_assert_str_eq(c.listeners[0].address, "::1");
    ck_assert_int_eq(c.listeners[0].port, 9000);
    ck_assert_int_eq(c.listeners[0].precision, AD_PREC_MS);
    /* two on port 0 (any free port) do not clash */
    ck_assert_int_eq(c.listeners[1].protocol, AD_PROTO_STATSD);
    ck_assert_int_eq(c.listeners[1].transport, AD_TRANSPORT_TCP);
    ck_assert_int_eq(c.listeners[2].port, 0);
    ck_assert_int_eq(c.listeners[3].transport, AD_TRANSPORT_UNIX);
    ck_assert_str_eq(c.listeners[3].path, "/tmp/g.sock");
    ck_assert_str_eq(c.listeners[3].address, "");
    ck_assert_str_eq(c.listeners[4].address, "127.0.0.1"); /* the default address */
    ck_assert_int_eq(c.listeners[4].port, 7000);
    ck_assert_double_eq(c.statsd_flush, 0.5);
    ck_assert_int_eq(c.statsd_idle_flushes, 3);
    ck_assert_int_eq(c.http_enabled, 0);
    ck_assert_str_eq(c.http_address, "0.0.0.0");
    ck_assert_int_eq(c.http_port, 0);
    ck_assert_str_eq(c.http_token, "s3cret");
    ck_assert_int_eq(c.http_allow_unauthenticated, 1);
    ck_assert_uint_eq(c.http_max_body, 2048);
    ck_assert_str_eq(c.events_address, "");
    ck_assert_int_eq(c.events_port, 1);
    ck_assert_str_eq(c.events_unix, "");
    ck_assert_str_eq(c.events_file, "/tmp/e.jsonl");
    ck_assert_uint_eq(c.events_buffer, 8192);
    ck_assert_int_eq(c.train_threads, 4);
    ck_assert_double_eq(c.train_cpu_budget, 0.25);
    ck_assert_uint_eq(c.train_queue, 7);
    ck_assert_int_eq(c.store_enabled, 0);
    ck_assert_str_eq(c.store_path, "/tmp/s.db");
    ck_assert_double_eq(c.store_interval, 2.5);
    const ad_detector_config *d = &c.defaults;
    ck_assert_int_eq(d->model, AD_MODEL_SEQ2SEQ);
    ck_assert_int_eq(d->s2s_window, 16);
    ck_assert_int_eq(d->kind, AD_CELL_GRU);
    ck_assert_int_eq(d->hidden, 8);
    ck_assert_int_eq(d->layers, 2);
    ck_assert_uint_eq(d->features, AD_FEAT_GAP | AD_FEAT_TIME_OF_DAY);
    ck_assert(d->seed == UINT64_MAX);
    ck_assert_int_eq(d->history, 900);
    ck_assert_int_eq(d->train_after, 300);
    ck_assert_int_eq(d->train_every, 0);
    ck_assert_int_eq(d->window, 24);
    ck_assert_int_eq(d->batch, 8);
    ck_assert_int_eq(d->epochs, 5);
    ck_assert_int_eq(d->patience, 2);
    ck_assert(d->lr == 0.003f);
    ck_assert(d->val_frac == 0.1f);
    ck_assert(d->input_clip == 4.0f);
    ck_assert(d->clip == 0.5f);
    ck_assert(d->forget_bias == -2.0f);
    ck_assert_int_eq(d->prime, 10);
    ck_assert_int_eq(d->relearn, 0);
    ck_assert(d->max_exclude == 0.5f);
    ck_assert_int_eq(d->cooldown, 0);
    ck_assert(d->range_tolerance == 0.0f);
    ck_assert_int_eq(d->asinh, 1);
    ck_assert_int_eq(d->scorer.kind, AD_SCORER_DYNAMIC);
    ck_assert(d->scorer.threshold == 0.7f);
    ck_assert_int_eq(d->scorer.window, 500);
    ck_assert_int_eq(d->scorer.short_window, 5);
    ck_assert_int_eq(d->scorer.min_samples, 50);
    ck_assert(d->scorer.k == 3.0f);
    ck_assert(d->scorer.min_sd == 0.01f);
    ck_assert(d->scorer.ewma_alpha == 0.5f);
    ck_assert(d->scorer.z_min == 1.5f);
    ck_assert(d->scorer.z_max == 8.0f);
    ck_assert(d->scorer.prune == 0.2f);
    ck_assert_int_eq(d->scorer.refit, 10);
    ck_assert_int_eq(c.nrules, 2);
    ck_assert_str_eq(c.rules[0].match, "cpu.*");
    ck_assert_int_eq(c.rules[0].ignore, 0);
    ck_assert_int_eq(c.rules[0].det.hidden, 4);
    ck_assert_int_eq(c.rules[0].line, 65);
    ck_assert_int_eq(c.rules[0].column, 5);
    ck_assert_str_eq(c.rules[1].match, "debug.*");
    ck_assert_int_eq(c.rules[1].ignore, 1);
    ck_assert_int_eq(c.rules[1].line, 68);
    ad_config_free(&c);
}
END_TEST

START_TEST(test_load_missing_file)
{
    ad_config c;
    char err[ERRLEN] = "";
    ck_assert_int_eq(ad_config_load("/nonexistent/anomalyd.yaml", &c, err, sizeof(err)), -AD_EIO);
    ck_assert_str_eq(err, "/nonexistent/anomalyd.yaml: No such file or directory");
    ck_assert_ptr_null(c.listeners);
    ck_assert_ptr_null(c.rules);
    ck_assert_int_eq(ad_config_load("/", &c, err, sizeof(err)), -AD_EIO);
    ck_assert_str_eq(err, "/: Is a directory");
    ck_assert_ptr_null(c.listeners);
}
END_TEST

START_TEST(test_load_reports_path)
{
    char path[] = "/tmp/check_config_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("http:\n  port: 70000\n", f);
    fclose(f);
    ad_config c;
    char err[ERRLEN] = "", want[256];
    int rc = ad_config_load(path, &c, err, sizeof(err));
    unlink(path);
    ck_assert_int_eq(rc, -AD_EINVAL);
    snprintf(want, sizeof(want), "%s:2:9: http.port: 70000 is out of range 0..65535", path);
    ck_assert_str_eq(err, want);
}
END_TEST

/* ---- state_dir: the paths under it follow it unless the file gives them ---- */

START_TEST(test_state_dir_moves_default_paths)
{
    ad_config c = ok("state_dir: /tmp/x\n");
    ck_assert_str_eq(c.state_dir, "/tmp/x");
    ck_assert_str_eq(c.store_path, "/tmp/x/anomalyd.db");
    ck_assert_str_eq(c.events_unix, "/tmp/x/events.sock");
    ck_assert_str_eq(c.events_file, "/tmp/x/events.jsonl");
    ck_assert_int_eq(c.nlisteners, 6);
    ck_assert_int_eq(c.listeners[5].transport, AD_TRANSPORT_UNIX);
    ck_assert_str_eq(c.listeners[5].path, "/tmp/x/anomalyd.sock");
    ad_config_free(&c);
    /* a trailing slash is not doubled; a relative state_dir gives relative paths; a
     * section given without the path key still follows, wherever state_dir is */
    c = ok("store: {enabled: true}\nevents: {port: 0}\nstate_dir: /tmp/x/\n");
    ck_assert_str_eq(c.store_path, "/tmp/x/anomalyd.db");
    ck_assert_str_eq(c.events_unix, "/tmp/x/events.sock");
    ck_assert_str_eq(c.listeners[5].path, "/tmp/x/anomalyd.sock");
    ad_config_free(&c);
    c = ok("state_dir: data\n");
    ck_assert_str_eq(c.store_path, "data/anomalyd.db");
    ck_assert_str_eq(c.events_file, "data/events.jsonl");
    ad_config_free(&c);
}
END_TEST

START_TEST(test_state_dir_keeps_given_paths)
{
    /* a path given in the file is used as written, relative or absolute */
    ad_config c = ok("state_dir: /tmp/x\nstore: {path: /srv/db/anomalyd.db}\n");
    ck_assert_str_eq(c.store_path, "/srv/db/anomalyd.db");
    ck_assert_str_eq(c.events_unix, "/tmp/x/events.sock"); /* not given: follows */
    ck_assert_str_eq(c.events_file, "/tmp/x/events.jsonl");
    ck_assert_str_eq(c.listeners[5].path, "/tmp/x/anomalyd.sock");
    ad_config_free(&c);
    c = ok("state_dir: /tmp/x\n"
           "store: {path: ./var/anomalyd.db}\n"
           "events: {unix: '', file: rel/e.jsonl}\n"
           "listeners:\n  - {protocol: jsonl, transport: unix, path: ./var/anomalyd.sock}\n");
    ck_assert_str_eq(c.store_path, "./var/anomalyd.db");
    ck_assert_str_eq(c.events_unix, "");
    ck_assert_str_eq(c.events_file, "rel/e.jsonl");
    ck_assert_int_eq(c.nlisteners, 1);
    ck_assert_str_eq(c.listeners[0].path, "./var/anomalyd.sock");
    ad_config_free(&c);
}
END_TEST

/* What a reload does to keep the running state_dir: only the paths that followed the
 * file's state_dir move. */
START_TEST(test_set_state_dir)
{
    char err[ERRLEN] = "", dir[AD_PATH_MAX + 1];
    ad_config c = ok("state_dir: /new\nstore: {path: /db/s.db}\n");

    ck_assert_uint_eq(c.follow, AD_FOLLOW_ALL & ~AD_FOLLOW_STORE_PATH);
    ck_assert_int_eq(ad_config_set_state_dir(&c, "./var", err, sizeof(err)), 0);
    ck_assert_str_eq(c.state_dir, "./var");
    ck_assert_str_eq(c.store_path, "/db/s.db");
    ck_assert_str_eq(c.events_unix, "./var/events.sock");
    ck_assert_str_eq(c.events_file, "./var/events.jsonl");
    ck_assert_str_eq(c.listeners[5].path, "./var/anomalyd.sock");
    /* too long: refused, c unchanged */
    memset(dir, 'a', AD_PATH_MAX - 10);
    dir[AD_PATH_MAX - 10] = '\0';
    ck_assert_int_eq(ad_config_set_state_dir(&c, dir, err, sizeof(err)), -AD_EINVAL);
    ck_assert_msg(!strncmp(err, "state_dir: too long", 19), "%s", err);
    ck_assert_str_eq(c.state_dir, "./var");
    ck_assert_str_eq(c.events_unix, "./var/events.sock");
    memset(dir, 'a', AD_PATH_MAX);
    dir[AD_PATH_MAX] = '\0';
    ck_assert_int_eq(ad_config_set_state_dir(&c, dir, err, sizeof(err)), -AD_EINVAL);
    ck_assert_str_eq(c.state_dir, "./var");
    ad_config_free(&c);
    /* the built-in defaults follow it too */
    ck_assert_int_eq(ad_config_defaults(&c), 0);
    ck_assert_uint_eq(c.follow, AD_FOLLOW_ALL);
    ck_assert_int_eq(ad_config_set_state_dir(&c, "/srv/ad", NULL, 0), 0);
    ck_assert_str_eq(c.store_path, "/srv/ad/anomalyd.db");
    ck_assert_str_eq(c.listeners[5].path, "/srv/ad/anomalyd.sock");
    ad_config_free(&c);
    /* all given: nothing follows */
    c = ok("listeners: []\nstore: {path: a}\nevents: {unix: b, file: c}\n");
    ck_assert_uint_eq(c.follow, 0);
    ad_config_free(&c);
}
END_TEST

START_TEST(test_err_state_dir_too_long)
{
    /* "<state_dir>/anomalyd.sock" (the default unix listener, the longest default) must
     * fit in AD_PATH_MAX - 1 bytes: state_dir may be 4081 bytes, not 4082 */
    static char text[AD_PATH_MAX + 256];
    char dir[AD_PATH_MAX];
    size_t n = AD_PATH_MAX - 1 - strlen("/anomalyd.sock");
    ad_config c;

    dir[0] = '/';
    memset(dir + 1, 'a', n - 1);
    dir[n] = '\0';
    snprintf(text, sizeof(text), "state_dir: %s\nevents: {unix: ''}\n", dir);
    /* it fits AD_PATH_MAX, but not a socket address (sun_path: 107 bytes) */
    bad(text, "t.yaml:1:12: listeners[5].path: unix socket path of 4095 bytes: at most 107 fit", NULL);

    dir[n] = 'a';
    dir[n + 1] = '\0';
    snprintf(text, sizeof(text), "log_level: info\nstate_dir: %s\n", dir);
    bad(text, "t.yaml:2:12: state_dir: ", "anomalyd.sock");
    /* without the default listeners, events.file's default is the longest: it fits */
    snprintf(text, sizeof(text), "listeners: []\nstate_dir: %s\nevents: {unix: ''}\n", dir);
    c = ok(text);
    ck_assert_uint_eq(strlen(c.events_file), n + 1 + strlen("/events.jsonl"));
    ad_config_free(&c);

    /* a state_dir as long as it may be, every path under it given: fine */
    memset(dir + 1, 'a', AD_PATH_MAX - 2);
    dir[AD_PATH_MAX - 1] = '\0';
    snprintf(text, sizeof(text),
             "state_dir: %s\nlisteners: []\nstore: {path: /db}\nevents: {unix: '', file: ''}\n",
             dir);
    c = ok(text);
    ck_assert_str_eq(c.store_path, "/db");
    ad_config_free(&c);
    /* one of them left to follow it: refused, naming state_dir and the key */
    snprintf(text, sizeof(text),
             "state_dir: %s\nlisteners: []\nstore: {path: /db}\nevents: {unix: ''}\n", dir);
    bad(text, "t.yaml:1:12: state_dir: ", "events.file");
}
END_TEST

/* ---- errors: each class, at its node ---- */

START_TEST(test_err_syntax)
{
    bad("a: [1, 2\n", "t.yaml:2:1: ", "did not find expected");
    bad("http:\n  port: 1\n bad: 2\n", "t.yaml:3:2: ", NULL);
    bad("key: 'unterminated\n", "t.yaml:2:1: ", "quoted scalar");
    bad("log_level: info\n\x01\n", "t.yaml:2:1: ", "control characters");
    bad("log_level: info\n---\nlog_level: warn\n", "t.yaml:3:1: ", "second YAML document");
    bad("- 1\n- 2\n", "t.yaml:1:1: ", "expected a map, got a list");
}
END_TEST

START_TEST(test_err_unknown_key)
{
    bad("max_lines: 10\n",
        "t.yaml:1:1: ", "unknown key 'max_lines' in the top level (did you mean 'max_line'?)");
    bad("http:\n  enabled: true\n  tokn: x\n",
        "t.yaml:3:3: ", "unknown key 'tokn' in http (did you mean 'token'?)");
    bad("statsd: {nothing_like_it: 1}\n", "t.yaml:1:10: ",
        "unknown key 'nothing_like_it' in statsd (valid keys: flush_interval, idle_flushes)");
    bad("defaults:\n  hiden: 3\n", "t.yaml:2:3: ", "(did you mean 'hidden'?)");
    bad("series:\n  - match: x\n    ignored: true\n",
        "t.yaml:3:5: ", "unknown key 'ignored' in series[0] (did you mean 'ignore'?)");
    bad("listeners:\n  - protocol: jsonl\n    transprt: tcp\n",
        "t.yaml:3:5: ", "in listeners[0] (did you mean 'transport'?)");
    bad("[a]: 1\n", "t.yaml:1:1: ", "a key must be a single word");
}
END_TEST

START_TEST(test_err_type)
{
    bad("max_line: \"100\"\n",
        "t.yaml:1:11: ", "max_line: expected an integer, got the string \"100\"");
    bad("max_line:\n", "t.yaml:1:10: ", "max_line: expected an integer, got nothing");
    bad("max_line: {a: 1}\n", "t.yaml:1:11: ", "max_line: expected a single value, got a map");
    bad("state_dir: [a]\n", "t.yaml:1:12: ", "state_dir: expected a single value, got a list");
    bad("http: 5\n", "t.yaml:1:7: ", "http: expected a map, got a single value");
    bad("listeners: 5\n", "t.yaml:1:12: ", "listeners: expected a list of listeners");
    bad("listeners:\n", "t.yaml:1:11: ", "([] for none), got nothing");
    bad("listeners: [tcp]\n", "t.yaml:1:13: ", "listeners[0]: expected a map");
    bad("series: {match: x}\n", "t.yaml:1:9: ", "series: expected a list of rules, got a map");
    bad("series: [x]\n", "t.yaml:1:10: ", "series[0]: expected a map");
    bad("defaults: {features: tod}\n", "t.yaml:1:22: ",
        "defaults.features: expected a list of tod, dow, gap ([] for none), got a single value");
    bad("defaults: {features: [[tod]]}\n", "t.yaml:1:23: ", "expected tod, dow or gap, got a list");
    bad("http: {enabled: \"true\"}\n", "t.yaml:1:17: ", "http.enabled: expected a boolean");
    bad("state_dir: \"a\\0b\"\n", "t.yaml:1:12: ", "state_dir: contains a NUL byte");
}
END_TEST

START_TEST(test_err_range)
{
    bad("max_line: 10\n", "t.yaml:1:11: ", "max_line: 10 is out of range 64..16777216");
    bad("recent: 65537\n", "t.yaml:1:9: ", "recent: 65537 is out of range 0..65536");
    bad("statsd:\n  flush_interval: 0.05\n",
        "t.yaml:2:19: ", "statsd.flush_interval: 0.05 is out of range 0.1..3600");
    bad("series:\n  - match: a\n    shared: true\n    model: seq2seq\n", "t.yaml:2:5: ",
        "shared families predict");
    bad("series:\n  - match: a\n    shared: true\n    ignore: true\n", "t.yaml:2:5: ",
        "cannot both ignore and share");
    bad("training: {cpu_budget: 65}\n", "t.yaml:1:24: ", "out of range 0.01..64");
    bad("defaults: {threshold: 0}\n",
        "t.yaml:1:23: ", "defaults.threshold: 0 is out of range (0, 1]");
    bad("defaults: {prune: 1}\n", "t.yaml:1:19: ", "out of range [0, 1)");
    bad("defaults: {layers: 5}\n", "t.yaml:1:20: ", "defaults.layers: 5 is out of range 1..4");
    bad("defaults: {incident_ref: 15}\n", "t.yaml:1:26: ",
        "defaults.incident_ref: 15 is out of range 16..4096");
    bad("series: [{match: a, incident_z: -1}]\n", "t.yaml:1:33: ",
        "series[0].incident_z: -1 is out of range 0..1000000");
    bad("defaults: {departure: -0.5}\n", "t.yaml:1:23: ",
        "defaults.departure: -0.5 is out of range 0..1000000");
    bad("series: [{match: a, hidden: 0}]\n",
        "t.yaml:1:29: ", "series[0].hidden: 0 is out of range 1..512");
    char text[400];
    snprintf(text, sizeof(text), "http: {token: %0256d}\n", 0); /* one byte too many */
    bad(text, "t.yaml:1:15: ", "http.token: too long (256 bytes, at most 255)");
    bad("state_dir: ''\n", "t.yaml:1:12: ", "state_dir: must not be empty");
    bad("series: [{match: ''}]\n", "t.yaml:1:18: ", "series[0].match: must not be empty");
}
END_TEST

START_TEST(test_err_duplicate)
{
    bad("max_line: 100\nrecent: 9\nmax_line: 200\n",
        "t.yaml:3:1: ", "the top level: duplicate key 'max_line' (first at line 1, column 1)");
    bad("http:\n  port: 1\n  port: 2\n", "t.yaml:3:3: ", "http: duplicate key 'port'");
    bad("series:\n  - {match: a, hidden: 3, hidden: 4}\n",
        "t.yaml:2:27: ", "series[0]: duplicate key 'hidden'");
    bad("defaults: {features: [tod, dow, tod]}\n",
        "t.yaml:1:33: ", "defaults.features: 'tod' is listed twice");
}
END_TEST

START_TEST(test_err_enum)
{
    bad("log_level: verbose\n",
        "t.yaml:1:12: ", "log_level: 'verbose' is not one of error | warn | info | debug");
    bad("defaults: {cell: rnn}\n", "t.yaml:1:18: ",
        "defaults.cell: 'rnn' is not one of elman | lstm | peephole | cifg | gru | gru_torch");
    bad("defaults: {model: lstm}\n", "t.yaml:1:19: ", "'lstm' is not one of predict | seq2seq");
    bad("defaults: {scorer: best}\n",
        "t.yaml:1:20: ", "'best' is not one of likelihood | dynamic | static");
    bad("defaults: {features: [tod, week]}\n",
        "t.yaml:1:28: ", "defaults.features: 'week' is not one of tod | dow | gap");
    bad("listeners: [{protocol: carbon, transport: tcp, port: 1}]\n", "t.yaml:1:24: ",
        "listeners[0].protocol: 'carbon' is not one of graphite | influx | statsd | jsonl");
    bad("listeners: [{protocol: jsonl, transport: sctp, port: 1}]\n",
        "t.yaml:1:42: ", "'sctp' is not one of tcp | udp | unix");
    bad("listeners: [{protocol: influx, transport: tcp, port: 1, precision: n}]\n",
        "t.yaml:1:68: ", "'n' is not one of ns | us | ms | s");
}
END_TEST

START_TEST(test_err_number)
{
    bad("max_series: 12abc\n", "t.yaml:1:13: ", "max_series: '12abc' is not an integer");
    bad("max_series: 1.5\n", "t.yaml:1:13: ", "'1.5' is not an integer");
    bad("max_series: 99999999999999999999999\n", "t.yaml:1:13: ", "is not an integer");
    bad("recent: 4294967304\n", "t.yaml:1:9: ", "out of range 0..65536"); /* not wrapped */
    bad("statsd: {flush_interval: 1.5x}\n",
        "t.yaml:1:26: ", "statsd.flush_interval: '1.5x' is not a number");
    bad("statsd: {flush_interval: nan}\n", "t.yaml:1:26: ", "'nan' is not a number");
    bad("statsd: {flush_interval: 1e999}\n", "t.yaml:1:26: ", "'1e999' is not a number");
    bad("defaults: {seed: -1}\n", "t.yaml:1:18: ", "defaults.seed: '-1' is not an integer");
    bad("defaults: {seed: 18446744073709551616}\n", "t.yaml:1:18: ", "is not an integer");
}
END_TEST

START_TEST(test_booleans)
{
    static const char *const yes[] = {"true", "yes", "on", "True", "YES"};
    static const char *const no[] = {"false", "no", "off", "False", "OFF"};
    char text[128];
    for (int i = 0; i < 5; i++) {
        snprintf(text, sizeof(text), "http: {enabled: %s}\n", no[i]);
        ad_config c = ok(text);
        ck_assert_int_eq(c.http_enabled, 0);
        ad_config_free(&c);
        snprintf(text, sizeof(text), "defaults: {asinh: %s}\n", yes[i]);
        c = ok(text);
        ck_assert_int_eq(c.defaults.asinh, 1);
        ad_config_free(&c);
    }
    bad("http: {enabled: maybe}\n",
        "t.yaml:1:17: ", "http.enabled: 'maybe' is not a boolean (true/false/yes/no/on/off)");
    bad("http: {enabled: 1}\n", "t.yaml:1:17: ", "is not a boolean");
    bad("http: {enabled: }\n", "t.yaml:1:17: ", "expected a boolean");
}
END_TEST

/* weights: float32 | float16 | int8; fp16 (the old key) folds into it: fp16: true is
 * float16, false leaves the default; both given, they must agree, else an error at the
 * fp16 key. */
START_TEST(test_weights)
{
    static const struct {
        const char *text;
        int weights;
    } good[] = {
        {"weights: float32\n", AD_W_F32},
        {"weights: float16\n", AD_W_F16},
        {"weights: int8\n", AD_W_I8},
        {"fp16: true\n", AD_W_F16},
        {"fp16: false\n", AD_W_F32},
        {"fp16: yes\nweights: float16\n", AD_W_F16},
        {"weights: int8\nfp16: false\n", AD_W_I8},
        {"weights: float32\nfp16: off\n", AD_W_F32},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ad_config c = ok(good[i].text);
        ck_assert_msg(c.weights == good[i].weights, "%s: weights %d", good[i].text, c.weights);
        ad_config_free(&c);
    }
    bad("fp16: true\nweights: int8\n", "t.yaml:1:1: ",
        "fp16: true disagrees with weights: int8 (fp16: true is the old spelling of weights: "
        "float16; give weights only)");
    bad("weights: float32\nfp16: yes\n", "t.yaml:2:1: ",
        "fp16: true disagrees with weights: float32");
    bad("max_line: 1024\nweights: float16\n  # a comment\nfp16: off\n", "t.yaml:4:1: ",
        "fp16: false disagrees with weights: float16");
    bad("weights: fp8\n", "t.yaml:1:10: ", "weights: 'fp8' is not one of float32 | float16 | int8");
    bad("weights: true\n", "t.yaml:1:10: ", "'true' is not one of float32 | float16 | int8");
    bad("fp16: int8\n", "t.yaml:1:7: ", "fp16: 'int8' is not a boolean");
}
END_TEST

START_TEST(test_err_detector_check)
{
    /* per key fine, together not: reported at the map with the models' message */
    bad("log_level: info\ndefaults:\n  window: 100\n  history: 150\n",
        "t.yaml:3:3: ", "defaults: history must be 200..1e+07, got 150");
    bad("series:\n  - match: a\n  - match: b\n    window: 1300\n",
        "t.yaml:3:5: ", "series[1]: history must be");
    bad("defaults:\n  scorer_window: 100\n  min_samples: 101\n",
        "t.yaml:2:3: ", "scorer min_samples must be 1..window (100), got 101");
    bad("defaults: {scorer: dynamic, z_min: 5, z_max: 3}\n",
        "t.yaml:1:11: ", "defaults: scorer z range");
    bad("defaults: {hidden: 512, features: [tod, dow, gap], layers: 4}\ndefaults: {}\n",
        "t.yaml:2:1: ", "duplicate key 'defaults'");
    /* a rule inherits defaults that only the rule's keys make invalid */
    bad("series: [{match: a, train_after: 10}]\n", "t.yaml:1:10: ", "series[0]: train_after");
}
END_TEST

/* The detector keys' own bounds (the rows repeat the models' simple ones so that an error
 * points at the key) are accepted by the models' checks at both ends: the rows are no
 * stricter than the models. Each bound is read back from the out-of-range message. */
START_TEST(test_detector_bounds_agree_with_models)
{
    static const struct {
        const char *key, *room; /* room: companion keys that make the bound reachable */
    } keys[] = {
        {"s2s_window", "history: 2048, model: seq2seq"},
        {"hidden", ""},
        {"layers", ""},
        {"history", "window: 2, s2s_window: 2, train_after: 4"},
        {"train_after", "window: 2"},
        {"train_every", ""},
        {"window", "history: 8192, train_after: 8192"},
        {"batch", ""},
        {"epochs", ""},
        {"patience", ""},
        {"lr", ""},
        {"val_frac", ""},
        {"input_clip", ""},
        {"clip", ""},
        {"forget_bias", ""},
        {"prime", ""},
        {"relearn", ""},
        {"max_exclude", ""},
        {"cooldown", ""},
        {"range_tolerance", ""},
        {"range_window", ""},
        {"seasonal_period", ""},
        {"seasonal_periods", ""},
        {"seasonal_weight", ""},
        {"alert_penalty", ""},
        {"alert_horizon", ""},
        {"threshold", ""},
        {"scorer_window", "min_samples: 1, short_window: 1, long_window: 0"},
        {"short_window", "scorer_window: 1000000, min_samples: 1"},
        {"long_window", "scorer_window: 1000000, min_samples: 1"},
        {"min_samples", "scorer_window: 1000000"},
        {"k", "scorer: static"},
        {"min_sd", ""},
        {"error_bound", ""},
        {"alpha", "scorer: dynamic"},
        {"z_min", "scorer: dynamic, z_max: 100"},
        {"z_max", "scorer: dynamic, z_min: 0.5"},
        {"prune", "scorer: dynamic"},
        {"refit", "scorer: dynamic"},
    };
    char text[512], err[ERRLEN];
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        ad_config c;
        snprintf(text, sizeof(text), "defaults: {%s: 1e31}\n", keys[i].key);
        ck_assert_int_eq(parse(text, &c, err), -AD_EINVAL);
        const char *r = strstr(err, "out of range ");
        if (!r) { /* an integer key: 1e31 is no integer */
            snprintf(text, sizeof(text), "defaults: {%s: 2000000000}\n", keys[i].key);
            ck_assert_int_eq(parse(text, &c, err), -AD_EINVAL);
            r = strstr(err, "out of range ");
        }
        ck_assert_msg(r != NULL, "%s: %s", keys[i].key, err);
        r += strlen("out of range ");
        int lo_open = *r == '(', hi_open = 0;
        char *end;
        if (*r == '(' || *r == '[')
            r++;
        const char *sep = strstr(r, "..") ? strstr(r, "..") : strstr(r, ", ");
        ck_assert_msg(sep != NULL, "%s: %s", keys[i].key, err);
        double lo = strtod(r, &end); /* "1..4": strtod stops at "1." */
        ck_assert_msg(end != r && end <= sep + 1, "%s: %s", keys[i].key, err);
        r = sep + 2;
        double hi = strtod(r, &end);
        ck_assert_msg(end != r, "%s: %s", keys[i].key, err);
        hi_open = *end == ')';
        for (int side = 0; side < 2; side++) {
            if (side ? hi_open : lo_open)
                continue;
            snprintf(text, sizeof(text), "defaults: {%s: %.17g%s%s}\n", keys[i].key, side ? hi : lo,
                     *keys[i].room ? ", " : "", keys[i].room);
            ck_assert_msg(parse(text, &c, err) == 0, "%s refused: %s", text, err);
            ad_config_free(&c);
        }
    }
}
END_TEST

START_TEST(test_err_listeners)
{
    bad("listeners:\n  - {protocol: jsonl, transport: tcp, address: localhost, port: 1}\n",
        "t.yaml:2:48: ", "listeners[0].address: 'localhost' is not an IPv4 or IPv6 address");
    bad("listeners:\n  - {protocol: jsonl, transport: tcp}\n",
        "t.yaml:2:5: ", "listeners[0]: port is required for tcp listeners");
    bad("listeners:\n  - {transport: tcp, port: 1}\n",
        "t.yaml:2:5: ", "listeners[0]: protocol is required (graphite | influx | statsd | jsonl)");
    bad("listeners:\n  - {protocol: statsd, port: 1}\n",
        "t.yaml:2:5: ", "listeners[0]: transport is required");
    bad("listeners:\n  - {protocol: jsonl, transport: unix}\n",
        "t.yaml:2:5: ", "listeners[0]: path is required for unix listeners");
    bad("listeners:\n  - {protocol: jsonl, transport: tcp, port: 1, path: /x}\n",
        "t.yaml:2:48: ", "listeners[0]: path is for unix listeners (this one is tcp)");
    bad("listeners:\n  - {protocol: jsonl, transport: unix, path: /x, port: 3}\n",
        "t.yaml:2:50: ", "listeners[0]: port is for tcp and udp listeners");
    bad("listeners:\n  - {protocol: graphite, transport: udp, port: 1, precision: s}\n",
        "t.yaml:2:51: ", "listeners[0]: precision is for influx listeners (this one is graphite)");
    bad("listeners:\n"
        "  - {protocol: graphite, transport: tcp, address: '::1', port: 2003}\n"
        "  - {protocol: graphite, transport: udp, address: '::1', port: 2003}\n"
        "  - {protocol: jsonl, transport: tcp, address: '0:0:0:0:0:0:0:1', port: 2003}\n",
        "t.yaml:4:5: ",
        "listeners[2]: listeners[0] already listens on tcp 0:0:0:0:0:0:0:1 port 2003");
    bad("listeners:\n"
        "  - {protocol: jsonl, transport: unix, path: /a}\n"
        "  - {protocol: statsd, transport: unix, path: /a}\n",
        "t.yaml:3:5: ", "listeners[1]: listeners[0] already listens on unix path /a");
}
END_TEST

START_TEST(test_prometheus)
{
    ad_config c;

    ck_assert_int_eq(ad_config_defaults(&c), 0);
    ck_assert_int_eq(c.prom_include.n, 0);
    ck_assert_int_eq(c.prom_exclude.n, 0);
    ck_assert_int_eq(c.prom_rate.n, 1);
    ck_assert_str_eq(c.prom_rate.v[0], "*");
    ck_assert_uint_eq(c.prom_max_decoded, 33554432);
    ck_assert_int_eq(c.prom_exclude_own, 1);
    ad_config_free(&c);
    ck_assert_ptr_null(c.prom_rate.v);
    c = ok("prometheus:\n  include: [node_*, 'job=node', '{job=\"a,b\"}']\n"
           "  exclude: ['go_*']\n  rate: []\n  max_decoded: 1024\n  exclude_own: false\n");
    ck_assert_int_eq(c.prom_exclude_own, 0);
    ck_assert_int_eq(c.prom_include.n, 3);
    ck_assert_str_eq(c.prom_include.v[0], "node_*");
    ck_assert_str_eq(c.prom_include.v[1], "job=node");
    ck_assert_str_eq(c.prom_include.v[2], "{job=\"a,b\"}");
    ck_assert_int_eq(c.prom_exclude.n, 1);
    ck_assert_int_eq(c.prom_rate.n, 0);
    ck_assert_uint_eq(c.prom_max_decoded, 1024);
    ad_config_free(&c);
    bad("prometheus:\n  include: ['m{job']\n", "t.yaml:2:13: ",
        "prometheus.include: pattern 'm{job': ");
    bad("prometheus:\n  exclude: go_*\n", "t.yaml:2:12: ",
        "prometheus.exclude: expected a list of patterns");
    bad("prometheus:\n  rate: [[a]]\n", "t.yaml:2:10: ", "expected a pattern (a string)");
    bad("prometheus:\n  max_decoded: 10\n", "t.yaml:2:16: ", "out of range");
    bad("prometheus: {include: []}\n"
        "listeners:\n  - {protocol: prometheus, transport: tcp, port: 9090}\n",
        "t.yaml:3:5: ", "listeners[0]: prometheus is not a socket protocol");
}
END_TEST

/* The listeners' protocols come from the registry's flags (protocols.h), not from the
 * order of the enum: every protocol a listener may speak is taken by name, the others
 * are refused, and the "required" message lists exactly the listener ones. */
START_TEST(test_listener_protocols_from_registry)
{
    char text[256], want[256] = "", err[ERRLEN];
    size_t used = 0;

    for (int p = 0; p < AD_PROTO_N; p++) {
        const ad_proto_info *pi = ad_proto_info_of(p);
        ad_config c;
        int rc;

        ck_assert_ptr_nonnull(pi);
        ck_assert_int_eq(ad_proto_from_name(pi->name), p);
        snprintf(text, sizeof(text), "listeners:\n  - {protocol: %s, transport: udp, port: 1}\n",
                 pi->name);
        rc = parse(text, &c, err);
        if (pi->flags & AD_PROTO_F_LISTENER) {
            ck_assert_msg(rc == 0, "%s: %s", pi->name, err);
            ck_assert_int_eq(c.listeners[0].protocol, p);
            ad_config_free(&c);
            used += (size_t)snprintf(want + used, sizeof(want) - used, "%s%s", used ? " | " : "",
                                     pi->name);
        } else {
            ck_assert_int_eq(rc, -AD_EINVAL);
            ck_assert_msg(strstr(err, "is not a socket protocol"), "%s", err);
        }
    }
    ck_assert_str_eq(want, "graphite | influx | statsd | jsonl");
    snprintf(text, sizeof(text), "listeners[0]: protocol is required (%s)", want);
    bad("listeners:\n  - {transport: tcp, port: 1}\n", "t.yaml:2:5: ", text);
}
END_TEST

START_TEST(test_listeners_replace)
{
    ad_config c = ok("listeners: []\n");
    ck_assert_int_eq(c.nlisteners, 0);
    ck_assert_ptr_null(c.listeners);
    ad_config_free(&c);
    c = ok("listeners:\n  - {protocol: statsd, transport: udp, port: 8125}\n");
    ck_assert_int_eq(c.nlisteners, 1);
    ck_assert_int_eq(c.listeners[0].protocol, AD_PROTO_STATSD);
    ck_assert_str_eq(c.listeners[0].address, "127.0.0.1");
    ad_config_free(&c);
}
END_TEST

/* ---- per-series rules ---- */

START_TEST(test_rules_inherit_defaults)
{
    /* `defaults` after `series` in the file still comes first */
    ad_config c = ok("series:\n"
                     "  - match: 'cpu.*'\n"
                     "    hidden: 32\n"
                     "  - match: 'cpu.user'\n"
                     "    hidden: 8\n"
                     "  - match: 'debug.*'\n"
                     "    ignore: true\n"
                     "defaults:\n"
                     "  layers: 2\n"
                     "  cooldown: 7\n");
    const ad_detector_config *d = NULL;
    int ignore = -1;
    ck_assert_int_eq(c.defaults.layers, 2);
    ck_assert_int_eq(c.rules[0].det.layers, 2);
    ck_assert_int_eq(c.rules[0].det.cooldown, 7);
    ck_assert_int_eq(c.rules[0].det.hidden, 32);
    ck_assert_int_eq(c.rules[0].det.train_after, 750); /* the daemon's default */
    ck_assert_int_eq(c.rules[0].line, 2);
    ck_assert_int_eq(c.rules[0].column, 5);
    /* first match wins: cpu.user matches rule 0 before rule 1 */
    ck_assert_int_eq(ad_config_match(&c, "cpu.user", &d, &ignore), 0);
    ck_assert_ptr_eq(d, &c.rules[0].det);
    ck_assert_int_eq(d->hidden, 32);
    ck_assert_int_eq(ignore, 0);
    /* '*' crosses '.' (no FNM_PERIOD / FNM_PATHNAME) */
    ck_assert_int_eq(ad_config_match(&c, "cpu.a/b.c", &d, &ignore), 0);
    ck_assert_int_eq(ad_config_match(&c, "debug.x", &d, &ignore), 2);
    ck_assert_int_eq(ignore, 1);
    ck_assert_int_eq(ad_config_match(&c, "mem.free", &d, &ignore), -1);
    ck_assert_ptr_eq(d, &c.defaults);
    ck_assert_int_eq(ignore, 0);
    ck_assert_int_eq(d->layers, 2);
    ck_assert_int_eq(ad_config_match(&c, "cpu", NULL, NULL), -1);
    ad_config_free(&c);
}
END_TEST

START_TEST(test_scorer_resets_first)
{
    /* scorer resets the scorer's fields, then the map's other scorer keys apply,
     * whatever their order; a rule's scorer resets what defaults set */
    ad_config c = ok("defaults:\n"
                     "  threshold: 0.9\n"
                     "  k: 2\n"
                     "  scorer: static\n"
                     "  min_sd: 0.5\n"
                     "series:\n"
                     "  - {match: a, k: 3}\n"
                     "  - {match: b, threshold: 0.6, scorer: likelihood}\n");
    ck_assert_int_eq(c.defaults.scorer.kind, AD_SCORER_STATIC);
    ck_assert(c.defaults.scorer.threshold == 0.9f);
    ck_assert(c.defaults.scorer.k == 2.0f);
    ck_assert(c.defaults.scorer.min_sd == 0.5f);
    ck_assert_int_eq(c.rules[0].det.scorer.kind, AD_SCORER_STATIC);
    ck_assert(c.rules[0].det.scorer.threshold == 0.9f);
    ck_assert(c.rules[0].det.scorer.k == 3.0f);
    ck_assert_int_eq(c.rules[1].det.scorer.kind, AD_SCORER_LIKELIHOOD);
    ck_assert(c.rules[1].det.scorer.threshold == 0.6f);
    ck_assert(c.rules[1].det.scorer.k == 4.0f);       /* reset */
    ck_assert(c.rules[1].det.scorer.min_sd == 1e-3f); /* reset */
    ad_config_free(&c);
}
END_TEST

START_TEST(test_features_empty)
{
    ad_config c = ok("defaults: {features: []}\nseries: [{match: x, features: [gap]}]\n");
    ck_assert_uint_eq(c.defaults.features, 0);
    ck_assert_uint_eq(c.rules[0].det.features, AD_FEAT_GAP);
    ad_config_free(&c);
}
END_TEST

START_TEST(test_err_rule_needs_match)
{
    bad("series:\n  - hidden: 3\n", "t.yaml:2:5: ", "series[0]: a rule needs a match");
}
END_TEST

/* ---- the security rule ---- */

START_TEST(test_security)
{
    static const char *const open_addrs[] = {"0.0.0.0", "'::'", "10.1.2.3", "'::ffff:10.0.0.1'"};
    static const char *const loop_addrs[] = {"127.0.0.1", "127.9.8.7", "'::1'",
                                             "'::ffff:127.0.0.1'"};
    char text[256];
    for (size_t i = 0; i < 4; i++) {
        snprintf(text, sizeof(text), "http:\n  port: 80\n  address: %s\n", open_addrs[i]);
        bad(text, "t.yaml:3:12: ", "http.token is empty");
        bad(text, "t.yaml:3:12: ", "set http.token, or set http.allow_unauthenticated: true");
        snprintf(text, sizeof(text), "http:\n  address: %s\n", loop_addrs[i]);
        ad_config c = ok(text);
        ad_config_free(&c);
    }
    /* the rule looks at the final values, whatever the order */
    bad("http:\n  enabled: false\n  address: 0.0.0.0\n  enabled: true\n",
        "t.yaml:4:3: ", "duplicate key");
    ad_config c = ok("http: {address: 0.0.0.0, token: abc}\n");
    ck_assert_str_eq(c.http_token, "abc");
    ad_config_free(&c);
    c = ok("http: {address: 0.0.0.0, allow_unauthenticated: true}\n");
    ad_config_free(&c);
    c = ok("http: {address: 0.0.0.0, enabled: false}\n");
    ad_config_free(&c);
    bad("http: {token: '', address: 0.0.0.0}\n", "t.yaml:1:28: ", "not a loopback address");
    bad("http: {address: ''}\n", "t.yaml:1:17: ", "http.address: must not be empty");
}
END_TEST

/* ---- error paths leak nothing (ASan's leak check runs at exit) ---- */

START_TEST(test_error_paths_free)
{
    static const char *const texts[] = {
        "listeners:\n  - {protocol: jsonl, transport: tcp, port: 1}\n  - {protocol: x}\n",
        "series:\n  - {match: a}\n  - {match: b, hidden: 0}\n",
        "series:\n  - {match: a}\nlisteners: [{protocol: jsonl, transport: tcp, port: 1}]\n"
        "http: {address: 0.0.0.0}\n",
        "defaults: {hidden: 3}\nseries: [{match: a}]\n---\nx: 1\n",
        "defaults: {hidden: 3}\nseries: [{match: a}]\n---\n[\n",
        "a: &x [1, 2]\nb: *x\n",
        "a: *undefined\n",
    };
    ad_config c;
    char err[ERRLEN];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
            int rc = parse(texts[i], &c, err);
            ck_assert_msg(rc == -AD_EINVAL, "%s: %d %s", texts[i], rc, err);
            ck_assert_ptr_null(c.listeners);
            ck_assert_ptr_null(c.rules);
            ad_config_free(&c); /* harmless on a freed config */
        }
    }
    /* NULL or tiny error buffers are fine */
    ck_assert_int_eq(ad_config_parse("x: 1", 4, "n", &c, NULL, 0), -AD_EINVAL);
    ck_assert_int_eq(ad_config_parse("x: 1", 4, "n", &c, err, 3), -AD_EINVAL);
    ck_assert_str_eq(err, "n:");
    /* a config loaded again after a success (the caller frees in between) */
    c = ok(full_text);
    ad_config_free(&c);
    c = ok(full_text);
    ad_config_free(&c);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_empty_file_is_defaults);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, test_file_equals_defaults);
    tcase_add_test(tc, test_file_documents_every_key);
    tcase_add_test(tc, test_full_file);
    tcase_add_test(tc, test_load_missing_file);
    tcase_add_test(tc, test_load_reports_path);
    suite_add_tcase(s, tc);

    tc = tcase_create("state_dir");
    tcase_add_test(tc, test_state_dir_moves_default_paths);
    tcase_add_test(tc, test_state_dir_keeps_given_paths);
    tcase_add_test(tc, test_err_state_dir_too_long);
    tcase_add_test(tc, test_set_state_dir);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_err_syntax);
    tcase_add_test(tc, test_err_unknown_key);
    tcase_add_test(tc, test_err_type);
    tcase_add_test(tc, test_err_range);
    tcase_add_test(tc, test_err_duplicate);
    tcase_add_test(tc, test_err_enum);
    tcase_add_test(tc, test_err_number);
    tcase_add_test(tc, test_booleans);
    tcase_add_test(tc, test_weights);
    tcase_add_test(tc, test_err_detector_check);
    tcase_add_test(tc, test_detector_bounds_agree_with_models);
    suite_add_tcase(s, tc);

    tc = tcase_create("listeners");
    tcase_add_test(tc, test_err_listeners);
    tcase_add_test(tc, test_listeners_replace);
    tcase_add_test(tc, test_listener_protocols_from_registry);
    tcase_add_test(tc, test_prometheus);
    suite_add_tcase(s, tc);

    tc = tcase_create("rules");
    tcase_add_test(tc, test_rules_inherit_defaults);
    tcase_add_test(tc, test_scorer_resets_first);
    tcase_add_test(tc, test_features_empty);
    tcase_add_test(tc, test_err_rule_needs_match);
    suite_add_tcase(s, tc);

    tc = tcase_create("security");
    tcase_add_test(tc, test_security);
    suite_add_tcase(s, tc);

    tc = tcase_create("leaks");
    tcase_add_test(tc, test_error_paths_free);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
