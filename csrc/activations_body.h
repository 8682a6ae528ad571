/* ReLU and sigmoid, forward and backward: one streaming pass each.
 * Included by fnn_multiversion.h with REAL, FNN_T, FNN_ISA defined (see fnn_common.h).
 * Element-wise, so any split over threads gives identical results. Each kernel is a range
 * function over [lo, hi) run by FNN_PARALLEL_BLOCKS. Outputs may be their inputs (in place:
 * each element is read once, before its result is written), hence no `restrict` on them. */

/* y = x where x > 0 else 0; mask[i] = (x[i] <= 0), as the book's Relu (NaN is not masked). */
static inline void FNAME(relu_forward_range)(const REAL *x, REAL *y,
                                             uint8_t *restrict mask, ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t i = lo; i < hi; i++) {
        REAL v = x[i];
        int m = v <= (REAL)0;
        mask[i] = (uint8_t)m;
        y[i] = m ? (REAL)0 : v;
    }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
/* AVX-512 with streaming stores of y, for outputs too large to stay in cache: y is written as
 * whole 64-byte lines without first reading them (no read-for-ownership), one line per vector. */
static inline void FNAME(relu_forward_stream)(const REAL *x, REAL *y,
                                              uint8_t *restrict mask, ptrdiff_t lo, ptrdiff_t hi)
{
    const ptrdiff_t L = 64 / (ptrdiff_t)sizeof(REAL);
    ptrdiff_t i = lo;
    while (i < hi && ((uintptr_t)(y + i) & 63)) {          /* up to the first aligned line */
        FNAME(relu_forward_range)(x, y, mask, i, i + 1);
        i++;
    }
    for (; i + L <= hi; i += L) {
#if FNN_IS_F32
        __m512 v = _mm512_loadu_ps(x + i);
        __mmask16 m = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ);
        _mm512_stream_ps(y + i, _mm512_maskz_mov_ps((__mmask16)~m, v));
        _mm_storeu_si128((__m128i *)(mask + i), _mm_maskz_set1_epi8(m, 1));
#else
        __m512d v = _mm512_loadu_pd(x + i);
        __mmask8 m = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_LE_OQ);
        _mm512_stream_pd(y + i, _mm512_maskz_mov_pd((__mmask8)~m, v));
        _mm_storel_epi64((__m128i *)(mask + i), _mm_maskz_set1_epi8((__mmask16)m, 1));
#endif
    }
    FNAME(relu_forward_range)(x, y, mask, i, hi);
    _mm_sfence();
}
#endif

static void FNAME(relu_forward)(const REAL *x, REAL *y,
                                uint8_t *restrict mask, ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    if (n * (ptrdiff_t)sizeof(REAL) >= FNN_STREAM_MIN_BYTES) {
        FNN_PARALLEL_BLOCKS(n, FNAME(relu_forward_stream)(x, y, mask, lo, hi));
        return;
    }
#endif
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
static inline void FNAME(sigmoid_forward_range)(const REAL *x, REAL *y,
                                                ptrdiff_t lo, ptrdiff_t hi)
{
    for (ptrdiff_t i = lo; i < hi; i++)
        y[i] = (REAL)1 / ((REAL)1 + FNN_EXP(-x[i]));
}

static void FNAME(sigmoid_forward)(const REAL *x, REAL *y, ptrdiff_t n,
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
