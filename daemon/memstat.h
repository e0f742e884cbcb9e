/*
 * memstat.h - where the daemon's memory goes: the process' resident set beside what its
 * parts hold, for GET /api/v1/status and /metrics (anomalyd_memory_bytes{part}).
 *
 * The parts are counted from the structures themselves (ad_detector_bytes and friends),
 * so they are exact for what they name and leave out malloc's headers, the allocator's
 * free lists, the loop's buffers, SQLite's cache and the code: rss minus their sum is
 * that rest. One pass over the series table: O(series), like the per-series families of
 * /metrics.
 */
#ifndef AD_MEMSTAT_H
#define AD_MEMSTAT_H

#include <stddef.h>

#include "families.h"
#include "ingest/promrw.h"
#include "series.h"

typedef struct ad_memstat {
    size_t rss;          /* resident set size, bytes (0: unknown) */
    size_t detectors;    /* every series' detector: own network, scorers, history, state */
    size_t recent;       /* the API's recent-point rings */
    size_t series;       /* series structs and their keys */
    size_t families;     /* shared families' networks */
    size_t remote_write; /* promrw.h's tables: per remote-write series state, metadata */
    size_t nseries;      /* series in the table */
} ad_memstat;

/* Fills m from the daemon's parts: its series table (one pass over the series, read
 * only), its families and its remote-write state (NULL: none yet). */
void ad_memstat_take(ad_series_table *series, const ad_fams *fams, const ad_promrw *promrw,
                     ad_memstat *m);

/* The process' resident set in bytes (/proc/self/statm), or 0. */
size_t ad_memstat_rss(void);

/* Bytes the daemon holds per series: (detectors + recent + series + remote_write) /
 * nseries, 0 without series. */
double ad_memstat_per_series(const ad_memstat *m);

#endif
