/*
 * detector.c - one stream's detector (detector.h): the block (create, free, sizes), its
 * getters and the weights' storage. The rest is in detector_observe.c, detector_history.c,
 * detector_train.c and detector_blob.c (detector_impl.h).
 */
#include "detector_impl.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const refusal_names[AD_REFUSE_NREASONS] = {
    [AD_REFUSE_NAN] = "nan",
    [AD_REFUSE_INF] = "inf",
    [AD_REFUSE_RANGE] = "out_of_range",
    [AD_REFUSE_BACKWARDS] = "time_backwards",
    [AD_REFUSE_BADTIME] = "bad_timestamp",
};

const char *ad_refusal_name(int reason)
{
    return reason >= 0 && reason < AD_REFUSE_NREASONS ? refusal_names[reason] : NULL;
}

static size_t line_up(size_t n)
{
    return (n + LINE - 1) / LINE * LINE;
}

/* The long window scorer's configuration: the main one averaging long_window errors. */
static ad_scorer_config long_config(const ad_detector_config *c)
{
    ad_scorer_config lc = c->scorer;
    lc.short_window = c->long_window;
    return lc;
}

int ad_det_new(const ad_detector_config *c, ad_net *shared, ad_detector **out, char *err,
               size_t errlen)
{
    int rc = ad_detector_config_check(c, err, errlen);
    const int has_lsc = c->long_window > 0 && c->scorer.kind == AD_SCORER_LIKELIHOOD;
    const int need_ts = c->features || c->seasonal_period > 0;
    const ad_scorer_config lc = long_config(c);
    ad_detector *d;

    *out = NULL;
    if (rc)
        return rc;
    const int D = ad_detector_input_size(c->features);
    const size_t nstate = (size_t)c->layers * c->hidden * (ad_cell_has_c(c->kind) ? 2 : 1);
    const size_t hcap = (size_t)c->history;
    const size_t sz_d = line_up(sizeof(*d)), sz_sc = ad_scorer_size(&c->scorer),
                 sz_lsc = has_lsc ? ad_scorer_size(&lc) : 0,
                 sz_ssc = c->seasonal_period > 0 ? sz_sc : 0,
                 sz_st = line_up(nstate * sizeof(float)), sz_hv = line_up(hcap * sizeof(float)),
                 sz_hts = need_ts ? line_up(hcap * sizeof(uint32_t)) : 0,
                 sz_hf = line_up((hcap + 7) / 8);
    const size_t total = sz_d + sz_sc + sz_lsc + sz_ssc + sz_st + sz_hv + sz_hts + sz_hf;
    char *p = aligned_alloc(LINE, total);
    if (!p)
        goto out_nomem;
    memset(p, 0, total);
    d = (ad_detector *)(void *)p;
    d->block_bytes = total;
    p += sz_d;
    d->cfg = *c;
    d->D = D;
    ad_det_range_blocks_span(d);
    ad_scorer_init(p, &c->scorer, &d->sc, NULL, 0);
    d->hot_bytes[0] = (uint32_t)ad_scorer_hot_bytes(&c->scorer);
    p += sz_sc;
    if (has_lsc) {
        ad_scorer_init(p, &lc, &d->lsc, NULL, 0);
        d->hot_bytes[1] = (uint32_t)ad_scorer_hot_bytes(&lc);
        p += sz_lsc;
    }
    if (sz_ssc) {
        ad_scorer_init(p, &c->scorer, &d->ssc, NULL, 0);
        d->hot_bytes[2] = d->hot_bytes[0];
        p += sz_ssc;
    }
    d->st = &d->st_mem;
    d->st->layers = c->layers;
    d->st->hidden = c->hidden;
    d->st->has_c = ad_cell_has_c(c->kind);
    d->st->h = (float *)(void *)p;
    d->st->c = d->st->has_c ? d->st->h + (size_t)c->layers * c->hidden : NULL;
    p += sz_st;
    d->hv = (float *)(void *)p;
    p += sz_hv;
    if (need_ts)
        d->hts = (uint32_t *)(void *)p;
    p += sz_hts;
    d->hf = (uint8_t *)p;
    d->hcap = c->history;
    d->hts_shift = 30;
    d->scale = 1.0;
    d->since_alert = UINT64_MAX / 2;
    d->since_hit = UINT64_MAX / 2;
    d->time_on = 1;

    ad_net_config nc = {c->kind, c->layers, D, c->hidden, 1};
    if (shared) {
        if (c->model != AD_MODEL_PREDICT || memcmp(&shared->cfg, &nc, sizeof(nc)) != 0) {
            ERR("a family member must predict with a network of the family's shape");
            free(d);
            return -AD_EINVAL;
        }
        d->net = shared;
        d->shared_net = 1;
    } else {
        rc = ad_net_create(&nc, c->seed, &d->net, err, errlen);
        if (rc)
            goto out_free;
        ad_net_set_forget_bias(d->net, c->forget_bias);
    }
    if (c->model == AD_MODEL_SEQ2SEQ) {
        ad_s2s_config sc = {c->kind, c->layers, D, c->hidden, c->s2s_window};
        rc = ad_s2s_create(&sc, c->seed, &d->s2s, err, errlen);
        if (!rc) {
            ad_net_set_forget_bias(&d->s2s->enc, c->forget_bias);
            ad_net_set_forget_bias(&d->s2s->dec, c->forget_bias);
        }
        if (!rc)
            rc = ad_s2s_scorer_create(d->s2s, &d->s2sc, err, errlen);
        if (rc)
            goto out_free;
        d->win = calloc((size_t)D * c->s2s_window, sizeof(*d->win));
        d->recon = calloc((size_t)D * c->s2s_window, sizeof(*d->recon));
        if (!d->win || !d->recon) {
            rc = -AD_ENOMEM;
            ERR("out of memory for a detector");
            goto out_free;
        }
    }
    ad_det_note_prefetch(d);
    *out = d;
    return 0;

out_free:
    ad_detector_free(d);
    return rc;
out_nomem:
    ERR("out of memory for a detector");
    return -AD_ENOMEM;
}

