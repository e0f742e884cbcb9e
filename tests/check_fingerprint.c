/*
 * check_fingerprint.c - daemon/fingerprint.c: the fingerprint of a series' settings that
 * the store keeps beside its blob (persist.c restores a series only when it still matches;
 * persist.c itself is check_persist.c).
 *
 * The fingerprint is two CRC-32s of the settings as ad_detector_config_write lays them
 * out. The fields appended since detector blob version 6 (forget_bias in 7; feature_span,
 * raw_k, raw_rms in 8; stateful in 9) are left out while they hold what behaves as before
 * them (forget_bias 1, feature_span 0, raw_k 0, stateful 0), so a store written before they existed
 * still matches (an upgrade restores its series); any other value changes the fingerprint (the
 * series start afresh). Version 10's incident_z and incident_ref are always left out: they only
 * say how long the anomalous state lasts, and a restored series takes the configuration's.
 * Version 12's alert_horizon is left out at 2000, the horizon before it; any other value
 * goes in after the fields before the incident's. Version 13's departure (the last field)
 * is always left out, like the incident's fields: it too only says how long the state lasts.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "detector_config.h"
#include "fingerprint.h"

/* The fingerprint of the bytes before the last `drop` bytes of the configuration. */
static uint64_t without_last(const ad_detector_config *c, size_t drop)
{
    uint8_t buf[1024];
    ad_wbuf w;

    ad_wbuf_init(&w, buf, sizeof(buf));
    ad_detector_config_write(&w, c);
    ck_assert(!w.err && w.len > drop);
    w.len -= drop;
    return ((uint64_t)ad_crc32(0, buf, w.len) << 32) | ad_crc32(0x9e3779b9u, buf, w.len);
}

/* Version 10's incident_z and incident_ref, version 12's alert_horizon and version 13's
 * departure: the configuration's last 16 bytes. */
#define INCIDENT_BYTES 16

/* The defaults with version 11's alert horizon, 2000 samples. */
static void defaults_v11(ad_detector_config *c)
{
    ad_detector_defaults(c);
    c->alert_horizon = 2000;
}

/* What stores held before version 7: the bytes before forget_bias (4), version 8's fields
 * (12), version 9's stateful (4) and version 10's incident fields. */
static uint64_t without_forget_bias(const ad_detector_config *c)
{
    return without_last(c, 20 + INCIDENT_BYTES);
}

START_TEST(test_fingerprint_forget_bias)
{
    ad_detector_config c;

    defaults_v11(&c);
    ck_assert(c.forget_bias == 1.0f);
    /* the defaults feed time features by span and score a raw signal: other settings */
    ck_assert_uint_ne(ad_fingerprint(&c, 0), without_forget_bias(&c));
    c.feature_span = 0;
    c.raw_k = 0.0f;
    const uint64_t fp = ad_fingerprint(&c, 0);
    ck_assert_uint_eq(fp, without_forget_bias(&c));
    c.forget_bias = 3.0f;
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp);
    c.forget_bias = 1.0f;
    c.raw_k = 2.0f; /* a raw signal: other settings */
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp);
    c.raw_k = 0.0f;
    c.feature_span = 172800;
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp);
    c.feature_span = 0;
    c.hidden = 17; /* any other setting still counts */
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp);
}
END_TEST

/* stateful 0 (the default) leaves version 8's fingerprints as they were (the settings
 * without the last 4 bytes); stateful 1 is other settings. */
START_TEST(test_fingerprint_stateful)
{
    ad_detector_config c;

    defaults_v11(&c);
    ck_assert_int_eq(c.stateful, 0);
    const uint64_t fp = ad_fingerprint(&c, 0);
    ck_assert_uint_eq(fp, without_last(&c, 4 + INCIDENT_BYTES));
    c.stateful = 1;
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp);
    ck_assert_uint_ne(ad_fingerprint(&c, 0), without_last(&c, 4 + INCIDENT_BYTES));
    c.feature_span = 0; /* and it keeps the other appended fields in */
    c.raw_k = 0.0f;
    ck_assert_uint_ne(ad_fingerprint(&c, 0), without_forget_bias(&c));
}
END_TEST

