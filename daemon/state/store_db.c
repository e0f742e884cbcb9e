/*
 * store_db.c - the state store's database (store.h): one SQLite connection
 * (SQLITE_OPEN_FULLMUTEX) per store, in WAL mode, with the upsert, delete and transaction
 * statements prepared once; opening (a damaged or foreign file moved aside), reading
 * rows, checking, closing. Batches and
 * their writes: store_write.c. A row's protocol is written as its name and read back
 * from a name or, in rows written before names, from the fixed legacy numbers.
 *
 * Threads: ad_store_write runs on any thread, one caller at a time. The async write
 * (one at a time, its uv_work_t embedded in the store) runs the transaction on the
 * thread pool and does its bookkeeping (busy flag, stats) in the after-work callback on
 * the loop thread, so the loop may read the stats at any time. load, count and check are
 * for the loop thread while no write is out.
 */
#include "state/store_impl.h"

#include <assert.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "ingest/protocols.h"

#define SCHEMA_VERSION  1
#define BUSY_TIMEOUT_MS 5000

/* Test-only: runs sql on the store's connection (e.g. PRAGMA max_page_count). Not in
 * store.h; tests/check_store.c declares it. */
int ad_store_test_exec(ad_store *s, const char *sql, char *err, size_t errlen);

void ad_store_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The name of a primary result code, e.g. "SQLITE_FULL". */
static const char *code_name(int rc)
{
    static const char *const names[] = {
        "SQLITE_OK",       "SQLITE_ERROR",     "SQLITE_INTERNAL", "SQLITE_PERM",
        "SQLITE_ABORT",    "SQLITE_BUSY",      "SQLITE_LOCKED",   "SQLITE_NOMEM",
        "SQLITE_READONLY", "SQLITE_INTERRUPT", "SQLITE_IOERR",    "SQLITE_CORRUPT",
        "SQLITE_NOTFOUND", "SQLITE_FULL",      "SQLITE_CANTOPEN", "SQLITE_PROTOCOL",
        "SQLITE_EMPTY",    "SQLITE_SCHEMA",    "SQLITE_TOOBIG",   "SQLITE_CONSTRAINT",
        "SQLITE_MISMATCH", "SQLITE_MISUSE",    "SQLITE_NOLFS",    "SQLITE_AUTH",
        "SQLITE_FORMAT",   "SQLITE_RANGE",     "SQLITE_NOTADB",   "SQLITE_NOTICE",
        "SQLITE_WARNING",
    };
    int p = rc & 0xff;

    if (p == SQLITE_ROW)
        return "SQLITE_ROW";
    if (p == SQLITE_DONE)
        return "SQLITE_DONE";
    if (p >= 0 && p < (int)(sizeof(names) / sizeof(names[0])))
        return names[p];
    return "SQLITE_?";
}

int ad_store_dberr(sqlite3 *db, int rc, char *err, size_t errlen, const char *what)
{
    ad_store_seterr(err, errlen, "%s: %s (%s)", what, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
                    code_name(rc));
    return (rc & 0xff) == SQLITE_NOMEM ? -AD_ENOMEM : -AD_EIO;
}

/* --- opening ------------------------------------------------------------------------ */

/* How an open attempt ended: usable, to be moved aside, or failed as is. */
enum verdict { V_OK, V_BAD, V_FAIL };

