/*
 * check_store.c - the store (store_db.c, store_write.c) on real files in a temporary
 * directory under /tmp: create and reopen in WAL mode; rows round trip with exact bytes
 * and fields; deletes; a later entry for a key wins within a batch; a batch is atomic
 * when it fails half way (disk full via max_page_count, a database locked by another
 * connection, a read-only connection) and a retry succeeds; a garbage file, a damaged
 * file and another schema version are moved aside; rows with wrong column types are
 * skipped and counted; integrity check; the protocol stored by name, rows with the
 * legacy numbers read back as the same protocols, unknown names kept as -1; the async
 * write on a real libuv loop; a 10 000-row batch. Tests run as root, so failures are
 * made through SQLite rather than file modes.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "ingest/protocols.h"
#include "net.h"
#include "state/store.h"

/* store_db.c's test-only hook: runs sql on the store's own connection. */
int ad_store_test_exec(ad_store *s, const char *sql, char *err, size_t errlen);

static char dir[96];
static char dbpath[160];

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Each test gets a directory under root; main() removes root when all have run, as a
 * failed assertion in a forked test exits without the checked teardown. */
static char root[64];

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "%s/XXXXXX", root);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(dbpath, sizeof(dbpath), "%s/state.db", dir);
}

static void teardown(void)
{
    rm_rf(dir);
}

/* --- helpers ------------------------------------------------------------------------ */

