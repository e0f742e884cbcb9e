/*
 * detector_blob.c - a detector to and from its versioned, checksummed blob (magic
 * "ADDT"; detector.h): everything a detector holds, so that continuing after a load
 * gives bit-identical results.
 */
#include "detector_impl.h"

#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "half.h"
#include "serial.h"

#define DET_MAGIC     "ADDT"
#define DET_VERSION   13 /* 13: departure at the config's end, and the departure
                             reference (AD_DETECTOR_V_DEPARTURE);
                             12: alert_horizon at the config's end (AD_DETECTOR_V_HORIZON);
                             11: the raw signal's moving mean of the signed errors
                             (AD_DETECTOR_V_RAW_MEAN) where 8-10 kept the last two |errors|;
                             10: incident_z, incident_ref at the config's end
                             (AD_DETECTOR_V_INCIDENT); the values' moving mean and the
                             open incident with its reference; 9: stateful at the
                             config's end (AD_DETECTOR_V_STATEFUL);
                             8: feature_span, raw_k, raw_rms (AD_DETECTOR_V_RAW); whether
                             the time features are fed (time_on), the raw signal's scale
                             (raw_q); 7: forget_bias at the config's end; 6: the anomalous
                             state (since_hit); 5: compact history (fixed-point timestamps,
                             flag bits) */
#define DET_VERSION_OLDEST 4 /* 4: timestamps as doubles, flags as bytes: still loaded */

/* The refusal counters as the blob holds them, in this order for good, whatever
 * enum ad_refusal's (a reason added to it is not saved until a new blob version saves
 * it). */
static const enum ad_refusal blob_refusals[] = {AD_REFUSE_NAN, AD_REFUSE_INF, AD_REFUSE_RANGE,
                                                AD_REFUSE_BACKWARDS, AD_REFUSE_BADTIME};
#define NBLOB_REFUSALS ((int)(sizeof(blob_refusals) / sizeof(blob_refusals[0])))

