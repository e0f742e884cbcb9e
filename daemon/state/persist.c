/*
 * persist.c - restore at start, checkpoints and deletes: the daemon's side of the store.
 */
#include "state/persist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fingerprint.h"
#include "log.h"
#include "text.h"

#define WARN_EVERY 60.0 /* seconds between repeated store warnings */
/* A checkpoint batch copies at most store.batch_bytes of blobs on the loop thread: a
 * pass over many changed series goes out as several batches, one after another, so the
 * loop never stalls for long copying detectors (16 MiB: about 10 ms). */

struct ad_persist {
    uv_loop_t *loop;
    const ad_config *cfg;      /* the owner's running configuration */
    ad_series_table *series;   /* the owner's series table */
    ad_fams *fams;             /* the owner's families */
    ad_store *store;           /* NULL when store.enabled is false or it did not open */
    char **deletes;            /* keys of evicted series to delete at the next checkpoint
                                  (ndeletes of cap_deletes) */
    size_t ndeletes, cap_deletes;
    ad_persist_done_fn done;   /* called when the checkpoint out is over */
    void *done_arg;
    size_t ckpt_pos;           /* series table slot the next checkpoint batch starts at */
    size_t ckpt_start;         /* where the current pass over the table began */
    int ckpt_wrapped;          /* the current pass went past the table's end */
    int ckpt_more;             /* the batch out was capped: the pass goes on */
    ad_persist_stats st;
    double last_store_warn;
};

static int is_family_key(const char *key)
{
    return !strncmp(key, AD_FAMILY_PREFIX, strlen(AD_FAMILY_PREFIX));
}

/* Pass 1: the families' networks. */
static int restore_family(void *ctx, const ad_store_row *row)
{
    ad_persist *p = ctx;
    char err[256];

    if (!is_family_key(row->key))
        return 0;
    if (ad_fam_restore(p->fams, row->key, row->fingerprint, row->blob, row->blob_len, err,
                       sizeof(err)) < 0) {
        p->st.restore_skipped[AD_SKIP_SETTINGS]++;
        ad_log_info("store: %s not restored (%s): its members start afresh", row->key, err);
        ad_persist_forget(p, row->key);
    }
    return 0;
}

/* Pass 2: the series. */
static int restore_row(void *ctx, const ad_store_row *row)
{
    ad_persist *p = ctx;
    const ad_config *cfg = p->cfg;
    const ad_detector_config *det;
    char err[256];
    ad_detector *dt = NULL;
    ad_fam *fam = NULL;
    ad_series *s;
    int ignore, rule, shared;

    if (is_family_key(row->key))
        return 0;
    if (!ad_utf8_valid(row->key, row->key_len)) {
        /* Saved before keys had to be valid UTF-8 (text.h): such a key would break
         * /metrics and the API. Dropped from the store, counted. */
        p->st.restore_skipped[AD_SKIP_BAD_KEY]++;
        ad_log_warn("store: series %s: its key is not valid UTF-8: not restored, deleted",
                    row->key);
        ad_persist_forget(p, row->key);
        return 0;
    }
    rule = ad_config_match(cfg, row->key, &det, &ignore);
    shared = rule >= 0 && cfg->rules[rule].shared;
    if (ignore) {
        p->st.restore_skipped[AD_SKIP_NO_ROOM]++;
        ad_persist_forget(p, row->key);
        return 0;
    }
    if (row->fingerprint != ad_fingerprint(det, shared)) {
        p->st.restore_skipped[AD_SKIP_SETTINGS]++;
        ad_log_info("store: series %s: its settings changed since it was saved: it starts "
                    "afresh", row->key);
        return 0;
    }
    if (shared && !(fam = ad_fam_get(p->fams, rule))) {
        p->st.restore_skipped[AD_SKIP_NO_ROOM]++;
        return 0;
    }
    if ((fam ? ad_detector_load_member(row->blob, row->blob_len, fam->net, &dt, err,
                                       sizeof(err))
             : ad_detector_load(row->blob, row->blob_len, &dt, err, sizeof(err))) < 0) {
        p->st.restore_skipped[AD_SKIP_DAMAGED]++;
        ad_log_warn("store: series %s: its saved state is refused (%s): it starts afresh",
                    row->key, err);
        return 0;
    }
    if (fam && ad_detector_trained(dt) && !fam->trained) {
        /* its family's network was not restored: a joined member cannot go on */
        ad_detector_free(dt);
        p->st.restore_skipped[AD_SKIP_SETTINGS]++;
        return 0;
    }
    if (ad_series_table_add(p->series, row->key, row->key_len, cfg->recent, &s) < 0) {
        ad_detector_free(dt);
        p->st.restore_skipped[AD_SKIP_NO_ROOM]++;
        return 0;
    }
    s->det = dt;
    if (cfg->weights != AD_W_F32)
        ad_detector_set_weights(dt, cfg->weights);
    /* left out of the fingerprint: the configuration's apply (checked when loaded) */
    ad_detector_set_incident(dt, det->incident_z, det->incident_ref, det->departure);
    s->family = fam;
    if (fam)
        fam->members++;
    s->rule = rule;
    s->proto = row->protocol >= 0 && row->protocol < AD_PROTO_N ? row->protocol : 0;
    s->created = row->created;
    s->last_seen = ad_wall_now(); /* idle time counts from the restart, not the downtime */
    s->anomalies = row->anomalies;
    s->fingerprint = row->fingerprint;
    p->st.restored++;
    return 0;
}

