/* Batch normalisation over the rows of row-major (N, D) data (the book's BatchNormalization).
 * Included by fnn_multiversion.h with REAL, ACC, FNN_T, FNN_ISA defined (see fnn_common.h).
 *
 * Layout and threads: rows are read one after another and the loop over features (contiguous
 * in a row) is the vectorised one. Threads own disjoint blocks of features (multiples of
 * FNN_BN_UNIT), so every per-feature reduction runs over the rows in the same order whatever
 * the thread count: results are bitwise identical for any number of threads, and no thread
 * waits for another (statistics and normalisation of a feature are done by the same thread).
 * Within a block, features are processed in tiles of at most FNN_BN_TILE so the per-feature
 * accumulators stay in L1 (on the stack: no workspace needed from the caller).
 *
 * Passes over the (N, D) data (the minimum the maths allows without holding it in cache):
 *   training forward: 1 read (sums)        + 1 read, 1 write (y)
 *   inference forward:                       1 read, 1 write (y)
 *   backward:         2 reads (sums)       + 2 reads, 1 write (dx)
 *
 * Statistics accumulate in double for both float and double. The mean and biased variance come
 * from one pass of shifted sums: with d = x - x[0, j], s1 = sum d and s2 = sum d^2, then
 * mean = x[0, j] + s1 / N and var = (s2 - s1^2 / N) / N. The shift by the first row removes the
 * cancellation of the plain sum-of-squares formula for data far from zero. */
#ifndef FNN_BN_DEFS
#define FNN_BN_DEFS
#define FNN_BN_UNIT 16    /* features per unit of the thread split (one 64-byte float line) */
#define FNN_BN_TILE 1024  /* features per tile (a multiple of FNN_BN_UNIT) */
#define FNN_BN_ROWS 4     /* rows accumulated per sweep over a tile's accumulators */
/* Outputs of at least FNN_STREAM_MIN_BYTES (fnn_common.h) are written with streaming stores:
 * that skips a third of the traffic of a normalisation pass. Measured here (4096x1024 float32,
 * 1 thread): 1.45 ms instead of 2.0 ms, and a following read of the output costs 0.15 ms more,
 * a net gain. */
#endif

/* Fused multiply-add of one element, REAL-typed (scalar twin of the vector FMA). */
static inline REAL FNAME(bn_fma)(REAL a, REAL b, REAL c)
{
    return sizeof(REAL) == 4 ? (REAL)fmaf((float)a, (float)b, (float)c)
                             : (REAL)fma((double)a, (double)b, (double)c);
}

/* One row of a normalisation pass: yi = (xi - m) * a + b; with `stream`, by non-temporal stores
 * (AVX-512 copies; elsewhere normal stores). dout_c, when not NULL, selects the backward form
 * yi = (gi - c) * A + (xi - m) * B with gi = dout_c[0], c = dout_c[1] (see batchnorm_backward). */
