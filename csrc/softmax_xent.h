/* Softmax + cross-entropy kernels (float: _f32, double: _f64). x, y, dx, onehot are row-major
 * (N, C); idx holds N labels in [0, C). Exactly one of idx and onehot is non-NULL. */
#ifndef FNN_SOFTMAX_XENT_H
#define FNN_SOFTMAX_XENT_H
#include <stddef.h>
#include <stdint.h>

#define FNN_DECLARE(T, REAL)                                                                  \
    double fnn_softmax_xent_forward_##T(const REAL *x, ptrdiff_t N, ptrdiff_t C,              \
                                        const int64_t *idx, const REAL *onehot, REAL *y,      \
                                        REAL *dx, double grad_scale, int n_threads);          \
    void fnn_softmax_xent_backward_##T(const REAL *y, ptrdiff_t N, ptrdiff_t C,               \
                                       const int64_t *idx, const REAL *onehot,                \
                                       double grad_scale, REAL *dx, int n_threads);
FNN_DECLARE(f32, float)
FNN_DECLARE(f64, double)
#undef FNN_DECLARE
#endif
