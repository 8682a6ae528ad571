/* ReLU and sigmoid, forward and backward: one streaming pass each.
 * Included by fnn_multiversion.h with REAL, FNN_T, FNN_ISA defined (see fnn_common.h).
 * Element-wise, so any split over threads gives identical results. Each kernel is a range
 * function over [lo, hi) run by FNN_PARALLEL_BLOCKS. */

/* y = x where x > 0 else 0; mask[i] = (x[i] <= 0), as the book's Relu (NaN is not masked). */
static inline void FNAME(relu_forward_range)(const REAL *restrict x, REAL *restrict y,
                                             uint8_t *restrict mask, ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        REAL v = x[i];
        int m = v <= (REAL)0;
        mask[i] = (uint8_t)m;
        y[i] = m ? (REAL)0 : v;
    }
}

static void FNAME(relu_forward)(const REAL *restrict x, REAL *restrict y,
                                uint8_t *restrict mask, ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    FNN_PARALLEL_BLOCKS(n, FNAME(relu_forward_range)(x, y, mask, lo, hi));
}

/* dx = dout where mask is 0, else 0. dx may be dout itself (the book's in-place backward). */
static inline void FNAME(relu_backward_range)(const REAL *dout, const uint8_t *restrict mask,
                                              REAL *dx, ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t i = lo; i < hi; i++)
        dx[i] = mask[i] ? (REAL)0 : dout[i];
}

static void FNAME(relu_backward)(const REAL *dout, const uint8_t *restrict mask, REAL *dx,
                                 ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    FNN_PARALLEL_BLOCKS(n, FNAME(relu_backward_range)(dout, mask, dx, lo, hi));
}

/* y = 1 / (1 + exp(-x)), the book's (naive) form. */
static inline void FNAME(sigmoid_forward_range)(const REAL *restrict x, REAL *restrict y,
                                                ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t i = lo; i < hi; i++)
        y[i] = (REAL)1 / ((REAL)1 + FNN_EXP(-x[i]));
}

static void FNAME(sigmoid_forward)(const REAL *restrict x, REAL *restrict y, ptrdiff_t n,
                                   int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    FNN_PARALLEL_BLOCKS(n, FNAME(sigmoid_forward_range)(x, y, lo, hi));
}

/* dx = dout * (1 - out) * out. dx may be dout itself. */
static inline void FNAME(sigmoid_backward_range)(const REAL *dout, const REAL *restrict out,
                                                 REAL *dx, ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        REAL o = out[i];
        dx[i] = dout[i] * ((REAL)1 - o) * o;
    }
}

static void FNAME(sigmoid_backward)(const REAL *dout, const REAL *restrict out, REAL *dx,
                                    ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    FNN_PARALLEL_BLOCKS(n, FNAME(sigmoid_backward_range)(dout, out, dx, lo, hi));
}
