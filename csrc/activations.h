/* ReLU and sigmoid kernels (float: _f32, double: _f64). Sizes are element counts. */
#ifndef FNN_ACTIVATIONS_H
#define FNN_ACTIVATIONS_H
#include <stddef.h>
#include <stdint.h>

#define FNN_DECLARE(T, REAL)                                                                   \
    void fnn_relu_forward_##T(const REAL *x, REAL *y, uint8_t *mask, ptrdiff_t n, int n_threads); \
    void fnn_relu_backward_##T(const REAL *dout, const uint8_t *mask, REAL *dx, ptrdiff_t n,   \
                               int n_threads);                                                 \
    void fnn_sigmoid_forward_##T(const REAL *x, REAL *y, ptrdiff_t n, int n_threads);         \
    void fnn_sigmoid_backward_##T(const REAL *dout, const REAL *out, REAL *dx, ptrdiff_t n,   \
                                  int n_threads);
FNN_DECLARE(f32, float)
FNN_DECLARE(f64, double)
#undef FNN_DECLARE
#endif
