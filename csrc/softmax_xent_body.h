/* Softmax with cross-entropy loss (the book's SoftmaxWithLoss), row-major (N, C).
 * Included by fnn_multiversion.h with REAL, ACC, FNN_T, FNN_ISA defined.
 *
 * Rows are independent, so they are split over threads; the loss is summed over per-row values
 * in row order afterwards, so the result does not depend on the thread count. */

/* Index of the label of row i: the given index, or the first maximum of the one-hot row
 * (np.argmax semantics, as the book converts one-hot labels). */
static inline ptrdiff_t FNAME(xent_label)(ptrdiff_t i, ptrdiff_t C, const int64_t *idx,
                                          const REAL *onehot)
{
    if (idx != NULL)
        return (ptrdiff_t)idx[i];
    const REAL *t = onehot + i * C;
    ptrdiff_t best = 0;
    for (ptrdiff_t j = 1; j < C; j++)
        if (t[j] > t[best]) best = j;
    return best;
}

/* Rows are processed in blocks of about FNN_XENT_BLOCK elements (whole rows), so that the exp,
 * the expensive part, runs as one long vectorised loop over the block even when rows are short
 * (C = 10: a per-row loop would never fill a vector), while the block stays in L1/L2 between the
 * passes. `omp simd` reductions vectorise the row max and sum without -ffast-math; their order
 * depends on the vector width (the SIMD path) but never on the thread count (threads split
 * rows). */
#ifndef FNN_XENT_BLOCK
#define FNN_XENT_BLOCK 4096
#endif
/* Rows shorter than this use plain loops for the max and the sum: a vectorised reduction's
 * set-up and epilogue cost more than they save on a handful of classes. */
#define FNN_XENT_SIMD_MIN 64
#define FNN_LOG(v) _Generic((v), float: logf, double: log)(v)

/* Softmax, loss and optionally dx for rows [r0, r1). row_loss gets -log(y[i, t_i] + 1e-7).
 * yb and dxb point at row r0 of the outputs (or of a scratch block). */
static void FNAME(softmax_xent_rows)(const REAL *restrict x, ptrdiff_t r0, ptrdiff_t r1,
                                     ptrdiff_t C, const int64_t *idx, const REAL *onehot,
                                     REAL *restrict yb, REAL *restrict dxb, REAL grad_scale,
                                     double *restrict row_loss)
{
    /* pass 1: y = x - rowmax(x) */
    for (ptrdiff_t i = r0; i < r1; i++) {
        const REAL *xi = x + i * C;
        REAL *yi = yb + (i - r0) * C;
        REAL m = xi[0];
        if (C >= FNN_XENT_SIMD_MIN) {
            #pragma omp simd reduction(max:m)
            for (ptrdiff_t j = 1; j < C; j++)
                m = xi[j] > m ? xi[j] : m;
        } else {
            for (ptrdiff_t j = 1; j < C; j++)
                m = xi[j] > m ? xi[j] : m;
        }
        #pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++)
            yi[j] = xi[j] - m;
    }
    /* pass 2: exp over the whole block */
    const ptrdiff_t nb = (r1 - r0) * C;
    for (ptrdiff_t k = 0; k < nb; k++)
        yb[k] = FNN_EXP(yb[k]);
    /* pass 3: normalise, loss, gradient */
    for (ptrdiff_t i = r0; i < r1; i++) {
        REAL *yi = yb + (i - r0) * C;
        ACC s = 0;
        if (C >= FNN_XENT_SIMD_MIN) {
            #pragma omp simd reduction(+:s)
            for (ptrdiff_t j = 0; j < C; j++)
                s += (ACC)yi[j];
        } else {
            for (ptrdiff_t j = 0; j < C; j++)
                s += (ACC)yi[j];
        }
        const REAL inv = (REAL)(1.0 / s);
        #pragma omp simd
        for (ptrdiff_t j = 0; j < C; j++)
            yi[j] *= inv;
        ptrdiff_t t = FNAME(xent_label)(i, C, idx, onehot);
        /* the book adds 1e-7 and takes the log in the element type */
        row_loss[i] = -(double)FNN_LOG((REAL)(yi[t] + (REAL)1e-7));
        if (dxb != NULL) {
            REAL *dxi = dxb + (i - r0) * C;
            if (onehot != NULL) {
                const REAL *ti = onehot + i * C;
                #pragma omp simd
                for (ptrdiff_t j = 0; j < C; j++) dxi[j] = (yi[j] - ti[j]) * grad_scale;
            } else {
                #pragma omp simd
                for (ptrdiff_t j = 0; j < C; j++) dxi[j] = yi[j] * grad_scale;
                dxi[t] = (yi[t] - (REAL)1) * grad_scale;
            }
        }
    }
}

/* dst[0:n] = src[0:n]; with AVX-512, whole 64-byte lines of dst are written with streaming
 * stores (no read-for-ownership of a large output that will not be read again soon). */
