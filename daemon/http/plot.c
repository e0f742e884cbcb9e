/*
 * plot.c - a series' recent points as an SVG chart (plot.h): a growable text buffer, two
 * panels mapped from data to pixels, and XML escaping of the title.
 *
 * Layout (pixels): the chart is W x H; the values panel spans [TOP, VAL_BOTTOM], the
 * scores panel [SCORE_TOP, SCORE_BOTTOM], both between LEFT and RIGHT. Every element a
 * reader might count carries a class: "values", "predicted", "scores" (polylines, one per
 * unbroken run of finite points), "flag" (one circle per flagged point), "threshold".
 * Coordinates are always finite: ranges of zero width are widened, ranges too wide for
 * a double are halved before subtracting.
 */
#include "http/plot.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"

#define W 800
#define H 420
#define LEFT 70.0
#define RIGHT 780.0
#define TOP 40.0
#define VAL_BOTTOM 250.0
#define SCORE_TOP 285.0
#define SCORE_BOTTOM 375.0
#define XTICKS 5

typedef struct buf {
    char *p;    /* the text, NUL-terminated */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    int oom;    /* an allocation failed: everything after is dropped */
} buf;

static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)n;
        char *p = realloc(b->p, cap);

        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* Length of the valid UTF-8 sequence at s (at most left bytes), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t left)
{
    size_t n;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Appends s escaped for XML text or attributes; bytes XML cannot carry (controls,
 * invalid UTF-8) become '?'. */
static void put_escaped(buf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t left = strlen(s);

    while (left) {
        size_t n = utf8_len(u, left);

        if (n == 0 || (u[0] < 0x20 && u[0] != '\t'))
            put(b, "?"), n = n ? n : 1;
        else if (u[0] == '&')
            put(b, "&amp;");
        else if (u[0] == '<')
            put(b, "&lt;");
        else if (u[0] == '>')
            put(b, "&gt;");
        else if (u[0] == '"')
            put(b, "&quot;");
        else if (u[0] == '\'')
            put(b, "&apos;");
        else
            put(b, "%.*s", (int)n, (const char *)u);
        u += n;
        left -= n;
    }
}

/* A linear map from [lo, hi] onto [p0, p1] that never divides by zero or overflows. */
typedef struct axis {
    double lo, hi; /* data range, lo < hi, both finite */
    double p0, p1; /* pixels */
} axis;

static void axis_init(axis *a, double lo, double hi, double p0, double p1)
{
    if (!(isfinite(lo) && isfinite(hi)) || lo > hi) {
        lo = 0;
        hi = 1;
    }
    if (!(hi / 2 - lo / 2 > 0)) { /* a constant: widen around it */
        double pad = fmax(fabs(lo) * 0.1, 1);

        lo = fmax(lo - pad, -DBL_MAX);
        hi = fmin(hi + pad, DBL_MAX);
    }
    a->lo = lo;
    a->hi = hi;
    a->p0 = p0;
    a->p1 = p1;
}

static double axis_map(const axis *a, double v)
{
    double t = (v / 2 - a->lo / 2) / (a->hi / 2 - a->lo / 2);

    if (!isfinite(t))
        t = 0;
    if (t < -0.05)
        t = -0.05;
    if (t > 1.05)
        t = 1.05;
    return a->p0 + t * (a->p1 - a->p0);
}

/* The x of point i: by timestamp, or by position when timestamps do not spread. */
static double x_of(const ad_point *pts, int n, int i, const axis *tx)
{
    if (tx->lo == 0 && tx->hi == 0)
        return n > 1 ? LEFT + (RIGHT - LEFT) * i / (n - 1) : (LEFT + RIGHT) / 2;
    return axis_map(tx, pts[i].ts);
}

enum which { VALUE, PREDICTED, SCORE };

static double pick(const ad_point *p, enum which w)
{
    return w == VALUE ? p->value : w == PREDICTED ? p->predicted : (double)p->score;
}

/* One polyline per run of finite points of one field. */
static void put_lines(buf *b, const ad_point *pts, int n, const axis *tx, const axis *ty,
                      enum which w, const char *cls, const char *style)
{
    int open = 0;

    for (int i = 0; i < n; i++) {
        double v = pick(&pts[i], w);

        if (!isfinite(v) || !isfinite(pts[i].ts)) {
            if (open)
                put(b, "\"/>\n");
            open = 0;
            continue;
        }
        if (!open)
            put(b, "<polyline class=\"%s\" fill=\"none\" %s points=\"", cls, style);
        put(b, "%s%.1f,%.1f", open ? " " : "", x_of(pts, n, i, tx), axis_map(ty, v));
        open = 1;
    }
    if (open)
        put(b, "\"/>\n");
}

static void put_time_ticks(buf *b, const axis *tx)
{
    double span = tx->hi - tx->lo;
    const char *fmt = span < 3600 ? "%H:%M:%S" : span < 2 * 86400 ? "%d %H:%M" : "%m-%d %H:%M";

    for (int k = 0; k < XTICKS; k++) {
        double t = tx->lo + span * k / (XTICKS - 1), x = axis_map(tx, t);
        time_t tt = (time_t)t;
        struct tm tm;
        char label[32] = "?";

        if (isfinite(t) && fabs(t) < 1e15 && gmtime_r(&tt, &tm))
            strftime(label, sizeof(label), fmt, &tm);
        put(b, "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
               "stroke=\"#999\"/>\n", x, SCORE_BOTTOM, x, SCORE_BOTTOM + 5);
        put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", x,
            SCORE_BOTTOM + 18, label);
    }
    put(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\">time (UTC)</text>\n", RIGHT, H - 8);
}

