/*
 * persist.c - restore at start, checkpoints and deletes: the daemon's side of the store.
 */
#include "state/persist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "families.h"
#include "log.h"
#include "text.h"

#define WARN_EVERY 60.0 /* seconds between repeated store warnings */
/* A checkpoint batch copies at most store.batch_bytes of blobs on the loop thread: a
 * pass over many changed series goes out as several batches, one after another, so the
 * loop never stalls for long copying detectors (16 MiB: about 10 ms). */

enum { SKIP_DAMAGED = 0, SKIP_SETTINGS = 1, SKIP_NO_ROOM = 2, SKIP_BAD_KEY = 3 };

uint64_t ad_persist_fingerprint(const ad_detector_config *c)
{
    uint8_t buf[1024];
    ad_wbuf w;

    ad_wbuf_init(&w, buf, sizeof(buf));
    ad_detector_config_write(&w, c);
    /* Fields appended to the configuration since blob version 6 are left out while they
     * hold the value that behaves as before them, so settings saved before them keep
     * their fingerprint (an upgrade restores those series); any other value counts as
     * other settings (those series start afresh). They drop from the end: version 9's
     * stateful (4 bytes) at 0, then version 8's feature_span, raw_k, raw_rms (12) with
     * the time features always fed and no raw signal, then version 7's forget_bias (4)
     * at 1. */
    if (c->stateful == 0 && w.len >= 20) {
        w.len -= 4;
        if (c->feature_span == 0 && c->raw_k == 0.0f) {
            w.len -= 12;
            if (c->forget_bias == 1.0f)
                w.len -= 4;
        }
    }
    /* Two CRCs (forwards, and seeded) make a 64-bit fingerprint; the config is small
     * and fixed-size, so a collision between settings one would really use is not a
     * concern. */
    return ((uint64_t)ad_crc32(0, buf, w.len) << 32) | ad_crc32(0x9e3779b9u, buf, w.len);
}

static int is_family_key(const char *key)
{
    return !strncmp(key, AD_FAMILY_PREFIX, strlen(AD_FAMILY_PREFIX));
}

/* Pass 1: the families' networks. */
static int restore_family(void *ctx, const ad_store_row *row)
{
    ad_daemon *d = ctx;
    char err[256];

    if (!is_family_key(row->key))
        return 0;
    if (ad_fam_restore(d, row->key, row->fingerprint, row->blob, row->blob_len, err,
                       sizeof(err)) < 0) {
        d->restore_skipped[SKIP_SETTINGS]++;
        ad_log_info("store: %s not restored (%s): its members start afresh", row->key, err);
        ad_persist_forget(d, row->key);
    }
    return 0;
}

/* Pass 2: the series. */
static int restore_row(void *ctx, const ad_store_row *row)
{
    ad_daemon *d = ctx;
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
        d->restore_skipped[SKIP_BAD_KEY]++;
        ad_log_warn("store: series %s: its key is not valid UTF-8: not restored, deleted",
                    row->key);
        ad_persist_forget(d, row->key);
        return 0;
    }
    rule = ad_config_match(&d->cfg, row->key, &det, &ignore);
    shared = rule >= 0 && d->cfg.rules[rule].shared;
    if (ignore) {
        d->restore_skipped[SKIP_NO_ROOM]++;
        ad_persist_forget(d, row->key);
        return 0;
    }
    if (row->fingerprint != (shared ? ad_fam_fingerprint(det) : ad_persist_fingerprint(det))) {
        d->restore_skipped[SKIP_SETTINGS]++;
        ad_log_info("store: series %s: its settings changed since it was saved: it starts "
                    "afresh", row->key);
        return 0;
    }
    if (shared && !(fam = ad_fam_get(d, rule))) {
        d->restore_skipped[SKIP_NO_ROOM]++;
        return 0;
    }
    if ((fam ? ad_detector_load_member(row->blob, row->blob_len, fam->net, &dt, err,
                                       sizeof(err))
             : ad_detector_load(row->blob, row->blob_len, &dt, err, sizeof(err))) < 0) {
        d->restore_skipped[SKIP_DAMAGED]++;
        ad_log_warn("store: series %s: its saved state is refused (%s): it starts afresh",
                    row->key, err);
        return 0;
    }
    if (fam && ad_detector_trained(dt) && !fam->trained) {
        /* its family's network was not restored: a joined member cannot go on */
        ad_detector_free(dt);
        d->restore_skipped[SKIP_SETTINGS]++;
        return 0;
    }
    if (ad_series_table_add(d->series, row->key, row->key_len, d->cfg.recent, &s) < 0) {
        ad_detector_free(dt);
        d->restore_skipped[SKIP_NO_ROOM]++;
        return 0;
    }
    s->det = dt;
    if (d->cfg.weights != AD_W_F32)
        ad_detector_set_weights(dt, d->cfg.weights);
    s->family = fam;
    if (fam)
        fam->members++;
    s->rule = rule;
    s->proto = row->protocol >= 0 && row->protocol < AD_PROTO_N ? row->protocol : 0;
    s->created = row->created;
    s->last_seen = ad_wall_now(); /* idle time counts from the restart, not the downtime */
    s->anomalies = row->anomalies;
    s->fingerprint = row->fingerprint;
    d->restored++;
    return 0;
}

