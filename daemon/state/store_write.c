/*
 * store_write.c - the store's writes (store.h): a batch is a growable array of entries
 * that own copies of their keys and blobs, applied in order inside BEGIN IMMEDIATE ...
 * COMMIT with the statements store_db.c prepared, so a later entry for a key wins and a
 * failure anywhere rolls the whole batch back. The async write (one at a time, its
 * uv_work_t embedded in the store) runs the transaction on the thread pool and does its
 * bookkeeping (busy flag, stats) in the after-work callback on the loop thread.
 */
#include "state/store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"

typedef struct entry {
    int is_put;
    ad_store_row row; /* key and blob: copies owned by the batch */
} entry;

struct ad_store_batch {
    entry *v; /* (cap) */
    size_t n, cap;
};

/* --- batches ------------------------------------------------------------------------ */

ad_store_batch *ad_store_batch_new(void)
{
    return calloc(1, sizeof(ad_store_batch));
}

void ad_store_batch_free(ad_store_batch *b)
{
    size_t i;

    if (!b)
        return;
    for (i = 0; i < b->n; i++) {
        free((void *)b->v[i].row.key);
        free((void *)b->v[i].row.blob);
    }
    free(b->v);
    free(b);
}

/* Appends an entry with a copy of key (and of blob for a put). 0 or -AD_ENOMEM. */
static int add(ad_store_batch *b, int is_put, const ad_store_row *row, const char *key,
               size_t key_len)
{
    entry *e;
    char *k;
    void *blob = NULL;

    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        entry *v = realloc(b->v, cap * sizeof(*v));

        if (!v)
            return -AD_ENOMEM;
        b->v = v;
        b->cap = cap;
    }
    k = malloc(key_len + 1);
    if (!k)
        return -AD_ENOMEM;
    memcpy(k, key, key_len);
    k[key_len] = '\0';
    if (is_put) {
        blob = malloc(row->blob_len ? row->blob_len : 1);
        if (!blob) {
            free(k);
            return -AD_ENOMEM;
        }
        if (row->blob_len)
            memcpy(blob, row->blob, row->blob_len);
    }
    e = &b->v[b->n++];
    memset(e, 0, sizeof(*e));
    if (is_put)
        e->row = *row;
    e->is_put = is_put;
    e->row.key = k;
    e->row.key_len = key_len;
    e->row.blob = blob;
    return 0;
}

int ad_store_batch_put(ad_store_batch *b, const ad_store_row *row)
{
    if (!b || !row || !row->key || (!row->blob && row->blob_len) ||
        !ad_store_protocol_text(row->protocol))
        return -AD_EINVAL;
    return add(b, 1, row, row->key, row->key_len);
}

int ad_store_batch_delete(ad_store_batch *b, const char *key, size_t key_len)
{
    if (!b || !key)
        return -AD_EINVAL;
    return add(b, 0, NULL, key, key_len);
}

size_t ad_store_batch_size(const ad_store_batch *b)
{
    return b ? b->n : 0;
}

const char *ad_store_batch_key(const ad_store_batch *b, size_t i, int *is_put)
{
    if (!b || i >= b->n)
        return NULL;
    if (is_put)
        *is_put = b->v[i].is_put;
    return b->v[i].row.key;
}

/* --- writing ------------------------------------------------------------------------ */

/* Runs one prepared statement to completion; SQLITE_DONE or the error code. */
static int run(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);

    sqlite3_reset(st);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

static int bind_put(sqlite3_stmt *st, const ad_store_row *r, double saved)
{
    int rc = sqlite3_bind_text(st, 1, r->key, (int)r->key_len, SQLITE_STATIC);

    if (rc == SQLITE_OK)
        rc = r->blob_len ? sqlite3_bind_blob64(st, 2, r->blob, r->blob_len, SQLITE_STATIC)
                         : sqlite3_bind_zeroblob(st, 2, 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)r->fingerprint);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 4, ad_store_protocol_text(r->protocol), -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 5, r->created);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 6, r->last_seen);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 7, (sqlite3_int64)r->anomalies);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 8, saved);
    return rc;
}

