/*
 * check_persist.c - the daemon's series in the store (daemon/state/persist.c), on a real
 * SQLite file in a temporary directory: the restore at start with every row it does not
 * restore counted by reason (a damaged blob, changed settings, an ignore rule or a full
 * table, a key that is not UTF-8, a family no rule makes any more) and the rows it drops
 * from the store for it; what a restored series keeps from its row; checkpoints of the
 * changed series in batches of store.batch_bytes, one out at a time, deletes of evicted
 * series, a failed write retried whole; persistence without a store. Rows are planted with the
 * store's own door (store.h); the restore runs through the daemon (core_harness.h), the checkpoints
 * through persist.h on a loop of the test's. A plain restart is check_daemon.c's
 * test_store_restart.
 */
#include <check.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "core_harness.h"
#include "log.h"
#include "families.h"
#include "state/persist.h"
#include "state/store.h"

/* ---- a store to start from ---- */

/* Runs a daemon on dir's store a.db with `extra` and n_keys series of 20 samples each,
 * then stops it (the final checkpoint writes them). */
static void make_store(const char *dir, const char *const *keys, int n_keys)
{
    char extra[512], line[128];
    ch_daemon h;

    snprintf(extra, sizeof(extra), "store: {enabled: true, path: %s/a.db}\n", dir);
    ch_start_in(&h, dir, extra);
    for (int k = 0; k < n_keys; k++)
        for (int i = 0; i < 20; i++) {
            snprintf(line, sizeof(line), "%s %d %d", keys[k], i % 7, 1700000000 + 10 * i);
            ck_assert_int_eq(ch_line(&h, AD_PROTO_GRAPHITE, line), 1);
        }
    ch_stop(&h, 1);
}

