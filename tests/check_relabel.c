/*
 * check_relabel.c - relabel.c: name globs, label matchers (=, !=, absent labels as ""),
 * selectors with several matchers, quoted values, __name__, lists (any pattern), and
 * each syntax error.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "ingest/relabel.h"

static const ad_label node_labels[] = {{"instance", "a:9100"}, {"job", "node"}, {"mode", "idle"}};

/* Whether the one pattern p matches name with labels l[0..n). */
static int m1(const char *p, const char *name, const ad_label *l, size_t n)
{
    ad_relabel *r;
    char err[256];
    int hit;

    ck_assert_msg(ad_relabel_compile(&p, 1, &r, err, sizeof(err)) == 0, "%s", err);
    hit = ad_relabel_match(r, name, l, n);
    ad_relabel_free(r);
    return hit;
}

static int node(const char *p)
{
    return m1(p, "node_cpu_seconds_total", node_labels, 3);
}

START_TEST(test_name_globs)
{
    ck_assert(node("node_*"));
    ck_assert(node("node_cpu_seconds_total"));
    ck_assert(node("*_total"));
    ck_assert(node("node_cpu_[a-z]econds_total"));
    ck_assert(!node("go_*"));
    ck_assert(!node("node")); /* whole-name match */
    ck_assert(node("\"node_*\"")); /* a quoted glob */
}
END_TEST

START_TEST(test_matchers)
{
    ck_assert(node("job=node"));
    ck_assert(node("job=no*"));
    ck_assert(!node("job=prometheus"));
    ck_assert(node("job!=prometheus"));
    ck_assert(!node("job!=node"));
    ck_assert(node("absent="));          /* a missing label is "" */
    ck_assert(!node("absent!="));
    ck_assert(node("job!="));            /* has a job label */
    ck_assert(node("instance=*:9100"));
    ck_assert(node("__name__=node_cpu_*"));
    ck_assert(!node("__name__!=node_cpu_*"));
    ck_assert(node("job=\"node\""));
}
END_TEST

START_TEST(test_selectors)
{
    ck_assert(node("node_*{job=node}"));
    ck_assert(node("node_*{job=node,mode!=user}"));
    ck_assert(node("node_*{ job=node , mode=idle }"));
    ck_assert(!node("node_*{job=node,mode=user}"));
    ck_assert(!node("go_*{job=node}"));
    ck_assert(node("{job=node}"));
    ck_assert(node("{}"));
    ck_assert(node("{instance=\"a:9100\",job=\"n*\"}"));
    /* quoted values hold , } and blanks; \" and \\ inside */
    {
        static const ad_label l[] = {{"path", "a,b} c"}, {"q", "say \"hi\" \\o/"}};

        ck_assert(m1("m{path=\"a,b} c\"}", "m", l, 2));
        /* unquoting turns \\\\ into \\, which fnmatch reads as one literal \ */
        ck_assert(m1("m{q=\"say \\\"hi\\\" \\\\\\\\o/\"}", "m", l, 2));
        ck_assert(!m1("m{path=\"a,b\"}", "m", l, 2));
    }
}
END_TEST

START_TEST(test_lists)
{
    const char *pats[] = {"go_*", "job=node"};
    ad_relabel *r;

    ck_assert_int_eq(ad_relabel_compile(pats, 2, &r, NULL, 0), 0);
    ck_assert_int_eq(ad_relabel_count(r), 2);
    ck_assert(ad_relabel_match(r, "go_goroutines", NULL, 0));
    ck_assert(ad_relabel_match(r, "x", node_labels, 3));
    ck_assert(!ad_relabel_match(r, "x", NULL, 0));
    ad_relabel_free(r);
    ck_assert_int_eq(ad_relabel_compile(NULL, 0, &r, NULL, 0), 0);
    ck_assert(!ad_relabel_match(r, "x", NULL, 0)); /* an empty list matches nothing */
    ck_assert_int_eq(ad_relabel_count(r), 0);
    ad_relabel_free(r);
    ck_assert(!ad_relabel_match(NULL, "x", NULL, 0));
    ad_relabel_free(NULL);
}
END_TEST

START_TEST(test_errors)
{
    static const char *const bad[] = {
        "",            /* empty */
        "m{job=node",  /* not closed */
        "m{job}",      /* no operator */
        "m{=x}",       /* no label name */
        "m{9a=x}",     /* a label name cannot start with a digit */
        "m{a=\"x}",    /* quote not closed */
        "m{a=\"x\"b}", /* junk after a quoted value */
        "m{a=1 b=2}",  /* no comma */
        "m{a=1}x",     /* junk after } */
        "a=\"x\"y",    /* junk after a quoted matcher value */
        "\"m\"x",      /* junk after a quoted glob */
    };
    char err[256];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_msg(ad_relabel_check(bad[i], err, sizeof(err)) == -AD_EINVAL, "accepted '%s'",
                      bad[i]);
        ck_assert_msg(strstr(err, "pattern '") == err, "message '%s'", err);
    }
    ck_assert_int_eq(ad_relabel_check("node_*{job=node}", err, sizeof(err)), 0);
    {
        const char *pats[] = {"ok", "m{"};
        ad_relabel *r = NULL;

        ck_assert_int_eq(ad_relabel_compile(pats, 2, &r, err, sizeof(err)), -AD_EINVAL);
        ck_assert_ptr_null(r);
        ck_assert_ptr_nonnull(strstr(err, "'m{'"));
    }
    {
        char many[1024] = "m{";

        for (int i = 0; i < 33; i++)
            strcat(many, i ? ",a=1" : "a=1");
        strcat(many, "}");
        ck_assert_int_eq(ad_relabel_check(many, err, sizeof(err)), -AD_EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "more than 32"));
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("relabel");
    TCase *tc;

    tc = tcase_create("match");
    tcase_add_test(tc, test_name_globs);
    tcase_add_test(tc, test_matchers);
    tcase_add_test(tc, test_selectors);
    tcase_add_test(tc, test_lists);
    suite_add_tcase(s, tc);
    tc = tcase_create("syntax");
    tcase_add_test(tc, test_errors);
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
