/* The training pass of a chain of layers, executed in C (the plan is built by
 * fastnn/_netstep.pyx): every layer's training forward in order, then every backward in reverse,
 * calling the same kernels and BLAS GEMMs as the layers do, with the same arguments.
 *
 * Two schedules for the backward, with identical results:
 *   serial      one thread runs every layer's backward in turn;
 *   two-thread  thread 0 runs the chain (input gradients: dx GEMMs, element-wise and batch-norm
 *               backwards) while thread 1 computes the weight and bias gradients of each Affine
 *               layer as soon as its output gradient is ready (they are off the chain), the
 *               first layer's weight gradient split between the two. Each GEMM then runs on one
 *               thread: the BLAS is set to one thread for the duration, through the functions
 *               given in fnn_blas (both must be set for this schedule). */
#ifndef FNN_NETSTEP_H
#define FNN_NETSTEP_H
#include <stddef.h>
#include <stdint.h>

enum { FNN_OP_AFFINE = 0, FNN_OP_BATCHNORM = 1, FNN_OP_RELU = 2, FNN_OP_SIGMOID = 3,
       FNN_OP_DROPOUT = 4 };

/* Fortran BLAS GEMM (column-major), as scipy.linalg.cython_blas exports it. */
typedef void (*fnn_sgemm_fn)(char *ta, char *tb, int *m, int *n, int *k, float *alpha, float *a,
                             int *lda, float *b, int *ldb, float *beta, float *c, int *ldc);
typedef void (*fnn_dgemm_fn)(char *ta, char *tb, int *m, int *n, int *k, double *alpha,
                             double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                             int *ldc);
typedef void (*fnn_set_threads_fn)(int);
typedef int (*fnn_get_threads_fn)(void);
typedef struct {
    fnn_sgemm_fn sgemm;
    fnn_dgemm_fn dgemm;
    fnn_set_threads_fn set_threads;   /* the BLAS's thread-count setter and getter, or NULL */
    fnn_get_threads_fn get_threads;
} fnn_blas;

/* One layer of the chain. Arrays are row-major; rows: the pass's N. */
typedef struct {
    int kind;
    ptrdiff_t d_in, d_out;      /* features in and out */
    int in_buf, out_buf;        /* forward buffers (indices kept by the planner) */
    void *x, *y;                /* forward input (N, d_in) and output (N, d_out) */
    void *dx;                   /* backward output (N, d_in): Affine (if need_dx), BatchNorm */
    void *dout;                 /* set by the backward: the gradient this op received */
    /* Affine */
    void *W, *b, *dW, *db;
    int need_dx;
    /* BatchNormalization */
    void *gamma, *beta, *mean, *var, *std, *dgamma, *dbeta;
    void *rm_old, *rv_old, *rm_new, *rv_new;
    int f32_state;              /* float32 running statistics (a float32 network's) */
    double eps, momentum;
    /* ReLU */
    uint8_t *mask;
    /* Dropout */
    uint32_t *bits;
    uint64_t seed, thr;
    double scale;
} fnn_op;

/* Every op's training forward, in order. */
void fnn_netstep_forward(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, const fnn_blas *blas,
                         int n_threads);

/* Every op's backward, from d_last (the gradient of the last op's output; modified in place by
 * element-wise ops, as is every op's dx). acc: scratch of max d_out doubles per thread (2 rows
 * of that length). With n_threads >= 2 and blas->set_threads/get_threads set, the two-thread
 * schedule; else serial. Returns the schedule used (1 or 2 threads). */
int fnn_netstep_backward(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, void *d_last,
                         double *acc, ptrdiff_t acc_len, const fnn_blas *blas, int n_threads);
#endif