/* The transaction; touches neither the stats nor the busy flag. */
static int write_batch(ad_store *s, const ad_store_batch *b, result *res, char *err, size_t errlen)
{
    double t0 = ad_mono_now(), saved = ad_wall_now();
    char what[160];
    size_t i;
    int rc, r;

    memset(res, 0, sizeof(*res));
    if (!s || !b) {
        ad_store_seterr(err, errlen, "no store or no batch");
        return -AD_EINVAL;
    }
    rc = run(s->begin);
    if (rc != SQLITE_DONE)
        return ad_store_dberr(s->db, rc, err, errlen, "BEGIN IMMEDIATE");
    for (i = 0; i < b->n; i++) {
        const entry *e = &b->v[i];
        sqlite3_stmt *st = e->is_put ? s->put : s->del;

        rc = e->is_put ? bind_put(st, &e->row, saved)
                       : sqlite3_bind_text(st, 1, e->row.key, (int)e->row.key_len, SQLITE_STATIC);
        if (rc == SQLITE_OK)
            rc = run(st);
        sqlite3_clear_bindings(st); /* the batch's memory is not ours to keep */
        if (rc != SQLITE_DONE) {
            snprintf(what, sizeof(what), "%s \"%.100s\"", e->is_put ? "put" : "delete", e->row.key);
            goto out_rollback;
        }
        if (e->is_put) {
            res->put++;
            res->bytes += e->row.blob_len;
        } else {
            res->deleted++;
        }
    }
    rc = run(s->commit);
    if (rc != SQLITE_DONE) {
        snprintf(what, sizeof(what), "COMMIT");
        goto out_rollback;
    }
    res->seconds = ad_mono_now() - t0;
    return 0;
out_rollback:
    r = ad_store_dberr(s->db, rc, err, errlen, what);
    if (!sqlite3_get_autocommit(s->db)) /* SQLite may have rolled back already */
        run(s->rollback);
    memset(res, 0, sizeof(*res));
    return r;
}

static void account(ad_store *s, int status, const result *res)
{
    if (status < 0) {
        s->st.write_errors++;
        return;
    }
    s->st.writes++;
    s->st.rows_put += res->put;
    s->st.rows_deleted += res->deleted;
    s->st.bytes += res->bytes;
    s->st.last_seconds = res->seconds;
}

int ad_store_write(ad_store *s, const ad_store_batch *b, char *err, size_t errlen)
{
    result res;
    int r;

    ad_store_seterr(err, errlen, "%s", "");
    r = write_batch(s, b, &res, err, errlen);
    if (s)
        account(s, r, &res);
    return r;
}

static void work_cb(uv_work_t *req)
{
    ad_store *s = req->data;
    wjob *j = &s->job;

    j->status = write_batch(s, j->b, &j->res, j->err, sizeof(j->err));
}

static void after_cb(uv_work_t *req, int status)
{
    ad_store *s = req->data;
    wjob *j = &s->job;
    ad_store_batch *b = j->b;

    if (status == UV_ECANCELED) {
        j->status = -AD_EIO;
        snprintf(j->err, sizeof(j->err), "write cancelled");
    }
    account(s, j->status, &j->res);
    s->busy = 0; /* before fn: it may start the next write */
    j->b = NULL;
    j->fn(j->ctx, b, j->status, j->err);
}

int ad_store_write_async(uv_loop_t *loop, ad_store *s, ad_store_batch *b, ad_store_done_fn fn,
                         void *ctx)
{
    wjob *j;
    int r;

    if (!loop || !s || !b || !fn)
        return -AD_EINVAL;
    if (s->busy)
        return -AD_EFULL;
    j = &s->job;
    memset(j, 0, sizeof(*j));
    j->req.data = s;
    j->b = b;
    j->fn = fn;
    j->ctx = ctx;
    r = uv_queue_work(loop, &j->req, work_cb, after_cb);
    if (r < 0)
        return -AD_EIO;
    s->busy = 1;
    return 0;
}

int ad_store_busy(const ad_store *s)
{
    return s && s->busy;
}

const ad_store_stats *ad_store_get_stats(const ad_store *s)
{
    return &s->st;
}
