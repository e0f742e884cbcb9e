/*
 * check_linebuf.c - linebuf.c: lines split at every chunk boundary (whole, two chunks at
 * every point, one byte at a time) come out identical; lines inside a chunk are handed
 * out in place; one trailing '\r' stripped; over-long lines dropped whole, counted once,
 * the stream going on; finish() delivering or dropping the partial line.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/linebuf.h"
#include "proto_harness.h"

/* ---- helpers ---- */

#define MAXL 32

typedef struct lines {
    int n;
    char text[MAXL][128];
    size_t len[MAXL];
    const char *ptr[MAXL]; /* where fn saw the line */
} lines;

static void collect(void *ctx, const char *line, size_t len)
{
    lines *l = ctx;
    ck_assert_int_lt(l->n, MAXL);
    ck_assert_uint_lt(len, sizeof(l->text[0]));
    memcpy(l->text[l->n], line, len);
    l->text[l->n][len] = '\0';
    l->len[l->n] = len;
    l->ptr[l->n] = line;
    l->n++;
}

/* Feeds s in chunks of `step` bytes (0: whole), then finish(deliver). Returns the
 * drop count (feeds plus nothing from finish). */
static size_t run(const char *s, size_t n, size_t cap, size_t step, int deliver, lines *out,
                  int *finish_rc)
{
    memset(out, 0, sizeof(*out));
    return ph_feed(s, n, cap, step, deliver, collect, out, finish_rc);
}

static void same_lines(const lines *a, const lines *b)
{
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        ck_assert_uint_eq(a->len[i], b->len[i]);
        ck_assert_mem_eq(a->text[i], b->text[i], a->len[i]);
    }
}

/* ---- splitting ---- */

START_TEST(test_basic_lines)
{
    const char *s = "a 1\nbb 2\r\n\nccc\r\r\nlast";
    lines l;
    int frc;
    ck_assert_uint_eq(run(s, strlen(s), 64, 0, 1, &l, &frc), 0);
    ck_assert_int_eq(frc, 1);
    ck_assert_int_eq(l.n, 5);
    ck_assert_str_eq(l.text[0], "a 1");
    ck_assert_str_eq(l.text[1], "bb 2");  /* CRLF */
    ck_assert_str_eq(l.text[2], "");      /* an empty line is a line */
    ck_assert_str_eq(l.text[3], "ccc\r"); /* only one '\r' stripped */
    ck_assert_str_eq(l.text[4], "last");  /* delivered by finish */
}
END_TEST

START_TEST(test_in_place)
{
    const char *s = "first\nsecond\nthird";
    lines l;
    run(s, strlen(s), 64, 0, 0, &l, NULL);
    ck_assert_int_eq(l.n, 2);
    ck_assert_ptr_eq(l.ptr[0], s);
    ck_assert_ptr_eq(l.ptr[1], s + 6);
}
END_TEST

/* Every split point, and one byte at a time, give the lines of the whole feed. */
START_TEST(test_chunk_boundaries)
{
    const char *s = "cpu 1 2\r\nmem 3\n\n\rx\nthis line is far too long for the cap\nok\r\n"
                    "tail\r";
    size_t n = strlen(s);
    lines whole, part;
    size_t d0 = run(s, n, 16, 0, 1, &whole, NULL);
    ck_assert_uint_eq(d0, 1);
    ck_assert_int_eq(whole.n, 6);
    ck_assert_str_eq(whole.text[3], "\rx");
    ck_assert_str_eq(whole.text[4], "ok");
    ck_assert_str_eq(whole.text[5], "tail");
    for (size_t step = 1; step <= n; step++) {
        ck_assert_uint_eq(run(s, n, 16, step, 1, &part, NULL), d0);
        same_lines(&whole, &part);
    }
    /* two chunks split at every point */
    for (size_t cut = 0; cut <= n; cut++) {
        char buf[16];
        ad_linebuf lb;
        ad_linebuf_init(&lb, buf, sizeof(buf));
        memset(&part, 0, sizeof(part));
        size_t d = ad_linebuf_feed(&lb, s, cut, collect, &part);
        d += ad_linebuf_feed(&lb, s + cut, n - cut, collect, &part);
        ck_assert_int_eq(ad_linebuf_finish(&lb, 1, collect, &part), 1);
        ck_assert_uint_eq(d, d0);
        same_lines(&whole, &part);
    }
}
END_TEST

