/*
 * seq2seq.c - the encoder-decoder model: two networks over one flat parameter buffer,
 * the batched forward and backward that hand the encoder's final state to the decoder
 * (net.h's *_init sequence functions), training, evaluation and one-window scoring.
 */
#include "seq2seq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define ERR(...) ((err && errlen) ? (void)snprintf(err, errlen, __VA_ARGS__) : (void)0)

/* The two halves' network shapes. */
static ad_net_config enc_config(const ad_s2s_config *cfg)
{
    ad_net_config c = {cfg->kind, cfg->layers, cfg->input, cfg->hidden, 1};
    return c;
}

static ad_net_config dec_config(const ad_s2s_config *cfg)
{
    ad_net_config c = {cfg->kind, cfg->layers, cfg->input, cfg->hidden, cfg->input};
    return c;
}

static int same_config(const ad_s2s_config *a, const ad_s2s_config *b)
{
    return a->kind == b->kind && a->layers == b->layers && a->input == b->input &&
           a->hidden == b->hidden && a->window == b->window;
}

int ad_s2s_config_check(const ad_s2s_config *cfg, char *err, size_t errlen)
{
    char msg[160];
    ad_net_config nc;

    if (!cfg) {
        ERR("seq2seq: no configuration");
        return -AD_EINVAL;
    }
    nc = dec_config(cfg);
    if (ad_net_config_check(&nc, msg, sizeof(msg)) != 0) {
        ERR("seq2seq: %s", msg);
        return -AD_EINVAL;
    }
    if (cfg->window < 1 || cfg->window > AD_S2S_MAX_WINDOW) {
        ERR("seq2seq: window must be 1..%d, got %d", AD_S2S_MAX_WINDOW, cfg->window);
        return -AD_EINVAL;
    }
    return 0;
}

size_t ad_s2s_param_count(const ad_s2s_config *cfg)
{
    ad_net_config e, d;
    if (ad_s2s_config_check(cfg, NULL, 0) != 0)
        return 0;
    e = enc_config(cfg);
    d = dec_config(cfg);
    return ad_net_param_count(&e) + ad_net_param_count(&d);
}

/* Makes *net a network of shape cfg over params (not owned). */
static void wrap(ad_net *net, const ad_net_config *cfg, float *params)
{
    memset(net, 0, sizeof(*net));
    net->cfg = *cfg;
    net->nparams = ad_net_param_count(cfg);
    net->params = params;
    ad_net_views(cfg, params, &net->p);
}

void ad_s2s_init(ad_s2s *m, uint64_t seed)
{
    ad_net_init(&m->enc, seed);
    ad_net_init(&m->dec, seed + UINT64_C(0x9E3779B97F4A7C15));
}

int ad_s2s_create(const ad_s2s_config *cfg, uint64_t seed, ad_s2s **out, char *err, size_t errlen)
{
    int rc = ad_s2s_config_check(cfg, err, errlen);
    ad_net_config e, d;
    ad_s2s *m;

    *out = NULL;
    if (rc)
        return rc;
    m = calloc(1, sizeof(*m));
    if (!m)
        goto out_nomem;
    m->cfg = *cfg;
    m->nparams = ad_s2s_param_count(cfg);
    m->params = malloc(m->nparams * sizeof(*m->params));
    if (!m->params)
        goto out_free_m;
    e = enc_config(cfg);
    d = dec_config(cfg);
    wrap(&m->enc, &e, m->params);
    wrap(&m->dec, &d, m->params + m->enc.nparams);
    ad_s2s_init(m, seed);
    *out = m;
    return 0;

out_free_m:
    free(m);
out_nomem:
    ERR("seq2seq: out of memory for a model");
    return -AD_ENOMEM;
}

ad_s2s *ad_s2s_clone(const ad_s2s *src)
{
    ad_s2s *m;
    if (ad_s2s_create(&src->cfg, 0, &m, NULL, 0) != 0)
        return NULL;
    memcpy(m->params, src->params, src->nparams * sizeof(float));
    return m;
}

int ad_s2s_copy_params(ad_s2s *dst, const ad_s2s *src)
{
    if (!same_config(&dst->cfg, &src->cfg) || dst->nparams != src->nparams)
        return -AD_EINVAL;
    memcpy(dst->params, src->params, src->nparams * sizeof(float));
    return 0;
}

void ad_s2s_free(ad_s2s *m)
{
    if (!m)
        return;
    free(m->params);
    free(m);
}

size_t ad_s2s_bytes(const ad_s2s *m)
{
    return sizeof(*m) + m->nparams * sizeof(float);
}

/* ---- batches ---- */

