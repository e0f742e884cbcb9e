/*
 * check_proto_graphite.c - proto_graphite.c: plain and tagged paths, canonical keys (tags
 * sorted), values and timestamps (absent and -1 meaning now), blank lines, every refusal
 * reason, the key buffer's bound, the 64-tag limit, and a whole stream parsed identically
 * when fed through the line framer one byte at a time.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/proto_graphite.h"
#include "ingest/protocols.h"
#include "proto_harness.h"

/* ---- helpers ---- */

static int parse(const char *line, ad_sample *s, char *key, size_t cap)
{
    return ad_graphite_parse(line, strlen(line), key, cap, s);
}

static void ok(const char *line, const char *key, double value, double ts)
{
    ph_ok(ad_graphite_parse, line, key, value, ts);
}

static void bad(const char *line, int reason)
{
    ph_bad(ad_graphite_parse, line, reason);
}

/* Records one line of a stream. */
static int record(const char *line, size_t len, ph_rec *r)
{
    return ph_rec_parse(ad_graphite_parse, line, len, r);
}

/* ---- parsing ---- */

START_TEST(test_plain)
{
    ok("cpu.host1.user 12.5 1700000000", "cpu.host1.user", 12.5, 1700000000);
    ok("a 1", "a", 1, NAN);
    ok("a -1e3 -1", "a", -1000, NAN);
    ok("a .5 1700000000.25", "a", 0.5, 1700000000.25);
    ok("\t a \t 0\t\t0 \t", "a", 0, 0); /* runs of blanks, leading and trailing */
    ok("a=b.c 1e-2", "a=b.c", 0.01, NAN);
    ok("a 1 -1.0", "a", 1, NAN);
}
END_TEST

START_TEST(test_tagged)
{
    ok("cpu.user;host=h1;dc=eu 12.5 1700000000", "cpu.user;dc=eu;host=h1", 12.5, 1700000000);
    ok("m;c=3;b=2;a=1 1", "m;a=1;b=2;c=3", 1, NAN);
    ok("m;ab=1;a=2 1", "m;a=2;ab=1", 1, NAN); /* a prefix sorts first */
    ok("m;k=a=b 1", "m;k=a=b", 1, NAN);       /* '=' inside a value */
    ok("m;k=v~ 1", "m;k=v~", 1, NAN);         /* '~' only refused first */
}
END_TEST

START_TEST(test_blank)
{
    char kb[8];
    ad_sample s;
    ck_assert_int_eq(ad_graphite_parse("", 0, kb, sizeof(kb), &s), AD_PARSE_SKIP);
    ck_assert_int_eq(parse(" \t ", &s, kb, sizeof(kb)), AD_PARSE_SKIP);
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_refusals)
{
    bad("a", AD_PE_SYNTAX);
    bad("a 1 2 3", AD_PE_SYNTAX);
    bad(";a=1 1", AD_PE_SYNTAX);
    bad("# a comment", AD_PE_VALUE); /* Graphite has no comments */
    bad("a b", AD_PE_VALUE);
    bad("a 1x", AD_PE_VALUE);
    bad("a 0x10", AD_PE_VALUE);
    bad("a 0x1p3", AD_PE_VALUE);
    bad("a 1,5", AD_PE_VALUE);
    bad("a 11111111111111111111111111111111111111111111111111111111111111111", AD_PE_VALUE);
    bad("a nan", AD_PE_NONFINITE);
    bad("a -NaN", AD_PE_NONFINITE);
    bad("a inf", AD_PE_NONFINITE);
    bad("a -Infinity", AD_PE_NONFINITE);
    bad("a 1e999", AD_PE_NONFINITE);
    bad("a 1 x", AD_PE_TIMESTAMP);
    bad("a 1 nan", AD_PE_TIMESTAMP);
    bad("a 1 -2", AD_PE_TIMESTAMP);
    bad("a 1 1e11", AD_PE_TIMESTAMP); /* milliseconds by mistake */
    bad("a;b 1", AD_PE_TAGS);
    bad("a; 1", AD_PE_TAGS);
    bad("a;b=1; 1", AD_PE_TAGS);
    bad("a;;b=1 1", AD_PE_TAGS);
    bad("a;=1 1", AD_PE_TAGS);
    bad("a;b= 1", AD_PE_TAGS);
    bad("a;b=~x 1", AD_PE_TAGS);
    bad("a;b=!x 1", AD_PE_TAGS);
    bad("a;b=1;c=2;b=3 1", AD_PE_TAGS);
    bad("a;b=1;b=1 1", AD_PE_TAGS);
}
END_TEST

