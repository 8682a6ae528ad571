#include "affine.h"
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>  /* the AVX-512 copies' register-blocked bias gradient */
#endif
#define FNN_BODY "affine_body.h"
#include "fnn_multiversion.h"

#define FNN_PUBLIC(T, REAL)                                                                  \
    FNN_DISPATCH(void, bias_fill, T, (const REAL *b, REAL *Y, ptrdiff_t N, ptrdiff_t D),     \
                 (b, Y, N, D))                                                               \
    FNN_DISPATCH(void, bias_grad, T,                                                         \
                 (const REAL *dY, ptrdiff_t N, ptrdiff_t D, REAL *db, double *acc),          \
                 (dY, N, D, db, acc))
FNN_PUBLIC(f32, float)
FNN_PUBLIC(f64, double)
