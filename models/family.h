/*
 * family.h - shared models: a family of series (say cpu.*.user across hosts) sharing one
 * network, each member keeping its own rolling state, normaliser, scorer and history
 * (detector.h, "Family members"). This module trains the family's network on its members'
 * pooled histories, off the caller's thread like a detector's training:
 *
 *   ad_family_snapshot()  copies windows of each member's recent history, normalised by
 *                         the member's own normaliser (fitted on its history when it has
 *                         not joined yet), and a copy of the network (caller's thread);
 *   ad_family_job_run()   trains the copy by BPTT over the pooled windows (each window
 *                         from one member: no window crosses two series) with Adam and
 *                         early stopping on held-out windows: pure, any thread;
 *   ad_family_install()   copies the trained weights into the family's network (caller's
 *                         thread); the caller then re-primes the members
 *                         (ad_detector_join).
 *
 * A family's network is an ad_net the caller owns (serial.h saves it); nothing here holds
 * pointers to members after the snapshot.
 */
#ifndef AD_FAMILY_H
#define AD_FAMILY_H

#include <stddef.h>

#include "detector.h"
#include "net.h"

typedef struct ad_family_job ad_family_job;

/* Snapshots up to max_windows windows of c->window steps, at most per_member from each
 * member with at least one window of history plus one value (its newest windows), for
 * training `net`.
 * Returns 0, -AD_EINVAL when no member has enough history, -AD_ENOMEM. */
int ad_family_snapshot(const ad_net *net, const ad_detector_config *c,
                       ad_detector *const *members, int n, int per_member, int max_windows,
                       ad_family_job **out, char *err, size_t errlen);

/* Runs the job (pure). 0 or a negative ad_err. */
int ad_family_job_run(ad_family_job *job, char *err, size_t errlen);

/* Copies the trained weights into net (same shape). 0 or -AD_EINVAL. Members' pending
 * steps (ad_detector_observe_defer) must run before (ad_detector_step_batch): they
 * belong to the old weights. */
int ad_family_install(ad_net *net, const ad_family_job *job, char *err, size_t errlen);

/* Windows trained on, members that gave windows, epochs run, losses. */
void ad_family_job_result(const ad_family_job *job, int *windows, int *members, int *epochs,
                          float *train_loss, float *val_loss);
void ad_family_job_free(ad_family_job *job);

#endif
