/*
 * store_impl.h - what the two halves of the state store share, for them only (other
 * modules include state/store.h): store_db.c opens, checks, reads and closes the database;
 * store_write.c builds batches and writes them, blocking or on the thread pool.
 */
#ifndef AD_STORE_IMPL_H
#define AD_STORE_IMPL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "state/store.h"

/* What one transaction did, for the stats. */
typedef struct result {
    uint64_t put, deleted, bytes;
    double seconds;
} result;

typedef struct wjob {
    uv_work_t req; /* req.data = the store */
    ad_store_batch *b;
    ad_store_done_fn fn;
    void *ctx;
    int status;
    result res;
    char err[512];
} wjob;

struct ad_store {
    sqlite3 *db;
    sqlite3_stmt *put, *del, *begin, *commit, *rollback;
    int busy; /* an async write is out (loop thread only) */
    wjob job;
    ad_store_stats st;
};

/* Formats into err (errlen bytes; nothing when err is NULL). */
void ad_store_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "<what>: <sqlite3_errmsg> (SQLITE_XXX)" into err; returns the ad_err for SQLite's rc
 * (-AD_ENOMEM or -AD_EIO). db may be NULL. */
int ad_store_dberr(sqlite3 *db, int rc, char *err, size_t errlen, const char *what);

/* The text a protocol is stored as: its name (protocols.h), or NULL when proto is not
 * one. */
const char *ad_store_protocol_text(int proto);

#endif
