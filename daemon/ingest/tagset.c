/*
 * tagset.c - insertion into a small sorted array of tag slices (a few tags, nearly in
 * order as senders write them: insertion beats anything cleverer) with duplicate names
 * refused, and the writer of the canonical key `name;k=v;...` with its bound checked
 * before the first byte is written.
 */
#include "ingest/tagset.h"

#include <string.h>

/* Bytewise order of tag names, the shorter first on a common prefix. */
static int name_cmp(const ad_tag *a, const ad_tag *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c)
        return c;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

void ad_tagset_init(ad_tagset *ts, ad_tag_cmp_fn cmp)
{
    ts->n = 0;
    ts->cmp = cmp ? cmp : name_cmp;
}

int ad_tagset_add(ad_tagset *ts, const char *name, size_t name_len, const char *value,
                  size_t value_len)
{
    ad_tag cur = {name, name_len, value, value_len};
    if (ts->n == AD_TAGSET_MAX)
        return -AD_PE_TAGS;
    int i = ts->n;
    while (i > 0 && ts->cmp(&ts->tag[i - 1], &cur) > 0)
        i--;
    if (i > 0 && ts->cmp(&ts->tag[i - 1], &cur) == 0)
        return -AD_PE_TAGS; /* duplicate name */
    memmove(&ts->tag[i + 1], &ts->tag[i], (size_t)(ts->n - i) * sizeof(ts->tag[0]));
    ts->tag[i] = cur;
    ts->n++;
    return 0;
}

int ad_tagset_key(const ad_tagset *ts, const char *name, size_t name_len, char *keybuf,
                  size_t keycap, size_t *key_len)
{
    size_t klen = name_len;
    for (int t = 0; t < ts->n; t++)
        klen += 2 + ts->tag[t].name_len + ts->tag[t].value_len;
    if (klen >= keycap)
        return -AD_PE_KEY_TOO_LONG;
    memcpy(keybuf, name, name_len);
    size_t k = name_len;
    for (int t = 0; t < ts->n; t++) {
        const ad_tag *tg = &ts->tag[t];
        keybuf[k++] = ';';
        memcpy(keybuf + k, tg->name, tg->name_len);
        k += tg->name_len;
        keybuf[k++] = '=';
        if (tg->value_len) /* a bare tag's value may be NULL */
            memcpy(keybuf + k, tg->value, tg->value_len);
        k += tg->value_len;
    }
    keybuf[k] = '\0';
    *key_len = k;
    return 0;
}
