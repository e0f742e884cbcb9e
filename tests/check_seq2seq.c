/*
 * check_seq2seq.c - the encoder-decoder (seq2seq.h).
 *
 * The suite carries its own model: a double-precision forward of the whole
 * encoder-decoder written from the equations (cell.h's kinds and gate orders and net.h's
 * parameter layout, in the reference of refnet.h; seq2seq.h's wiring here: the encoder's
 * final state of every layer starts the decoder, which reconstructs the window newest
 * first, fed 0 and then the true values), using libm's exp and tanh and none of the
 * library's kernels. The layout offsets are computed from net.h's description
 * (ref_net_describe) and the library's views are checked against them. Against that
 * reference:
 *
 *  - layout: one flat buffer, encoder then decoder, each as net.h lays a network out;
 *  - forward: ad_s2s_forward's reconstructions and loss equal the reference's;
 *  - gradients: every parameter's gradient (encoder and decoder) from ad_s2s_backward
 *    equals central finite differences of the reference loss, for every kind with 1 and
 *    2 layers, in both product modes (blas.h); the encoder's unused head gets exactly 0;
 *  - backward adds into the gradient; the checker refuses a planted error;
 *  - scoring: ad_s2s_score equals the batched forward (bit for bit with the reference
 *    product kernel, to rounding with OpenBLAS) and its per-position errors are
 *    mean_d (r - x)^2; ad_s2s_eval is the mean of the windows' scores;
 *  - learning: trained on a clean sine, every kind reconstructs clean windows far better
 *    than windows holding a spike, both at the newest position (the error the detector
 *    reads) and in the middle (the window's mean error);
 *  - initialisation, clone and copy; training is deterministic;
 *  - bad shapes and arguments are refused with messages.
 *
 * Sizes are tiny and pairwise distinct (D=2, H=3, L=5, B=4) so that mixing up two
 * dimensions, or the time order of the reconstruction, cannot pass by coincidence.
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
#include "optim.h"
#include "refnet.h"
#include "rng.h"
#include "seq2seq.h"
#include "train.h"

enum { ND = 2, NH = 3, NL = 5, NB = 4 };
enum { NX = ND * NB * NL };           /* floats in a batch of windows */
enum { NCASES = AD_CELL_NKINDS * 2 }; /* loop index i: kind i/2, layers 1 + i%2 */
enum { MAXT = 2 * REF_MAX_TENSORS };  /* tensors of both halves */

/*
 * Finite differences and tolerances, as in check_grad.c (refnet.h). Central differences
 * with step REF_GRAD_EPS = 1e-5 of the double reference loss: truncation
 * (EPS^2/6 |L'''| ~ 1e-11) and rounding (1e-16 |L| / EPS ~ 1e-11) are far below float
 * resolution, so they serve as the exact gradient. The library's gradients are float32;
 * their error is rounding spread over the terms of each sum, so it scales with the
 * largest gradient of the same tensor, not with each (possibly cancelling) element. Each
 * element must satisfy (ref_compare)
 *
 *     |g - g_fd| <= REF_GRAD_RTOL * max(REF_GRAD_FLOOR, max over the tensor of |g_fd|)
 *
 * REF_GRAD_RTOL = 2e-5 (about 170 float ulps of the tensor's scale). The encoder-decoder
 * chains 2L = 10 steps, twice check_grad's 6; measured worst err/scale over every kind,
 * layer count and both product modes is printed with AD_CHECK_VERBOSE=1 (about 1e-6, so
 * a margin of ~20). A wrong term (the decoder fed the wrong time step, the encoder's
 * c not handed over, a layer's state gradient dropped) moves the affected tensors by
 * 1e-2 of their scale or more; a single element planted 10 * REF_GRAD_RTOL off is
 * refused (test_checker_has_teeth). REF_GRAD_FLOOR = 1e-4 keeps a tensor whose gradient
 * is all but zero from demanding precision below float resolution; the encoder's unused
 * head has an exact zero gradient and must get |g| <= 2e-9.
 */

/* Forward: |r - r_ref| <= FWD_TOL * max(1, |r_ref|); float rounding and the activations'
 * 1e-6 relative error through 10 steps of 2 layers (measured a few 1e-7). */
#define FWD_TOL 5e-6

/* Parameters uniform in [-PARAM_SCALE, PARAM_SCALE]: pre-activations span a few units,
 * gates neither linear nor saturated (checked: largest |pre-activation| in (1.5, 8)). */
#define PARAM_SCALE 0.8

/* Scoring against the batched forward with OpenBLAS: the two add products in different
 * orders, a few ulps per sum carried over 2L steps (as check_net's STREAM_RTOL). */
#define SCORE_RTOL 1e-5

/* ---- the layout, from net.h's description ---- */

/* Both halves in one flat buffer, each a network as net.h lays it out (ref_net). */
typedef struct layout {
    ad_s2s_config cfg;
    ref_net enc, dec; /* offsets from the start of the whole buffer */
    size_t n;
} layout;

