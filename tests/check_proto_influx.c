/*
 * check_proto_influx.c - proto_influx.c: one sample per numeric field with canonical keys
 * (tags sorted, InfluxDB's escaping, two spellings giving one key), each field type and
 * its range, strings skipped, timestamps in each precision, blank and comment lines,
 * every refusal reason with fn never called, the key buffer's bound, the tag and field
 * limits, fn stopping early, and a stream parsed identically when fed through the line
 * framer one byte at a time.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_harness.h"
#include "ingest/proto_influx.h"

/* ---- helpers ---- */

static int parse_prec(const char *line, ad_influx_precision prec, ph_got *g)
{
    char kb[96];
    memset(g, 0, sizeof(*g));
    return ad_influx_parse(line, strlen(line), prec, kb, sizeof(kb), ph_got_sample, g);
}

static int parse(const char *line, ph_got *g)
{
    return parse_prec(line, AD_PREC_NS, g);
}

/* A line giving exactly one sample. */
static void one(const char *line, const char *key, double value)
{
    ph_got g;
    int rc = parse(line, &g);
    ck_assert_msg(rc == 1, "'%s': rc %d", line, rc);
    ck_assert_int_eq(g.n, 1);
    ck_assert_str_eq(g.key[0], key);
    ck_assert_double_eq(g.value[0], value);
    ck_assert(isnan(g.ts[0]));
}

static void bad(const char *line, int reason)
{
    ph_got g;
    int rc = parse(line, &g);
    ck_assert_msg(rc == -reason, "'%s': rc %d, want %d", line, rc, -reason);
    ck_assert_int_eq(g.n, 0);
}

/* ---- keys ---- */

START_TEST(test_fields_and_keys)
{
    ph_got g;
    ck_assert_int_eq(
        parse("cpu,region=eu,host=a usage_user=12.5,usage_sys=3i 1700000000000000000", &g), 2);
    ck_assert_str_eq(g.key[0], "cpu,host=a,region=eu usage_user");
    ck_assert_str_eq(g.key[1], "cpu,host=a,region=eu usage_sys");
    ck_assert_double_eq(g.value[0], 12.5);
    ck_assert_double_eq(g.value[1], 3);
    ck_assert_double_eq(g.ts[0], 1700000000.0);
    ck_assert_double_eq(g.ts[1], 1700000000.0);
    one("cpu f=1", "cpu f", 1);
    one("  cpu f=1 \t ", "cpu f", 1); /* blanks around */
    one("cpu,b=1,ab=2,a=3 f=1", "cpu,a=3,ab=2,b=1 f", 1);
}
END_TEST

START_TEST(test_escapes)
{
    one("my\\ meas,t\\,k=v\\ 1 f\\=x=1", "my\\ meas,t\\,k=v\\ 1 f\\=x", 1);
    one("a\\,b f=1", "a\\,b f", 1);
    one("a=b f=1", "a=b f", 1);             /* '=' needs no escape in a measurement */
    one("a\\=b f=1", "a\\=b f", 1);         /* so its backslash is literal */
    one("m,t=a=b f=1", "m,t=a\\=b f", 1);   /* '=' in a tag value: escaped in the key */
    one("m,t=a\\=b f=1", "m,t=a\\=b f", 1); /* the other spelling, the same key */
    one("m,t=a\\b f=1", "m,t=a\\b f", 1);   /* backslash before another byte: literal */
    /* left to right: a literal backslash, then an escaped comma; one tag */
    one("m,t=a\\\\,u=b f=1", "m,t=a\\\\,u\\=b f", 1);
    one("m f\\ g\\,h=1", "m f\\ g\\,h", 1);
    /* tags sorted by their unescaped keys: "a b" (0x20) before "a,b" (0x2c) */
    one("m,a\\,b=1,a\\ b=2 f=1", "m,a\\ b=2,a\\,b=1 f", 1);
}
END_TEST

/* Counts the samples, checking only that each key is whole. */
static int count_sample(void *ctx, const ad_sample *s)
{
    ck_assert_uint_eq(strlen(s->key), s->key_len);
    (*(int *)ctx)++;
    return 0;
}

/* ---- values ---- */