struct ad_s2s_ws {
    ad_s2s_config cfg;
    int bmax;       /* capacity in windows */
    int B;          /* windows of the last forward */
    ad_seq *enc;    /* encoder's sequence workspace (L, bmax) */
    ad_seq *dec;    /* decoder's (L, bmax) */
    size_t nparams; /* model's; the encoder's part comes first */
    float *x;       /* (D, B, L) windows of the last forward (copy; also the target) */
    float *xdec;    /* (D, B, L) decoder inputs, decoder-step order */
    float *rec;     /* (D, B, L) reconstructions aligned with x */
    float *dy;      /* (D, B, L) training: dLoss/d(rec) */
    float *dyd;     /* (D, B, L) dLoss/d(decoder outputs), decoder-step order */
    float *hs, *cs; /* (H, B, layers) encoder's final = decoder's initial state */
    float *dh, *dc; /* (H, B, layers) dLoss/d(decoder's initial state) */
    float *grad;    /* (nparams) */
    float *mem;     /* the one allocation for the float buffers */
    size_t bytes;
};

int ad_s2s_ws_create(const ad_s2s *m, int B, ad_s2s_ws **out, char *err, size_t errlen)
{
    const size_t D = (size_t)m->cfg.input, L = (size_t)m->cfg.window;
    size_t S, X, nfloats;
    ad_s2s_ws *ws;
    float *p;
    int rc;

    *out = NULL;
    if (B < 1 || (size_t)B * L > ((size_t)1 << 24)) {
        ERR("seq2seq: a workspace needs 1 <= B and B*L <= 2^24 (got B=%d, L=%zu)", B, L);
        return -AD_EINVAL;
    }
    S = (size_t)m->cfg.hidden * m->cfg.layers * B; /* a state batch */
    X = D * L * B;                                 /* a batch of windows */
    nfloats = 5 * X + 4 * S + m->nparams;
    ws = calloc(1, sizeof(*ws));
    if (!ws) {
        ERR("seq2seq: out of memory for a B=%d workspace", B);
        return -AD_ENOMEM;
    }
    ws->cfg = m->cfg;
    ws->bmax = B;
    ws->nparams = m->nparams;
    rc = ad_seq_create(&m->enc, (int)L, B, &ws->enc, err, errlen);
    if (rc)
        goto out_free_ws;
    rc = ad_seq_create(&m->dec, (int)L, B, &ws->dec, err, errlen);
    if (rc)
        goto out_free_enc;
    ws->mem = calloc(nfloats, sizeof(float));
    if (!ws->mem) {
        ERR("seq2seq: out of memory for a B=%d workspace", B);
        rc = -AD_ENOMEM;
        goto out_free_dec;
    }
    p = ws->mem;
    ws->x = p, p += X;
    ws->xdec = p, p += X;
    ws->rec = p, p += X;
    ws->dy = p, p += X;
    ws->dyd = p, p += X;
    ws->hs = p, p += S;
    ws->cs = p, p += S;
    ws->dh = p, p += S;
    ws->dc = p, p += S;
    ws->grad = p;
    ws->bytes =
        sizeof(*ws) + nfloats * sizeof(float) + ad_seq_bytes(ws->enc) + ad_seq_bytes(ws->dec);
    *out = ws;
    return 0;

out_free_dec:
    ad_seq_free(ws->dec);
out_free_enc:
    ad_seq_free(ws->enc);
out_free_ws:
    free(ws);
    return rc;
}

void ad_s2s_ws_free(ad_s2s_ws *ws)
{
    if (!ws)
        return;
    ad_seq_free(ws->enc);
    ad_seq_free(ws->dec);
    free(ws->mem);
    free(ws);
}

size_t ad_s2s_ws_bytes(const ad_s2s_ws *ws)
{
    return ws->bytes;
}

float *ad_s2s_grad(ad_s2s_ws *ws)
{
    return ws->grad;
}

void ad_s2s_zero_grad(ad_s2s_ws *ws)
{
    memset(ws->grad, 0, ws->nparams * sizeof(float));
}

