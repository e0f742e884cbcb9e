/*
 * ctl_gradflow.h - `anomalyctl gradflow`: the vanishing gradient, measured for every cell
 * kind, at initialisation and after training on a long dependency.
 *
 *   anomalyctl gradflow [--kind K|all] [--hidden H] [--layers N] [--steps T] [--seed N]
 *                       [--sequences B] [--forget-bias X] [--lag L] [--train-steps N]
 *                       [--svg FILE]
 *
 * For each kind (all six by default) a fresh network (2 inputs, H = 32, 1 layer, seed 1,
 * forget bias 1) reads B = 32 sequences of T+1 steps (T = 200) of the recall task's inputs
 * (models/longdep.h); the loss is its output at the last step, T. Printed: the ratio
 * ||dL/dh_{T-k}|| / ||dL/dh_T|| of the top layer (models/gradflow.h), averaged over the
 * sequences, for k = 0, 10, .., T, one column per kind: first at initialisation, then
 * after training on the recall task with lag L (20) for N (1000) Adam steps of 32
 * sequences (0: no training), with the trained network's MSE / trivial MSE. --svg writes
 * both sets of curves as a standalone SVG (log-scale ratio against k, one line per kind,
 * one panel each for initialisation and training). Exit status: 0, 1 on errors (a file
 * that cannot be written), 2 on usage errors.
 */
#ifndef AD_CTL_GRADFLOW_H
#define AD_CTL_GRADFLOW_H

#include <stddef.h>

/* argv[0] is "gradflow". Returns the process exit status. */
int ad_ctl_gradflow(int argc, char **argv);

/* One curve: ratio[k] for k = 0 .. n-1 (ratios <= 0 or not finite are gaps). */
typedef struct ad_gradflow_curve {
    const char *name;    /* legend text (ASCII, no markup) */
    const double *ratio; /* (n) */
} ad_gradflow_curve;

/* What the SVG shows: 1 or 2 panels side by side sharing the log-scale y axis, each with
 * the same ncurves curves (the same names and colours) of n points. */
typedef struct ad_gradflow_plot {
    const char *title;                  /* over the panels (ASCII, no markup) */
    const char *panel[2];               /* each panel's title (ASCII, no markup) */
    int npanels;                        /* 1 or 2 */
    int n;                              /* points per curve, k = 0 .. n-1 (n >= 2) */
    int ncurves;                        /* curves per panel, 1..8 */
    const ad_gradflow_curve *curves[2]; /* per panel: (ncurves) */
} ad_gradflow_plot;

/*
 * Renders p as a standalone SVG: per panel a polyline per curve (class "curve", one per
 * unbroken run of positive ratios), axes with labelled ticks (k along x, the ratio's
 * decades along y), the axis titles, and a legend (class "legend", one entry per curve).
 * Pure: no I/O. Returns 0 and a malloc'd NUL-terminated text in *out (*len bytes),
 * -AD_EINVAL for a plot outside the bounds above, or -AD_ENOMEM.
 */
int ad_gradflow_svg(const ad_gradflow_plot *p, char **out, size_t *len);

#endif
