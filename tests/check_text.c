/*
 * check_text.c - UTF-8 validation and escaping of client bytes (daemon/text.h).
 */
#include <check.h>
#include <string.h>

#include "text.h"

static int valid(const char *s)
{
    return ad_utf8_valid(s, strlen(s));
}

START_TEST(test_utf8_valid)
{
    ck_assert_int_eq(valid(""), 1);
    ck_assert_int_eq(valid("cpu.load 1 1700000000"), 1);
    ck_assert_int_eq(valid("temp.caf\xc3\xa9"), 1);       /* U+00E9 */
    ck_assert_int_eq(valid("\xe2\x82\xac price"), 1);     /* U+20AC */
    ck_assert_int_eq(valid("\xf0\x9f\x98\x80 smile"), 1); /* U+1F600 */
    ck_assert_int_eq(valid("\xf4\x8f\xbf\xbf"), 1);       /* U+10FFFF, the last */
    ck_assert_int_eq(valid("esc\x1b[31m"), 1);            /* controls are valid UTF-8 */
    /* a long ASCII run then a bad byte past the 8-byte fast path */
    ck_assert_int_eq(valid("abcdefghijklmnopqrstuvwxyz.0123456789\xff"), 0);
    ck_assert_int_eq(valid("u8.graphite\xff 1 1700000000"), 0);
    ck_assert_int_eq(valid("\x80"), 0);             /* stray continuation */
    ck_assert_int_eq(valid("\xc3"), 0);             /* truncated */
    ck_assert_int_eq(valid("\xc3("), 0);            /* bad continuation */
    ck_assert_int_eq(valid("\xc0\xaf"), 0);         /* overlong '/' */
    ck_assert_int_eq(valid("\xe0\x80\xaf"), 0);     /* overlong, 3 bytes */
    ck_assert_int_eq(valid("\xf0\x80\x80\xaf"), 0); /* overlong, 4 bytes */
    ck_assert_int_eq(valid("\xed\xa0\x80"), 0);     /* surrogate U+D800 */
    ck_assert_int_eq(valid("\xf4\x90\x80\x80"), 0); /* U+110000 */
    ck_assert_int_eq(valid("\xf5\x80\x80\x80"), 0);
    ck_assert_int_eq(valid("\xe2\x82"), 0); /* cut at the end */
    /* the NUL byte is left to the parsers */
    ck_assert_int_eq(ad_utf8_valid("a\0b", 3), 1);
}
END_TEST

static const char *esc(const char *s, size_t cap)
{
    static char buf[256];

    ad_escape(buf, cap, s, strlen(s));
    return buf;
}

START_TEST(test_escape)
{
    char buf[64];

    ck_assert_str_eq(esc("plain.key 1", 256), "plain.key 1");
    ck_assert_str_eq(esc("caf\xc3\xa9", 256), "caf\xc3\xa9");
    ck_assert_str_eq(esc("esc\x1b[31mred", 256), "esc\\x1b[31mred");
    ck_assert_str_eq(esc("a\tb\nc\x7f", 256), "a\\x09b\\x0ac\\x7f");
    ck_assert_str_eq(esc("u8\xff!", 256), "u8\\xff!");
    ck_assert_str_eq(esc("\xc3(", 256), "\\xc3(");
    ck_assert_str_eq(esc("\xc2\x9b"
                         "2J",
                         256),
                     "\\xc2\\x9b2J"); /* C1 CSI */
    ck_assert_str_eq(esc("back\\slash", 256), "back\\\\slash");
    /* cut: never inside an escape, marked with ... */
    ck_assert_str_eq(esc("abcdefghij", 8), "abcd...");
    ck_assert_str_eq(esc("ab\x01"
                         "cdefgh",
                         9),
                     "ab...");
    ck_assert_uint_eq(ad_escape(buf, sizeof(buf), "x\x01", 2), strlen("x\\x01"));
    ck_assert_uint_eq(ad_escape(buf, 0, "x", 1), 0);
    ck_assert_str_eq(ad_escape_str(buf, sizeof(buf), "k\x1b"), "k\\x1b");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("text");
    TCase *tc = tcase_create("text");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_utf8_valid);
    tcase_add_test(tc, test_escape);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
