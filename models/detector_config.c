/*
 * detector_config.c - a detector's settings: defaults, bounds, and serialisation.
 */
#include "detector_config.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "net.h"

/* the default incident_z (docs/DETECTOR.md says why) */
#define INCIDENT_Z 12.0f

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

/* One row per model: its code in blobs (fixed for good) and its name. */
static const struct {
    enum ad_model model;
    uint32_t code;
    const char *name;
} models[] = {
    {AD_MODEL_PREDICT, 0, "predict"},
    {AD_MODEL_SEQ2SEQ, 1, "seq2seq"},
};
#define NMODELS (sizeof(models) / sizeof(models[0]))

const char *ad_model_name(int model)
{
    for (size_t i = 0; i < NMODELS; i++)
        if ((int)models[i].model == model)
            return models[i].name;
    return NULL;
}

uint32_t ad_model_code(int model)
{
    for (size_t i = 0; i < NMODELS; i++)
        if ((int)models[i].model == model)
            return models[i].code;
    return UINT32_MAX;
}

int ad_model_from_code(uint32_t code)
{
    for (size_t i = 0; i < NMODELS; i++)
        if (models[i].code == code)
            return (int)models[i].model;
    return -1;
}

void ad_detector_defaults(ad_detector_config *c)
{
    memset(c, 0, sizeof(*c));
    c->model = AD_MODEL_PREDICT;
    c->s2s_window = 32;
    c->kind = AD_CELL_LSTM;
    c->layers = 1;
    c->hidden = 32;
    c->features = AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK;
    c->history = 2500;
    c->train_after = 750;
    c->train_every = 2000;
    c->window = 64;
    c->batch = 16;
    c->epochs = 60;
    c->patience = 8;
    c->val_frac = 0.2f;
    c->lr = 0.005f;
    c->clip = 1.0f;
    c->forget_bias = 1.0f;
    c->input_clip = 8.0f;
    c->prime = 256;
    c->relearn = 64;
    c->max_exclude = 0.02f;
    c->cooldown = 30;
    c->range_tolerance = 0.02f;
    c->range_window = 8000;
    c->seasonal_period = 86400;
    c->seasonal_periods = 3;
    c->seasonal_weight = 0.8f;
    c->warmup_naive = 1;
    c->long_window = 30;
    c->alert_penalty = 0.2f;
    c->alert_horizon = 50000;
    c->asinh = 0;
    c->seed = 1;
    c->feature_span = 172800;
    c->raw_k = 6.0f;
    c->raw_rms = 0.05f;
    c->stateful = 0;
    c->incident_z = INCIDENT_Z;
    c->incident_ref = 400;
    c->departure = 6.0f; /* docs/DETECTOR.md says why */
    ad_scorer_defaults(&c->scorer, AD_SCORER_LIKELIHOOD);
    c->scorer.error_bound = 3.0f;
    c->scorer.min_sd = 0.0173f;
}

int ad_detector_input_size(unsigned features)
{
    return 1 + ((features & AD_FEAT_TIME_OF_DAY) ? 2 : 0) +
           ((features & AD_FEAT_DAY_OF_WEEK) ? 2 : 0) + ((features & AD_FEAT_GAP) ? 1 : 0);
}

