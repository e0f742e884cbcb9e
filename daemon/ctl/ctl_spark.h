/*
 * ctl_spark.h - terminal sparklines for anomalyctl: a row of values as one line of
 * block characters (U+2581..U+2588, or plain ASCII), and a marker line under it.
 *
 * More values than columns are folded: each column shows the value farthest from its
 * mean (or the maximum, for scores), so a spike is never averaged away; a column marks when any
 * of its points is flagged. Pure: writes into the caller's buffers, no I/O, no malloc.
 */
#ifndef AD_CTL_SPARK_H
#define AD_CTL_SPARK_H

#include <stddef.h>

/* How a column summarises its values. */
enum ad_spark_fold {
    AD_SPARK_EXTREME, /* the value farthest from the column's mean (a spike stays one) */
    AD_SPARK_MAX      /* the largest */
};

/* Renders n values (oldest first) into at most width columns, scaled between lo and hi
 * (a value at lo is the lowest block, at hi the highest; lo == hi draws the middle
 * block). Non-finite values draw a space. ascii picks "_.-:=+*#" instead of blocks.
 * out gets NUL-terminated UTF-8 (up to 3 bytes a column). Returns the number of columns,
 * or -AD_EFULL when outcap is too small (4 * width + 1 always suffices). */
int ad_spark_line(const double *v, int n, int width, double lo, double hi,
                  enum ad_spark_fold fold, int ascii, char *out, size_t outcap);

/* The marker line for the same folding: '^' under a column holding a flagged point,
 * ' ' elsewhere (trailing spaces trimmed). Returns the number of marks, or -AD_EFULL
 * when outcap < width + 1. */
int ad_spark_marks(const unsigned char *flagged, int n, int width, char *out, size_t outcap);

#endif
