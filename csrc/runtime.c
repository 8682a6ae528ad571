#include "runtime.h"
#define FNN_BODY "runtime_body.h"
#include "fnn_multiversion.h"

FNN_DISPATCH(void, stream_axpy, f32,
             (float *a, const float *b, float alpha, ptrdiff_t n, int n_threads),
             (a, b, alpha, n, n_threads))
FNN_DISPATCH(void, stream_axpy, f64,
             (double *a, const double *b, double alpha, ptrdiff_t n, int n_threads),
             (a, b, alpha, n, n_threads))

int fnn_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fnn_openmp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int fnn_simd_level_selected(void) { return fnn_simd_level(); }

int fnn_simd_level_detected(void) { return fnn_cpu_simd_level(); }

const char *fnn_compiler_version(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}
