/* The non-GEMM parts of the Affine layer (the GEMMs go through SciPy's BLAS from Cython).
 * Included by fnn_multiversion.h with REAL, ACC, FNN_T, FNN_ISA defined.
 * Serial on purpose: these run right before/after a threaded BLAS call, and OpenMP workers
 * spinning next to OpenBLAS threads slow the GEMM down several times (build-notes.md). */

/* Y[i, :] = b for every row, so that a GEMM with beta = 1 adds X.W on top (bias fused).
 * A vectorised loop, not a memcpy per row: rows of a few hundred bytes spend more in the call
 * than in the copy (100x100: 0.6 against 2.3 us, float32, in L2). */
FNN_KEEP_COPY_LOOPS
static void FNAME(bias_fill)(const REAL *restrict b, REAL *restrict Y, ptrdiff_t N, ptrdiff_t D)
{
    for (ptrdiff_t i = 0; i < N; i++) {
        REAL *restrict y = Y + i * D;
        for (ptrdiff_t j = 0; j < D; j++)
            y[j] = b[j];
    }
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
