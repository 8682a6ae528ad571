/* Optimizer kernels: public entry points (see optim.h), dispatched to the float/double copies
 * for the CPU's instruction set. FMA contraction is off in this file so that float32 updates
 * follow the NumPy reference's roundings step by step (memory-bound: it costs nothing). */
#pragma GCC optimize("fp-contract=off")
#include <math.h>
#include <stdint.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>  /* the exact float64 division of the AVX-512 copies */
#endif
#include "optim.h"
#define FNN_BODY "optim_body.h"
#include "fnn_multiversion.h"

#define FNN_PUBLIC(T, REAL)                                                                    \
    FNN_DISPATCH(int, optim_step, T,                                                           \
                 (int kind, const fnn_optim_hparams *hp, ptrdiff_t n_tensors, REAL *const *p,  \
                  REAL *const *g, REAL *const *s1, REAL *const *s2, const ptrdiff_t *n,        \
                  const ptrdiff_t *cols, int n_threads),                                       \
                 (kind, hp, n_tensors, p, g, s1, s2, n, cols, n_threads))
FNN_PUBLIC(f32, float)
FNN_PUBLIC(f64, double)

FNN_DISPATCH(int, div_exact, f64, (const double *a, const double *d, double *out, ptrdiff_t n),
             (a, d, out, n))
