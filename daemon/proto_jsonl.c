/*
 * proto_jsonl.c - the JSON-lines parser: cJSON reads the line (the project writes no JSON
 * parser of its own); this file picks the members out, checks them, sorts the tags and
 * writes the canonical key `name;a=1;b=2`. The cJSON tree lives only inside one call.
 */
#include "proto_jsonl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AD_JSONL_MAX_TAGS 64
#define AD_JSONL_TS_MAX   1e11 /* seconds, as Graphite's */

typedef struct tag {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} tag;

static int tag_cmp(const tag *a, const tag *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c)
        return c;
    return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* The first member of obj among names (a NULL-terminated list), or NULL. */
static const cJSON *member(const cJSON *obj, const char *const *names)
{
    for (; *names; names++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, *names);
        if (m)
            return m;
    }
    return NULL;
}

/* The shortest "%.Ng" spelling of v that reads back as v, into buf (32 bytes). */
static size_t format_number(double v, char *buf)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return (size_t)n;
}

/* Reads the "tags" object into sorted tags; numbers are spelled into nums (32 bytes per
 * tag). Returns the count or -AD_PE_TAGS. */
static int tags_parse(const cJSON *obj, tag *tags, char (*nums)[32])
{
    int n = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, obj)
    {
        if (n == AD_JSONL_MAX_TAGS || !t->string)
            return -AD_PE_TAGS;
        tag cur = {t->string, strlen(t->string), NULL, 0};
        if (cJSON_IsString(t)) {
            cur.value = t->valuestring;
            cur.value_len = strlen(t->valuestring);
        } else if (cJSON_IsNumber(t) && isfinite(t->valuedouble)) {
            cur.value = nums[n];
            cur.value_len = format_number(t->valuedouble, nums[n]);
        } else {
            return -AD_PE_TAGS;
        }
        if (cur.name_len == 0 || cur.value_len == 0 || strpbrk(cur.name, ";=") ||
            memchr(cur.value, ';', cur.value_len))
            return -AD_PE_TAGS;
        int i = n++;
        while (i > 0 && tag_cmp(&tags[i - 1], &cur) > 0) {
            tags[i] = tags[i - 1];
            i--;
        }
        tags[i] = cur;
        if ((i > 0 && tag_cmp(&tags[i - 1], &cur) == 0) ||
            (i + 1 < n && tag_cmp(&tags[i + 1], &cur) == 0))
            return -AD_PE_TAGS;
    }
    return n;
}

static int value_parse(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble))
            return -AD_PE_NONFINITE;
        *out = v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v))
        return ad_parse_number(v->valuestring, strlen(v->valuestring), out);
    return -AD_PE_VALUE; /* absent, null, boolean, array, object */
}

static int ts_parse(const cJSON *t, double *ts)
{
    if (!t || cJSON_IsNull(t)) {
        *ts = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(t) || !(t->valuedouble >= 0 && t->valuedouble < AD_JSONL_TS_MAX))
        return -AD_PE_TIMESTAMP;
    *ts = t->valuedouble;
    return 0;
}

static int is_json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ad_jsonl_parse(const char *line, size_t len, char *keybuf, size_t keycap, ad_sample *out)
{
    static const char *const name_keys[] = {"series", "name", "metric", NULL};
    static const char *const ts_keys[] = {"ts", "timestamp", "time", NULL};
    size_t i = 0;
    while (i < len && is_json_space(line[i]))
        i++;
    if (i == len)
        return AD_PARSE_SKIP;

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!root)
        return -AD_PE_SYNTAX;
    int rc = -AD_PE_SYNTAX;
    for (const char *p = end; p < line + len; p++)
        if (!is_json_space(*p))
            goto out_free; /* bytes after the object */
    if (!cJSON_IsObject(root))
        goto out_free;

    const cJSON *name = member(root, name_keys);
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0' || strchr(name->valuestring, ';'))
        goto out_free;
    size_t name_len = strlen(name->valuestring);

    tag tags[AD_JSONL_MAX_TAGS];
    char nums[AD_JSONL_MAX_TAGS][32];
    int ntags = 0;
    const cJSON *tobj = cJSON_GetObjectItemCaseSensitive(root, "tags");
    if (tobj && !cJSON_IsNull(tobj)) {
        rc = cJSON_IsObject(tobj) ? tags_parse(tobj, tags, nums) : -AD_PE_TAGS;
        if (rc < 0)
            goto out_free;
        ntags = rc;
    }

    double value, ts;
    rc = value_parse(cJSON_GetObjectItemCaseSensitive(root, "value"), &value);
    if (rc < 0)
        goto out_free;
    rc = ts_parse(member(root, ts_keys), &ts);
    if (rc < 0)
        goto out_free;

    size_t klen = name_len;
    for (int t = 0; t < ntags; t++)
        klen += 2 + tags[t].name_len + tags[t].value_len;
    rc = -AD_PE_KEY_TOO_LONG;
    if (klen >= keycap)
        goto out_free;
    memcpy(keybuf, name->valuestring, name_len);
    size_t k = name_len;
    for (int t = 0; t < ntags; t++) {
        keybuf[k++] = ';';
        memcpy(keybuf + k, tags[t].name, tags[t].name_len);
        k += tags[t].name_len;
        keybuf[k++] = '=';
        memcpy(keybuf + k, tags[t].value, tags[t].value_len);
        k += tags[t].value_len;
    }
    keybuf[k] = '\0';
    out->key = keybuf;
    out->key_len = k;
    out->ts = ts;
    out->value = value;
    rc = 0;
out_free:
    cJSON_Delete(root);
    return rc;
}
