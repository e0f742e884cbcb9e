/*
 * check_families.c - the daemon's shared families (daemon/families.c): the registry over a
 * configuration's `shared: true` rules (one family per rule, found again by glob and
 * settings), the storage of a family's network under `weights`, its network in the store
 * (saved, restored only by a rule with the same glob and settings), the wait after a
 * failed training; then through a real daemon (core_harness.h): members counted as they
 * arrive, one family training when a member is due, every member with enough history
 * joining after it, a late member joining on its own history without a training, members'
 * steps run in batches; a joined member restored only with its family's network.
 * models/family.c (the shared network's training) is check_family.c.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "core_harness.h"
#include "log.h"
#include "state/persist.h"
#include "state/store.h"
#include "families.h"
#include "fingerprint.h"

#define RULES                                                                                      \
    "series:\n"                                                                                    \
    "  - {match: \"fam.*\", shared: true, hidden: 8}\n"                                            \
    "  - {match: \"other.*\", shared: true, hidden: 4}\n"                                          \
    "  - {match: \"own.*\", hidden: 8}\n"

static void parse(ad_config *cfg, const char *yaml)
{
    char err[512];

    ck_assert_msg(ad_config_parse(yaml, strlen(yaml), "t.yaml", cfg, err, sizeof(err)) == 0, "%s",
                  err);
}

/* ---- the registry ---- */

