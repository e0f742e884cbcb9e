/*
 * check_daemon.c - the daemon's core (daemon*.c) driven through its doors on a real
 * libuv loop: lines in through the ingest door and what became of each (samples queued,
 * or the parse error that refused it), the counters and series they make, values the
 * detectors refuse counted by reason, the receipt's stamps (latency, samples without a
 * timestamp, last_seen), POST /write and remote write over loopback HTTP, the readers'
 * doors (stats.h), and a store that survives a restart.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "core_harness.h"

static const ad_series *series_of(ch_daemon *h, const char *key)
{
    return ad_series_table_find(ad_daemon_series(h->d), key, strlen(key));
}

static uint64_t latency_count(const ad_daemon_stats *st)
{
    uint64_t n = 0;

    for (int i = 0; i < AD_LAT_BUCKETS; i++)
        n += st->lat_hist[i];
    return n;
}

/* ---- lines in ---- */

START_TEST(test_line_results)
{
    ch_daemon h;
    const ad_daemon_stats *st;

    ch_start(&h, NULL);
    st = ad_daemon_get_stats(h.d);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "a.b 1.5 1700000000"), 1);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_INFLUX, "cpu,host=a user=1,sys=2 1700000000000000000"),
                     2);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_JSONL, "{\"series\":\"j\",\"value\":3}"), 1);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, ""), 0);         /* nothing to do */
    ck_assert_int_eq(ch_line(&h, AD_PROTO_STATSD, "req:1|c"), 0);    /* aggregated */
    ck_assert_int_eq(ch_line(&h, AD_PROTO_STATSD, ""), 0);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "a.b"), -AD_PE_SYNTAX);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "a.b x 1700000000"), -AD_PE_VALUE);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "a\xff 1 1700000000"), -AD_PE_UTF8);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_STATSD, "req:1|zz"), -AD_PE_TYPE);

    ck_assert_uint_eq(st->samples[AD_PROTO_GRAPHITE], 1);
    ck_assert_uint_eq(st->samples[AD_PROTO_INFLUX], 2);
    ck_assert_uint_eq(st->samples[AD_PROTO_JSONL], 1);
    ck_assert_uint_eq(st->samples[AD_PROTO_STATSD], 0);
    ck_assert_uint_eq(st->parse_errors[AD_PROTO_GRAPHITE][AD_PE_SYNTAX], 1);
    ck_assert_uint_eq(st->parse_errors[AD_PROTO_GRAPHITE][AD_PE_VALUE], 1);
    ck_assert_uint_eq(st->parse_errors[AD_PROTO_GRAPHITE][AD_PE_UTF8], 1);
    ck_assert_uint_eq(st->parse_errors[AD_PROTO_STATSD][AD_PE_TYPE], 1);
    ck_assert_uint_eq(st->series_created, 4);
    ck_assert_uint_eq(ad_series_table_size(ad_daemon_series(h.d)), 4);
    ck_assert_ptr_nonnull(series_of(&h, "a.b"));
    ck_assert_ptr_nonnull(series_of(&h, "cpu,host=a user"));
    ck_assert_int_eq(series_of(&h, "j")->proto, AD_PROTO_JSONL);
    ck_assert_uint_eq(ad_detector_get_stats(series_of(&h, "a.b")->det)->samples, 1);
    ck_assert(series_of(&h, "a.b")->last.value == 1.5);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_series_rules)
{
    ch_daemon h;
    const ad_daemon_stats *st;

    ch_start(&h, "max_series: 2\nseries:\n  - {match: \"skip.*\", ignore: true}\n");
    st = ad_daemon_get_stats(h.d);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "skip.me 1 1700000000"), 1);
    ck_assert_uint_eq(st->ignored, 1);
    ck_assert_uint_eq(st->series_created, 0);
    ch_line(&h, AD_PROTO_GRAPHITE, "s1 1 1700000000");
    ch_line(&h, AD_PROTO_GRAPHITE, "s2 1 1700000000");
    ch_line(&h, AD_PROTO_GRAPHITE, "s3 1 1700000000"); /* over max_series */
    ck_assert_uint_eq(st->series_created, 2);
    ck_assert_uint_eq(st->series_refused, 1);
    ck_assert_ptr_null(series_of(&h, "s3"));
    /* the door that creates a series without a sample (remote write's) */
    ck_assert_int_eq(ad_daemon_prepare_series(h.d, AD_PROTO_PROMETHEUS, "s1", 2, 1), 0);
    ck_assert_int_eq(ad_daemon_prepare_series(h.d, AD_PROTO_PROMETHEUS, "s4", 2, 0), -AD_EFULL);
    ck_assert_int_eq(ad_daemon_prepare_series(h.d, AD_PROTO_PROMETHEUS, "skip.x", 6, 1), 0);
    ck_assert_uint_eq(ad_daemon_config(h.d)->max_series, 2);
    ch_stop(&h, 0);
}
END_TEST