static inline void FNAME(bn_row)(const REAL *restrict xi, REAL *restrict yi,
                                 const REAL *restrict m, const REAL *restrict a,
                                 const REAL *restrict b, const REAL *restrict gi,
                                 const REAL *restrict c, ptrdiff_t w, int stream)
{
    ptrdiff_t j = 0;
#if defined(__AVX512F__)
    if (stream) {
        for (; j < w && ((uintptr_t)(yi + j) & 63); j++)
            yi[j] = gi == NULL ? FNAME(bn_fma)(xi[j] - m[j], a[j], b[j])
                               : FNAME(bn_fma)(gi[j] - c[j], a[j], (xi[j] - m[j]) * b[j]);
        if (sizeof(REAL) == 4) {
            const float *X = (const float *)xi, *M = (const float *)m, *A = (const float *)a;
            const float *B = (const float *)b, *G = (const float *)gi, *C = (const float *)c;
            float *Y = (float *)yi;
            if (gi == NULL)
                for (; j + 16 <= w; j += 16) {
                    __m512 v = _mm512_sub_ps(_mm512_loadu_ps(X + j), _mm512_loadu_ps(M + j));
                    _mm512_stream_ps(Y + j, _mm512_fmadd_ps(v, _mm512_loadu_ps(A + j),
                                                            _mm512_loadu_ps(B + j)));
                }
            else
                for (; j + 16 <= w; j += 16) {
                    __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(X + j),
                                                           _mm512_loadu_ps(M + j)),
                                             _mm512_loadu_ps(B + j));
                    __m512 u = _mm512_sub_ps(_mm512_loadu_ps(G + j), _mm512_loadu_ps(C + j));
                    _mm512_stream_ps(Y + j, _mm512_fmadd_ps(u, _mm512_loadu_ps(A + j), t));
                }
        } else {
            const double *X = (const double *)xi, *M = (const double *)m, *A = (const double *)a;
            const double *B = (const double *)b, *G = (const double *)gi, *C = (const double *)c;
            double *Y = (double *)yi;
            if (gi == NULL)
                for (; j + 8 <= w; j += 8) {
                    __m512d v = _mm512_sub_pd(_mm512_loadu_pd(X + j), _mm512_loadu_pd(M + j));
                    _mm512_stream_pd(Y + j, _mm512_fmadd_pd(v, _mm512_loadu_pd(A + j),
                                                            _mm512_loadu_pd(B + j)));
                }
            else
                for (; j + 8 <= w; j += 8) {
                    __m512d t = _mm512_mul_pd(_mm512_sub_pd(_mm512_loadu_pd(X + j),
                                                            _mm512_loadu_pd(M + j)),
                                              _mm512_loadu_pd(B + j));
                    __m512d u = _mm512_sub_pd(_mm512_loadu_pd(G + j), _mm512_loadu_pd(C + j));
                    _mm512_stream_pd(Y + j, _mm512_fmadd_pd(u, _mm512_loadu_pd(A + j), t));
                }
        }
        for (; j < w; j++)
            yi[j] = gi == NULL ? FNAME(bn_fma)(xi[j] - m[j], a[j], b[j])
                               : FNAME(bn_fma)(gi[j] - c[j], a[j], (xi[j] - m[j]) * b[j]);
        return;
    }
#else
    (void)stream;
#endif
    if (gi == NULL)
        for (; j < w; j++) yi[j] = (xi[j] - m[j]) * a[j] + b[j];
    else
        for (; j < w; j++) yi[j] = (gi[j] - c[j]) * a[j] + (xi[j] - m[j]) * b[j];
}

static inline void FNAME(bn_stream_fence)(int stream)
{
#if defined(__AVX512F__)
    if (stream) _mm_sfence();
#else
    (void)stream;
#endif
}

/* Threads for an (N, D) problem and this thread's feature block [*lo, *hi). Called inside the
 * parallel region (or with nt = 1 outside it). */
static inline void FNAME(bn_block)(ptrdiff_t D, int part, int parts, ptrdiff_t *lo,
                                   ptrdiff_t *hi)
{
    ptrdiff_t units = (D + FNN_BN_UNIT - 1) / FNN_BN_UNIT, ulo, uhi;
    fnn_block(units, part, parts, &ulo, &uhi);
    *lo = ulo * FNN_BN_UNIT;
    *hi = uhi * FNN_BN_UNIT < D ? uhi * FNN_BN_UNIT : D;
}

static inline int FNAME(bn_threads)(ptrdiff_t N, ptrdiff_t D, int n_threads)
{
    int nt = fnn_threads_for(N * D, n_threads);
    ptrdiff_t units = (D + FNN_BN_UNIT - 1) / FNN_BN_UNIT;
    return units < nt ? (int)units : nt;
}

