#include "dropout.h"
#include "fnn_common.h"
#if FNN_X86_MULTIVERSION
#include <immintrin.h>
#endif

/* Outputs of at least FNN_STREAM_MIN_BYTES (fnn_common.h), when 64-byte aligned, are written with
 * streaming stores: a third of the memory traffic of these passes. */
#if defined(__GNUC__)
#define FNN_DROPOUT_ALIGN64 __attribute__((aligned(64)))
#else
#define FNN_DROPOUT_ALIGN64
#endif

/* bit k set: the per-lane selectors of a mask word */
static const uint32_t fnn_dropout_bit[32] = {
    1u << 0, 1u << 1, 1u << 2, 1u << 3, 1u << 4, 1u << 5, 1u << 6, 1u << 7,
    1u << 8, 1u << 9, 1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31};

/* SplitMix64's finaliser (Stafford's "Mix13"): a bijection of 64-bit words with full avalanche. */
static inline uint64_t fnn_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

#define FNN_BODY "dropout_body.h"
#include "fnn_multiversion.h"

#define FNN_PUBLIC(T, REAL)                                                                    \
    FNN_DISPATCH(void, dropout_forward, T,                                                     \
                 (const REAL *x, REAL *y, uint32_t *bits, ptrdiff_t n, uint64_t seed,         \
                  uint64_t thr, double scale, int n_threads),                                  \
                 (x, y, bits, n, seed, thr, scale, n_threads))                                 \
    FNN_DISPATCH(void, dropout_forward_range, T,                                               \
                 (const REAL *x, REAL *y, uint32_t *bits, ptrdiff_t n, uint64_t seed,         \
                  uint64_t thr, double scale, ptrdiff_t lo_block, ptrdiff_t hi_block, int nt), \
                 (x, y, bits, n, seed, thr, scale, lo_block, hi_block, nt))                    \
    FNN_DISPATCH(void, dropout_backward, T,                                                    \
                 (const REAL *dout, const uint32_t *bits, REAL *dx, ptrdiff_t n, double scale, \
                  int n_threads),                                                              \
                 (dout, bits, dx, n, scale, n_threads))                                        \
    FNN_DISPATCH(void, relu_dropout_forward, T,                                                \
                 (const REAL *x, REAL *y, uint8_t *relu_mask, uint32_t *bits, ptrdiff_t n,     \
                  uint64_t seed, uint64_t thr, double scale),                                  \
                 (x, y, relu_mask, bits, n, seed, thr, scale))                                 \
    FNN_DISPATCH(void, relu_dropout_backward, T,                                               \
                 (const REAL *dout, const uint32_t *bits, const uint8_t *relu_mask, REAL *dx,  \
                  ptrdiff_t n, double scale),                                                  \
                 (dout, bits, relu_mask, dx, n, scale))
FNN_PUBLIC(f32, float)
FNN_PUBLIC(f64, double)

/* The mask alone, straight from the definition in dropout.h (scalar: tests, and masks
 * without data; not on the hot path). */
void fnn_dropout_mask(uint32_t *bits, ptrdiff_t n, uint64_t seed, uint64_t thr, int n_threads)
{
    (void)n_threads;
    const uint64_t key = fnn_mix64(seed), key2 = fnn_mix64(~key);
    const ptrdiff_t nwords = FNN_DROPOUT_WORDS(n);
    for (ptrdiff_t b = 0; b < nwords; b++) {
        uint32_t w = 0;
        for (int r = 0; r < 32 && b * 32 + r < n; r++) {
            uint64_t j = (uint64_t)(b * 32 + r) / 4;
            int q = r % 4;
            uint64_t p = (fnn_mix64(key + j * FNN_DROPOUT_GAMMA) >> (16 * q)) & 0xFFFFu;
            uint64_t s = (fnn_mix64(key2 + j * FNN_DROPOUT_GAMMA) >> (16 * q)) & 0xFFFFu;
            w |= (uint32_t)(((p << 16) | s) >= thr) << r;
        }
        bits[b] = w;
    }
}