START_TEST(test_prepare_series)
{
    ch_daemon h;
    double t0;

    ch_start(&h, NULL);
    ck_assert_int_eq(ad_daemon_prepare_series(h.d, AD_PROTO_PROMETHEUS, "p", 1, 0), 1);
    ck_assert_ptr_null(series_of(&h, "p"));
    t0 = ad_wall_now();
    ck_assert_int_eq(ad_daemon_prepare_series(h.d, AD_PROTO_PROMETHEUS, "p", 1, 1), 1);
    ck_assert_ptr_nonnull(series_of(&h, "p"));
    ck_assert_int_eq(series_of(&h, "p")->proto, AD_PROTO_PROMETHEUS);
    ck_assert(series_of(&h, "p")->last_seen >= t0);
    ck_assert_uint_eq(ad_daemon_get_stats(h.d)->series_created, 1);
    ck_assert_uint_eq(ad_detector_get_stats(series_of(&h, "p")->det)->samples, 0);
    ch_stop(&h, 0);
}
END_TEST

/* ---- values refused, by reason ---- */

static void sample(ch_daemon *h, const char *key, double ts, double v)
{
    ad_sample s = {key, strlen(key), ts, v};

    ad_daemon_received(h->d, uv_hrtime());
    ad_daemon_sample(h->d, AD_PROTO_GRAPHITE, &s);
    ad_daemon_flush(h->d);
}

START_TEST(test_refused_by_reason)
{
    ch_daemon h;
    const ad_daemon_stats *st;

    ch_start(&h, NULL);
    st = ad_daemon_get_stats(h.d);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "r 1 1700000010"), 1);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "r 1 1700000000"), 1); /* backwards */
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "r 1e31 1700000020"), 1); /* range */
    /* what no parser gives, through the sample door: the detector's reason is counted */
    sample(&h, "r", INFINITY, 1);
    sample(&h, "r", 1700000030, NAN);
    sample(&h, "r", 1700000030, -INFINITY);
    for (int i = 0; i < AD_REFUSE_NREASONS; i++)
        ck_assert_msg(st->refused[i] == 1, "%s: %llu", ad_refusal_name(i),
                      (unsigned long long)st->refused[i]);
    ck_assert_uint_eq(ad_detector_get_stats(series_of(&h, "r")->det)->samples, 1);
    ck_assert_uint_eq(st->samples[AD_PROTO_GRAPHITE], 6);
    /* a series' samples in one batch, each refused for its own reason */
    ad_daemon_received(h.d, uv_hrtime());
    for (int i = 0; i < 3; i++) {
        static const double v[] = {NAN, 1, 1e31};
        ad_sample s = {"r", 1, i == 1 ? 1699999999 : 1700000040, v[i]};

        ad_daemon_sample(h.d, AD_PROTO_GRAPHITE, &s);
    }
    ad_daemon_flush(h.d);
    ck_assert_uint_eq(st->refused[AD_REFUSE_NAN], 2);
    ck_assert_uint_eq(st->refused[AD_REFUSE_BACKWARDS], 2);
    ck_assert_uint_eq(st->refused[AD_REFUSE_RANGE], 2);
    ch_stop(&h, 0);
}
END_TEST