static void put_value_ticks(buf *b, const axis *ty, const axis *ts)
{
    for (int k = 0; k <= 2; k++) {
        double v = k == 0 ? ty->lo : k == 1 ? ty->lo / 2 + ty->hi / 2 : ty->hi;
        double y = axis_map(ty, v);
        double s = k / 2.0, sy = axis_map(ts, s);

        put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", LEFT - 6,
            y + 4, v);
        put(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", LEFT - 6,
            sy + 4, s);
    }
}

int ad_plot_svg(const char *title, const ad_point *pts, int n, double threshold, char **out,
                size_t *len)
{
    buf b = {.p = malloc(4096), .len = 0, .cap = 4096, .oom = 0};
    double tlo = INFINITY, thi = -INFINITY, vlo = INFINITY, vhi = -INFINITY;
    int flagged = 0;
    axis tx, ty, sy;

    if (!b.p)
        return -AD_ENOMEM;
    b.p[0] = '\0';
    for (int i = 0; i < n; i++) {
        const ad_point *p = &pts[i];

        if (!isfinite(p->ts))
            continue;
        tlo = fmin(tlo, p->ts);
        thi = fmax(thi, p->ts);
        if (isfinite(p->value))
            vlo = fmin(vlo, p->value), vhi = fmax(vhi, p->value);
        if (isfinite(p->predicted))
            vlo = fmin(vlo, p->predicted), vhi = fmax(vhi, p->predicted);
        flagged += p->flagged != 0;
    }
    if (tlo < thi)
        axis_init(&tx, tlo, thi, LEFT, RIGHT);
    else
        tx = (axis){0, 0, LEFT, RIGHT}; /* by position */
    axis_init(&ty, vlo, vhi, VAL_BOTTOM, TOP);
    axis_init(&sy, 0, 1, SCORE_BOTTOM, SCORE_TOP);

    put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n",
        W, H, W, H);
    put(&b, "<title>");
    put_escaped(&b, title ? title : "");
    put(&b, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    put(&b, "<text class=\"title\" x=\"%.1f\" y=\"20\" font-size=\"14\">", LEFT);
    put_escaped(&b, title ? title : "");
    put(&b, "</text>\n<text x=\"%.1f\" y=\"20\" text-anchor=\"end\">%d points, %d flagged"
            "</text>\n", RIGHT, n, flagged);
    put(&b, "<rect class=\"panel\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"none\" stroke=\"#ccc\"/>\n", LEFT, TOP, RIGHT - LEFT, VAL_BOTTOM - TOP);
    put(&b, "<rect class=\"panel\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
            "fill=\"none\" stroke=\"#ccc\"/>\n", LEFT, SCORE_TOP, RIGHT - LEFT,
        SCORE_BOTTOM - SCORE_TOP);
    if (n == 0) {
        put(&b, "<text class=\"empty\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">no points "
                "yet</text>\n", (LEFT + RIGHT) / 2, (TOP + VAL_BOTTOM) / 2);
    } else {
        if (tx.lo < tx.hi)
            put_time_ticks(&b, &tx);
        put_value_ticks(&b, &ty, &sy);
        put_lines(&b, pts, n, &tx, &ty, VALUE, "values", "stroke=\"#1f77b4\" stroke-width=\"1.2\"");
        put_lines(&b, pts, n, &tx, &ty, PREDICTED, "predicted",
                  "stroke=\"#7f7f7f\" stroke-width=\"1\" stroke-dasharray=\"4 3\"");
        put_lines(&b, pts, n, &tx, &sy, SCORE, "scores", "stroke=\"#2ca02c\" stroke-width=\"1\"");
        for (int i = 0; i < n; i++) {
            if (!pts[i].flagged || !isfinite(pts[i].ts))
                continue;
            put(&b, "<circle class=\"flag\" cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"none\" "
                    "stroke=\"#d62728\" stroke-width=\"1.5\"/>\n", x_of(pts, n, i, &tx),
                axis_map(&ty, isfinite(pts[i].value) ? pts[i].value : ty.lo));
        }
    }
    if (isfinite(threshold)) {
        double y = axis_map(&sy, threshold);

        put(&b, "<line class=\"threshold\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                "stroke=\"#d62728\" stroke-dasharray=\"5 4\"/>\n", LEFT, y, RIGHT, y);
        put(&b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#d62728\">threshold %.3g</text>\n",
            LEFT + 4, y - 3, threshold);
    }
    put(&b, "<text x=\"%.1f\" y=\"%.1f\">values, predictions (dashed), flagged (circles)"
            "</text>\n", LEFT + 4, TOP - 4);
    put(&b, "<text x=\"%.1f\" y=\"%.1f\">scores</text>\n", LEFT + 4, SCORE_TOP - 4);
    put(&b, "</svg>\n");
    if (b.oom) {
        free(b.p);
        return -AD_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