static ad_store *open_ok(void)
{
    ad_store *s = NULL;
    char err[512];
    int moved = -1;

    ck_assert_msg(ad_store_open(dbpath, &s, &moved, err, sizeof(err)) == 0, "%s", err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(moved, 0);
    return s;
}

static void write_ok(ad_store *s, const ad_store_batch *b)
{
    char err[512];

    ck_assert_msg(ad_store_write(s, b, err, sizeof(err)) == 0, "%s", err);
}

/* A second connection to the same file. */
static sqlite3 *conn(const char *path)
{
    sqlite3 *db;

    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static void sql(sqlite3 *db, const char *q)
{
    char *msg = NULL;

    ck_assert_msg(sqlite3_exec(db, q, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", q, msg ? msg : "?");
}

static long long sql_int(sqlite3 *db, const char *q)
{
    sqlite3_stmt *st;
    long long v;

    ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The first text column of q, copied into out. */
static void sql_text(sqlite3 *db, const char *q, char *out, size_t len)
{
    sqlite3_stmt *st;

    ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

static ad_store_row mkrow(const char *key, const void *blob, size_t len, uint64_t fp)
{
    ad_store_row r;

    memset(&r, 0, sizeof(r));
    r.key = key;
    r.key_len = strlen(key);
    r.blob = blob;
    r.blob_len = len;
    r.fingerprint = fp;
    r.protocol = (int)(fp % 5);
    r.created = 1700000000.25 + (double)fp;
    r.last_seen = 1700000100.5 + (double)fp;
    r.anomalies = fp * 3;
    return r;
}

static void put(ad_store_batch *b, const char *key, const void *blob, size_t len, uint64_t fp)
{
    ad_store_row r = mkrow(key, blob, len, fp);

    ck_assert_int_eq(ad_store_batch_put(b, &r), 0);
}

static void del(ad_store_batch *b, const char *key)
{
    ck_assert_int_eq(ad_store_batch_delete(b, key, strlen(key)), 0);
}

/* Rows copied out of ad_store_load. */
#define MAXROWS 64
typedef struct loaded {
    int n;
    int stop_after; /* fn returns 1 after this many (0: never) */
    char key[MAXROWS][64];
    unsigned char blob[MAXROWS][512];
    size_t blob_len[MAXROWS];
    ad_store_row row[MAXROWS];
} loaded;

static int collect(void *ctx, const ad_store_row *row)
{
    loaded *l = ctx;

    ck_assert_int_lt(l->n, MAXROWS);
    ck_assert_uint_lt(row->key_len, sizeof(l->key[0]));
    ck_assert_uint_le(row->blob_len, sizeof(l->blob[0]));
    ck_assert_uint_eq(strlen(row->key), row->key_len);
    memcpy(l->key[l->n], row->key, row->key_len + 1);
    memcpy(l->blob[l->n], row->blob, row->blob_len);
    l->blob_len[l->n] = row->blob_len;
    l->row[l->n] = *row;
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static long load_all(ad_store *s, loaded *l, long *skipped)
{
    char err[512];
    long n;

    memset(l, 0, sizeof(*l));
    n = ad_store_load(s, collect, l, skipped, err, sizeof(err));
    ck_assert_msg(n >= 0, "%s", err);
    ck_assert_int_eq(n, l->n);
    return n;
}

/* Index of key in l, or -1. */
static int find(const loaded *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->key[i], key) == 0)
            return i;
    return -1;
}

static void assert_row(const loaded *l, const char *key, const void *blob, size_t len, uint64_t fp)
{
    ad_store_row want = mkrow(key, blob, len, fp);
    int i = find(l, key);

    ck_assert_msg(i >= 0, "row %s missing", key);
    ck_assert_uint_eq(l->blob_len[i], len);
    ck_assert_int_eq(memcmp(l->blob[i], blob, len), 0);
    ck_assert_uint_eq(l->row[i].fingerprint, want.fingerprint);
    ck_assert_int_eq(l->row[i].protocol, want.protocol);
    ck_assert(l->row[i].created == want.created);
    ck_assert(l->row[i].last_seen == want.last_seen);
    ck_assert_uint_eq(l->row[i].anomalies, want.anomalies);
}

/* The one file in dir whose name starts with "state.db.bad-" and has the suffix. */
static int find_bad(const char *suffix, char *out, size_t len)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name), k = strlen(suffix);

        if (strncmp(e->d_name, "state.db.bad-", 13) != 0)
            continue;
        if (k ? (n < k || strcmp(e->d_name + n - k, suffix) != 0)
              : (strchr(e->d_name + 13, '-') != NULL))
            continue;
        snprintf(out, len, "%s/%s", dir, e->d_name);
        found++;
    }
    closedir(d);
    return found;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static size_t read_file(const char *path, void *p, size_t n)
{
    FILE *f = fopen(path, "rb");
    size_t got;

    ck_assert_ptr_nonnull(f);
    got = fread(p, 1, n, f);
    fclose(f);
    return got;
}

static const unsigned char blob_a[] = {0x00, 0x01, 0xff, 0x00, 0x7f, 0x80};
static const unsigned char blob_b[] = "blob with\0a NUL inside";

/* --- open --------------------------------------------------------------------------- */

START_TEST(test_create_reopen)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    char mode[32], walpath[256];
    sqlite3 *db;
    loaded l;

    ck_assert_int_eq(ad_store_count(s), 0);
    put(b, "cpu.load", blob_a, sizeof(blob_a), 1);
    put(b, "mem.free", blob_b, sizeof(blob_b), 2);
    write_ok(s, b);
    ck_assert_int_eq(ad_store_count(s), 2);
    db = conn(dbpath); /* while the store is open */
    sql_text(db, "PRAGMA journal_mode", mode, sizeof(mode));
    ck_assert_str_eq(mode, "wal");
    ck_assert_int_eq(sql_int(db, "PRAGMA user_version"), 1);
    ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM series"), 2);
    sqlite3_close(db);
    ad_store_close(s);
    ck_assert_int_eq(access(dbpath, F_OK), 0);
    snprintf(walpath, sizeof(walpath), "%s-wal", dbpath);
    ck_assert_msg(access(walpath, F_OK) < 0, "WAL left after close"); /* checkpointed */

    s = open_ok();
    ck_assert_int_eq(ad_store_count(s), 2);
    ck_assert_int_eq(load_all(s, &l, NULL), 2);
    assert_row(&l, "cpu.load", blob_a, sizeof(blob_a), 1);
    assert_row(&l, "mem.free", blob_b, sizeof(blob_b), 2);
    db = conn(dbpath);
    sql_text(db, "PRAGMA journal_mode", mode, sizeof(mode));
    ck_assert_str_eq(mode, "wal");
    sqlite3_close(db);
    ad_store_close(s);
    ad_store_batch_free(b);
    ad_store_close(NULL);
}
END_TEST

START_TEST(test_open_fails)
{
    ad_store *s = (ad_store *)&s;
    char err[512] = "", path[256];
    int moved = -1;

    snprintf(path, sizeof(path), "%s/no/such/dir/state.db", dir);
    ck_assert_int_eq(ad_store_open(path, &s, &moved, err, sizeof(err)), -AD_EIO);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(moved, 0);
    ck_assert_msg(strstr(err, "SQLITE_CANTOPEN"), "%s", err);
    ck_assert_int_eq(ad_store_open("", &s, NULL, err, sizeof(err)), -AD_EINVAL);
}
END_TEST

/* --- rows --------------------------------------------------------------------------- */

START_TEST(test_round_trip)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    unsigned char big[500];
    const ad_store_stats *st;
    ad_store_row r;
    loaded l;

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (unsigned char)(i * 7 + 3);
    put(b, "web-01;cpu=idle", big, sizeof(big), 10);
    put(b, "a", blob_a, sizeof(blob_a), 0);
    put(b, "empty blob", "", 0, 4);
    put(b, "caf\xc3\xa9 \xe2\x82\xac", blob_b, sizeof(blob_b), 123456789);
    r = mkrow("max", blob_a, 3, 0);
    r.fingerprint = UINT64_MAX;
    r.anomalies = UINT64_MAX - 1;
    r.protocol = 4;
    ck_assert_int_eq(ad_store_batch_put(b, &r), 0);
    ck_assert_uint_eq(ad_store_batch_size(b), 5);
    write_ok(s, b);

    ck_assert_int_eq(load_all(s, &l, NULL), 5);
    /* key order */
    ck_assert_str_eq(l.key[0], "a");
    ck_assert_str_eq(l.key[1], "caf\xc3\xa9 \xe2\x82\xac");
    ck_assert_str_eq(l.key[2], "empty blob");
    ck_assert_str_eq(l.key[3], "max");
    ck_assert_str_eq(l.key[4], "web-01;cpu=idle");
    assert_row(&l, "web-01;cpu=idle", big, sizeof(big), 10);
    assert_row(&l, "a", blob_a, sizeof(blob_a), 0);
    assert_row(&l, "empty blob", "", 0, 4);
    assert_row(&l, "caf\xc3\xa9 \xe2\x82\xac", blob_b, sizeof(blob_b), 123456789);
    ck_assert_uint_eq(l.row[3].fingerprint, UINT64_MAX);
    ck_assert_uint_eq(l.row[3].anomalies, UINT64_MAX - 1);
    ck_assert_int_eq(l.row[3].protocol, 4);
    ck_assert_uint_eq(l.blob_len[3], 3);

    st = ad_store_get_stats(s);
    ck_assert_uint_eq(st->writes, 1);
    ck_assert_uint_eq(st->write_errors, 0);
    ck_assert_uint_eq(st->rows_put, 5);
    ck_assert_uint_eq(st->rows_deleted, 0);
    ck_assert_uint_eq(st->bytes, sizeof(big) + sizeof(blob_a) + sizeof(blob_b) + 3);
    ck_assert(st->last_seconds > 0 && st->last_seconds < 60);

    /* an upsert replaces every field */
    ad_store_batch_free(b);
    b = ad_store_batch_new();
    put(b, "a", blob_b, sizeof(blob_b), 77);
    write_ok(s, b);
    ck_assert_int_eq(load_all(s, &l, NULL), 5);
    assert_row(&l, "a", blob_b, sizeof(blob_b), 77);

    /* fn returning non-zero stops the load */
    memset(&l, 0, sizeof(l));
    l.stop_after = 2;
    ck_assert_int_eq(ad_store_load(s, collect, &l, NULL, NULL, 0), 2);
    ck_assert_int_eq(l.n, 2);
    ck_assert_int_eq(ad_store_check(s, NULL, 0), 0);
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

START_TEST(test_delete)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    int is_put = -1;
    loaded l;

    put(b, "x", blob_a, 1, 1);
    put(b, "y", blob_a, 2, 2);
    put(b, "z", blob_a, 3, 3);
    write_ok(s, b);
    ad_store_batch_free(b);
    b = ad_store_batch_new();
    del(b, "y");
    del(b, "never-there");
    ck_assert_str_eq(ad_store_batch_key(b, 0, &is_put), "y");
    ck_assert_int_eq(is_put, 0);
    ck_assert_ptr_null(ad_store_batch_key(b, 2, &is_put));
    write_ok(s, b);
    ck_assert_int_eq(ad_store_count(s), 2);
    ck_assert_int_eq(load_all(s, &l, NULL), 2);
    ck_assert_int_eq(find(&l, "y"), -1);
    assert_row(&l, "x", blob_a, 1, 1);
    assert_row(&l, "z", blob_a, 3, 3);
    ck_assert_uint_eq(ad_store_get_stats(s)->rows_deleted, 2);
    ck_assert_uint_eq(ad_store_get_stats(s)->writes, 2);
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

START_TEST(test_later_op_wins)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    int is_put = -1;
    loaded l;

    put(b, "c", blob_a, 6, 9); /* already there when the batch below deletes it */
    write_ok(s, b);
    ad_store_batch_free(b);

    b = ad_store_batch_new();
    put(b, "a", blob_a, 1, 1);
    put(b, "a", blob_b, 5, 2); /* wins */
    put(b, "b", blob_a, 2, 3);
    del(b, "b"); /* wins: b absent */
    del(b, "c");
    put(b, "c", blob_b, 4, 4); /* wins over the delete */
    ck_assert_uint_eq(ad_store_batch_size(b), 6);
    ck_assert_str_eq(ad_store_batch_key(b, 3, &is_put), "b");
    ck_assert_int_eq(is_put, 0);
    ck_assert_str_eq(ad_store_batch_key(b, 5, &is_put), "c");
    ck_assert_int_eq(is_put, 1);
    write_ok(s, b);
    ck_assert_int_eq(load_all(s, &l, NULL), 2);
    assert_row(&l, "a", blob_b, 5, 2);
    ck_assert_int_eq(find(&l, "b"), -1);
    assert_row(&l, "c", blob_b, 4, 4);
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

/* --- failures ----------------------------------------------------------------------- */

static void test_exec(ad_store *s, const char *q)
{
    char err[512];

    ck_assert_msg(ad_store_test_exec(s, q, err, sizeof(err)) == 0, "%s", err);
}

/* Five rows base-0..4 in the store. */
static void write_base(ad_store *s)
{
    ad_store_batch *b = ad_store_batch_new();
    char key[32];

    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "base-%d", i);
        put(b, key, blob_a, sizeof(blob_a), (uint64_t)i);
    }
    write_ok(s, b);
    ad_store_batch_free(b);
}