/* seq2seq.h: the encoder (one unused output) first, then the decoder (D outputs). */
static void make_layout(const ad_s2s_config *cfg, layout *lo)
{
    memset(lo, 0, sizeof(*lo));
    lo->cfg = *cfg;
    ck_assert_int_eq(
        ref_net_describe(cfg->kind, cfg->layers, cfg->input, cfg->hidden, 1, 0, &lo->enc), 0);
    ck_assert_int_eq(ref_net_describe(cfg->kind, cfg->layers, cfg->input, cfg->hidden, cfg->input,
                                      lo->enc.n, &lo->dec),
                     0);
    lo->n = lo->enc.n + lo->dec.n;
}

/* ---- the double-precision reference (refnet.h) of the whole model ---- */

/* One time step of a half (ref_net_step); h, c (H, layers). */
static void ref_half_step(const ref_net *hf, const double *th, const double *x, double *h,
                          double *c, double *y, double *amax)
{
    if (ref_net_step(hf, th, x, h, c, y, amax) != 0)
        ck_abort_msg("reference: bad network (kind %d)", (int)hf->kind);
}

/*
 * The whole model over B windows x (D, B, L): encoder from zero over x_0..x_{L-1}; its
 * final h and c of every layer start the decoder; decoder step s is fed 0 (s = 0) or
 * x_{L-s} and outputs r_{L-1-s}. rec (D, B, L) aligned with x. Returns the MSE over
 * D*B*L values.
 */
static double ref_forward(const layout *lo, const double *th, const double *x, double *rec,
                          double *amax)
{
    const double zero[ND] = {0};
    double loss = 0.0;

    for (int b = 0; b < NB; b++) {
        double h[AD_MAX_LAYERS * NH] = {0}, c[AD_MAX_LAYERS * NH] = {0}; /* (H, layers) */
        for (int t = 0; t < NL; t++)
            ref_half_step(&lo->enc, th, x + ND * (b + NB * t), h, c, NULL, amax);
        for (int s = 0; s < NL; s++) {
            const int t = NL - 1 - s;
            const double *in = s == 0 ? zero : x + ND * (b + NB * (t + 1));
            double *y = rec + ND * (b + NB * t);
            ref_half_step(&lo->dec, th, in, h, c, y, amax);
            for (int d = 0; d < ND; d++) {
                double e = y[d] - x[ND * (b + NB * t) + d];
                loss += e * e;
            }
        }
    }
    return loss / NX;
}

/* ---- a case: model, workspace, data, library results ---- */

typedef struct scase {
    ad_s2s *m;
    ad_s2s_ws *ws;
    layout lo;
    float x[NX];   /* (D, B, L) */
    float rec[NX]; /* library reconstruction */
    float dy[NX];  /* from ad_mse */
    float loss;    /* ad_mse of the library's reconstruction */
    float *g;      /* (n) library gradient */
    double *th;    /* (n) parameters in double */
    double xd[NX]; /* x in double */
    double recd[NX];
    double lossd;
    double amax;
} scase;

static ad_s2s_config case_config(int i)
{
    ad_s2s_config cfg = {.kind = (ad_cell_kind)(i / 2),
                         .layers = 1 + i % 2,
                         .input = ND,
                         .hidden = NH,
                         .window = NL};
    return cfg;
}

/* Builds case i (kind i/2, layers 1 + i%2), runs the library's forward and backward in
 * product mode `reference` with a workspace for Bws >= B windows, and the reference. */
static void scase_setup(scase *sc, int i, int reference, int Bws)
{
    ad_s2s_config cfg = case_config(i);
    char err[256] = "";
    ad_rng r;

    memset(sc, 0, sizeof(*sc));
    ad_blas_set_reference(reference);
    ck_assert_msg(ad_s2s_create(&cfg, 500 + (uint64_t)i, &sc->m, err, sizeof(err)) == 0,
                  "ad_s2s_create: %s", err);
    ck_assert_msg(ad_s2s_ws_create(sc->m, Bws, &sc->ws, err, sizeof(err)) == 0,
                  "ad_s2s_ws_create: %s", err);
    make_layout(&cfg, &sc->lo);
    ck_assert_uint_eq(sc->lo.n, sc->m->nparams);

    /* every parameter random: zero biases, peepholes or b_hn would hide their terms */
    ad_rng_seed(&r, 99 + (uint64_t)i);
    ref_fill_uniform(&r, sc->m->params, sc->m->nparams, PARAM_SCALE);
    ref_fill_normal(&r, sc->x, NX);

    const float *rec = ad_s2s_forward(sc->m, sc->ws, sc->x, NB);
    ck_assert_ptr_nonnull(rec);
    memcpy(sc->rec, rec, sizeof(sc->rec));
    sc->loss = ad_mse(sc->rec, sc->x, NX, sc->dy);
    ad_s2s_zero_grad(sc->ws);
    ad_s2s_backward(sc->m, sc->ws, sc->dy);
    sc->g = malloc(sc->lo.n * sizeof(*sc->g));
    sc->th = malloc(sc->lo.n * sizeof(*sc->th));
    ck_assert(sc->g && sc->th);
    memcpy(sc->g, ad_s2s_grad(sc->ws), sc->lo.n * sizeof(*sc->g));
    for (size_t k = 0; k < sc->lo.n; k++)
        sc->th[k] = sc->m->params[k];
    for (size_t k = 0; k < NX; k++)
        sc->xd[k] = sc->x[k];
    sc->lossd = ref_forward(&sc->lo, sc->th, sc->xd, sc->recd, &sc->amax);
    ck_assert_msg(sc->amax > 1.5 && sc->amax < 8.0,
                  "%s: largest |pre-activation| %g: gates linear or saturated",
                  ad_cell_name(cfg.kind), sc->amax);
}