/* Everything after the header, through the scorer; the CRC follows. */
static void write_body(ad_wbuf *w, const ad_detector *d, size_t netlen)
{
    const ad_detector_stats *s = &d->stats;
    ad_detector_config_write(w, &d->cfg);
    ad_put_u64(w, s->samples);
    ad_put_u64(w, s->flagged);
    for (int i = 0; i < NBLOB_REFUSALS; i++)
        ad_put_u64(w, s->refused[blob_refusals[i]]);
    ad_put_u64(w, s->trainings);
    ad_put_f32(w, s->train_loss);
    ad_put_f32(w, s->val_loss);
    ad_put_u32(w, (uint32_t)s->epochs);
    ad_put_f64(w, d->center);
    ad_put_f64(w, d->scale);
    ad_put_u32(w, (uint32_t)d->trained);
    ad_put_f64(w, d->w_mean);
    ad_put_f64(w, d->w_m2);
    ad_put_u64(w, d->w_n);
    ad_put_f64(w, d->nv_last);
    ad_put_f64(w, d->nv_ms);
    ad_put_f32(w, d->pred_norm);
    ad_put_u32(w, (uint32_t)d->has_pred);
    ad_put_f64(w, d->last_ts);
    ad_put_u32(w, (uint32_t)d->has_ts);
    ad_put_u64(w, d->since_train);
    ad_put_u32(w, (uint32_t)d->flag_run);
    ad_put_f32(w, d->excl_rate);
    ad_put_u64(w, d->since_alert);
    ad_put_f64(w, d->alert_rate);
    ad_put_u64(w, d->since_hit);
    ad_put_u32(w, d->time_on); /* version 8 on (AD_DETECTOR_V_RAW) */
    ad_put_f32(w, d->raw_q);
    ad_put_f32(w, d->raw_mean); /* AD_DETECTOR_V_RAW_MEAN on (8-10: two fp16 |errors|) */
    ad_put_f64(w, d->inc_mean); /* AD_DETECTOR_V_INCIDENT on */
    ad_put_f64(w, d->inc_center);
    ad_put_f64(w, d->inc_spread);
    ad_put_u32(w, d->incident);
    ad_put_f64(w, d->dep_center); /* AD_DETECTOR_V_DEPARTURE on */
    ad_put_f64(w, d->dep_scale);
    ad_put_f64(w, d->vmin);
    ad_put_f64(w, d->vmax);
    for (int i = 0; i < RANGE_BLOCKS; i++) {
        ad_put_f64(w, d->rb_min[i]);
        ad_put_f64(w, d->rb_max[i]);
    }
    ad_put_f64(w, d->rb_cmin);
    ad_put_f64(w, d->rb_cmax);
    ad_put_u32(w, (uint32_t)d->rb_n);
    ad_put_u32(w, (uint32_t)d->rb_pos);
    ad_put_u32(w, (uint32_t)d->rb_fill);
    ad_put_u32(w, (uint32_t)d->hn);
    ad_put_u32(w, (uint32_t)d->hpos);
    ad_put_f32v(w, d->hv, (size_t)d->hcap);
    ad_put_bytes(w, d->hf, ((size_t)d->hcap + 7) / 8);
    if (d->hts) {
        ad_put_f64(w, d->hts_base);
        ad_put_u32(w, (uint32_t)d->hts_shift);
        for (int i = 0; i < d->hcap; i++)
            ad_put_u32(w, d->hts[i]);
    }
    const int L = d->st->layers, H = d->st->hidden;
    ad_put_f32v(w, d->st->h, (size_t)L * H);
    if (d->st->c)
        ad_put_f32v(w, d->st->c, (size_t)L * H);
    /* the network as its own blob (serial.h), length-prefixed */
    ad_put_u64(w, (uint64_t)netlen); /* 0: a family member's (the family saves it) */
    if (netlen && w->p && !w->err && w->cap - w->len >= netlen) {
        size_t got = 0;
        ad_net_save(d->net, NULL, w->p + w->len, netlen, &got, NULL, 0);
        w->len += netlen;
    } else {
        ad_put_bytes(w, NULL, netlen);
    }
    if (d->s2s) { /* SEQ2SEQ: the encoder-decoder's parameters and the window */
        ad_put_u64(w, (uint64_t)d->s2s->nparams);
        ad_put_f32v(w, d->s2s->params, d->s2s->nparams);
        ad_put_u32(w, (uint32_t)d->win_n);
        ad_put_f32v(w, d->win, (size_t)d->D * d->cfg.s2s_window);
    }
    ad_scorer_save(d->sc, w);
    if (d->ssc)
        ad_scorer_save(d->ssc, w);
    if (d->lsc)
        ad_scorer_save(d->lsc, w);
}

size_t ad_detector_blob_size(const ad_detector *d)
{
    ad_wbuf w;
    ad_wbuf_init(&w, NULL, 0);
    ad_put_bytes(&w, DET_MAGIC, 4);
    ad_put_u32(&w, DET_VERSION);
    write_body(&w, d, d->shared_net ? 0 : ad_net_blob_size(d->net, NULL));
    ad_put_u32(&w, 0);
    return w.err ? 0 : w.len;
}

int ad_detector_save(ad_detector *d, void *buf, size_t cap, size_t *len, char *err, size_t errlen)
{
    size_t need = ad_detector_blob_size(d);
    ad_wbuf w;

    ad_det_settle(d); /* the blob holds the state after every value observed */

    if (len)
        *len = 0;
    if (!buf || cap < need) {
        ERR("buffer too small: detector blob needs %zu bytes, buffer has %zu", need, buf ? cap : 0);
        return -AD_EINVAL;
    }
    if (!ad_net_params_finite(d->net)) {
        for (size_t i = 0; i < d->net->nparams; i++) {
            float v;
            ad_net_get_params(d->net, i, 1, &v);
            if (!isfinite(v)) {
                ERR("cannot save: network parameter %zu is not finite", i);
                break;
            }
        }
        return -AD_EINVAL;
    }
    ad_wbuf_init(&w, buf, cap);
    ad_put_bytes(&w, DET_MAGIC, 4);
    ad_put_u32(&w, DET_VERSION);
    write_body(&w, d, d->shared_net ? 0 : ad_net_blob_size(d->net, NULL));
    ad_put_u32(&w, ad_crc32(0, buf, w.len));
    if (w.err || w.len != need) {
        ERR("internal error: detector blob size changed while writing");
        return -AD_EINVAL;
    }
    if (len)
        *len = w.len;
    return 0;
}

