/*
 * fingerprint.h - the fingerprint of a series' detector settings.
 *
 * The store keeps it beside each detector blob: a series restores only when the
 * configuration still gives it the settings it was saved with (state/persist.h), and a
 * reload starts afresh the series whose settings it changes (daemon_reload.c). A family
 * member's fingerprint differs from an own-weight series' with the same settings, so a
 * rule that turns `shared` on or off is a change of settings too (families.h).
 */
#ifndef AD_FINGERPRINT_H
#define AD_FINGERPRINT_H

#include <stdint.h>

#include "detector_config.h"

/* The fingerprint of settings c for an own-weight series (shared 0) or a member of a
 * shared family (shared 1). Two CRC-32s of the settings as ad_detector_config_write lays
 * them out; the fields appended since blob version 6 are left out while they hold the
 * value that behaves as before them, so settings saved before them keep their
 * fingerprint. */
uint64_t ad_fingerprint(const ad_detector_config *c, int shared);

#endif
