/* Row-major GEMM through the Fortran BLAS that SciPy exports (scipy.linalg.cython_blas: nothing
 * is linked at build time), shared by the Affine layer and the network passes. */
#ifndef FNN_GEMM_H
#define FNN_GEMM_H
#include <stddef.h>

typedef void (*fnn_sgemm_fn)(char *ta, char *tb, int *m, int *n, int *k, float *alpha, float *a,
                             int *lda, float *b, int *ldb, float *beta, float *c, int *ldc);
typedef void (*fnn_dgemm_fn)(char *ta, char *tb, int *m, int *n, int *k, double *alpha,
                             double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                             int *ldc);
typedef void (*fnn_set_threads_fn)(int);
typedef int (*fnn_get_threads_fn)(void);

/* The BLAS, and how to call it.
 * small_mnk: the largest m*n*k its small-matrix kernels take (OpenBLAS on AVX-512 cores:
 * 100*100*100; they read the operands in place, where its general kernels first copy them into
 * packed panels), 0 if it has none. split: 1 to run a GEMM of more than small_mnk (and at most
 * FNN_GEMM_SPLIT_MAX) as blocks of at most small_mnk, each through the small kernels, which pays
 * when the BLAS runs on one thread (the small kernels never use more): on the ch.6 network's
 * 100x784x100 GEMMs 15-25 % faster here, at float32 and float64. Blocks along the rows and
 * columns of C change nothing; blocks along k are summed into C one after another (each element
 * still adds its k-terms in order, in runs of one block), which rounds differently from the
 * single call; the result is deterministic for given shapes. */
typedef struct {
    fnn_sgemm_fn sgemm;
    fnn_dgemm_fn dgemm;
    fnn_set_threads_fn set_threads;   /* the BLAS's thread-count setter and getter, or NULL */
    fnn_get_threads_fn get_threads;
    double small_mnk;
    int split;
} fnn_blas;

/* Beyond this m*n*k, one call: the packed kernels win on large operands (1000^3 blocked: 15 %
 * slower) and the BLAS's own threads would be lost. */
#define FNN_GEMM_SPLIT_MAX 3.2e7

/* C (m x n) = alpha op(A) op(B) + beta C, all row-major with row strides lda, ldb, ldc (in
 * elements); op(A) is m x k (A stored k x m if ta), op(B) is k x n (B stored n x k if tb).
 * Double precision if dbl. m, n, k >= 0 and within the BLAS's int. */
void fnn_gemm(const fnn_blas *blas, int dbl, int ta, int tb, int m, int n, int k, double alpha,
              const void *A, int lda, const void *B, int ldb, double beta, void *C, int ldc);

/* C (m x n) = alpha A B^T + beta C, B stored n x k (row strides lda, ldb, ldc): the Affine
 * backward's dx = dout W^T. OpenBLAS's small kernels do not take this product (column-major TN)
 * unless C is tiny. Where the BLAS runs on one thread (blas->split), m*n*k is at most small_mnk
 * and A has at least FNN_GEMM_BT_MIN_ROWS rows, B is first transposed into scratch (k x n
 * elements) and the product taken as A (B^T) in one small-kernel call: a 100x100x100 product
 * 0.89x the time (float32) to 0.84x (float64) here, transposition included. Not for fewer rows
 * (the transposition's cost is spread over A's rows: at 64 rows 1.02x float32 and 0.94x
 * float64, at 16 rows 1.15-1.26x) nor for larger products (those split, and the split NN product
 * plus the transposition measured 1.1-1.8x slower than the BLAS's own TN one). With scratch
 * NULL, the BLAS's own transposed product. */
void fnn_gemm_bt(const fnn_blas *blas, int dbl, int m, int n, int k, double alpha, const void *A,
                 int lda, const void *B, int ldb, double beta, void *C, int ldc, void *scratch);

#define FNN_GEMM_BT_MIN_ROWS 80

/* Whether fnn_gemm_bt with these sizes uses its scratch (1) or calls the BLAS as it is (0). */
int fnn_gemm_bt_scratch(const fnn_blas *blas, int m, int n, int k);

/* Whether the BLAS runs on one thread now (its getter known and returning 1): then a GEMM split
 * into small blocks is faster than the whole call. */
int fnn_gemm_blas_single(const fnn_blas *blas);
#endif
