/*
 * check_grad.c - gradient checks of the sequence forward/backward (net.h) for every
 * cell kind (cell.h), with 1 and 2 layers, in both product modes (blas.h).
 *
 * The test carries its own forward pass: the double-precision reference of the cells and
 * networks in refnet.h (written from the equations in cell.h with libm's exp and tanh; it
 * calls none of the library's kernels), run here over windows of T steps. It reads the
 * parameters from the network's flat float buffer at the offsets ad_net_views gives
 * (per layer Wx (G*H, Din), Wh (G*H, H), b (G*H), extra; head Wy (O, H), by (O); all
 * column-major) and uses the loss of ad_mse: the mean of (y - target)^2 over O*B*T
 * values. Against it the suite checks:
 *
 *  - forward: the library's float outputs equal the double reference's;
 *  - gradients: ad_seq_backward's parameter gradients and dx equal central finite
 *    differences of the double reference loss, element by element;
 *  - the contract around them: backward adds into the gradient buffer and overwrites
 *    dx, and a workspace larger than the batch gives the same answers;
 *  - the checker itself: a gradient with one element planted wrong is refused;
 *  - the windows' ends (ad_seq_forward_init, ad_seq_backward_init): each window starts
 *    from a given random state (h0, and c0 for the LSTM kinds, every layer) and the loss
 *    adds a random linear function of the final states (sum wh*h_final + wc*c_final), so
 *    that dLoss/d(final state) = (wh, wc) is fed in as dhT/dcT; the final states match
 *    the reference's, and dLoss/dh0, dLoss/dc0 match central finite differences w.r.t.
 *    h0 and c0 (along with every parameter and dx), for every kind.
 *
 * Sizes are tiny and pairwise distinct (D=2, H=3, O=4, T=6, B=5) so that a kernel that
 * mixes up two dimensions or a row/column order cannot pass by coincidence.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cell.h"
#include "net.h"
#include "refnet.h"
#include "rng.h"

enum { ND = 2, NH = 3, NO = 4, NT = 6, NB = 5 };
enum { NS = NH * NB * 2 };            /* a state batch (H, B, layers) of up to 2 layers */
enum { NCASES = AD_CELL_NKINDS * 2 }; /* loop index i: kind i/2, layers 1 + i%2 */

/*
 * Finite differences: central, step REF_GRAD_EPS = 1e-5, on the double reference loss.
 * Truncation error is about EPS^2/6 * |L'''| ~ 1e-11 and rounding about
 * 1e-16 * |L| / EPS ~ 1e-11, both far below what float arithmetic in the library can
 * reach, so the finite differences serve as exact gradients here.
 *
 * The analytic gradients are float32 (library forward and backward, activations with up
 * to 1e-6 relative error, act.h). Their error is rounding spread over the terms that
 * make up each sum, so it scales with the size of those terms, i.e. with the largest
 * gradient of the same tensor rather than with each (possibly cancelling) element. Each
 * element must satisfy (ref_compare, refnet.h)
 *
 *     |g - g_fd| <= REF_GRAD_RTOL * max(REF_GRAD_FLOOR, max over the tensor of |g_fd|)
 *
 * REF_GRAD_RTOL = 2e-5 is about 170 float ulps of the tensor's scale, a few times the
 * documented activation error carried through a step's chain of products, and 20 times
 * the worst err/scale measured over every kind, layer count and both product modes
 * (~1e-6; the initial-state cases reach 2.7e-6, the 2-layer Elman's layer-1 bias, a sum
 * over B*T cancelling terms, where the two product modes differ from each other by as
 * much). A wrong term in a backward (a dropped peephole, r applied to the wrong
 * product, a missing step of BPTT, a bias gradient missing one step) moves the affected
 * elements by 3e-2..1 of the scale, over a thousand times the tolerance (checked by
 * mutating a scratch copy of cell.c); a single element planted 10 * REF_GRAD_RTOL off is
 * refused (test_checker_has_teeth). REF_GRAD_FLOOR = 1e-4 (tensor scales here run from
 * ~7e-4 to ~1) only keeps a tensor whose gradient is all but zero from demanding
 * precision below float resolution.
 */