int ad_detector_create(const ad_detector_config *c, ad_detector **out, char *err, size_t errlen)
{
    return ad_det_new(c, NULL, out, err, errlen);
}

int ad_detector_create_member(const ad_detector_config *c, ad_net *net, ad_detector **out,
                              char *err, size_t errlen)
{
    if (!net) {
        ERR("a family member needs its family's network");
        *out = NULL;
        return -AD_EINVAL;
    }
    return ad_det_new(c, net, out, err, errlen);
}

void ad_detector_free(ad_detector *d)
{
    if (!d)
        return;
    if (!d->shared_net)
        ad_net_free(d->net);
    ad_s2s_scorer_free(d->s2sc);
    ad_s2s_free(d->s2s);
    free(d->win);
    free(d->recon);
    free(d); /* the block: scorers, state and history with it */
}

size_t ad_detector_bytes(const ad_detector *d)
{
    size_t s2s = 0;
    if (d->s2s)
        s2s = ad_s2s_bytes(d->s2s) + ad_s2s_scorer_bytes(d->s2sc) +
              2 * (size_t)d->D * d->cfg.s2s_window * sizeof(float);
    return d->block_bytes + s2s + (d->shared_net ? 0 : ad_net_bytes(d->net));
}

const ad_detector_config *ad_detector_get_config(const ad_detector *d)
{
    return &d->cfg;
}

const ad_detector_stats *ad_detector_get_stats(const ad_detector *d)
{
    return &d->stats;
}

const ad_net *ad_detector_net(const ad_detector *d)
{
    return d->net;
}

int ad_detector_is_member(const ad_detector *d)
{
    return d->shared_net;
}

int ad_detector_trained(const ad_detector *d)
{
    return d->trained;
}

void ad_detector_normaliser(const ad_detector *d, double *center, double *scale)
{
    *center = d->center;
    *scale = d->scale;
}

int ad_detector_set_incident(ad_detector *d, float incident_z, int incident_ref,
                             float departure)
{
    ad_detector_config c = d->cfg;
    c.incident_z = incident_z;
    c.incident_ref = incident_ref;
    c.departure = departure;
    if (ad_detector_config_check(&c, NULL, 0) != 0)
        return -AD_EINVAL;
    d->cfg.incident_z = incident_z;
    d->cfg.incident_ref = incident_ref;
    d->cfg.departure = departure;
    if (!(incident_z > 0.0f))
        d->incident = 0;
    return 0;
}

int ad_detector_set_weights(ad_detector *d, int wt)
{
    static const int mode[AD_W_N] = {AD_NET_FP32, AD_NET_FP16_ONLY, AD_NET_INT8_ONLY};

    if (wt < 0 || wt >= AD_W_N)
        return -AD_EINVAL;
    ad_det_settle(d);
    int rc = d->shared_net ? 0 : ad_net_set_storage(d->net, mode[wt]);
    ad_det_note_prefetch(d);
    return rc;
}