/* Whether the loaded history, timestamps and rolling state are all finite. */
static int finite_state(const ad_detector *d)
{
    const size_t n = (size_t)d->st->layers * d->st->hidden;
    for (int i = 0; i < d->hcap; i++)
        if (!isfinite(d->hv[i]))
            return 0;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(d->st->h[i]) || (d->st->c && !isfinite(d->st->c[i])))
            return 0;
    return 1;
}

/* Magic, version range and checksum: the blob's version, or 0 with a message. */
static uint32_t check_frame(const uint8_t *b, size_t len, char *err, size_t errlen)
{
    ad_rbuf r;

    if (!b || len < 12) {
        ERR("detector blob truncated: %zu bytes", b ? len : 0);
        return 0;
    }
    if (memcmp(b, DET_MAGIC, 4) != 0) {
        ERR("not a detector blob (bad magic)");
        return 0;
    }
    ad_rbuf_init(&r, b + 4, len - 4);
    uint32_t version = ad_get_u32(&r);
    if (version < DET_VERSION_OLDEST || version > DET_VERSION) {
        ERR("detector blob version %u, expected %u..%u", version, DET_VERSION_OLDEST,
            DET_VERSION);
        return 0;
    }
    uint32_t crc = (uint32_t)b[len - 4] | (uint32_t)b[len - 3] << 8 | (uint32_t)b[len - 2] << 16 |
                   (uint32_t)b[len - 1] << 24;
    if (ad_crc32(0, b, len - 4) != crc) {
        ERR("detector blob fails its checksum (damaged or truncated)");
        return 0;
    }
    return version;
}

/*
 * Reads what write_body writes between the configuration and the history: counters,
 * normaliser, warm-up statistics, pending prediction, alert state, the raw signal and
 * the range check. Returns nonzero when a value is out of its domain.
 */
