/*
 * refnet.c - the tests' double-precision reference of the recurrent cells and networks,
 * and the finite-difference checking helpers (refnet.h). Written from the equations in
 * cell.h and the layout in net.h; it includes the library's headers for their types and
 * constants only and calls no library function except the random generator (rng.h).
 */
#include "refnet.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Per kind, as cell.h documents them: gates, extra floats per H, cell state. */
static const int kind_gates[AD_CELL_NKINDS] = {1, 4, 4, 3, 3, 3};
static const int kind_extra[AD_CELL_NKINDS] = {0, 0, 3, 0, 0, 1};
static const int kind_has_c[AD_CELL_NKINDS] = {0, 1, 1, 1, 0, 0};

static int kind_ok(ad_cell_kind kind)
{
    return (int)kind >= 0 && (int)kind < AD_CELL_NKINDS;
}

int ref_cell_gates(ad_cell_kind kind)
{
    return kind_ok(kind) ? kind_gates[kind] : 0;
}

size_t ref_cell_extra(ad_cell_kind kind, int H)
{
    return kind_ok(kind) ? (size_t)kind_extra[kind] * (size_t)H : 0;
}

int ref_cell_has_c(ad_cell_kind kind)
{
    return kind_ok(kind) ? kind_has_c[kind] : 0;
}

/* ---- the cell ---- */

static double sig(double a)
{
    return 1.0 / (1.0 + exp(-a));
}

static void note(double *amax, double a)
{
    if (fabs(a) > *amax)
        *amax = fabs(a);
}

int ref_cell(ad_cell_kind kind, int G, int Din, int H, const double *wx, const double *wh,
             const double *b, const double *ex, const double *x, double *h, double *c, double *amax)
{
    const int GH = G * H;
    double ax[4 * REF_MAX_HIDDEN], ah[4 * REF_MAX_HIDDEN], hn[REF_MAX_HIDDEN], cn[REF_MAX_HIDDEN];

    if (!kind_ok(kind) || G != kind_gates[kind] || H < 1 || H > REF_MAX_HIDDEN)
        return -AD_EINVAL;
    for (int r = 0; r < GH; r++) {
        ax[r] = b[r];
        for (int k = 0; k < Din; k++)
            ax[r] += wx[r + k * GH] * x[k];
        ah[r] = 0.0;
        for (int k = 0; k < H; k++)
            ah[r] += wh[r + k * GH] * h[k];
    }
    switch (kind) {
    case AD_CELL_ELMAN:
        for (int j = 0; j < H; j++) {
            note(amax, ax[j] + ah[j]);
            hn[j] = tanh(ax[j] + ah[j]);
        }
        break;
    case AD_CELL_LSTM: /* i, f, g, o */
        for (int j = 0; j < H; j++) {
            double ai = ax[j] + ah[j], af = ax[H + j] + ah[H + j];
            double ag = ax[2 * H + j] + ah[2 * H + j], ao = ax[3 * H + j] + ah[3 * H + j];
            note(amax, ai), note(amax, af), note(amax, ag), note(amax, ao);
            cn[j] = sig(af) * c[j] + sig(ai) * tanh(ag);
            hn[j] = sig(ao) * tanh(cn[j]);
        }
        break;
    case AD_CELL_PEEPHOLE: /* i, f see c_prev; o sees the new c; p = (p_i, p_f, p_o) */
        for (int j = 0; j < H; j++) {
            double ai = ax[j] + ah[j] + ex[j] * c[j];
            double af = ax[H + j] + ah[H + j] + ex[H + j] * c[j];
            double ag = ax[2 * H + j] + ah[2 * H + j];
            cn[j] = sig(af) * c[j] + sig(ai) * tanh(ag);
            double ao = ax[3 * H + j] + ah[3 * H + j] + ex[2 * H + j] * cn[j];
            note(amax, ai), note(amax, af), note(amax, ag), note(amax, ao);
            hn[j] = sig(ao) * tanh(cn[j]);
        }
        break;
    case AD_CELL_CIFG: /* f, g, o */
        for (int j = 0; j < H; j++) {
            double af = ax[j] + ah[j], ag = ax[H + j] + ah[H + j];
            double ao = ax[2 * H + j] + ah[2 * H + j];
            note(amax, af), note(amax, ag), note(amax, ao);
            double f = sig(af);
            cn[j] = f * c[j] + (1.0 - f) * tanh(ag);
            hn[j] = sig(ao) * tanh(cn[j]);
        }
        break;
    case AD_CELL_GRU: { /* r, z, n; n = tanh(Wxn x + b_n + Whn (r*h)) */
        double r[REF_MAX_HIDDEN], z[REF_MAX_HIDDEN], rh[REF_MAX_HIDDEN];
        for (int j = 0; j < H; j++) {
            note(amax, ax[j] + ah[j]), note(amax, ax[H + j] + ah[H + j]);
            r[j] = sig(ax[j] + ah[j]);
            z[j] = sig(ax[H + j] + ah[H + j]);
            rh[j] = r[j] * h[j];
        }
        for (int j = 0; j < H; j++) {
            double an = ax[2 * H + j]; /* Wxn x + b_n */
            for (int k = 0; k < H; k++)
                an += wh[2 * H + j + k * GH] * rh[k]; /* + Whn (r*h) */
            note(amax, an);
            hn[j] = (1.0 - z[j]) * h[j] + z[j] * tanh(an);
        }
        break;
    }
    case AD_CELL_GRU_TORCH: /* n = tanh(Wxn x + b_n + r*(Whn h + b_hn)); keeps z*h */
        for (int j = 0; j < H; j++) {
            double r = sig(ax[j] + ah[j]), z = sig(ax[H + j] + ah[H + j]);
            double an = ax[2 * H + j] + r * (ah[2 * H + j] + ex[j]);
            note(amax, ax[j] + ah[j]), note(amax, ax[H + j] + ah[H + j]), note(amax, an);
            hn[j] = (1.0 - z) * tanh(an) + z * h[j];
        }
        break;
    default:
        return -AD_EINVAL;
    }
    memcpy(h, hn, (size_t)H * sizeof(*h));
    if (kind_has_c[kind])
        memcpy(c, cn, (size_t)H * sizeof(*c));
    return 0;
}