static void scase_teardown(scase *sc)
{
    free(sc->g);
    free(sc->th);
    ad_s2s_ws_free(sc->ws);
    ad_s2s_free(sc->m);
}

/* ---- comparison (ref_compare, refnet.h) ---- */

/* The reference loss of a case (an scase *) at its th: the ref_loss_fn of ref_fd. */
static double ref_loss(void *ctx)
{
    const scase *sc = ctx;
    double rec[NX], amax = 0.0;
    return ref_forward(&sc->lo, sc->th, sc->xd, rec, &amax);
}

/* Central differences of the reference loss w.r.t. every parameter, into fd (n). */
static void fd_all(scase *sc, double *fd)
{
    for (size_t k = 0; k < sc->lo.n; k++)
        fd[k] = ref_fd(ref_loss, sc, sc->th, k);
}

static void check_grads(scase *sc, const char *mode)
{
    ref_tensor ts[MAXT];
    int nt = ref_net_tensors(&sc->lo.enc, "encoder", ts);
    nt += ref_net_tensors(&sc->lo.dec, "decoder", ts + nt);
    double *fd = malloc(sc->lo.n * sizeof(*fd));
    const char *kname = ad_cell_name(sc->lo.cfg.kind);
    ref_tally t;

    ck_assert_ptr_nonnull(fd);
    fd_all(sc, fd);
    ref_tally_init(&t, kname, sc->lo.cfg.layers, mode);
    for (int k = 0; k < nt; k++)
        ref_tally_add(&t, ts[k].name, sc->g + ts[k].off, fd + ts[k].off, ts[k].n);
    /* the encoder's head is not part of the model: exactly zero */
    for (size_t k = 0; k <= (size_t)NH; k++) {
        size_t q = sc->lo.enc.wy + k;
        ck_assert_msg(fabs(fd[q]) == 0.0 && fabsf(sc->g[q]) <= 2e-9f,
                      "%s: encoder head gradient [%zu] is %g (fd %g), must be 0", kname, k,
                      (double)sc->g[q], fd[q]);
    }
    ref_tally_report(&t);
    free(fd);
    ck_assert_msg(t.nbad == 0, "%s, %d layers, %s gemm: %d tensors wrong; first: %s", kname,
                  sc->lo.cfg.layers, mode, t.nbad, t.first);
}

static void check_forward(const scase *sc, const char *mode)
{
    size_t wi;
    double worst = ref_worst_rel(sc->rec, sc->recd, NX, &wi);
    if (ref_verbose())
        fprintf(stderr, "%s %d layers (%s): forward worst rel err %.3g, max |pre-act| %.3g\n",
                ad_cell_name(sc->lo.cfg.kind), sc->lo.cfg.layers, mode, worst, sc->amax);
    ck_assert_msg(worst <= FWD_TOL,
                  "%s, %d layers, %s gemm: reconstruction (d %zu, b %zu, t %zu) is %.9g, "
                  "reference %.9g",
                  ad_cell_name(sc->lo.cfg.kind), sc->lo.cfg.layers, mode, wi % ND, (wi / ND) % NB,
                  wi / (ND * NB), (double)sc->rec[wi], sc->recd[wi]);
    ck_assert_msg(fabs(sc->loss - sc->lossd) <= FWD_TOL * fmax(1.0, sc->lossd),
                  "%s, %d layers, %s gemm: loss %.9g, reference %.9g",
                  ad_cell_name(sc->lo.cfg.kind), sc->lo.cfg.layers, mode, (double)sc->loss,
                  sc->lossd);
}

/* ---- layout ---- */

/* The library's views sit where net.h's description puts them, encoder first. */
START_TEST(test_layout)
{
    ad_s2s_config cfg = case_config(_i);
    ad_s2s *m = NULL;
    layout lo;
    char err[256] = "";

    ck_assert_int_eq(ad_s2s_create(&cfg, 1, &m, err, sizeof(err)), 0);
    make_layout(&cfg, &lo);
    ck_assert_uint_eq(m->nparams, lo.n);
    ck_assert_uint_eq(ad_s2s_param_count(&cfg), lo.n);
    ck_assert_uint_eq(m->enc.nparams, lo.enc.n);
    ck_assert_uint_eq(m->dec.nparams, lo.dec.n);
    ck_assert_ptr_eq(m->enc.params, m->params);
    ck_assert_ptr_eq(m->dec.params, m->params + lo.enc.n);
    ck_assert_int_eq(m->enc.cfg.output, 1);
    ck_assert_int_eq(m->dec.cfg.output, ND);
    const struct {
        const ad_net *net;
        const ref_net *hf;
    } halves[2] = {{&m->enc, &lo.enc}, {&m->dec, &lo.dec}};
    for (int w = 0; w < 2; w++) {
        const ad_params *p = &halves[w].net->p;
        const ref_net *hf = halves[w].hf;
        for (int l = 0; l < cfg.layers; l++) {
            ck_assert_ptr_eq(p->layer[l].wx, m->params + hf->wx[l]);
            ck_assert_ptr_eq(p->layer[l].wh, m->params + hf->wh[l]);
            ck_assert_ptr_eq(p->layer[l].b, m->params + hf->b[l]);
            if (hf->nex)
                ck_assert_ptr_eq(p->layer[l].extra, m->params + hf->ex[l]);
        }
        ck_assert_ptr_eq(p->wy, m->params + hf->wy);
        ck_assert_ptr_eq(p->by, m->params + hf->by);
    }
    ck_assert_uint_eq(ad_s2s_bytes(m), sizeof(*m) + lo.n * sizeof(float));
    ad_s2s_free(m);
}
END_TEST

