/*
 * check_proto_jsonl.c - proto_jsonl.c: the member names and their alternatives, values as
 * numbers or strings, timestamps absent or null, tags (strings and numbers) sorted into
 * the canonical key, blank lines, every refusal reason, the key buffer's bound, the
 * 64-tag limit, and a stream parsed identically when fed through the line framer one
 * byte at a time.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_harness.h"
#include "ingest/proto_jsonl.h"

/* ---- helpers ---- */

static int parse(const char *line, ad_sample *s, char *key, size_t cap)
{
    return ad_jsonl_parse(line, strlen(line), key, cap, s);
}

static void ok(const char *line, const char *key, double value, double ts)
{
    ph_ok(ad_jsonl_parse, line, key, value, ts);
}

static void bad(const char *line, int reason)
{
    ph_bad(ad_jsonl_parse, line, reason);
}

/* Records one line of a stream. */
static int record(const char *line, size_t len, ph_rec *r)
{
    return ph_rec_parse(ad_jsonl_parse, line, len, r);
}

/* ---- parsing ---- */

START_TEST(test_members)
{
    ok("{\"series\": \"cpu.user\", \"value\": 12.5, \"ts\": 1700000000.25, \"tags\": "
       "{\"host\": \"h1\"}}",
       "cpu.user;host=h1", 12.5, 1700000000.25);
    ok("{\"name\":\"a\",\"value\":1}", "a", 1, NAN);
    ok("{\"metric\":\"a\",\"value\":-1e3,\"timestamp\":5}", "a", -1000, 5);
    ok("{\"series\":\"a\",\"value\":1,\"time\":0}", "a", 1, 0);
    ok("{\"series\":\"a\",\"value\":1,\"ts\":null}", "a", 1, NAN);
    ok("{\"series\":\"a\",\"name\":\"b\",\"value\":1}", "a", 1, NAN); /* series first */
    ok("{\"value\":1,\"extra\":[1,{}],\"series\":\"a\"}", "a", 1, NAN);
    ok("  {\"series\":\"a\",\"value\":1}  \r", "a", 1, NAN);
    ok("{\"series\":\"a\",\"value\":\"2.5\"}", "a", 2.5, NAN);
    ok("{\"series\":\"a\",\"value\":1,\"tags\":null}", "a", 1, NAN);
    ok("{\"series\":\"a\",\"value\":1,\"tags\":{}}", "a", 1, NAN);
}
END_TEST

START_TEST(test_tags)
{
    ok("{\"series\":\"m\",\"value\":1,\"tags\":{\"c\":\"3\",\"b\":\"2\",\"a\":\"1\"}}",
       "m;a=1;b=2;c=3", 1, NAN);
    ok("{\"series\":\"m\",\"value\":1,\"tags\":{\"ab\":\"1\",\"a\":\"2\"}}", "m;a=2;ab=1", 1, NAN);
    ok("{\"series\":\"m\",\"value\":1,\"tags\":{\"port\":8080,\"r\":0.1,\"e\":-2.5e-7}}",
       "m;e=-2.5e-07;port=8080;r=0.1", 1, NAN);
    ok("{\"series\":\"m\",\"value\":1,\"tags\":{\"k\":\"a=b\"}}", "m;k=a=b", 1, NAN);
}
END_TEST

START_TEST(test_blank)
{
    char kb[8];
    ad_sample s;
    ck_assert_int_eq(ad_jsonl_parse("", 0, kb, sizeof(kb), &s), AD_PARSE_SKIP);
    ck_assert_int_eq(parse(" \t\r", &s, kb, sizeof(kb)), AD_PARSE_SKIP);
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_refusals)
{
    bad("{", AD_PE_SYNTAX);
    bad("not json", AD_PE_SYNTAX);
    bad("[1,2]", AD_PE_SYNTAX);
    bad("\"cpu\"", AD_PE_SYNTAX);
    bad("{\"series\":\"a\",\"value\":1} x", AD_PE_SYNTAX);
    bad("{\"series\":\"a\",\"value\":1}{}", AD_PE_SYNTAX);
    bad("{\"value\":1}", AD_PE_SYNTAX);
    bad("{\"series\":\"\",\"value\":1}", AD_PE_SYNTAX);
    bad("{\"series\":5,\"value\":1}", AD_PE_SYNTAX);
    bad("{\"series\":\"a;b=1\",\"value\":1}", AD_PE_SYNTAX);
    bad("# comment", AD_PE_SYNTAX);
    bad("{\"series\":\"a\"}", AD_PE_VALUE);
    bad("{\"series\":\"a\",\"value\":null}", AD_PE_VALUE);
    bad("{\"series\":\"a\",\"value\":true}", AD_PE_VALUE);
    bad("{\"series\":\"a\",\"value\":\"abc\"}", AD_PE_VALUE);
    bad("{\"series\":\"a\",\"value\":\"0x10\"}", AD_PE_VALUE);
    bad("{\"series\":\"a\",\"value\":\"\"}", AD_PE_VALUE);
    bad("{\"series\":\"a\",\"value\":[1]}", AD_PE_VALUE);
    bad("{\"series\":\"a\",\"value\":1e999}", AD_PE_NONFINITE);
    bad("{\"series\":\"a\",\"value\":\"NaN\"}", AD_PE_NONFINITE);
    bad("{\"series\":\"a\",\"value\":\"-inf\"}", AD_PE_NONFINITE);
    bad("{\"series\":\"a\",\"value\":1,\"ts\":\"1700000000\"}", AD_PE_TIMESTAMP);
    bad("{\"series\":\"a\",\"value\":1,\"ts\":-1}", AD_PE_TIMESTAMP);
    bad("{\"series\":\"a\",\"value\":1,\"ts\":1e11}", AD_PE_TIMESTAMP);
    bad("{\"series\":\"a\",\"value\":1,\"time\":true}", AD_PE_TIMESTAMP);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":[]}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":\"h=1\"}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"\":\"1\"}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"k\":\"\"}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"k\":true}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"k\":null}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"k\":{}}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"k\":1e999}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"a=b\":\"1\"}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"a;b\":\"1\"}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"k\":\"x;y\"}}", AD_PE_TAGS);
    bad("{\"series\":\"a\",\"value\":1,\"tags\":{\"k\":\"1\",\"k\":\"2\"}}", AD_PE_TAGS);
}
END_TEST

