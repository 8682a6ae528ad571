/* Bandwidth probe: a[i] += alpha * b[i] over the whole array (12 B/element in float32:
 * two reads, one write), the in-place streaming pattern of optimizer updates. The benchmarks
 * use it to measure this machine's memory-bandwidth ceiling in the same run. */
static void FNAME(stream_axpy)(REAL *restrict a, const REAL *restrict b, REAL alpha,
                               ptrdiff_t n, int n_threads)
{
    int nt = fnn_threads_for(n, n_threads);
    #pragma omp parallel num_threads(nt) if (nt > 1)
    {
        ptrdiff_t lo = 0, hi = n;
#ifdef _OPENMP
        fnn_block(n, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
#endif
        for (ptrdiff_t i = lo; i < hi; i++) a[i] += alpha * b[i];
    }
}
