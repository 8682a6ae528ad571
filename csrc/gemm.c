#include "gemm.h"

/* One BLAS call. A row-major matrix is the column-major transpose, so the column-major BLAS
 * computes C^T = op(B)^T op(A)^T: the operands swap. */
static void gemm_call(const fnn_blas *blas, int dbl, int ta, int tb, int m, int n, int k,
                      double alpha, const void *A, int lda, const void *B, int ldb, double beta,
                      void *C, int ldc)
{
    char cta = tb ? 'T' : 'N', ctb = ta ? 'T' : 'N';
    if (dbl) {
        blas->dgemm(&cta, &ctb, &n, &m, &k, &alpha, (double *)B, &ldb, (double *)A, &lda, &beta,
                    (double *)C, &ldc);
    } else {
        float af = (float)alpha, bf = (float)beta;
        blas->sgemm(&cta, &ctb, &n, &m, &k, &af, (float *)B, &ldb, (float *)A, &lda, &bf,
                    (float *)C, &ldc);
    }
}

/* Start of part i of n equal parts of [0, len); the largest part is ceil(len / n). */
static int part_start(int len, int i, int n)
{
    return (int)((long long)len * i / n);
}

static int ceil_div(int a, int b)
{
    return (a + b - 1) / b;
}

void fnn_gemm(const fnn_blas *blas, int dbl, int ta, int tb, int m, int n, int k, double alpha,
              const void *A, int lda, const void *B, int ldb, double beta, void *C, int ldc)
{
    const double mnk = (double)m * n * k, limit = blas->small_mnk;
    /* OpenBLAS's small kernels take column-major NN and NT (here: B not transposed); TN only
     * for a tiny C, TT never */
    if (!blas->split || limit < 1 || tb || mnk <= limit || mnk > FNN_GEMM_SPLIT_MAX) {
        gemm_call(blas, dbl, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* parts per dimension: one more part for the largest block's, until a block fits */
    int pm = 1, pn = 1, pk = 1, bm = m, bn = n, bk = k;
    while ((double)bm * bn * bk > limit) {
        if (bk >= bm && bk >= bn) bk = ceil_div(k, ++pk);
        else if (bm >= bn) bm = ceil_div(m, ++pm);
        else bn = ceil_div(n, ++pn);
    }
    const size_t item = dbl ? sizeof(double) : sizeof(float);
    for (int a = 0; a < pk; a++) {            /* the k blocks in order, each over all of C */
        const int k0 = part_start(k, a, pk), k1 = part_start(k, a + 1, pk);
        for (int b = 0; b < pm; b++) {
            const int m0 = part_start(m, b, pm), m1 = part_start(m, b + 1, pm);
            for (int c = 0; c < pn; c++) {
                const int n0 = part_start(n, c, pn), n1 = part_start(n, c + 1, pn);
                const char *Ab = (const char *)A
                    + (ta ? (size_t)k0 * lda + m0 : (size_t)m0 * lda + k0) * item;
                const char *Bb = (const char *)B + ((size_t)k0 * ldb + n0) * item;
                char *Cb = (char *)C + ((size_t)m0 * ldc + n0) * item;
                gemm_call(blas, dbl, ta, 0, m1 - m0, n1 - n0, k1 - k0, alpha, Ab, lda, Bb, ldb,
                          a == 0 ? beta : 1.0, Cb, ldc);
            }
        }
    }
}

int fnn_gemm_bt_scratch(const fnn_blas *blas, int m, int n, int k)
{
    const double mnk = (double)m * n * k;
    return blas->split && m >= FNN_GEMM_BT_MIN_ROWS && mnk > 0 && mnk <= blas->small_mnk;
}

/* Bt (k x n, contiguous) = B^T, B n x k with row stride ldb; in square tiles, which keep the
 * lines of both sides in L1 (a row-by-row copy writes a new line of Bt for every element). */
#define FNN_TRANSPOSE(REAL)                                                                  \
    for (int i0 = 0; i0 < n; i0 += tile) {                                                   \
        const int i1 = i0 + tile < n ? i0 + tile : n;                                        \
        for (int j0 = 0; j0 < k; j0 += tile) {                                               \
            const int j1 = j0 + tile < k ? j0 + tile : k;                                    \
            for (int j = j0; j < j1; j++)                                                    \
                for (int i = i0; i < i1; i++)                                                \
                    ((REAL *)Bt)[(size_t)j * n + i] = ((const REAL *)B)[(size_t)i * ldb + j]; \
        }                                                                                    \
    }
static void transpose(int dbl, int n, int k, const void *B, int ldb, void *Bt)
{
    enum { tile = 16 };
    if (dbl) {
        FNN_TRANSPOSE(double)
    } else {
        FNN_TRANSPOSE(float)
    }
}
#undef FNN_TRANSPOSE

void fnn_gemm_bt(const fnn_blas *blas, int dbl, int m, int n, int k, double alpha, const void *A,
                 int lda, const void *B, int ldb, double beta, void *C, int ldc, void *scratch)
{
    if (scratch == NULL || !fnn_gemm_bt_scratch(blas, m, n, k)) {
        fnn_gemm(blas, dbl, 0, 1, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    transpose(dbl, n, k, B, ldb, scratch);
    fnn_gemm(blas, dbl, 0, 0, m, n, k, alpha, A, lda, scratch, n, beta, C, ldc);
}

int fnn_gemm_blas_single(const fnn_blas *blas)
{
    return blas->get_threads != NULL && blas->get_threads() == 1;
}
