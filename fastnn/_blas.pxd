# Row-major GEMM on top of scipy.linalg.cython_blas (SciPy's bundled BLAS; nothing is linked at
# build time), through csrc/gemm.c (fnn_gemm: the operand swap for the column-major BLAS, and
# the split into blocks for its small-matrix kernels).
from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef int blas_int   # LP64: SciPy's wheels use 32-bit BLAS integers (scipy <= 1.17 has no blas_int)

cdef extern from "gemm.h" nogil:
    ctypedef void (*fnn_sgemm_fn)(char *, char *, int *, int *, int *, float *, float *, int *,
                                  float *, int *, float *, float *, int *)
    ctypedef void (*fnn_dgemm_fn)(char *, char *, int *, int *, int *, double *, double *, int *,
                                  double *, int *, double *, double *, int *)
    ctypedef void (*fnn_set_threads_fn)(int)
    ctypedef int (*fnn_get_threads_fn)()
    ctypedef struct fnn_blas:
        fnn_sgemm_fn sgemm
        fnn_dgemm_fn dgemm
        fnn_set_threads_fn set_threads
        fnn_get_threads_fn get_threads
        double small_mnk
        int split
    void fnn_gemm(const fnn_blas *blas, int dbl, int ta, int tb, int m, int n, int k,
                  double alpha, const void *A, int lda, const void *B, int ldb, double beta,
                  void *C, int ldc)
    void fnn_gemm_bt(const fnn_blas *blas, int dbl, int m, int n, int k, double alpha,
                     const void *A, int lda, const void *B, int ldb, double beta, void *C,
                     int ldc, void *scratch)
    int fnn_gemm_bt_scratch(const fnn_blas *blas, int m, int n, int k)
    int fnn_gemm_blas_single(const fnn_blas *blas)


cdef inline void blas_describe(fnn_blas *blas):
    """Fill blas with SciPy's GEMMs and what fastnn._blas_lib finds of its BLAS (split off)."""
    from fastnn._blas_lib import describe
    setter, getter, small = describe()
    blas.sgemm = <fnn_sgemm_fn>sgemm
    blas.dgemm = <fnn_dgemm_fn>dgemm
    blas.set_threads = <fnn_set_threads_fn><size_t>setter if setter else NULL
    blas.get_threads = <fnn_get_threads_fn><size_t>getter if getter else NULL
    blas.small_mnk = small
    blas.split = 0


cdef inline fnn_blas blas_now(const fnn_blas *blas) noexcept nogil:
    """blas as a call now takes it: split into small-kernel blocks when the BLAS runs on one
    thread (csrc/gemm.h)."""
    cdef fnn_blas call = blas[0]
    call.split = fnn_gemm_blas_single(blas)
    return call


cdef inline void gemm_rowmajor(const fnn_blas *blas, bint use_double, bint trans_a, bint trans_b,
                               blas_int m, blas_int n, blas_int k, double alpha,
                               const void *a, const void *b, double beta, void *c) noexcept nogil:
    """C (m×n) = alpha·op(A)·op(B) + beta·C, all row-major and C-contiguous.

    op(A) is m×k: A is stored m×k, or k×m if trans_a. op(B) is k×n: B is k×n, or n×k if trans_b.
    blas: as blas_now returns it.
    """
    fnn_gemm(blas, use_double, trans_a, trans_b, m, n, k, alpha, a, m if trans_a else k,
             b, k if trans_b else n, beta, c, n)