/*
 * Forward: library float outputs against the double reference,
 * |y - y_ref| <= FWD_TOL * max(1, |y_ref|). Outputs are O(1); float rounding (6e-8 per
 * operation) and the activations' documented 1e-6 relative error, carried through T=6
 * steps of 2 layers whose Jacobians have norm about 1, stay within ~1e-6 (measured:
 * 1.2e-7). FWD_TOL = 5e-6 covers the documented activation error with margin; a wrong
 * term in a forward shows as 1e-2 or more.
 */
#define FWD_TOL 5e-6

/* Parameters are drawn uniform in [-PARAM_SCALE, PARAM_SCALE]: with D=2, H=3 and unit
 * inputs the pre-activations span a few units, so gates are neither linear nor saturated
 * (checked: the largest |pre-activation| must lie in (1.5, 6); measured 1.7..3.4). */
#define PARAM_SCALE 0.8

/*
 * The windows' ends in the reference: initial states h0, c0 and the weights wh, wc of the
 * final states in the loss, all state batches (H, B, layers) as net.h lays them out:
 * element (j, b, l) at [j + H*(b + B*l)]. A NULL member means zero.
 */
typedef struct ends {
    const double *h0, *c0, *wh, *wc;
} ends;

/* Initial states are drawn uniform in [-STATE_SCALE, STATE_SCALE] (h0 and c0), the
 * final-state loss weights uniform in [-FINAL_W, FINAL_W]: the final-state term's
 * gradient is then of the same order as the MSE's (2/(O*B*T) times residuals of ~1). */
#define STATE_SCALE 0.9
#define FINAL_W     0.1

/* Everything one check needs: the network, its workspace, data and the library's
 * results. */
typedef struct gcase {
    ad_net *net;
    ad_seq *ws;
    ref_net lo;              /* offsets into the flat parameters, from ad_net_views */
    float x[ND * NB * NT];   /* (D, B, T) */
    float tgt[NO * NB * NT]; /* (O, B, T) */
    float y[NO * NB * NT];   /* library outputs */
    float dy[NO * NB * NT];  /* from ad_mse */
    float dx[ND * NB * NT];  /* library dLoss/dx */
    float *g;                /* (n) copy of the library's gradient */
    double *th;              /* (n) parameters in double */
    double xd[ND * NB * NT];
    double td[NO * NB * NT];
    double yd[NO * NB * NT]; /* reference outputs */
    double amax;             /* largest |pre-activation| seen by the reference */
    float loss;              /* ad_mse of the library's outputs (+ final-state term) */
    double lossd;            /* the reference loss */
    /* the windows' ends (init == 1 only; state batches (H, B, layers)) */
    int init;                /* initial states given, final states in the loss */
    ends en;                 /* points at h0d, c0d (NULL without c), whd, wcd (likewise) */
    float h0[NS], c0[NS];    /* initial states */
    float wh[NS], wc[NS];    /* final-state loss weights = dLoss/d(final state) */
    float dh0[NS], dc0[NS];  /* library dLoss/dh0, dLoss/dc0 */
    float hT[NS], cT[NS];    /* library final states */
    double h0d[NS], c0d[NS]; /* the same in double */
    double whd[NS], wcd[NS];
    double hTd[NS], cTd[NS]; /* reference final states */
} gcase;

/* ---- the double-precision reference (refnet.h) over windows ---- */

/*
 * Reference forward over B windows of T steps and its loss: the MSE of the outputs plus,
 * if en gives wh/wc, sum wh*h_final + wc*c_final over every layer and window. Windows
 * start from en's h0/c0 (zero without en). th (n) parameters, x (D, B, T),
 * tgt (O, B, T); y (O, B, T) out; the final states into hT, cT (state batches) if not
 * NULL.
 */
