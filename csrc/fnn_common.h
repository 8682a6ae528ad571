/* fastnn: shared definitions for the C kernels (no Python headers here).
 *
 * Every kernel family is written once, as a body parameterised by the element type
 * (REAL = float or double, ACC = the accumulation type, which is double for both) and
 * compiled several times by fnn_multiversion.h: for two dtypes and, on x86-64, for three
 * instruction sets (baseline SSE2, AVX2+FMA, AVX-512). fnn_simd_level() picks the
 * instruction set at run time, so wheels stay portable without -march=native. */
#ifndef FNN_COMMON_H
#define FNN_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Work (in elements) below which a kernel runs on one thread: with two cores and a shared
 * memory bus, a second thread rarely pays below about a million elements here. */
#define FNN_PARALLEL_MIN_WORK 1000000

/* Outputs of at least this many bytes are written with streaming (non-temporal) stores on the
 * AVX-512/AVX2 paths: they would not stay in cache for the next layer anyway, and streaming skips
 * reading each line before overwriting it. Smaller outputs are written normally and stay cached. */
#ifndef FNN_STREAM_MIN_BYTES
#define FNN_STREAM_MIN_BYTES ((ptrdiff_t)8 << 20)
#endif

/* Number of threads to use for `work` elements given the caller's request. */
static inline int fnn_threads_for(ptrdiff_t work, int n_threads)
{
#ifdef _OPENMP
    if (n_threads < 1 || work < FNN_PARALLEL_MIN_WORK)
        return 1;
    return n_threads;
#else
    (void)work; (void)n_threads;
    return 1;
#endif
}

/* Contiguous block [*lo, *hi) of n items for part `part` of `parts` (static schedule:
 * the split depends only on n and parts, so results are reproducible). */
static inline void fnn_block(ptrdiff_t n, int part, int parts, ptrdiff_t *lo, ptrdiff_t *hi)
{
    ptrdiff_t q = n / parts, r = n % parts;
    *lo = part * q + (part < r ? part : r);
    *hi = *lo + q + (part < r ? 1 : 0);
}

/* Part `part` of `parts` (1 or 2) of [0, n): the halves split at the multiple of `unit` (fnn_halves:
 * 16) nearest n / 2.
 * The optimizers' two-thread split gives each thread these halves of every parameter's rows, and
 * the training pass's two-thread schedule computes the first layer's weight gradient in the same
 * row halves: each thread then updates the part of the largest weight matrix whose gradient it
 * wrote, which stays in its core's cache instead of moving to the other core every step. */
static inline void fnn_halves_by(ptrdiff_t n, ptrdiff_t unit, int part, int parts, ptrdiff_t *lo,
                                 ptrdiff_t *hi)
{
    ptrdiff_t mid = (n / 2 + unit / 2) / unit * unit;   /* the multiple of unit nearest n / 2 */
    if (mid > n) mid = n;
    *lo = parts == 1 || part == 0 ? 0 : mid;
    *hi = parts == 1 || part != 0 ? n : mid;
}

static inline void fnn_halves(ptrdiff_t n, int part, int parts, ptrdiff_t *lo, ptrdiff_t *hi)
{
    fnn_halves_by(n, 16, part, parts, lo, hi);
}

/* Run the statement CALL, which uses `ptrdiff_t lo, hi`, over the static blocks of [0, n) given
 * by BLOCKFN (same signature as fnn_block) on `nt` threads; the caller's thread count variable
 * must be named `nt`. With one thread CALL runs directly on [0, n): entering an OpenMP region
 * costs about a microsecond even when it then runs serially, as much as a small kernel's work. */
#ifdef _OPENMP
#define FNN_PARALLEL_BLOCKS_BY(BLOCKFN, n, CALL)                                               \
    do {                                                                                       \
        if (nt <= 1) {                                                                         \
            const ptrdiff_t lo = 0, hi = (n);                                                  \
            CALL;                                                                              \
        } else {                                                                               \
            _Pragma("omp parallel num_threads(nt)")                                            \
            {                                                                                  \
                ptrdiff_t lo, hi;                                                              \
                BLOCKFN((n), omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);           \
                CALL;                                                                          \
            }                                                                                  \
        }                                                                                      \
    } while (0)
#else
#define FNN_PARALLEL_BLOCKS_BY(BLOCKFN, n, CALL)                                               \
    do {                                                                                       \
        const ptrdiff_t lo = 0, hi = (n);                                                      \
        (void)nt;                                                                              \
        CALL;                                                                                  \
    } while (0)
#endif
#define FNN_PARALLEL_BLOCKS(n, CALL) FNN_PARALLEL_BLOCKS_BY(fnn_block, n, CALL)

/* AVX-512 column loops with their accumulators in registers (batch-norm sums, bias gradient):
 * w columns in units of 8 (one double vector each), in register blocks of up to FNN_UNIT_BLOCK
 * units. Calls body(NU) with a constant NU per block (so the block's vectors stay in registers);
 * in scope there: jb, the block's first column, and last, the lanes of its last unit.
 * Each block walks all the rows: for data in cache only (FNN_UNIT_BLOCKS_MAX_BYTES); larger
 * data is summed by the row sweeps the callers keep, which stream it from memory (a block's
 * rows are then one page apart: 4096 x 1024 float32 batch norm was 20-30 % slower). */
