/*
 * daemon_reload.c - SIGHUP: the configuration file read again and applied to the running
 * daemon, what only a restart changes left as it is (docs/DAEMON.md).
 */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "daemon_impl.h"
#include "fingerprint.h"
#include "log.h"

static int same_http(const ad_config *a, const ad_config *b)
{
    return a->http_enabled == b->http_enabled && !strcmp(a->http_address, b->http_address) &&
           a->http_port == b->http_port && a->http_max_body == b->http_max_body &&
           a->max_connections == b->max_connections;
}

static int same_events(const ad_config *a, const ad_config *b)
{
    return !strcmp(a->events_address, b->events_address) && a->events_port == b->events_port &&
           !strcmp(a->events_unix, b->events_unix) && !strcmp(a->events_file, b->events_file) &&
           a->events_buffer == b->events_buffer;
}

/* Series whose settings the new configuration changes start afresh (they are evicted
 * and come back with their next sample); those an ignore rule now matches go. */
static void reapply_rules(ad_daemon *d, const ad_config *nc)
{
    ad_series_iter it;
    ad_series *s;
    size_t changed = 0, ignored = 0;

    ad_series_iter_start(&it);
    while ((s = ad_series_iter_next(d->series, &it))) {
        const ad_detector_config *det;
        int ignore, rule = ad_config_match(nc, s->key, &det, &ignore);
        int shared = rule >= 0 && nc->rules[rule].shared;

        if (ignore) {
            ad_daemon_evict(d, s);
            ignored++;
        } else if (ad_fingerprint(det, shared) != s->fingerprint) {
            ad_daemon_evict(d, s);
            changed++;
        } else {
            s->rule = rule;
            if (s->det)
                ad_detector_set_incident(s->det, det->incident_z, det->incident_ref,
                                         det->departure);
        }
    }
    if (changed || ignored)
        ad_log_info("reload: %zu series start afresh with changed settings, %zu are now "
                    "ignored",
                    changed, ignored);
}

int ad_daemon_reload(ad_daemon *d)
{
    ad_config nc;
    char err[1024], status[256];
    int r, rc = 0;

    ad_sd_reloading("reloading the configuration");
    if (d->events)
        ad_events_reopen(d->events);
    if (!d->config_path[0]) {
        ad_log_info("reload: running on the built-in defaults, no file to read again");
        goto out_ready;
    }
    if (ad_config_load(d->config_path, &nc, err, sizeof(err)) < 0) {
        d->st.reload_failures++;
        ad_log_error("reload refused, the running configuration stays: %s", err);
        rc = -AD_EINVAL;
        goto out_ready;
    }
    /* What only a restart changes. The paths the file leaves to state_dir stay in the
     * running one (the new one may not even exist yet: it is created at start). */
    if (nc.store_enabled != d->cfg.store_enabled || strcmp(nc.store_path, d->cfg.store_path) ||
        strcmp(nc.state_dir, d->cfg.state_dir))
        ad_log_warn("reload: state_dir (with the paths that follow it) and store.enabled/path "
                    "take effect at the next restart");
    if (ad_config_set_state_dir(&nc, d->cfg.state_dir, err, sizeof(err)) < 0) {
        ad_config_free(&nc);
        d->st.reload_failures++;
        ad_log_error("reload refused, the running configuration stays: %s: %s (with the "
                     "running state_dir)",
                     d->config_path, err);
        rc = -AD_EINVAL;
        goto out_ready;
    }
    nc.store_enabled = d->cfg.store_enabled;
    memcpy(nc.store_path, d->cfg.store_path, sizeof(nc.store_path));

    ad_log_set_level(nc.log_level);
    if (d->listeners && ad_listeners_reconcile(d->listeners, &nc, err, sizeof(err)) < 0) {
        ad_log_error("reload: %s (the other listeners are as configured)", err);
        rc = -AD_EIO;
    }
    if (!same_http(&d->cfg, &nc)) {
        if (d->http) {
            ad_http_server_close(d->http, NULL, NULL);
            d->http = NULL;
        }
        d->cfg.http_enabled = nc.http_enabled;
        memcpy(d->cfg.http_address, nc.http_address, sizeof(nc.http_address));
        d->cfg.http_port = nc.http_port;
        d->cfg.http_max_body = nc.http_max_body;
        d->cfg.max_connections = nc.max_connections;
        if ((r = ad_daemon_start_http(d, err, sizeof(err))) < 0) {
            ad_log_error("reload: http: %s (no HTTP API until fixed and reloaded)", err);
            rc = r;
        }
    }
    if (!same_events(&d->cfg, &nc)) {
        if (d->events) {
            ad_events_close(d->events, NULL, NULL);
            d->events = NULL;
        }
        if ((r = ad_events_start(d->loop, &nc, -1, &d->events, err, sizeof(err))) < 0) {
            d->events = NULL;
            ad_log_error("reload: events: %s (events go only to the log until fixed and "
                         "reloaded)",
                         err);
            rc = r;
        }
    }
    if (d->trainer) {
        ad_trainer_set_limits(d->trainer, nc.train_threads, nc.train_cpu_budget, nc.train_queue);
        ad_trainer_set_nice(d->trainer, nc.train_nice);
    }
    if (nc.weights != d->cfg.weights) {
        ad_series_iter it;
        ad_series *x;

        ad_fam_flush(&d->fams);
        ad_series_iter_start(&it);
        while ((x = ad_series_iter_next(d->series, &it)))
            ad_detector_set_weights(x->det, nc.weights);
        ad_fams_set_weights(&d->fams, nc.weights);
    }
    if (ad_daemon_score_threads(&nc) != ad_daemon_score_threads(&d->cfg)) {
        ad_fanout *f;

        if (ad_fanout_create(ad_daemon_score_threads(&nc), &f) == 0) {
            ad_fanout_free(d->fanout);
            d->fanout = f;
        } /* else: out of memory, the running one stays */
    }
    ad_fdbudget_measure(&d->fdb, ad_fdlimit_apply(&nc));
    ad_daemon_share_fdbudget(d);
    ad_series_table_set_max(d->series, nc.max_series);
    reapply_rules(d, &nc);
    ad_config_free(&d->cfg);
    d->cfg = nc;
    ad_daemon_start_timers(d);
    d->st.reloads++;
    if (d->promrw)
        ad_promrw_reconfigure(d->promrw);
    ad_log_info("reloaded %s", d->config_path);

out_ready:
    ad_daemon_status_line(d, status, sizeof(status));
    ad_sd_ready(status);
    return rc;
}