/* ---- forward and gradients ---- */

START_TEST(test_forward_reference_gemm)
{
    scase sc;
    scase_setup(&sc, _i, 1, NB);
    check_forward(&sc, "reference");
    scase_teardown(&sc);
}
END_TEST

START_TEST(test_forward_openblas)
{
    scase sc;
    scase_setup(&sc, _i, 0, NB + 3);
    check_forward(&sc, "OpenBLAS, larger workspace");
    scase_teardown(&sc);
}
END_TEST

START_TEST(test_grad_reference_gemm)
{
    scase sc;
    scase_setup(&sc, _i, 1, NB);
    check_grads(&sc, "reference");
    scase_teardown(&sc);
}
END_TEST

START_TEST(test_grad_openblas)
{
    scase sc;
    scase_setup(&sc, _i, 0, NB + 3);
    check_grads(&sc, "OpenBLAS, larger workspace");
    scase_teardown(&sc);
}
END_TEST

/* Backward adds (a second call doubles the gradient); zero_grad clears it. */
START_TEST(test_backward_adds)
{
    scase sc;
    scase_setup(&sc, _i, 1, NB);
    ad_s2s_backward(sc.m, sc.ws, sc.dy);
    const float *g2 = ad_s2s_grad(sc.ws);
    float scale = 1e-3f;
    for (size_t k = 0; k < sc.lo.n; k++)
        scale = fmaxf(scale, fabsf(sc.g[k]));
    for (size_t k = 0; k < sc.lo.n; k++)
        ck_assert_float_eq_tol(g2[k], 2.0f * sc.g[k], 1e-5f * scale);
    ad_s2s_zero_grad(sc.ws);
    for (size_t k = 0; k < sc.lo.n; k++)
        ck_assert_float_eq(ad_s2s_grad(sc.ws)[k], 0.0f);
    scase_teardown(&sc);
}
END_TEST

/* The checker refuses one element of the decoder's layer-0 Wh planted 10 * REF_GRAD_RTOL
 * of the tensor's scale off (at its smallest element), and one of the encoder's. */
START_TEST(test_checker_has_teeth)
{
    scase sc;
    scase_setup(&sc, 2 * AD_CELL_LSTM + 1, 1, NB);
    double *fd = malloc(sc.lo.n * sizeof(*fd)), worst;
    float *g = malloc(sc.lo.n * sizeof(*g));
    const size_t len = (size_t)4 * NH * NH;
    char msg[512];

    ck_assert(fd && g);
    fd_all(&sc, fd);
    for (int w = 0; w < 2; w++) {
        const size_t off = w ? sc.lo.dec.wh[0] : sc.lo.enc.wh[0];
        size_t kmin = 0;
        memcpy(g, sc.g, sc.lo.n * sizeof(*g));
        ck_assert_int_eq(ref_compare("Wh", g + off, fd + off, len, &worst, msg, sizeof(msg)), 0);
        for (size_t k = 1; k < len; k++)
            if (fabs(fd[off + k]) < fabs(fd[off + kmin]))
                kmin = k;
        g[off + kmin] += (float)(10.0 * REF_GRAD_RTOL * ref_tensor_scale(fd + off, len));
        ck_assert_int_eq(ref_compare("Wh", g + off, fd + off, len, &worst, msg, sizeof(msg)), 1);
    }
    free(fd);
    free(g);
    scase_teardown(&sc);
}
END_TEST

/* ---- scoring one window ---- */

/* Window b of a (D, B, L) batch as a (D, L) window. */
static void window_of(const float *x, int b, float *w)
{
    for (int t = 0; t < NL; t++)
        memcpy(w + ND * t, x + ND * (b + NB * t), ND * sizeof(float));
}