static double ref_forward(const ref_net *lo, const double *th, const double *x, const double *tgt,
                          const ends *en, double *y, double *hT, double *cT, double *amax)
{
    const int has_c = ref_cell_has_c(lo->kind);
    double loss = 0.0, fin = 0.0;

    for (int b = 0; b < NB; b++) {
        double h[AD_MAX_LAYERS * NH] = {0}, c[AD_MAX_LAYERS * NH] = {0}; /* (H, layers) */
        for (int l = 0; l < lo->layers; l++)
            for (int j = 0; j < NH; j++) {
                const size_t q = j + NH * (b + NB * (size_t)l);
                h[NH * l + j] = en && en->h0 ? en->h0[q] : 0.0;
                c[NH * l + j] = en && en->c0 && has_c ? en->c0[q] : 0.0;
            }
        for (int t = 0; t < NT; t++) {
            double *yt = y + NO * (b + NB * (size_t)t);
            const double *tt = tgt + NO * (b + NB * (size_t)t);
            if (ref_net_step(lo, th, x + ND * (b + NB * t), h, c, yt, amax) != 0)
                ck_abort_msg("reference: bad network (kind %d)", (int)lo->kind);
            for (int o = 0; o < NO; o++)
                loss += (yt[o] - tt[o]) * (yt[o] - tt[o]);
        }
        for (int l = 0; l < lo->layers; l++)
            for (int j = 0; j < NH; j++) {
                const size_t q = j + NH * (b + NB * (size_t)l);
                if (hT)
                    hT[q] = h[NH * l + j];
                if (cT && has_c)
                    cT[q] = c[NH * l + j];
                if (en && en->wh)
                    fin += en->wh[q] * h[NH * l + j];
                if (en && en->wc && has_c)
                    fin += en->wc[q] * c[NH * l + j];
            }
    }
    return loss / (NO * NB * NT) + fin;
}

/* The reference loss of a case (a gcase *) at its th, xd and (with init) h0d, c0d: the
 * ref_loss_fn that ref_fd differentiates. */
static double ref_loss(void *ctx)
{
    const gcase *gc = ctx;
    double y[NO * NB * NT], amax = 0.0;
    return ref_forward(&gc->lo, gc->th, gc->xd, gc->td, gc->init ? &gc->en : NULL, y, NULL, NULL,
                       &amax);
}

/* Central difference of the reference loss w.r.t. v[i] (v is gc's th, xd, h0d or c0d). */
static double fd_at(gcase *gc, double *v, size_t i)
{
    return ref_fd(ref_loss, gc, v, i);
}

/* ---- setup ---- */

/* The offsets of net's tensors, from the library's views (ad_net_views). */
static void layout_from_net(const ad_net *net, ref_net *lo)
{
    ad_params v;

    memset(lo, 0, sizeof(*lo));
    lo->kind = net->cfg.kind;
    lo->layers = net->cfg.layers;
    lo->input = net->cfg.input, lo->hidden = net->cfg.hidden, lo->output = net->cfg.output;
    lo->G = ad_cell_gates(net->cfg.kind);
    lo->n = net->nparams;
    lo->nex = ad_cell_extra_size(net->cfg.kind, NH);
    ad_net_views(&net->cfg, net->params, &v);
    for (int l = 0; l < net->cfg.layers; l++) {
        lo->wx[l] = (size_t)(v.layer[l].wx - net->params);
        lo->wh[l] = (size_t)(v.layer[l].wh - net->params);
        lo->b[l] = (size_t)(v.layer[l].b - net->params);
        lo->ex[l] = v.layer[l].extra ? (size_t)(v.layer[l].extra - net->params) : 0;
    }
    lo->wy = (size_t)(v.wy - net->params);
    lo->by = (size_t)(v.by - net->params);
}

/*
 * Builds the case for loop index i (kind i/2, layers 1 + i%2) with a workspace of Tws
 * steps of Bws windows (at least T, B), runs the library's forward and backward once in
 * product mode `reference`, and the double reference forward. With init, windows start
 * from random states and the loss has the final-state term (the *_init functions run).
 */
