#include <math.h>
#include <stdint.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>  /* streaming stores in the AVX-512 copies */
#endif
#include "batchnorm.h"
#define FNN_BODY "batchnorm_body.h"
#include "fnn_multiversion.h"

#define FNN_PUBLIC(T, REAL)                                                                   \
    FNN_DISPATCH(void, batchnorm_forward_train, T,                                            \
                 (const REAL *x, ptrdiff_t N, ptrdiff_t D, const REAL *gamma,                 \
                  const REAL *beta, double eps, REAL *y, REAL *mean, REAL *var, REAL *std,    \
                  int n_threads),                                                             \
                 (x, N, D, gamma, beta, eps, y, mean, var, std, n_threads))                   \
    FNN_DISPATCH(void, batchnorm_row_sums, T,                                                 \
                 (const REAL *x, ptrdiff_t D, ptrdiff_t r0, ptrdiff_t r1, double *s1,         \
                  double *s2, double *k),                                                     \
                 (x, D, r0, r1, s1, s2, k))                                                   \
    FNN_DISPATCH(void, batchnorm_forward_rows, T,                                             \
                 (const REAL *x, ptrdiff_t N, ptrdiff_t D, const REAL *gamma,                 \
                  const REAL *beta, double eps, const double *sums, const ptrdiff_t *rows,    \
                  int parts, REAL *y, REAL *mean, REAL *var, REAL *std, int write_stats,      \
                  ptrdiff_t r0, ptrdiff_t r1),                                                \
                 (x, N, D, gamma, beta, eps, sums, rows, parts, y, mean, var, std,            \
                  write_stats, r0, r1))                                                       \
    FNN_DISPATCH(void, batchnorm_forward_infer, T,                                            \
                 (const REAL *x, ptrdiff_t N, ptrdiff_t D, const REAL *gamma,                 \
                  const REAL *beta, const double *running_mean, const double *running_var,   \
                  double eps, REAL *y, int n_threads),                                        \
                 (x, N, D, gamma, beta, running_mean, running_var, eps, y, n_threads))        \
    FNN_DISPATCH(void, batchnorm_backward, T,                                                 \
                 (const REAL *dout, const REAL *x, ptrdiff_t N, ptrdiff_t D,                  \
                  const REAL *gamma, const REAL *mean, const REAL *std, REAL *dx,             \
                  REAL *dgamma, REAL *dbeta, int n_threads),                                  \
                 (dout, x, N, D, gamma, mean, std, dx, dgamma, dbeta, n_threads))
FNN_PUBLIC(f32, float)
FNN_PUBLIC(f64, double)

/* Running statistics, exactly as the book's NumPy expression
 *     momentum * running + (1 - momentum) * stat
 * evaluates them: running is float64 and momentum a Python float, so the first product is
 * double; NumPy multiplies the float32 stat by (1 - momentum) rounded to float32 (NEP 50), in
 * float32, and adds the float64 result. Compiled for the baseline instruction set only (no
 * FMA), so the products are rounded exactly as NumPy rounds them. `out` may be `old`. */
void fnn_batchnorm_running_update_f32(const double *old, const float *stat, double momentum,
                                      double *out, ptrdiff_t D)
{
    const float c = (float)(1.0 - momentum);
    for (ptrdiff_t j = 0; j < D; j++) {
        volatile float t = c * stat[j];
        volatile double p = momentum * old[j];
        out[j] = p + (double)t;
    }
}

/* float32 running statistics (a float32 network keeps them in its dtype): every term is float32,
 * momentum and 1 - momentum rounded to float32, as NumPy evaluates the expression then. */
void fnn_batchnorm_running_update_f32state(const float *old, const float *stat, double momentum,
                                           float *out, ptrdiff_t D)
{
    const float m = (float)momentum, c = (float)(1.0 - momentum);
    for (ptrdiff_t j = 0; j < D; j++) {
        volatile float t = c * stat[j];
        volatile float p = m * old[j];
        out[j] = p + t;
    }
}

void fnn_batchnorm_running_update_f64(const double *old, const double *stat, double momentum,
                                      double *out, ptrdiff_t D)
{
    const double c = 1.0 - momentum;
    for (ptrdiff_t j = 0; j < D; j++) {
        volatile double t = c * stat[j];
        volatile double p = momentum * old[j];
        out[j] = p + t;
    }
}
