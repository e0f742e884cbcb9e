/*
 * check_tagset.c - tagset.c: tags inserted in name order whatever the order given (a
 * prefix first), duplicate names and the 65th tag refused with the set unchanged, another
 * order given by the caller, and the canonical key `name;k=v;...` with bare values, its
 * bound exact to the byte and the buffer untouched when it does not fit.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/tagset.h"

/* ---- helpers ---- */

static int add(ad_tagset *ts, const char *name, const char *value)
{
    return ad_tagset_add(ts, name, strlen(name), value, value ? strlen(value) : 0);
}

/* The key of ts after name, which must fit a 256-byte buffer. */
static const char *key_of(const ad_tagset *ts, const char *name)
{
    static char kb[256];
    size_t n = 0;
    ck_assert_int_eq(ad_tagset_key(ts, name, strlen(name), kb, sizeof(kb), &n), 0);
    ck_assert_uint_eq(n, strlen(kb));
    return kb;
}

/* ---- order ---- */

START_TEST(test_sorted)
{
    ad_tagset ts;
    ad_tagset_init(&ts, NULL);
    ck_assert_int_eq(add(&ts, "c", "3"), 0);
    ck_assert_int_eq(add(&ts, "a", "1"), 0);
    ck_assert_int_eq(add(&ts, "b", "2"), 0);
    ck_assert_int_eq(add(&ts, "ab", "4"), 0); /* after its prefix "a" */
    ck_assert_int_eq(ts.n, 4);
    ck_assert_str_eq(key_of(&ts, "m"), "m;a=1;ab=4;b=2;c=3");
    /* names compared as bytes, not as C strings: a high byte sorts last */
    ck_assert_int_eq(add(&ts, "\xc3\xa9", "5"), 0);
    ck_assert_int_eq(add(&ts, "Z", "6"), 0);
    ck_assert_str_eq(key_of(&ts, "m"), "m;Z=6;a=1;ab=4;b=2;c=3;\xc3\xa9=5");
}
END_TEST

START_TEST(test_slices)
{
    /* names and values are slices: only their lengths count, not a NUL after them */
    const char *line = "bb=2,a=1";
    ad_tagset ts;
    ad_tagset_init(&ts, NULL);
    ck_assert_int_eq(ad_tagset_add(&ts, line, 2, line + 3, 1), 0);
    ck_assert_int_eq(ad_tagset_add(&ts, line + 5, 1, line + 7, 1), 0);
    ck_assert_int_eq(ad_tagset_add(&ts, line, 1, NULL, 0), 0); /* "b", bare */
    ck_assert_str_eq(key_of(&ts, "req"), "req;a=1;b=;bb=2");
}
END_TEST

START_TEST(test_empty)
{
    ad_tagset ts;
    ad_tagset_init(&ts, NULL);
    ck_assert_int_eq(ts.n, 0);
    ck_assert_str_eq(key_of(&ts, "cpu.user"), "cpu.user");
}
END_TEST

/* The names' lengths alone: an order the caller gives. */
static int by_length(const ad_tag *a, const ad_tag *b)
{
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

START_TEST(test_own_order)
{
    ad_tagset ts;
    ad_tagset_init(&ts, by_length);
    ck_assert_int_eq(add(&ts, "ccc", "3"), 0);
    ck_assert_int_eq(add(&ts, "a", "1"), 0);
    ck_assert_int_eq(add(&ts, "bb", "2"), 0);
    ck_assert_int_eq(add(&ts, "z", "9"), -AD_PE_TAGS); /* the same as "a" in this order */
    ck_assert_str_eq(key_of(&ts, "m"), "m;a=1;bb=2;ccc=3");
}
END_TEST

/* ---- refusals ---- */

START_TEST(test_duplicates)
{
    ad_tagset ts;
    ad_tagset_init(&ts, NULL);
    ck_assert_int_eq(add(&ts, "b", "1"), 0);
    ck_assert_int_eq(add(&ts, "a", "1"), 0);
    ck_assert_int_eq(add(&ts, "c", "1"), 0);
    ck_assert_int_eq(add(&ts, "b", "2"), -AD_PE_TAGS);  /* in the middle */
    ck_assert_int_eq(add(&ts, "a", "1"), -AD_PE_TAGS);  /* first, same value too */
    ck_assert_int_eq(add(&ts, "c", NULL), -AD_PE_TAGS); /* last */
    ck_assert_int_eq(ts.n, 3);
    ck_assert_str_eq(key_of(&ts, "m"), "m;a=1;b=1;c=1");
}
END_TEST

START_TEST(test_full)
{
    ad_tagset ts;
    char names[AD_TAGSET_MAX + 1][8];
    ad_tagset_init(&ts, NULL);
    for (int t = AD_TAGSET_MAX - 1; t >= 0; t--) { /* reversed: the sort has work */
        snprintf(names[t], sizeof(names[t]), "t%02d", t);
        ck_assert_int_eq(add(&ts, names[t], "v"), 0);
    }
    ck_assert_int_eq(ts.n, AD_TAGSET_MAX);
    snprintf(names[AD_TAGSET_MAX], sizeof(names[0]), "t%02d", AD_TAGSET_MAX);
    ck_assert_int_eq(add(&ts, names[AD_TAGSET_MAX], "v"), -AD_PE_TAGS);
    ck_assert_int_eq(ts.n, AD_TAGSET_MAX);
    for (int t = 0; t < AD_TAGSET_MAX; t++) {
        ck_assert_uint_eq(ts.tag[t].name_len, 3);
        ck_assert(!memcmp(ts.tag[t].name, names[t], 3));
    }
}
END_TEST

START_TEST(test_key_bound)
{
    ad_tagset ts;
    char kb[32];
    size_t n = 99;
    ad_tagset_init(&ts, NULL);
    add(&ts, "bb", "22");
    add(&ts, "a", "");
    /* "m;a=;bb=22" is 10 bytes: fits 11 with its NUL, not 10 */
    ck_assert_int_eq(ad_tagset_key(&ts, "m", 1, kb, 11, &n), 0);
    ck_assert_str_eq(kb, "m;a=;bb=22");
    ck_assert_uint_eq(n, 10);
    memset(kb, 'z', sizeof(kb));
    n = 99;
    ck_assert_int_eq(ad_tagset_key(&ts, "m", 1, kb, 10, &n), -AD_PE_KEY_TOO_LONG);
    ck_assert_uint_eq(n, 99);
    for (size_t i = 0; i < sizeof(kb); i++)
        ck_assert_int_eq(kb[i], 'z');
    ck_assert_int_eq(ad_tagset_key(&ts, "m", 1, kb, 0, &n), -AD_PE_KEY_TOO_LONG);
    ad_tagset_init(&ts, NULL);
    ck_assert_int_eq(ad_tagset_key(&ts, "m", 1, kb, 1, &n), -AD_PE_KEY_TOO_LONG);
    ck_assert_int_eq(ad_tagset_key(&ts, "m", 1, kb, 2, &n), 0);
    ck_assert_str_eq(kb, "m");
    ck_assert_int_eq(ad_tagset_key(&ts, "mx", 1, kb, 2, &n), 0); /* name is a slice too */
    ck_assert_str_eq(kb, "m");
}
END_TEST

static Suite *tagset_suite(void)
{
    Suite *s = suite_create("tagset");
    TCase *tc = tcase_create("order");
    tcase_add_test(tc, test_sorted);
    tcase_add_test(tc, test_slices);
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_own_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("refuse");
    tcase_add_test(tc, test_duplicates);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_key_bound);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tagset_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