int ad_detector_config_check(const ad_detector_config *c, char *err, size_t errlen)
{
    ad_net_config nc = {c->kind, c->layers, ad_detector_input_size(c->features), c->hidden, 1};
    int rc = ad_net_config_check(&nc, err, errlen);
    if (rc)
        return rc;
#define RANGE(field, lo, hi)                                                                       \
    do {                                                                                           \
        if (!(c->field >= (lo) && c->field <= (hi))) {                                             \
            ERR("%s must be %g..%g, got %g", #field, (double)(lo), (double)(hi),                   \
                (double)c->field);                                                                 \
            return -AD_EINVAL;                                                                     \
        }                                                                                          \
    } while (0)
    if (c->features & ~(unsigned)(AD_FEAT_TIME_OF_DAY | AD_FEAT_DAY_OF_WEEK | AD_FEAT_GAP)) {
        ERR("unknown feature bits 0x%x", c->features);
        return -AD_EINVAL;
    }
    RANGE(model, 0, 1);
    RANGE(s2s_window, 2, 1024);
    RANGE(window, 2, 4096);
    RANGE(batch, 1, 4096);
    RANGE(history, 2 * (c->window > c->s2s_window ? c->window : c->s2s_window), 10000000);
    RANGE(train_after, 2 * c->window, 1000000000);
    RANGE(train_every, 0, 1000000000);
    RANGE(epochs, 1, 100000);
    RANGE(patience, 1, 100000);
    RANGE(val_frac, 0.0, 0.5);
    RANGE(lr, 1e-7, 1.0);
    RANGE(clip, 0.0, 1e6);
    RANGE(forget_bias, -20.0, 20.0);
    RANGE(input_clip, 1.0, 1e6);
    RANGE(prime, 0, 10000000);
    RANGE(relearn, 0, 1000000000);
    RANGE(max_exclude, 0.0, 1.0);
    RANGE(cooldown, 0, 100000000);
    RANGE(range_tolerance, 0.0, 100.0);
    RANGE(range_window, 0, 1000000000);
    RANGE(asinh, 0, 1);
    RANGE(seasonal_period, 0, 1000000000);
    RANGE(seasonal_periods, 1, 8);
    RANGE(warmup_naive, 0, 1);
    RANGE(alert_penalty, 0.0, 100.0);
    RANGE(alert_horizon, 100, 100000000);
    RANGE(long_window, 0, 1000000);
    RANGE(feature_span, 0, 1000000000);
    RANGE(raw_k, 0.0, 1e6);
    RANGE(raw_rms, 0.0, 1e6);
    RANGE(stateful, 0, 1);
    RANGE(incident_z, 0.0, 1e6);
    RANGE(incident_ref, 16, 4096);
    RANGE(departure, 0.0, 1e6);
    if (c->long_window > 0 && c->scorer.kind == AD_SCORER_LIKELIHOOD &&
        c->long_window > c->scorer.window) {
        ERR("long_window must be 0..the scorer's window (%d), got %d", c->scorer.window,
            c->long_window);
        return -AD_EINVAL;
    }
    if (!(c->seasonal_weight > 0.0f && c->seasonal_weight <= 1.0f)) {
        ERR("seasonal_weight must be in (0, 1], got %g", (double)c->seasonal_weight);
        return -AD_EINVAL;
    }
#undef RANGE
    return ad_scorer_config_check(&c->scorer, err, errlen);
}

void ad_detector_config_write(ad_wbuf *w, const ad_detector_config *c)
{
    ad_put_u32(w, ad_model_code(c->model));
    ad_put_u32(w, (uint32_t)c->s2s_window);
    ad_put_u32(w, ad_cell_code(c->kind));
    ad_put_u32(w, (uint32_t)c->layers);
    ad_put_u32(w, (uint32_t)c->hidden);
    ad_put_u32(w, c->features);
    ad_put_u32(w, (uint32_t)c->history);
    ad_put_u32(w, (uint32_t)c->train_after);
    ad_put_u32(w, (uint32_t)c->train_every);
    ad_put_u32(w, (uint32_t)c->window);
    ad_put_u32(w, (uint32_t)c->batch);
    ad_put_u32(w, (uint32_t)c->epochs);
    ad_put_u32(w, (uint32_t)c->patience);
    ad_put_f32(w, c->val_frac);
    ad_put_f32(w, c->lr);
    ad_put_f32(w, c->clip);
    ad_put_f32(w, c->input_clip);
    ad_put_u32(w, (uint32_t)c->prime);
    ad_put_u32(w, (uint32_t)c->relearn);
    ad_put_f32(w, c->max_exclude);
    ad_put_u32(w, (uint32_t)c->cooldown);
    ad_put_f32(w, c->range_tolerance);
    ad_put_u32(w, (uint32_t)c->range_window);
    ad_put_u32(w, (uint32_t)c->asinh);
    ad_put_u32(w, (uint32_t)c->seasonal_period);
    ad_put_u32(w, (uint32_t)c->seasonal_periods);
    ad_put_f32(w, c->seasonal_weight);
    ad_put_u32(w, (uint32_t)c->warmup_naive);
    ad_put_f32(w, c->alert_penalty);
    ad_put_u32(w, (uint32_t)c->long_window);
    ad_put_u64(w, c->seed);
    const ad_scorer_config *s = &c->scorer;
    ad_put_u32(w, ad_scorer_code(s->kind));
    ad_put_f32(w, s->threshold);
    ad_put_u32(w, (uint32_t)s->window);
    ad_put_u32(w, (uint32_t)s->short_window);
    ad_put_u32(w, (uint32_t)s->min_samples);
    ad_put_f32(w, s->ewma_alpha);
    ad_put_f32(w, s->z_min);
    ad_put_f32(w, s->z_max);
    ad_put_f32(w, s->prune);
    ad_put_u32(w, (uint32_t)s->refit);
    ad_put_f32(w, s->k);
    ad_put_f32(w, s->min_sd);
    ad_put_f32(w, s->error_bound);
    ad_put_f32(w, c->forget_bias); /* AD_DETECTOR_V_FORGET_BIAS on */
    /* AD_DETECTOR_V_RAW on */
    ad_put_u32(w, (uint32_t)c->feature_span);
    ad_put_f32(w, c->raw_k);
    ad_put_f32(w, c->raw_rms);
    ad_put_u32(w, (uint32_t)c->stateful); /* AD_DETECTOR_V_STATEFUL on */
    ad_put_f32(w, c->incident_z); /* AD_DETECTOR_V_INCIDENT on */
    ad_put_u32(w, (uint32_t)c->incident_ref);
    ad_put_u32(w, (uint32_t)c->alert_horizon); /* AD_DETECTOR_V_HORIZON on */
    ad_put_f32(w, c->departure);               /* AD_DETECTOR_V_DEPARTURE on */
}

