/*
 * families.c - the daemon's shared families: registry, training through the trainer,
 * members joining, and the family's network in the store.
 */
#include "families.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "family.h"
#include "fingerprint.h"
#include "log.h"
#include "serial.h"

#define PER_MEMBER 4      /* windows each member gives a family training, at most */
#define MAX_WINDOWS 4096  /* windows one family training pools, at most */

void ad_fams_init(ad_fams *fs, const ad_config *cfg, ad_series_table *series,
                  ad_trainer *trainer)
{
    fs->head = NULL;
    fs->cfg = cfg;
    fs->series = series;
    fs->trainer = trainer;
}

static ad_fam *find(ad_fams *fs, const char *match, uint64_t fp)
{
    for (ad_fam *f = fs->head; f; f = f->next)
        if (f->fingerprint == fp && !strcmp(f->name + strlen(AD_FAMILY_PREFIX), match))
            return f;
    return NULL;
}

static ad_fam *fam_new(ad_fams *fs, const char *match, const ad_detector_config *det)
{
    ad_net_config nc = {det->kind, det->layers, ad_detector_input_size(det->features),
                        det->hidden, 1};
    ad_fam *f = calloc(1, sizeof(*f));
    char err[256];

    if (!f)
        return NULL;
    f->name = malloc(strlen(AD_FAMILY_PREFIX) + strlen(match) + 1);
    if (!f->name || ad_net_create(&nc, det->seed, &f->net, err, sizeof(err)) < 0) {
        free(f->name);
        free(f);
        return NULL;
    }
    ad_net_set_forget_bias(f->net, det->forget_bias);
    strcpy(f->name, AD_FAMILY_PREFIX);
    strcat(f->name, match);
    f->det = *det;
    f->fingerprint = ad_fingerprint(det, 1);
    ad_net_set_storage(f->net, ad_fam_storage(fs->cfg->weights)); /* no memory: float */
    f->pseudo.key = f->name;
    f->pseudo.key_len = strlen(f->name);
    f->pseudo.family = f;
    f->pseudo.rule = -1;
    f->next = fs->head;
    fs->head = f;
    ad_log_info("family %s: %s H=%d, shared by the series its rule matches", f->name,
                ad_cell_name(det->kind), det->hidden);
    return f;
}

int ad_fam_storage(int weights)
{
    return weights == AD_W_F32 ? AD_NET_FP32 : AD_NET_FP16;
}

ad_fam *ad_fam_get(ad_fams *fs, int rule)
{
    const ad_series_rule *r = &fs->cfg->rules[rule];
    ad_fam *f = find(fs, r->match, ad_fingerprint(&r->det, 1));

    return f ? f : fam_new(fs, r->match, &r->det);
}

void ad_fam_defer(ad_fam *f, ad_detector *det)
{
    if (f->npending == f->cap_pending) {
        size_t cap = f->cap_pending ? 2 * f->cap_pending : 64;
        ad_detector **p = realloc(f->pending, cap * sizeof(*p));

        if (!p) { /* out of memory: it steps on its own, now */
            ad_detector_step_batch(&det, 1, &f->batch);
            return;
        }
        f->pending = p;
        f->cap_pending = cap;
    }
    f->pending[f->npending++] = det;
    if (f->npending >= AD_FAM_BATCH_MAX) {
        ad_detector_step_batch(f->pending, (int)f->npending, &f->batch);
        f->batches++;
        f->batched += f->npending;
        f->npending = 0;
    }
}

void ad_fam_flush(ad_fams *fs)
{
    for (ad_fam *f = fs->head; f; f = f->next) {
        if (!f->npending)
            continue;
        ad_detector_step_batch(f->pending, (int)f->npending, &f->batch);
        f->batches++;
        f->batched += f->npending;
        f->npending = 0;
    }
}

static void join(ad_series *s)
{
    char err[256];

    if (ad_detector_join(s->det, err, sizeof(err)) == 0)
        s->dirty = 1;
}

void ad_fam_observed(ad_fams *fs, ad_series *s, const ad_result *r)
{
    ad_fam *f = s->family;
    const ad_detector_config *c = &f->det;

    f->samples_since++;
    if (!ad_detector_trained(s->det)) {
        if (f->trained) {
            if (ad_detector_get_stats(s->det)->samples >= (uint64_t)(2 * c->window))
                join(s);
        } else if (r->train_due && f->samples_since >= f->retry_at) {
            ad_trainer_submit(fs->trainer, &f->pseudo);
        }
        return;
    }
    if (c->train_every > 0 &&
        f->samples_since >= (uint64_t)c->train_every * (f->members ? f->members : 1))
        ad_trainer_submit(fs->trainer, &f->pseudo);
}

/* ---- the trainer's ops ---- */

typedef struct tjob {
    int family;
    void *job; /* ad_family_job or ad_train_job */
} tjob;