int ad_persist_restore(ad_daemon *d)
{
    char err[512];
    long n, skipped = 0;
    int moved = 0;

    if (!d->cfg.store_enabled)
        return 0;
    if (ad_store_open(d->cfg.store_path, &d->store, &moved, err, sizeof(err)) < 0) {
        ad_log_error("store: cannot open %s: %s (running without it: states will not "
                     "survive a restart)", d->cfg.store_path, err);
        d->store = NULL;
        return 0;
    }
    if (moved)
        ad_log_warn("store: %s", err);
    n = ad_store_load(d->store, restore_family, d, NULL, err, sizeof(err));
    if (n >= 0)
        n = ad_store_load(d->store, restore_row, d, &skipped, err, sizeof(err));
    if (n < 0) {
        ad_log_error("store: reading %s failed: %s (series start afresh)", d->cfg.store_path,
                     err);
        return 0;
    }
    d->restore_skipped[SKIP_DAMAGED] += (uint64_t)skipped;
    ad_log_info("store: %s: %llu series restored, %llu damaged, %llu with changed settings, "
                "%llu ignored or without room, %llu with a key that is not valid UTF-8",
                d->cfg.store_path, (unsigned long long)d->restored,
                (unsigned long long)d->restore_skipped[SKIP_DAMAGED],
                (unsigned long long)d->restore_skipped[SKIP_SETTINGS],
                (unsigned long long)d->restore_skipped[SKIP_NO_ROOM],
                (unsigned long long)d->restore_skipped[SKIP_BAD_KEY]);
    return 0;
}

void ad_persist_forget(ad_daemon *d, const char *key)
{
    char *k;

    if (!d->store)
        return;
    if (d->ndeletes == d->cap_deletes) {
        size_t cap = d->cap_deletes ? 2 * d->cap_deletes : 64;
        char **v = realloc(d->deletes, cap * sizeof(*v));

        if (!v)
            return; /* the row stays; it is refused or replaced when the series returns */
        d->deletes = v;
        d->cap_deletes = cap;
    }
    if ((k = strdup(key)))
        d->deletes[d->ndeletes++] = k;
}

static int checkpoint_batch(ad_daemon *d, void (*done)(ad_daemon *d), int chained);

