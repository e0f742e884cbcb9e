/*
 * clock.c - the daemon's clocks (clock.h).
 */
#include "clock.h"

#include <time.h>

static double read_clock(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double ad_wall_now(void)
{
    return read_clock(CLOCK_REALTIME);
}

double ad_mono_now(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

double ad_thread_cpu_now(void)
{
    return read_clock(CLOCK_THREAD_CPUTIME_ID);
}