START_TEST(test_registry)
{
    ad_config cfg;
    ad_fams fs;
    ad_fam *a, *b;

    parse(&cfg, RULES);
    ad_fams_init(&fs, &cfg, NULL, NULL);
    ck_assert_uint_eq(ad_fam_count(&fs), 0);
    a = ad_fam_get(&fs, 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_str_eq(a->name, AD_FAMILY_PREFIX "fam.*");
    ck_assert(a->fingerprint == ad_fingerprint(&cfg.rules[0].det, 1));
    ck_assert(a->fingerprint != ad_fingerprint(&cfg.rules[0].det, 0));
    ck_assert_int_eq(a->det.hidden, 8);
    ck_assert_int_eq(a->trained, 0);
    ck_assert_uint_eq(a->members, 0);
    ck_assert_uint_eq(a->trainings, 0);
    /* the family's entry in the trainer's queue names it and points back */
    ck_assert_str_eq(a->pseudo.key, a->name);
    ck_assert_ptr_eq(a->pseudo.family, a);
    ck_assert_int_eq(a->pseudo.rule, -1);
    ck_assert_ptr_eq(ad_fam_get(&fs, 0), a); /* found again, not a second one */
    b = ad_fam_get(&fs, 1);
    ck_assert_ptr_ne(a, b);
    ck_assert_str_eq(b->name, AD_FAMILY_PREFIX "other.*");
    ck_assert_int_eq(b->det.hidden, 4);
    ck_assert_uint_eq(ad_fam_count(&fs), 2);
    ck_assert_ptr_eq(fs.head, b); /* newest first */
    ck_assert_ptr_eq(b->next, a);
    ad_fam_free_all(&fs);
    ck_assert_ptr_null(fs.head);
    ck_assert_uint_eq(ad_fam_count(&fs), 0);
    ad_config_free(&cfg);
}
END_TEST

/* A rule whose settings changed (a reload) is another family: the old one is not reused. */
START_TEST(test_registry_settings)
{
    ad_config cfg;
    ad_fams fs;
    ad_fam *a;

    parse(&cfg, RULES);
    ad_fams_init(&fs, &cfg, NULL, NULL);
    a = ad_fam_get(&fs, 0);
    cfg.rules[0].det.hidden = 6;
    ck_assert_ptr_ne(ad_fam_get(&fs, 0), a);
    ck_assert_uint_eq(ad_fam_count(&fs), 2);
    ck_assert_int_eq(fs.head->det.hidden, 6);
    ad_fam_free_all(&fs);
    ad_config_free(&cfg);
}
END_TEST

START_TEST(test_storage)
{
    ck_assert_int_eq(ad_fam_storage(AD_W_F32), AD_NET_FP32);
    ck_assert_int_eq(ad_fam_storage(AD_W_F16), AD_NET_FP16);
    ck_assert_int_eq(ad_fam_storage(AD_W_I8), AD_NET_FP16); /* int8 would buy nothing */
}
END_TEST

START_TEST(test_failed_waits)
{
    ad_config cfg;
    ad_fams fs;
    ad_fam *f;

    parse(&cfg, RULES);
    ad_fams_init(&fs, &cfg, NULL, NULL);
    f = ad_fam_get(&fs, 0);
    f->samples_since = 40;
    f->members = 8;
    ad_fam_failed(f);
    ck_assert_uint_eq(f->retry_at, 48); /* every member has had one more value */
    f->members = 0;
    ad_fam_failed(f);
    ck_assert_uint_eq(f->retry_at, 41);
    ad_fam_free_all(&fs);
    ad_config_free(&cfg);
}
END_TEST

/* ---- the store ---- */

START_TEST(test_save_restore)
{
    ad_config cfg;
    ad_fams fs, back;
    ad_fam *f;
    void *blob, *again;
    size_t len, len2;
    char err[256];
    uint64_t fp;

    parse(&cfg, RULES);
    ad_fams_init(&fs, &cfg, NULL, NULL);
    f = ad_fam_get(&fs, 0);
    fp = f->fingerprint;
    blob = ad_fam_save(f, &len);
    ck_assert_ptr_nonnull(blob);
    ck_assert_uint_gt(len, 100);

    ad_fams_init(&back, &cfg, NULL, NULL);
    /* another glob, other settings, a damaged blob: refused, nothing made trained */
    ck_assert_int_eq(
        ad_fam_restore(&back, AD_FAMILY_PREFIX "nope.*", fp, blob, len, err, sizeof(err)), -1);
    ck_assert_msg(strstr(err, "no shared rule"), "%s", err);
    ck_assert_int_eq(
        ad_fam_restore(&back, AD_FAMILY_PREFIX "fam.*", fp ^ 1, blob, len, err, sizeof(err)), -1);
    ck_assert_int_eq(ad_fam_restore(&back, AD_FAMILY_PREFIX "own.*",
                                    ad_fingerprint(&cfg.rules[2].det, 1), blob, len, err,
                                    sizeof(err)),
                     -1); /* not a shared rule */
    ck_assert_uint_eq(ad_fam_count(&back), 0);
    ck_assert_int_eq(
        ad_fam_restore(&back, AD_FAMILY_PREFIX "fam.*", fp, blob, len / 2, err, sizeof(err)), -1);
    ck_assert(!back.head || !back.head->trained);
    /* the same glob and settings: restored trained, the network as saved */
    ck_assert_int_eq(
        ad_fam_restore(&back, AD_FAMILY_PREFIX "fam.*", fp, blob, len, err, sizeof(err)), 0);
    ck_assert_uint_eq(ad_fam_count(&back), 1);
    ck_assert_int_eq(back.head->trained, 1);
    ck_assert_str_eq(back.head->name, AD_FAMILY_PREFIX "fam.*");
    again = ad_fam_save(back.head, &len2);
    ck_assert_uint_eq(len2, len);
    ck_assert_int_eq(memcmp(again, blob, len), 0);
    free(again);
    free(blob);
    ad_fam_free_all(&back);
    ad_fam_free_all(&fs);
    ad_config_free(&cfg);
}
END_TEST

/* ---- through the daemon ---- */

#define FAM_RULE                                                                                   \
    "series:\n"                                                                                    \
    "  - {match: \"fam.*\", shared: true, history: 64, train_after: 64, train_every: 0,"           \
    " prime: 32, window: 16, hidden: 8, epochs: 5}\n"

static const ad_series *series_of(ch_daemon *h, const char *key)
{
    return ad_series_table_find(ad_daemon_series(h->d), key, strlen(key));
}

static double wave(int t, double phase)
{
    return sin(0.3 * t + phase);
}

/* Runs the loop until the family has trained `n` times (at most 60 s). */
static void wait_trainings(ch_daemon *h, const ad_fam *f, uint64_t n)
{
    for (int i = 0; i < 60000 && f->trainings < n; i++) {
        uv_run(&h->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    ck_assert_uint_eq(f->trainings, n);
}

START_TEST(test_members_train_join)
{
    ch_daemon h;
    const ad_fam *f;
    char line[96];
    int t, i;

    ch_start(&h, FAM_RULE);
    for (t = 0; t < 40; t++) {
        for (i = 0; i < 4; i++) {
            snprintf(line, sizeof(line), "fam.%d %.6f %d", i, wave(t, i), 1700000000 + t);
            ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, line), 1);
        }
        snprintf(line, sizeof(line), "solo %.6f %d", wave(t, 0), 1700000000 + t);
        ch_line(&h, AD_PROTO_GRAPHITE, line);
    }
    f = ad_daemon_families(h.d)->head;
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(ad_fam_count(ad_daemon_families(h.d)), 1);
    ck_assert_uint_eq(f->members, 4);
    ck_assert_ptr_eq(series_of(&h, "fam.2")->family, f);
    ck_assert_ptr_null(series_of(&h, "solo")->family);
    ck_assert_uint_eq(f->samples_since, 160);
    ck_assert_int_eq(f->trained, 0);
    ck_assert_uint_eq(f->trainings, 0);
    /* members are due at train_after (64): the family trains once, for all of them */
    for (; t < 80; t++)
        for (i = 0; i < 4; i++) {
            snprintf(line, sizeof(line), "fam.%d %.6f %d", i, wave(t, i), 1700000000 + t);
            ch_line(&h, AD_PROTO_GRAPHITE, line);
        }
    wait_trainings(&h, f, 1);
    ck_assert_int_eq(f->trained, 1);
    ck_assert_int_eq(f->dirty, 1);
    for (i = 0; i < 4; i++) {
        snprintf(line, sizeof(line), "fam.%d", i);
        ck_assert_msg(ad_detector_trained(series_of(&h, line)->det), "%s did not join", line);
    }
    /* a late member joins on two windows of its own history, without a training */
    for (t = 0; t < 31; t++) {
        snprintf(line, sizeof(line), "fam.late %.6f %d", wave(t, 2.5), 1700000000 + t);
        ch_line(&h, AD_PROTO_GRAPHITE, line);
    }
    ck_assert_uint_eq(f->members, 5);
    ck_assert(!ad_detector_trained(series_of(&h, "fam.late")->det));
    snprintf(line, sizeof(line), "fam.late %.6f %d", wave(t, 2.5), 1700000000 + t);
    ch_line(&h, AD_PROTO_GRAPHITE, line);
    ck_assert(ad_detector_trained(series_of(&h, "fam.late")->det));
    ck_assert_uint_eq(f->trainings, 1);
    /* joined members' steps wait for the family's batch: each flush runs one */
    {
        uint64_t b0 = f->batches, m0 = f->batched;

        static const char *const keys[] = {"fam.0", "fam.1", "fam.2", "fam.3"};

        ad_daemon_received(h.d, uv_hrtime());
        for (i = 0; i < 4; i++) {
            ad_sample s = {keys[i], strlen(keys[i]), 1700000100, wave(100, i)};

            ad_daemon_sample(h.d, AD_PROTO_GRAPHITE, &s);
        }
        ad_daemon_flush(h.d);
        ck_assert_uint_eq(f->batches, b0 + 1);
        ck_assert_uint_eq(f->batched, m0 + 4);
        ck_assert_uint_eq(f->npending, 0);
    }
    ch_stop(&h, 0);
}
END_TEST

/* Members' rounds t0..t1-1 (fam.0 .. fam.3), each value a line. */
static void rounds(ch_daemon *h, int t0, int t1)
{
    char line[96];

    for (int t = t0; t < t1; t++)
        for (int i = 0; i < 4; i++) {
            snprintf(line, sizeof(line), "fam.%d %.6f %d", i, wave(t, i), 1700000000 + t);
            ck_assert_int_eq(ch_line(h, AD_PROTO_GRAPHITE, line), 1);
        }
}

/* A joined member's saved state needs its family's network: restored with it, skipped
 * (settings) without it; an unjoined member needs none. */
START_TEST(test_member_restore)
{
    char dir[] = "/tmp/check_core.XXXXXX", extra[512], path[320], err[256];
    const ad_persist_stats *ps;
    ad_store_batch *b;
    ad_store *st;
    ch_daemon h;
    int moved;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(extra, sizeof(extra), "store: {enabled: true, path: %s/a.db}\n" FAM_RULE, dir);
    ch_start_in(&h, dir, extra);
    rounds(&h, 0, 80);
    wait_trainings(&h, ad_daemon_families(h.d)->head, 1);
    ch_line(&h, AD_PROTO_GRAPHITE, "fam.new 1 1700000000"); /* not joined */
    ch_stop(&h, 1);

    ch_start_in(&h, dir, extra);
    ps = ad_persist_get_stats(ad_daemon_persist(h.d));
    ck_assert_uint_eq(ps->restored, 5);
    ck_assert_uint_eq(ad_fam_count(ad_daemon_families(h.d)), 1);
    ck_assert_int_eq(ad_daemon_families(h.d)->head->trained, 1);
    ck_assert_uint_eq(ad_daemon_families(h.d)->head->members, 5);
    ck_assert(ad_detector_trained(series_of(&h, "fam.1")->det));
    ck_assert_ptr_eq(series_of(&h, "fam.1")->family, ad_daemon_families(h.d)->head);
    ch_stop(&h, 1);

    /* the family's row gone: the joined members cannot go on */
    snprintf(path, sizeof(path), "%s/a.db", dir);
    ck_assert_int_eq(ad_store_open(path, &st, &moved, err, sizeof(err)), 0);
    b = ad_store_batch_new();
    ad_store_batch_delete(b, AD_FAMILY_PREFIX "fam.*", strlen(AD_FAMILY_PREFIX "fam.*"));
    ck_assert_int_eq(ad_store_write(st, b, err, sizeof(err)), 0);
    ad_store_batch_free(b);
    ad_store_close(st);
    ch_start_in(&h, dir, extra);
    ps = ad_persist_get_stats(ad_daemon_persist(h.d));
    ck_assert_uint_eq(ps->restored, 1);
    ck_assert_uint_eq(ps->restore_skipped[AD_SKIP_SETTINGS], 4);
    ck_assert_ptr_nonnull(series_of(&h, "fam.new"));
    ck_assert_ptr_null(series_of(&h, "fam.1"));
    ck_assert_int_eq(ad_daemon_families(h.d)->head->trained, 0);
    ch_stop(&h, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("families");
    TCase *tc;

    tc = tcase_create("registry");
    tcase_add_test(tc, test_registry);
    tcase_add_test(tc, test_registry_settings);
    tcase_add_test(tc, test_storage);
    tcase_add_test(tc, test_failed_waits);
    suite_add_tcase(s, tc);
    tc = tcase_create("store");
    tcase_add_test(tc, test_save_restore);
    suite_add_tcase(s, tc);
    tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_members_train_join);
    tcase_add_test(tc, test_member_restore);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr;

    ad_log_init(AD_LOG_ERROR);
    sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