START_TEST(test_types)
{
    one("m f=-1e3", "m f", -1000);
    one("m f=.5", "m f", 0.5);
    one("m f=12i", "m f", 12);
    one("m f=-12i", "m f", -12);
    one("m f=12u", "m f", 12);
    one("m f=9223372036854775807i", "m f", 9223372036854775807.0);
    one("m f=-9223372036854775808i", "m f", -9223372036854775808.0);
    one("m f=18446744073709551615u", "m f", 18446744073709551615.0);
    const char *t[] = {"t", "T", "true", "True", "TRUE"};
    const char *f[] = {"f", "F", "false", "False", "FALSE"};
    char line[64];
    for (int i = 0; i < 5; i++) {
        snprintf(line, sizeof(line), "m b=%s", t[i]);
        one(line, "m b", 1);
        snprintf(line, sizeof(line), "m b=%s", f[i]);
        one(line, "m b", 0);
    }
}
END_TEST

START_TEST(test_strings_skipped)
{
    ph_got g;
    ck_assert_int_eq(parse("m s=\"hi, there \\\"x\\\" \\\\\",v=2,u=\"a b\" 5000000000", &g), 1);
    ck_assert_str_eq(g.key[0], "m v");
    ck_assert_double_eq(g.value[0], 2);
    ck_assert_double_eq(g.ts[0], 5);
    ck_assert_int_eq(parse("m s=\"only strings\",t=\"\"", &g), 0);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(parse("m s=\"a\\b\",v=1", &g), 1); /* a backslash before 'b' */
}
END_TEST

START_TEST(test_timestamps)
{
    ph_got g;
    ck_assert_int_eq(parse_prec("m f=1 1700000000123456789", AD_PREC_NS, &g), 1);
    ck_assert_double_eq_tol(g.ts[0], 1700000000.123456789, 1e-6);
    ck_assert_int_eq(parse_prec("m f=1 1700000000123456", AD_PREC_US, &g), 1);
    ck_assert_double_eq_tol(g.ts[0], 1700000000.123456, 1e-6);
    ck_assert_int_eq(parse_prec("m f=1 1700000000123", AD_PREC_MS, &g), 1);
    ck_assert_double_eq(g.ts[0], 1700000000.123);
    ck_assert_int_eq(parse_prec("m f=1 1700000000", AD_PREC_S, &g), 1);
    ck_assert_double_eq(g.ts[0], 1700000000);
    ck_assert_int_eq(parse_prec("m f=1 -1500000000", AD_PREC_NS, &g), 1);
    ck_assert_double_eq(g.ts[0], -1.5);
    ck_assert_int_eq(parse_prec("m f=1 9223372036854775807", AD_PREC_S, &g), 1);
    ck_assert_double_eq(g.ts[0], 9223372036854775807.0);
    ck_assert_int_eq(ad_influx_precision_from_name("ns"), AD_PREC_NS);
    ck_assert_int_eq(ad_influx_precision_from_name("n"), AD_PREC_NS);
    ck_assert_int_eq(ad_influx_precision_from_name("us"), AD_PREC_US);
    ck_assert_int_eq(ad_influx_precision_from_name("u"), AD_PREC_US);
    ck_assert_int_eq(ad_influx_precision_from_name("ms"), AD_PREC_MS);
    ck_assert_int_eq(ad_influx_precision_from_name("s"), AD_PREC_S);
    ck_assert_int_eq(ad_influx_precision_from_name("h"), -1);
    ck_assert_int_eq(ad_influx_precision_from_name(""), -1);
}
END_TEST