static void gcase_setup_ends(gcase *gc, int i, int reference, int Tws, int Bws, int init)
{
    ad_net_config cfg = {.kind = (ad_cell_kind)(i / 2),
                         .layers = 1 + i % 2,
                         .input = ND,
                         .hidden = NH,
                         .output = NO};
    char err[256] = "";
    ad_rng r;

    memset(gc, 0, sizeof(*gc));
    ad_blas_set_reference(reference);
    ck_assert_msg(ad_net_create(&cfg, 1000 + (uint64_t)i, &gc->net, err, sizeof(err)) == 0,
                  "ad_net_create: %s", err);
    ck_assert_msg(ad_seq_create(gc->net, Tws, Bws, &gc->ws, err, sizeof(err)) == 0,
                  "ad_seq_create: %s", err);
    layout_from_net(gc->net, &gc->lo);

    /* Every parameter random, biases and extras too: the initial zero biases and zero
     * peepholes / b_hn would hide the terms they multiply. */
    ad_rng_seed(&r, 77 + (uint64_t)i);
    ref_fill_uniform(&r, gc->net->params, gc->net->nparams, PARAM_SCALE);
    ref_fill_normal(&r, gc->x, ND * NB * NT);
    ref_fill_normal(&r, gc->tgt, NO * NB * NT);
    gc->init = init;
    if (init) {
        const int has_c = ad_cell_has_c(cfg.kind);
        const size_t ns = (size_t)NH * NB * cfg.layers;
        ref_fill_uniform(&r, gc->h0, ns, STATE_SCALE);
        ref_fill_uniform(&r, gc->c0, ns, STATE_SCALE);
        ref_fill_uniform(&r, gc->wh, ns, FINAL_W);
        ref_fill_uniform(&r, gc->wc, ns, FINAL_W);
        for (size_t k = 0; k < ns; k++) {
            gc->h0d[k] = gc->h0[k], gc->c0d[k] = gc->c0[k];
            gc->whd[k] = gc->wh[k], gc->wcd[k] = gc->wc[k];
            gc->dh0[k] = gc->dc0[k] = 12345.0f; /* must be overwritten */
        }
        gc->en.h0 = gc->h0d;
        gc->en.c0 = has_c ? gc->c0d : NULL;
        gc->en.wh = gc->whd;
        gc->en.wc = has_c ? gc->wcd : NULL;
    }

    const float *y = init ? ad_seq_forward_init(gc->net, gc->ws, gc->x, NT, NB, gc->h0, gc->c0)
                          : ad_seq_forward(gc->net, gc->ws, gc->x, NT, NB);
    ck_assert_ptr_nonnull(y);
    memcpy(gc->y, y, sizeof(gc->y));
    gc->loss = ad_mse(gc->y, gc->tgt, NO * NB * NT, gc->dy);
    ad_seq_zero_grad(gc->ws);
    for (size_t k = 0; k < ND * NB * NT; k++)
        gc->dx[k] = 12345.0f; /* must be overwritten */
    if (init) {
        const int has_c = ad_cell_has_c(cfg.kind);
        double fin = 0.0;
        ad_seq_final_states(gc->ws, gc->hT, has_c ? gc->cT : NULL);
        for (size_t k = 0; k < (size_t)NH * NB * cfg.layers; k++)
            fin += (double)gc->wh[k] * gc->hT[k] + (has_c ? (double)gc->wc[k] * gc->cT[k] : 0.0);
        gc->loss += (float)fin;
        ad_seq_backward_init(gc->net, gc->ws, gc->dy, gc->dx, gc->wh, gc->wc, gc->dh0, gc->dc0);
    } else {
        ad_seq_backward(gc->net, gc->ws, gc->dy, gc->dx);
    }
    gc->g = malloc(gc->lo.n * sizeof(*gc->g));
    gc->th = malloc(gc->lo.n * sizeof(*gc->th));
    ck_assert(gc->g && gc->th);
    memcpy(gc->g, ad_seq_grad(gc->ws), gc->lo.n * sizeof(*gc->g));

    for (size_t k = 0; k < gc->lo.n; k++)
        gc->th[k] = gc->net->params[k];
    for (size_t k = 0; k < ND * NB * NT; k++)
        gc->xd[k] = gc->x[k];
    for (size_t k = 0; k < NO * NB * NT; k++)
        gc->td[k] = gc->tgt[k];
    gc->lossd = ref_forward(&gc->lo, gc->th, gc->xd, gc->td, init ? &gc->en : NULL, gc->yd, gc->hTd,
                            gc->cTd, &gc->amax);
    ck_assert_msg(gc->amax > 1.5 && gc->amax < 6.0,
                  "%s: largest |pre-activation| %g: gates linear or saturated",
                  ad_cell_name(cfg.kind), gc->amax);
}

