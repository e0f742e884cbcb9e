/*
 * rng.h - a small deterministic random number generator (xoshiro128+ seeded by
 * splitmix64), so initialisation, window sampling and tests give the same numbers on
 * every machine from the same seed.
 */
#ifndef AD_RNG_H
#define AD_RNG_H

#include <stdint.h>

typedef struct ad_rng {
    uint64_t s[2];
} ad_rng;

void ad_rng_seed(ad_rng *r, uint64_t seed);
uint64_t ad_rng_u64(ad_rng *r);
/* Uniform in [0, 1). */
float ad_rng_uniform(ad_rng *r);
/* Uniform integer in [0, n) (n > 0). */
uint32_t ad_rng_below(ad_rng *r, uint32_t n);
/* Standard normal (Box-Muller). */
float ad_rng_normal(ad_rng *r);

#endif
