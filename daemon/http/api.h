/*
 * api.h - the HTTP API: routes requests of the daemon's HTTP server.
 *
 *   GET  /metrics                       Prometheus text exposition (metrics.h)
 *   GET  /healthz                       200 {"status":"ok",...} while the loop runs
 *   GET  /api/v1/status                 uptime, series, samples, training, events
 *   GET  /api/v1/series?match=GLOB&limit=N   series with their last score (sorted by key)
 *   GET  /api/v1/series/{key}           one series: settings, model, counters and its
 *                                       recent values, predictions, scores and flags
 *   GET  /api/v1/series/{key}/plot.svg  its recent points as an SVG chart (plot.h); a
 *                                       series whose key is the whole path wins
 *   GET  /api/v1/anomalies?since=TS&limit=N  recent anomalies after TS (seconds)
 *   POST /write?precision=ns|us|ms|s    InfluxDB line protocol (as InfluxDB 1.x's
 *                                       /write): 204 when every line was taken, 400
 *                                       with the first error otherwise
 *
 * When http.token is set, /api/ and /write need "Authorization: Bearer <token>" (401
 * otherwise); /metrics and /healthz stay open for scrapers and probes. Responses are
 * JSON built with cJSON. Unknown paths give 404, wrong methods 405.
 */
#ifndef AD_API_H
#define AD_API_H

#include "http/http.h"

/* The HTTP server's handler; ctx is the ad_daemon (it reads the daemon through stats.h
 * and feeds it through ingest_sink.h). main.c hands it to ad_daemon_start. */
void ad_api_handle(void *ctx, const ad_http_req *req, ad_http_conn *conn);

#endif
