/*
 * hash.h - the one string hash of the daemon's tables (series, StatsD keys, remote
 * write's series): 64-bit FNV-1a over the bytes.
 *
 * The offset basis is 1469598103934665603, not FNV's published 14695981039346656037 (a
 * digit was lost when the series table was written). It hashes as well; it is kept so
 * the tables' slot order, and with it every walk over them, stays as it was.
 */
#ifndef AD_HASH_H
#define AD_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t ad_hash_key(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

#endif
