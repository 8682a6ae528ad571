#include "activations.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif
#define FNN_BODY "activations_body.h"
#include "fnn_multiversion.h"

#define FNN_PUBLIC(T, REAL)                                                                    \
    FNN_DISPATCH(void, relu_forward, T,                                                        \
                 (const REAL *x, REAL *y, uint8_t *mask, ptrdiff_t n, int n_threads),          \
                 (x, y, mask, n, n_threads))                                                   \
    FNN_DISPATCH(void, relu_backward, T,                                                       \
                 (const REAL *dout, const uint8_t *mask, REAL *dx, ptrdiff_t n, int n_threads), \
                 (dout, mask, dx, n, n_threads))                                               \
    FNN_DISPATCH(void, sigmoid_forward, T, (const REAL *x, REAL *y, ptrdiff_t n, int n_threads), \
                 (x, y, n, n_threads))                                                         \
    FNN_DISPATCH(void, sigmoid_backward, T,                                                    \
                 (const REAL *dout, const REAL *out, REAL *dx, ptrdiff_t n, int n_threads),    \
                 (dout, out, dx, n, n_threads))
FNN_PUBLIC(f32, float)
FNN_PUBLIC(f64, double)
