/*
 * optim.h - optimisers over one flat parameter buffer: Adam and SGD, plus gradient-norm
 * clipping (the answer to exploding gradients in BPTT).
 *
 * An optimiser owns its moment buffers (Adam: m and v, nparams floats each) and its step
 * count, so it can be saved with the network (serial.h) and training resumes exactly.
 */
#ifndef AD_OPTIM_H
#define AD_OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum ad_optim_kind { AD_OPTIM_SGD = 0, AD_OPTIM_ADAM = 1 } ad_optim_kind;

/* "sgd" or "adam"; NULL for an unknown kind. */
const char *ad_optim_name(ad_optim_kind kind);
/* The kind's code in blobs (serial.h): fixed by optim.c's table, never by the enum's
 * order (tests/check_serial.c pins them). UINT32_MAX for an unknown kind. */
uint32_t ad_optim_code(ad_optim_kind kind);
/* Kind of a stored code; -1 if no kind has it. */
int ad_optim_from_code(uint32_t code);

typedef struct ad_optim {
    ad_optim_kind kind;
    size_t n;           /* parameters it updates */
    float lr;           /* learning rate */
    float beta1;        /* Adam first-moment decay (0.9) */
    float beta2;        /* Adam second-moment decay (0.999) */
    float eps;          /* Adam denominator guard (1e-8) */
    float weight_decay; /* L2 added to the gradient (0 = off) */
    long long t;        /* steps taken */
    float *m;           /* (n) Adam first moments, NULL for SGD */
    float *v;           /* (n) Adam second moments, NULL for SGD */
} ad_optim;

/* Allocates an optimiser for n parameters with the usual defaults. NULL on allocation
 * failure or an unknown kind. */
ad_optim *ad_optim_create(ad_optim_kind kind, size_t n, float lr);
void ad_optim_free(ad_optim *o);
/* Forgets the moments and the step count. */
void ad_optim_reset(ad_optim *o);
size_t ad_optim_bytes(const ad_optim *o);

/* One update: params -= step(grad). grad is read only. */
void ad_optim_step(ad_optim *o, float *params, const float *grad);

/*
 * Scales grad in place so its L2 norm is at most max_norm (no-op if max_norm <= 0).
 * Returns the norm before clipping. A non-finite norm zeroes the gradient (the step is
 * skipped rather than poisoning the weights) and is returned as is.
 */
float ad_clip_grad_norm(float *grad, size_t n, float max_norm);

#endif