int ad_detector_config_read(ad_rbuf *r, ad_detector_config *c, uint32_t version, char *err,
                            size_t errlen)
{
    memset(c, 0, sizeof(*c));
    const uint32_t model = ad_get_u32(r);
    c->s2s_window = (int)ad_get_u32(r);
    const uint32_t kind = ad_get_u32(r);
    c->layers = (int)ad_get_u32(r);
    c->hidden = (int)ad_get_u32(r);
    c->features = ad_get_u32(r);
    c->history = (int)ad_get_u32(r);
    c->train_after = (int)ad_get_u32(r);
    c->train_every = (int)ad_get_u32(r);
    c->window = (int)ad_get_u32(r);
    c->batch = (int)ad_get_u32(r);
    c->epochs = (int)ad_get_u32(r);
    c->patience = (int)ad_get_u32(r);
    c->val_frac = ad_get_f32(r);
    c->lr = ad_get_f32(r);
    c->clip = ad_get_f32(r);
    c->input_clip = ad_get_f32(r);
    c->prime = (int)ad_get_u32(r);
    c->relearn = (int)ad_get_u32(r);
    c->max_exclude = ad_get_f32(r);
    c->cooldown = (int)ad_get_u32(r);
    c->range_tolerance = ad_get_f32(r);
    c->range_window = (int)ad_get_u32(r);
    c->asinh = (int)ad_get_u32(r);
    c->seasonal_period = (int)ad_get_u32(r);
    c->seasonal_periods = (int)ad_get_u32(r);
    c->seasonal_weight = ad_get_f32(r);
    c->warmup_naive = (int)ad_get_u32(r);
    c->alert_penalty = ad_get_f32(r);
    c->long_window = (int)ad_get_u32(r);
    c->seed = ad_get_u64(r);
    ad_scorer_config *s = &c->scorer;
    const uint32_t scorer = ad_get_u32(r);
    s->threshold = ad_get_f32(r);
    s->window = (int)ad_get_u32(r);
    s->short_window = (int)ad_get_u32(r);
    s->min_samples = (int)ad_get_u32(r);
    s->ewma_alpha = ad_get_f32(r);
    s->z_min = ad_get_f32(r);
    s->z_max = ad_get_f32(r);
    s->prune = ad_get_f32(r);
    s->refit = (int)ad_get_u32(r);
    s->k = ad_get_f32(r);
    s->min_sd = ad_get_f32(r);
    s->error_bound = ad_get_f32(r);
    c->forget_bias = version >= AD_DETECTOR_V_FORGET_BIAS ? ad_get_f32(r) : 1.0f;
    /* before AD_DETECTOR_V_RAW: the time features always fed, no raw signal */
    c->feature_span = version >= AD_DETECTOR_V_RAW ? (int)ad_get_u32(r) : 0;
    c->raw_k = version >= AD_DETECTOR_V_RAW ? ad_get_f32(r) : 0.0f;
    c->raw_rms = version >= AD_DETECTOR_V_RAW ? ad_get_f32(r) : 0.05f;
    c->stateful = version >= AD_DETECTOR_V_STATEFUL ? (int)ad_get_u32(r) : 0;
    c->incident_z = version >= AD_DETECTOR_V_INCIDENT ? ad_get_f32(r) : 0.0f;
    c->incident_ref = version >= AD_DETECTOR_V_INCIDENT ? (int)ad_get_u32(r) : 400;
    c->alert_horizon =
        version >= AD_DETECTOR_V_HORIZON ? (int)ad_get_u32(r) : AD_ALERT_HORIZON_V11;
    c->departure = version >= AD_DETECTOR_V_DEPARTURE ? ad_get_f32(r) : 0.0f;
    /* the kinds from their codes; an unknown code leaves an invalid kind, with the
     * message ad_detector_config_check would give for it */
    const int m = ad_model_from_code(model), k = ad_cell_from_code(kind),
              sk = ad_scorer_from_code(scorer);
    c->model = m >= 0 ? m : -1;
    c->kind = k >= 0 ? (ad_cell_kind)k : AD_CELL_NKINDS;
    s->kind = sk >= 0 ? (ad_scorer_kind)sk : AD_SCORER_NKINDS;
    if (k < 0) {
        ERR("unknown cell kind %" PRIu32, kind);
        return -AD_EFORMAT;
    }
    if (m < 0) {
        ERR("model must be 0..1, got %" PRIu32, model);
        return -AD_EFORMAT;
    }
    if (sk < 0) {
        ERR("unknown scorer kind %" PRIu32, scorer);
        return -AD_EFORMAT;
    }
    return 0;
}
