/* ReLU and sigmoid, forward and backward: one streaming pass each.
 * Included by fnn_multiversion.h with REAL, FNN_T, FNN_ISA defined (see fnn_common.h).
 * Element-wise, so any split over threads gives identical results. */

/* y = x where x > 0 else 0; mask[i] = (x[i] <= 0), as the book's Relu (NaN is not masked). */
static void FNAME(relu_forward)(const REAL *restrict x, REAL *restrict y,
                                uint8_t *restrict mask, ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        ptrdiff_t lo = 0, hi = n;
#ifdef _OPENMP
        fnn_block(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
#endif
        for (ptrdiff_t i = lo; i < hi; i++) {
            REAL v = x[i];
            int m = v <= (REAL)0;
            mask[i] = (uint8_t)m;
            y[i] = m ? (REAL)0 : v;
        }
    }
}

/* dx = dout where mask is 0, else 0. dx may be dout itself (the book's in-place backward). */
static void FNAME(relu_backward)(const REAL *dout, const uint8_t *restrict mask, REAL *dx,
                                 ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        ptrdiff_t lo = 0, hi = n;
#ifdef _OPENMP
        fnn_block(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
#endif
        for (ptrdiff_t i = lo; i < hi; i++)
            dx[i] = mask[i] ? (REAL)0 : dout[i];
    }
}

/* y = 1 / (1 + exp(-x)), the book's (naive) form. */
static void FNAME(sigmoid_forward)(const REAL *restrict x, REAL *restrict y, ptrdiff_t n,
                                   int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        ptrdiff_t lo = 0, hi = n;
#ifdef _OPENMP
        fnn_block(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
#endif
        for (ptrdiff_t i = lo; i < hi; i++)
            y[i] = (REAL)1 / ((REAL)1 + FNN_EXP(-x[i]));
    }
}

/* dx = dout * (1 - out) * out. dx may be dout itself. */
static void FNAME(sigmoid_backward)(const REAL *dout, const REAL *restrict out, REAL *dx,
                                    ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        ptrdiff_t lo = 0, hi = n;
#ifdef _OPENMP
        fnn_block(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
#endif
        for (ptrdiff_t i = lo; i < hi; i++) {
            REAL o = out[i];
            dx[i] = dout[i] * ((REAL)1 - o) * o;
        }
    }
}
