/*
 * memstat.c - the daemon's memory by part (memstat.h).
 */
#include "memstat.h"

#include <stdio.h>
#include <unistd.h>

size_t ad_memstat_rss(void)
{
    unsigned long size, resident;
    FILE *f = fopen("/proc/self/statm", "r");
    int n;

    if (!f)
        return 0;
    n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

void ad_memstat_take(ad_series_table *series, const ad_fams *fams, const ad_promrw *promrw,
                     ad_memstat *m)
{
    ad_series_iter it;
    ad_series *s;

    *m = (ad_memstat){0};
    m->rss = ad_memstat_rss();
    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(series, &it))) {
        m->nseries++;
        m->detectors += s->det ? ad_detector_bytes(s->det) : 0;
        m->recent += (size_t)s->recent_cap * sizeof(*s->recent);
        m->series += sizeof(*s) + s->key_len + 1;
    }
    for (const ad_fam *f = fams->head; f; f = f->next)
        m->families += ad_net_bytes(f->net);
    m->remote_write = ad_promrw_bytes(promrw);
}

double ad_memstat_per_series(const ad_memstat *m)
{
    if (!m->nseries)
        return 0;
    return (double)(m->detectors + m->recent + m->series + m->remote_write) /
           (double)m->nseries;
}
