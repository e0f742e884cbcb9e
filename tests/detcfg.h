/*
 * detcfg.h - the plain detector settings the model suites are written against.
 *
 * The shipped defaults (ad_detector_defaults) are the daemon's and may change with the
 * benchmarks; these suites set the library's plain baseline explicitly (no inputs beyond
 * the value, H=16, lr 0.01, history 1500, 30 epochs with patience 4, no seasonal, range,
 * long or raw signals, no cooldown or penalty, the scorer's own defaults, first training
 * after 400, T=32, time features always fed), so what each test means does not move.
 */
#ifndef AD_TEST_DETCFG_H
#define AD_TEST_DETCFG_H

#include "detector_config.h"

/* ad_detector_defaults, then the plain baseline above. */
void plain_defaults(ad_detector_config *c);

#endif
