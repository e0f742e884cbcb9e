/*
 * sample.c - the names of parse errors, and the number syntax the parsers share: short
 * decimals on a fast path, everything else through strtod on a bounded copy (hex floats
 * and non-finite values refused). The protocols themselves: protocols.h.
 */
#include "ingest/sample.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const perr_names[AD_PE_NREASONS] = {
    [0] = "none",
    [AD_PE_SYNTAX] = "syntax",
    [AD_PE_VALUE] = "bad_value",
    [AD_PE_NONFINITE] = "non_finite",
    [AD_PE_TIMESTAMP] = "bad_timestamp",
    [AD_PE_KEY_TOO_LONG] = "key_too_long",
    [AD_PE_TAGS] = "bad_tags",
    [AD_PE_TYPE] = "bad_type",
    [AD_PE_TOO_LONG] = "line_too_long",
    [AD_PE_NO_FIELDS] = "no_fields",
    [AD_PE_UTF8] = "invalid_utf8",
};

const char *ad_parse_error_name(int reason)
{
    if (reason <= 0 || reason >= AD_PE_NREASONS)
        return "unknown";
    return perr_names[reason];
}

/*
 * The common case without strtod (which costs more than the rest of a Graphite line): a
 * decimal [+-]digits[.digits][e[+-]digits] whose significant digits make an integer m
 * below 2^53 and whose decimal exponent e is within 22. Then m and 10^|e| are exact
 * doubles and one multiplication or division rounds the exact value once, correctly:
 * strtod's result bit for bit (Clinger's fast path). 0, or -1 for anything else (the
 * caller asks strtod, which also decides what is refused).
 */
static int fast_decimal(const char *p, size_t len, double *out)
{
    static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    uint64_t m = 0;
    int neg = 0, nd = 0, digits = 0, e10 = 0, frac = 0;
    size_t i = 0;

    if (p[0] == '+' || p[0] == '-')
        neg = p[i++] == '-';
    for (; i < len; i++) {
        const unsigned dg = (unsigned char)p[i] - '0';

        if (p[i] == '.' && !frac) {
            frac = 1;
            continue;
        }
        if (dg > 9)
            break;
        digits++;
        if (m == 0 && dg == 0) { /* a leading zero: not significant */
            e10 -= frac;
            continue;
        }
        if (nd == 19)
            return -1;
        m = m * 10 + dg;
        nd++;
        e10 -= frac;
    }
    if (!digits)
        return -1;
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        int eneg = 0, ev = 0;
        size_t s;

        if (++i < len && (p[i] == '+' || p[i] == '-'))
            eneg = p[i++] == '-';
        for (s = i; i < len && (unsigned)((unsigned char)p[i] - '0') <= 9u; i++)
            if (ev < 100000)
                ev = ev * 10 + (p[i] - '0');
        if (i == s)
            return -1;
        e10 += eneg ? -ev : ev;
    }
    if (i != len || m > (UINT64_C(1) << 53))
        return -1;
    if (m == 0) {
        *out = neg ? -0.0 : 0.0;
        return 0;
    }
    if (e10 < -22 || e10 > 22)
        return -1;
    *out = e10 < 0 ? (double)m / p10[-e10] : (double)m * p10[e10];
    if (neg)
        *out = -*out;
    return 0;
}

int ad_parse_number(const char *p, size_t len, double *out)
{
    char tmp[AD_NUMBER_MAX + 1];
    if (len == 0 || len > AD_NUMBER_MAX)
        return -AD_PE_VALUE;
    if (fast_decimal(p, len, out) == 0)
        return 0;
    /* strtod would skip leading white space and read hex floats: neither is ours. */
    if (!memchr("+-.0123456789nNiI", p[0], 17))
        return -AD_PE_VALUE;
    if (memchr(p, 'x', len) || memchr(p, 'X', len))
        return -AD_PE_VALUE;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    char *end;
    double v = strtod(tmp, &end);
    if (end != tmp + len) /* trailing bytes, or a NUL inside the token */
        return -AD_PE_VALUE;
    if (!isfinite(v))
        return -AD_PE_NONFINITE;
    *out = v;
    return 0;
}
