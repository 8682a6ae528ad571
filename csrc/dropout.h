/* Dropout kernels with counter-based masks (float: _f32, double: _f64).
 *
 * The generator: mask bit i is a pure function of a 64-bit seed and the element index i, so
 * masks do not depend on the thread count or the instruction set, and the NumPy reference
 * (fastnn/reference/dropout_rng.py) recomputes them exactly. All arithmetic is mod 2^64:
 *
 *   mix64(z)  SplitMix64's finaliser (Stafford's Mix13), a bijection with full avalanche
 *   key  = mix64(seed),  key2 = mix64(~key)
 *   h_j  = mix64(key  + j * GAMMA)      g_j = mix64(key2 + j * GAMMA)    (SplitMix64 streams)
 *   p_i  = bits 16q .. 16q+15 of h_(i/4), s_i = the same bits of g_(i/4), q = i % 4
 *          (each stream read as little-endian uint16 words)
 *   u_i  = p_i * 2^16 + s_i               a 32-bit uniform
 *   kept_i = (u_i >= thr)                 thr = round(ratio * 2^32); thr >= 2^32 drops everything
 *
 * So P(kept) = 1 - thr / 2^32 exactly. The kernels only compute p (one 64-bit hash per four
 * elements); s_i is needed only when p_i equals thr's high half (probability 2^-16), never when
 * thr's low half is 0 (ratio a multiple of 2^-16, e.g. 0.5 or 0.25).
 *
 * The mask is stored as bits: word b (uint32) holds elements 32b .. 32b+31, bit r = element
 * 32b + r (1 = kept); bits past n in the last word are 0.
 * Outputs: y = x * (kept ? scale : 0) (scale 1 is the book's x * mask), dx likewise from dout. */
#ifndef FNN_DROPOUT_H
#define FNN_DROPOUT_H
#include <stddef.h>
#include <stdint.h>

#define FNN_DROPOUT_GAMMA UINT64_C(0x9E3779B97F4A7C15)
#define FNN_DROPOUT_BLOCK 32            /* elements per mask word */

/* Number of uint32 mask words for n elements. */
#define FNN_DROPOUT_WORDS(n) (((n) + FNN_DROPOUT_BLOCK - 1) / FNN_DROPOUT_BLOCK)

#define FNN_DECLARE(T, REAL)                                                                     \
    void fnn_dropout_forward_##T(const REAL *x, REAL *y, uint32_t *bits, ptrdiff_t n,           \
                                 uint64_t seed, uint64_t thr, double scale, int n_threads);     \
    void fnn_dropout_backward_##T(const REAL *dout, const uint32_t *bits, REAL *dx, ptrdiff_t n, \
                                  double scale, int n_threads);                                \
    /* Forward of the mask blocks [lo_block, hi_block) only (32 elements each; the partial last \
     * block is the one of index n / 32), for callers that split the work themselves. */       \
    void fnn_dropout_forward_range_##T(const REAL *x, REAL *y, uint32_t *bits, ptrdiff_t n,      \
                                       uint64_t seed, uint64_t thr, double scale,              \
                                       ptrdiff_t lo_block, ptrdiff_t hi_block, int n_threads);   \
    /* ReLU then Dropout in one pass (one thread, for data in cache), bitwise the two layers'   \
     * kernels in turn: relu_mask[i] = (x[i] <= 0) and y = ReLU(x) with this Dropout applied    \
     * (bits as fnn_dropout_forward writes them); y may be x. */                               \
    void fnn_relu_dropout_forward_##T(const REAL *x, REAL *y, uint8_t *relu_mask, uint32_t *bits, \
                                      ptrdiff_t n, uint64_t seed, uint64_t thr, double scale);   \
    /* Their backward: dx = relu_mask ? 0 : dout * (kept ? scale : 0); dx may be dout. */        \
    void fnn_relu_dropout_backward_##T(const REAL *dout, const uint32_t *bits,                 \
                                       const uint8_t *relu_mask, REAL *dx, ptrdiff_t n,        \
                                       double scale);
FNN_DECLARE(f32, float)
FNN_DECLARE(f64, double)
#undef FNN_DECLARE

/* Only the mask: bits for n elements (tests, and masks of a given seed without data). */
void fnn_dropout_mask(uint32_t *bits, ptrdiff_t n, uint64_t seed, uint64_t thr, int n_threads);
#endif
