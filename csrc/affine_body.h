/* The non-GEMM parts of the Affine layer (the GEMMs go through SciPy's BLAS from Cython).
 * Included by fnn_multiversion.h with REAL, ACC, FNN_T, FNN_ISA defined.
 * Serial on purpose: these run right before/after a threaded BLAS call, and OpenMP workers
 * spinning next to OpenBLAS threads slow the GEMM down several times (build-notes.md). */

/* Y[i, :] = b for every row, so that a GEMM with beta = 1 adds X.W on top (bias fused). */
static void FNAME(bias_fill)(const REAL *restrict b, REAL *restrict Y, ptrdiff_t N, ptrdiff_t D)
{
    for (ptrdiff_t i = 0; i < N; i++)
        memcpy(Y + i * D, b, (size_t)D * sizeof(REAL));
}

/* db[j] = sum_i dY[i, j], accumulated in double, rows in order (a fixed summation order).
 * Rows are read contiguously; the column loop vectorises. acc is caller scratch of D doubles. */
static void FNAME(bias_grad)(const REAL *restrict dY, ptrdiff_t N, ptrdiff_t D,
                             REAL *restrict db, double *restrict acc)
{
    for (ptrdiff_t j = 0; j < D; j++) acc[j] = 0.0;
    for (ptrdiff_t i = 0; i < N; i++) {
        const REAL *row = dY + i * D;
        for (ptrdiff_t j = 0; j < D; j++) acc[j] += (ACC)row[j];
    }
    for (ptrdiff_t j = 0; j < D; j++) db[j] = (REAL)acc[j];
}