/* A batch: small puts a-0..4 and a delete of base-0 (these fit in free pages), then five
 * 1 MiB puts z-0..4 (these do not once the file cannot grow). */
static ad_store_batch *half_and_half(unsigned char *mib)
{
    ad_store_batch *b = ad_store_batch_new();
    char key[32];

    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "a-%d", i);
        put(b, key, blob_b, sizeof(blob_b), (uint64_t)i);
    }
    del(b, "base-0");
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "z-%d", i);
        put(b, key, mib, 1 << 20, (uint64_t)i);
    }
    return b;
}

/* Nothing of half_and_half's batch is in the file (read by another connection). */
static void assert_untouched(void)
{
    sqlite3 *db = conn(dbpath);

    ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM series"), 5);
    ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM series WHERE key LIKE 'a-%'"), 0);
    ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM series WHERE key LIKE 'z-%'"), 0);
    ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM series WHERE key = 'base-0'"), 1);
    sqlite3_close(db);
}

START_TEST(test_full_disk_atomic_then_retry)
{
    ad_store *s = open_ok();
    ad_store_batch *b;
    unsigned char *mib = calloc(1, 1 << 20);
    const ad_store_stats *st = ad_store_get_stats(s);
    char err[512] = "";
    static unsigned char filler[256 * 1024];

    ck_assert_ptr_nonnull(mib);
    write_base(s);
    /* free pages for the first half: a big row written and deleted */
    b = ad_store_batch_new();
    put(b, "filler", filler, sizeof(filler), 0);
    write_ok(s, b);
    ad_store_batch_free(b);
    b = ad_store_batch_new();
    del(b, "filler");
    write_ok(s, b);
    ad_store_batch_free(b);
    ck_assert_uint_eq(st->writes, 3);

    test_exec(s, "PRAGMA max_page_count = 1"); /* clamps to the current size */
    b = half_and_half(mib);
    ck_assert_int_eq(ad_store_write(s, b, err, sizeof(err)), -AD_EIO);
    ck_assert_msg(strstr(err, "database or disk is full (SQLITE_FULL)"), "%s", err);
    ck_assert_msg(strstr(err, "put \"z-0\""), "failed before the second half: %s", err);
    ck_assert_uint_eq(st->write_errors, 1);
    ck_assert_uint_eq(st->writes, 3);
    ck_assert_uint_eq(st->rows_put, 6);
    assert_untouched();
    ck_assert_int_eq(ad_store_count(s), 5);

    test_exec(s, "PRAGMA max_page_count = 1000000000");
    write_ok(s, b); /* the same batch again */
    ck_assert_uint_eq(st->writes, 4);
    ck_assert_uint_eq(st->rows_put, 16);
    ck_assert_uint_eq(st->rows_deleted, 2);
    ck_assert_int_eq(ad_store_count(s), 14);
    ck_assert_int_eq(ad_store_check(s, err, sizeof(err)), 0);
    ad_store_batch_free(b);
    ad_store_close(s);
    free(mib);
}
END_TEST