/* ---- the receipt ---- */

START_TEST(test_receipt_stamps)
{
    ch_daemon h;
    const ad_daemon_stats *st;
    const ad_series *s;
    ad_point p;
    double t0, t1;

    ch_start(&h, NULL);
    st = ad_daemon_get_stats(h.d);
    t0 = ad_wall_now();
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "now.x 2"), 1); /* no timestamp */
    t1 = ad_wall_now();
    s = series_of(&h, "now.x");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->recent_len, 1);
    p = ad_series_point(s, 0);
    ck_assert(p.ts >= t0 && p.ts <= t1);
    ck_assert(s->last_seen >= t0 && s->last_seen <= t1);
    ck_assert_uint_eq(latency_count(st), 1);
    ck_assert(st->lat_sum >= 0 && st->lat_sum < 10);
    ck_assert_uint_eq(st->scored[0] + st->scored[1], 1);
    ch_stop(&h, 0);
}
END_TEST

/* ---- HTTP doors ---- */

START_TEST(test_post_write)
{
    static const char body[] = "w1 v=1 1700000000\nbad line\nw2 v=2 1700000000\r\nworse\n";
    ch_daemon h;
    char *resp;
    int status;

    ch_start(&h, NULL);
    status = ch_http(&h, "POST /write?precision=s HTTP/1.1\r\nHost: x\r\n", body,
                     sizeof(body) - 1, &resp);
    ck_assert_int_eq(status, 400);
    ck_assert_msg(strstr(resp, "2 line(s) refused, the first at line 2"), "%s", resp);
    free(resp);
    ck_assert_ptr_nonnull(series_of(&h, "w1 v"));
    ck_assert_ptr_nonnull(series_of(&h, "w2 v"));
    ck_assert_uint_eq(ad_daemon_get_stats(h.d)->parse_errors[AD_PROTO_INFLUX][AD_PE_SYNTAX] +
                          ad_daemon_get_stats(h.d)->parse_errors[AD_PROTO_INFLUX][AD_PE_NO_FIELDS],
                      2);
    status = ch_http(&h, "POST /write?precision=s HTTP/1.1\r\nHost: x\r\n", "w1 v=3 1700000001",
                     17, NULL);
    ck_assert_int_eq(status, 204);
    ck_assert_uint_eq(ad_daemon_get_stats(h.d)->samples[AD_PROTO_INFLUX], 3);
    ch_stop(&h, 0);
}
END_TEST

/* A remote-written series' last_seen is the wall clock of its own request (it was the
 * clock of the last other receipt: 0 for the first thing the daemon got). */
START_TEST(test_remote_write_receipt)
{
    static const int64_t ts[] = {1700000000000, 1700000015000};
    static const double v[] = {1.0, 2.0};
    ch_daemon h;
    const ad_series *s;
    size_t len;
    char *body = ch_remote_write("temp", "job", "x", ts, v, 2, &len), *resp;
    double t0, t1;
    int status;

    ch_start(&h, NULL);
    ck_assert_ptr_null(ad_daemon_promrw(h.d));
    t0 = ad_wall_now();
    status = ch_http(&h,
                     "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Encoding: snappy\r\n"
                     "Content-Type: application/x-protobuf\r\n",
                     body, len, &resp);
    t1 = ad_wall_now();
    ck_assert_msg(status == 204, "%d %s", status, resp);
    free(resp);
    s = series_of(&h, "temp{job=\"x\"}");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->proto, AD_PROTO_PROMETHEUS);
    ck_assert_uint_eq(ad_detector_get_stats(s->det)->samples, 2);
    ck_assert_msg(s->last_seen >= t0 && s->last_seen <= t1, "last_seen %f not in [%f, %f]",
                  s->last_seen, t0, t1);
    ck_assert_ptr_nonnull(ad_daemon_promrw(h.d));
    ck_assert_uint_eq(ad_promrw_get_stats(ad_daemon_promrw(h.d))->samples[AD_PRW_INGESTED], 2);
    ck_assert_uint_eq(ad_daemon_get_stats(h.d)->samples[AD_PROTO_PROMETHEUS], 2);
    ck_assert_uint_eq(latency_count(ad_daemon_get_stats(h.d)), 2);
    free(body);
    ch_stop(&h, 0);
}
END_TEST

