/* Batch normalisation kernels (float: _f32, double: _f64). x, y, dout, dx are row-major (N, D);
 * gamma, beta, mean, var, std, dgamma, dbeta hold D values; running statistics are double.
 * Outputs must not overlap inputs. */
#ifndef FNN_BATCHNORM_H
#define FNN_BATCHNORM_H
#include <stddef.h>

#define FNN_DECLARE(T, REAL)                                                                   \
    void fnn_batchnorm_forward_train_##T(const REAL *x, ptrdiff_t N, ptrdiff_t D,             \
                                         const REAL *gamma, const REAL *beta, double eps,      \
                                         REAL *y, REAL *mean, REAL *var, REAL *std,            \
                                         int n_threads);                                       \
    /* The training forward split by batch rows (batchnorm_body.h): each thread's row sums,  \
     * then, from all of them, the statistics and its rows of y. */                           \
    void fnn_batchnorm_row_sums_##T(const REAL *x, ptrdiff_t D, ptrdiff_t r0, ptrdiff_t r1,   \
                                    double *s1, double *s2, double *k);                       \
    void fnn_batchnorm_forward_rows_##T(const REAL *x, ptrdiff_t N, ptrdiff_t D,              \
                                        const REAL *gamma, const REAL *beta, double eps,      \
                                        const double *sums, const ptrdiff_t *rows, int parts, \
                                        REAL *y, REAL *mean, REAL *var, REAL *std,            \
                                        int write_stats, ptrdiff_t r0, ptrdiff_t r1);         \
    void fnn_batchnorm_forward_infer_##T(const REAL *x, ptrdiff_t N, ptrdiff_t D,             \
                                         const REAL *gamma, const REAL *beta,                  \
                                         const double *running_mean,                           \
                                         const double *running_var, double eps, REAL *y,       \
                                         int n_threads);                                       \
    void fnn_batchnorm_backward_##T(const REAL *dout, const REAL *x, ptrdiff_t N, ptrdiff_t D, \
                                    const REAL *gamma, const REAL *mean, const REAL *std,      \
                                    REAL *dx, REAL *dgamma, REAL *dbeta, int n_threads);       \
    void fnn_batchnorm_running_update_##T(const double *old, const REAL *stat, double momentum, \
                                          double *out, ptrdiff_t D);
FNN_DECLARE(f32, float)
FNN_DECLARE(f64, double)
#undef FNN_DECLARE
void fnn_batchnorm_running_update_f32state(const float *old, const float *stat, double momentum,
                                           float *out, ptrdiff_t D);
#endif
