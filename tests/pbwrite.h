/*
 * pbwrite.h - a small protobuf writer for the tests: Prometheus remote-write requests
 * built field by field (check_remote_write, check_promrw through core_harness), snappy
 * compressed as a sender does. Failures end the test (Check's ck_assert).
 */
#ifndef AD_TEST_PBWRITE_H
#define AD_TEST_PBWRITE_H

#include <stddef.h>
#include <stdint.h>

typedef struct pb {
    unsigned char *b;
    size_t n, cap;
} pb;

void pb_put(pb *p, const void *d, size_t n);
void pb_varint(pb *p, uint64_t v);
/* A length-delimited field. */
void pb_bytes(pb *p, int field, const void *d, size_t n);
void pb_str(pb *p, int field, const char *s);
/* sub as a nested message of field `field`; sub is freed and emptied. */
void pb_sub(pb *p, int field, pb *sub);
/* A TimeSeries' label (field 1) and sample (field 2: value, timestamp in ms). */
void pb_label(pb *ts, const char *name, const char *value);
void pb_sample(pb *ts, int64_t t_ms, double v);
/* Compresses p (freed and emptied) into a malloc'd snappy block of *len bytes. */
char *pb_snappy(pb *p, size_t *len);

#endif