/* The store's rows into the series table: the families' networks, then the series. */
static void restore(ad_persist *p)
{
    const char *path = p->cfg->store_path;
    char err[512];
    long n, skipped = 0;
    int moved = 0;

    if (ad_store_open(path, &p->store, &moved, err, sizeof(err)) < 0) {
        ad_log_error("store: cannot open %s: %s (running without it: states will not "
                     "survive a restart)", path, err);
        p->store = NULL;
        return;
    }
    if (moved)
        ad_log_warn("store: %s", err);
    n = ad_store_load(p->store, restore_family, p, NULL, err, sizeof(err));
    if (n >= 0)
        n = ad_store_load(p->store, restore_row, p, &skipped, err, sizeof(err));
    if (n < 0) {
        ad_log_error("store: reading %s failed: %s (series start afresh)", path, err);
        return;
    }
    p->st.restore_skipped[AD_SKIP_DAMAGED] += (uint64_t)skipped;
    ad_log_info("store: %s: %llu series restored, %llu damaged, %llu with changed settings, "
                "%llu ignored or without room, %llu with a key that is not valid UTF-8",
                path, (unsigned long long)p->st.restored,
                (unsigned long long)p->st.restore_skipped[AD_SKIP_DAMAGED],
                (unsigned long long)p->st.restore_skipped[AD_SKIP_SETTINGS],
                (unsigned long long)p->st.restore_skipped[AD_SKIP_NO_ROOM],
                (unsigned long long)p->st.restore_skipped[AD_SKIP_BAD_KEY]);
}

int ad_persist_open(uv_loop_t *loop, const ad_config *cfg, ad_series_table *series,
                    ad_fams *fams, ad_persist **out)
{
    ad_persist *p = calloc(1, sizeof(*p));

    *out = p;
    if (!p)
        return -AD_ENOMEM;
    p->loop = loop;
    p->cfg = cfg;
    p->series = series;
    p->fams = fams;
    if (cfg->store_enabled)
        restore(p);
    return 0;
}

void ad_persist_forget(ad_persist *p, const char *key)
{
    char *k;

    if (!p || !p->store)
        return;
    if (p->ndeletes == p->cap_deletes) {
        size_t cap = p->cap_deletes ? 2 * p->cap_deletes : 64;
        char **v = realloc(p->deletes, cap * sizeof(*v));

        if (!v)
            return; /* the row stays; it is refused or replaced when the series returns */
        p->deletes = v;
        p->cap_deletes = cap;
    }
    if ((k = strdup(key)))
        p->deletes[p->ndeletes++] = k;
}

static int checkpoint_batch(ad_persist *p, ad_persist_done_fn done, void *arg, int chained);

/* A failed write: nothing was written, so the series are marked changed again and the
 * deletes kept. */
static void write_failed(ad_persist *p, ad_store_batch *b, const char *err)
{
    double now = ad_wall_now();
    size_t n = ad_store_batch_size(b);

    for (size_t i = 0; i < n; i++) {
        int put;
        const char *key = ad_store_batch_key(b, i, &put);
        ad_series *s = put ? ad_series_table_find(p->series, key, strlen(key)) : NULL;

        if (s)
            s->dirty = 1;
        else if (put && is_family_key(key)) {
            for (ad_fam *f = p->fams->head; f; f = f->next) {
                if (!strcmp(f->name, key))
                    f->dirty = 1;
            }
        }
        else if (!put)
            ad_persist_forget(p, key);
    }
    if (now - p->last_store_warn >= WARN_EVERY) {
        ad_log_error("store: checkpoint of %zu series failed: %s (detection goes on; "
                     "retried at the next checkpoint)", n, err);
        p->last_store_warn = now;
    }
}

static void write_done(void *ctx, ad_store_batch *b, int status, const char *err)
{
    ad_persist *p = ctx;
    ad_persist_done_fn done = p->done;
    void *arg = p->done_arg;

    if (status < 0)
        write_failed(p, b, err);
    else
        ad_log_debug("store: checkpoint of %zu changes written in %.3f s",
                     ad_store_batch_size(b), ad_store_get_stats(p->store)->last_seconds);
    ad_store_batch_free(b);
    p->done = NULL;
    p->done_arg = NULL;
    if (status == 0 && p->ckpt_more) {
        p->ckpt_more = 0;
        if (checkpoint_batch(p, done, arg, 1) == 0)
            return; /* the pass goes on: done is called at its end */
    }
    p->ckpt_more = 0;
    if (done)
        done(arg);
}

int ad_persist_checkpoint(ad_persist *p, ad_persist_done_fn done, void *arg)
{
    if (!p) {
        if (done)
            done(arg);
        return 0;
    }
    return checkpoint_batch(p, done, arg, 0);
}

