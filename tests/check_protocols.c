/*
 * check_protocols.c - ingest/protocols.c, the protocol registry, and ingest/sample.c's
 * refusal names: every row named, the names fixed (they are configuration values, metric
 * labels and the store's column: renaming one is a change of format), name and number
 * round-trip, the flags agree with the parsers (a listener protocol has a line parser
 * unless it is aggregated, prometheus is no listener, only influx takes a precision);
 * each line parser in the registry's shape gives what its protocol's line holds, 0 for a
 * line with nothing, and -AD_PE_* without calling back; the parse-error reasons have
 * their fixed label names.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/proto_influx.h"
#include "ingest/protocols.h"
#include "ingest/sample.h"

#define KEYCAP 256

/* ---- the rows ---- */

/* The names as configurations, metric labels and stores spell them. */
static const char *const names[AD_PROTO_N] = {
    [AD_PROTO_GRAPHITE] = "graphite", [AD_PROTO_INFLUX] = "influx",
    [AD_PROTO_STATSD] = "statsd",     [AD_PROTO_JSONL] = "jsonl",
    [AD_PROTO_PROMETHEUS] = "prometheus",
};

START_TEST(test_every_row_named_fixed_names)
{
    for (int i = 0; i < AD_PROTO_N; i++) {
        const ad_proto_info *pi = ad_proto_info_of(i);

        ck_assert_ptr_nonnull(pi);
        ck_assert_ptr_nonnull(names[i]); /* a new protocol: add its name above */
        ck_assert_ptr_nonnull(pi->name);
        ck_assert_str_eq(pi->name, names[i]);
        ck_assert_str_eq(ad_proto_name(i), names[i]);
        ck_assert_int_eq(ad_proto_from_name(names[i]), i);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(ad_proto_name(j), pi->name);
    }
}
END_TEST

START_TEST(test_out_of_range_and_unknown)
{
    ck_assert_ptr_null(ad_proto_info_of(-1));
    ck_assert_ptr_null(ad_proto_info_of(AD_PROTO_N));
    ck_assert_ptr_null(ad_proto_name(-1));
    ck_assert_ptr_null(ad_proto_name(AD_PROTO_N));
    ck_assert_int_eq(ad_proto_from_name(""), -1);
    ck_assert_int_eq(ad_proto_from_name("Graphite"), -1);
    ck_assert_int_eq(ad_proto_from_name("graphite "), -1);
    ck_assert_int_eq(ad_proto_from_name("carbon"), -1);
}
END_TEST

START_TEST(test_flags_agree_with_parsers)
{
    int listeners = 0;

    for (int i = 0; i < AD_PROTO_N; i++) {
        const ad_proto_info *pi = ad_proto_info_of(i);
        const unsigned known = AD_PROTO_F_LISTENER | AD_PROTO_F_PRECISION |
                               AD_PROTO_F_AGGREGATED;

        ck_assert_uint_eq(pi->flags & ~known, 0);
        if (pi->flags & AD_PROTO_F_AGGREGATED)
            ck_assert_msg(pi->parse == NULL, "%s: aggregated, yet a line parser", pi->name);
        else if (pi->flags & AD_PROTO_F_LISTENER)
            ck_assert_msg(pi->parse != NULL, "%s: a listener protocol without a parser",
                          pi->name);
        if (pi->flags & AD_PROTO_F_PRECISION)
            ck_assert_msg(pi->flags & AD_PROTO_F_LISTENER, "%s: precision but no listener",
                          pi->name);
        listeners += !!(pi->flags & AD_PROTO_F_LISTENER);
    }
    ck_assert_int_eq(listeners, AD_PROTO_N - 1);
    ck_assert_uint_eq(ad_proto_info_of(AD_PROTO_PROMETHEUS)->flags, 0); /* HTTP only */
    ck_assert_ptr_null(ad_proto_info_of(AD_PROTO_PROMETHEUS)->parse);
    ck_assert_uint_eq(ad_proto_info_of(AD_PROTO_STATSD)->flags,
                      AD_PROTO_F_LISTENER | AD_PROTO_F_AGGREGATED);
    for (int i = 0; i < AD_PROTO_N; i++)
        ck_assert_int_eq(!!(ad_proto_info_of(i)->flags & AD_PROTO_F_PRECISION),
                         i == AD_PROTO_INFLUX);
}
END_TEST