#if defined(__AVX512F__)
/* AVX-512 column sums with the accumulators in registers. The plain loops below keep them in
 * memory (a load and a store per row sweep) and end every row with a scalar tail (the ch.6
 * network's 100-wide layers: 4 of 100 features). Measured inside its training step: the forward
 * 9 % and the backward 5 % faster, the bias gradient (affine_body.h) 26 %.
 * Here each feature still accumulates its rows one after another, in order, with the same
 * operations (so the sums are bitwise those of the plain loops), but up to 64 features at a time
 * stay in registers down all the rows: units of 8 features, one double vector each (a float
 * unit is converted on loading), the last unit masked (FNN_UNIT_BLOCKS, fnn_common.h). */

/* Forward shifted sums (bn_shifted_sums) of NU units at x (a row's first feature of the block);
 * `last`: the lanes of the last unit. r1 > r0. */
static inline __attribute__((always_inline)) void FNAME(bn_sums_units)(
        const REAL *x, ptrdiff_t D, ptrdiff_t r0, ptrdiff_t r1, const int NU, __mmask8 last,
        ACC *s1, ACC *s2)
{
    __m512d k[FNN_UNIT_BLOCK], a[FNN_UNIT_BLOCK], b[FNN_UNIT_BLOCK];
    for (int u = 0; u < NU; u++) {
        k[u] = FNN_UNIT_LOAD(x + r0 * D + 8 * u, u == NU - 1 ? last : 0xFF);
        a[u] = _mm512_setzero_pd();
        b[u] = _mm512_setzero_pd();
    }
    for (ptrdiff_t i = r0 + 1; i < r1; i++)
        for (int u = 0; u < NU; u++) {
            __m512d d = _mm512_sub_pd(FNN_UNIT_LOAD(x + i * D + 8 * u, u == NU - 1 ? last : 0xFF),
                                      k[u]);
            a[u] = _mm512_add_pd(a[u], d);
            b[u] = _mm512_fmadd_pd(d, d, b[u]);
        }
    for (int u = 0; u < NU; u++) {
        _mm512_mask_storeu_pd(s1 + 8 * u, u == NU - 1 ? last : 0xFF, a[u]);
        _mm512_mask_storeu_pd(s2 + 8 * u, u == NU - 1 ? last : 0xFF, b[u]);
    }
}

/* Backward sums (batchnorm_backward_cols, pass 1) of NU units: s1 = sum dout,
 * s2 = sum dout (x - mean), rows 0 .. N-1; g, x: a row's first feature of the block. */
static inline __attribute__((always_inline)) void FNAME(bn_back_units)(
        const REAL *g, const REAL *x, const REAL *mean, ptrdiff_t N, ptrdiff_t D, const int NU,
        __mmask8 last, ACC *s1, ACC *s2)
{
    __m512d m[FNN_UNIT_BLOCK], a[FNN_UNIT_BLOCK], b[FNN_UNIT_BLOCK];
    for (int u = 0; u < NU; u++) {
        m[u] = FNN_UNIT_LOAD(mean + 8 * u, u == NU - 1 ? last : 0xFF);
        a[u] = _mm512_setzero_pd();
        b[u] = _mm512_setzero_pd();
    }
    for (ptrdiff_t i = 0; i < N; i++)
        for (int u = 0; u < NU; u++) {
            const __mmask8 mu = u == NU - 1 ? last : 0xFF;
            __m512d gv = FNN_UNIT_LOAD(g + i * D + 8 * u, mu);
            a[u] = _mm512_add_pd(a[u], gv);
            b[u] = _mm512_fmadd_pd(gv, _mm512_sub_pd(FNN_UNIT_LOAD(x + i * D + 8 * u, mu),
                                                     m[u]), b[u]);
        }
    for (int u = 0; u < NU; u++) {
        _mm512_mask_storeu_pd(s1 + 8 * u, u == NU - 1 ? last : 0xFF, a[u]);
        _mm512_mask_storeu_pd(s2 + 8 * u, u == NU - 1 ? last : 0xFF, b[u]);
    }
}
#endif

/* Shifted sums of rows r0+1 .. r1-1 of features [j0, j0 + w), shifted by row r0 (whose own terms
 * are 0): s1 = sum d, s2 = sum d^2, d = x - x[r0]. */
