/*
 * daemon.h - the daemon: one libuv loop and everything hanging off it.
 *
 * ad_daemon owns the configuration, the series table, the listeners, the StatsD
 * aggregator and its flush timer, the trainer, the families, the event sinks, the HTTP
 * server, the persistence (state/persist.h), the eviction and checkpoint timers and the
 * signal handlers. Every line a listener (or POST /write) receives goes through
 * ad_daemon_line: parsed by its protocol's parser into samples; each sample finds or
 * creates its series (first sight; refused above max_series; dropped when an `ignore`
 * rule matches) and is observed by the series' detector; a flagged value becomes an
 * event; a due training goes to the trainer. Everything is counted for /metrics.
 *
 * The struct is private to the daemon's files (daemon*.c). Its doors: this header, the
 * lifecycle, for main.c; ingest_sink.h, how samples get in (listeners, POST /write,
 * remote write); stats.h, what readers (the HTTP API, /metrics) see.
 */
#ifndef AD_DAEMON_H
#define AD_DAEMON_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "http/http.h"
#include "ingest_sink.h"
#include "stats.h"

typedef struct ad_daemon ad_daemon;

/* Starts the daemon on a loop with a loaded configuration (copied; the daemon frees its
 * copy): restores the store, binds every socket, starts the timers and signal handlers.
 * `api` answers the HTTP server's requests with the daemon as its ctx (http/api.h's
 * ad_api_handle; NULL only when cfg->http_enabled is false). Returns 0, or a negative
 * ad_err with a message; either way *out is set (NULL only when out of memory at once):
 * on failure call ad_daemon_stop, run the loop until it ends, then ad_daemon_free. */
int ad_daemon_start(uv_loop_t *loop, ad_config *cfg, const char *config_path,
                    ad_http_handler api, ad_daemon **out, char *err, size_t errlen);

/* Reloads the configuration file (SIGHUP): see docs/DAEMON.md. 0, or a negative ad_err
 * with the message logged (the running configuration stays). */
int ad_daemon_reload(ad_daemon *d);

/* Graceful stop: stops accepting, delivers what the parsers hold, flushes StatsD, lets
 * running trainings come back, writes a final checkpoint, closes every handle. The loop
 * then ends by itself. */
void ad_daemon_stop(ad_daemon *d);

/* Frees the daemon once the loop has ended (NULL is fine). */
void ad_daemon_free(ad_daemon *d);

#endif