/* ---- an anomaly ---- */

/* A spike after a steady wave, scored by the warm-up fallback: an alert counted by the
 * series and the daemon, kept in the ring, published to the events file. */
START_TEST(test_anomaly)
{
    ch_daemon h;
    const ad_anomaly *a;
    char line[96];
    int i;

    ch_start(&h, "defaults: {train_after: 100000, cooldown: 20}\n");
    for (i = 0; i < 300; i++) {
        snprintf(line, sizeof(line), "sig %.6f %d", sin(i * 0.2), 1700000000 + 10 * i);
        ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, line), 1);
    }
    ck_assert_uint_eq(ad_daemon_get_stats(h.d)->anomalies_total, 0);
    ck_assert_int_eq(ad_daemon_anomaly_count(h.d), 0);
    snprintf(line, sizeof(line), "sig 100 %d", 1700000000 + 10 * i);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, line), 1);
    ck_assert_uint_eq(ad_daemon_get_stats(h.d)->anomalies_total, 1);
    ck_assert_uint_eq(series_of(&h, "sig")->anomalies, 1);
    ck_assert(series_of(&h, "sig")->last.flagged);
    ck_assert_int_eq(ad_daemon_anomaly_count(h.d), 1);
    a = ad_daemon_anomaly(h.d, 0);
    ck_assert_str_eq(a->series, "sig");
    ck_assert(a->value == 100 && a->ts == 1700000000 + 10 * i);
    ck_assert(a->score >= 0.5);
    ck_assert_uint_eq(ad_events_get_stats(ad_daemon_events(h.d))->published, 1);
    ch_stop(&h, 0);
}
END_TEST

/* ---- the readers' doors ---- */

START_TEST(test_readers)
{
    ch_daemon h;
    ad_memstat m;

    ch_start(&h, "series:\n  - {match: \"fam.*\", shared: true}\n");
    ck_assert_int_eq(ad_daemon_stopping(h.d), 0);
    ck_assert_ptr_nonnull(ad_daemon_trainer(h.d));
    ck_assert_ptr_nonnull(ad_daemon_http(h.d));
    ck_assert_ptr_nonnull(ad_daemon_events(h.d)); /* no sinks: events go to the log */
    ck_assert_uint_eq(ad_events_get_stats(ad_daemon_events(h.d))->subscribers, 0);
    ck_assert_ptr_nonnull(ad_daemon_listeners(h.d));
    ck_assert_int_eq(ad_listeners_count(ad_daemon_listeners(h.d)), 0);
    ck_assert_int_eq(ad_persist_has_store(ad_daemon_persist(h.d)), 0);
    ck_assert_int_eq(ad_daemon_anomaly_count(h.d), 0);
    ck_assert_ptr_null(ad_daemon_anomaly(h.d, 0));
    ck_assert(ad_daemon_get_stats(h.d)->started > 0);
    ch_line(&h, AD_PROTO_GRAPHITE, "fam.a 1 1700000000");
    ch_line(&h, AD_PROTO_GRAPHITE, "fam.b 1 1700000000");
    ch_line(&h, AD_PROTO_GRAPHITE, "own 1 1700000000");
    ck_assert_uint_eq(ad_fam_count(ad_daemon_families(h.d)), 1);
    ck_assert_uint_eq(ad_daemon_families(h.d)->head->members, 2);
    ck_assert_ptr_eq(series_of(&h, "fam.a")->family, ad_daemon_families(h.d)->head);
    ck_assert_ptr_null(series_of(&h, "own")->family);
    ad_daemon_memstat(h.d, &m);
    ck_assert_uint_eq(m.nseries, 3);
    ck_assert_uint_gt(m.detectors, 0);
    ck_assert_uint_gt(m.families, 0);
    ck_assert_uint_eq(m.remote_write, 0);
    ad_daemon_stop(h.d);
    ck_assert_int_eq(ad_daemon_stopping(h.d), 1);
    ck_assert_ptr_null(ad_daemon_trainer(h.d));
    ck_assert_ptr_null(ad_daemon_http(h.d));
    ch_stop(&h, 0); /* a second stop is a no-op: it runs the loop out */
}
END_TEST

