/*
 * check_log.c - log.c: a line is "YYYY-MM-DDTHH:MM:SS.mmmZ level: message\n", one
 * write each; lines above the level are dropped; under the journal (JOURNAL_STREAM
 * naming stderr) a line is "<prio>message" with the syslog priority, and a
 * JOURNAL_STREAM naming another file is ignored; a client's bytes in a message are
 * escaped (no control byte, no malformed UTF-8 reaches the log); an over-long message
 * is cut to one line. stderr is redirected to a temporary file for each test.
 */
#include <check.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static char file[64];
static int saved = -1, out = -1;

static void setup(void)
{
    snprintf(file, sizeof(file), "/tmp/check_log.XXXXXX");
    out = mkstemp(file);
    ck_assert_int_ge(out, 0);
    saved = dup(STDERR_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(out, STDERR_FILENO), STDERR_FILENO);
    unsetenv("JOURNAL_STREAM");
}

static void teardown(void)
{
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(out);
    unlink(file);
}

/* What was logged since the last call (NUL-terminated, static). */
static const char *logged(void)
{
    static char buf[16384];
    static off_t from;
    ssize_t n = pread(out, buf, sizeof(buf) - 1, from);

    if (from == 0 && n < 0)
        n = 0;
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    from += n;
    return buf;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t rx;

    ck_assert_int_eq(regcomp(&rx, pattern, REG_EXTENDED | REG_NOSUB), 0);
    ck_assert_msg(regexec(&rx, text, 0, NULL, 0) == 0, "'%s' does not match /%s/", text,
                  pattern);
    regfree(&rx);
}

START_TEST(test_line_format_and_levels)
{
    ad_log_init(AD_LOG_WARN);
    ck_assert_int_eq(ad_log_level(), AD_LOG_WARN);
    ad_log_warn("hello %d", 42);
    assert_matches(logged(),
                   "^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
                   "\\.[0-9]{3}Z warn: hello 42\n$");
    ad_log_error("bad");
    assert_matches(logged(), "^[^ ]+Z error: bad\n$");
    ad_log_info("dropped");
    ad_log_debug("dropped too");
    ck_assert_str_eq(logged(), "");
    ad_log_set_level(AD_LOG_DEBUG);
    ck_assert_int_eq(ad_log_level(), AD_LOG_DEBUG);
    ad_log_info("one");
    ad_log_debug("two");
    assert_matches(logged(), "^[^ ]+Z info: one\n[^ ]+Z debug: two\n$");
    ad_log_set_level(AD_LOG_ERROR);
    ad_log_warn("quiet");
    ck_assert_str_eq(logged(), "");
}
END_TEST

START_TEST(test_journal_priorities)
{
    struct stat st;
    char js[64];

    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    ad_log_init(AD_LOG_DEBUG);
    ad_log_error("e");
    ad_log_warn("w");
    ad_log_info("i");
    ad_log_debug("d");
    ck_assert_str_eq(logged(), "<3>e\n<4>w\n<6>i\n<7>d\n");
    /* another stream's: not ours (stderr was redirected): plain lines */
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", js, 1);
    ad_log_init(AD_LOG_INFO);
    ad_log_info("plain");
    assert_matches(logged(), "^[^ ]+Z info: plain\n$");
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev + 1,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    ad_log_init(AD_LOG_INFO);
    ad_log_info("plain");
    assert_matches(logged(), "^[^ ]+Z info: plain\n$");
    setenv("JOURNAL_STREAM", "garbage", 1);
    ad_log_init(AD_LOG_INFO);
    ad_log_info("plain");
    assert_matches(logged(), "^[^ ]+Z info: plain\n$");
}
END_TEST

START_TEST(test_client_bytes_escaped)
{
    const char *l;

    ad_log_init(AD_LOG_INFO);
    ad_log_warn("key %s end", "a\x1b[31mb\xff\\c\nd\xc3\xa9");
    l = logged();
    ck_assert_ptr_null(strchr(l, '\x1b'));
    ck_assert_ptr_null(strchr(l, '\xff'));
    ck_assert_msg(strstr(l, "key a\\x1b[31mb\\xff\\\\c\\x0ad\xc3\xa9 end\n") != NULL, "%s", l);
    ck_assert_int_eq(strchr(l, '\n') - l, (long)strlen(l) - 1); /* one line */
}
END_TEST

START_TEST(test_long_message_one_line)
{
    char big[6000];
    const char *l;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ad_log_init(AD_LOG_INFO);
    ad_log_info("%s", big);
    l = logged();
    ck_assert_uint_le(strlen(l), 4096);
    ck_assert_uint_gt(strlen(l), 2000);
    ck_assert_int_eq(strchr(l, '\n') - l, (long)strlen(l) - 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_line_format_and_levels);
    tcase_add_test(tc, test_journal_priorities);
    tcase_add_test(tc, test_client_bytes_escaped);
    tcase_add_test(tc, test_long_message_one_line);
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