static inline void FNAME(bn_shifted_sums)(const REAL *restrict x, ptrdiff_t D, ptrdiff_t r0,
                                          ptrdiff_t r1, ptrdiff_t j0, ptrdiff_t w,
                                          ACC *restrict s1, ACC *restrict s2)
{
#if defined(__AVX512F__)
    if (r1 > r0 && (r1 - r0) * D * (ptrdiff_t)sizeof(REAL) <= FNN_UNIT_BLOCKS_MAX_BYTES) {
#define FNN_BN_SUMS(NU) FNAME(bn_sums_units)(x + j0 + jb, D, r0, r1, NU, last, s1 + jb, s2 + jb)
        FNN_UNIT_BLOCKS(w, FNN_BN_SUMS);
#undef FNN_BN_SUMS
        return;
    }
#endif
    const REAL *restrict k = x + r0 * D + j0;
    for (ptrdiff_t j = 0; j < w; j++) { s1[j] = 0; s2[j] = 0; }
    ptrdiff_t i = r0 + 1;
    for (; i + FNN_BN_ROWS <= r1; i += FNN_BN_ROWS) {
        const REAL *restrict a = x + i * D + j0;
        const REAL *restrict b = a + D;
        const REAL *restrict c = b + D;
        const REAL *restrict e = c + D;
        for (ptrdiff_t j = 0; j < w; j++) {
            ACC kj = (ACC)k[j];
            ACC d0 = (ACC)a[j] - kj, d1 = (ACC)b[j] - kj;
            ACC d2 = (ACC)c[j] - kj, d3 = (ACC)e[j] - kj;
            ACC u = s1[j], v = s2[j];
            u += d0; v += d0 * d0;
            u += d1; v += d1 * d1;
            u += d2; v += d2 * d2;
            u += d3; v += d3 * d3;
            s1[j] = u; s2[j] = v;
        }
    }
    for (; i < r1; i++) {
        const REAL *restrict a = x + i * D + j0;
        for (ptrdiff_t j = 0; j < w; j++) {
            ACC d0 = (ACC)a[j] - (ACC)k[j];
            s1[j] += d0;
            s2[j] += d0 * d0;
        }
    }
}

/* Columns (features) [lo, hi) of batchnorm_forward_train. */
static inline void FNAME(batchnorm_forward_train_cols)(const REAL *restrict x, ptrdiff_t N,
        ptrdiff_t D, const REAL *restrict gamma, const REAL *restrict beta, double eps,
        REAL *restrict y, REAL *restrict mean, REAL *restrict var, REAL *restrict std,
        REAL *restrict coef, int stream, ptrdiff_t lo, ptrdiff_t hi)
{
    ACC s1[FNN_BN_TILE], s2[FNN_BN_TILE];
    REAL m[FNN_BN_TILE], a[FNN_BN_TILE];
    for (ptrdiff_t j0 = lo; j0 < hi; j0 += FNN_BN_TILE) {
        ptrdiff_t w = hi - j0 < FNN_BN_TILE ? hi - j0 : FNN_BN_TILE;
        FNAME(bn_shifted_sums)(x, D, 0, N, j0, w, s1, s2);
        const ACC invn = 1.0 / (ACC)N;
        for (ptrdiff_t j = 0; j < w; j++) {
            ACC mu = (ACC)x[j0 + j] + s1[j] * invn;
            ACC v = (s2[j] - s1[j] * s1[j] * invn) * invn;
            v = v < 0 ? 0 : v;  /* rounding only; NaN passes */
            ACC sd = sqrt(v + eps);
            mean[j0 + j] = (REAL)mu;
            var[j0 + j] = (REAL)v;
            std[j0 + j] = (REAL)sd;
            m[j] = (REAL)mu;
            a[j] = (REAL)((ACC)gamma[j0 + j] / sd);
        }
        if (coef != NULL) {        /* statistics only: keep m and a for the row pass */
            for (ptrdiff_t j = 0; j < w; j++) {
                coef[j0 + j] = m[j];
                coef[D + j0 + j] = a[j];
            }
            continue;
        }
        for (ptrdiff_t i = 0; i < N; i++)
            FNAME(bn_row)(x + i * D + j0, y + i * D + j0, m, a, beta + j0, NULL, NULL, w,
                          stream);
    }
    FNAME(bn_stream_fence)(stream);
}