/* ---- the parsers in the registry's shape ---- */

typedef struct got {
    int n;
    char key[4][KEYCAP];
    double ts[4], value[4];
} got;

static int collect(void *ctx, const ad_sample *s)
{
    got *g = ctx;

    ck_assert_uint_eq(strlen(s->key), s->key_len);
    if (g->n < 4) {
        snprintf(g->key[g->n], KEYCAP, "%s", s->key);
        g->ts[g->n] = s->ts;
        g->value[g->n] = s->value;
    }
    g->n++;
    return 0;
}

/* Parses line through protocol p's row; the return value, with what fn got in *g. */
static int parse(int p, const char *line, int precision, got *g)
{
    char keybuf[KEYCAP];

    memset(g, 0, sizeof(*g));
    return ad_proto_info_of(p)->parse(line, strlen(line), precision, keybuf, sizeof(keybuf),
                                      collect, g);
}

START_TEST(test_graphite_line)
{
    got g;

    ck_assert_int_eq(parse(AD_PROTO_GRAPHITE, "a.b 1.5 1700000000", 0, &g), 1);
    ck_assert_int_eq(g.n, 1);
    ck_assert_str_eq(g.key[0], "a.b");
    ck_assert_double_eq(g.value[0], 1.5);
    ck_assert_double_eq(g.ts[0], 1700000000.0);
    ck_assert_int_eq(parse(AD_PROTO_GRAPHITE, "", 0, &g), 0);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(parse(AD_PROTO_GRAPHITE, "a.b x 1700000000", 0, &g), -AD_PE_VALUE);
    ck_assert_int_eq(g.n, 0);
    ck_assert_int_eq(parse(AD_PROTO_GRAPHITE, "lonely", 0, &g), -AD_PE_SYNTAX);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

START_TEST(test_influx_line_and_precision)
{
    got g;

    ck_assert_int_eq(parse(AD_PROTO_INFLUX, "m,h=a f=1,s=\"x\",g=2i 1700000000500", AD_PREC_MS,
                           &g), 2);
    ck_assert_int_eq(g.n, 2);
    ck_assert_str_eq(g.key[0], "m,h=a f");
    ck_assert_str_eq(g.key[1], "m,h=a g");
    ck_assert_double_eq(g.value[1], 2.0);
    ck_assert_double_eq_tol(g.ts[0], 1700000000.5, 1e-6);
    /* the precision reaches the parser: the same digits in seconds */
    ck_assert_int_eq(parse(AD_PROTO_INFLUX, "m f=1 1700000000", AD_PREC_S, &g), 1);
    ck_assert_double_eq(g.ts[0], 1700000000.0);
    ck_assert_int_eq(parse(AD_PROTO_INFLUX, "# a comment", AD_PREC_NS, &g), 0);
    ck_assert_int_eq(parse(AD_PROTO_INFLUX, "m", AD_PREC_NS, &g), -AD_PE_NO_FIELDS);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

START_TEST(test_jsonl_line)
{
    got g;

    ck_assert_int_eq(parse(AD_PROTO_JSONL, "{\"series\":\"x\",\"value\":2,\"tags\":{\"b\":1}}", 0,
                           &g), 1);
    ck_assert_str_eq(g.key[0], "x;b=1");
    ck_assert_double_eq(g.value[0], 2.0);
    ck_assert(isnan(g.ts[0])); /* no timestamp: the receiver's clock */
    ck_assert_int_eq(parse(AD_PROTO_JSONL, "", 0, &g), 0);
    ck_assert_int_lt(parse(AD_PROTO_JSONL, "{\"value\":2}", 0, &g), 0);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

/* A key that does not fit the caller's buffer is refused, not cut. */
START_TEST(test_key_buffer_bounds)
{
    char keybuf[8];
    got g;

    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(ad_proto_info_of(AD_PROTO_GRAPHITE)->parse("abcdefghij 1 1", 14, 0, keybuf,
                                                                sizeof(keybuf), collect, &g),
                     -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

/* ---- the refusal reasons ---- */

START_TEST(test_parse_error_names)
{
    static const char *const want[AD_PE_NREASONS] = {
        [AD_PE_SYNTAX] = "syntax",          [AD_PE_VALUE] = "bad_value",
        [AD_PE_NONFINITE] = "non_finite",   [AD_PE_TIMESTAMP] = "bad_timestamp",
        [AD_PE_KEY_TOO_LONG] = "key_too_long", [AD_PE_TAGS] = "bad_tags",
        [AD_PE_TYPE] = "bad_type",          [AD_PE_TOO_LONG] = "line_too_long",
        [AD_PE_NO_FIELDS] = "no_fields",    [AD_PE_UTF8] = "invalid_utf8",
    };

    for (int r = 1; r < AD_PE_NREASONS; r++) {
        ck_assert_ptr_nonnull(want[r]); /* a new reason: add its label above */
        ck_assert_str_eq(ad_parse_error_name(r), want[r]);
    }
    ck_assert_str_eq(ad_parse_error_name(0), "unknown");
    ck_assert_str_eq(ad_parse_error_name(-AD_PE_SYNTAX), "unknown");
    ck_assert_str_eq(ad_parse_error_name(AD_PE_NREASONS), "unknown");
}
END_TEST

START_TEST(test_parse_number)
{
    char big[AD_NUMBER_MAX + 8];
    double v;

    ck_assert_int_eq(ad_parse_number("1.5e3xyz", 5, &v), 0);
    ck_assert_double_eq(v, 1500.0);
    ck_assert_int_eq(ad_parse_number("-0.25", 5, &v), 0);
    ck_assert_double_eq(v, -0.25);
    ck_assert_int_eq(ad_parse_number("", 0, &v), -AD_PE_VALUE);
    ck_assert_int_eq(ad_parse_number("0x10", 4, &v), -AD_PE_VALUE);
    ck_assert_int_eq(ad_parse_number("12ab", 4, &v), -AD_PE_VALUE);
    ck_assert_int_eq(ad_parse_number("nan", 3, &v), -AD_PE_NONFINITE);
    ck_assert_int_eq(ad_parse_number("inf", 3, &v), -AD_PE_NONFINITE);
    ck_assert_int_eq(ad_parse_number("1e999", 5, &v), -AD_PE_NONFINITE);
    memset(big, '1', sizeof(big));
    ck_assert_int_eq(ad_parse_number(big, AD_NUMBER_MAX, &v), 0);
    ck_assert_int_eq(ad_parse_number(big, AD_NUMBER_MAX + 1, &v), -AD_PE_VALUE);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("protocols");
    TCase *rows = tcase_create("rows");
    TCase *parsers = tcase_create("parsers");
    TCase *reasons = tcase_create("reasons");

    tcase_add_test(rows, test_every_row_named_fixed_names);
    tcase_add_test(rows, test_out_of_range_and_unknown);
    tcase_add_test(rows, test_flags_agree_with_parsers);
    tcase_add_test(parsers, test_graphite_line);
    tcase_add_test(parsers, test_influx_line_and_precision);
    tcase_add_test(parsers, test_jsonl_line);
    tcase_add_test(parsers, test_key_buffer_bounds);
    tcase_add_test(reasons, test_parse_error_names);
    tcase_add_test(reasons, test_parse_number);
    suite_add_tcase(s, rows);
    suite_add_tcase(s, parsers);
    suite_add_tcase(s, reasons);
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
