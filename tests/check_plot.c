/*
 * check_plot.c - plot.c: the SVG's frame (opens with <svg, closes with </svg>, tags
 * balanced), the title escaped, one circle per flagged point, one polyline per unbroken
 * run with the right number of points (NaN predictions are gaps), an empty chart, and
 * constant, huge and non-finite values giving only finite coordinates.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "http/plot.h"

#define T0 1700000000.0

static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* The number of "x,y" pairs in each polyline of class cls, into counts (at most max);
 * returns how many polylines. */
static int runs(const char *svg, const char *cls, int *counts, int max)
{
    char head[64];
    int n = 0;

    snprintf(head, sizeof(head), "<polyline class=\"%s\"", cls);
    for (const char *p = svg; (p = strstr(p, head)); p += strlen(head)) {
        const char *pts = strstr(p, "points=\""), *end;
        int pairs = 0;

        ck_assert_ptr_nonnull(pts);
        pts += 8;
        end = strchr(pts, '"');
        ck_assert_ptr_nonnull(end);
        for (const char *q = pts; q < end; q++)
            pairs += *q == ',';
        if (n < max)
            counts[n] = pairs;
        n++;
    }
    return n;
}

/* Structure: the frame, '<' and '>' balanced, no raw '&' that is not an entity, every
 * number in an attribute finite ("nan" and "inf" never appear). */
static void check_frame(const char *svg, size_t len)
{
    int depth = 0;

    ck_assert_uint_eq(strlen(svg), len);
    ck_assert_int_eq(strncmp(svg, "<svg", 4), 0);
    ck_assert_ptr_nonnull(strstr(svg, "</svg>"));
    ck_assert_str_eq(svg + len - 7, "</svg>\n");
    for (const char *p = svg; *p; p++) {
        if (*p == '<')
            depth++;
        if (*p == '>')
            depth--;
        ck_assert_int_ge(depth, 0);
        ck_assert_int_le(depth, 1);
        if (*p == '&')
            ck_assert(!strncmp(p, "&amp;", 5) || !strncmp(p, "&lt;", 4) ||
                      !strncmp(p, "&gt;", 4) || !strncmp(p, "&quot;", 6) ||
                      !strncmp(p, "&apos;", 6));
    }
    ck_assert_int_eq(depth, 0);
    ck_assert_ptr_null(strstr(svg, "nan"));
    ck_assert_ptr_null(strstr(svg, "inf"));
    ck_assert_int_eq(count(svg, "<svg"), 1);
    ck_assert_int_eq(count(svg, "</svg>"), 1);
}

static char *render(const char *title, const ad_point *pts, int n, double thr)
{
    char *svg = NULL;
    size_t len = 0;

    ck_assert_int_eq(ad_plot_svg(title, pts, n, thr, &svg, &len), 0);
    ck_assert_ptr_nonnull(svg);
    check_frame(svg, len);
    return svg;
}

static void fill(ad_point *p, int n)
{
    for (int i = 0; i < n; i++) {
        p[i] = (ad_point){.ts = T0 + 60 * i, .value = sin(i * 0.3) * 10, .predicted = NAN,
                          .score = (float)(i % 10) / 10, .flagged = 0, .warming_up = 0};
        if (i >= 5)
            p[i].predicted = p[i].value + 0.5;
    }
}

START_TEST(test_frame_and_title)
{
    ad_point p[20];
    char *svg;

    fill(p, 20);
    svg = render("cpu<1> & \"x\" 'y'", p, 20, 0.5);
    ck_assert_ptr_nonnull(strstr(svg, "cpu&lt;1&gt; &amp; &quot;x&quot; &apos;y&apos;"));
    ck_assert_ptr_null(strstr(svg, "cpu<1>"));
    ck_assert_int_eq(count(svg, "class=\"threshold\""), 1);
    ck_assert_ptr_nonnull(strstr(svg, "time (UTC)"));
    ck_assert_ptr_nonnull(strstr(svg, ">22:13:20<")); /* T0 in UTC, the first tick */
    free(svg);
}
END_TEST

START_TEST(test_title_bytes_xml_cannot_carry)
{
    char *svg = render("a\x01" "b\xff" "c\xc3\xa9", NULL, 0, 0.5);

    ck_assert_ptr_nonnull(strstr(svg, "a?b?c\xc3\xa9"));
    free(svg);
}
END_TEST

