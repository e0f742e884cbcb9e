/*
 * check_remote_write.c - remote_write.c on hand-built bodies: protobuf written field by
 * field here (no generated code), compressed with libsnappy. Valid requests (labels
 * sorted, empty labels dropped, samples sorted, metadata), each series-level refusal,
 * bad snappy, truncated and malformed protobuf, the staleness NaN told from other NaNs,
 * the canonical key with its escaping and bound, and the size limits (the snappy header
 * against max_decoded, the arena cap against a body of tiny messages).
 */
#include <check.h>
#include <math.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/remote_write.h"
#include "pbwrite.h"

static int decode_pb(pb *req, ad_rw_request *out)
{
    size_t len;
    char *body = pb_snappy(req, &len);
    int r = ad_rw_decode(body, len, 1 << 20, out);

    free(body);
    return r;
}

static double stale_nan(void)
{
    uint64_t bits = 0x7ff0000000000002ull;
    double v;

    memcpy(&v, &bits, sizeof(v));
    return v;
}

/* ---- valid requests ---- */

START_TEST(test_valid)
{
    pb req = {0}, ts = {0}, md = {0};
    ad_rw_request r;
    char key[256];
    size_t klen;

    pb_label(&ts, "job", "node");
    pb_label(&ts, "__name__", "node_load1");
    pb_label(&ts, "instance", "a:9100");
    pb_label(&ts, "empty", "");
    pb_sample(&ts, 3000, 3.0);
    pb_sample(&ts, 1000, 1.0);
    pb_sample(&ts, 2000, 2.0);
    pb_sub(&req, 1, &ts);
    pb_label(&ts, "__name__", "up");
    pb_sub(&req, 1, &ts); /* a series without samples */
    pb_varint(&md, 1 << 3 | 0);
    pb_varint(&md, AD_RW_COUNTER);
    pb_str(&md, 2, "http_requests");
    pb_str(&md, 4, "help text");
    pb_sub(&req, 3, &md);
    ck_assert_int_eq(decode_pb(&req, &r), 0);
    ck_assert_uint_eq(r.nseries, 2);
    ck_assert_int_eq(r.series[0].bad, 0);
    ck_assert_str_eq(r.series[0].name, "node_load1");
    ck_assert_uint_eq(r.series[0].nlabels, 2); /* the empty one dropped */
    ck_assert_str_eq(r.series[0].labels[0].name, "instance");
    ck_assert_str_eq(r.series[0].labels[1].name, "job");
    ck_assert_uint_eq(r.series[0].nsamples, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(r.series[0].samples[i].ts_ms, 1000 * (i + 1));
        ck_assert_double_eq(r.series[0].samples[i].value, i + 1.0);
    }
    ck_assert_int_eq(ad_rw_series_key(r.series[0].name, r.series[0].labels, r.series[0].nlabels,
                                      key, sizeof(key), &klen),
                     0);
    ck_assert_str_eq(key, "node_load1{instance=\"a:9100\",job=\"node\"}");
    ck_assert_uint_eq(klen, strlen(key));
    ck_assert_str_eq(r.series[1].name, "up");
    ck_assert_uint_eq(r.series[1].nsamples, 0);
    ck_assert_int_eq(ad_rw_series_key("up", NULL, 0, key, sizeof(key), &klen), 0);
    ck_assert_str_eq(key, "up");
    ck_assert_uint_eq(r.nmeta, 1);
    ck_assert_str_eq(r.meta[0].family, "http_requests");
    ck_assert_int_eq(r.meta[0].type, AD_RW_COUNTER);
    ck_assert_uint_gt(r.arena_bytes, 0);
    ad_rw_request_free(&r);
    ck_assert_ptr_null(r.priv);
}
END_TEST

START_TEST(test_empty_request)
{
    pb req = {0};
    ad_rw_request r;

    ck_assert_int_eq(decode_pb(&req, &r), 0); /* zero bytes of protobuf: no series */
    ck_assert_uint_eq(r.nseries, 0);
    ck_assert_uint_eq(r.nmeta, 0);
    ad_rw_request_free(&r);
}
END_TEST