static int read_state(ad_rbuf *r, ad_detector *d, uint32_t version)
{
    ad_detector_stats *s = &d->stats;
    int bad = 0;

    s->samples = ad_get_u64(r);
    s->flagged = ad_get_u64(r);
    for (int i = 0; i < NBLOB_REFUSALS; i++)
        s->refused[blob_refusals[i]] = ad_get_u64(r);
    s->trainings = ad_get_u64(r);
    s->train_loss = ad_get_f32(r);
    s->val_loss = ad_get_f32(r);
    s->epochs = (int)ad_get_u32(r);
    d->center = ad_get_f64(r);
    d->scale = ad_get_f64(r);
    d->trained = (int)ad_get_u32(r);
    d->w_mean = ad_get_f64(r);
    d->w_m2 = ad_get_f64(r);
    d->w_n = ad_get_u64(r);
    d->nv_last = ad_get_f64(r);
    d->nv_ms = ad_get_f64(r);
    d->pred_norm = ad_get_f32(r);
    d->has_pred = (int)ad_get_u32(r);
    d->last_ts = ad_get_f64(r);
    d->has_ts = (int)ad_get_u32(r);
    d->since_train = ad_get_u64(r);
    d->flag_run = (int)ad_get_u32(r);
    d->excl_rate = ad_get_f32(r);
    d->since_alert = ad_get_u64(r);
    d->alert_rate = ad_get_f64(r);
    d->since_hit = version >= 6 ? ad_get_u64(r) : UINT64_MAX / 2; /* 5: the state off */
    uint32_t time_on = version >= AD_DETECTOR_V_RAW ? ad_get_u32(r) : 1; /* before: always fed */
    d->time_on = (uint8_t)(time_on != 0);
    d->raw_q = version >= AD_DETECTOR_V_RAW ? ad_get_f32(r) : 0.0f; /* before: no raw signal */
    if (version >= AD_DETECTOR_V_RAW_MEAN) {
        d->raw_mean = ad_get_f32(r);
        bad |= !(d->raw_mean >= -RAW_KEEP && d->raw_mean <= RAW_KEEP);
    } else if (version >= AD_DETECTOR_V_RAW) {
        /* 8-10: the last two |errors| (fp16), and raw_q the old signal's scale (raw_k
         * times their mean's largest on the validation tail): the raw signal stays off
         * until the next training sets the moving mean's */
        for (int i = 0; i < 2; i++) {
            const float p = ad_half_to_float(ad_get_u16(r));
            bad |= !(p >= 0.0f && p <= RAW_KEEP);
        }
        d->raw_q = 0.0f;
    }
    if (version >= AD_DETECTOR_V_INCIDENT) {
        d->inc_mean = ad_get_f64(r);
        d->inc_center = ad_get_f64(r);
        d->inc_spread = ad_get_f64(r);
        const uint32_t open = ad_get_u32(r);
        d->incident = (uint8_t)(open != 0);
        bad |= open > 1 || !isfinite(d->inc_mean) || !isfinite(d->inc_center) ||
               !(d->inc_spread >= 0.0 && isfinite(d->inc_spread));
    } /* before: no incident open; the mean starts at the newest value kept (load) */
    if (version >= AD_DETECTOR_V_DEPARTURE) {
        d->dep_center = ad_get_f64(r);
        d->dep_scale = ad_get_f64(r);
        bad |= !isfinite(d->dep_center) || !(d->dep_scale >= 0.0 && isfinite(d->dep_scale));
    } /* before: taken from the history once it is read (load) */
    d->vmin = ad_get_f64(r);
    d->vmax = ad_get_f64(r);
    int rb_bad = 0;
    for (int i = 0; i < RANGE_BLOCKS; i++) {
        d->rb_min[i] = ad_get_f64(r);
        d->rb_max[i] = ad_get_f64(r);
        rb_bad |= !isfinite(d->rb_min[i]) || !isfinite(d->rb_max[i]);
    }
    d->rb_cmin = ad_get_f64(r);
    d->rb_cmax = ad_get_f64(r);
    d->rb_n = (int)ad_get_u32(r);
    d->rb_pos = (int)ad_get_u32(r);
    d->rb_fill = (int)ad_get_u32(r);
    rb_bad |= !isfinite(d->rb_cmin) || !isfinite(d->rb_cmax) || !isfinite(d->vmin) ||
              !isfinite(d->vmax) || d->rb_n < 0 || d->rb_n > RANGE_BLOCKS - 1 ||
              d->rb_pos < 0 || d->rb_pos >= RANGE_BLOCKS - 1 || d->rb_fill < 0 ||
              d->rb_fill >= ad_det_range_block(d);
    if (!rb_bad)
        ad_det_range_blocks_span(d);
    return bad || rb_bad || time_on > 1 || !(d->scale > 0.0 && isfinite(d->scale)) ||
           !isfinite(d->center) || !isfinite(d->pred_norm) || !isfinite(d->w_mean) ||
           !(d->w_m2 >= 0.0 && isfinite(d->w_m2)) || !isfinite(d->nv_last) ||
           !(d->nv_ms >= 0.0 && isfinite(d->nv_ms)) || !(d->raw_q >= 0.0f && isfinite(d->raw_q)) ||
           d->flag_run < 0 || !(d->excl_rate >= 0.0f && d->excl_rate <= 1.0f) ||
           !(d->alert_rate >= 0.0 && d->alert_rate <= 1.0);
}