static inline void FNAME(xent_store)(REAL *restrict dst, const REAL *restrict src, ptrdiff_t n)
{
#if defined(__AVX512F__)
    const ptrdiff_t L = 64 / (ptrdiff_t)sizeof(REAL);
    ptrdiff_t k = 0;
    for (; k < n && ((uintptr_t)(dst + k) & 63); k++) dst[k] = src[k];
    for (; k + L <= n; k += L)
        _mm512_stream_si512((__m512i *)(dst + k), _mm512_loadu_si512((const void *)(src + k)));
    for (; k < n; k++) dst[k] = src[k];
#else
    memcpy(dst, src, (size_t)n * sizeof(REAL));
#endif
}

/* Rows [lo, hi) in blocks of rows_per_block. With `stream`, each block is computed in a scratch
 * block in cache and then stored to y and dx with streaming stores. */
static inline void FNAME(softmax_xent_row_blocks)(const REAL *restrict x, ptrdiff_t lo,
                                                  ptrdiff_t hi, ptrdiff_t rows_per_block,
                                                  ptrdiff_t C, const int64_t *idx,
                                                  const REAL *onehot, REAL *restrict y,
                                                  REAL *restrict dx, REAL grad_scale,
                                                  double *restrict row_loss, int stream)
{
    REAL ys[FNN_XENT_BLOCK] __attribute__((aligned(64)));
    REAL dxs[FNN_XENT_BLOCK] __attribute__((aligned(64)));
    for (ptrdiff_t r0 = lo; r0 < hi; r0 += rows_per_block) {
        ptrdiff_t r1 = r0 + rows_per_block < hi ? r0 + rows_per_block : hi;
        if (stream) {
            const ptrdiff_t nb = (r1 - r0) * C;
            FNAME(softmax_xent_rows)(x, r0, r1, C, idx, onehot, ys, dx ? dxs : NULL,
                                     grad_scale, row_loss);
            FNAME(xent_store)(y + r0 * C, ys, nb);
            if (dx != NULL) FNAME(xent_store)(dx + r0 * C, dxs, nb);
        } else {
            FNAME(softmax_xent_rows)(x, r0, r1, C, idx, onehot, y + r0 * C,
                                     dx ? dx + r0 * C : NULL, grad_scale, row_loss);
        }
    }
#if defined(__AVX512F__)
    if (stream) _mm_sfence();
#endif
}

/* Forward: y = softmax(x) row-wise; returns -sum_i log(y[i, t_i] + 1e-7) / N (the book's loss),
 * or NaN if scratch memory cannot be allocated.
 * Labels are `idx` (N indices, already checked to be in [0, C)) or `onehot` (N*C), the other NULL.
 * If dx is not NULL, also writes the backward result dx = (y - onehot(t)) * grad_scale while
 * the rows are in cache. */
static double FNAME(softmax_xent_forward)(const REAL *restrict x, ptrdiff_t N, ptrdiff_t C,
                                          const int64_t *idx, const REAL *onehot,
                                          REAL *restrict y, REAL *restrict dx, double grad_scale,
                                          int n_threads)
{
    double *row_loss = (double *)malloc((size_t)N * sizeof(double));
    if (row_loss == NULL) return NAN;
    const ptrdiff_t rows_per_block = C >= FNN_XENT_BLOCK ? 1 : FNN_XENT_BLOCK / C;
    int nt = fnn_threads_for(N * C, n_threads);
    /* large outputs (only) go through a cached scratch block and streaming stores */
    const int stream = N * C * (ptrdiff_t)sizeof(REAL) >= FNN_STREAM_MIN_BYTES &&
                       rows_per_block * C <= FNN_XENT_BLOCK;
    FNN_PARALLEL_BLOCKS(N, FNAME(softmax_xent_row_blocks)(x, lo, hi, rows_per_block, C, idx,
                                                          onehot, y, dx, (REAL)grad_scale,
                                                          row_loss, stream));
    double total = 0.0;
    for (ptrdiff_t i = 0; i < N; i++) total += row_loss[i];
    free(row_loss);
    return total / (double)N;
}

/* dx = (y - onehot(t)) * sc for rows [lo, hi). */
static inline void FNAME(softmax_xent_grad_rows)(const REAL *restrict y, ptrdiff_t lo,
                                                 ptrdiff_t hi, ptrdiff_t C, const int64_t *idx,
                                                 const REAL *onehot, REAL sc, REAL *restrict dx)
{
    if (onehot != NULL) {
        for (ptrdiff_t i = lo * C; i < hi * C; i++) dx[i] = (y[i] - onehot[i]) * sc;
    } else {
        for (ptrdiff_t i = lo * C; i < hi * C; i++) dx[i] = y[i] * sc;
        for (ptrdiff_t i = lo; i < hi; i++) {
            ptrdiff_t t = (ptrdiff_t)idx[i];
            dx[i * C + t] = (y[i * C + t] - (REAL)1) * sc;
        }
    }
}

/* Backward: dx = (y - onehot(t)) * grad_scale (grad_scale = 1 / t.shape[0] in the book). */
static void FNAME(softmax_xent_backward)(const REAL *restrict y, ptrdiff_t N, ptrdiff_t C,
                                         const int64_t *idx, const REAL *onehot,
                                         double grad_scale, REAL *restrict dx, int n_threads)
{
    int nt = fnn_threads_for(N * C, n_threads);
    FNN_PARALLEL_BLOCKS(N, FNAME(softmax_xent_grad_rows)(y, lo, hi, C, idx, onehot,
                                                         (REAL)grad_scale, dx));
}