static void gcase_setup(gcase *gc, int i, int reference, int Tws, int Bws)
{
    gcase_setup_ends(gc, i, reference, Tws, Bws, 0);
}

static void gcase_teardown(gcase *gc)
{
    free(gc->g);
    free(gc->th);
    ad_seq_free(gc->ws);
    ad_net_free(gc->net);
}

/* ---- the comparison (ref_compare, refnet.h) ---- */

/* Checks gc's parameter gradients and dx against finite differences. */
static void check_grads(gcase *gc, const char *mode)
{
    ref_tensor ts[REF_MAX_TENSORS];
    int nt = ref_net_tensors(&gc->lo, NULL, ts);
    double *fd = malloc(gc->lo.n * sizeof(*fd));
    double fdx[ND * NB * NT];
    const char *kname = ad_cell_name(gc->lo.kind);
    ref_tally t;

    ck_assert_ptr_nonnull(fd);
    for (size_t k = 0; k < gc->lo.n; k++)
        fd[k] = fd_at(gc, gc->th, k);
    for (size_t k = 0; k < ND * NB * NT; k++)
        fdx[k] = fd_at(gc, gc->xd, k);

    ref_tally_init(&t, kname, gc->lo.layers, mode);
    for (int k = 0; k < nt; k++)
        ref_tally_add(&t, ts[k].name, gc->g + ts[k].off, fd + ts[k].off, ts[k].n);
    ref_tally_add(&t, "dx", gc->dx, fdx, ND * NB * NT);
    /* the initial states: dh0 always, dc0 for the LSTM kinds */
    for (int w = 0; gc->init && w < (ad_cell_has_c(gc->lo.kind) ? 2 : 1); w++) {
        const size_t ns = (size_t)NH * NB * gc->lo.layers;
        double fds[NS];
        double *v = w ? gc->c0d : gc->h0d;
        for (size_t k = 0; k < ns; k++)
            fds[k] = fd_at(gc, v, k);
        ref_tally_add(&t, w ? "dc0" : "dh0", w ? gc->dc0 : gc->dh0, fds, ns);
    }
    ref_tally_report(&t);
    free(fd);
    ck_assert_msg(t.nbad == 0, "%s, %d layers, %s gemm: %d tensors wrong; first: %s", kname,
                  gc->lo.layers, mode, t.nbad, t.first);
}

static void check_forward(const gcase *gc, const char *mode)
{
    size_t wi;
    double worst = ref_worst_rel(gc->y, gc->yd, NO * NB * NT, &wi);
    if (ref_verbose())
        fprintf(stderr,
                "%s %d layers (%s): forward worst rel err %.3g, max |pre-activation| %.3g\n",
                ad_cell_name(gc->lo.kind), gc->lo.layers, mode, worst, gc->amax);
    ck_assert_msg(worst <= FWD_TOL,
                  "%s, %d layers, %s gemm: output (o %zu, b %zu, t %zu) is %.9g, reference %.9g",
                  ad_cell_name(gc->lo.kind), gc->lo.layers, mode, wi % NO, (wi / NO) % NB,
                  wi / (NO * NB), (double)gc->y[wi], gc->yd[wi]);
    ck_assert_msg(fabs(gc->loss - gc->lossd) <= FWD_TOL * fmax(1.0, gc->lossd),
                  "%s, %d layers, %s gemm: ad_mse %.9g, reference loss %.9g",
                  ad_cell_name(gc->lo.kind), gc->lo.layers, mode, (double)gc->loss, gc->lossd);
    /* final states (ad_seq_final_states), same tolerance: h and c are O(1) */
    for (size_t k = 0; gc->init && k < (size_t)NH * NB * gc->lo.layers; k++) {
        ck_assert_msg(fabs(gc->hT[k] - gc->hTd[k]) <= FWD_TOL * fmax(1.0, fabs(gc->hTd[k])),
                      "%s, %d layers, %s gemm: final h[%zu] %.9g, reference %.9g",
                      ad_cell_name(gc->lo.kind), gc->lo.layers, mode, k, (double)gc->hT[k],
                      gc->hTd[k]);
        if (ad_cell_has_c(gc->lo.kind))
            ck_assert_msg(fabs(gc->cT[k] - gc->cTd[k]) <= FWD_TOL * fmax(1.0, fabs(gc->cTd[k])),
                          "%s, %d layers, %s gemm: final c[%zu] %.9g, reference %.9g",
                          ad_cell_name(gc->lo.kind), gc->lo.layers, mode, k, (double)gc->cT[k],
                          gc->cTd[k]);
    }
}

