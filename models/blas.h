/*
 * blas.h - the one place the models library multiplies matrices.
 *
 * All products go through ad_gemm, which calls OpenBLAS's cblas_sgemm, or, when the
 * reference kernel is selected, a plain C triple loop that adds each product term into
 * C in increasing k, exactly like the streaming step does. Matrices are column-major.
 */
#ifndef AD_BLAS_H
#define AD_BLAS_H

/*
 * C (M, N) = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T (ta/tb nonzero = transpose).
 * op(A) is (M, K), op(B) is (K, N); lda, ldb, ldc are the column strides of the stored
 * (untransposed) matrices. beta == 0 overwrites C without reading it.
 */
void ad_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
             const float *B, int ldb, float beta, float *C, int ldc);

/* Selects the plain C kernel (1) or OpenBLAS (0, the default). Not thread-safe: set it
 * before work starts (tests use it to make sequence and step results bit-identical). */
void ad_blas_set_reference(int on);
int ad_blas_reference(void);

/* Threads OpenBLAS may use inside one product (the daemon's training workers use 1: the
 * work is already spread over workers). */
void ad_blas_set_threads(int n);

/* The BLAS in use and the kernel it picked for this CPU, for benchmark reports. */
const char *ad_blas_name(void);

#endif