static ad_store *open_store(const char *dir)
{
    char path[320], err[256];
    ad_store *s;
    int moved = 0;

    snprintf(path, sizeof(path), "%s/a.db", dir);
    ck_assert_msg(ad_store_open(path, &s, &moved, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(moved, 0);
    return s;
}

/* A copy of one row of the store (its blob malloc'd). */
typedef struct copied {
    const char *want;
    ad_store_row row;
    void *blob;
} copied;

static int copy_row(void *ctx, const ad_store_row *row)
{
    copied *c = ctx;

    if (strcmp(row->key, c->want))
        return 0;
    c->row = *row;
    c->blob = malloc(row->blob_len);
    memcpy(c->blob, row->blob, row->blob_len);
    c->row.blob = c->blob;
    c->row.key = NULL;
    return 0;
}

static void get_row(ad_store *s, const char *key, copied *c)
{
    char err[256];

    c->want = key;
    c->blob = NULL;
    ck_assert_int_ge(ad_store_load(s, copy_row, c, NULL, err, sizeof(err)), 0);
    ck_assert_msg(c->blob != NULL, "no row %s", key);
}

/* Puts `row` under `key` (its blob cut to blob_len when not 0). */
static void put_as(ad_store *s, const ad_store_row *row, const char *key, size_t blob_len)
{
    ad_store_batch *b = ad_store_batch_new();
    ad_store_row r = *row;
    char err[256];

    r.key = key;
    r.key_len = strlen(key);
    if (blob_len)
        r.blob_len = blob_len;
    ck_assert_int_eq(ad_store_batch_put(b, &r), 0);
    ck_assert_msg(ad_store_write(s, b, err, sizeof(err)) == 0, "%s", err);
    ad_store_batch_free(b);
}

static int has_row(ad_store *s, const char *key)
{
    copied c = {.want = key};
    char err[256];

    ck_assert_int_ge(ad_store_load(s, copy_row, &c, NULL, err, sizeof(err)), 0);
    free(c.blob);
    return c.blob != NULL;
}

static const ad_series *series_of(ch_daemon *h, const char *key)
{
    return ad_series_table_find(ad_daemon_series(h->d), key, strlen(key));
}

static void rm_dir(const char *dir)
{
    char cmd[320];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- the restore ---- */

START_TEST(test_restore_skipped)
{
    static const char *const keys[] = {"a", "b", "ign.x", "set.x"};
    char dir[] = "/tmp/check_persist.XXXXXX", extra[512];
    const ad_persist_stats *ps;
    ch_daemon h;
    ad_store *s;
    copied a;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_store(dir, keys, 4);
    s = open_store(dir);
    get_row(s, "a", &a);
    put_as(s, &a.row, "bad\xff", 0);                /* not UTF-8 */
    put_as(s, &a.row, "dmg", a.row.blob_len / 2);   /* a damaged blob */
    put_as(s, &a.row, AD_FAMILY_PREFIX "gone*", 0); /* no rule makes this family now */
    ck_assert_int_eq(ad_store_count(s), 7);
    ad_store_close(s);

    snprintf(extra, sizeof(extra),
             "store: {enabled: true, path: %s/a.db}\n"
             "series:\n  - {match: \"ign.*\", ignore: true}\n  - {match: \"set.*\", hidden: 9}\n",
             dir);
    ch_start_in(&h, dir, extra);
    ps = ad_persist_get_stats(ad_daemon_persist(h.d));
    ck_assert_uint_eq(ps->restored, 2);
    ck_assert_uint_eq(ps->restore_skipped[AD_SKIP_DAMAGED], 1);
    ck_assert_uint_eq(ps->restore_skipped[AD_SKIP_SETTINGS], 2); /* set.x, the family */
    ck_assert_uint_eq(ps->restore_skipped[AD_SKIP_NO_ROOM], 1);  /* ign.x */
    ck_assert_uint_eq(ps->restore_skipped[AD_SKIP_BAD_KEY], 1);
    ck_assert_ptr_nonnull(series_of(&h, "a"));
    ck_assert_ptr_nonnull(series_of(&h, "b"));
    ck_assert_ptr_null(series_of(&h, "dmg"));
    ck_assert_ptr_null(series_of(&h, "set.x"));
    ck_assert_uint_eq(ad_series_table_size(ad_daemon_series(h.d)), 2);
    ch_stop(&h, 1);

    /* the final checkpoint deleted what will never restore; the rest stays */
    s = open_store(dir);
    ck_assert(!has_row(s, "bad\xff"));
    ck_assert(!has_row(s, "ign.x"));
    ck_assert(!has_row(s, AD_FAMILY_PREFIX "gone*"));
    ck_assert(has_row(s, "dmg") && has_row(s, "set.x") && has_row(s, "a"));
    ck_assert_int_eq(ad_store_count(s), 4);
    ad_store_close(s);
    free(a.blob);
    rm_dir(dir);
}
END_TEST

START_TEST(test_restore_no_room)
{
    static const char *const keys[] = {"a", "b", "c"};
    char dir[] = "/tmp/check_persist.XXXXXX", extra[512];
    const ad_persist_stats *ps;
    ch_daemon h;
    ad_store *s;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_store(dir, keys, 3);
    snprintf(extra, sizeof(extra), "max_series: 1\nstore: {enabled: true, path: %s/a.db}\n", dir);
    ch_start_in(&h, dir, extra);
    ps = ad_persist_get_stats(ad_daemon_persist(h.d));
    ck_assert_uint_eq(ps->restored, 1);
    ck_assert_uint_eq(ps->restore_skipped[AD_SKIP_NO_ROOM], 2);
    ck_assert_ptr_nonnull(series_of(&h, "a")); /* key order */
    ch_stop(&h, 1);
    s = open_store(dir);
    ck_assert_int_eq(ad_store_count(s), 3); /* kept for a larger table */
    ad_store_close(s);
    rm_dir(dir);
}
END_TEST

/* What a restored series keeps from its row. */
START_TEST(test_restore_fields)
{
    static const char *const keys[] = {"a"};
    char dir[] = "/tmp/check_persist.XXXXXX", extra[512];
    ch_daemon h;
    ad_store *s;
    const ad_series *x;
    copied a;
    double t0;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_store(dir, keys, 1);
    s = open_store(dir);
    get_row(s, "a", &a);
    a.row.protocol = AD_PROTO_JSONL;
    a.row.created = 1234.5;
    a.row.last_seen = 1500;
    a.row.anomalies = 7;
    put_as(s, &a.row, "j", 0);
    ad_store_close(s);

    snprintf(extra, sizeof(extra), "store: {enabled: true, path: %s/a.db}\n", dir);
    t0 = ad_wall_now();
    ch_start_in(&h, dir, extra);
    x = series_of(&h, "j");
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(x->proto, AD_PROTO_JSONL);
    ck_assert(x->created == 1234.5);
    ck_assert_uint_eq(x->anomalies, 7);
    ck_assert(x->last_seen >= t0); /* idle time counts from the restart */
    ck_assert(x->fingerprint == a.row.fingerprint);
    ck_assert_int_eq(x->dirty, 0);
    ck_assert_ptr_null(x->family);
    ck_assert_uint_eq(ad_detector_get_stats(x->det)->samples, 20);
    ck_assert_int_eq(series_of(&h, "a")->proto, AD_PROTO_GRAPHITE);
    ch_stop(&h, 0);
    free(a.blob);
}
END_TEST

/* incident_z, incident_ref and departure are not part of the settings' fingerprint: a
 * series saved with other values restores, and takes the configuration's
 * (ad_detector_set_incident). */
START_TEST(test_restore_takes_incident)
{
    static const char *const keys[] = {"a"};
    char dir[] = "/tmp/check_persist.XXXXXX", extra[512];
    const ad_detector_config *c;
    ch_daemon h;
    const ad_series *x;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_store(dir, keys, 1);
    snprintf(extra, sizeof(extra),
             "store: {enabled: true, path: %s/a.db}\n"
             "series:\n  - {match: \"a\", incident_z: 2.5, incident_ref: 50, departure: 3}\n",
             dir);
    ch_start_in(&h, dir, extra);
    ck_assert_uint_eq(ad_persist_get_stats(ad_daemon_persist(h.d))->restored, 1);
    x = series_of(&h, "a");
    ck_assert_ptr_nonnull(x);
    ck_assert_uint_eq(ad_detector_get_stats(x->det)->samples, 20);
    c = ad_detector_get_config(x->det);
    ck_assert(c->incident_z == 2.5f);
    ck_assert_int_eq(c->incident_ref, 50);
    ck_assert(c->departure == 3.0f);
    ch_stop(&h, 0);
    rm_dir(dir);
}
END_TEST

/* ---- checkpoints, through persist.h ---- */

typedef struct world {
    uv_loop_t loop;
    ad_config cfg;
    ad_series_table *series;
    ad_fams fams;
    ad_persist *p;
    int done;
} world;

static void open_world(world *w, const char *dir, const char *extra)
{
    char yaml[1024], err[512];

    snprintf(yaml, sizeof(yaml), "state_dir: %s\nstore: {enabled: true, path: %s/a.db%s}\n", dir,
             dir, extra);
    ck_assert_msg(ad_config_parse(yaml, strlen(yaml), "t.yaml", &w->cfg, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_int_eq(uv_loop_init(&w->loop), 0);
    ck_assert_int_eq(ad_series_table_create(w->cfg.max_series, &w->series), 0);
    ad_fams_init(&w->fams, &w->cfg, w->series, NULL);
    ck_assert_int_eq(ad_persist_open(&w->loop, &w->cfg, w->series, &w->fams, &w->p), 0);
    w->done = 0;
}

static void close_world(world *w)
{
    ad_persist_close(w->p);
    ad_series_table_free(w->series);
    ad_fam_free_all(&w->fams);
    ad_config_free(&w->cfg);
    ck_assert_int_eq(uv_loop_close(&w->loop), 0);
}

static void on_done(void *arg)
{
    ((world *)arg)->done++;
}

static void mark_all_dirty(world *w)
{
    ad_series_iter it;
    ad_series *s;

    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(w->series, &it)))
        s->dirty = 1;
}

START_TEST(test_checkpoint_batches)
{
    static const char *const keys[] = {"a", "b", "c", "d", "e"};
    char dir[] = "/tmp/check_persist.XXXXXX";
    const ad_store_stats *ss;
    world w;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_store(dir, keys, 5);
    open_world(&w, dir, ", batch_bytes: 1024"); /* below one blob: a series a batch */
    ck_assert_int_eq(ad_persist_has_store(w.p), 1);
    ck_assert_uint_eq(ad_persist_get_stats(w.p)->restored, 5);
    ss = ad_persist_store_stats(w.p);
    ck_assert_ptr_nonnull(ss);

    /* nothing changed: done at once, nothing written */
    ck_assert_int_eq(ad_persist_checkpoint(w.p, on_done, &w), 0);
    ck_assert_int_eq(w.done, 1);
    ck_assert_int_eq(ad_persist_busy(w.p), 0);
    ck_assert_uint_eq(ss->writes, 0);

    /* five changed series: five batches, one after another, done once at the end */
    mark_all_dirty(&w);
    ck_assert_int_eq(ad_persist_checkpoint(w.p, on_done, &w), 0);
    ck_assert_int_eq(ad_persist_busy(w.p), 1);
    ck_assert_int_eq(ad_persist_checkpoint(w.p, on_done, &w), -AD_EFULL); /* one out */
    ck_assert_uint_eq(ad_persist_get_stats(w.p)->checkpoints_skipped, 1);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(w.done, 2);
    ck_assert_uint_eq(ss->writes, 5);
    ck_assert_uint_eq(ss->rows_put, 5);
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(ad_series_table_find(w.series, keys[k], 1)->dirty, 0);

    /* a large batch_bytes: one batch */
    w.cfg.store_batch_bytes = 1 << 30;
    mark_all_dirty(&w);
    ck_assert_int_eq(ad_persist_checkpoint(w.p, on_done, &w), 0);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(w.done, 3);
    ck_assert_uint_eq(ss->writes, 6);
    ck_assert_uint_eq(ss->rows_put, 10);
    close_world(&w);
    rm_dir(dir);
}
END_TEST

/* when_idle's fn runs in place of done, once the pass is over. */
START_TEST(test_when_idle_and_forget)
{
    static const char *const keys[] = {"a", "b", "c"};
    char dir[] = "/tmp/check_persist.XXXXXX";
    const ad_store_stats *ss;
    ad_store *s;
    world w;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_store(dir, keys, 3);
    open_world(&w, dir, ", batch_bytes: 1024");
    ss = ad_persist_store_stats(w.p);
    ad_persist_when_idle(w.p, on_done, &w); /* none out: at once */
    ck_assert_int_eq(w.done, 1);
    mark_all_dirty(&w);
    ck_assert_int_eq(ad_persist_checkpoint(w.p, NULL, NULL), 0);
    ad_persist_when_idle(w.p, on_done, &w);
    ck_assert_int_eq(w.done, 1);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(w.done, 2);
    ck_assert_uint_eq(ss->writes, 3); /* the whole pass before it */

    /* an evicted series: deleted at the next checkpoint */
    {
        ad_series *b = ad_series_table_find(w.series, "b", 1);

        ad_series_table_remove(w.series, b);
        ad_series_free(b);
    }
    ad_persist_forget(w.p, "b");
    ck_assert_int_eq(ad_persist_checkpoint(w.p, on_done, &w), 0);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(w.done, 3);
    ck_assert_uint_eq(ss->rows_deleted, 1);
    ck_assert_uint_eq(ss->writes, 4);
    close_world(&w);
    s = open_store(dir);
    ck_assert_int_eq(ad_store_count(s), 2);
    ck_assert(!has_row(s, "b"));
    ad_store_close(s);
    rm_dir(dir);
}
END_TEST

/* A failed write (the file locked by another writer past the busy timeout): its series
 * stay changed and its deletes stay queued, so the next checkpoint writes them. */
START_TEST(test_failed_write)
{
    static const char *const keys[] = {"a", "b", "c"};
    char dir[] = "/tmp/check_persist.XXXXXX", path[320];
    const ad_store_stats *ss;
    sqlite3 *other;
    ad_series *c;
    ad_store *s;
    world w;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    make_store(dir, keys, 3);
    open_world(&w, dir, "");
    ss = ad_persist_store_stats(w.p);
    mark_all_dirty(&w);
    c = ad_series_table_find(w.series, "c", 1);
    ad_series_table_remove(w.series, c);
    ad_series_free(c);
    ad_persist_forget(w.p, "c");

    snprintf(path, sizeof(path), "%s/a.db", dir);
    ck_assert_int_eq(sqlite3_open(path, &other), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_eq(ad_persist_checkpoint(w.p, on_done, &w), 0);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(w.done, 1);
    ck_assert_uint_eq(ss->write_errors, 1);
    ck_assert_uint_eq(ss->writes, 0);
    ck_assert_int_eq(ad_series_table_find(w.series, "a", 1)->dirty, 1);
    ck_assert_int_eq(ad_series_table_find(w.series, "b", 1)->dirty, 1);
    ck_assert_int_eq(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);

    ck_assert_int_eq(ad_persist_checkpoint(w.p, on_done, &w), 0);
    uv_run(&w.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(w.done, 2);
    ck_assert_uint_eq(ss->writes, 1);
    ck_assert_uint_eq(ss->rows_put, 2);
    ck_assert_uint_eq(ss->rows_deleted, 1);
    ck_assert_int_eq(ad_series_table_find(w.series, "a", 1)->dirty, 0);
    close_world(&w);
    s = open_store(dir);
    ck_assert_int_eq(ad_store_count(s), 2);
    ck_assert(!has_row(s, "c"));
    ad_store_close(s);
    rm_dir(dir);
}
END_TEST

/* ---- without a store ---- */

START_TEST(test_no_store)
{
    char dir[] = "/tmp/check_persist.XXXXXX";
    world w;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* a store that cannot open (its directory is missing): the daemon runs without */
    open_world(&w, dir, "/missing/dir");
    ck_assert_int_eq(ad_persist_has_store(w.p), 0);
    ck_assert_ptr_null(ad_persist_store_stats(w.p));
    ck_assert_int_eq(ad_persist_checkpoint(w.p, on_done, &w), 0);
    ck_assert_int_eq(w.done, 1);
    ck_assert_int_eq(ad_persist_busy(w.p), 0);
    ad_persist_forget(w.p, "x");
    close_world(&w);
    /* NULL is a persistence without a store */
    ck_assert_int_eq(ad_persist_checkpoint(NULL, on_done, &w), 0);
    ck_assert_int_eq(w.done, 2);
    ck_assert_int_eq(ad_persist_has_store(NULL), 0);
    ck_assert_int_eq(ad_persist_busy(NULL), 0);
    ck_assert_uint_eq(ad_persist_get_stats(NULL)->restored, 0);
    ck_assert_ptr_null(ad_persist_store_stats(NULL));
    ad_persist_close(NULL);
    rm_dir(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("persist");
    TCase *tc;

    tc = tcase_create("restore");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_restore_skipped);
    tcase_add_test(tc, test_restore_no_room);
    tcase_add_test(tc, test_restore_fields);
    tcase_add_test(tc, test_restore_takes_incident);
    suite_add_tcase(s, tc);
    tc = tcase_create("checkpoint");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_checkpoint_batches);
    tcase_add_test(tc, test_when_idle_and_forget);
    tcase_add_test(tc, test_failed_write);
    tcase_add_test(tc, test_no_store);
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
