/*
 * store.h - the state store: one embedded SQLite database (WAL mode) in the state
 * directory, holding per series its detector blob (models/detector.h: versioned,
 * checksummed), a fingerprint of its settings, and its counters and timestamps.
 *
 * Writes come in batches (puts and deletes) built on the loop thread and written in one
 * transaction: either the whole batch is in the file or none of it. ad_store_write is
 * blocking and safe on any thread, one caller at a time; the daemon runs it on a worker
 * (ad_store_write_async) so the loop never waits for the disk. A failed write (disk
 * full, read-only file, I/O error) rolls back, returns -AD_EIO with SQLite's message,
 * and leaves the database as it was; the caller retries later.
 *
 * Opening a database that is not SQLite, is corrupt (quick_check fails) or has another
 * schema version moves it aside as "<path>.bad-<unix time>" (".2", ".3"... appended if
 * taken; its -wal and -shm follow as "<that>-wal", "<that>-shm") and starts a new one,
 * with a message saying so, so the daemon still starts. Rows whose columns have the
 * wrong types are skipped by ad_store_load with a reason.
 *
 * Schema (version 1, PRAGMA user_version):
 *   series(key TEXT PRIMARY KEY, blob BLOB NOT NULL, fingerprint INTEGER NOT NULL,
 *          protocol INTEGER NOT NULL, created REAL NOT NULL, last_seen REAL NOT NULL,
 *          anomalies INTEGER NOT NULL, saved REAL NOT NULL)
 *
 * The protocol is stored by name, as TEXT ("graphite", "influx", ... protocols.h), in
 * the column declared INTEGER when the schema was made (SQLite keeps each value's own
 * type; the declaration is left as it was, so files old and new have one schema): the
 * enum's numbers never reach the file, and protocols may be added or reordered. Rows
 * written before names hold an INTEGER, read through a fixed legacy table that never
 * follows the enum: 0 graphite, 1 influx, 2 statsd, 3 jsonl, 4 prometheus. A name this
 * build does not know, or a legacy number past the table, loads as protocol -1 (the row
 * is kept: persist.c restores it as graphite, as it did an out-of-range number); a
 * negative or huge number, or a value of another type, skips the row as before. A file
 * written by this build is not readable by builds before names (they skip its rows).
 */
#ifndef AD_STORE_H
#define AD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* One series' saved state. In a batch, key and blob are copies the batch owns; from
 * ad_store_load they point into SQLite's memory, valid during the callback only. */
typedef struct ad_store_row {
    const char *key;      /* NUL-terminated */
    size_t key_len;
    const void *blob;     /* the detector blob */
    size_t blob_len;
    uint64_t fingerprint; /* of the series' settings when saved */
    int protocol;         /* ad_proto of its first sample; from ad_store_load, -1 for a
                             protocol this build does not know (see above) */
    double created;       /* wall clock, seconds */
    double last_seen;     /* wall clock, seconds */
    uint64_t anomalies;   /* alerts raised */
} ad_store_row;

typedef struct ad_store ad_store;
typedef struct ad_store_batch ad_store_batch;

typedef struct ad_store_stats {
    uint64_t writes;        /* batches written */
    uint64_t write_errors;  /* batches that failed (rolled back) */
    uint64_t rows_put;      /* rows written by successful batches */
    uint64_t rows_deleted;
    double last_seconds;    /* wall time of the last successful batch */
    uint64_t bytes;         /* blob bytes written by successful batches */
} ad_store_stats;

/* Opens or creates the database at path (its directory must exist): WAL journal,
 * synchronous=NORMAL, busy timeout, schema created or checked. A damaged or foreign
 * file is moved aside (see above; *moved_aside is set, err says where). Returns 0 or a
 * negative ad_err with a message (-AD_EIO: cannot create or open at all). */
int ad_store_open(const char *path, ad_store **out, int *moved_aside, char *err,
                  size_t errlen);

/* Closes the database (checkpointing the WAL). NULL is fine. Must not be called while
 * an async write is out (asserted in debug builds). */
void ad_store_close(ad_store *s);

/* Calls fn for every row (in key order). fn returns 0 to go on. A row with a column of
 * the wrong type is skipped and counted in *skipped (may be NULL), the first one's reason
 * left in err ("" when none was skipped). Returns the number of rows given to fn, or a
 * negative ad_err with a message. */
long ad_store_load(ad_store *s, int (*fn)(void *ctx, const ad_store_row *row), void *ctx,
                   long *skipped, char *err, size_t errlen);

/* Rows in the database, or a negative ad_err. */
long ad_store_count(ad_store *s);

/* PRAGMA integrity_check: 0 when "ok", else -AD_EFORMAT with the first problem. */
int ad_store_check(ad_store *s, char *err, size_t errlen);

/* A batch of writes. */
ad_store_batch *ad_store_batch_new(void);
void ad_store_batch_free(ad_store_batch *b);
/* Adds an upsert (key and blob copied). 0, -AD_ENOMEM, or -AD_EINVAL when row->protocol
 * is not an ad_proto. A later put or delete of the same key in one batch wins. */
int ad_store_batch_put(ad_store_batch *b, const ad_store_row *row);
/* Adds a delete of a key. 0 or -AD_ENOMEM. */
int ad_store_batch_delete(ad_store_batch *b, const char *key, size_t key_len);
size_t ad_store_batch_size(const ad_store_batch *b); /* puts + deletes */
/* The i-th entry's key, and whether it is a put (1) or a delete (0). */
const char *ad_store_batch_key(const ad_store_batch *b, size_t i, int *is_put);

/* Writes a batch in one transaction. 0, or a negative ad_err with a message (nothing of
 * the batch written). Blocking; any thread, one caller at a time. */
int ad_store_write(ad_store *s, const ad_store_batch *b, char *err, size_t errlen);

/* Called on the loop thread when an async write is done: status as ad_store_write's;
 * the batch is still the caller's (free it here). */
typedef void (*ad_store_done_fn)(void *ctx, ad_store_batch *b, int status, const char *err);

/* Writes a batch on libuv's thread pool. Returns 0 (fn will be called), -AD_EFULL when a
 * write is already out (one at a time: try again later; fn not called), or another
 * negative ad_err. */
int ad_store_write_async(uv_loop_t *loop, ad_store *s, ad_store_batch *b, ad_store_done_fn fn,
                         void *ctx);

/* A write is out. */
int ad_store_busy(const ad_store *s);

/* The counters. Async writes are counted on the loop thread (in the after-work
 * callback), so the loop may read them while a write is out. */
const ad_store_stats *ad_store_get_stats(const ad_store *s);

#endif