START_TEST(test_unknown_fields_skipped)
{
    pb req = {0}, ts = {0}, ex = {0};
    ad_rw_request r;

    pb_label(&ts, "__name__", "m");
    pb_sample(&ts, 5, 1.5);
    pb_str(&ex, 1, "exemplar-ish");
    pb_sub(&ts, 3, &ex); /* exemplars: not in our subset */
    pb_sub(&req, 1, &ts);
    pb_varint(&req, 9 << 3 | 0); /* an unknown varint field at the top */
    pb_varint(&req, 12345);
    ck_assert_int_eq(decode_pb(&req, &r), 0);
    ck_assert_uint_eq(r.nseries, 1);
    ck_assert_uint_eq(r.series[0].nsamples, 1);
    ad_rw_request_free(&r);
}
END_TEST

/* ---- series-level refusals ---- */

static int bad_of(const char *n1, const char *v1, const char *n2, const char *v2)
{
    pb req = {0}, ts = {0};
    ad_rw_request r;
    int bad;

    pb_label(&ts, n1, v1);
    if (n2)
        pb_label(&ts, n2, v2);
    pb_sample(&ts, 1, 1);
    pb_sub(&req, 1, &ts);
    ck_assert_int_eq(decode_pb(&req, &r), 0);
    ck_assert_uint_eq(r.nseries, 1);
    bad = r.series[0].bad;
    ad_rw_request_free(&r);
    return bad;
}

START_TEST(test_bad_series)
{
    ck_assert_int_eq(bad_of("__name__", "ok_name:x", "a", "b"), 0);
    ck_assert_int_eq(bad_of("job", "x", NULL, NULL), AD_RW_BAD_NO_NAME);
    ck_assert_int_eq(bad_of("__name__", "", "a", "b"), AD_RW_BAD_NO_NAME);
    ck_assert_int_eq(bad_of("__name__", "1abc", NULL, NULL), AD_RW_BAD_NAME);
    ck_assert_int_eq(bad_of("__name__", "a-b", NULL, NULL), AD_RW_BAD_NAME);
    ck_assert_int_eq(bad_of("__name__", "m", "bad-label", "v"), AD_RW_BAD_NAME);
    ck_assert_int_eq(bad_of("__name__", "m", "a:b", "v"), AD_RW_BAD_NAME);
    ck_assert_int_eq(bad_of("__name__", "m", "__name__", "n"), AD_RW_BAD_DUPLICATE);
    ck_assert_int_eq(bad_of("__name__", "m", "\xc3\x28", "v"), AD_RW_BAD_UTF8);
    ck_assert_int_eq(bad_of("__name__", "m", "a", "\xed\xa0\x80"), AD_RW_BAD_UTF8); /* surrogate */
    ck_assert_int_eq(bad_of("__name__", "m", "a", "\xc0\xaf"), AD_RW_BAD_UTF8); /* overlong */
    ck_assert_int_eq(bad_of("__name__", "m", "a", "caf\xc3\xa9 \xf0\x9f\x98\x80"), 0);
    {
        pb req = {0}, ts = {0};
        ad_rw_request r;

        pb_label(&ts, "__name__", "m");
        pb_label(&ts, "a", "1");
        pb_label(&ts, "a", "2");
        pb_sub(&req, 1, &ts);
        ck_assert_int_eq(decode_pb(&req, &r), 0);
        ck_assert_int_eq(r.series[0].bad, AD_RW_BAD_DUPLICATE);
        ad_rw_request_free(&r);
    }
    ck_assert_str_eq(ad_rw_bad_name(AD_RW_BAD_UTF8), "not_utf8");
    ck_assert_str_eq(ad_rw_bad_name(99), "unknown");
    ck_assert_str_eq(ad_rw_error_name(AD_RW_ESNAPPY), "snappy");
    ck_assert_str_eq(ad_rw_error_name(0), "unknown");
}
END_TEST

