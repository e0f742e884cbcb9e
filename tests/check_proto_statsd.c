/*
 * check_proto_statsd.c - proto_statsd.c: each type, gauge deltas, sample rates, DogStatsD
 * tags sorted into the canonical key (bare tags included), every refusal reason, the key
 * buffer's bound, the 64-tag limit, and a datagram of several lines parsed identically
 * when fed through the line framer one byte at a time.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_harness.h"
#include "ingest/proto_statsd.h"

/* ---- helpers ---- */

static int parse(const char *line, ad_statsd_metric *m, char *key, size_t cap)
{
    return ad_statsd_parse(line, strlen(line), key, cap, m);
}

static void ok(const char *line, const char *key, double value, int type, double rate, int delta)
{
    char kb[256];
    ad_statsd_metric m;
    int rc = parse(line, &m, kb, sizeof(kb));
    ck_assert_msg(rc == 0, "'%s': rc %d", line, rc);
    ck_assert_ptr_eq(m.key, kb);
    ck_assert_str_eq(m.key, key);
    ck_assert_uint_eq(m.key_len, strlen(key));
    ck_assert_double_eq(m.value, value);
    ck_assert_int_eq(m.type, type);
    ck_assert_double_eq(m.rate, rate);
    ck_assert_int_eq(m.delta, delta);
}

static void bad(const char *line, int reason)
{
    char kb[256];
    ad_statsd_metric m = {.key = "sentinel", .value = 3, .rate = 0.5, .type = 9};
    int rc = parse(line, &m, kb, sizeof(kb));
    ck_assert_msg(rc == -reason, "'%s': rc %d, want %d", line, rc, -reason);
    ck_assert_str_eq(m.key, "sentinel");
    ck_assert_int_eq(m.type, 9);
}

/* Records one line of a datagram. */
static int record(const char *line, size_t len, ph_rec *r)
{
    char kb[64];
    ad_statsd_metric m;
    int rc = ad_statsd_parse(line, len, kb, sizeof(kb), &m);
    if (rc == 0) {
        ph_val *v = ph_rec_add(r, m.key, m.key_len, m.value, 0);
        v->rate = m.rate;
        v->type = m.type;
        v->delta = m.delta;
    }
    return rc;
}

/* ---- parsing ---- */

START_TEST(test_types)
{
    ok("req:1|c", "req", 1, AD_STATSD_COUNTER, 1, 0);
    ok("req:-2|c", "req", -2, AD_STATSD_COUNTER, 1, 0);
    ok("lat:12.5|ms", "lat", 12.5, AD_STATSD_TIMER, 1, 0);
    ok("lat:3|h", "lat", 3, AD_STATSD_TIMER, 1, 0);
    ok("temp:21|g", "temp", 21, AD_STATSD_GAUGE, 1, 0);
    ok("temp:+2|g", "temp", 2, AD_STATSD_GAUGE, 1, 1);
    ok("temp:-2.5|g", "temp", -2.5, AD_STATSD_GAUGE, 1, 1);
    ok("a.b-c_d:1e3|c", "a.b-c_d", 1000, AD_STATSD_COUNTER, 1, 0);
    ok("  req:1|c \t", "req", 1, AD_STATSD_COUNTER, 1, 0); /* blanks around */
}
END_TEST

START_TEST(test_rate)
{
    ok("req:1|c|@0.1", "req", 1, AD_STATSD_COUNTER, 0.1, 0);
    ok("req:1|c|@1", "req", 1, AD_STATSD_COUNTER, 1, 0);
    ok("lat:2|ms|@0.5|#a:1", "lat;a=1", 2, AD_STATSD_TIMER, 0.5, 0);
    ok("lat:2|ms|#a:1|@0.5", "lat;a=1", 2, AD_STATSD_TIMER, 0.5, 0);
}
END_TEST

START_TEST(test_tags)
{
    ok("req:1|c|#b:2,a:1", "req;a=1;b=2", 1, AD_STATSD_COUNTER, 1, 0);
    ok("req:1|c|#env", "req;env=", 1, AD_STATSD_COUNTER, 1, 0);
    ok("req:1|c|#z,a:x:y,m:", "req;a=x:y;m=;z=", 1, AD_STATSD_COUNTER, 1, 0);
    ok("req:1|c|#ab:1,a:2", "req;a=2;ab=1", 1, AD_STATSD_COUNTER, 1, 0);
    ok("req:1|c|#k:a=b", "req;k=a=b", 1, AD_STATSD_COUNTER, 1, 0);
}
END_TEST

