#include "softmax_xent.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#define FNN_BODY "softmax_xent_body.h"
#include "fnn_multiversion.h"

#define FNN_PUBLIC(T, REAL)                                                                   \
    FNN_DISPATCH(double, softmax_xent_forward, T,                                             \
                 (const REAL *x, ptrdiff_t N, ptrdiff_t C, const int64_t *idx,                \
                  const REAL *onehot, REAL *y, REAL *dx, double grad_scale, int n_threads),   \
                 (x, N, C, idx, onehot, y, dx, grad_scale, n_threads))                        \
    FNN_DISPATCH(void, softmax_xent_backward, T,                                              \
                 (const REAL *y, ptrdiff_t N, ptrdiff_t C, const int64_t *idx,                \
                  const REAL *onehot, double grad_scale, REAL *dx, int n_threads),            \
                 (y, N, C, idx, onehot, grad_scale, dx, n_threads))
FNN_PUBLIC(f32, float)
FNN_PUBLIC(f64, double)