/* Rows [lo, hi) of a normalisation pass from full-width coefficients: forward (dout NULL)
 * y = (x - m) a + beta with coef = [m | a]; backward dx = (dout - C) A + (x - m) B with
 * coef = [m | A | B | C]. Elementwise, the same arithmetic as the column-tile pass. */
static inline void FNAME(bn_rows)(const REAL *restrict x, const REAL *restrict dout,
                                  REAL *restrict y, ptrdiff_t D, const REAL *restrict coef,
                                  const REAL *restrict beta, int stream, ptrdiff_t lo,
                                  ptrdiff_t hi)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        if (dout == NULL)
            FNAME(bn_row)(x + i * D, y + i * D, coef, coef + D, beta, NULL, NULL, D, stream);
        else
            FNAME(bn_row)(x + i * D, y + i * D, coef, coef + D, coef + 2 * D, dout + i * D,
                          coef + 3 * D, D, stream);
    }
    FNAME(bn_stream_fence)(stream);
}

/* Training forward.
 *   x (N, D), gamma, beta (D) -> y (N, D) = gamma * (x - mean) / std + beta
 *   mean, var (D): batch mean and biased variance (rounded to REAL), std = sqrt(var + eps).
 * y must not overlap x. */
static void FNAME(batchnorm_forward_train)(const REAL *restrict x, ptrdiff_t N, ptrdiff_t D,
                                           const REAL *restrict gamma,
                                           const REAL *restrict beta, double eps,
                                           REAL *restrict y, REAL *restrict mean,
                                           REAL *restrict var, REAL *restrict std,
                                           int n_threads)
{
    int nt = FNAME(bn_threads)(N, D, n_threads);
    const int stream = N * D * (ptrdiff_t)sizeof(REAL) >= FNN_STREAM_MIN_BYTES;
    /* With several threads, the statistics are split by features (a fixed order per feature, so
     * results do not depend on the thread count) but the normalisation by rows: each thread then
     * streams whole rows instead of strided feature blocks. */
    REAL *coef = nt > 1 ? (REAL *)malloc(2 * (size_t)D * sizeof(REAL)) : NULL;
    FNN_PARALLEL_BLOCKS_BY(FNAME(bn_block), D,
                           FNAME(batchnorm_forward_train_cols)(x, N, D, gamma, beta, eps, y, mean,
                               var, std, coef, stream, lo, hi));
    if (coef != NULL) {
        FNN_PARALLEL_BLOCKS(N, FNAME(bn_rows)(x, NULL, y, D, coef, beta, stream, lo, hi));
        free(coef);
    }
}

/* The training forward split between threads by batch rows (for callers that give each thread
 * a block of rows, e.g. the two-thread training pass, whose other ops split by rows too).
 * row_sums: sums of rows [r0, r1) shifted by their first row, which each thread reads itself:
 * k[j] = x[r0, j], s1[j] = sum (x[i, j] - k[j]), s2[j] = sum (x[i, j] - k[j])^2 (double, D each;
 * all 0 for no rows). */
static void FNAME(batchnorm_row_sums)(const REAL *restrict x, ptrdiff_t D, ptrdiff_t r0,
                                      ptrdiff_t r1, double *restrict s1, double *restrict s2,
                                      double *restrict k)
{
    for (ptrdiff_t j = 0; j < D; j++)
        k[j] = r1 > r0 ? (ACC)x[r0 * D + j] : 0;
    FNAME(bn_shifted_sums)(x, D, r0, r1, 0, D, s1, s2);
}