/* ---- a network ---- */

int ref_net_describe(ad_cell_kind kind, int layers, int D, int H, int O, size_t base, ref_net *rn)
{
    size_t off = base;

    memset(rn, 0, sizeof(*rn));
    if (!kind_ok(kind) || layers < 1 || layers > AD_MAX_LAYERS || H < 1 || H > REF_MAX_HIDDEN ||
        D < 1 || O < 1)
        return -AD_EINVAL;
    rn->kind = kind;
    rn->layers = layers;
    rn->input = D, rn->hidden = H, rn->output = O;
    rn->G = kind_gates[kind];
    rn->nex = ref_cell_extra(kind, H);
    const size_t GH = (size_t)rn->G * H;
    for (int l = 0; l < layers; l++) {
        size_t din = l == 0 ? (size_t)D : (size_t)H;
        rn->wx[l] = off, off += GH * din;
        rn->wh[l] = off, off += GH * H;
        rn->b[l] = off, off += GH;
        rn->ex[l] = off, off += rn->nex;
    }
    rn->wy = off, off += (size_t)O * H;
    rn->by = off, off += (size_t)O;
    rn->n = off - base;
    return 0;
}

int ref_net_step(const ref_net *rn, const double *th, const double *x, double *h, double *c,
                 double *y, double *amax)
{
    const int H = rn->hidden;
    const double *in = x;
    int din = rn->input;

    for (int l = 0; l < rn->layers; l++) {
        int err = ref_cell(rn->kind, rn->G, din, H, th + rn->wx[l], th + rn->wh[l], th + rn->b[l],
                           rn->nex ? th + rn->ex[l] : NULL, in, h + l * H, c + l * H, amax);
        if (err)
            return err;
        in = h + l * H;
        din = H;
    }
    for (int o = 0; y && o < rn->output; o++) {
        y[o] = th[rn->by + o];
        for (int j = 0; j < H; j++)
            y[o] += th[rn->wy + o + j * rn->output] * in[j];
    }
    return 0;
}

/* Names one tensor: "<who> <what>" or "<what>". */
static void name_tensor(ref_tensor *t, const char *who, const char *what, int l, size_t off,
                        size_t n)
{
    char base[32];

    if (l >= 0)
        snprintf(base, sizeof(base), "layer %d %s", l, what);
    else
        snprintf(base, sizeof(base), "head %s", what);
    if (who)
        snprintf(t->name, sizeof(t->name), "%s %s", who, base);
    else
        snprintf(t->name, sizeof(t->name), "%s", base);
    t->off = off;
    t->n = n;
}