START_TEST(test_key_too_long)
{
    char kb[16];
    ad_sample s;
    const char *l = "{\"series\":\"m\",\"value\":1,\"tags\":{\"bb\":\"2222\",\"a\":3}}";
    ck_assert_int_eq(parse(l, &s, kb, 14), 0); /* m;a=3;bb=2222 + NUL */
    ck_assert_str_eq(s.key, "m;a=3;bb=2222");
    ck_assert_int_eq(parse(l, &s, kb, 13), -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(parse("{\"series\":\"m\",\"value\":1}", &s, kb, 1), -AD_PE_KEY_TOO_LONG);
}
END_TEST

START_TEST(test_tag_limit)
{
    char line[2048], kb[1024];
    ad_sample s;
    for (int ntags = 64; ntags <= 65; ntags++) {
        int n = snprintf(line, sizeof(line), "{\"series\":\"m\",\"value\":1,\"tags\":{");
        for (int t = ntags - 1; t >= 0; t--)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "%s\"t%02d\":%d",
                          t < ntags - 1 ? "," : "", t, t);
        snprintf(line + n, sizeof(line) - (size_t)n, "}}");
        int rc = parse(line, &s, kb, sizeof(kb));
        if (ntags == 64) {
            ck_assert_int_eq(rc, 0);
            ck_assert(!strncmp(s.key, "m;t00=0;t01=1;", 14));
            ck_assert_str_eq(s.key + s.key_len - 7, ";t63=63");
        } else {
            ck_assert_int_eq(rc, -AD_PE_TAGS);
        }
    }
}
END_TEST

/* ---- streams ---- */

START_TEST(test_stream_bytewise)
{
    const char *in = "{\"series\":\"a\",\"value\":1,\"ts\":1700000000}\r\n"
                     "\n"
                     "{\"series\":\"b\",\"value\":\"2\",\"tags\":{\"z\":1,\"y\":\"q\"}}\n"
                     "{\"series\":\"c\",\n"
                     "\"value\":3}\n"
                     "{\"series\":\"d\",\"value\":4}";
    ph_recs whole;
    ph_stream_bytewise(in, record, &whole); /* whole and one byte at a time: the same */
    ck_assert_int_eq(whole.n, 6);
    ck_assert_int_eq(whole.r[0].rc, 0);
    ck_assert_double_eq(whole.r[0].s[0].ts, 1700000000);
    ck_assert_int_eq(whole.r[1].rc, AD_PARSE_SKIP);
    ck_assert_str_eq(whole.r[2].s[0].key, "b;y=q;z=1");
    ck_assert_int_eq(whole.r[3].rc, -AD_PE_SYNTAX); /* an object split over two lines */
    ck_assert_int_eq(whole.r[4].rc, -AD_PE_SYNTAX);
    ck_assert_str_eq(whole.r[5].s[0].key, "d");
}
END_TEST

static Suite *jsonl_suite(void)
{
    Suite *s = suite_create("proto_jsonl");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_members);
    tcase_add_test(tc, test_tags);
    tcase_add_test(tc, test_blank);
    suite_add_tcase(s, tc);

    tc = tcase_create("refuse");
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_key_too_long);
    tcase_add_test(tc, test_tag_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream");
    tcase_add_test(tc, test_stream_bytewise);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(jsonl_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