/* incident_z and incident_ref never change the fingerprint: version 9's stay as they were
 * (at the defaults: the settings without the last 8 bytes and stateful's 4), whatever
 * they hold; the field before them does. */
START_TEST(test_fingerprint_incident)
{
    ad_detector_config c;

    defaults_v11(&c);
    ck_assert(c.incident_z > 0.0f);
    const uint64_t fp = ad_fingerprint(&c, 0);
    ck_assert_uint_eq(fp, without_last(&c, 4 + INCIDENT_BYTES));
    c.incident_z = 0.0f;
    ck_assert_uint_eq(ad_fingerprint(&c, 0), fp);
    c.incident_z = 3.5f;
    c.incident_ref = 17;
    ck_assert_uint_eq(ad_fingerprint(&c, 0), fp);
    ck_assert_uint_eq(ad_fingerprint(&c, 1), ad_fingerprint(&c, 0) ^ 0x5348415245440001ull);
    c.stateful = 1;
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp);
}
END_TEST

/* alert_horizon: at 2000 (version 11's) the fingerprint is version 11's (above); the
 * default 50000, or any other value, is other settings: the settings before the incident's
 * fields with the horizon after them, the incident's fields still left out. */
START_TEST(test_fingerprint_horizon)
{
    ad_detector_config c;
    uint8_t buf[1024];
    ad_wbuf w;

    ad_detector_defaults(&c);
    ck_assert_int_eq(c.alert_horizon, 50000);
    const uint64_t fp = ad_fingerprint(&c, 0);
    ad_wbuf_init(&w, buf, sizeof(buf));
    ad_detector_config_write(&w, &c);
    ck_assert(!w.err && w.len > INCIDENT_BYTES);
    memmove(buf + w.len - INCIDENT_BYTES, buf + w.len - 8, 4); /* the horizon */
    w.len -= INCIDENT_BYTES - 4;
    ck_assert_uint_eq(fp, ((uint64_t)ad_crc32(0, buf, w.len) << 32) |
                              ad_crc32(0x9e3779b9u, buf, w.len));
    c.incident_z = 3.0f; /* still left out */
    c.incident_ref = 99;
    ck_assert_uint_eq(ad_fingerprint(&c, 0), fp);
    c.alert_horizon = 5000;
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp);
    c.alert_horizon = 2000;
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp);
    ck_assert_uint_eq(ad_fingerprint(&c, 0), without_last(&c, 4 + INCIDENT_BYTES));
}
END_TEST

/* departure never changes the fingerprint, at the default (6) or not, with the horizon
 * at 2000 or not; the settings before it still do. */
START_TEST(test_fingerprint_departure)
{
    ad_detector_config c;

    ad_detector_defaults(&c);
    ck_assert(c.departure == 6.0f);
    const uint64_t fp = ad_fingerprint(&c, 0);
    c.departure = 2.5f;
    ck_assert_uint_eq(ad_fingerprint(&c, 0), fp);
    c.alert_horizon = 2000;
    const uint64_t fp11 = ad_fingerprint(&c, 0);
    ck_assert_uint_ne(fp11, fp);
    c.departure = 0.0f;
    ck_assert_uint_eq(ad_fingerprint(&c, 0), fp11);
    ck_assert_uint_eq(fp11, without_last(&c, 4 + INCIDENT_BYTES));
    c.hidden = 17;
    ck_assert_uint_ne(ad_fingerprint(&c, 0), fp11);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fingerprint");
    TCase *tc = tcase_create("fingerprint");
    tcase_add_test(tc, test_fingerprint_forget_bias);
    tcase_add_test(tc, test_fingerprint_stateful);
    tcase_add_test(tc, test_fingerprint_incident);
    tcase_add_test(tc, test_fingerprint_horizon);
    tcase_add_test(tc, test_fingerprint_departure);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