START_TEST(test_blank_and_comments)
{
    ph_got g;
    char kb[8];
    ck_assert_int_eq(ad_influx_parse("", 0, AD_PREC_NS, kb, sizeof(kb), ph_got_sample, &g), 0);
    ck_assert_int_eq(parse(" \t ", &g), 0);
    ck_assert_int_eq(parse("# cpu f=1", &g), 0);
    ck_assert_int_eq(parse("  #comment", &g), 0);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_refusals)
{
    bad(",t=a f=1", AD_PE_SYNTAX);
    bad("cpu f", AD_PE_SYNTAX);
    bad("cpu =1", AD_PE_SYNTAX);
    bad("cpu f=", AD_PE_SYNTAX);
    bad("cpu f=1,", AD_PE_SYNTAX);
    bad("cpu f=1,,g=2", AD_PE_SYNTAX);
    bad("cpu f=\"x", AD_PE_SYNTAX);
    bad("cpu f=\"x\\\"", AD_PE_SYNTAX);
    bad("cpu f=\"x\"y", AD_PE_SYNTAX);
    bad("cpu f=1 1 2", AD_PE_SYNTAX);
    bad("cpu f=1 1\t2", AD_PE_SYNTAX);
    bad("cpu,t f=1", AD_PE_TAGS);
    bad("cpu,=a f=1", AD_PE_TAGS);
    bad("cpu,t= f=1", AD_PE_TAGS);
    bad("cpu, f=1", AD_PE_TAGS);
    bad("cpu,t=a, f=1", AD_PE_TAGS);
    bad("cpu,t=a,t=b f=1", AD_PE_TAGS);
    bad("cpu,t=a,u=b,t=c f=1", AD_PE_TAGS);
    bad("cpu", AD_PE_NO_FIELDS);
    bad("cpu,t=a", AD_PE_NO_FIELDS);
    bad("cpu,t=a   ", AD_PE_NO_FIELDS);
    bad("cpu f=abc", AD_PE_VALUE);
    bad("cpu f=0x10", AD_PE_VALUE);
    bad("cpu f=1.5i", AD_PE_VALUE);
    bad("cpu f=+1i", AD_PE_VALUE);
    bad("cpu f=i", AD_PE_VALUE);
    bad("cpu f=-1u", AD_PE_VALUE);
    bad("cpu f=9223372036854775808i", AD_PE_VALUE);
    bad("cpu f=-9223372036854775809i", AD_PE_VALUE);
    bad("cpu f=18446744073709551616u", AD_PE_VALUE);
    bad("cpu f=yes", AD_PE_VALUE);
    bad("cpu f=tRUE", AD_PE_VALUE);
    bad("cpu a=1,b=x", AD_PE_VALUE); /* the first field is good: fn still not called */
    bad("cpu f=NaN", AD_PE_NONFINITE);
    bad("cpu f=-inf", AD_PE_NONFINITE);
    bad("cpu f=1e400", AD_PE_NONFINITE);
    bad("cpu f=1 1.5", AD_PE_TIMESTAMP);
    bad("cpu f=1 abc", AD_PE_TIMESTAMP);
    bad("cpu f=1 +1", AD_PE_TIMESTAMP);
    bad("cpu f=1 9223372036854775808", AD_PE_TIMESTAMP);
    bad("cpu f=1 -", AD_PE_TIMESTAMP);
}
END_TEST