/* ---- limits ---- */

START_TEST(test_cap_exact)
{
    /* cap bytes before the newline fit, '\r' included; one more is dropped */
    lines l, b;
    ck_assert_uint_eq(run("abcd\nabcde\nabc\r\nabcd\r\nz\n", 24, 4, 0, 0, &l, NULL), 2);
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.text[0], "abcd");
    ck_assert_str_eq(l.text[1], "abc");
    ck_assert_str_eq(l.text[2], "z");
    ck_assert_uint_eq(run("abcd\nabcde\nabc\r\nabcd\r\nz\n", 24, 4, 1, 0, &b, NULL), 2);
    same_lines(&l, &b);
}
END_TEST

START_TEST(test_overlong_counted_once)
{
    /* a long line over many chunks is counted once, by the feed that found it */
    char buf[8];
    ad_linebuf lb;
    lines l;
    memset(&l, 0, sizeof(l));
    ad_linebuf_init(&lb, buf, sizeof(buf));
    ck_assert_uint_eq(ad_linebuf_feed(&lb, "0123456", 7, collect, &l), 0);
    ck_assert_uint_eq(ad_linebuf_feed(&lb, "789", 3, collect, &l), 1);
    ck_assert_uint_eq(ad_linebuf_feed(&lb, "abcdefghijkl", 12, collect, &l), 0);
    ck_assert_uint_eq(ad_linebuf_feed(&lb, "xyz\nok\nagain-too-long\n", 22, collect, &l), 1);
    ck_assert_int_eq(l.n, 1);
    ck_assert_str_eq(l.text[0], "ok");
    /* an over-long line in progress at the end counts as already dropped */
    ck_assert_uint_eq(ad_linebuf_feed(&lb, "0123456789", 10, collect, &l), 1);
    ck_assert_int_eq(ad_linebuf_finish(&lb, 1, collect, &l), 0);
    ck_assert_int_eq(l.n, 1);
    /* and the stream goes on after finish */
    ck_assert_uint_eq(ad_linebuf_feed(&lb, "x\n", 2, collect, &l), 0);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.text[1], "x");
}
END_TEST

START_TEST(test_cap_one)
{
    lines l;
    ck_assert_uint_eq(run("a\n\nbc\nd", 7, 1, 1, 1, &l, NULL), 1);
    ck_assert_int_eq(l.n, 3);
    ck_assert_str_eq(l.text[0], "a");
    ck_assert_str_eq(l.text[1], "");
    ck_assert_str_eq(l.text[2], "d");
}
END_TEST

/* ---- finish ---- */

START_TEST(test_finish)
{
    lines l;
    int rc;
    run("a\nb", 3, 8, 0, 0, &l, &rc); /* dropped */
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(l.n, 1);
    run("a\nb\r", 4, 8, 0, 1, &l, &rc); /* delivered, its '\r' stripped */
    ck_assert_int_eq(rc, 1);
    ck_assert_int_eq(l.n, 2);
    ck_assert_str_eq(l.text[1], "b");
    run("a\n", 2, 8, 0, 1, &l, &rc); /* nothing held */
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(l.n, 1);
    run("", 0, 8, 0, 1, &l, &rc);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(l.n, 0);
}
END_TEST

static Suite *linebuf_suite(void)
{
    Suite *s = suite_create("linebuf");
    TCase *tc = tcase_create("split");
    tcase_add_test(tc, test_basic_lines);
    tcase_add_test(tc, test_in_place);
    tcase_add_test(tc, test_chunk_boundaries);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_add_test(tc, test_cap_exact);
    tcase_add_test(tc, test_overlong_counted_once);
    tcase_add_test(tc, test_cap_one);
    suite_add_tcase(s, tc);

    tc = tcase_create("finish");
    tcase_add_test(tc, test_finish);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(linebuf_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
