/* Build and machine information, and the bandwidth probe used by the benchmarks. */
#ifndef FNN_RUNTIME_H
#define FNN_RUNTIME_H
#include <stddef.h>

int fnn_openmp_enabled(void);
int fnn_openmp_max_threads(void);
int fnn_simd_level_selected(void);   /* 0 baseline, 1 AVX2, 2 AVX-512 */
int fnn_simd_level_detected(void);   /* ignoring FASTNN_SIMD */
const char *fnn_compiler_version(void);
void fnn_stream_axpy_f32(float *a, const float *b, float alpha, ptrdiff_t n, int n_threads);
void fnn_stream_axpy_f64(double *a, const double *b, double alpha, ptrdiff_t n, int n_threads);
#endif