START_TEST(test_flags_are_circles)
{
    ad_point p[50];
    char *svg;

    fill(p, 50);
    p[3].flagged = p[17].flagged = p[49].flagged = 1;
    svg = render("s", p, 50, 0.5);
    ck_assert_int_eq(count(svg, "<circle"), 3);
    ck_assert_int_eq(count(svg, "class=\"flag\""), 3);
    ck_assert_ptr_nonnull(strstr(svg, "50 points, 3 flagged"));
    free(svg);
    fill(p, 50);
    svg = render("s", p, 50, 0.5);
    ck_assert_int_eq(count(svg, "<circle"), 0);
    free(svg);
}
END_TEST

START_TEST(test_polylines_and_gaps)
{
    ad_point p[30];
    int c[8];
    char *svg;

    fill(p, 30); /* predictions NaN for 0..4 */
    p[12].predicted = NAN;
    p[13].predicted = NAN;
    p[29].predicted = NAN;
    svg = render("s", p, 30, 0.5);
    ck_assert_int_eq(runs(svg, "values", c, 8), 1);
    ck_assert_int_eq(c[0], 30);
    ck_assert_int_eq(runs(svg, "scores", c, 8), 1);
    ck_assert_int_eq(c[0], 30);
    ck_assert_int_eq(runs(svg, "predicted", c, 8), 2); /* 5..11, 14..28 */
    ck_assert_int_eq(c[0], 7);
    ck_assert_int_eq(c[1], 15);
    free(svg);
}
END_TEST

START_TEST(test_empty)
{
    int c[2];
    char *svg = render("nothing yet", NULL, 0, 0.5);

    ck_assert_ptr_nonnull(strstr(svg, "no points yet"));
    ck_assert_int_eq(runs(svg, "values", c, 2), 0);
    ck_assert_int_eq(count(svg, "<circle"), 0);
    free(svg);
    svg = render(NULL, NULL, 0, NAN); /* no title, no threshold */
    ck_assert_int_eq(count(svg, "class=\"threshold\""), 0);
    free(svg);
}
END_TEST

START_TEST(test_constant_and_single)
{
    ad_point p[10];
    int c[2];
    char *svg;

    fill(p, 10);
    for (int i = 0; i < 10; i++)
        p[i].value = p[i].predicted = 42, p[i].ts = T0; /* constant in time and value */
    svg = render("flat", p, 10, 0.5);
    ck_assert_int_eq(runs(svg, "values", c, 2), 1);
    ck_assert_int_eq(c[0], 10);
    free(svg);
    svg = render("one", p, 1, 0.5);
    ck_assert_int_eq(runs(svg, "values", c, 2), 1);
    ck_assert_int_eq(c[0], 1);
    free(svg);
}
END_TEST

START_TEST(test_huge_values)
{
    ad_point p[6];
    double v[6] = {-1.7e308, 1.7e308, 0, 1e-300, -1e-300, 1.7e308};
    int c[2];
    char *svg;

    fill(p, 6);
    for (int i = 0; i < 6; i++)
        p[i].value = v[i], p[i].predicted = v[5 - i], p[i].score = i == 2 ? 1e30f : -5.f;
    p[4].flagged = 1;
    svg = render("huge", p, 6, 2.0);
    ck_assert_int_eq(runs(svg, "values", c, 2), 1);
    ck_assert_int_eq(c[0], 6);
    ck_assert_int_eq(count(svg, "<circle"), 1);
    free(svg);
    for (int i = 0; i < 6; i++)
        p[i].value = p[i].predicted = 1.7e308;
    svg = render("huge constant", p, 6, 0.5);
    free(svg);
    p[0].ts = 1e300; /* an absurd time: still finite coordinates */
    svg = render("far", p, 6, 0.5);
    free(svg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("plot");
    TCase *tc = tcase_create("structure");

    tcase_add_test(tc, test_frame_and_title);
    tcase_add_test(tc, test_title_bytes_xml_cannot_carry);
    tcase_add_test(tc, test_empty);
    suite_add_tcase(s, tc);
    tc = tcase_create("marks");
    tcase_add_test(tc, test_flags_are_circles);
    tcase_add_test(tc, test_polylines_and_gaps);
    suite_add_tcase(s, tc);
    tc = tcase_create("ranges");
    tcase_add_test(tc, test_constant_and_single);
    tcase_add_test(tc, test_huge_values);
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
