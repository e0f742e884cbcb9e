/*
 * ingest_sink.h - the daemon's ingest door: how bytes a client sent become samples in
 * their series.
 *
 * A receiver (a listener, POST /write, remote write, the StatsD flush) stamps the receipt
 * of a body of bytes (ad_daemon_received), hands the daemon its lines (ad_daemon_line:
 * parsed by the protocol's parser; the answer says what became of the line) or its
 * samples (ad_daemon_sample), and flushes before its callback returns (ad_daemon_flush):
 * samples are taken in batches, and only a flush observes, counts and alerts on every
 * sample queued. Everything here runs on the loop thread.
 */
#ifndef AD_INGEST_SINK_H
#define AD_INGEST_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "ingest/promrw.h"
#include "ingest/sample.h"

typedef struct ad_daemon ad_daemon;

/* Bytes arrived at uv_hrtime() `ns`: their samples are stamped with this receipt (the
 * latency to their score counts from ns; samples without a timestamp, and each series'
 * last_seen, take the wall clock read now). What an earlier receipt left queued is
 * flushed first. */
void ad_daemon_received(ad_daemon *d, uint64_t ns);

/* One line from a client, as a receiver of protocol `proto` got it (precision: Influx's,
 * ad_influx_precision). Returns how many samples it queued (0 for a line with nothing to
 * do, and for a StatsD line, whose metric waits in the aggregator), or minus the
 * ad_parse_error that refused it (counted in parse_errors, warned about at most once a
 * minute per protocol). */
int ad_daemon_line(ad_daemon *d, int proto, int precision, const char *line, size_t len);

/* One parsed sample into its series (created on first sight), queued for the next flush:
 * what every protocol's lines become. */
void ad_daemon_sample(ad_daemon *d, int proto, const ad_sample *s);

/* Makes sure a key (NUL-terminated) has its series, creating it now as its first sample
 * would (the rule's settings, counted in series_created) but without a sample: for a
 * door that bounds how many series one request creates (promrw.c). Returns 1 when it
 * was created (create 0: when it would be; nothing is done), 0 when it exists or is not
 * for a series (an ignore rule, a family's key: its samples are counted as such when they
 * come), -AD_EFULL at max_series (nothing counted: the caller counts its refusal),
 * -AD_ENOMEM. */
int ad_daemon_prepare_series(ad_daemon *d, int proto, const char *key, size_t len,
                             int create);

/* Samples are taken in batches (ad_daemon_sample queues; a full batch goes at once):
 * whoever hands the daemon samples calls this before its callback returns, so every
 * sample is observed, counted and alerted on, and the family members' deferred network
 * steps have run (ad_fam_flush), before anything else runs. */
void ad_daemon_flush(ad_daemon *d);

/* A flush that leaves the batch's detectors running on the helper (score_threads: 2)
 * while the caller reads and parses the next bytes: for a listener with more bytes at
 * hand. The batch is finished by the next flush of either kind, which the caller must
 * make before its callback returns (nothing else may run meanwhile: the detectors are
 * the helper's). */
void ad_daemon_flush_async(ad_daemon *d);

/* The Prometheus remote-write receiver (promrw.h) feeding this daemon, created at the
 * first call; NULL when out of memory. */
ad_promrw *ad_daemon_promrw_open(ad_daemon *d);

#endif
