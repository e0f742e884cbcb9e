/*
 * plot.h - a series' recent points as an SVG chart a person can open from an alert.
 *
 * Two panels sharing the time axis: values (a line) with predictions (a dashed line) and
 * flagged points (red circles) above; scores in [0, 1] with the threshold (a dashed rule)
 * below. Axes carry a few ticks with times (UTC) and values. Pure: no I/O; the text is
 * written into a malloc'd string. Non-finite predictions are gaps in their line.
 */
#ifndef AD_PLOT_H
#define AD_PLOT_H

#include <stddef.h>

#include "series.h"

/* Renders n points (oldest first) titled `title` (escaped for XML) with the scorer's
 * threshold. Returns 0 and a malloc'd NUL-terminated SVG in *out (*len bytes), or
 * -AD_ENOMEM. n may be 0 (an empty chart saying so). */
int ad_plot_svg(const char *title, const ad_point *pts, int n, double threshold, char **out,
                size_t *len);

#endif