START_TEST(test_key_too_long)
{
    char kb[16];
    ad_sample s;
    /* 15 bytes fit with their NUL, 16 do not */
    ck_assert_int_eq(parse("m;b=22222;a=111 1", &s, kb, 16), 0);
    ck_assert_str_eq(s.key, "m;a=111;b=22222");
    ck_assert_int_eq(parse("m;b=22222;a=1111 1", &s, kb, 16), -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(parse("a 1", &s, kb, 1), -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(parse("a 1", &s, kb, 0), -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(parse("a 1", &s, kb, 2), 0);
    /* a NUL byte cannot be in a C-string key */
    ck_assert_int_eq(ad_graphite_parse("a\0b 1", 5, kb, sizeof(kb), &s), -AD_PE_SYNTAX);
    ck_assert_int_eq(ad_graphite_parse("a;t=\0 1", 7, kb, sizeof(kb), &s), -AD_PE_SYNTAX);
}
END_TEST

START_TEST(test_tag_limit)
{
    char line[1024], kb[1024];
    ad_sample s;
    for (int ntags = 64; ntags <= 65; ntags++) {
        int n = snprintf(line, sizeof(line), "m");
        for (int t = ntags - 1; t >= 0; t--) /* reversed: the sort has work */
            n += snprintf(line + n, sizeof(line) - (size_t)n, ";t%02d=%d", t, t);
        snprintf(line + n, sizeof(line) - (size_t)n, " 1");
        int rc = parse(line, &s, kb, sizeof(kb));
        if (ntags == 64) {
            ck_assert_int_eq(rc, 0);
            ck_assert(!strncmp(s.key, "m;t00=0;t01=1;t02=2;", 20));
            ck_assert(strstr(s.key, ";t62=62;t63=63") == s.key + s.key_len - 14);
        } else {
            ck_assert_int_eq(rc, -AD_PE_TAGS);
        }
    }
}
END_TEST

/* ---- streams ---- */

START_TEST(test_stream_bytewise)
{
    const char *in = "a.b 1 1700000000\r\n"
                     "\n"
                     "m;z=1;y=2 3.5\n"
                     "bad line here x\n"
                     "c nan\r\n"
                     "d 2 -1   \t\n"
                     "e 7";
    ph_recs whole;
    ph_stream_bytewise(in, record, &whole); /* whole and one byte at a time: the same */
    ck_assert_int_eq(whole.n, 7);
    ck_assert_int_eq(whole.r[0].rc, 0);
    ck_assert_str_eq(whole.r[0].s[0].key, "a.b");
    ck_assert_double_eq(whole.r[0].s[0].ts, 1700000000);
    ck_assert_int_eq(whole.r[1].rc, AD_PARSE_SKIP);
    ck_assert_str_eq(whole.r[2].s[0].key, "m;y=2;z=1");
    ck_assert_int_eq(whole.r[3].rc, -AD_PE_SYNTAX);
    ck_assert_int_eq(whole.r[4].rc, -AD_PE_NONFINITE);
    ck_assert_int_eq(whole.r[5].rc, 0);
    ck_assert(isnan(whole.r[5].s[0].ts));
    ck_assert_str_eq(whole.r[6].s[0].key, "e");
}
END_TEST

/* ad_parse_number has a fast path for short decimals (an exact integer mantissa times an
 * exact power of ten, one rounding) and falls back to strtod: both must give strtod's
 * double bit for bit, and refuse what it refuses. */
static void same_as_strtod(const char *tok)
{
    double want = strtod(tok, NULL), got = -12345.0;

    ck_assert_msg(ad_parse_number(tok, strlen(tok), &got) == 0, "%s refused", tok);
    ck_assert_msg(memcmp(&got, &want, sizeof(got)) == 0, "%s: %.17g, strtod %.17g", tok, got,
                  want);
}

START_TEST(test_numbers_as_strtod)
{
    static const char *const fixed[] = {
        "0", "-0", "+0", "0.0", "-0.0", "1", "-1", "+1", "1.", ".5", "-.5", "0.1", "0.3",
        "123.456", "1e5", "1E5", "1e+5", "1e-5", "2.5e-3", "9007199254740992",
        "9007199254740993", "18446744073709551615", "18446744073709551616",
        "12345678901234567890123", "0.1000000000000000055511151231257827", "1e22", "1e23",
        "1e-22", "1e-23", "4.9e-324", "2.2250738585072014e-308", "1.7976931348623157e308",
        "000000000000000000000001.5", "1.000000000000000000000000", "3.14159265358979323846",
        "1700000000", "1700000000.123", "-273.15", "6.02214076e23", "1e0", "1e-0", "0e9999",
        "0.000000000000000000000000000001",
    };
    char tok[64];
    unsigned x = 12345;

    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        same_as_strtod(fixed[i]);
    for (int i = 0; i < 200000; i++) { /* random decimals: digits, point, exponent */
        int n = 0, nd, e;

        x = x * 1103515245u + 12345u;
        if (x >> 31)
            tok[n++] = '-';
        nd = 1 + (int)((x >> 8) % 20);
        for (int k = 0; k < nd; k++) {
            x = x * 1103515245u + 12345u;
            tok[n++] = (char)('0' + (x >> 16) % 10);
        }
        x = x * 1103515245u + 12345u;
        if (x & 1) {
            int at = 1 + (int)((x >> 4) % (unsigned)nd);
            memmove(tok + n - nd + at + 1, tok + n - nd + at, (size_t)(nd - at));
            tok[n - nd + at] = '.';
            n++;
        }
        if (x & 2) {
            e = (int)((x >> 12) % 61) - 30;
            n += snprintf(tok + n, sizeof(tok) - (size_t)n, "e%d", e);
        }
        tok[n] = '\0';
        same_as_strtod(tok);
    }
}
END_TEST

START_TEST(test_numbers_refused)
{
    static const char *const badv[] = {"", ".", "-", "+", "e5", ".e5", "1e", "1e+", "1.2.3",
                                       "1-", "0x10", "1 ", " 1", "--1", "1e5x", "abc"};
    double v;

    for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++)
        ck_assert_msg(ad_parse_number(badv[i], strlen(badv[i]), &v) == -AD_PE_VALUE, "%s",
                      badv[i]);
    ck_assert_int_eq(ad_parse_number("1e400", 5, &v), -AD_PE_NONFINITE);
    ck_assert_int_eq(ad_parse_number("-inf", 4, &v), -AD_PE_NONFINITE);
    ck_assert_int_eq(ad_parse_number("nan", 3, &v), -AD_PE_NONFINITE);
    ck_assert_int_eq(ad_parse_number("12", 1, &v), 0); /* only the token's bytes */
    ck_assert(v == 1.0);
}
END_TEST

START_TEST(test_names)
{
    ck_assert_str_eq(ad_parse_error_name(AD_PE_TAGS), "bad_tags");
    ck_assert_str_eq(ad_parse_error_name(AD_PE_NO_FIELDS), "no_fields");
    ck_assert_str_eq(ad_parse_error_name(0), "unknown");
    ck_assert_str_eq(ad_parse_error_name(AD_PE_NREASONS), "unknown");
    ck_assert_str_eq(ad_proto_name(AD_PROTO_GRAPHITE), "graphite");
    ck_assert_int_eq(ad_proto_from_name("jsonl"), AD_PROTO_JSONL);
    ck_assert_int_eq(ad_proto_from_name("carbon"), -1);
    ck_assert_ptr_null(ad_proto_name(AD_PROTO_N));
}
END_TEST

static int reg_count;
static double reg_value;

static int reg_cb(void *ctx, const ad_sample *smp)
{
    (void)ctx;
    reg_count++;
    reg_value = smp->value;
    return 0;
}

/* The registry (protocols.h): every row named and round-tripping; the line parsers in
 * its shape give a sample count, 0 for a line with nothing to do, -AD_PE_* for a refusal. */
START_TEST(test_registry)
{
    char key[256];
    const ad_proto_info *pi;

    for (int p = 0; p < AD_PROTO_N; p++) {
        ck_assert_ptr_nonnull(ad_proto_info_of(p));
        ck_assert_int_eq(ad_proto_from_name(ad_proto_name(p)), p);
    }
    ck_assert_ptr_null(ad_proto_info_of(-1));
    ck_assert_ptr_null(ad_proto_info_of(AD_PROTO_N));
    ck_assert(ad_proto_info_of(AD_PROTO_STATSD)->flags & AD_PROTO_F_AGGREGATED);
    ck_assert(ad_proto_info_of(AD_PROTO_INFLUX)->flags & AD_PROTO_F_PRECISION);
    ck_assert(!(ad_proto_info_of(AD_PROTO_PROMETHEUS)->flags & AD_PROTO_F_LISTENER));
    ck_assert_ptr_null(ad_proto_info_of(AD_PROTO_PROMETHEUS)->parse);

    pi = ad_proto_info_of(AD_PROTO_GRAPHITE);
    reg_count = 0;
    ck_assert_int_eq(pi->parse("a.b 4.5 100", 11, 0, key, sizeof(key), reg_cb, NULL), 1);
    ck_assert_int_eq(reg_count, 1);
    ck_assert(reg_value == 4.5);
    ck_assert_int_eq(pi->parse("", 0, 0, key, sizeof(key), reg_cb, NULL), 0);
    ck_assert_int_eq(pi->parse("a.b x 100", 9, 0, key, sizeof(key), reg_cb, NULL), -AD_PE_VALUE);
    ck_assert_int_eq(reg_count, 1);

    pi = ad_proto_info_of(AD_PROTO_INFLUX);
    ck_assert_int_eq(pi->parse("m a=1,b=2 1", 11, 3, key, sizeof(key), reg_cb, NULL), 2);
    ck_assert_int_eq(reg_count, 3);

    pi = ad_proto_info_of(AD_PROTO_JSONL);
    {
        const char *js = "{\"series\":\"x\",\"value\":7}";

        ck_assert_int_eq(pi->parse(js, strlen(js), 0, key, sizeof(key), reg_cb, NULL), 1);
    }
    ck_assert(reg_value == 7);
}
END_TEST

static Suite *graphite_suite(void)
{
    Suite *s = suite_create("proto_graphite");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_plain);
    tcase_add_test(tc, test_tagged);
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

    tc = tcase_create("numbers");
    tcase_add_test(tc, test_numbers_as_strtod);
    tcase_add_test(tc, test_numbers_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("names");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_registry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(graphite_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