START_TEST(test_blank)
{
    char kb[8];
    ad_statsd_metric m;
    ck_assert_int_eq(ad_statsd_parse("", 0, kb, sizeof(kb), &m), AD_PARSE_SKIP);
    ck_assert_int_eq(parse(" \t", &m, kb, sizeof(kb)), AD_PARSE_SKIP);
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_refusals)
{
    bad("req", AD_PE_SYNTAX);
    bad(":1|c", AD_PE_SYNTAX);
    bad("req:1", AD_PE_SYNTAX);
    bad("re q:1|c", AD_PE_SYNTAX);
    bad("r;q:1|c", AD_PE_SYNTAX);
    bad("req:1|c|x", AD_PE_SYNTAX);
    bad("req:1|c|@0.5|@0.5", AD_PE_SYNTAX);
    bad("req:1|c|#a|#b", AD_PE_SYNTAX);
    bad("req:1|c|@0.5|#a|x", AD_PE_SYNTAX);
    bad("req:1|c|", AD_PE_SYNTAX);
    bad("req:1|s", AD_PE_TYPE);
    bad("req:1|d", AD_PE_TYPE);
    bad("req:1|", AD_PE_TYPE);
    bad("req:1|msx", AD_PE_TYPE);
    bad("req:1|c:2|c", AD_PE_TYPE); /* etsy's several values per line: not ours */
    bad("req:x|c", AD_PE_VALUE);
    bad("req:|c", AD_PE_VALUE);
    bad("req:0x1|c", AD_PE_VALUE);
    bad("req:1 |c", AD_PE_VALUE);
    bad("req:1|c|@0", AD_PE_VALUE);
    bad("req:1|c|@1.5", AD_PE_VALUE);
    bad("req:1|c|@-0.5", AD_PE_VALUE);
    bad("req:1|c|@", AD_PE_VALUE);
    bad("req:1|c|@nan", AD_PE_VALUE);
    bad("req:nan|c", AD_PE_NONFINITE);
    bad("req:+inf|g", AD_PE_NONFINITE);
    bad("req:1|c|#", AD_PE_TAGS);
    bad("req:1|c|#a,", AD_PE_TAGS);
    bad("req:1|c|#:v", AD_PE_TAGS);
    bad("req:1|c|#a:1,a:2", AD_PE_TAGS);
    bad("req:1|c|#a,a", AD_PE_TAGS);
    bad("req:1|c|#a=b:1", AD_PE_TAGS);
    bad("req:1|c|#a:x;y", AD_PE_TAGS);
    bad("req:1|c|#a:x y", AD_PE_TAGS);
}
END_TEST

START_TEST(test_key_too_long)
{
    char kb[16];
    ad_statsd_metric m;
    /* req;a=1;bb=22 + NUL = 14 bytes; req;a=1;bb=2222 + NUL = 16 */
    ck_assert_int_eq(parse("req:1|c|#bb:2222,a:1", &m, kb, 16), 0);
    ck_assert_str_eq(m.key, "req;a=1;bb=2222");
    ck_assert_int_eq(parse("req:1|c|#bb:22222,a:1", &m, kb, 16), -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(parse("req:1|c|#bare", &m, kb, 10), 0);
    ck_assert_str_eq(m.key, "req;bare=");
    ck_assert_int_eq(parse("req:1|c|#bare", &m, kb, 9), -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(parse("r:1|c", &m, kb, 1), -AD_PE_KEY_TOO_LONG);
    /* a NUL byte cannot be in a C-string key */
    ck_assert_int_eq(ad_statsd_parse("a\0:1|c", 6, kb, sizeof(kb), &m), -AD_PE_SYNTAX);
    ck_assert_int_eq(ad_statsd_parse("a:1|c|#k:\0", 10, kb, sizeof(kb), &m), -AD_PE_TAGS);
}
END_TEST

START_TEST(test_tag_limit)
{
    char line[1024], kb[1024];
    ad_statsd_metric m;
    for (int ntags = 64; ntags <= 65; ntags++) {
        int n = snprintf(line, sizeof(line), "m:1|c|#");
        for (int t = ntags - 1; t >= 0; t--)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "%st%02d:%d",
                          t < ntags - 1 ? "," : "", t, t);
        int rc = parse(line, &m, kb, sizeof(kb));
        if (ntags == 64) {
            ck_assert_int_eq(rc, 0);
            ck_assert(!strncmp(m.key, "m;t00=0;t01=1;", 14));
            ck_assert_str_eq(m.key + m.key_len - 7, ";t63=63");
        } else {
            ck_assert_int_eq(rc, -AD_PE_TAGS);
        }
    }
}
END_TEST

/* ---- datagrams ---- */

START_TEST(test_datagram_bytewise)
{
    const char *in = "req:1|c|#b:2,a:1\n"
                     "lat:2|ms|@0.5\r\n"
                     "\n"
                     "set:x|s\n"
                     "temp:-1|g";
    ph_recs whole;
    ph_stream_bytewise(in, record, &whole); /* whole and one byte at a time: the same */
    ck_assert_int_eq(whole.n, 5);
    ck_assert_str_eq(whole.r[0].s[0].key, "req;a=1;b=2");
    ck_assert_double_eq(whole.r[1].s[0].rate, 0.5);
    ck_assert_int_eq(whole.r[2].rc, AD_PARSE_SKIP);
    ck_assert_int_eq(whole.r[3].rc, -AD_PE_TYPE);
    ck_assert_int_eq(whole.r[4].s[0].delta, 1);
}
END_TEST

static Suite *statsd_suite(void)
{
    Suite *s = suite_create("proto_statsd");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_types);
    tcase_add_test(tc, test_rate);
    tcase_add_test(tc, test_tags);
    tcase_add_test(tc, test_blank);
    suite_add_tcase(s, tc);

    tc = tcase_create("refuse");
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_key_too_long);
    tcase_add_test(tc, test_tag_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream");
    tcase_add_test(tc, test_datagram_bytewise);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(statsd_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