/* ---- the store across a restart ---- */

START_TEST(test_store_restart)
{
    char dir[] = "/tmp/check_core.XXXXXX", extra[512];
    ch_daemon h;
    const ad_persist_stats *ps;
    const ad_series *s;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(extra, sizeof(extra), "store: {enabled: true, path: %s/a.db}\n", dir);
    ch_start_in(&h, dir, extra);
    ck_assert_int_eq(ad_persist_has_store(ad_daemon_persist(h.d)), 1);
    for (int i = 0; i < 20; i++) {
        char line[64];

        snprintf(line, sizeof(line), "kept %d %d", i, 1700000000 + 10 * i);
        ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, line), 1);
    }
    ch_line(&h, AD_PROTO_JSONL, "{\"series\":\"kept.j\",\"value\":1,\"timestamp\":1700000000}");
    ch_stop(&h, 1); /* the final checkpoint writes both */

    ch_start_in(&h, dir, extra);
    ps = ad_persist_get_stats(ad_daemon_persist(h.d));
    ck_assert_uint_eq(ps->restored, 2);
    ck_assert_uint_eq(ps->restore_skipped[AD_SKIP_DAMAGED] + ps->restore_skipped[AD_SKIP_SETTINGS] +
                          ps->restore_skipped[AD_SKIP_NO_ROOM] +
                          ps->restore_skipped[AD_SKIP_BAD_KEY],
                      0);
    s = series_of(&h, "kept");
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(ad_detector_get_stats(s->det)->samples, 20);
    ck_assert_int_eq(series_of(&h, "kept.j")->proto, AD_PROTO_JSONL);
    ck_assert_uint_eq(ad_persist_store_stats(ad_daemon_persist(h.d))->writes, 0);
    /* the value after the restart goes on from the restored state */
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "kept 1 1700000200"), 1);
    ck_assert_uint_eq(ad_detector_get_stats(s->det)->samples, 21);
    ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, "kept 1 1700000000"), 1);
    ck_assert_uint_eq(ad_daemon_get_stats(h.d)->refused[AD_REFUSE_BACKWARDS], 1);
    ch_stop(&h, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc;

    tc = tcase_create("ingest");
    tcase_add_test(tc, test_line_results);
    tcase_add_test(tc, test_series_rules);
    tcase_add_test(tc, test_prepare_series);
    suite_add_tcase(s, tc);
    tc = tcase_create("refusals");
    tcase_add_test(tc, test_refused_by_reason);
    suite_add_tcase(s, tc);
    tc = tcase_create("receipt");
    tcase_add_test(tc, test_receipt_stamps);
    suite_add_tcase(s, tc);
    tc = tcase_create("http");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_post_write);
    tcase_add_test(tc, test_remote_write_receipt);
    suite_add_tcase(s, tc);
    tc = tcase_create("anomaly");
    tcase_add_test(tc, test_anomaly);
    suite_add_tcase(s, tc);
    tc = tcase_create("readers");
    tcase_add_test(tc, test_readers);
    suite_add_tcase(s, tc);
    tc = tcase_create("store");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_store_restart);
    suite_add_tcase(s, tc);
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