/* forward_rows: the batch statistics from `parts` threads' row sums (sums: per part in order,
 * its s1, s2 and k, D doubles each; rows[p]: its number of rows), combined part after part with
 * Chan et al.'s pairwise update (mean and sum of squared deviations of each block: no
 * cancellation when the mean is large), written to mean, var, std when write_stats; then rows
 * [r0, r1) of y. The same formulas as batchnorm_forward_train up to the grouping of the sums:
 * equal to it within rounding. */
static void FNAME(batchnorm_forward_rows)(const REAL *restrict x, ptrdiff_t N, ptrdiff_t D,
                                          const REAL *restrict gamma,
                                          const REAL *restrict beta, double eps,
                                          const double *restrict sums, const ptrdiff_t *rows,
                                          int parts, REAL *restrict y, REAL *restrict mean,
                                          REAL *restrict var, REAL *restrict std,
                                          int write_stats, ptrdiff_t r0, ptrdiff_t r1)
{
    REAL m[FNN_BN_TILE], a[FNN_BN_TILE];
    for (ptrdiff_t j0 = 0; j0 < D; j0 += FNN_BN_TILE) {
        ptrdiff_t w = D - j0 < FNN_BN_TILE ? D - j0 : FNN_BN_TILE;
        for (ptrdiff_t j = 0; j < w; j++) {
            /* block means relative to one common shift c (the first block's): their
             * differences then carry errors relative to the spread, not to |mean| */
            ACC n = 0, mu = 0, m2 = 0, c = 0;
            for (int p = 0; p < parts; p++) {
                const double *sp = sums + 3 * p * D;
                const ACC np = (ACC)rows[p];
                if (rows[p] <= 0)
                    continue;
                const ACC t1 = sp[j0 + j], t2 = sp[D + j0 + j];
                if (n == 0)
                    c = sp[2 * D + j0 + j];
                const ACC mp = (sp[2 * D + j0 + j] - c) + t1 / np;
                const ACC qp = t2 - t1 * t1 / np;
                if (n == 0) {
                    mu = mp;
                    m2 = qp;
                } else {
                    const ACC delta = mp - mu, nn = n + np;
                    mu += delta * (np / nn);
                    m2 += qp + delta * delta * (n * np / nn);
                }
                n += np;
            }
            mu += c;
            ACC v = m2 / (ACC)N;
            v = v < 0 ? 0 : v;  /* rounding only; NaN passes */
            ACC sd = sqrt(v + eps);
            if (write_stats) {
                mean[j0 + j] = (REAL)mu;
                var[j0 + j] = (REAL)v;
                std[j0 + j] = (REAL)sd;
            }
            m[j] = (REAL)mu;
            a[j] = (REAL)((ACC)gamma[j0 + j] / sd);
        }
        for (ptrdiff_t i = r0; i < r1; i++)
            FNAME(bn_row)(x + i * D + j0, y + i * D + j0, m, a, beta + j0, NULL, NULL, w, 0);
    }
}

/* Columns (features) [lo, hi) of batchnorm_forward_infer. */
static inline void FNAME(batchnorm_forward_infer_cols)(const REAL *restrict x, ptrdiff_t N,
        ptrdiff_t D, const REAL *restrict gamma, const REAL *restrict beta,
        const double *restrict running_mean, const double *restrict running_var, double eps,
        REAL *restrict y,
        int stream, ptrdiff_t lo, ptrdiff_t hi)
{
    REAL m[FNN_BN_TILE], a[FNN_BN_TILE];
    for (ptrdiff_t j0 = lo; j0 < hi; j0 += FNN_BN_TILE) {
        ptrdiff_t w = hi - j0 < FNN_BN_TILE ? hi - j0 : FNN_BN_TILE;
        for (ptrdiff_t j = 0; j < w; j++) {
            m[j] = (REAL)running_mean[j0 + j];
            a[j] = (REAL)((ACC)gamma[j0 + j] / sqrt(running_var[j0 + j] + eps));
        }
        for (ptrdiff_t i = 0; i < N; i++)
            FNAME(bn_row)(x + i * D + j0, y + i * D + j0, m, a, beta + j0, NULL, NULL, w,
                          stream);
    }
    FNAME(bn_stream_fence)(stream);
}