/* ---- tests ---- */

START_TEST(test_forward_reference_gemm)
{
    gcase gc;
    gcase_setup(&gc, _i, 1, NT, NB);
    check_forward(&gc, "reference");
    gcase_teardown(&gc);
}
END_TEST

START_TEST(test_forward_openblas)
{
    gcase gc;
    gcase_setup(&gc, _i, 0, NT, NB);
    check_forward(&gc, "OpenBLAS");
    gcase_teardown(&gc);
}
END_TEST

START_TEST(test_grad_reference_gemm)
{
    gcase gc;
    gcase_setup(&gc, _i, 1, NT, NB);
    check_grads(&gc, "reference");
    gcase_teardown(&gc);
}
END_TEST

START_TEST(test_grad_openblas)
{
    gcase gc;
    gcase_setup(&gc, _i, 0, NT, NB);
    check_grads(&gc, "OpenBLAS");
    gcase_teardown(&gc);
}
END_TEST

/* A workspace made for longer windows and more of them than are run. */
START_TEST(test_grad_larger_workspace)
{
    gcase gc;
    gcase_setup(&gc, _i, 0, NT + 3, NB + 2);
    check_forward(&gc, "OpenBLAS, larger workspace");
    check_grads(&gc, "OpenBLAS, larger workspace");
    gcase_teardown(&gc);
}
END_TEST

/* Backward adds into the gradient buffer (a second call doubles it) and overwrites dx. */
START_TEST(test_backward_adds)
{
    gcase gc;
    gcase_setup(&gc, _i, 1, NT, NB);
    float dx2[ND * NB * NT];
    for (size_t k = 0; k < ND * NB * NT; k++)
        dx2[k] = -777.0f;
    ad_seq_backward(gc.net, gc.ws, gc.dy, dx2);
    const float *g2 = ad_seq_grad(gc.ws);
    float scale = 1e-3f;
    for (size_t k = 0; k < gc.lo.n; k++)
        scale = fmaxf(scale, fabsf(gc.g[k]));
    for (size_t k = 0; k < gc.lo.n; k++)
        ck_assert_float_eq_tol(g2[k], 2.0f * gc.g[k], 1e-5f * scale);
    for (size_t k = 0; k < ND * NB * NT; k++)
        ck_assert_float_eq_tol(dx2[k], gc.dx[k], 1e-6f * (1.0f + fabsf(gc.dx[k])));
    ad_seq_zero_grad(gc.ws);
    for (size_t k = 0; k < gc.lo.n; k++)
        ck_assert_float_eq(ad_seq_grad(gc.ws)[k], 0.0f);
    gcase_teardown(&gc);
}
END_TEST

/*
 * The windows' ends: random initial states, final states in the loss (see the file's
 * opening comment). Forward, final states, every gradient and dh0/dc0, both product
 * modes.
 */
START_TEST(test_init_state_reference_gemm)
{
    gcase gc;
    gcase_setup_ends(&gc, _i, 1, NT, NB, 1);
    check_forward(&gc, "reference, initial state");
    check_grads(&gc, "reference, initial state");
    gcase_teardown(&gc);
}
END_TEST

START_TEST(test_init_state_openblas)
{
    gcase gc;
    gcase_setup_ends(&gc, _i, 0, NT + 3, NB + 2, 1);
    check_forward(&gc, "OpenBLAS, initial state, larger workspace");
    check_grads(&gc, "OpenBLAS, initial state, larger workspace");
    gcase_teardown(&gc);
}
END_TEST

/*
 * The initial state is not ignored: the same windows from zero states (ad_seq_forward)
 * and from the random states (ad_seq_forward_init) give different outputs, and
 * ad_seq_forward_init with NULL states is ad_seq_forward bit for bit.
 */