/* ---- values ---- */

START_TEST(test_staleness_nan)
{
    pb req = {0}, ts = {0};
    ad_rw_request r;

    pb_label(&ts, "__name__", "m");
    pb_sample(&ts, 1, 1.0);
    pb_sample(&ts, 2, stale_nan());
    pb_sample(&ts, 3, NAN);
    pb_sample(&ts, 4, INFINITY);
    pb_sub(&req, 1, &ts);
    ck_assert_int_eq(decode_pb(&req, &r), 0);
    ck_assert(!ad_rw_is_stale(r.series[0].samples[0].value));
    ck_assert(ad_rw_is_stale(r.series[0].samples[1].value));
    ck_assert(isnan(r.series[0].samples[2].value));
    ck_assert(!ad_rw_is_stale(r.series[0].samples[2].value));
    ck_assert(isinf(r.series[0].samples[3].value));
    ck_assert(!ad_rw_is_stale(INFINITY));
    ad_rw_request_free(&r);
}
END_TEST

/* ---- bad bodies ---- */

START_TEST(test_bad_snappy)
{
    static const char junk[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff not snappy";
    ad_rw_request r;
    pb req = {0}, ts = {0};
    size_t len;
    char *body;

    ck_assert_int_eq(ad_rw_decode(junk, sizeof(junk) - 1, 1 << 20, &r), -AD_RW_ESNAPPY);
    ck_assert_int_eq(ad_rw_decode("", 0, 1 << 20, &r), -AD_RW_ESNAPPY);
    ck_assert_ptr_null(r.priv);
    /* a valid block cut short: the header promises more than follows */
    pb_label(&ts, "__name__", "some_metric_name_that_is_long_enough");
    pb_sample(&ts, 1, 1);
    pb_sub(&req, 1, &ts);
    body = pb_snappy(&req, &len);
    ck_assert_int_eq(ad_rw_decode(body, len - 5, 1 << 20, &r), -AD_RW_ESNAPPY);
    /* plain protobuf, not compressed (a client forgetting snappy) */
    ck_assert_int_lt(ad_rw_decode("\x0a\x05\x0a\x03\x0a\x01\x61", 7, 1 << 20, &r), 0);
    free(body);
    ad_rw_request_free(&r); /* harmless on an empty request */
}
END_TEST

START_TEST(test_bad_protobuf)
{
    pb req = {0}, ts = {0}, copy = {0};
    ad_rw_request r;

    pb_label(&ts, "__name__", "m");
    pb_sample(&ts, 1, 1);
    pb_sub(&req, 1, &ts);
    /* truncated: every proper prefix that cuts into the series is refused */
    for (size_t cut = 1; cut < req.n; cut++) {
        copy.n = 0;
        pb_put(&copy, req.b, cut);
        ck_assert_int_eq(decode_pb(&copy, &r), -AD_RW_EPROTOBUF);
    }
    free(req.b);
    /* a wrong wire type for field 1 (varint instead of a message) */
    memset(&req, 0, sizeof(req));
    pb_varint(&req, 1 << 3 | 0);
    pb_varint(&req, 7);
    ck_assert_int_eq(decode_pb(&req, &r), -AD_RW_EPROTOBUF);
    /* text */
    pb_put(&req, "hello, world", 12);
    ck_assert_int_eq(decode_pb(&req, &r), -AD_RW_EPROTOBUF);
}
END_TEST

/* ---- sizes ---- */

START_TEST(test_max_decoded)
{
    pb req = {0}, ts = {0};
    ad_rw_request r;
    size_t len, n;
    char *body;

    pb_label(&ts, "__name__", "m");
    pb_sample(&ts, 1, 1);
    pb_sub(&req, 1, &ts);
    n = req.n;
    body = pb_snappy(&req, &len);
    ck_assert_int_eq(ad_rw_decode(body, len, n, &r), 0); /* exactly at the limit */
    ck_assert_uint_eq(r.decoded_len, n);
    ad_rw_request_free(&r);
    ck_assert_int_eq(ad_rw_decode(body, len, n - 1, &r), -AD_RW_ETOO_LARGE);
    free(body);
    /* a header alone claiming 2^32 - 1 bytes: refused before any allocation */
    ck_assert_int_eq(ad_rw_decode("\xff\xff\xff\xff\x0f", 5, 1 << 20, &r), -AD_RW_ETOO_LARGE);
}
END_TEST

START_TEST(test_arena_cap)
{
    /* 150 000 empty labels: 2 bytes each on the wire, a 40-byte struct and a pointer
     * each decoded: more than AD_RW_AMPLIFY times the body */
    pb req = {0}, ts = {0};
    ad_rw_request r;
    size_t len;
    char *body;

    for (int i = 0; i < 150000; i++)
        pb_put(&ts, "\x0a\x00", 2);
    pb_sub(&req, 1, &ts);
    body = pb_snappy(&req, &len);
    ck_assert_int_eq(ad_rw_decode(body, len, 1 << 24, &r), -AD_RW_ETOO_LARGE);
    free(body);
    /* the same count of ordinary labels fits */
    for (int i = 0; i < 20000; i++)
        pb_label(&ts, "label_name", "some value");
    pb_sub(&req, 1, &ts);
    body = pb_snappy(&req, &len);
    ck_assert_int_eq(ad_rw_decode(body, len, 1 << 24, &r), 0);
    ck_assert_int_eq(r.series[0].bad, AD_RW_BAD_DUPLICATE); /* (and no name) */
    ck_assert_uint_le(r.arena_bytes, r.decoded_len * AD_RW_AMPLIFY + 65536);
    ad_rw_request_free(&r);
    free(body);
}
END_TEST

/* ---- the key ---- */

START_TEST(test_key_escaping_and_bound)
{
    ad_label l[2] = {{"a", "x\"y\\z\nw"}, {"b", "2"}};
    char key[64];
    size_t n = 0, full;

    ck_assert_int_eq(ad_rw_series_key("m", l, 2, key, sizeof(key), &n), 0);
    ck_assert_str_eq(key, "m{a=\"x\\\"y\\\\z\\nw\",b=\"2\"}");
    full = n;
    ck_assert_int_eq(ad_rw_series_key("m", l, 2, key, full + 1, &n), 0);
    ck_assert_int_eq(ad_rw_series_key("m", l, 2, key, full, &n), -AD_RW_ETOO_LARGE);
    ck_assert_int_eq(ad_rw_series_key("m", l, 2, key, 0, &n), -AD_RW_ETOO_LARGE);
}
END_TEST

START_TEST(test_names)
{
    ck_assert(ad_rw_valid_metric_name("a:b_c9"));
    ck_assert(ad_rw_valid_metric_name(":x"));
    ck_assert(!ad_rw_valid_metric_name(""));
    ck_assert(!ad_rw_valid_metric_name("9x"));
    ck_assert(ad_rw_valid_label_name("_a9"));
    ck_assert(!ad_rw_valid_label_name("a:b"));
    ck_assert(!ad_rw_valid_label_name(""));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("remote_write");
    TCase *tc;

    tc = tcase_create("valid");
    tcase_add_test(tc, test_valid);
    tcase_add_test(tc, test_empty_request);
    tcase_add_test(tc, test_unknown_fields_skipped);
    suite_add_tcase(s, tc);
    tc = tcase_create("series");
    tcase_add_test(tc, test_bad_series);
    tcase_add_test(tc, test_staleness_nan);
    tcase_add_test(tc, test_names);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad_bodies");
    tcase_add_test(tc, test_bad_snappy);
    tcase_add_test(tc, test_bad_protobuf);
    suite_add_tcase(s, tc);
    tc = tcase_create("sizes");
    tcase_add_test(tc, test_max_decoded);
    tcase_add_test(tc, test_arena_cap);
    tcase_add_test(tc, test_key_escaping_and_bound);
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