static int ops_snapshot(void *ctx, ad_series *s, void **out, char *err, size_t errlen)
{
    ad_fams *fs = ctx;
    tjob *t = calloc(1, sizeof(*t));
    int r;

    if (!t)
        return -AD_ENOMEM;
    if (!s->family || s->det) {
        r = ad_detector_snapshot(s->det, (ad_train_job **)&t->job, err, errlen);
    } else {
        ad_fam *f = s->family;
        ad_detector **m = malloc((f->members ? f->members : 1) * sizeof(*m));
        ad_series_iter it;
        ad_series *x;
        int n = 0;

        if (!m) {
            free(t);
            return -AD_ENOMEM;
        }
        ad_series_iter_start(&it);
        while ((x = ad_series_iter_next(fs->series, &it)) && (size_t)n < f->members)
            if (x->family == f && x->det)
                m[n++] = x->det;
        t->family = 1;
        r = ad_family_snapshot(f->net, &f->det, m, n, PER_MEMBER, MAX_WINDOWS,
                               (ad_family_job **)&t->job, err, errlen);
        free(m);
    }
    if (r < 0) {
        free(t);
        return r;
    }
    *out = t;
    return 0;
}

static int ops_run(void *job, char *err, size_t errlen)
{
    tjob *t = job;

    return t->family ? ad_family_job_run(t->job, err, errlen)
                     : ad_train_job_run(t->job, err, errlen);
}

static int ops_install(void *ctx, ad_series *s, void *job, char *err, size_t errlen)
{
    ad_fams *fs = ctx;
    tjob *t = job;
    ad_fam *f = s->family;
    ad_series_iter it;
    ad_series *x;
    int r, windows, members;

    if (!t->family)
        return ad_detector_install(s->det, t->job, err, errlen);
    ad_fam_flush(fs); /* pending steps belong to the old weights */
    r = ad_family_install(f->net, t->job, err, errlen);
    if (r < 0)
        return r;
    f->trained = 1;
    f->samples_since = 0;
    f->retry_at = 0;
    f->trainings++;
    f->dirty = 1;
    /* Every member re-primes on the new weights; those with enough history join. */
    ad_series_iter_start(&it);
    while ((x = ad_series_iter_next(fs->series, &it)))
        if (x->family == f && x->det &&
            (ad_detector_trained(x->det) ||
             ad_detector_get_stats(x->det)->samples >= (uint64_t)(2 * f->det.window)))
            join(x);
    ad_family_job_result(t->job, &windows, &members, NULL, NULL, NULL);
    ad_log_debug("family %s trained on %d windows of %d members", f->name, windows, members);
    return 0;
}

static void ops_free(void *job)
{
    tjob *t = job;

    if (!t)
        return;
    if (t->family)
        ad_family_job_free(t->job);
    else
        ad_train_job_free(t->job);
    free(t);
}

const ad_trainer_ops ad_fam_trainer_ops = {ops_snapshot, ops_run, ops_install, ops_free};

void ad_fam_failed(ad_fam *f)
{
    /* Asking again at the next member's sample would snapshot every member again and
     * again (O(members) each): wait until the members have had a new value each. */
    f->retry_at = f->samples_since + (f->members ? f->members : 1);
}

/* ---- the store ---- */

void *ad_fam_save(const ad_fam *f, size_t *len)
{
    size_t n = ad_net_blob_size(f->net, NULL);
    void *buf = malloc(n);

    if (buf && ad_net_save(f->net, NULL, buf, n, len, NULL, 0) < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

int ad_fam_restore(ad_fams *fs, const char *key, uint64_t fingerprint, const void *blob,
                   size_t len, char *err, size_t errlen)
{
    const char *match = key + strlen(AD_FAMILY_PREFIX);
    ad_net *net = NULL;
    ad_fam *f;

    for (int i = 0; i < fs->cfg->nrules; i++) {
        const ad_series_rule *r = &fs->cfg->rules[i];

        if (!r->shared || strcmp(r->match, match) ||
            ad_fingerprint(&r->det, 1) != fingerprint)
            continue;
        if (!(f = ad_fam_get(fs, i))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (ad_net_load(blob, len, &f->net->cfg, &net, NULL, err, errlen) < 0)
            return -1;
        ad_net_copy_params(f->net, net);
        ad_net_free(net);
        f->trained = 1;
        return 0;
    }
    snprintf(err, errlen, "no shared rule with this glob and these settings");
    return -1;
}

void ad_fams_set_weights(ad_fams *fs, int weights)
{
    ad_fam_flush(fs);
    for (ad_fam *f = fs->head; f; f = f->next)
        ad_net_set_storage(f->net, ad_fam_storage(weights));
}

size_t ad_fam_count(const ad_fams *fs)
{
    size_t n = 0;

    for (const ad_fam *f = fs->head; f; f = f->next)
        n++;
    return n;
}

void ad_fam_free_all(ad_fams *fs)
{
    while (fs->head) {
        ad_fam *f = fs->head;

        fs->head = f->next;
        ad_detector_batch_free(&f->batch);
        free(f->pending);
        ad_net_free(f->net);
        free(f->name);
        free(f);
    }
}
