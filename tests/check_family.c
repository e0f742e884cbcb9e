/*
 * check_family.c - shared models (family.c and the detector's member mode): members share
 * one network and keep their own state; pooled training over members' histories learns
 * what they share, and a joined member scores from it (a clean signal stays quiet, a spike
 * is flagged); a series that arrives after the family was trained joins without a
 * training of its own; a member's blob holds no network and loads only onto one; member
 * bytes exclude the shared network.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detector.h"
#include "family.h"
#include "net.h"

static void config(ad_detector_config *c)
{
    ad_detector_defaults(c);
    c->hidden = 8;
    c->window = 16;
    c->batch = 8;
    c->history = 200;
    c->train_after = 100;
    c->epochs = 40;
    c->patience = 6;
    c->lr = 0.02f;
    c->scorer.min_samples = 30;
    c->scorer.window = 200;
}

static ad_net *family_net(const ad_detector_config *c)
{
    ad_net_config nc = {c->kind, c->layers, ad_detector_input_size(c->features), c->hidden, 1};
    ad_net *net = NULL;
    char err[256];

    ck_assert_msg(ad_net_create(&nc, c->seed, &net, err, sizeof(err)) == 0, "%s", err);
    return net;
}

static ad_detector *member(const ad_detector_config *c, ad_net *net)
{
    ad_detector *d = NULL;
    char err[256];

    ck_assert_msg(ad_detector_create_member(c, net, &d, err, sizeof(err)) == 0, "%s", err);
    return d;
}

/* Member m's signal: a sine of period 20 with its own phase and level. */
static double signal(int m, int t)
{
    return 100.0 * m + 5.0 * sin(2 * M_PI * t / 20.0 + 0.7 * m);
}

static void train_family(ad_net *net, const ad_detector_config *c, ad_detector **ms, int n)
{
    ad_family_job *job = NULL;
    char err[256];
    int windows, members;

    ck_assert_msg(ad_family_snapshot(net, c, ms, n, 8, 256, &job, err, sizeof(err)) == 0, "%s",
                  err);
    ck_assert_msg(ad_family_job_run(job, err, sizeof(err)) == 0, "%s", err);
    ad_family_job_result(job, &windows, &members, NULL, NULL, NULL);
    ck_assert_int_eq(members, n);
    ck_assert_int_ge(windows, n * 8);
    ck_assert_int_eq(ad_family_install(net, job, err, sizeof(err)), 0);
    ad_family_job_free(job);
    for (int m = 0; m < n; m++)
        ck_assert_msg(ad_detector_join(ms[m], err, sizeof(err)) == 0, "%s", err);
}

START_TEST(test_pooled_training_and_scores)
{
    enum { N = 6 };
    ad_detector_config c;
    ad_detector *ms[N];
    ad_net *net;
    ad_result r;
    char err[256];
    int t, due = 0;

    config(&c);
    net = family_net(&c);
    for (int m = 0; m < N; m++)
        ms[m] = member(&c, net);
    /* Not enough history yet: joining is refused. */
    ck_assert_int_eq(ad_detector_join(ms[0], err, sizeof(err)), -AD_EINVAL);
    for (t = 0; t < 160; t++)
        for (int m = 0; m < N; m++) {
            ck_assert_int_eq(ad_detector_observe(ms[m], t, signal(m, t), &r), 0);
            due |= r.train_due;
        }
    ck_assert_int_eq(due, 1);
    train_family(net, &c, ms, N);
    for (int m = 0; m < N; m++) {
        ck_assert(ad_detector_trained(ms[m]));
        ck_assert_uint_eq(ad_detector_get_stats(ms[m])->trainings, 1);
    }
    /* Joined members are never due on their own; a clean continuation stays quiet and the
     * network's predictions are close; a spike is flagged. */
    double se = 0;
    int n = 0;
    for (; t < 260; t++)
        for (int m = 0; m < N; m++) {
            ck_assert_int_eq(ad_detector_observe(ms[m], t, signal(m, t), &r), 0);
            ck_assert_int_eq(r.train_due, 0);
            ck_assert_int_eq(r.warming_up, 0);
            ck_assert_msg(!r.flagged, "member %d flagged a clean value at %d", m, t);
            se += (r.predicted - r.value) * (r.predicted - r.value);
            n++;
        }
    ck_assert_msg(sqrt(se / n) < 0.5, "rmse %g (the signal's amplitude is 5)", sqrt(se / n));
    ck_assert_int_eq(ad_detector_observe(ms[2], t, signal(2, t) + 60, &r), 0);
    ck_assert(r.flagged);
    for (int m = 0; m < N; m++)
        ad_detector_free(ms[m]);
    ad_net_free(net);
}
END_TEST

/* A series that arrives after its family was trained joins once it has two windows of
 * history, without any training of its own, and predicts well at once. */
