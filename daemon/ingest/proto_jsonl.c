/*
 * proto_jsonl.c - the JSON-lines parser: cJSON reads the line (the project writes no JSON
 * parser of its own); this file picks the members out, checks them, sorts the tags and
 * writes the canonical key `name;a=1;b=2`. The cJSON tree lives only inside one call.
 */
#include "ingest/proto_jsonl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/tagset.h"

#define AD_JSONL_TS_MAX 1e11 /* seconds, as Graphite's */

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
 * tag). Returns 0 or -AD_PE_TAGS. */
static int tags_parse(const cJSON *obj, ad_tagset *tags, char (*nums)[32])
{
    const cJSON *t;
    cJSON_ArrayForEach(t, obj)
    {
        if (tags->n == AD_TAGSET_MAX || !t->string)
            return -AD_PE_TAGS;
        const char *value;
        size_t value_len;
        if (cJSON_IsString(t)) {
            value = t->valuestring;
            value_len = strlen(t->valuestring);
        } else if (cJSON_IsNumber(t) && isfinite(t->valuedouble)) {
            value = nums[tags->n];
            value_len = format_number(t->valuedouble, nums[tags->n]);
        } else {
            return -AD_PE_TAGS;
        }
        size_t name_len = strlen(t->string);
        if (name_len == 0 || value_len == 0 || strpbrk(t->string, ";=") ||
            memchr(value, ';', value_len))
            return -AD_PE_TAGS;
        int rc = ad_tagset_add(tags, t->string, name_len, value, value_len);
        if (rc < 0)
            return rc;
    }
    return 0;
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

    ad_tagset tags;
    char nums[AD_TAGSET_MAX][32];
    ad_tagset_init(&tags, NULL);
    const cJSON *tobj = cJSON_GetObjectItemCaseSensitive(root, "tags");
    if (tobj && !cJSON_IsNull(tobj)) {
        rc = cJSON_IsObject(tobj) ? tags_parse(tobj, &tags, nums) : -AD_PE_TAGS;
        if (rc < 0)
            goto out_free;
    }

    double value, ts;
    rc = value_parse(cJSON_GetObjectItemCaseSensitive(root, "value"), &value);
    if (rc < 0)
        goto out_free;
    rc = ts_parse(member(root, ts_keys), &ts);
    if (rc < 0)
        goto out_free;

    size_t k;
    rc = ad_tagset_key(&tags, name->valuestring, name_len, keybuf, keycap, &k);
    if (rc < 0)
        goto out_free;
    out->key = keybuf;
    out->key_len = k;
    out->ts = ts;
    out->value = value;
    rc = 0;
out_free:
    cJSON_Delete(root);
    return rc;
}
