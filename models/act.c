/*
 * act.c - array versions of the activations in act.h (written as plain loops so the
 * compiler vectorises them).
 */
#include "act.h"

void ad_sigmoid_v(float *x, int n)
{
    for (int i = 0; i < n; i++)
        x[i] = ad_sigmoidf(x[i]);
}

void ad_tanh_v(float *x, int n)
{
    for (int i = 0; i < n; i++)
        x[i] = ad_tanhf(x[i]);
}
