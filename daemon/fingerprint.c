/*
 * fingerprint.c - the fingerprint of a series' detector settings (fingerprint.h).
 */
#include "fingerprint.h"

#include <string.h>

#include "blob.h"

#define SHARED_SALT 0x5348415245440001ull /* "SHARED": a family member's */

uint64_t ad_fingerprint(const ad_detector_config *c, int shared)
{
    uint8_t buf[1024];
    ad_wbuf w;
    uint64_t fp;

    ad_wbuf_init(&w, buf, sizeof(buf));
    ad_detector_config_write(&w, c);
    /* Version 13's departure (the last 4 bytes), and version 10's incident_z and
     * incident_ref (8 bytes before version 12's alert_horizon, which is set aside) only
     * say how long the anomalous state lasts: they are never part of it. A series
     * restored or kept on reload takes the configuration's (ad_detector_set_incident). */
    uint8_t horizon[4] = {0};
    if (w.len >= 16) {
        w.len -= 4;
        memcpy(horizon, buf + w.len - 4, 4);
        w.len -= 12;
    }
    /* Fields appended to the configuration since blob version 6 are left out while they
     * hold the value that behaves as before them, so settings saved before them keep
     * their fingerprint (an upgrade restores those series); any other value counts as
     * other settings (those series start afresh). They drop from the end: version 12's
     * alert_horizon at 2000 (any other value goes in after the rest), then version 9's
     * stateful (4 bytes) at 0, then version 8's feature_span, raw_k, raw_rms (12) with
     * the time features always fed and no raw signal, then version 7's forget_bias (4)
     * at 1. */
    if (c->alert_horizon != AD_ALERT_HORIZON_V11) {
        memcpy(buf + w.len, horizon, 4);
        w.len += 4;
    } else if (c->stateful == 0 && w.len >= 20) {
        w.len -= 4;
        if (c->feature_span == 0 && c->raw_k == 0.0f) {
            w.len -= 12;
            if (c->forget_bias == 1.0f)
                w.len -= 4;
        }
    }
    /* Two CRCs (forwards, and seeded) make a 64-bit fingerprint; the config is small
     * and fixed-size, so a collision between settings one would really use is not a
     * concern. */
    fp = ((uint64_t)ad_crc32(0, buf, w.len) << 32) | ad_crc32(0x9e3779b9u, buf, w.len);
    return shared ? fp ^ SHARED_SALT : fp;
}