START_TEST(test_key_too_long)
{
    ph_got g;
    char kb[12];
    /* "m,t=a fff" is 9 bytes: fits 10, not 9; only numeric fields need to fit */
    const char *l = "m,t=a fff=1,gggggggggggggg=\"s\"";
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(ad_influx_parse(l, strlen(l), AD_PREC_NS, kb, 10, ph_got_sample, &g), 1);
    ck_assert_str_eq(g.key[0], "m,t=a fff");
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(ad_influx_parse(l, strlen(l), AD_PREC_NS, kb, 9, ph_got_sample, &g),
                     -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(g.n, 0);
    /* escaping counts: "m a\ b" is 6 bytes */
    l = "m a\\ b=1";
    ck_assert_int_eq(ad_influx_parse(l, strlen(l), AD_PREC_NS, kb, 7, ph_got_sample, &g), 1);
    ck_assert_int_eq(ad_influx_parse(l, strlen(l), AD_PREC_NS, kb, 6, ph_got_sample, &g),
                     -AD_PE_KEY_TOO_LONG);
    l = "m,t=a=b f=1"; /* the key has "a\=b": one byte longer than the line's "a=b" */
    ck_assert_int_eq(ad_influx_parse(l, strlen(l), AD_PREC_NS, kb, 10, ph_got_sample, &g),
                     -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(ad_influx_parse(l, strlen(l), AD_PREC_NS, kb, 11, ph_got_sample, &g), 1);
    /* a NUL byte cannot be in a C-string key */
    ck_assert_int_eq(ad_influx_parse("m\0 f=1", 6, AD_PREC_NS, kb, 12, ph_got_sample, &g),
                     -AD_PE_SYNTAX);
    ck_assert_int_eq(ad_influx_parse("m f\0=1", 6, AD_PREC_NS, kb, 12, ph_got_sample, &g),
                     -AD_PE_SYNTAX);
    ck_assert_int_eq(ad_influx_parse("m,t=\0 f=1", 9, AD_PREC_NS, kb, 12, ph_got_sample, &g),
                     -AD_PE_TAGS);
    /* strings only: nothing to key, the buffer untouched however small */
    l = "measurement,tag=value s=\"x\"";
    memset(kb, 'z', sizeof(kb));
    ck_assert_int_eq(ad_influx_parse(l, strlen(l), AD_PREC_NS, kb, 2, ph_got_sample, &g), 0);
    for (size_t i = 0; i < sizeof(kb); i++)
        ck_assert_int_eq(kb[i], 'z');
}
END_TEST

START_TEST(test_limits)
{
    static char line[8192];
    static char kb[1024];
    ph_got *g = malloc(sizeof(*g));
    ck_assert_ptr_nonnull(g);
    for (int ntags = 64; ntags <= 65; ntags++) {
        int n = snprintf(line, sizeof(line), "m");
        for (int t = ntags - 1; t >= 0; t--)
            n += snprintf(line + n, sizeof(line) - (size_t)n, ",t%02d=%d", t, t);
        snprintf(line + n, sizeof(line) - (size_t)n, " f=1");
        int count = 0;
        int rc =
            ad_influx_parse(line, strlen(line), AD_PREC_NS, kb, sizeof(kb), count_sample, &count);
        if (ntags == 64) {
            ck_assert_int_eq(rc, 1);
            ck_assert_int_eq(count, 1);
            ck_assert(!strncmp(kb, "m,t00=0,t01=1,", 14));
            ck_assert_str_eq(kb + strlen(kb) - 9, ",t63=63 f");
        } else {
            ck_assert_int_eq(rc, -AD_PE_TAGS);
        }
    }
    for (int nf = 256; nf <= 257; nf++) {
        int n = snprintf(line, sizeof(line), "m ");
        for (int f = 0; f < nf; f++)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "%sf%d=%d", f ? "," : "", f, f);
        memset(g, 0, sizeof(*g));
        int rc = ad_influx_parse(line, strlen(line), AD_PREC_NS, kb, sizeof(kb), ph_got_sample, g);
        if (nf == 256) {
            ck_assert_int_eq(rc, 256);
            ck_assert_str_eq(g->key[255], "m f255");
            ck_assert_double_eq(g->value[255], 255);
        } else {
            ck_assert_int_eq(rc, -AD_PE_SYNTAX);
            ck_assert_int_eq(g->n, 0);
        }
    }
    free(g);
}
END_TEST

START_TEST(test_fn_stops)
{
    ph_got g;
    char kb[32];
    const char *l = "m a=1,s=\"x\",b=2,c=3";
    memset(&g, 0, sizeof(g));
    g.stop_after = 2;
    ck_assert_int_eq(ad_influx_parse(l, strlen(l), AD_PREC_NS, kb, sizeof(kb), ph_got_sample, &g),
                     2);
    ck_assert_int_eq(g.n, 2);
    ck_assert_str_eq(g.key[1], "m b");
}
END_TEST

/* ---- streams ---- */

/* Records one line of a stream, in seconds. */
static int record(const char *line, size_t len, ph_rec *r)
{
    char kb[96];
    return ad_influx_parse(line, len, AD_PREC_S, kb, sizeof(kb), ph_rec_sample, r);
}

START_TEST(test_stream_bytewise)
{
    const char *in = "# header\r\n"
                     "cpu,host=a user=1,sys=2i 1700000000\r\n"
                     "\n"
                     "mem,b=1,a=2 free=3u,note=\"x y\" 1700000001 \n"
                     "bad,t f=1\n"
                     "disk used=0.5";
    ph_recs whole;
    ph_stream_bytewise(in, record, &whole); /* whole and one byte at a time: the same */
    ck_assert_int_eq(whole.n, 6);
    ck_assert_int_eq(whole.r[0].rc, 0);
    ck_assert_int_eq(whole.r[1].rc, 2);
    ck_assert_str_eq(whole.r[1].s[1].key, "cpu,host=a sys");
    ck_assert_int_eq(whole.r[2].rc, 0);
    ck_assert_int_eq(whole.r[3].rc, 1);
    ck_assert_str_eq(whole.r[3].s[0].key, "mem,a=2,b=1 free");
    ck_assert_double_eq(whole.r[3].s[0].ts, 1700000001);
    ck_assert_int_eq(whole.r[4].rc, -AD_PE_TAGS);
    ck_assert_int_eq(whole.r[5].rc, 1);
}
END_TEST

static Suite *influx_suite(void)
{
    Suite *s = suite_create("proto_influx");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, test_fields_and_keys);
    tcase_add_test(tc, test_escapes);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_test(tc, test_types);
    tcase_add_test(tc, test_strings_skipped);
    tcase_add_test(tc, test_timestamps);
    tcase_add_test(tc, test_blank_and_comments);
    suite_add_tcase(s, tc);

    tc = tcase_create("refuse");
    tcase_add_test(tc, test_refusals);
    tcase_add_test(tc, test_key_too_long);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_fn_stops);
    suite_add_tcase(s, tc);

    tc = tcase_create("stream");
    tcase_add_test(tc, test_stream_bytewise);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(influx_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
