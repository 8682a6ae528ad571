# Row-major GEMM on top of scipy.linalg.cython_blas (SciPy's bundled BLAS; nothing is linked at
# build time). BLAS is column-major and a row-major matrix is its column-major transpose, so
# row-major C = op(A)·op(B) is computed as column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands.
from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef int blas_int   # LP64: SciPy's wheels use 32-bit BLAS integers (scipy <= 1.17 has no blas_int)


cdef inline void gemm_rowmajor(bint use_double, bint trans_a, bint trans_b,
                               blas_int m, blas_int n, blas_int k, double alpha,
                               const void *a, const void *b, double beta, void *c) noexcept nogil:
    """C (m×n) = alpha·op(A)·op(B) + beta·C, all row-major and C-contiguous.

    op(A) is m×k: A is stored m×k, or k×m if trans_a. op(B) is k×n: B is k×n, or n×k if trans_b.
    """
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    cdef blas_int lda = k if trans_b else n       # leading dim of B as stored
    cdef blas_int ldb = m if trans_a else k       # leading dim of A as stored
    cdef blas_int ldc = n
    cdef float alpha_f = <float>alpha, beta_f = <float>beta
    if use_double:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double *>b, &lda, <double *>a, &ldb,
              &beta, <double *>c, &ldc)
    else:
        sgemm(&ta, &tb, &n, &m, &k, &alpha_f, <float *>b, &lda, <float *>a, &ldb,
              &beta_f, <float *>c, &ldc)