START_TEST(test_init_state_matters)
{
    gcase gc;
    gcase_setup_ends(&gc, _i, 1, NT, NB, 1);
    float y0[NO * NB * NT], y1[NO * NB * NT];
    memcpy(y0, ad_seq_forward(gc.net, gc.ws, gc.x, NT, NB), sizeof(y0));
    memcpy(y1, ad_seq_forward_init(gc.net, gc.ws, gc.x, NT, NB, NULL, NULL), sizeof(y1));
    ck_assert_int_eq(memcmp(y0, y1, sizeof(y0)), 0);
    double diff = 0.0;
    for (size_t k = 0; k < NO * NB; k++) /* first step: the initial state's effect is full */
        diff = fmax(diff, fabs((double)y0[k] - gc.y[k]));
    ck_assert_msg(diff > 1e-2, "%s: initial state changes the first outputs by only %g",
                  ad_cell_name(gc.lo.kind), diff);
    gcase_teardown(&gc);
}
END_TEST

/*
 * The checker has teeth: the library's (correct) LSTM gradient passes, and the same
 * gradient with one element of layer 0's Wh moved by 10 * REF_GRAD_RTOL of the tensor's
 * scale, or dx with one element off by as much, is refused.
 */
START_TEST(test_checker_has_teeth)
{
    gcase gc;
    gcase_setup(&gc, 2 * AD_CELL_LSTM + 1, 1, NT, NB);
    double *fd = malloc(gc.lo.n * sizeof(*fd)), worst, fdx[ND * NB * NT];
    float *g = malloc(gc.lo.n * sizeof(*g)), dx[ND * NB * NT];
    const size_t off = gc.lo.wh[0], len = 4 * NH * NH;
    char msg[512];

    ck_assert(fd && g);
    for (size_t k = 0; k < gc.lo.n; k++)
        fd[k] = fd_at(&gc, gc.th, k);
    for (size_t k = 0; k < ND * NB * NT; k++)
        fdx[k] = fd_at(&gc, gc.xd, k);

    memcpy(g, gc.g, gc.lo.n * sizeof(*g));
    ck_assert_int_eq(ref_compare("Wh", g + off, fd + off, len, &worst, msg, sizeof(msg)), 0);
    /* the element with the smallest gradient: an error there is the hardest to see */
    size_t kmin = 0;
    for (size_t k = 1; k < len; k++)
        if (fabs(fd[off + k]) < fabs(fd[off + kmin]))
            kmin = k;
    g[off + kmin] += (float)(10.0 * REF_GRAD_RTOL * ref_tensor_scale(fd + off, len));
    ck_assert_int_eq(ref_compare("Wh", g + off, fd + off, len, &worst, msg, sizeof(msg)), 1);

    memcpy(dx, gc.dx, sizeof(dx));
    ck_assert_int_eq(ref_compare("dx", dx, fdx, ND * NB * NT, &worst, msg, sizeof(msg)), 0);
    dx[7] -= (float)(10.0 * REF_GRAD_RTOL * ref_tensor_scale(fdx, ND * NB * NT));
    ck_assert_int_eq(ref_compare("dx", dx, fdx, ND * NB * NT, &worst, msg, sizeof(msg)), 1);
    free(fd);
    free(g);
    gcase_teardown(&gc);
}
END_TEST

static Suite *grad_suite(void)
{
    Suite *s = suite_create("grad");
    TCase *tc;

    tc = tcase_create("forward");
    tcase_add_loop_test(tc, test_forward_reference_gemm, 0, NCASES);
    tcase_add_loop_test(tc, test_forward_openblas, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("grad_reference_gemm");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_grad_reference_gemm, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("grad_openblas");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_grad_openblas, 0, NCASES);
    tcase_add_loop_test(tc, test_grad_larger_workspace, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("backward_contract");
    tcase_add_loop_test(tc, test_backward_adds, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("initial_state");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_init_state_reference_gemm, 0, NCASES);
    tcase_add_loop_test(tc, test_init_state_openblas, 0, NCASES);
    tcase_add_loop_test(tc, test_init_state_matters, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("checker");
    tcase_add_test(tc, test_checker_has_teeth);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(grad_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
