/*
 * gradflow.c - the gradient-flow measurement of gradflow.h: one forward, one backward
 * with the per-step hidden gradients recorded, norms and their ratios.
 */
#include "gradflow.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

/* L2 norm of v (n), in double. */
static double norm2(const float *v, int n)
{
    double ss = 0.0;
    for (int i = 0; i < n; i++)
        ss += (double)v[i] * v[i];
    return sqrt(ss);
}

/* The ratios from the recorded top-layer gradients top (H, B, n). */
static int ratios(const float *top, int H, int n, int B, double *ratio, char *err, size_t errlen)
{
    int used = 0;

    for (int k = 0; k < n; k++)
        ratio[k] = 0.0;
    for (int b = 0; b < B; b++) {
        const double last = norm2(top + (size_t)H * (b + (size_t)B * (n - 1)), H);
        if (!(last > 0.0) || !isfinite(last))
            continue;
        for (int k = 0; k < n; k++)
            ratio[k] += norm2(top + (size_t)H * (b + (size_t)B * (n - 1 - k)), H) / last;
        used++;
    }
    if (!used) {
        ERR("no sequence has a nonzero, finite gradient at the last step");
        return -AD_EINVAL;
    }
    for (int k = 0; k < n; k++)
        ratio[k] /= used;
    return 0;
}

int ad_gradflow_ratio(const ad_net *net, const float *x, int n, int B, double *ratio, char *err,
                      size_t errlen)
{
    const int H = net->cfg.hidden, O = net->cfg.output, top = net->cfg.layers - 1;
    float *dy = NULL, *dhs = NULL;
    ad_seq *ws = NULL;
    int rc;

    if (!net->params || n < 1 || B < 1) {
        ERR("gradient flow needs a float network, n >= 1 and B >= 1");
        return -AD_EINVAL;
    }
    rc = ad_seq_create(net, n, B, &ws, err, errlen);
    if (rc)
        return rc;
    dy = calloc((size_t)O * B * n, sizeof(*dy));
    dhs = malloc((size_t)H * B * n * net->cfg.layers * sizeof(*dhs));
    if (!dy || !dhs) {
        ERR("out of memory for the gradient-flow measurement");
        rc = -AD_ENOMEM;
        goto out_free;
    }
    /* the loss: each sequence's outputs at the last step, summed */
    for (size_t i = (size_t)O * B * (n - 1); i < (size_t)O * B * n; i++)
        dy[i] = 1.0f;
    ad_seq_forward(net, ws, x, n, B);
    ad_seq_backward_dh(net, ws, dy, NULL, NULL, NULL, NULL, NULL, dhs);
    rc = ratios(dhs + (size_t)H * B * n * top, H, n, B, ratio, err, errlen);

out_free:
    free(dy);
    free(dhs);
    ad_seq_free(ws);
    return rc;
}
