/*
 * blas.c - the only file that calls cblas_*: ad_gemm over OpenBLAS, and its plain C
 * reference kernel.
 */
#include "blas.h"

#include <cblas.h>
#include <stdio.h>

/* OpenBLAS extensions (declared here: not every cblas.h has them) */
char *openblas_get_config(void);
char *openblas_get_corename(void);

static int use_reference;

const char *ad_blas_name(void)
{
    static char name[160];
    if (!name[0]) /* the first call is made before any thread starts (benchmarks only) */
        snprintf(name, sizeof(name), "%s, core %s", openblas_get_config(), openblas_get_corename());
    return name;
}

void ad_blas_set_reference(int on)
{
    use_reference = on != 0;
}

int ad_blas_reference(void)
{
    return use_reference;
}

/* C[i,j] = beta*C[i,j] + alpha * sum_k op(A)[i,k] op(B)[k,j], terms added in increasing k. */
static void gemm_ref(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                     const float *B, int ldb, float beta, float *C, int ldc)
{
    for (int j = 0; j < N; j++) {
        float *c = C + (size_t)j * ldc;
        if (beta == 0.0f) {
            for (int i = 0; i < M; i++)
                c[i] = 0.0f;
        } else if (beta != 1.0f) {
            for (int i = 0; i < M; i++)
                c[i] *= beta;
        }
        for (int k = 0; k < K; k++) {
            float bkj = tb ? B[j + (size_t)k * ldb] : B[k + (size_t)j * ldb];
            bkj *= alpha;
            if (!ta) {
                const float *a = A + (size_t)k * lda;
                for (int i = 0; i < M; i++)
                    c[i] += a[i] * bkj;
            } else {
                for (int i = 0; i < M; i++)
                    c[i] += A[k + (size_t)i * lda] * bkj;
            }
        }
    }
}

void ad_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        gemm_ref(ta, tb, M, N, 0, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    if (use_reference) {
        gemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ad_blas_set_threads(int n)
{
    openblas_set_num_threads(n < 1 ? 1 : n);
}
