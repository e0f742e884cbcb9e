/*
 * detcfg.c - the plain detector settings of the model suites (detcfg.h).
 */
#include "detcfg.h"

void plain_defaults(ad_detector_config *c)
{
    ad_detector_defaults(c);
    /* the suites were written for the defaults before H=32, lr 0.005, history 2500 and
     * training of up to 60 epochs with patience 8 */
    c->hidden = 16;
    c->lr = 0.01f;
    c->history = 1500;
    c->epochs = 30;
    c->patience = 4;
    c->features = 0;
    c->train_after = 400;
    c->cooldown = 0;
    c->range_tolerance = 0.0f;
    c->range_window = 0;
    c->seasonal_period = 0;
    c->seasonal_weight = 1.0f;
    c->warmup_naive = 0;
    c->long_window = 0;
    c->alert_penalty = 0.0f;
    c->window = 32;
    c->feature_span = 0;
    c->raw_k = 0.0f;
    ad_scorer_defaults(&c->scorer, AD_SCORER_LIKELIHOOD);
}
