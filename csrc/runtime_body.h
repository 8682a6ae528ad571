/* Bandwidth probe: a[i] += alpha * b[i] over the whole array (12 B/element in float32:
 * two reads, one write), the in-place streaming pattern of optimizer updates. The benchmarks
 * use it to measure this machine's memory-bandwidth ceiling in the same run. Like the best
 * streaming kernels here it prefetches ahead in blocks: on one core the hardware prefetchers
 * alone leave ~10 % of the bandwidth unused, and a probe slower than the kernels it judges would
 * be no ceiling. */
#define FNN_PROBE_BLOCK 64
#define FNN_PROBE_DIST (2048 / (ptrdiff_t)sizeof(REAL))

static inline void FNAME(stream_axpy_range)(REAL *restrict a, const REAL *restrict b,
                                            REAL alpha, ptrdiff_t lo, ptrdiff_t hi)
{
    ptrdiff_t i = lo;
    for (; i + FNN_PROBE_BLOCK <= hi; i += FNN_PROBE_BLOCK) {
        for (ptrdiff_t k = 0; k < FNN_PROBE_BLOCK; k += 64 / (ptrdiff_t)sizeof(REAL)) {
            __builtin_prefetch(a + i + FNN_PROBE_DIST + k, 1, 3);
            __builtin_prefetch(b + i + FNN_PROBE_DIST + k, 0, 3);
        }
        for (ptrdiff_t k = 0; k < FNN_PROBE_BLOCK; k++) a[i + k] += alpha * b[i + k];
    }
    for (; i < hi; i++) a[i] += alpha * b[i];
}

static void FNAME(stream_axpy)(REAL *restrict a, const REAL *restrict b, REAL alpha,
                               ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    FNN_PARALLEL_BLOCKS(n, FNAME(stream_axpy_range)(a, b, alpha, lo, hi));
}
