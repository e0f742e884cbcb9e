/*
 * text.c - UTF-8 validation and escaping of client bytes (text.h). One decoder serves
 * both: it takes the longest well-formed sequence at a position, or says there is none.
 */
#include "text.h"

#include <stdint.h>
#include <string.h>

/*
 * The well-formed UTF-8 sequence at p[0..n) (n >= 1): its length 1-4 with *cp its code
 * point, or 0 when p[0] does not start one (RFC 3629 table 3-7: no overlong forms, no
 * surrogates U+D800..DFFF, nothing past U+10FFFF).
 */
static size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    uint32_t v;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0; /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90; /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0; /* a continuation byte, C0/C1 (overlong) or F5..FF */
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    v = (v << 6) | (p[1] & 0x3F);
    for (size_t i = 2; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    *cp = v;
    return len;
}

int ad_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;

    while (i < len) {
        uint64_t w;
        size_t k;

        /* ASCII eight bytes at a time: the common case of every protocol's lines. */
        if (len - i >= 8) {
            memcpy(&w, p + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if (!(k = utf8_seq(p + i, len - i, &cp)))
            return 0;
        i += k;
    }
    return 1;
}

/* A code point a terminal shows as itself: not C0, DEL or C1, and not a backslash
 * (escaped so that \xNN in the output is never ambiguous). */
static int printable(uint32_t cp)
{
    return cp >= 0x20 && cp != 0x7F && cp != '\\' && (cp < 0x80 || cp > 0x9F);
}

size_t ad_escape(char *dst, size_t cap, const char *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)src;
    size_t o = 0, i = 0;

    if (cap == 0)
        return 0;
    while (i < len) {
        uint32_t cp;
        size_t k = utf8_seq(p + i, len - i, &cp);

        if (k && printable(cp)) {
            if (o + k + 4 > cap) /* room for "..." and the NUL */
                goto cut;
            memcpy(dst + o, p + i, k);
            o += k;
            i += k;
            continue;
        }
        /* One escaped byte at a time: a malformed sequence's first byte, or each byte
         * of a control character's encoding. */
        k = k ? k : 1;
        for (size_t j = 0; j < k; j++) {
            if (o + (p[i] == '\\' ? 2 : 4) + 4 > cap)
                goto cut;
            if (p[i] == '\\') {
                dst[o++] = '\\';
                dst[o++] = '\\';
            } else {
                dst[o++] = '\\';
                dst[o++] = 'x';
                dst[o++] = hex[p[i] >> 4];
                dst[o++] = hex[p[i] & 15];
            }
            i++;
        }
    }
    dst[o] = '\0';
    return o;
cut:
    if (cap >= 4) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
    return o;
}

const char *ad_escape_str(char *dst, size_t cap, const char *s)
{
    ad_escape(dst, cap, s, strlen(s));
    return dst;
}