static void write_done(void *ctx, ad_store_batch *b, int status, const char *err)
{
    ad_daemon *d = ctx;
    void (*done)(ad_daemon *) = d->checkpoint_done;

    if (status < 0) {
        double now = ad_wall_now();
        size_t n = ad_store_batch_size(b);

        /* Nothing was written: mark the series changed again and keep the deletes. */
        for (size_t i = 0; i < n; i++) {
            int put;
            const char *key = ad_store_batch_key(b, i, &put);
            ad_series *s = put ? ad_series_table_find(d->series, key, strlen(key)) : NULL;

            if (s)
                s->dirty = 1;
            else if (put && is_family_key(key)) {
                for (ad_fam *f = d->families; f; f = f->next) {
                    if (!strcmp(f->name, key))
                        f->dirty = 1;
                }
            }
            else if (!put)
                ad_persist_forget(d, key);
        }
        if (now - d->last_store_warn >= WARN_EVERY) {
            ad_log_error("store: checkpoint of %zu series failed: %s (detection goes on; "
                         "retried at the next checkpoint)", n, err);
            d->last_store_warn = now;
        }
    } else {
        ad_log_debug("store: checkpoint of %zu changes written in %.3f s",
                     ad_store_batch_size(b), ad_store_get_stats(d->store)->last_seconds);
    }
    ad_store_batch_free(b);
    d->checkpoint_done = NULL;
    if (status == 0 && d->ckpt_more) {
        d->ckpt_more = 0;
        if (checkpoint_batch(d, done, 1) == 0)
            return; /* the pass goes on: done is called at its end */
    }
    d->ckpt_more = 0;
    if (done)
        done(d);
}

int ad_persist_checkpoint(ad_daemon *d, void (*done)(ad_daemon *d))
{
    return checkpoint_batch(d, done, 0);
}

/* One batch of a pass over the series table, from d->ckpt_pos round to where the pass
 * began; at most store.batch_bytes of blobs (then d->ckpt_more, and write_done sends the
 * next batch). */
static int checkpoint_batch(ad_daemon *d, void (*done)(ad_daemon *d), int chained)
{
    ad_store_batch *b;
    ad_series_iter it;
    ad_series *s;
    uint8_t *buf = NULL;
    size_t cap = 0, bytes = 0;
    int r;

    if (!d->store) {
        if (done)
            done(d);
        return 0;
    }
    if (ad_store_busy(d->store)) {
        d->checkpoints_skipped++;
        return -AD_EFULL;
    }
    if (!(b = ad_store_batch_new()))
        return -AD_ENOMEM;
    if (!chained) {
        d->ckpt_start = d->ckpt_pos;
        d->ckpt_wrapped = 0;
    }
    ad_series_iter_start(&it);
    it.bucket = d->ckpt_pos;
    for (;;) {
        size_t need, len;
        char err[256];
        ad_store_row row;

        if (!(s = ad_series_iter_next(d->series, &it))) {
            if (d->ckpt_wrapped)
                break; /* a table rebuilt under the pass: it ends here */
            d->ckpt_wrapped = 1;
            ad_series_iter_start(&it);
            continue;
        }
        if (d->ckpt_wrapped && it.bucket - 1 >= d->ckpt_start) {
            it.bucket--; /* back where the pass began: the next pass starts here */
            break;
        }
        if (!s->dirty)
            continue;
        if (bytes >= d->cfg.store_batch_bytes) {
            it.bucket--; /* this one goes in the next batch */
            d->ckpt_more = 1;
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
    d->ckpt_pos = it.bucket;
    free(buf);
    for (ad_fam *f = d->families; f; f = f->next) {
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
    for (size_t i = 0; i < d->ndeletes; i++) {
        ad_store_batch_delete(b, d->deletes[i], strlen(d->deletes[i]));
        free(d->deletes[i]);
    }
    d->ndeletes = 0;
    if (ad_store_batch_size(b) == 0) {
        ad_store_batch_free(b);
        if (done)
            done(d);
        return 0;
    }
    d->checkpoint_done = done;
    r = ad_store_write_async(d->loop, d->store, b, write_done, d);
    if (r < 0) {
        /* Not out: undo as a failed write would. */
        d->checkpoint_done = NULL;
        write_done(d, b, r, "cannot start the write");
        return r;
    }
    return 0;
}

int ad_persist_busy(const ad_daemon *d)
{
    return d->store && ad_store_busy(d->store);
}

void ad_persist_close(ad_daemon *d)
{
    for (size_t i = 0; i < d->ndeletes; i++)
        free(d->deletes[i]);
    free(d->deletes);
    d->deletes = NULL;
    d->ndeletes = d->cap_deletes = 0;
    ad_store_close(d->store);
    d->store = NULL;
}