/* Inference forward from running statistics (double, as the book keeps them):
 * y = gamma * (x - running_mean) / sqrt(running_var + eps) + beta. */
static void FNAME(batchnorm_forward_infer)(const REAL *restrict x, ptrdiff_t N, ptrdiff_t D,
                                           const REAL *restrict gamma,
                                           const REAL *restrict beta,
                                           const double *restrict running_mean,
                                           const double *restrict running_var, double eps,
                                           REAL *restrict y, int n_threads)
{
    int nt = FNAME(bn_threads)(N, D, n_threads);
    const int stream = N * D * (ptrdiff_t)sizeof(REAL) >= FNN_STREAM_MIN_BYTES;
    FNN_PARALLEL_BLOCKS_BY(FNAME(bn_block), D,
                           FNAME(batchnorm_forward_infer_cols)(x, N, D, gamma, beta, running_mean,
                               running_var, eps, y, stream, lo, hi));
}

/* Backward sums of features [j0, j0 + w) over all rows: s1 = sum dout,
 * s2 = sum dout (x - mean). */
static inline void FNAME(bn_back_sums)(const REAL *restrict dout, const REAL *restrict x,
                                       const REAL *restrict mean, ptrdiff_t N, ptrdiff_t D,
                                       ptrdiff_t j0, ptrdiff_t w, ACC *restrict s1,
                                       ACC *restrict s2)
{
#if defined(__AVX512F__)
    if (N * D * (ptrdiff_t)sizeof(REAL) <= FNN_UNIT_BLOCKS_MAX_BYTES) {
#define FNN_BN_BACK(NU) FNAME(bn_back_units)(dout + j0 + jb, x + j0 + jb, mean + j0 + jb, N, D, \
                                             NU, last, s1 + jb, s2 + jb)
        FNN_UNIT_BLOCKS(w, FNN_BN_BACK);
#undef FNN_BN_BACK
        return;
    }
#endif
    ACC md[FNN_BN_TILE];
    for (ptrdiff_t j = 0; j < w; j++) {
        s1[j] = 0;
        s2[j] = 0;
        md[j] = (ACC)mean[j0 + j];
    }
    ptrdiff_t i = 0;
    for (; i + FNN_BN_ROWS <= N; i += FNN_BN_ROWS) {
        const REAL *restrict g0 = dout + i * D + j0;
        const REAL *restrict x0 = x + i * D + j0;
        for (ptrdiff_t j = 0; j < w; j++) {
            ACC mj = md[j];
            ACC ga = (ACC)g0[j], gb = (ACC)g0[j + D];
            ACC gc = (ACC)g0[j + 2 * D], gd = (ACC)g0[j + 3 * D];
            ACC a = s1[j], b = s2[j];
            a += ga; b += ga * ((ACC)x0[j] - mj);
            a += gb; b += gb * ((ACC)x0[j + D] - mj);
            a += gc; b += gc * ((ACC)x0[j + 2 * D] - mj);
            a += gd; b += gd * ((ACC)x0[j + 3 * D] - mj);
            s1[j] = a; s2[j] = b;
        }
    }
    for (; i < N; i++) {
        const REAL *restrict g0 = dout + i * D + j0;
        const REAL *restrict x0 = x + i * D + j0;
        for (ptrdiff_t j = 0; j < w; j++) {
            ACC ga = (ACC)g0[j];
            s1[j] += ga;
            s2[j] += ga * ((ACC)x0[j] - md[j]);
        }
    }
}