START_TEST(test_locked_then_retry)
{
    ad_store *s = open_ok();
    ad_store_batch *b;
    unsigned char *mib = calloc(1, 1 << 20);
    char err[512] = "";
    sqlite3 *db;

    ck_assert_ptr_nonnull(mib);
    write_base(s);
    test_exec(s, "PRAGMA busy_timeout = 50");
    db = conn(dbpath);
    sql(db, "BEGIN EXCLUSIVE");
    sql(db, "INSERT INTO series VALUES('other', x'00', 1, 0, 1.0, 1.0, 0, 1.0)");
    b = half_and_half(mib);
    ck_assert_int_eq(ad_store_write(s, b, err, sizeof(err)), -AD_EIO);
    ck_assert_msg(strstr(err, "(SQLITE_BUSY)"), "%s", err);
    ck_assert_uint_eq(ad_store_get_stats(s)->write_errors, 1);
    sql(db, "ROLLBACK");
    sqlite3_close(db);
    assert_untouched();

    write_ok(s, b);
    ck_assert_int_eq(ad_store_count(s), 14);
    ad_store_batch_free(b);
    ad_store_close(s);
    free(mib);
}
END_TEST

START_TEST(test_read_only_then_retry)
{
    ad_store *s = open_ok();
    ad_store_batch *b;
    unsigned char *mib = calloc(1, 1 << 20);
    char err[512] = "";

    ck_assert_ptr_nonnull(mib);
    write_base(s);
    test_exec(s, "PRAGMA query_only = 1");
    b = half_and_half(mib);
    ck_assert_int_eq(ad_store_write(s, b, err, sizeof(err)), -AD_EIO);
    ck_assert_msg(strstr(err, "(SQLITE_READONLY)"), "%s", err);
    assert_untouched();
    test_exec(s, "PRAGMA query_only = 0");
    write_ok(s, b);
    ck_assert_int_eq(ad_store_count(s), 14);
    ad_store_batch_free(b);
    ad_store_close(s);
    free(mib);
}
END_TEST

/* --- damage ------------------------------------------------------------------------- */