/* Runs a statement that returns one integer (or none: *out untouched). */
static int query_int(sqlite3 *db, const char *sql, long long *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Runs quick_check or integrity_check: SQLITE_OK with problem "" when the database is
 * sound, else the first line of the problems reported (after the "*** in database main
 * ***" heading), or the SQLite error code. */
static int check_db(sqlite3 *db, const char *sql, char *problem, size_t len)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    problem[0] = '\0';
    if (rc != SQLITE_OK)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *msg = (const char *)sqlite3_column_text(st, 0);

        const char *nl;

        if (!msg)
            msg = "(null)";
        if (strncmp(msg, "*** in database", 15) == 0 && (nl = strchr(msg, '\n')))
            msg = nl + 1;
        if (strcmp(msg, "ok") == 0 || problem[0])
            continue;
        nl = strchr(msg, '\n');
        snprintf(problem, len, "%.*s", nl ? (int)(nl - msg) : (int)strlen(msg), msg);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int is_damage(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT;
}

/* Reads the header and runs quick_check; V_BAD with a reason when the file is not
 * SQLite, damaged or of another schema, V_FAIL on other errors (busy, I/O: not moved). */
static enum verdict inspect(sqlite3 *db, int *fresh, char *err, size_t errlen)
{
    long long version = -1, tables = 0, series = 0;
    char problem[256];
    int rc;

    rc = query_int(db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = query_int(db, "SELECT count(*) FROM sqlite_master", &tables);
    if (rc != SQLITE_OK) {
        ad_store_dberr(db, rc, err, errlen, "reading the header");
        return is_damage(rc) ? V_BAD : V_FAIL;
    }
    rc = check_db(db, "PRAGMA quick_check(3)", problem, sizeof(problem));
    if (rc != SQLITE_OK) {
        ad_store_dberr(db, rc, err, errlen, "quick_check");
        return is_damage(rc) ? V_BAD : V_FAIL;
    }
    if (problem[0]) {
        ad_store_seterr(err, errlen, "quick_check: %s", problem);
        return V_BAD;
    }
    *fresh = version == 0 && tables == 0;
    if (*fresh)
        return V_OK;
    if (version != SCHEMA_VERSION) {
        ad_store_seterr(err, errlen, "schema version %lld, not %d", version, SCHEMA_VERSION);
        return V_BAD;
    }
    rc = query_int(
        db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'series'", &series);
    if (rc != SQLITE_OK) {
        ad_store_dberr(db, rc, err, errlen, "reading the schema");
        return V_FAIL;
    }
    if (series != 1) {
        ad_store_seterr(err, errlen, "schema version %d without a series table", SCHEMA_VERSION);
        return V_BAD;
    }
    return V_OK;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

    return rc == SQLITE_OK ? 0 : ad_store_dberr(db, rc, err, errlen, sql);
}

/* WAL (verified), synchronous, the schema when fresh, the statements. 0 or ad_err. */
static int setup(ad_store *s, int fresh, char *err, size_t errlen)
{
    static const char schema[] =
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS series(key TEXT PRIMARY KEY, blob BLOB NOT NULL,"
        " fingerprint INTEGER NOT NULL, protocol INTEGER NOT NULL, created REAL NOT NULL,"
        " last_seen REAL NOT NULL, anomalies INTEGER NOT NULL, saved REAL NOT NULL);"
        "PRAGMA user_version = 1;"
        "COMMIT;";
    static const char put_sql[] =
        "INSERT INTO series(key, blob, fingerprint, protocol, created, last_seen, anomalies,"
        " saved) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(key) DO UPDATE SET"
        " blob = excluded.blob, fingerprint = excluded.fingerprint,"
        " protocol = excluded.protocol, created = excluded.created,"
        " last_seen = excluded.last_seen, anomalies = excluded.anomalies,"
        " saved = excluded.saved";
    sqlite3_stmt *st;
    const char *mode = NULL;
    int rc, wal;

    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return ad_store_dberr(s->db, rc, err, errlen, "PRAGMA journal_mode");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(st, 0);
    wal = mode && strcmp(mode, "wal") == 0;
    if (!wal) {
        if (rc == SQLITE_ROW)
            ad_store_seterr(err, errlen, "journal_mode=WAL did not take (got %s)",
                            mode ? mode : "(null)");
        else
            ad_store_dberr(s->db, rc, err, errlen, "PRAGMA journal_mode");
        sqlite3_finalize(st);
        return -AD_EIO;
    }
    sqlite3_finalize(st);
    if ((rc = exec(s->db, "PRAGMA synchronous = NORMAL", err, errlen)) < 0)
        return rc;
    if (fresh && (rc = exec(s->db, schema, err, errlen)) < 0) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
#define PREP(stmt, sql)                                                                            \
    do {                                                                                           \
        int rc_ = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &(stmt), NULL);    \
        if (rc_ != SQLITE_OK)                                                                      \
            return ad_store_dberr(s->db, rc_, err, errlen, "preparing statements");                \
    } while (0)
    PREP(s->put, put_sql);
    PREP(s->del, "DELETE FROM series WHERE key = ?1");
    PREP(s->begin, "BEGIN IMMEDIATE");
    PREP(s->commit, "COMMIT");
    PREP(s->rollback, "ROLLBACK");
#undef PREP
    return 0;
}

static void finalize_all(ad_store *s)
{
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->del);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    s->put = s->del = s->begin = s->commit = s->rollback = NULL;
}

/* Whether path holds something other than an SQLite database, judged by its first 16
 * bytes before SQLite opens it: SQLite would take a stray -wal next to a garbage file for
 * its own and delete it at close. A missing, empty or unreadable file passes (SQLite
 * creates it or says why not). */
static int foreign_header(const char *path)
{
    static const char magic[16] = "SQLite format 3";
    char head[16];
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f)
        return 0;
    n = fread(head, 1, sizeof(head), f);
    fclose(f);
    return n > 0 && (n < sizeof(head) || memcmp(head, magic, sizeof(head)) != 0);
}

/* One attempt at path: V_OK with s->db open and set up, else s->db closed. */
static enum verdict attempt(ad_store *s, const char *path, int *code, char *err, size_t errlen)
{
    enum verdict v;
    int fresh = 0, rc;

    *code = -AD_EIO;
    if (foreign_header(path)) {
        ad_store_seterr(err, errlen, "not an SQLite database (SQLITE_NOTADB)");
        return V_BAD;
    }
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        ad_store_dberr(s->db, rc, err, errlen, path);
        v = V_FAIL;
        goto out_close;
    }
    sqlite3_extended_result_codes(s->db, 0);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    v = inspect(s->db, &fresh, err, errlen);
    if (v != V_OK)
        goto out_close;
    rc = setup(s, fresh, err, errlen);
    if (rc == 0)
        return V_OK;
    *code = rc;
    v = V_FAIL;
    finalize_all(s);
out_close:
    sqlite3_close(s->db); /* NULL is fine */
    s->db = NULL;
    return v;
}

/* Renames from+suffix to to+suffix; a missing source is fine. 0 or -errno. */
static int move_file(const char *from, const char *to, const char *suffix)
{
    char a[4096], b[4096];

    if ((size_t)snprintf(a, sizeof(a), "%s%s", from, suffix) >= sizeof(a) ||
        (size_t)snprintf(b, sizeof(b), "%s%s", to, suffix) >= sizeof(b))
        return -ENAMETOOLONG;
    if (rename(a, b) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Moves path (and its -wal, -shm) to "<path>.bad-<unix time>" (".<n>" appended if that
 * is taken). 0, or -AD_EIO with a message saying why it was to be moved. */
static int move_aside(const char *path, const char *why, char *dest, size_t destlen, char *err,
                      size_t errlen)
{
    long now = (long)time(NULL);
    int r, n;

    for (n = 1; n < 100; n++) {
        if (n == 1)
            snprintf(dest, destlen, "%s.bad-%ld", path, now);
        else
            snprintf(dest, destlen, "%s.bad-%ld.%d", path, now, n);
        if (access(dest, F_OK) < 0 && errno == ENOENT)
            break;
    }
    if ((r = move_file(path, dest, "")) < 0 || (r = move_file(path, dest, "-wal")) < 0 ||
        (r = move_file(path, dest, "-shm")) < 0) {
        ad_store_seterr(err, errlen, "%s: %s; moving it aside to %s: %s", path, why, dest,
                        strerror(-r));
        return -AD_EIO;
    }
    return 0;
}

int ad_store_open(const char *path, ad_store **out, int *moved_aside, char *err, size_t errlen)
{
    char why[512], dest[4200];
    ad_store *s;
    enum verdict v;
    int code;

    if (moved_aside)
        *moved_aside = 0;
    ad_store_seterr(err, errlen, "%s", "");
    *out = NULL;
    if (!path || !*path) {
        ad_store_seterr(err, errlen, "no database path");
        return -AD_EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        ad_store_seterr(err, errlen, "out of memory");
        return -AD_ENOMEM;
    }
    v = attempt(s, path, &code, why, sizeof(why));
    if (v == V_BAD) {
        if ((code = move_aside(path, why, dest, sizeof(dest), err, errlen)) < 0)
            goto out_free;
        if (moved_aside)
            *moved_aside = 1;
        v = attempt(s, path, &code, err, errlen);
        if (v != V_OK) {
            code = -AD_EIO; /* a fresh file is not usable either */
            goto out_free;
        }
        ad_store_seterr(err, errlen, "%s: %s; moved aside to %s, starting a new database", path,
                        why, dest);
    } else if (v == V_FAIL) {
        ad_store_seterr(err, errlen, "%s", why);
        goto out_free;
    }
    *out = s;
    return 0;
out_free:
    free(s);
    return code;
}

void ad_store_close(ad_store *s)
{
    if (!s)
        return;
    assert(!s->busy && "ad_store_close with an async write out");
    finalize_all(s);
    sqlite3_close(s->db); /* the last connection: checkpoints and removes the WAL */
    free(s);
}

/* --- reading ------------------------------------------------------------------------ */

/* The numbers the protocol column held before the store wrote names (anomalyd up to the
 * redesign of issue 18): fixed for ever, whatever the order of ad_proto. */
static const char *const legacy_protocols[] = {"graphite", "influx", "statsd", "jsonl",
                                               "prometheus"};
#define NLEGACY ((sqlite3_int64)(sizeof(legacy_protocols) / sizeof(legacy_protocols[0])))

const char *ad_store_protocol_text(int proto)
{
    return ad_proto_name(proto);
}

/* SQLite's name of a column type (SQLite's codes, not a kind of ours). */
static const char *type_name(int t)
{
    switch (t) {
    case SQLITE_INTEGER:
        return "INTEGER";
    case SQLITE_FLOAT:
        return "REAL";
    case SQLITE_TEXT:
        return "TEXT";
    case SQLITE_BLOB:
        return "BLOB";
    case SQLITE_NULL:
        return "NULL";
    }
    return "NULL";
}

/* The protocol of a row (column 3, TEXT or INTEGER): a name, -1 when this build knows
 * no such protocol; a legacy number through legacy_protocols, -1 past its end. NULL, or
 * why the row is unusable (a negative or huge number, as before names). */
static const char *read_protocol(sqlite3_stmt *st, int *proto, char *why, size_t whylen)
{
    if (sqlite3_column_type(st, 3) == SQLITE_TEXT) {
        const char *name = (const char *)sqlite3_column_text(st, 3);

        if (!name) {
            snprintf(why, whylen, "out of memory reading the protocol");
            return why;
        }
        *proto = strlen(name) == (size_t)sqlite3_column_bytes(st, 3) ? ad_proto_from_name(name)
                                                                     : -1;
        return NULL;
    }
    sqlite3_int64 v = sqlite3_column_int64(st, 3);

    if (v < 0 || v > 0x7fffffff) {
        snprintf(why, whylen, "protocol %lld out of range", (long long)v);
        return why;
    }
    *proto = v < NLEGACY ? ad_proto_from_name(legacy_protocols[v]) : -1;
    return NULL;
}

/* Fills row from the current result row; NULL, or why the row is unusable. */
static const char *read_row(sqlite3_stmt *st, ad_store_row *row, char *why, size_t whylen)
{
    static const char *const col[] = {"key",     "blob",      "fingerprint", "protocol",
                                      "created", "last_seen", "anomalies"};
    static const int want[] = {SQLITE_TEXT,  SQLITE_BLOB,  SQLITE_INTEGER, SQLITE_TEXT,
                               SQLITE_FLOAT, SQLITE_FLOAT, SQLITE_INTEGER};
    static const int also[] = {-1, -1, -1, SQLITE_INTEGER, SQLITE_INTEGER, SQLITE_INTEGER, -1};
    int i, proto;

    for (i = 0; i < 7; i++) {
        int t = sqlite3_column_type(st, i);

        if (t == want[i] || t == also[i])
            continue;
        snprintf(why, whylen, "column %s is %s, not %s%s", col[i], type_name(t),
                 type_name(want[i]), i == 3 ? " or INTEGER" : "");
        return why;
    }
    if (read_protocol(st, &proto, why, whylen))
        return why;
    row->key = (const char *)sqlite3_column_text(st, 0);
    row->key_len = (size_t)sqlite3_column_bytes(st, 0);
    row->blob = sqlite3_column_blob(st, 1);
    row->blob_len = (size_t)sqlite3_column_bytes(st, 1);
    row->fingerprint = (uint64_t)sqlite3_column_int64(st, 2);
    row->protocol = proto;
    row->created = sqlite3_column_double(st, 4);
    row->last_seen = sqlite3_column_double(st, 5);
    row->anomalies = (uint64_t)sqlite3_column_int64(st, 6);
    if (!row->key) {
        snprintf(why, whylen, "out of memory reading the key");
        return why;
    }
    if (!row->blob)
        row->blob = ""; /* a zero-length blob */
    return NULL;
}

long ad_store_load(ad_store *s, int (*fn)(void *ctx, const ad_store_row *row), void *ctx,
                   long *skipped, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    long given = 0, skip = 0;
    char why[256];
    int rc;

    ad_store_seterr(err, errlen, "%s", "");
    if (skipped)
        *skipped = 0;
    if (!s || !fn) {
        ad_store_seterr(err, errlen, "no store or no callback");
        return -AD_EINVAL;
    }
    rc = sqlite3_prepare_v2(s->db,
                            "SELECT key, blob, fingerprint, protocol, created, last_seen,"
                            " anomalies FROM series ORDER BY key",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return ad_store_dberr(s->db, rc, err, errlen, "load");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        ad_store_row row;
        const char *bad = read_row(st, &row, why, sizeof(why));

        if (bad) {
            if (skip++ == 0) {
                const char *k = sqlite3_column_type(st, 0) == SQLITE_TEXT
                                    ? (const char *)sqlite3_column_text(st, 0)
                                    : NULL;

                ad_store_seterr(err, errlen, "skipped row %s%s%s: %s", k ? "\"" : "",
                                k ? k : "(no key)", k ? "\"" : "", bad);
            }
            continue;
        }
        given++;
        if (fn(ctx, &row) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE) {
        long r = ad_store_dberr(s->db, rc, err, errlen, "load");

        sqlite3_finalize(st);
        return r;
    }
    sqlite3_finalize(st);
    if (skipped)
        *skipped = skip;
    return given;
}

long ad_store_count(ad_store *s)
{
    long long n = 0;

    if (!s)
        return -AD_EINVAL;
    if (query_int(s->db, "SELECT count(*) FROM series", &n) != SQLITE_OK)
        return -AD_EIO;
    return (long)n;
}

int ad_store_check(ad_store *s, char *err, size_t errlen)
{
    char problem[256];
    int rc;

    ad_store_seterr(err, errlen, "%s", "");
    if (!s)
        return -AD_EINVAL;
    rc = check_db(s->db, "PRAGMA integrity_check(3)", problem, sizeof(problem));
    if (rc != SQLITE_OK) {
        int r = ad_store_dberr(s->db, rc, err, errlen, "integrity_check");

        return is_damage(rc) ? -AD_EFORMAT : r;
    }
    if (problem[0]) {
        ad_store_seterr(err, errlen, "integrity_check: %s", problem);
        return -AD_EFORMAT;
    }
    return 0;
}

int ad_store_test_exec(ad_store *s, const char *sql, char *err, size_t errlen)
{
    return exec(s->db, sql, err, errlen);
}