/* Columns (features) [lo, hi) of batchnorm_backward. */
static inline void FNAME(batchnorm_backward_cols)(const REAL *restrict dout,
        const REAL *restrict x, ptrdiff_t N, ptrdiff_t D, const REAL *restrict gamma,
        const REAL *restrict mean, const REAL *restrict std, REAL *restrict dx,
        REAL *restrict dgamma, REAL *restrict dbeta,
        REAL *restrict coef, int stream,
        ptrdiff_t lo, ptrdiff_t hi)
{
    ACC s1[FNN_BN_TILE], s2[FNN_BN_TILE];
    REAL m[FNN_BN_TILE], A[FNN_BN_TILE], B[FNN_BN_TILE], C[FNN_BN_TILE];  /* C: dbeta/N */
    for (ptrdiff_t j0 = lo; j0 < hi; j0 += FNN_BN_TILE) {
        ptrdiff_t w = hi - j0 < FNN_BN_TILE ? hi - j0 : FNN_BN_TILE;
        /* pass 1: s1 = sum dout, s2 = sum dout * (x - mean) */
        FNAME(bn_back_sums)(dout, x, mean, N, D, j0, w, s1, s2);
        const ACC invn = 1.0 / (ACC)N;
        for (ptrdiff_t j = 0; j < w; j++) {
            ACC istd = 1.0 / (ACC)std[j0 + j];
            ACC dg = s2[j] * istd;
            ACC Aj = (ACC)gamma[j0 + j] * istd;
            dbeta[j0 + j] = (REAL)s1[j];
            dgamma[j0 + j] = (REAL)dg;
            m[j] = mean[j0 + j];
            A[j] = (REAL)Aj;
            B[j] = (REAL)(-Aj * dg * istd * invn);
            C[j] = (REAL)(s1[j] * invn);
        }
        if (coef != NULL) {        /* sums only: keep the coefficients for the row pass */
            for (ptrdiff_t j = 0; j < w; j++) {
                coef[j0 + j] = m[j];
                coef[D + j0 + j] = A[j];
                coef[2 * D + j0 + j] = B[j];
                coef[3 * D + j0 + j] = C[j];
            }
            continue;
        }
        /* pass 2: dx */
        for (ptrdiff_t i = 0; i < N; i++)
            FNAME(bn_row)(x + i * D + j0, dx + i * D + j0, m, A, B, dout + i * D + j0, C, w,
                          stream);
    }
    FNAME(bn_stream_fence)(stream);
}

/* Backward through a training forward, closed form. With xn = (x - mean) / std:
 *   dbeta = sum_i dout,  dgamma = sum_i dout * xn,
 *   dx = gamma / (N std) * (N dout - dbeta - xn * dgamma)
 *      = A (dout - dbeta / N) + B (x - mean),  A = gamma / std, B = -A dgamma / (N std)
 * (centring dout first keeps dx exactly 0 for a batch of one, as the book's form gives).
 * mean and std are the forward's (REAL). dx must not overlap dout or x. */
static void FNAME(batchnorm_backward)(const REAL *restrict dout, const REAL *restrict x,
                                      ptrdiff_t N, ptrdiff_t D, const REAL *restrict gamma,
                                      const REAL *restrict mean, const REAL *restrict std,
                                      REAL *restrict dx, REAL *restrict dgamma,
                                      REAL *restrict dbeta, int n_threads)
{
    int nt = FNAME(bn_threads)(N, D, n_threads);
    const int stream = N * D * (ptrdiff_t)sizeof(REAL) >= FNN_STREAM_MIN_BYTES;
    REAL *coef = nt > 1 ? (REAL *)malloc(4 * (size_t)D * sizeof(REAL)) : NULL;
    FNN_PARALLEL_BLOCKS_BY(FNAME(bn_block), D,
                           FNAME(batchnorm_backward_cols)(dout, x, N, D, gamma, mean, std, dx,
                               dgamma, dbeta, coef, stream, lo, hi));
    if (coef != NULL) {          /* several threads: dx by rows, as in the forward */
        FNN_PARALLEL_BLOCKS(N, FNAME(bn_rows)(x, dout, dx, D, coef, NULL, stream, lo, hi));
        free(coef);
    }
}