/* Forward of the B windows already in ws->x; returns ws->rec. */
static const float *forward_windows(const ad_s2s *m, ad_s2s_ws *ws, int B)
{
    const int L = m->cfg.window;
    const size_t DB = (size_t)m->cfg.input * B;
    const int has_c = ad_cell_has_c(m->cfg.kind);
    const float *yd;

    ws->B = B;
    if (!ad_seq_forward(&m->enc, ws->enc, ws->x, L, B))
        return NULL;
    ad_seq_final_states(ws->enc, ws->hs, has_c ? ws->cs : NULL);
    /* decoder inputs: step 0 zero, step s >= 1 the true x_{L-s} */
    memset(ws->xdec, 0, DB * sizeof(float));
    for (int s = 1; s < L; s++)
        memcpy(ws->xdec + DB * s, ws->x + DB * (L - s), DB * sizeof(float));
    yd = ad_seq_forward_init(&m->dec, ws->dec, ws->xdec, L, B, ws->hs, has_c ? ws->cs : NULL);
    if (!yd)
        return NULL;
    /* decoder step s reconstructs position L-1-s */
    for (int s = 0; s < L; s++)
        memcpy(ws->rec + DB * (L - 1 - s), yd + DB * s, DB * sizeof(float));
    return ws->rec;
}

const float *ad_s2s_forward(const ad_s2s *m, ad_s2s_ws *ws, const float *x, int B)
{
    if (B < 1 || B > ws->bmax || !same_config(&m->cfg, &ws->cfg))
        return NULL;
    memcpy(ws->x, x, (size_t)m->cfg.input * B * m->cfg.window * sizeof(float));
    return forward_windows(m, ws, B);
}

void ad_s2s_backward(const ad_s2s *m, ad_s2s_ws *ws, const float *dy)
{
    const int L = m->cfg.window, B = ws->B;
    const size_t DB = (size_t)m->cfg.input * B, ne = m->enc.nparams;
    const int has_c = ad_cell_has_c(m->cfg.kind);
    const float *g;

    for (int s = 0; s < L; s++)
        memcpy(ws->dyd + DB * s, dy + DB * (L - 1 - s), DB * sizeof(float));
    /* decoder: from its outputs back to its initial state */
    ad_seq_zero_grad(ws->dec);
    ad_seq_backward_init(&m->dec, ws->dec, ws->dyd, NULL, NULL, NULL, ws->dh,
                         has_c ? ws->dc : NULL);
    /* encoder: only through its final state (its head is unused) */
    ad_seq_zero_grad(ws->enc);
    ad_seq_backward_init(&m->enc, ws->enc, NULL, NULL, ws->dh, has_c ? ws->dc : NULL, NULL, NULL);

    g = ad_seq_grad(ws->enc);
    for (size_t k = 0; k < ne; k++)
        ws->grad[k] += g[k];
    g = ad_seq_grad(ws->dec);
    for (size_t k = 0; k < m->dec.nparams; k++)
        ws->grad[ne + k] += g[k];
}

/* Copies windows starts[0..B) of (D, n) data into ws->x, time-major (D, B, L). */
static void gather(ad_s2s_ws *ws, const float *x, const size_t *starts, int B)
{
    const int D = ws->cfg.input, L = ws->cfg.window;
    for (int t = 0; t < L; t++)
        for (int b = 0; b < B; b++)
            memcpy(ws->x + (size_t)D * (b + (size_t)B * t), x + (size_t)D * (starts[b] + t),
                   (size_t)D * sizeof(float));
}

int ad_s2s_train(ad_s2s *m, ad_optim *opt, ad_s2s_ws *ws, const float *x, size_t n,
                 const ad_train_opts *o, float *loss, char *err, size_t errlen)
{
    const int L = m->cfg.window, B = o->batch;
    const size_t stride = o->stride > 0 ? (size_t)o->stride : (size_t)(L > 1 ? L / 2 : 1);
    const size_t DL = (size_t)m->cfg.input * L;
    double epoch_loss = 0.0;
    size_t nwin, *starts;
    ad_rng rng;

    if (!same_config(&m->cfg, &ws->cfg)) {
        ERR("seq2seq: workspace was made for another shape");
        return -AD_EINVAL;
    }
    if (o->window != 0 && o->window != L) {
        ERR("seq2seq: training window %d differs from the model's window %d", o->window, L);
        return -AD_EINVAL;
    }
    if (B < 1 || B > ws->bmax || o->epochs < 0) {
        ERR("seq2seq: batch must be 1..%d (the workspace's), epochs >= 0; got %d, %d", ws->bmax, B,
            o->epochs);
        return -AD_EINVAL;
    }
    if (n < (size_t)L) {
        ERR("seq2seq: training needs at least one window of %d samples, got %zu", L, n);
        return -AD_EINVAL;
    }
    if (opt->n != m->nparams) {
        ERR("seq2seq: optimiser is for %zu parameters, model has %zu", opt->n, m->nparams);
        return -AD_EINVAL;
    }
    nwin = (n - (size_t)L) / stride + 1;
    starts = malloc(nwin * sizeof(*starts));
    if (!starts) {
        ERR("seq2seq: out of memory for %zu training windows", nwin);
        return -AD_ENOMEM;
    }
    ad_rng_seed(&rng, o->seed);
    for (int e = 0; e < o->epochs; e++) {
        size_t batches = 0;
        ad_shuffled_starts(starts, nwin, stride, &rng);
        epoch_loss = 0.0;
        for (size_t i = 0; i < nwin; i += (size_t)B) {
            const int bn = nwin - i < (size_t)B ? (int)(nwin - i) : B;
            const float *rec;
            gather(ws, x, starts + i, bn);
            rec = forward_windows(m, ws, bn);
            epoch_loss += ad_mse(rec, ws->x, DL * bn, ws->dy);
            ad_s2s_zero_grad(ws);
            ad_s2s_backward(m, ws, ws->dy);
            ad_clip_grad_norm(ws->grad, m->nparams, o->clip);
            ad_optim_step(opt, m->params, ws->grad);
            batches++;
        }
        epoch_loss /= (double)(batches ? batches : 1);
    }
    if (loss)
        *loss = (float)epoch_loss;
    free(starts);
    return 0;
}