START_TEST(test_late_member_joins_without_training)
{
    enum { N = 4 };
    ad_detector_config c;
    ad_detector *ms[N], *late;
    ad_net *net;
    ad_result r;
    char err[256];
    double se = 0;
    int n = 0;

    config(&c);
    net = family_net(&c);
    for (int m = 0; m < N; m++)
        ms[m] = member(&c, net);
    for (int t = 0; t < 160; t++)
        for (int m = 0; m < N; m++)
            ck_assert_int_eq(ad_detector_observe(ms[m], t, signal(m, t), &r), 0);
    train_family(net, &c, ms, N);
    late = member(&c, net);
    for (int t = 0; t < 2 * c.window; t++)
        ck_assert_int_eq(ad_detector_observe(late, t, signal(7, t), &r), 0);
    ck_assert_msg(ad_detector_join(late, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(ad_detector_get_stats(late)->trainings, 1);
    for (int t = 2 * c.window; t < 2 * c.window + 60; t++) {
        ck_assert_int_eq(ad_detector_observe(late, t, signal(7, t), &r), 0);
        ck_assert_int_eq(r.warming_up, 0);
        se += (r.predicted - r.value) * (r.predicted - r.value);
        n++;
    }
    ck_assert_msg(sqrt(se / n) < 2.0, "late member rmse %g", sqrt(se / n));
    for (int m = 0; m < N; m++)
        ad_detector_free(ms[m]);
    ad_detector_free(late);
    ad_net_free(net);
}
END_TEST

/* Members become due with two windows of history (train_after >= 2 * window): a family
 * snapshot must already use them then (it once skipped members below 2 windows + 1 value,
 * failed, and was asked again with every sample). */
START_TEST(test_snapshot_at_two_windows)
{
    enum { N = 4 };
    ad_detector_config c;
    ad_detector *ms[N];
    ad_family_job *job = NULL;
    ad_net *net;
    ad_result r;
    char err[256];
    int windows, members;

    config(&c);
    net = family_net(&c);
    for (int m = 0; m < N; m++) {
        ms[m] = member(&c, net);
        for (int t = 0; t < 2 * c.window; t++)
            ck_assert_int_eq(ad_detector_observe(ms[m], t, signal(m, t), &r), 0);
    }
    ck_assert_msg(ad_family_snapshot(net, &c, ms, N, 4, 256, &job, err, sizeof(err)) == 0, "%s",
                  err);
    ad_family_job_result(job, &windows, &members, NULL, NULL, NULL);
    ck_assert_int_eq(members, N);
    ck_assert_int_eq(windows, N); /* one window each: 2 * window - 1 steps */
    ad_family_job_free(job);
    for (int m = 0; m < N; m++)
        ad_detector_free(ms[m]);
    ad_net_free(net);
}
END_TEST

START_TEST(test_member_blob_and_bytes)
{
    ad_detector_config c;
    ad_detector *a, *own, *b = NULL, *x = NULL;
    ad_net *net;
    ad_result ra, rb;
    char err[256];
    size_t len, olen;
    void *buf, *obuf;

    config(&c);
    net = family_net(&c);
    a = member(&c, net);
    ck_assert_int_eq(ad_detector_create(&c, &own, err, sizeof(err)), 0);
    ck_assert_uint_eq(ad_detector_bytes(own) - ad_detector_bytes(a), ad_net_bytes(net));
    for (int t = 0; t < 150; t++) {
        ck_assert_int_eq(ad_detector_observe(a, t, signal(1, t), &ra), 0);
        ck_assert_int_eq(ad_detector_observe(own, t, signal(1, t), &ra), 0);
    }
    ck_assert_int_eq(ad_detector_join(a, err, sizeof(err)), 0);
    len = ad_detector_blob_size(a);
    olen = ad_detector_blob_size(own);
    ck_assert_uint_lt(len, olen);
    buf = malloc(len);
    obuf = malloc(olen);
    ck_assert_int_eq(ad_detector_save(a, buf, len, &len, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_detector_save(own, obuf, olen, &olen, err, sizeof(err)), 0);
    /* A member's blob needs its family's network, and only a member's loads onto one. */
    ck_assert_int_eq(ad_detector_load(buf, len, &x, err, sizeof(err)), -AD_EFORMAT);
    ck_assert_ptr_null(x);
    ck_assert_int_eq(ad_detector_load_member(obuf, olen, net, &x, err, sizeof(err)),
                     -AD_EFORMAT);
    ck_assert_ptr_null(x);
    ck_assert_msg(ad_detector_load_member(buf, len, net, &b, err, sizeof(err)) == 0, "%s", err);
    ck_assert(ad_detector_is_member(b));
    for (int t = 150; t < 200; t++) {
        ck_assert_int_eq(ad_detector_observe(a, t, signal(1, t), &ra), 0);
        ck_assert_int_eq(ad_detector_observe(b, t, signal(1, t), &rb), 0);
        ck_assert_msg(memcmp(&ra, &rb, sizeof(ra)) == 0, "continuation differs at %d", t);
    }
    free(buf);
    free(obuf);
    ad_detector_free(a);
    ad_detector_free(b);
    ad_detector_free(own);
    ad_net_free(net);
}
END_TEST

START_TEST(test_member_shape_refused)
{
    ad_detector_config c;
    ad_detector *d = NULL;
    ad_net *net;
    char err[256];

    config(&c);
    net = family_net(&c);
    c.hidden = 9;
    ck_assert_int_eq(ad_detector_create_member(&c, net, &d, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_null(d);
    config(&c);
    c.model = AD_MODEL_SEQ2SEQ;
    ck_assert_int_eq(ad_detector_create_member(&c, net, &d, err, sizeof(err)), -AD_EINVAL);
    ck_assert_int_eq(ad_detector_create_member(&c, NULL, &d, err, sizeof(err)), -AD_EINVAL);
    ad_net_free(net);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("family");
    TCase *tc = tcase_create("family");

    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_pooled_training_and_scores);
    tcase_add_test(tc, test_late_member_joins_without_training);
    tcase_add_test(tc, test_snapshot_at_two_windows);
    tcase_add_test(tc, test_member_blob_and_bytes);
    tcase_add_test(tc, test_member_shape_refused);
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
