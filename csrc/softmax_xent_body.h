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

/* y_i = softmax(x_i) for one row: max, exp, sum, scale.
 * `omp simd` reductions let the compiler vectorise the max and the sum without -ffast-math; the
 * order of the partial sums then depends on the vector width (the SIMD path) but never on the
 * number of threads, which split rows. */
static inline void FNAME(softmax_row)(const REAL *restrict x, REAL *restrict y, ptrdiff_t C)
{
    REAL m = x[0];
    #pragma omp simd reduction(max:m)
    for (ptrdiff_t j = 1; j < C; j++)
        m = x[j] > m ? x[j] : m;
    for (ptrdiff_t j = 0; j < C; j++)
        y[j] = FNN_EXP(x[j] - m);
    ACC s = 0;                       /* the row is in L1 now: a second pass is cheap */
    #pragma omp simd reduction(+:s)
    for (ptrdiff_t j = 0; j < C; j++)
        s += (ACC)y[j];
    const REAL inv = (REAL)(1.0 / s);
    #pragma omp simd
    for (ptrdiff_t j = 0; j < C; j++)
        y[j] *= inv;
}

/* Forward: y = softmax(x) row-wise; returns -sum_i log(y[i, t_i] + 1e-7) / N (the book's loss).
 * Labels are `idx` (N indices, already checked to be in [0, C)) or `onehot` (N*C), the other NULL.
 * If dx is not NULL, also writes the backward result dx = (y - onehot(t)) * grad_scale while
 * the row is in cache. */
static double FNAME(softmax_xent_forward)(const REAL *restrict x, ptrdiff_t N, ptrdiff_t C,
                                          const int64_t *idx, const REAL *onehot,
                                          REAL *restrict y, REAL *restrict dx, double grad_scale,
                                          int n_threads)
{
    double *row_loss = (double *)malloc((size_t)N * sizeof(double));
    if (row_loss == NULL) return NAN;
    int nt = fnn_threads_for(N * C, n_threads);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        ptrdiff_t lo = 0, hi = N;
#ifdef _OPENMP
        fnn_block(N, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
#endif
        for (ptrdiff_t i = lo; i < hi; i++) {
            REAL *yi = y + i * C;
            FNAME(softmax_row)(x + i * C, yi, C);
            ptrdiff_t t = FNAME(xent_label)(i, C, idx, onehot);
            /* the book adds 1e-7 in the element type, then takes log in it */
            row_loss[i] = -(double)log((double)(REAL)(yi[t] + (REAL)1e-7));
            if (dx != NULL) {
                REAL *dxi = dx + i * C;
                const REAL sc = (REAL)grad_scale;
                if (onehot != NULL) {
                    const REAL *ti = onehot + i * C;
                    for (ptrdiff_t j = 0; j < C; j++) dxi[j] = (yi[j] - ti[j]) * sc;
                } else {
                    for (ptrdiff_t j = 0; j < C; j++) dxi[j] = yi[j] * sc;
                    dxi[t] = (yi[t] - (REAL)1) * sc;
                }
            }
        }
    }
    double total = 0.0;
    for (ptrdiff_t i = 0; i < N; i++) total += row_loss[i];
    free(row_loss);
    return total / (double)N;
}

/* Backward: dx = (y - onehot(t)) * grad_scale (grad_scale = 1 / t.shape[0] in the book). */
static void FNAME(softmax_xent_backward)(const REAL *restrict y, ptrdiff_t N, ptrdiff_t C,
                                         const int64_t *idx, const REAL *onehot,
                                         double grad_scale, REAL *restrict dx, int n_threads)
{
    int nt = fnn_threads_for(N * C, n_threads);
    const REAL sc = (REAL)grad_scale;
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        ptrdiff_t lo = 0, hi = N;
#ifdef _OPENMP
        fnn_block(N, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
#endif
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
}