int ad_s2s_eval(const ad_s2s *m, ad_s2s_ws *ws, const float *x, size_t n, int stride, double *mse)
{
    const int L = m->cfg.window;
    const size_t DL = (size_t)m->cfg.input * L;
    size_t starts[64], nwin, done = 0;
    double ss = 0.0;

    if (!same_config(&m->cfg, &ws->cfg) || n < (size_t)L || stride < 1)
        return -AD_EINVAL;
    nwin = (n - (size_t)L) / (size_t)stride + 1;
    while (done < nwin) {
        int bn = ws->bmax < 64 ? ws->bmax : 64;
        if ((size_t)bn > nwin - done)
            bn = (int)(nwin - done);
        for (int b = 0; b < bn; b++)
            starts[b] = (done + (size_t)b) * (size_t)stride;
        gather(ws, x, starts, bn);
        const float *rec = forward_windows(m, ws, bn);
        ss += (double)ad_mse(rec, ws->x, DL * bn, NULL) * bn;
        done += (size_t)bn;
    }
    *mse = ss / (double)nwin;
    return 0;
}

/* ---- scoring ---- */

struct ad_s2s_scorer {
    ad_s2s_config cfg;
    ad_state *st; /* encoder's rolling state, then the decoder's */
};

int ad_s2s_scorer_create(const ad_s2s *m, ad_s2s_scorer **out, char *err, size_t errlen)
{
    ad_s2s_scorer *sc = calloc(1, sizeof(*sc));

    *out = NULL;
    if (!sc)
        goto out_nomem;
    sc->cfg = m->cfg;
    sc->st = ad_state_create(&m->enc);
    if (!sc->st)
        goto out_free_sc;
    *out = sc;
    return 0;

out_free_sc:
    free(sc);
out_nomem:
    ERR("seq2seq: out of memory for a scorer");
    return -AD_ENOMEM;
}

void ad_s2s_scorer_free(ad_s2s_scorer *sc)
{
    if (!sc)
        return;
    ad_state_free(sc->st);
    free(sc);
}

size_t ad_s2s_scorer_bytes(const ad_s2s_scorer *sc)
{
    return sizeof(*sc) + ad_state_bytes(sc->st);
}

int ad_s2s_score(const ad_s2s *m, ad_s2s_scorer *sc, const float *x, float *recon, float *err,
                 float *mean)
{
    const int D = m->cfg.input, L = m->cfg.window;
    float zero[AD_MAX_INPUT] = {0}, y[AD_MAX_INPUT], unused;
    double sum = 0.0;

    if (!same_config(&m->cfg, &sc->cfg))
        return -AD_EINVAL;
    ad_state_reset(sc->st);
    for (int t = 0; t < L; t++)
        ad_net_step(&m->enc, sc->st, x + (size_t)D * t, &unused);
    /* the encoder's final state is the decoder's initial state: keep stepping sc->st */
    for (int s = 0; s < L; s++) {
        const int t = L - 1 - s; /* the position step s reconstructs */
        double e = 0.0;
        ad_net_step(&m->dec, sc->st, s == 0 ? zero : x + (size_t)D * (t + 1), y);
        for (int d = 0; d < D; d++) {
            double r = (double)y[d] - x[(size_t)D * t + d];
            e += r * r;
        }
        e /= D;
        sum += e;
        if (recon)
            memcpy(recon + (size_t)D * t, y, (size_t)D * sizeof(float));
        if (err)
            err[t] = (float)e;
    }
    if (mean)
        *mean = (float)(sum / L);
    return 0;
}