#define FNN_UNIT_BLOCK 8
/* One unit: the 8 elements at p (float or double; the lanes in m, 0 elsewhere) as doubles. */
#define FNN_UNIT_LOAD(p, m)                                                                  \
    (sizeof(*(p)) == 4 ? _mm512_cvtps_pd(_mm256_maskz_loadu_ps((m), (const float *)(p)))    \
                       : _mm512_maskz_loadu_pd((m), (const double *)(p)))
#define FNN_UNIT_BLOCKS_MAX_BYTES (256 * 1024)
#define FNN_UNIT_BLOCKS(w, body) do {                                                        \
        const ptrdiff_t units_ = ((w) + 7) / 8;                                             \
        const __mmask8 tail_ = (w) % 8 ? (__mmask8)((1u << ((w) % 8)) - 1) : (__mmask8)0xFF; \
        for (ptrdiff_t u0_ = 0; u0_ < units_; u0_ += FNN_UNIT_BLOCK) {                       \
            const ptrdiff_t jb = 8 * u0_;                                                    \
            const int nu_ = units_ - u0_ < FNN_UNIT_BLOCK ? (int)(units_ - u0_)             \
                                                          : FNN_UNIT_BLOCK;                  \
            const __mmask8 last = u0_ + nu_ == units_ ? tail_ : (__mmask8)0xFF;              \
            switch (nu_) {                                                                   \
            case 1: body(1); break;                                                          \
            case 2: body(2); break;                                                          \
            case 3: body(3); break;                                                          \
            case 4: body(4); break;                                                          \
            case 5: body(5); break;                                                          \
            case 6: body(6); break;                                                          \
            case 7: body(7); break;                                                          \
            default: body(8); break;                                                         \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* For a function whose copy loop must stay a loop: compilers turn such loops into memcpy calls,
 * which cost more than the copy on rows of a few hundred bytes. */
#if defined(__clang__)
#define FNN_KEEP_COPY_LOOPS __attribute__((no_builtin("memcpy")))
#elif defined(__GNUC__)
#define FNN_KEEP_COPY_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define FNN_KEEP_COPY_LOOPS
#endif

/* SIMD levels (what fnn_simd_level returns). */
enum { FNN_SIMD_BASELINE = 0, FNN_SIMD_AVX2 = 1, FNN_SIMD_AVX512 = 2 };

#if defined(__x86_64__) && defined(__GNUC__)
#define FNN_X86_MULTIVERSION 1
#else
#define FNN_X86_MULTIVERSION 0
#endif

/* The instruction set the kernels run with: the best the CPU has, capped by the environment
 * variable FASTNN_SIMD ("baseline", "avx2" or "avx512"). Computed once per extension module. */
static int fnn_simd_level_cached = -1;

/* The best level this CPU supports. */
static inline int fnn_cpu_simd_level(void)
{
    int best = FNN_SIMD_BASELINE;
#if FNN_X86_MULTIVERSION
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        best = FNN_SIMD_AVX2;
    if (best == FNN_SIMD_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        best = FNN_SIMD_AVX512;
#endif
    return best;
}

static inline int fnn_simd_detect(void)
{
    int best = fnn_cpu_simd_level();
    const char *env = getenv("FASTNN_SIMD");
    if (env != NULL && env[0] != '\0') {
        int cap = best;
        if (strcmp(env, "baseline") == 0) cap = FNN_SIMD_BASELINE;
        else if (strcmp(env, "avx2") == 0) cap = FNN_SIMD_AVX2;
        else if (strcmp(env, "avx512") == 0) cap = FNN_SIMD_AVX512;
        if (cap < best) best = cap;
    }
    return best;
}

static inline int fnn_simd_level(void)
{
    int level = fnn_simd_level_cached;
    if (level < 0) {
        level = fnn_simd_detect();
        fnn_simd_level_cached = level;
    }
    return level;
}

/* Name of the per-dtype, per-ISA copy of a kernel: FNAME(relu_forward) -> relu_forward_f32_avx2 */
#define FNN_CAT3_(a, b, c) a##_##b##_##c
#define FNN_CAT3(a, b, c) FNN_CAT3_(a, b, c)
#define FNAME(name) FNN_CAT3(name, FNN_T, FNN_ISA)

/* Public entry point `fnn_<name>_<T>` that calls the copy for the selected instruction set.
 * PARAMS is the parenthesised parameter list, ARGS the parenthesised argument list. */
#if FNN_X86_MULTIVERSION
#define FNN_DISPATCH(RET, name, T, PARAMS, ARGS)                                   \
    RET fnn_##name##_##T PARAMS                                                    \
    {                                                                              \
        switch (fnn_simd_level()) {                                                \
        case FNN_SIMD_AVX512: return name##_##T##_avx512 ARGS;                     \
        case FNN_SIMD_AVX2: return name##_##T##_avx2 ARGS;                         \
        default: return name##_##T##_base ARGS;                                    \
        }                                                                          \
    }
#else
#define FNN_DISPATCH(RET, name, T, PARAMS, ARGS)                                   \
    RET fnn_##name##_##T PARAMS { return name##_##T##_base ARGS; }
#endif

#endif /* FNN_COMMON_H */
