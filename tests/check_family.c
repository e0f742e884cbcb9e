/*
 * check_family.c - shared models (family.c and the detector's member mode): members share
 * one network and keep their own state; pooled training over members' histories learns
 * what they share, and a joined member scores from it (a clean signal stays quiet, a spike
 * is flagged); a series that arrives after the family was trained joins without a
 * training of its own; a member's blob holds no network and loads only onto one; member
 * bytes exclude the shared network; deferred steps run in batches give the plain path's
 * results.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "detector.h"
#include "family.h"
#include "net.h"

#include "detcfg.h"

static void config(ad_detector_config *c)
{
    plain_defaults(c);
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

/* Results of the plain and the deferred path agree: bit for bit (exact), or within tol. */
static void same_result(const ad_result *a, const ad_result *b, int exact, int m, int t)
{
    if (exact) {
        ck_assert_msg(memcmp(&a->predicted, &b->predicted, sizeof(double)) == 0 &&
                          memcmp(&a->error, &b->error, sizeof(double)) == 0 &&
                          memcmp(&a->score, &b->score, sizeof(float)) == 0 &&
                          memcmp(&a->raw_score, &b->raw_score, sizeof(float)) == 0,
                      "member %d t %d: deferred %.17g/%.9g, plain %.17g/%.9g", m, t, b->predicted,
                      (double)b->score, a->predicted, (double)a->score);
    } else if (!isnan(a->predicted) || !isnan(b->predicted)) {
        ck_assert_msg(fabs(a->predicted - b->predicted) <= 1e-6 * fmax(1.0, fabs(a->predicted)) &&
                          fabs(a->error - b->error) <= 1e-5 &&
                          fabs((double)a->score - b->score) <= 1e-6,
                      "member %d t %d: deferred %.17g/%.9g, plain %.17g/%.9g", m, t, b->predicted,
                      (double)b->score, a->predicted, (double)a->score);
    }
    ck_assert_int_eq(a->flagged, b->flagged);
    ck_assert_int_eq(a->hit, b->hit);
    ck_assert_int_eq(a->anomalous, b->anomalous);
    ck_assert_int_eq(a->warming_up, b->warming_up);
    ck_assert_int_eq(a->train_due, b->train_due);
}

/*
 * The same stream through two twin families: one observed plainly, the other with
 * ad_detector_observe_defer and the rounds' steps run by ad_detector_step_batch (with
 * spikes, refused values, rounds whose steps are never batched so the next observe runs
 * them, members listed twice, a save and a re-join while steps are pending). _i = 1: the
 * reference product kernel (the batch adds in the step's order): every result bit for
 * bit. _i = 0: OpenBLAS and the fused kernels, whose sums differ in the last bits
 * (net.h): predictions within 1e-6 relative, and every flag the same.
 */
START_TEST(test_deferred_steps_equal_observe)
{
    enum { N = 7 };
    ad_detector_config c;
    ad_detector *pa[N], *pb[N], *list[2 * N];
    ad_detector_batch b = {0};
    ad_net *na, *nb;
    ad_result ra, rb;
    char err[256];
    int t, flagged = 0, batched = 0;

    ad_blas_set_reference(_i);
    config(&c);
    na = family_net(&c);
    nb = family_net(&c);
    for (int m = 0; m < N; m++) {
        pa[m] = member(&c, na);
        pb[m] = member(&c, nb);
    }
    for (t = 0; t < 300; t++) {
        int listed = 0;

        if (t == 160) { /* the same training for both: A's weights copied into B */
            train_family(na, &c, pa, N);
            ck_assert_int_eq(ad_net_copy_params(nb, na), 0);
            for (int m = 0; m < N; m++)
                ck_assert_msg(ad_detector_join(pb[m], err, sizeof(err)) == 0, "%s", err);
        }
        for (int m = 0; m < N; m++) {
            double v = signal(m, t) + (t % 37 == 0 && m == t % N ? 80.0 : 0.0);
            int rc;

            if (t == 200 && m == 3)
                v = NAN; /* refused both ways; a pending step stays pending */
            rc = ad_detector_observe(pa[m], t, v, &ra);
            ck_assert_int_eq(ad_detector_observe_defer(pb[m], t, v, &rb) == 1, rc == 0 && t >= 160);
            if (ad_detector_pending(pb[m]))
                list[listed++] = pb[m];
            if (t % 5 == 0 && ad_detector_pending(pb[m]))
                list[listed++] = pb[m]; /* listed twice: steps once */
            if (rc < 0)
                continue;
            same_result(&ra, &rb, _i, m, t);
            flagged += ra.flagged;
        }
        if (t == 250) { /* a pending member saved: its blob holds the stepped state */
            size_t la = ad_detector_blob_size(pa[1]), lb = ad_detector_blob_size(pb[1]);
            uint8_t *ba = malloc(la), *bb = malloc(lb);

            ck_assert(ba && bb && la == lb);
            ck_assert(ad_detector_pending(pb[1]));
            ck_assert_int_eq(ad_detector_save(pa[1], ba, la, &la, err, sizeof(err)), 0);
            ck_assert_int_eq(ad_detector_save(pb[1], bb, lb, &lb, err, sizeof(err)), 0);
            ck_assert(!ad_detector_pending(pb[1]));
            if (_i)
                ck_assert_mem_eq(ba, bb, la);
            free(ba);
            free(bb);
        }
        if (t == 270) /* joined again while pending: the step runs first */
            for (int m = 0; m < N; m++) {
                ck_assert_int_eq(ad_detector_join(pa[m], err, sizeof(err)), 0);
                ck_assert_int_eq(ad_detector_join(pb[m], err, sizeof(err)), 0);
                ck_assert(!ad_detector_pending(pb[m]));
            }
        if (t % 3 == 1)
            continue; /* not batched: the next observe steps each on its own */
        ad_detector_step_batch(list, listed, &b);
        batched += listed > 0;
        for (int m = 0; m < N; m++)
            ck_assert(!ad_detector_pending(pb[m]));
    }
    ck_assert_int_gt(batched, 50);
    ck_assert_int_gt(flagged, 2); /* the spikes after training */
    ad_detector_batch_free(&b);
    for (int m = 0; m < N; m++) {
        ad_detector_free(pa[m]);
        ad_detector_free(pb[m]);
    }
    ad_net_free(na);
    ad_net_free(nb);
    ad_blas_set_reference(0);
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
    tcase_add_loop_test(tc, test_deferred_steps_equal_observe, 0, 2);
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