/*
 * Reads the history's values, flags and timestamps (version 4: flags as bytes and the
 * timestamps as doubles into *ts4, allocated here, encoded once hn and hpos are known:
 * encode_v4). Sets *bad when the timestamps are out of their domain. 0 or -AD_ENOMEM.
 */
static int read_history(ad_rbuf *r, ad_detector *d, uint32_t version, double **ts4, int *bad)
{
    ad_get_f32v(r, d->hv, (size_t)d->hcap);
    if (version != 4) {
        ad_get_bytes(r, d->hf, ((size_t)d->hcap + 7) / 8);
        if (d->hts) {
            d->hts_base = ad_get_f64(r);
            d->hts_shift = (int32_t)ad_get_u32(r);
            for (int i = 0; i < d->hcap; i++)
                d->hts[i] = ad_get_u32(r);
            *bad |= !isfinite(d->hts_base) || d->hts_shift < -1000 || d->hts_shift > 30;
        }
        return 0;
    }
    for (int i = 0; i < d->hcap; i++) {
        uint8_t f = 0;
        ad_get_bytes(r, &f, 1);
        d->hf[i >> 3] |= (uint8_t)((f != 0) << (i & 7));
    }
    if (d->hts) {
        *ts4 = malloc((size_t)d->hcap * sizeof(**ts4));
        if (!*ts4)
            return -AD_ENOMEM;
        for (int i = 0; i < d->hcap; i++) {
            (*ts4)[i] = ad_get_f64(r);
            *bad |= !isfinite((*ts4)[i]);
        }
    }
    return 0;
}

/* Version 4: the history's timestamps, doubles, encoded (whole seconds exactly). */
static void encode_v4(ad_detector *d, const double *ts4)
{
    d->hts_base = ts4[hist_index(d, 0)];
    d->hts_shift = ad_det_span_shift(ts4[hist_index(d, d->hn - 1)] - d->hts_base);
    for (int i = 0; i < d->hn; i++)
        d->hts[hist_index(d, i)] = ad_det_hts_encode(d, ts4[hist_index(d, i)]);
}

/* The network's blob (netlen bytes at r's position) into d's network; then the SEQ2SEQ
 * model and its window. 0, or -AD_EFORMAT with a message. */
static int read_models(ad_rbuf *r, ad_detector *d, uint64_t netlen, char *err, size_t errlen)
{
    char why[200];
    ad_net *net = NULL;

    if (netlen) {
        ad_net_config expect = d->net->cfg;
        int rc = ad_net_load(r->p + r->pos, (size_t)netlen, &expect, &net, NULL, why, sizeof(why));
        if (rc) {
            ERR("detector blob's network: %s", why);
            return -AD_EFORMAT;
        }
        ad_net_copy_params(d->net, net);
        ad_net_free(net);
        r->pos += (size_t)netlen;
    }
    if (!d->s2s)
        return 0;
    const size_t nw = (size_t)d->D * d->cfg.s2s_window;
    int bad = ad_get_u64(r) != (uint64_t)d->s2s->nparams;
    if (!bad)
        ad_get_f32v(r, d->s2s->params, d->s2s->nparams);
    uint32_t wn = ad_get_u32(r);
    if (!bad)
        ad_get_f32v(r, d->win, nw);
    for (size_t i = 0; !bad && i < d->s2s->nparams; i++)
        bad = !isfinite(d->s2s->params[i]);
    for (size_t i = 0; !bad && i < nw; i++)
        bad = !isfinite(d->win[i]);
    if (bad || r->err || wn > (uint32_t)d->cfg.s2s_window) {
        ERR("detector blob's encoder-decoder is truncated or inconsistent");
        return -AD_EFORMAT;
    }
    d->win_n = (int)wn;
    return 0;
}