static void score_vs_forward(int i, int reference)
{
    scase sc;
    ad_s2s_scorer *scr = NULL;
    char err[256] = "";

    scase_setup(&sc, i, reference, NB);
    ck_assert_int_eq(ad_s2s_scorer_create(sc.m, &scr, err, sizeof(err)), 0);
    ck_assert_uint_gt(ad_s2s_scorer_bytes(scr), 0);
    float scale = 0.0f;
    for (size_t k = 0; k < NX; k++)
        scale = fmaxf(scale, fabsf(sc.rec[k]));
    for (int b = 0; b < NB; b++) {
        float w[ND * NL], r[ND * NL], rb[ND * NL], e[NL], mean = -1.0f;
        double sum = 0.0;
        window_of(sc.x, b, w);
        window_of(sc.rec, b, rb);
        for (int k = 0; k < ND * NL; k++)
            r[k] = NAN;
        ck_assert_int_eq(ad_s2s_score(sc.m, scr, w, r, e, &mean), 0);
        if (reference) {
            ck_assert_msg(memcmp(r, rb, sizeof(r)) == 0,
                          "%s %d layers: scored window %d differs from the batched forward",
                          ad_cell_name(sc.lo.cfg.kind), sc.lo.cfg.layers, b);
        } else {
            for (int k = 0; k < ND * NL; k++)
                ck_assert_float_eq_tol(r[k], rb[k], SCORE_RTOL * scale);
        }
        for (int t = 0; t < NL; t++) {
            double et = 0.0;
            for (int d = 0; d < ND; d++)
                et += ((double)r[ND * t + d] - w[ND * t + d]) *
                      ((double)r[ND * t + d] - w[ND * t + d]);
            et /= ND;
            sum += et;
            ck_assert_float_eq_tol(e[t], et, 1e-6 * fmax(1e-3, et));
        }
        ck_assert_float_eq_tol(mean, sum / NL, 1e-6 * fmax(1e-3, sum / NL));
        /* outputs are optional and the model is not changed */
        float mean2 = -1.0f;
        ck_assert_int_eq(ad_s2s_score(sc.m, scr, w, NULL, NULL, &mean2), 0);
        ck_assert_float_eq(mean2, mean);
        ck_assert_int_eq(ad_s2s_score(sc.m, scr, w, NULL, NULL, NULL), 0);
    }
    ad_s2s_scorer_free(scr);
    scase_teardown(&sc);
}

START_TEST(test_score_equals_forward_reference_gemm)
{
    score_vs_forward(_i, 1);
}
END_TEST

START_TEST(test_score_near_forward_openblas)
{
    score_vs_forward(_i, 0);
}
END_TEST

/*
 * ad_s2s_eval over a sequence is the mean of ad_s2s_score's window means over the
 * windows it covers (every stride samples; several batches, the last one partial).
 */
