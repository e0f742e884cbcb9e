/*
 * tagset.h - the tags of one line, sorted by name, and the canonical key they make.
 *
 * A parser keeps a line's tags in an ad_tagset on its stack: name and value as pointer +
 * length slices into the line (or into the caller's own buffers), at most AD_TAGSET_MAX.
 * Each tag is inserted in order of its name (bytewise, the shorter first on a common
 * prefix, unless the set was given another order); a second tag of the same name is
 * refused. The set then writes the key `name;k1=v1;k2=v2` into the caller's bounded
 * key buffer. What a valid name or value is stays the parser's business. Pure: no I/O,
 * no allocation.
 */
#ifndef AD_TAGSET_H
#define AD_TAGSET_H

#include <stddef.h>

#include "ingest/sample.h"

#define AD_TAGSET_MAX 64 /* tags per line, for every protocol */

typedef struct ad_tag {
    const char *name;  /* not NUL-terminated */
    size_t name_len;   /* > 0 (the parser's check) */
    const char *value; /* may be NULL when value_len is 0 */
    size_t value_len;
} ad_tag;

/* An order of tags by name: <0, 0 (the same name) or >0, as memcmp. */
typedef int (*ad_tag_cmp_fn)(const ad_tag *a, const ad_tag *b);

typedef struct ad_tagset {
    int n;                     /* tags held, 0..AD_TAGSET_MAX */
    ad_tag_cmp_fn cmp;         /* the order of names */
    ad_tag tag[AD_TAGSET_MAX]; /* [n], sorted by cmp, no two names equal */
} ad_tagset;

/* Starts an empty set ordered by cmp, or bytewise by name when cmp is NULL. */
void ad_tagset_init(ad_tagset *ts, ad_tag_cmp_fn cmp);

/* Inserts one tag in its place. Returns 0, or -AD_PE_TAGS (the set unchanged) when the
 * set is full or already holds a tag of that name. */
int ad_tagset_add(ad_tagset *ts, const char *name, size_t name_len, const char *value,
                  size_t value_len);

/* Writes `name` then `;k=v` for each tag in order into keybuf, NUL-terminated, and its
 * length (without the NUL) to *key_len. Returns 0, or -AD_PE_KEY_TOO_LONG (keybuf
 * untouched) when the key and its NUL do not fit keycap bytes. */
int ad_tagset_key(const ad_tagset *ts, const char *name, size_t name_len, char *keybuf,
                  size_t keycap, size_t *key_len);

#endif
