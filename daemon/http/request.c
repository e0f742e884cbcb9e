/*
 * request.c - gathering a request (http_impl.h): http-parser's callbacks append the URL
 * and the values of the headers of interest to one growable buffer bounded by
 * AD_HTTP_MAX_HEAD, the body to another bounded by max_body, and pause the parser at the
 * end of each message (one message at a time). Also percent-decoding, for the path and
 * for ad_http_query_get (http.h).
 */
#include "http/http_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

static const char *const tok_names[TOK_N] = {
    [TOK_AUTH] = "authorization",
    [TOK_CTYPE] = "content-type",
    [TOK_CENC] = "content-encoding",
    [TOK_EXPECT] = "expect", /* "100-continue" is answered before the body */
};

/* ---- percent-decoding ---- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out (cap bytes, room for a NUL included). '+' becomes a space if
 * plus. Returns the decoded length, -1 if malformed, -2 if it does not fit. out may be s
 * (decoding never lengthens). */
static long pct_decode(const char *s, size_t n, char *out, size_t cap, int plus)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return -2;
        out[o++] = ch;
    }
    if (cap == 0)
        return -2;
    out[o] = '\0';
    return (long)o;
}

int ad_http_query_get(const char *query, const char *name, char *out, size_t outcap)
{
    if (!query || !name || (!out && outcap))
        return -AD_EINVAL;
    size_t nlen = strlen(name);
    const char *p = query;
    while (*p) {
        const char *end = strchr(p, '&');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq ? (size_t)(eq - p) : plen;
        char key[256];
        long k = klen < sizeof(key) ? pct_decode(p, klen, key, sizeof(key), 1) : -2;
        if (k >= 0 && (size_t)k == nlen && memcmp(key, name, nlen) == 0) {
            const char *v = eq ? eq + 1 : p + plen;
            size_t vlen = eq ? plen - klen - 1 : 0;
            long r = pct_decode(v, vlen, out, outcap, 1);
            if (r == -1)
                return -AD_EFORMAT;
            if (r == -2)
                return -AD_EFULL;
            return (int)r;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return -1;
}

/* ---- gathering a request ---- */

void ad_http_req_reset(ad_http_conn *c)
{
    c->complete = 0;
    c->keep_alive = 0;
    c->fail_status = 0;
    c->in_headers = 1;
    c->head_bytes = 0;
    c->hlen = 0;
    c->cur_tok = TOK_NONE;
    memset(c->tok_seen, 0, sizeof(c->tok_seen));
    c->field_len = 0;
    c->last_was_value = 0;
    c->blen = 0;
    if (c->bcap > AD_HTTP_BODY_KEEP) {
        free(c->body);
        c->body = NULL;
        c->bcap = 0;
    }
}

static int hbuf_append(ad_http_conn *c, const char *p, size_t n)
{
    if (c->hlen + n + 1 > c->hcap) {
        size_t cap = c->hcap ? c->hcap : 256;
        while (cap < c->hlen + n + 1)
            cap *= 2;
        char *nb = realloc(c->hbuf, cap);
        if (!nb)
            return -AD_ENOMEM;
        c->hbuf = nb;
        c->hcap = cap;
    }
    memcpy(c->hbuf + c->hlen, p, n);
    c->hlen += n;
    return 0;
}

/* Ends the token being gathered: trims trailing blanks of header values, appends NUL. */
static int tok_finish(ad_http_conn *c)
{
    if (c->cur_tok == TOK_NONE)
        return 0;
    int t = c->cur_tok;
    c->cur_tok = TOK_NONE;
    if (t != TOK_URL)
        while (c->tok_len[t] && (c->hbuf[c->hlen - 1] == ' ' || c->hbuf[c->hlen - 1] == '\t')) {
            c->hlen--;
            c->tok_len[t]--;
        }
    return hbuf_append(c, "", 1);
}

static int head_count(ad_http_conn *c, size_t n)
{
    c->head_bytes += n;
    if (c->head_bytes > AD_HTTP_MAX_HEAD) {
        c->fail_status = 431;
        return -1;
    }
    return 0;
}

static int on_message_begin(http_parser *p)
{
    ad_http_req_reset(p->data);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    ad_http_conn *c = p->data;
    if (head_count(c, n) < 0)
        return -1;
    if (c->cur_tok != TOK_URL) {
        c->cur_tok = TOK_URL;
        c->tok_off[TOK_URL] = c->hlen;
        c->tok_len[TOK_URL] = 0;
        c->tok_seen[TOK_URL] = 1;
    }
    c->tok_len[TOK_URL] += n;
    return hbuf_append(c, at, n) < 0 ? -1 : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    ad_http_conn *c = p->data;
    if (head_count(c, n) < 0)
        return -1;
    if (c->last_was_value || c->cur_tok == TOK_URL) {
        if (tok_finish(c) < 0)
            return -1;
        c->field_len = 0;
        c->last_was_value = 0;
    }
    if (c->field_len + n <= AD_HTTP_FIELD_MAX)
        memcpy(c->field + c->field_len, at, n);
    c->field_len += n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    ad_http_conn *c = p->data;
    if (head_count(c, n) < 0)
        return -1;
    if (!c->last_was_value) {
        c->last_was_value = 1;
        if (!c->in_headers || c->field_len > AD_HTTP_FIELD_MAX)
            return 0; /* a trailer, or a name too long to be of interest */
        c->field[c->field_len] = '\0';
        for (int t = TOK_AUTH; t < TOK_N; t++) {
            if (strcasecmp(c->field, tok_names[t]) != 0)
                continue;
            if (c->tok_seen[t]) { /* twice: ambiguous */
                c->fail_status = 400;
                return -1;
            }
            c->tok_seen[t] = 1;
            c->cur_tok = t;
            c->tok_off[t] = c->hlen;
            c->tok_len[t] = 0;
        }
    }
    if (c->cur_tok == TOK_NONE)
        return 0;
    c->tok_len[c->cur_tok] += n;
    return hbuf_append(c, at, n) < 0 ? -1 : 0;
}

static int on_headers_complete(http_parser *p)
{
    ad_http_conn *c = p->data;
    if (tok_finish(c) < 0)
        return -1; /* not 1 or 2: those mean "no body" and "upgrade" here */
    c->in_headers = 0;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->server->max_body) {
        c->fail_status = 413;
        return -1;
    }
    const char *expect = c->tok_seen[TOK_EXPECT] ? c->hbuf + c->tok_off[TOK_EXPECT] : NULL;
    if (expect && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1 &&
        ((p->flags & F_CHUNKED) || ((p->flags & F_CONTENTLENGTH) && p->content_length > 0)) &&
        ad_http_send_continue(c) < 0)
        return -1;
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    ad_http_conn *c = p->data;
    size_t max = c->server->max_body;
    if (n > max || c->blen > max - n) {
        c->fail_status = 413;
        return -1;
    }
    if (c->blen + n + 1 > c->bcap) {
        size_t cap = c->bcap ? c->bcap : 1024;
        while (cap < c->blen + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        char *nb = realloc(c->body, cap);
        if (!nb)
            return -1;
        c->body = nb;
        c->bcap = cap;
    }
    memcpy(c->body + c->blen, at, n);
    c->blen += n;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    ad_http_conn *c = p->data;
    c->complete = 1;
    c->keep_alive =
        http_should_keep_alive(p) && p->http_major == 1 && p->http_minor >= 1 && !p->upgrade;
    http_parser_pause(p, 1); /* execute returns here: one message at a time */
    return 0;
}

void ad_http_parser_settings(http_parser_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->on_message_begin = on_message_begin;
    s->on_url = on_url;
    s->on_header_field = on_header_field;
    s->on_header_value = on_header_value;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

/* ---- the request the handler sees ---- */

static const char *tok(ad_http_conn *c, int t)
{
    return c->tok_seen[t] ? c->hbuf + c->tok_off[t] : NULL;
}

int ad_http_req_build(ad_http_conn *c, ad_http_req *req)
{
    char *url = c->hbuf + c->tok_off[TOK_URL];
    size_t ulen = c->tok_len[TOK_URL];
    struct http_parser_url u;

    if (!c->tok_seen[TOK_URL])
        return 400;
    http_parser_url_init(&u);
    int is_connect = c->parser.method == HTTP_CONNECT;
    if (http_parser_parse_url(url, ulen, is_connect, &u) != 0)
        return 400;
    req->query = "";
    if (u.field_set & (1 << UF_QUERY)) {
        char *q = url + u.field_data[UF_QUERY].off;
        q[u.field_data[UF_QUERY].len] = '\0'; /* over '#', or the NUL already there */
        req->query = q;
    }
    req->path = "/";
    if (u.field_set & (1 << UF_PATH)) {
        char *path = url + u.field_data[UF_PATH].off;
        size_t plen = u.field_data[UF_PATH].len;
        long n = pct_decode(path, plen, path, plen + 1, 0); /* over '?', '#' or NUL */
        if (n < 0 || memchr(path, '\0', (size_t)n))
            return 400;
        req->path = path;
    }
    req->method = http_method_str(c->parser.method);
    req->authorization = tok(c, TOK_AUTH);
    req->content_type = tok(c, TOK_CTYPE);
    req->content_encoding = tok(c, TOK_CENC);
    if (c->body)
        c->body[c->blen] = '\0';
    req->body = c->body ? c->body : "";
    req->body_len = c->blen;
    req->peer = c->peer;
    return 0;
}
