/*
 * ctl_spark.c - sparklines: fold n points into columns, map each to one of eight levels.
 */
#include "ctl/ctl_spark.h"

#include <math.h>
#include <string.h>

#include "err.h"

static const char *const blocks[8] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                      "\u2585", "\u2586", "\u2587", "\u2588"};
static const char ascii_levels[] = "_.-:=+*#";

/* The points [*from, *to) of column c when n points go into cols columns. */
static void column(int n, int cols, int c, int *from, int *to)
{
    *from = (int)((long long)n * c / cols);
    *to = (int)((long long)n * (c + 1) / cols);
}

int ad_spark_line(const double *v, int n, int width, double lo, double hi,
                  enum ad_spark_fold fold, int ascii, char *out, size_t outcap)
{
    int cols = n < width ? n : width;
    size_t len = 0;

    if (outcap < 1)
        return -AD_EFULL;
    for (int c = 0; c < cols; c++) {
        int from, to, k = 0;
        double acc = -INFINITY, mean = 0;
        const char *glyph;
        char one[2] = {0, 0};

        column(n, cols, c, &from, &to);
        for (int i = from; i < to; i++)
            if (isfinite(v[i]))
                mean += (v[i] - mean) / ++k; /* running: no overflow */
        for (int i = from, best = -1; i < to; i++) {
            if (!isfinite(v[i]))
                continue;
            if (fold == AD_SPARK_MAX) {
                acc = fmax(acc, v[i]);
            } else if (best < 0 || fabs(v[i] - mean) > fabs(v[best] - mean)) {
                best = i;
                acc = v[i];
            }
        }
        if (!k || !isfinite(acc)) {
            glyph = " ";
        } else {
            double t = hi / 2 - lo / 2 > 0 ? (acc / 2 - lo / 2) / (hi / 2 - lo / 2) : 0.5;
            int level = (int)floor(fmin(fmax(t, 0), 1) * 7 + 0.5);

            if (ascii) {
                one[0] = ascii_levels[level];
                glyph = one;
            } else {
                glyph = blocks[level];
            }
        }
        if (len + strlen(glyph) + 1 > outcap)
            return -AD_EFULL;
        memcpy(out + len, glyph, strlen(glyph));
        len += strlen(glyph);
    }
    out[len] = '\0';
    return cols;
}

int ad_spark_marks(const unsigned char *flagged, int n, int width, char *out, size_t outcap)
{
    int cols = n < width ? n : width, marks = 0, last = 0;

    if (outcap < (size_t)cols + 1)
        return -AD_EFULL;
    for (int c = 0; c < cols; c++) {
        int from, to, hit = 0;

        column(n, cols, c, &from, &to);
        for (int i = from; i < to; i++)
            hit |= flagged[i] != 0;
        out[c] = hit ? '^' : ' ';
        marks += hit;
        if (hit)
            last = c + 1;
    }
    out[last] = '\0';
    return marks;
}
