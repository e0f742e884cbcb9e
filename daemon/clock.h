/*
 * clock.h - the daemon's clocks, in seconds as doubles.
 *
 * ad_wall_now: the wall clock (CLOCK_REALTIME), for timestamps that leave the process
 * (samples without one, last_seen, logs, the store's rows). ad_mono_now: the monotonic
 * clock, for intervals and deadlines (never jumps). ad_thread_cpu_now: CPU time of the
 * calling thread (the trainer's budget). uv_hrtime() stays libuv's for the loop's
 * nanosecond receipt stamps.
 */
#ifndef AD_CLOCK_H
#define AD_CLOCK_H

double ad_wall_now(void);
double ad_mono_now(void);
double ad_thread_cpu_now(void);

#endif
