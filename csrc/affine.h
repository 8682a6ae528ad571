/* Bias helpers of the Affine layer (float: _f32, double: _f64). Arrays are row-major (N, D). */
#ifndef FNN_AFFINE_H
#define FNN_AFFINE_H
#include <stddef.h>

#define FNN_DECLARE(T, REAL)                                                                 \
    void fnn_bias_fill_##T(const REAL *b, REAL *Y, ptrdiff_t N, ptrdiff_t D);                \
    void fnn_bias_grad_##T(const REAL *dY, ptrdiff_t N, ptrdiff_t D, REAL *db, double *acc);
FNN_DECLARE(f32, float)
FNN_DECLARE(f64, double)
#undef FNN_DECLARE
#endif