START_TEST(test_garbage_moved_aside)
{
    unsigned char junk[16384], wal[4096], back[16384 + 1];
    char err[512] = "", bad[512], walpath[256];
    ad_store *s = NULL;
    ad_store_batch *b;
    uint32_t x = 12345;
    int moved = 0;

    for (size_t i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 16);
    }
    memcpy(wal, junk + 100, sizeof(wal));
    write_file(dbpath, junk, sizeof(junk));
    snprintf(walpath, sizeof(walpath), "%s-wal", dbpath);
    write_file(walpath, wal, sizeof(wal));

    ck_assert_msg(ad_store_open(dbpath, &s, &moved, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(moved, 1);
    ck_assert_msg(strstr(err, ".bad-") && strstr(err, "SQLITE_NOTADB"), "%s", err);
    ck_assert_int_eq(ad_store_count(s), 0);
    ck_assert_int_eq(find_bad("", bad, sizeof(bad)), 1);
    ck_assert_msg(strstr(err, bad), "%s does not name %s", err, bad);
    ck_assert_uint_eq(read_file(bad, back, sizeof(back)), sizeof(junk));
    ck_assert_int_eq(memcmp(back, junk, sizeof(junk)), 0);
    ck_assert_int_eq(find_bad("-wal", bad, sizeof(bad)), 1);
    ck_assert_uint_eq(read_file(bad, back, sizeof(back)), sizeof(wal));
    ck_assert_int_eq(memcmp(back, wal, sizeof(wal)), 0);

    b = ad_store_batch_new();
    put(b, "k", blob_a, sizeof(blob_a), 1);
    write_ok(s, b);
    ck_assert_int_eq(ad_store_count(s), 1);
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

/* When the file cannot be moved aside the open fails with -AD_EIO rather than start
 * over next to it: here "<bad>-wal" names a non-empty directory, for the next seconds. */
START_TEST(test_move_aside_fails)
{
    char err[512] = "", path[256], walpath[256];
    ad_store *s = (ad_store *)&s;
    long now = (long)time(NULL);
    int moved = -1;

    write_file(dbpath, "not a database, not at all", 26);
    snprintf(walpath, sizeof(walpath), "%s-wal", dbpath);
    write_file(walpath, "junk", 4);
    for (long t = now; t < now + 10; t++) {
        snprintf(path, sizeof(path), "%s.bad-%ld-wal", dbpath, t);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        snprintf(path, sizeof(path), "%s.bad-%ld-wal/x", dbpath, t);
        write_file(path, "x", 1);
    }
    ck_assert_int_eq(ad_store_open(dbpath, &s, &moved, err, sizeof(err)), -AD_EIO);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(moved, 0);
    ck_assert_msg(strstr(err, "not an SQLite database") && strstr(err, "moving it aside"), "%s",
                  err);
}
END_TEST

START_TEST(test_other_version_moved_aside)
{
    char err[512] = "", bad[512];
    ad_store *s = NULL;
    sqlite3 *db;
    int moved = 0;

    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sql(db, "CREATE TABLE series(key TEXT PRIMARY KEY, value TEXT);"
            "INSERT INTO series VALUES('old', 'v2 data');"
            "PRAGMA user_version = 2");
    sqlite3_close(db);

    ck_assert_msg(ad_store_open(dbpath, &s, &moved, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(moved, 1);
    ck_assert_msg(strstr(err, "schema version 2"), "%s", err);
    ck_assert_int_eq(ad_store_count(s), 0);
    ad_store_close(s);
    ck_assert_int_eq(find_bad("", bad, sizeof(bad)), 1);
    db = conn(bad);
    ck_assert_int_eq(sql_int(db, "PRAGMA user_version"), 2);
    ck_assert_int_eq(sql_int(db, "SELECT count(*) FROM series WHERE value = 'v2 data'"), 1);
    sqlite3_close(db);
    db = conn(dbpath);
    ck_assert_int_eq(sql_int(db, "PRAGMA user_version"), 1);
    sqlite3_close(db);

    /* a version-0 file with someone else's tables is foreign too */
    ck_assert_int_eq(remove(dbpath), 0);
    ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
    sql(db, "CREATE TABLE t(x)");
    sqlite3_close(db);
    ck_assert_msg(ad_store_open(dbpath, &s, &moved, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(moved, 1);
    ck_assert_msg(strstr(err, "schema version 0"), "%s", err);
    ad_store_close(s);
}
END_TEST

/* Overwrites pages 2..9 of the file (b-tree pages of the series table) with garbage. */
static void damage_pages(void)
{
    unsigned char page[4096];
    FILE *f;

    memset(page, 0xa5, sizeof(page));
    f = fopen(dbpath, "r+b");
    ck_assert_ptr_nonnull(f);
    for (int p = 1; p < 9; p++) {
        ck_assert_int_eq(fseek(f, (long)p * 4096, SEEK_SET), 0);
        ck_assert_uint_eq(fwrite(page, 1, sizeof(page), f), sizeof(page));
    }
    ck_assert_int_eq(fclose(f), 0);
}

/* 300 rows of 1000 bytes. */
static void write_300(ad_store *s)
{
    static unsigned char blob[1000];
    ad_store_batch *b = ad_store_batch_new();
    char key[32];

    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "series-%03d", i);
        put(b, key, blob, sizeof(blob), (uint64_t)i);
    }
    write_ok(s, b);
    ad_store_batch_free(b);
}

START_TEST(test_damaged_moved_aside)
{
    ad_store *s = open_ok();
    char err[512] = "", bad[512];
    int moved = 0;

    write_300(s);
    ad_store_close(s); /* checkpointed into the main file */
    damage_pages();

    ck_assert_msg(ad_store_open(dbpath, &s, &moved, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(moved, 1);
    ck_assert_msg(strstr(err, "quick_check") || strstr(err, "SQLITE_CORRUPT"), "%s", err);
    ck_assert_int_eq(ad_store_count(s), 0);
    ck_assert_int_eq(find_bad("", bad, sizeof(bad)), 1);
    ad_store_close(s);
}
END_TEST

START_TEST(test_wrong_types_skipped)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    char err[512] = "";
    long skipped = -1;
    sqlite3 *db;
    loaded l;

    put(b, "good-1", blob_a, sizeof(blob_a), 1);
    put(b, "good-2", blob_b, sizeof(blob_b), 2);
    write_ok(s, b);
    db = conn(dbpath);
    sql(db, "INSERT INTO series VALUES('bad-blob', 'text, not a blob', 1, 0, 1.0, 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('bad-fp', x'01', 'abc', 0, 1.0, 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('bad-time', x'01', 1, 0, 'yesterday', 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('bad-proto', x'01', 1, 99999999999, 1.0, 1.0, 0, 1.0);"
            "INSERT INTO series VALUES(x'6b6579', x'01', 1, 0, 1.0, 1.0, 0, 1.0);");
    sqlite3_close(db);
    ck_assert_int_eq(ad_store_count(s), 7);

    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(ad_store_load(s, collect, &l, &skipped, err, sizeof(err)), 2);
    ck_assert_int_eq(skipped, 5);
    ck_assert_int_eq(l.n, 2);
    assert_row(&l, "good-1", blob_a, sizeof(blob_a), 1);
    assert_row(&l, "good-2", blob_b, sizeof(blob_b), 2);
    ck_assert_str_eq(err, "skipped row \"bad-blob\": column blob is TEXT, not BLOB");

    /* without the skipped pointer or err buffer */
    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(ad_store_load(s, collect, &l, NULL, NULL, 0), 2);
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

START_TEST(test_check_damaged)
{
    ad_store *s = open_ok();
    char err[512] = "";

    write_300(s);
    test_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)");
    damage_pages();
    test_exec(s, "PRAGMA shrink_memory"); /* forget the cached pages */
    ck_assert_int_eq(ad_store_check(s, err, sizeof(err)), -AD_EFORMAT);
    ck_assert_msg(strncmp(err, "integrity_check: ", 17) == 0 && !strstr(err, "***"), "%s", err);
    ad_store_close(s);
}
END_TEST

START_TEST(test_check_good)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    char err[512] = "x";

    put(b, "k", blob_a, sizeof(blob_a), 1);
    write_ok(s, b);
    ck_assert_int_eq(ad_store_check(s, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

/* --- async -------------------------------------------------------------------------- */

typedef struct actx {
    int calls;
    int status;
    int busy_in_cb;
    int on_loop_thread;
    uv_thread_t loop_thread;
    ad_store *s;
    char err[512];
} actx;

static void done_cb(void *arg, ad_store_batch *b, int status, const char *err)
{
    actx *c = arg;
    uv_thread_t self = uv_thread_self();

    c->calls++;
    c->status = status;
    c->busy_in_cb = ad_store_busy(c->s);
    c->on_loop_thread = uv_thread_equal(&self, &c->loop_thread);
    snprintf(c->err, sizeof(c->err), "%s", err ? err : "(null)");
    ad_store_batch_free(b);
}

START_TEST(test_async_write)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new(), *b2 = ad_store_batch_new();
    actx c;
    uv_loop_t loop;
    loaded l;

    memset(&c, 0, sizeof(c));
    c.loop_thread = uv_thread_self();
    c.s = s;
    c.status = 99;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    put(b, "async-1", blob_a, sizeof(blob_a), 1);
    put(b, "async-2", blob_b, sizeof(blob_b), 2);
    put(b2, "never", blob_a, 1, 3);
    ck_assert_int_eq(ad_store_busy(s), 0);
    ck_assert_int_eq(ad_store_write_async(&loop, s, b, done_cb, &c), 0);
    ck_assert_int_eq(ad_store_busy(s), 1);
    ck_assert_int_eq(ad_store_write_async(&loop, s, b2, done_cb, &c), -AD_EFULL);
    ck_assert_int_eq(c.calls, 0);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_msg(c.status == 0, "%s", c.err);
    ck_assert_int_eq(c.on_loop_thread, 1);
    ck_assert_int_eq(c.busy_in_cb, 0);
    ck_assert_int_eq(ad_store_busy(s), 0);
    ck_assert_uint_eq(ad_store_get_stats(s)->writes, 1);
    ck_assert_uint_eq(ad_store_get_stats(s)->rows_put, 2);
    ck_assert_int_eq(load_all(s, &l, NULL), 2);
    assert_row(&l, "async-1", blob_a, sizeof(blob_a), 1);
    assert_row(&l, "async-2", blob_b, sizeof(blob_b), 2);

    /* a failing async write: status and message come back, nothing written */
    test_exec(s, "PRAGMA query_only = 1");
    ck_assert_int_eq(ad_store_write_async(&loop, s, b2, done_cb, &c), 0);
    ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    ck_assert_int_eq(c.calls, 2);
    ck_assert_int_eq(c.status, -AD_EIO);
    ck_assert_msg(strstr(c.err, "SQLITE_READONLY"), "%s", c.err);
    ck_assert_uint_eq(ad_store_get_stats(s)->write_errors, 1);
    ck_assert_int_eq(ad_store_count(s), 2);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    ad_store_close(s);
}
END_TEST

#ifndef NDEBUG
/* Closing with a write out is a bug the debug build catches (SIGABRT expected). */
START_TEST(test_close_with_write_out_asserts)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    uv_loop_t loop;
    actx c;

    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    put(b, "k", blob_a, 1, 1);
    ck_assert_int_eq(ad_store_write_async(&loop, s, b, done_cb, &c), 0);
    ad_store_close(s);
}
END_TEST
#endif

/* --- bulk --------------------------------------------------------------------------- */

#define BULK 10000

static void bulk_blob(int i, unsigned char *p, size_t *len)
{
    *len = (size_t)(i % 300) + 1;
    for (size_t k = 0; k < *len; k++)
        p[k] = (unsigned char)(i * 31 + k * 17);
}

typedef struct bulk_ctx {
    int n;
} bulk_ctx;

static int bulk_check(void *arg, const ad_store_row *row)
{
    bulk_ctx *c = arg;
    unsigned char want[512];
    char key[32];
    size_t len;

    snprintf(key, sizeof(key), "series.%05d", c->n);
    ck_assert_str_eq(row->key, key);
    bulk_blob(c->n, want, &len);
    ck_assert_uint_eq(row->blob_len, len);
    ck_assert_int_eq(memcmp(row->blob, want, len), 0);
    ck_assert_uint_eq(row->fingerprint, (uint64_t)c->n * 1000003u);
    c->n++;
    return 0;
}

START_TEST(test_bulk)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    unsigned char blob[512];
    char key[32], err[512];
    bulk_ctx c = {0};
    size_t len;

    for (int i = 0; i < BULK; i++) {
        snprintf(key, sizeof(key), "series.%05d", i);
        bulk_blob(i, blob, &len);
        put(b, key, blob, len, (uint64_t)i * 1000003u);
    }
    ck_assert_uint_eq(ad_store_batch_size(b), BULK);
    write_ok(s, b);
    ck_assert_uint_eq(ad_store_get_stats(s)->rows_put, BULK);
    ad_store_close(s);
    s = open_ok();
    ck_assert_int_eq(ad_store_count(s), BULK);
    ck_assert_int_eq(ad_store_load(s, bulk_check, &c, NULL, err, sizeof(err)), BULK);
    ck_assert_int_eq(c.n, BULK);
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

/* --- the protocol column ------------------------------------------------------------ */

/* The numbers today's rows hold, written out here once more so that this test, like
 * store_db.c's table, never follows the enum. */
static const char *const legacy_names[] = {"graphite", "influx", "statsd", "jsonl",
                                           "prometheus"};

START_TEST(test_protocol_by_name)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    char key[32], q[128], text[64];
    sqlite3 *db;
    loaded l;

    for (int p = 0; p < AD_PROTO_N; p++) {
        ad_store_row r = mkrow("", blob_a, sizeof(blob_a), 1);

        snprintf(key, sizeof(key), "p%d", p);
        r.key = key;
        r.key_len = strlen(key);
        r.protocol = p;
        ck_assert_int_eq(ad_store_batch_put(b, &r), 0);
    }
    write_ok(s, b);
    db = conn(dbpath);
    for (int p = 0; p < AD_PROTO_N; p++) {
        snprintf(q, sizeof(q), "SELECT typeof(protocol) FROM series WHERE key = 'p%d'", p);
        sql_text(db, q, text, sizeof(text));
        ck_assert_str_eq(text, "text");
        snprintf(q, sizeof(q), "SELECT protocol FROM series WHERE key = 'p%d'", p);
        sql_text(db, q, text, sizeof(text));
        ck_assert_str_eq(text, ad_proto_name(p));
    }
    sqlite3_close(db);
    ck_assert_int_eq(load_all(s, &l, NULL), AD_PROTO_N);
    for (int p = 0; p < AD_PROTO_N; p++) {
        snprintf(key, sizeof(key), "p%d", p);
        ck_assert_int_ge(find(&l, key), 0);
        ck_assert_int_eq(l.row[find(&l, key)].protocol, p);
    }
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

/* Rows as the binary before names wrote them (an INTEGER protocol) read back as the same
 * protocol; a number past the legacy table loads as -1, the row kept; putting the key
 * again writes the name. */
START_TEST(test_protocol_legacy_numbers)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    char q[256], text[64];
    long skipped = -1;
    sqlite3 *db;
    loaded l;
    int i;

    db = conn(dbpath);
    for (i = 0; i < 5; i++) {
        snprintf(q, sizeof(q),
                 "INSERT INTO series VALUES('legacy-%d', x'0102', 7, %d, 1.5, 2.5, 3, 4.0)", i,
                 i);
        sql(db, q);
    }
    sql(db, "INSERT INTO series VALUES('legacy-5', x'01', 7, 5, 1.5, 2.5, 3, 4.0);"
            "INSERT INTO series VALUES('legacy-max', x'01', 7, 2147483647, 1.5, 2.5, 3, 4.0);");
    sqlite3_close(db);
    ck_assert_int_eq(ad_store_load(s, collect, memset(&l, 0, sizeof(l)), &skipped, NULL, 0), 7);
    ck_assert_int_eq(skipped, 0);
    for (i = 0; i < 5; i++) {
        char key[32];
        int j;

        snprintf(key, sizeof(key), "legacy-%d", i);
        j = find(&l, key);
        ck_assert_int_ge(j, 0);
        ck_assert_int_eq(l.row[j].protocol, ad_proto_from_name(legacy_names[i]));
        ck_assert_str_eq(ad_proto_name(l.row[j].protocol), legacy_names[i]);
        ck_assert_uint_eq(l.row[j].fingerprint, 7);
        ck_assert_uint_eq(l.row[j].anomalies, 3);
        ck_assert_uint_eq(l.blob_len[j], 2);
    }
    ck_assert_int_eq(l.row[find(&l, "legacy-5")].protocol, -1);
    ck_assert_int_eq(l.row[find(&l, "legacy-max")].protocol, -1);

    /* rewritten by this build: by name */
    i = find(&l, "legacy-2");
    l.row[i].key = l.key[i];
    l.row[i].blob = l.blob[i];
    ck_assert_int_eq(ad_store_batch_put(b, &l.row[i]), 0);
    write_ok(s, b);
    db = conn(dbpath);
    sql_text(db, "SELECT typeof(protocol) || ' ' || protocol FROM series WHERE key = 'legacy-2'",
             text, sizeof(text));
    ck_assert_str_eq(text, "text statsd");
    sqlite3_close(db);
    ck_assert_int_eq(load_all(s, &l, NULL), 7);
    ck_assert_int_eq(l.row[find(&l, "legacy-2")].protocol, AD_PROTO_STATSD);
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

/* A name this build does not know loads as -1 with its row; values no build wrote skip
 * the row with a reason; a put needs a protocol of the registry. */
START_TEST(test_protocol_unknown)
{
    ad_store *s = open_ok();
    ad_store_batch *b = ad_store_batch_new();
    ad_store_row r = mkrow("x", blob_a, sizeof(blob_a), 1);
    char err[512] = "";
    long skipped = -1;
    sqlite3 *db;
    loaded l;

    db = conn(dbpath);
    sql(db, "INSERT INTO series VALUES('a-pigeon', x'01', 1, 'carrier-pigeon', 1.0, 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('b-influx', x'01', 1, 'influx', 1.0, 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('c-nul', x'01', 1, CAST(x'6a736f6e6c00' AS TEXT), 1.0,"
            " 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('d-empty', x'01', 1, '', 1.0, 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('e-real', x'01', 1, 2.5, 1.0, 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('f-negative', x'01', 1, -1, 1.0, 1.0, 0, 1.0);"
            "INSERT INTO series VALUES('g-blob', x'01', 1, x'00', 1.0, 1.0, 0, 1.0);");
    sqlite3_close(db);
    memset(&l, 0, sizeof(l));
    ck_assert_int_eq(ad_store_load(s, collect, &l, &skipped, err, sizeof(err)), 4);
    ck_assert_int_eq(skipped, 3);
    ck_assert_str_eq(err, "skipped row \"e-real\": column protocol is REAL, not TEXT or INTEGER");
    ck_assert_int_eq(l.row[find(&l, "a-pigeon")].protocol, -1);
    ck_assert_int_eq(l.row[find(&l, "b-influx")].protocol, AD_PROTO_INFLUX);
    ck_assert_int_eq(l.row[find(&l, "c-nul")].protocol, -1);
    ck_assert_int_eq(l.row[find(&l, "d-empty")].protocol, -1);
    ck_assert_int_eq(find(&l, "f-negative"), -1);
    ck_assert_int_eq(find(&l, "g-blob"), -1);

    r.protocol = -1;
    ck_assert_int_eq(ad_store_batch_put(b, &r), -AD_EINVAL);
    r.protocol = AD_PROTO_N;
    ck_assert_int_eq(ad_store_batch_put(b, &r), -AD_EINVAL);
    ck_assert_uint_eq(ad_store_batch_size(b), 0);
    ad_store_batch_free(b);
    ad_store_close(s);
}
END_TEST

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}

static Suite *suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc;

    tc = tcase(s, "open");
    tcase_add_test(tc, test_create_reopen);
    tcase_add_test(tc, test_open_fails);
    tc = tcase(s, "rows");
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_delete);
    tcase_add_test(tc, test_later_op_wins);
    tc = tcase(s, "failures");
    tcase_add_test(tc, test_full_disk_atomic_then_retry);
    tcase_add_test(tc, test_locked_then_retry);
    tcase_add_test(tc, test_read_only_then_retry);
    tc = tcase(s, "damage");
    tcase_add_test(tc, test_garbage_moved_aside);
    tcase_add_test(tc, test_other_version_moved_aside);
    tcase_add_test(tc, test_move_aside_fails);
    tcase_add_test(tc, test_damaged_moved_aside);
    tcase_add_test(tc, test_wrong_types_skipped);
    tcase_add_test(tc, test_check_good);
    tcase_add_test(tc, test_check_damaged);
    tc = tcase(s, "protocol");
    tcase_add_test(tc, test_protocol_by_name);
    tcase_add_test(tc, test_protocol_legacy_numbers);
    tcase_add_test(tc, test_protocol_unknown);
    tc = tcase(s, "async");
    tcase_add_test(tc, test_async_write);
#ifndef NDEBUG
    tcase_add_test_raise_signal(tc, test_close_with_write_out_asserts, SIGABRT);
#endif
    tc = tcase(s, "bulk");
    tcase_add_test(tc, test_bulk);
    return s;
}

int main(void)
{
    SRunner *sr;
    int failed;

    strcpy(root, "/tmp/check_store_XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    rm_rf(root);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
