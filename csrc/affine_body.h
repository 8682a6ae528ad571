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

#if defined(__AVX512F__)
/* bias_grad of NU units of 8 columns from column jb, the sums in registers down all the rows
 * (the loop below keeps them in acc and ends each row with a scalar tail); `last`: the lanes
 * of the last unit. The same additions in the same order. */
static inline __attribute__((always_inline)) void FNAME(bias_grad_units)(
        const REAL *dY, ptrdiff_t N, ptrdiff_t D, const int NU, __mmask8 last, REAL *db)
{
    __m512d s[FNN_UNIT_BLOCK];
    for (int u = 0; u < NU; u++)
        s[u] = _mm512_setzero_pd();
    for (ptrdiff_t i = 0; i < N; i++)
        for (int u = 0; u < NU; u++)
            s[u] = _mm512_add_pd(s[u], FNN_UNIT_LOAD(dY + i * D + 8 * u,
                                                     u == NU - 1 ? last : 0xFF));
    for (int u = 0; u < NU; u++) {
        const __mmask8 k = u == NU - 1 ? last : 0xFF;
        if (sizeof(REAL) == 4)
            _mm256_mask_storeu_ps((float *)db + 8 * u, k, _mm512_cvtpd_ps(s[u]));
        else
            _mm512_mask_storeu_pd((double *)db + 8 * u, k, s[u]);
    }
}
#endif

/* db[j] = sum_i dY[i, j], accumulated in double, rows in order (a fixed summation order).
 * Rows are read contiguously; the column loop vectorises. acc is caller scratch of D doubles
 * (not needed by the AVX-512 copy's register blocks, for data in cache). */
static void FNAME(bias_grad)(const REAL *restrict dY, ptrdiff_t N, ptrdiff_t D,
                             REAL *restrict db, double *restrict acc)
{
#if defined(__AVX512F__)
    if (N * D * (ptrdiff_t)sizeof(REAL) <= FNN_UNIT_BLOCKS_MAX_BYTES) {
#define FNN_BIAS_GRAD(NU) FNAME(bias_grad_units)(dY + jb, N, D, NU, last, db + jb)
        FNN_UNIT_BLOCKS(D, FNN_BIAS_GRAD);
#undef FNN_BIAS_GRAD
        return;
    }
#endif
    for (ptrdiff_t j = 0; j < D; j++) acc[j] = 0.0;
    for (ptrdiff_t i = 0; i < N; i++) {
        const REAL *row = dY + i * D;
        for (ptrdiff_t j = 0; j < D; j++) acc[j] += (ACC)row[j];
    }
    for (ptrdiff_t j = 0; j < D; j++) db[j] = (REAL)acc[j];
}