START_TEST(test_eval_is_mean_of_scores)
{
    ad_s2s_config cfg = case_config(_i);
    enum { N = 31, STRIDE = 3 };
    float x[ND * N], mean;
    ad_s2s *m = NULL;
    ad_s2s_ws *ws = NULL;
    ad_s2s_scorer *scr = NULL;
    char err[256] = "";
    double mse = -1.0, sum = 0.0;
    int nwin = 0;
    ad_rng r;

    ad_blas_set_reference(1);
    ck_assert_int_eq(ad_s2s_create(&cfg, 3, &m, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_ws_create(m, 3, &ws, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_scorer_create(m, &scr, err, sizeof(err)), 0);
    ad_rng_seed(&r, 12);
    ref_fill_uniform(&r, m->params, m->nparams, PARAM_SCALE);
    ref_fill_normal(&r, x, ND * N);
    ck_assert_int_eq(ad_s2s_eval(m, ws, x, N, STRIDE, &mse), 0);
    for (int st = 0; st + NL <= N; st += STRIDE, nwin++) {
        ck_assert_int_eq(ad_s2s_score(m, scr, x + ND * st, NULL, NULL, &mean), 0);
        sum += mean;
    }
    ck_assert_int_eq(nwin, (N - NL) / STRIDE + 1);
    ck_assert_double_eq_tol(mse, sum / nwin, 1e-6 * sum / nwin);
    ad_s2s_scorer_free(scr);
    ad_s2s_ws_free(ws);
    ad_s2s_free(m);
}
END_TEST

/* ---- learning ---- */

#define SINE_TRAIN 800
#define SINE_TEST  400
#define SINE_L     16
#define SPIKE      2.0f
/* "much larger": a spiked window's error against the largest clean one's. Measured
 * 5e3..3e5 for the kinds at these settings; 100 leaves a wide margin and still fails a
 * model that does not reconstruct (ratio ~1) or that copies its input (spike reproduced). */
#define SPIKE_RATIO 100.0

START_TEST(test_spike_reconstructs_badly)
{
    const ad_cell_kind kind = (ad_cell_kind)_i;
    static float s[SINE_TRAIN + SINE_TEST];
    ad_s2s_config cfg = {kind, 1, 1, 16, SINE_L};
    ad_s2s *m = NULL;
    ad_s2s_ws *ws = NULL;
    ad_s2s_scorer *scr = NULL;
    ad_optim *opt;
    ad_train_opts o;
    char err[256] = "";
    float loss = -1.0f, e[SINE_L], w[SINE_L], mean;
    double before, after, clean_last = 0.0, clean_mean = 0.0;
    double spike_last = INFINITY, spike_mean = INFINITY;

    ad_blas_set_reference(0);
    for (int t = 0; t < SINE_TRAIN + SINE_TEST; t++) /* period 17.3: every phase occurs */
        s[t] = (float)sin(2.0 * M_PI * t / 17.3);
    ck_assert_int_eq(ad_s2s_create(&cfg, 5, &m, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_ws_create(m, 16, &ws, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_scorer_create(m, &scr, err, sizeof(err)), 0);
    opt = ad_optim_create(AD_OPTIM_ADAM, m->nparams, 0.01f);
    ck_assert_ptr_nonnull(opt);
    ad_train_defaults(&o);
    o.window = SINE_L;
    o.batch = 16;
    o.stride = 2;
    o.epochs = 30;
    o.seed = 3;
    ck_assert_int_eq(ad_s2s_eval(m, ws, s + SINE_TRAIN, SINE_TEST, 1, &before), 0);
    ck_assert_msg(ad_s2s_train(m, opt, ws, s, SINE_TRAIN, &o, &loss, err, sizeof(err)) == 0,
                  "%s: %s", ad_cell_name(kind), err);
    ck_assert_int_eq(ad_s2s_eval(m, ws, s + SINE_TRAIN, SINE_TEST, 1, &after), 0);
    ck_assert_msg(after < 0.01 * before, "%s: held-out reconstruction MSE %g -> %g",
                  ad_cell_name(kind), before, after);

    /* held-out windows, clean and with a spike at the newest value or in the middle */
    for (int st = SINE_TRAIN; st + SINE_L <= SINE_TRAIN + SINE_TEST; st += 3) {
        ck_assert_int_eq(ad_s2s_score(m, scr, s + st, NULL, e, &mean), 0);
        clean_last = fmax(clean_last, e[SINE_L - 1]);
        clean_mean = fmax(clean_mean, mean);
        memcpy(w, s + st, sizeof(w));
        w[SINE_L - 1] += SPIKE;
        ck_assert_int_eq(ad_s2s_score(m, scr, w, NULL, e, &mean), 0);
        spike_last = fmin(spike_last, e[SINE_L - 1]);
        memcpy(w, s + st, sizeof(w));
        w[SINE_L / 2] -= SPIKE;
        ck_assert_int_eq(ad_s2s_score(m, scr, w, NULL, e, &mean), 0);
        spike_mean = fmin(spike_mean, mean);
    }
    if (ref_verbose())
        fprintf(stderr,
                "%s: train loss %g, held-out MSE %g -> %g; newest error clean max %g, spiked "
                "min %g (x%.0f); window mean clean max %g, spiked min %g (x%.0f)\n",
                ad_cell_name(kind), (double)loss, before, after, clean_last, spike_last,
                spike_last / clean_last, clean_mean, spike_mean, spike_mean / clean_mean);
    ck_assert_msg(spike_last > SPIKE_RATIO * clean_last,
                  "%s: newest value's error with a spike %g, clean up to %g", ad_cell_name(kind),
                  spike_last, clean_last);
    ck_assert_msg(spike_mean > SPIKE_RATIO * clean_mean,
                  "%s: window error with a spike %g, clean up to %g", ad_cell_name(kind),
                  spike_mean, clean_mean);
    ad_optim_free(opt);
    ad_s2s_scorer_free(scr);
    ad_s2s_ws_free(ws);
    ad_s2s_free(m);
}
END_TEST

/* Same seed, same data: the same parameters bit for bit; the loss reported is finite. */
START_TEST(test_train_deterministic)
{
    ad_s2s_config cfg = {AD_CELL_GRU, 2, 2, 5, 6};
    float x[2 * 60];
    ad_s2s *m[2];
    ad_rng r;
    char err[256] = "";

    ad_rng_seed(&r, 4);
    ref_fill_normal(&r, x, 2 * 60);
    for (int k = 0; k < 2; k++) {
        ad_s2s_ws *ws;
        ad_optim *opt;
        ad_train_opts o;
        float loss = -1.0f;
        ck_assert_int_eq(ad_s2s_create(&cfg, 2, &m[k], err, sizeof(err)), 0);
        ck_assert_int_eq(ad_s2s_ws_create(m[k], 4, &ws, err, sizeof(err)), 0);
        opt = ad_optim_create(AD_OPTIM_ADAM, m[k]->nparams, 0.01f);
        ad_train_defaults(&o);
        o.window = 0; /* the model's */
        o.batch = 3;
        o.stride = 1;
        o.epochs = 3;
        ck_assert_int_eq(ad_s2s_train(m[k], opt, ws, x, 60, &o, &loss, err, sizeof(err)), 0);
        ck_assert(isfinite(loss) && loss > 0.0f);
        ad_optim_free(opt);
        ad_s2s_ws_free(ws);
    }
    ck_assert_mem_eq(m[0]->params, m[1]->params, m[0]->nparams * sizeof(float));
    ad_s2s_free(m[0]);
    ad_s2s_free(m[1]);
}
END_TEST

/* ---- object ---- */

START_TEST(test_init_clone_copy)
{
    ad_s2s_config cfg = case_config(_i);
    ad_s2s *a = NULL, *b = NULL, *c = NULL, *cl;
    char err[256] = "";

    ck_assert_int_eq(ad_s2s_create(&cfg, 7, &a, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_create(&cfg, 7, &b, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_create(&cfg, 8, &c, err, sizeof(err)), 0);
    ck_assert_mem_eq(a->params, b->params, a->nparams * sizeof(float));
    ck_assert(memcmp(a->params, c->params, a->nparams * sizeof(float)) != 0);
    /* the two halves are initialised differently */
    ck_assert(memcmp(a->enc.p.layer[0].wh, a->dec.p.layer[0].wh,
                     (size_t)ref_cell_gates(cfg.kind) * NH * NH * sizeof(float)) != 0);
    /* forget-gate biases start at 1 in both halves (net.h's init) */
    if (cfg.kind == AD_CELL_LSTM) {
        ck_assert_float_eq(a->enc.p.layer[0].b[NH], 1.0f);
        ck_assert_float_eq(a->dec.p.layer[0].b[NH], 1.0f);
    }
    ad_s2s_init(c, 7);
    ck_assert_mem_eq(a->params, c->params, a->nparams * sizeof(float));

    cl = ad_s2s_clone(a);
    ck_assert_ptr_nonnull(cl);
    ck_assert_ptr_ne(cl->params, a->params);
    ck_assert_ptr_eq(cl->enc.params, cl->params);
    ck_assert_ptr_eq(cl->dec.params, cl->params + cl->enc.nparams);
    ck_assert_ptr_eq(cl->dec.p.by, cl->params + cl->nparams - ND);
    ck_assert_mem_eq(cl->params, a->params, a->nparams * sizeof(float));
    a->params[0] += 1.0f;
    ck_assert(cl->params[0] != a->params[0]);
    ck_assert_int_eq(ad_s2s_copy_params(cl, a), 0);
    ck_assert_mem_eq(cl->params, a->params, a->nparams * sizeof(float));

    /* copy between shapes is refused and changes nothing */
    ad_s2s_config other = cfg;
    other.window = NL + 1; /* same parameter count, other shape */
    ad_s2s *d = NULL;
    ck_assert_int_eq(ad_s2s_create(&other, 1, &d, err, sizeof(err)), 0);
    ck_assert_uint_eq(d->nparams, a->nparams);
    ck_assert_int_eq(ad_s2s_copy_params(d, a), -AD_EINVAL);
    ck_assert(memcmp(d->params, a->params, a->nparams * sizeof(float)) != 0);
    ad_s2s_free(d);
    ad_s2s_free(a);
    ad_s2s_free(b);
    ad_s2s_free(c);
    ad_s2s_free(cl);
}
END_TEST

/* ---- refusals ---- */

static void expect_refused(ad_s2s_config cfg, const char *what, const char *word)
{
    char err[256] = "";
    ad_s2s *m = (ad_s2s *)&err; /* must be set to NULL */

    ck_assert_msg(ad_s2s_config_check(&cfg, err, sizeof(err)) == -AD_EINVAL, "%s accepted", what);
    ck_assert_msg(strstr(err, word) != NULL, "%s: message \"%s\" does not say \"%s\"", what, err,
                  word);
    ck_assert_int_eq(ad_s2s_config_check(&cfg, NULL, 0), -AD_EINVAL);
    ck_assert_uint_eq(ad_s2s_param_count(&cfg), 0);
    err[0] = '\0';
    ck_assert_msg(ad_s2s_create(&cfg, 1, &m, err, sizeof(err)) == -AD_EINVAL, "%s created", what);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, word) != NULL, "%s: ad_s2s_create says \"%s\"", what, err);
}

START_TEST(test_refuses_bad_configs)
{
    const ad_s2s_config ok = {AD_CELL_LSTM, 2, 3, 8, 10};
    ad_s2s_config c;
    char err[256] = "";

    ck_assert_int_eq(ad_s2s_config_check(&ok, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_config_check(NULL, err, sizeof(err)), -AD_EINVAL);
    c = ok, c.kind = AD_CELL_NKINDS;
    expect_refused(c, "kind NKINDS", "kind");
    c = ok, c.kind = (ad_cell_kind)-1;
    expect_refused(c, "kind -1", "kind");
    c = ok, c.layers = 0;
    expect_refused(c, "layers 0", "layers");
    c = ok, c.layers = AD_MAX_LAYERS + 1;
    expect_refused(c, "layers too many", "layers");
    c = ok, c.input = 0;
    expect_refused(c, "input 0", "input");
    c = ok, c.input = AD_MAX_INPUT + 1;
    expect_refused(c, "input too large", "input");
    c = ok, c.hidden = 0;
    expect_refused(c, "hidden 0", "hidden");
    c = ok, c.hidden = AD_MAX_HIDDEN + 1;
    expect_refused(c, "hidden too large", "hidden");
    c = ok, c.window = 0;
    expect_refused(c, "window 0", "window");
    c = ok, c.window = AD_S2S_MAX_WINDOW + 1;
    expect_refused(c, "window too long", "window");
    /* the limits are valid */
    c = ok, c.window = 1;
    ck_assert_int_eq(ad_s2s_config_check(&c, err, sizeof(err)), 0);
    c = ok, c.window = AD_S2S_MAX_WINDOW, c.input = AD_MAX_INPUT, c.layers = AD_MAX_LAYERS;
    ck_assert_int_eq(ad_s2s_config_check(&c, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_refuses_bad_arguments)
{
    ad_s2s_config cfg = {AD_CELL_LSTM, 1, 1, 4, 8}, cfg2 = cfg;
    ad_s2s *m = NULL, *m2 = NULL;
    ad_s2s_ws *ws = NULL, *ws2 = NULL;
    ad_s2s_scorer *scr = NULL;
    ad_optim *opt, *opt_small;
    ad_train_opts o;
    float x[100] = {0}, loss = -1.0f, mean;
    double mse;
    char err[256] = "";

    cfg2.window = 9;
    ck_assert_int_eq(ad_s2s_create(&cfg, 1, &m, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_create(&cfg2, 1, &m2, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_ws_create(m, 0, &ws, err, sizeof(err)), -AD_EINVAL);
    ck_assert_ptr_null(ws);
    ck_assert_ptr_nonnull(strstr(err, "B"));
    ck_assert_int_eq(ad_s2s_ws_create(m, 4, &ws, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_ws_create(m2, 4, &ws2, err, sizeof(err)), 0);
    ck_assert_uint_gt(ad_s2s_ws_bytes(ws), 0);
    opt = ad_optim_create(AD_OPTIM_ADAM, m->nparams, 0.01f);
    opt_small = ad_optim_create(AD_OPTIM_ADAM, m->nparams - 1, 0.01f);
    ck_assert(opt && opt_small);

    /* batched forward: too many windows, or a workspace of another shape */
    ck_assert_ptr_null(ad_s2s_forward(m, ws, x, 5));
    ck_assert_ptr_null(ad_s2s_forward(m, ws, x, 0));
    ck_assert_ptr_null(ad_s2s_forward(m, ws2, x, 1));
    ck_assert_ptr_nonnull(ad_s2s_forward(m, ws, x, 4));

    ad_train_defaults(&o);
    o.window = 8;
    o.batch = 4;
    ck_assert_int_eq(ad_s2s_train(m, opt, ws, x, 100, &o, &loss, err, sizeof(err)), 0);
#define REFUSED(call, word)                                                                        \
    do {                                                                                           \
        err[0] = '\0';                                                                             \
        ck_assert_int_eq((call), -AD_EINVAL);                                                      \
        ck_assert_msg(strstr(err, word) != NULL, #call ": message \"%s\"", err);                   \
    } while (0)
    REFUSED(ad_s2s_train(m, opt, ws, x, 7, &o, &loss, err, sizeof(err)), "window of 8");
    REFUSED(ad_s2s_train(m, opt_small, ws, x, 100, &o, &loss, err, sizeof(err)), "optimiser");
    REFUSED(ad_s2s_train(m, opt, ws2, x, 100, &o, &loss, err, sizeof(err)), "shape");
    o.batch = 5;
    REFUSED(ad_s2s_train(m, opt, ws, x, 100, &o, &loss, err, sizeof(err)), "batch");
    o.batch = 0;
    REFUSED(ad_s2s_train(m, opt, ws, x, 100, &o, &loss, err, sizeof(err)), "batch");
    o.batch = 4, o.window = 7;
    REFUSED(ad_s2s_train(m, opt, ws, x, 100, &o, &loss, err, sizeof(err)), "window");
#undef REFUSED

    ck_assert_int_eq(ad_s2s_eval(m, ws, x, 7, 1, &mse), -AD_EINVAL);
    ck_assert_int_eq(ad_s2s_eval(m, ws, x, 100, 0, &mse), -AD_EINVAL);
    ck_assert_int_eq(ad_s2s_eval(m, ws2, x, 100, 1, &mse), -AD_EINVAL);
    ck_assert_int_eq(ad_s2s_eval(m, ws, x, 100, 1, &mse), 0);

    /* a scorer made for another shape */
    ck_assert_int_eq(ad_s2s_scorer_create(m2, &scr, err, sizeof(err)), 0);
    ck_assert_int_eq(ad_s2s_score(m, scr, x, NULL, NULL, &mean), -AD_EINVAL);
    ck_assert_int_eq(ad_s2s_score(m2, scr, x, NULL, NULL, &mean), 0);

    ad_s2s_scorer_free(scr);
    ad_optim_free(opt);
    ad_optim_free(opt_small);
    ad_s2s_ws_free(ws);
    ad_s2s_ws_free(ws2);
    ad_s2s_free(m);
    ad_s2s_free(m2);
    ad_s2s_free(NULL);
    ad_s2s_ws_free(NULL);
    ad_s2s_scorer_free(NULL);
}
END_TEST

static Suite *s2s_suite(void)
{
    Suite *s = suite_create("seq2seq");
    TCase *tc;

    tc = tcase_create("layout");
    tcase_add_loop_test(tc, test_layout, 0, NCASES);
    tcase_add_loop_test(tc, test_init_clone_copy, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("forward");
    tcase_add_loop_test(tc, test_forward_reference_gemm, 0, NCASES);
    tcase_add_loop_test(tc, test_forward_openblas, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("grad");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_grad_reference_gemm, 0, NCASES);
    tcase_add_loop_test(tc, test_grad_openblas, 0, NCASES);
    tcase_add_loop_test(tc, test_backward_adds, 0, NCASES);
    tcase_add_test(tc, test_checker_has_teeth);
    suite_add_tcase(s, tc);

    tc = tcase_create("score");
    tcase_add_loop_test(tc, test_score_equals_forward_reference_gemm, 0, NCASES);
    tcase_add_loop_test(tc, test_score_near_forward_openblas, 0, NCASES);
    tcase_add_loop_test(tc, test_eval_is_mean_of_scores, 0, NCASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("learning");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_spike_reconstructs_badly, 0, AD_CELL_NKINDS);
    tcase_add_test(tc, test_train_deterministic);
    suite_add_tcase(s, tc);

    tc = tcase_create("refusals");
    tcase_add_test(tc, test_refuses_bad_configs);
    tcase_add_test(tc, test_refuses_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(s2s_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
