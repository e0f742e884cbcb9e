/*
 * optim.c - Adam and SGD over one flat buffer, and global gradient-norm clipping.
 */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One row per kind: its code in blobs (fixed for good) and its name. */
static const struct {
    ad_optim_kind kind;
    uint32_t code;
    const char *name;
} kinds[] = {
    {AD_OPTIM_SGD, 0, "sgd"},
    {AD_OPTIM_ADAM, 1, "adam"},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

const char *ad_optim_name(ad_optim_kind kind)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (kinds[i].kind == kind)
            return kinds[i].name;
    return NULL;
}

uint32_t ad_optim_code(ad_optim_kind kind)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (kinds[i].kind == kind)
            return kinds[i].code;
    return UINT32_MAX;
}

int ad_optim_from_code(uint32_t code)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (kinds[i].code == code)
            return (int)kinds[i].kind;
    return -1;
}

ad_optim *ad_optim_create(ad_optim_kind kind, size_t n, float lr)
{
    ad_optim *o;
    if (kind != AD_OPTIM_SGD && kind != AD_OPTIM_ADAM)
        return NULL;
    o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->kind = kind;
    o->n = n;
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    if (kind == AD_OPTIM_ADAM) {
        o->m = calloc(n ? n : 1, sizeof(*o->m));
        o->v = calloc(n ? n : 1, sizeof(*o->v));
        if (!o->m || !o->v)
            goto out_free;
    }
    return o;

out_free:
    ad_optim_free(o);
    return NULL;
}

void ad_optim_free(ad_optim *o)
{
    if (!o)
        return;
    free(o->m);
    free(o->v);
    free(o);
}

void ad_optim_reset(ad_optim *o)
{
    o->t = 0;
    if (o->m)
        memset(o->m, 0, o->n * sizeof(*o->m));
    if (o->v)
        memset(o->v, 0, o->n * sizeof(*o->v));
}

size_t ad_optim_bytes(const ad_optim *o)
{
    return sizeof(*o) + (o->m ? 2 * o->n * sizeof(float) : 0);
}

void ad_optim_step(ad_optim *o, float *params, const float *grad)
{
    const float lr = o->lr, wd = o->weight_decay;
    o->t++;
    if (o->kind == AD_OPTIM_SGD) {
        for (size_t i = 0; i < o->n; i++)
            params[i] -= lr * (grad[i] + wd * params[i]);
        return;
    }
    const float b1 = o->beta1, b2 = o->beta2, eps = o->eps;
    /* bias corrections folded into the step size, as in PyTorch's Adam */
    const double bc1 = 1.0 - pow(b1, (double)o->t);
    const double bc2 = 1.0 - pow(b2, (double)o->t);
    const float step = (float)(lr / bc1);
    const float sbc2 = (float)sqrt(bc2);
    float *m = o->m, *v = o->v;
    for (size_t i = 0; i < o->n; i++) {
        float g = grad[i] + wd * params[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        params[i] -= step * m[i] / (sqrtf(v[i]) / sbc2 + eps);
    }
}

float ad_clip_grad_norm(float *grad, size_t n, float max_norm)
{
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        ss += (double)grad[i] * grad[i];
    float norm = (float)sqrt(ss);
    if (!isfinite(norm)) {
        memset(grad, 0, n * sizeof(*grad));
        return norm;
    }
    if (max_norm > 0.0f && norm > max_norm) {
        float s = max_norm / (norm + 1e-6f);
        for (size_t i = 0; i < n; i++)
            grad[i] *= s;
    }
    return norm;
}