void ad_persist_when_idle(ad_persist *p, ad_persist_done_fn fn, void *arg)
{
    if (ad_persist_busy(p)) {
        p->done = fn;
        p->done_arg = arg;
        return;
    }
    fn(arg);
}

/* The changed series from p->ckpt_pos round to where the pass began, into b: at most
 * store.batch_bytes of blobs (then p->ckpt_more, and write_done sends the next batch). */
static void put_series(ad_persist *p, ad_store_batch *b)
{
    ad_series_iter it;
    ad_series *s;
    uint8_t *buf = NULL;
    size_t cap = 0, bytes = 0;

    ad_series_iter_start(&it);
    it.bucket = p->ckpt_pos;
    for (;;) {
        size_t need, len;
        char err[256];
        ad_store_row row;

        if (!(s = ad_series_iter_next(p->series, &it))) {
            if (p->ckpt_wrapped)
                break; /* a table rebuilt under the pass: it ends here */
            p->ckpt_wrapped = 1;
            ad_series_iter_start(&it);
            continue;
        }
        if (p->ckpt_wrapped && it.bucket - 1 >= p->ckpt_start) {
            it.bucket--; /* back where the pass began: the next pass starts here */
            break;
        }
        if (!s->dirty)
            continue;
        if (bytes >= p->cfg->store_batch_bytes) {
            it.bucket--; /* this one goes in the next batch */
            p->ckpt_more = 1;
            break;
        }
        need = ad_detector_blob_size(s->det);
        if (need > cap) {
            uint8_t *nb = realloc(buf, need);

            if (!nb)
                break;
            buf = nb;
            cap = need;
        }
        if (ad_detector_save(s->det, buf, cap, &len, err, sizeof(err)) < 0) {
            ad_log_warn("store: series %s cannot be saved: %s", s->key, err);
            continue;
        }
        row.key = s->key;
        row.key_len = s->key_len;
        row.blob = buf;
        row.blob_len = len;
        row.fingerprint = s->fingerprint;
        row.protocol = s->proto;
        row.created = s->created;
        row.last_seen = s->last_seen;
        row.anomalies = s->anomalies;
        if (ad_store_batch_put(b, &row) < 0)
            break;
        s->dirty = 0;
        bytes += len;
    }
    p->ckpt_pos = it.bucket;
    free(buf);
}

/* One batch of a pass over the series table (put_series), the changed families' networks
 * and the deletes. */
static int checkpoint_batch(ad_persist *p, ad_persist_done_fn done, void *arg, int chained)
{
    ad_store_batch *b;
    int r;

    if (!p->store) {
        if (done)
            done(arg);
        return 0;
    }
    if (ad_store_busy(p->store)) {
        p->st.checkpoints_skipped++;
        return -AD_EFULL;
    }
    if (!(b = ad_store_batch_new()))
        return -AD_ENOMEM;
    if (!chained) {
        p->ckpt_start = p->ckpt_pos;
        p->ckpt_wrapped = 0;
    }
    put_series(p, b);
    for (ad_fam *f = p->fams->head; f; f = f->next) {
        ad_store_row row = {0};
        void *blob;

        if (!f->dirty || !(blob = ad_fam_save(f, &row.blob_len)))
            continue;
        row.key = f->name;
        row.key_len = strlen(f->name);
        row.blob = blob;
        row.fingerprint = f->fingerprint;
        row.protocol = 0; /* not a series: unused */
        row.created = row.last_seen = ad_wall_now();
        if (ad_store_batch_put(b, &row) == 0)
            f->dirty = 0;
        free(blob);
    }
    for (size_t i = 0; i < p->ndeletes; i++) {
        ad_store_batch_delete(b, p->deletes[i], strlen(p->deletes[i]));
        free(p->deletes[i]);
    }
    p->ndeletes = 0;
    if (ad_store_batch_size(b) == 0) {
        ad_store_batch_free(b);
        if (done)
            done(arg);
        return 0;
    }
    p->done = done;
    p->done_arg = arg;
    r = ad_store_write_async(p->loop, p->store, b, write_done, p);
    if (r < 0) {
        /* Not out: undo as a failed write would. */
        p->done = NULL;
        p->done_arg = NULL;
        write_done(p, b, r, "cannot start the write");
        return r;
    }
    return 0;
}

int ad_persist_busy(const ad_persist *p)
{
    return p && p->store && ad_store_busy(p->store);
}

int ad_persist_has_store(const ad_persist *p)
{
    return p && p->store;
}

const ad_persist_stats *ad_persist_get_stats(const ad_persist *p)
{
    static const ad_persist_stats zero;

    return p ? &p->st : &zero;
}

const ad_store_stats *ad_persist_store_stats(const ad_persist *p)
{
    return p && p->store ? ad_store_get_stats(p->store) : NULL;
}

void ad_persist_close(ad_persist *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ndeletes; i++)
        free(p->deletes[i]);
    free(p->deletes);
    ad_store_close(p->store);
    free(p);
}