/* Loads a blob; member_net != NULL: a family member's, on that network. */
static int load_common(const void *buf, size_t len, ad_net *member_net, ad_detector **out,
                       char *err, size_t errlen)
{
    const uint8_t *b = buf;
    ad_detector_config c;
    ad_detector *d = NULL;
    double *ts4 = NULL; /* version 4: the history's timestamps as doubles */
    char why[200];
    ad_rbuf r;
    int rc;

    *out = NULL;
    const uint32_t version = check_frame(b, len, err, errlen);
    if (!version)
        return -AD_EFORMAT;
    ad_rbuf_init(&r, b + 8, len - 8 - 4); /* body only: the CRC is not part of it */
    rc = ad_detector_config_read(&r, &c, version, why, sizeof(why));
    if (r.err || rc || ad_detector_config_check(&c, why, sizeof(why)) != 0) {
        ERR("detector blob has an invalid configuration: %s", r.err ? "truncated" : why);
        return -AD_EFORMAT;
    }
    rc = ad_det_new(&c, member_net, &d, err, errlen);
    if (rc)
        return rc;
    int bad = read_state(&r, d, version);
    uint32_t hn = ad_get_u32(&r), hpos = ad_get_u32(&r);
    if (read_history(&r, d, version, &ts4, &bad) != 0) {
        ERR("out of memory for a detector");
        ad_detector_free(d);
        return -AD_ENOMEM;
    }
    const int L = d->st->layers, H = d->st->hidden;
    ad_get_f32v(&r, d->st->h, (size_t)L * H);
    if (d->st->c)
        ad_get_f32v(&r, d->st->c, (size_t)L * H);
    uint64_t netlen = ad_get_u64(&r);
    if (r.err || hn > (uint32_t)d->hcap || hpos >= (uint32_t)d->hcap || netlen > ad_rbuf_left(&r) ||
        !finite_state(d) || bad) {
        ERR("detector blob is truncated or inconsistent");
        goto out_format;
    }
    d->hn = (int)hn;
    d->hpos = (int)hpos;
    /* the values' moving mean: none before version 10, and 10-12 kept it only with
     * incident_z; it starts at the newest value held */
    if (d->hn && (version < AD_DETECTOR_V_INCIDENT ||
                  (version < AD_DETECTOR_V_DEPARTURE && !(d->cfg.incident_z > 0.0f))))
        d->inc_mean = d->hv[hist_index(d, d->hn - 1)];
    if (version < AD_DETECTOR_V_DEPARTURE && d->trained)
        ad_det_departure_ref(d); /* the values held now, not those the training took */
    if (ts4 && d->hn)
        encode_v4(d, ts4);
    free(ts4);
    ts4 = NULL;
    if ((netlen == 0) != (member_net != NULL)) {
        ERR(netlen ? "detector blob has its own network: not a family member's"
                   : "detector blob is a family member's: load it with its family's network");
        goto out_format;
    }
    if (read_models(&r, d, netlen, err, errlen) != 0)
        goto out_format;
    rc = ad_scorer_load(d->sc, &r, why, sizeof(why));
    if (!rc && d->ssc)
        rc = ad_scorer_load(d->ssc, &r, why, sizeof(why));
    if (!rc && d->lsc)
        rc = ad_scorer_load(d->lsc, &r, why, sizeof(why));
    if (rc) {
        ERR("detector blob's scorer: %s", why);
        goto out_format;
    }
    if (ad_rbuf_left(&r) != 0) {
        ERR("detector blob has %zu unexpected bytes before its checksum", ad_rbuf_left(&r));
        goto out_format;
    }
    ad_det_note_prefetch(d);
    *out = d;
    return 0;

out_format:
    free(ts4);
    ad_detector_free(d);
    return -AD_EFORMAT;
}

int ad_detector_load(const void *buf, size_t len, ad_detector **out, char *err, size_t errlen)
{
    return load_common(buf, len, NULL, out, err, errlen);
}

int ad_detector_load_member(const void *buf, size_t len, ad_net *net, ad_detector **out,
                            char *err, size_t errlen)
{
    if (!net) {
        *out = NULL;
        ERR("a family member needs its family's network");
        return -AD_EINVAL;
    }
    return load_common(buf, len, net, out, err, errlen);
}