int ref_net_tensors(const ref_net *rn, const char *who, ref_tensor *ts)
{
    const size_t H = (size_t)rn->hidden, GH = (size_t)rn->G * H;
    int n = 0;

    for (int l = 0; l < rn->layers; l++) {
        size_t din = l == 0 ? (size_t)rn->input : H;
        name_tensor(&ts[n++], who, "Wx", l, rn->wx[l], GH * din);
        name_tensor(&ts[n++], who, "Wh", l, rn->wh[l], GH * H);
        name_tensor(&ts[n++], who, "b", l, rn->b[l], GH);
        if (rn->nex)
            name_tensor(&ts[n++], who, "extra", l, rn->ex[l], rn->nex);
    }
    name_tensor(&ts[n++], who, "Wy", -1, rn->wy, (size_t)rn->output * H);
    name_tensor(&ts[n++], who, "by", -1, rn->by, (size_t)rn->output);
    return n;
}

/* ---- data ---- */

void ref_fill_uniform(ad_rng *r, float *v, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        v[i] = (float)((2.0 * ad_rng_uniform(r) - 1.0) * scale);
}

void ref_fill_normal(ad_rng *r, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = ad_rng_normal(r);
}

/* ---- finite differences and the comparison ---- */

double ref_fd(ref_loss_fn loss, void *ctx, double *v, size_t i)
{
    double v0 = v[i], lp, lm;

    v[i] = v0 + REF_GRAD_EPS;
    lp = loss(ctx);
    v[i] = v0 - REF_GRAD_EPS;
    lm = loss(ctx);
    v[i] = v0;
    return (lp - lm) / (2.0 * REF_GRAD_EPS);
}

double ref_tensor_scale(const double *fd, size_t n)
{
    double scale = REF_GRAD_FLOOR;
    for (size_t k = 0; k < n; k++)
        scale = fmax(scale, fabs(fd[k]));
    return scale;
}

int ref_compare(const char *what, const float *g, const double *fd, size_t n, double *worst,
                char *msg, size_t msglen)
{
    double scale = ref_tensor_scale(fd, n), wr = -1.0;
    size_t wi = 0;
    int bad = 0;

    for (size_t k = 0; k < n; k++) {
        double ratio = fabs((double)g[k] - fd[k]) / scale;
        if (!(ratio <= REF_GRAD_RTOL)) /* also catches NaN */
            bad++;
        if (!(ratio <= wr)) {
            wr = ratio;
            wi = k;
        }
    }
    *worst = wr;
    snprintf(msg, msglen,
             "%.40s: %d of %zu out of tolerance; worst [%zu] analytic %.9g fd %.9g "
             "(err/scale %.3g, tensor scale %.3g)",
             what, bad, n, wi, (double)g[wi], fd[wi], wr, scale);
    return bad;
}

int ref_verbose(void)
{
    const char *v = getenv("AD_CHECK_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

void ref_tally_init(ref_tally *t, const char *kname, int layers, const char *mode)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->label, sizeof(t->label), "%s %d layers (%s)", kname, layers, mode);
}

int ref_tally_add(ref_tally *t, const char *what, const float *g, const double *fd, size_t n)
{
    char msg[512];
    double worst;
    int bad = ref_compare(what, g, fd, n, &worst, msg, sizeof(msg));

    t->worst = fmax(t->worst, worst);
    if (bad || ref_verbose())
        fprintf(stderr, "%s: %s\n", t->label, msg);
    if (bad && !t->nbad++)
        snprintf(t->first, sizeof(t->first), "%s", msg);
    return bad;
}

void ref_tally_report(const ref_tally *t)
{
    if (ref_verbose())
        fprintf(stderr, "%s: worst err/scale %.3g\n", t->label, t->worst);
}

double ref_worst_rel(const float *y, const double *yd, size_t n, size_t *wi)
{
    double worst = 0.0;

    *wi = 0;
    for (size_t k = 0; k < n; k++) {
        double e = fabs((double)y[k] - yd[k]) / fmax(1.0, fabs(yd[k]));
        if (isnan(e)) { /* a NaN is the worst there is: keep it */
            *wi = k;
            return NAN;
        }
        if (e > worst) {
            worst = e;
            *wi = k;
        }
    }
    return worst;
}
