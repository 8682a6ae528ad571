/* Dropout forward and backward (see dropout.h for the generator and the mask layout).
 * Included by fnn_multiversion.h with REAL, FNN_T, FNN_ISA defined (see fnn_common.h).
 * Work is split over threads in whole 32-element blocks; every element's mask bit depends only
 * on (seed, index), so any split (and any instruction set) gives identical masks and outputs.
 *
 * Per block: 8 SplitMix64 hashes -> 32 primary 16-bit quarters -> one mask word (type
 * independent; AVX-512 / AVX2 intrinsics where available), then out[k] = in[k] * (bit k ? scale
 * : 0), a plain loop the compiler vectorises for float and double. */

/* The mask word of block b: hashes h_(8b..8b+7) give the 32 primary 16-bit halves p; bit r
 * is set when p_r > thi, or p_r == thi and the secondary half s_r >= tlo (looked up only then,
 * in FNAME(dropout_fixup): probability 2^-16 per element, and never when tlo == 0).
 * z = key + 8b GAMMA, z2 = key2 + 8b GAMMA. One copy per dtype and instruction set. */
static uint32_t FNAME(dropout_fixup)(uint32_t w, uint32_t eq, uint64_t z2, uint32_t tlo)
{
    for (int r = 0; r < 32; r++) {      /* rare: a plain loop (portable, no ctz builtin) */
        if (!((eq >> r) & 1u))
            continue;
        uint64_t g = fnn_mix64(z2 + (uint64_t)(r >> 2) * FNN_DROPOUT_GAMMA);
        uint32_t s = (uint32_t)(g >> (16 * (r & 3))) & 0xFFFFu;
        w |= (uint32_t)(s >= tlo) << r;
    }
    return w;
}

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__)
static inline uint32_t FNAME(dropout_word)(uint64_t z, uint64_t z2, uint32_t thi, uint32_t tlo)
{
    const __m512i koff = _mm512_setr_epi64(
        0, (long long)FNN_DROPOUT_GAMMA, (long long)(2 * FNN_DROPOUT_GAMMA),
        (long long)(3 * FNN_DROPOUT_GAMMA), (long long)(4 * FNN_DROPOUT_GAMMA),
        (long long)(5 * FNN_DROPOUT_GAMMA), (long long)(6 * FNN_DROPOUT_GAMMA),
        (long long)(7 * FNN_DROPOUT_GAMMA));
    const __m512i m1 = _mm512_set1_epi64((long long)UINT64_C(0xBF58476D1CE4E5B9));
    const __m512i m2 = _mm512_set1_epi64((long long)UINT64_C(0x94D049BB133111EB));
    const __m512i t = _mm512_set1_epi16((short)thi);
    __m512i h = _mm512_add_epi64(_mm512_set1_epi64((long long)z), koff);
    h = _mm512_mullo_epi64(_mm512_xor_si512(h, _mm512_srli_epi64(h, 30)), m1);
    h = _mm512_mullo_epi64(_mm512_xor_si512(h, _mm512_srli_epi64(h, 27)), m2);
    h = _mm512_xor_si512(h, _mm512_srli_epi64(h, 31));
    /* uint16 lane r = bits 16(r%4).. of hash r/4: the stream read as little-endian uint16 */
    uint32_t gt = (uint32_t)_mm512_cmpgt_epu16_mask(h, t);
    uint32_t eq = (uint32_t)_mm512_cmpeq_epu16_mask(h, t);
    if (__builtin_expect(eq != 0, 0))
        return tlo == 0 ? gt | eq : FNAME(dropout_fixup)(gt, eq, z2, tlo);
    return gt;
}
#elif defined(__AVX2__)
static inline __m256i FNAME(dropout_mul64)(__m256i a, __m256i b)  /* AVX2 has no vpmullq */
{
    __m256i lolo = _mm256_mul_epu32(a, b);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                     _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(lolo, _mm256_slli_epi64(cross, 32));
}

static inline __m256i FNAME(dropout_mix)(__m256i z)
{
    const __m256i m1 = _mm256_set1_epi64x((long long)UINT64_C(0xBF58476D1CE4E5B9));
    const __m256i m2 = _mm256_set1_epi64x((long long)UINT64_C(0x94D049BB133111EB));
    z = FNAME(dropout_mul64)(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), m1);
    z = FNAME(dropout_mul64)(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), m2);
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

static inline uint32_t FNAME(dropout_word)(uint64_t z, uint64_t z2, uint32_t thi, uint32_t tlo)
{
    const __m256i koff = _mm256_setr_epi64x(0, (long long)FNN_DROPOUT_GAMMA,
                                            (long long)(2 * FNN_DROPOUT_GAMMA),
                                            (long long)(3 * FNN_DROPOUT_GAMMA));
    const __m256i k4 = _mm256_set1_epi64x((long long)(4 * FNN_DROPOUT_GAMMA));
    const __m256i flip = _mm256_set1_epi16((short)0x8000);
    const __m256i tf = _mm256_set1_epi16((short)(thi ^ 0x8000u));
    __m256i za = _mm256_add_epi64(_mm256_set1_epi64x((long long)z), koff);
    __m256i a = _mm256_xor_si256(FNAME(dropout_mix)(za), flip);                  /* lanes 0..15 */
    __m256i b = _mm256_xor_si256(FNAME(dropout_mix)(_mm256_add_epi64(za, k4)), flip); /* 16..31 */
    /* signed compares of the flipped values = unsigned compares; pack to bytes, fix lane order */
    __m256i gt = _mm256_permute4x64_epi64(
        _mm256_packs_epi16(_mm256_cmpgt_epi16(a, tf), _mm256_cmpgt_epi16(b, tf)), 0xD8);
    __m256i eqv = _mm256_permute4x64_epi64(
        _mm256_packs_epi16(_mm256_cmpeq_epi16(a, tf), _mm256_cmpeq_epi16(b, tf)), 0xD8);
    uint32_t w = (uint32_t)_mm256_movemask_epi8(gt);
    uint32_t eq = (uint32_t)_mm256_movemask_epi8(eqv);
    if (__builtin_expect(eq != 0, 0))
        return tlo == 0 ? w | eq : FNAME(dropout_fixup)(w, eq, z2, tlo);
    return w;
}
#else
/* Scalar (SWAR) version: the four 16-bit quarters of a hash are compared two at a time in
 * 32-bit fields, where quarter + (0xFFFF - thi) carries into bit 16 exactly when quarter > thi
 * (and + (0x10000 - thi) when quarter >= thi). 64-bit vector multiplies are missing or slow
 * in SSE2 and NEON, so scalar multiplies win here. */
static inline uint32_t FNAME(dropout_word)(uint64_t z, uint64_t z2, uint32_t thi, uint32_t tlo)
{
    const uint64_t lanes = UINT64_C(0x0000FFFF0000FFFF), carry = UINT64_C(0x0001000000010000);
    const uint64_t cgt = (uint64_t)(0xFFFFu - thi) * UINT64_C(0x0000000100000001);
    const uint64_t cge = (uint64_t)(0x10000u - thi) * UINT64_C(0x0000000100000001);
    uint32_t w = 0, eq = 0;
    for (int k = 0; k < 8; k++) {
        uint64_t h = fnn_mix64(z + (uint64_t)k * FNN_DROPOUT_GAMMA);
        uint64_t e = h & lanes, o = (h >> 16) & lanes;     /* quarters 0, 2 and 1, 3 */
        uint64_t gte = (e + cgt) & carry, gto = (o + cgt) & carry;
        uint64_t gee = (e + cge) & carry, geo = (o + cge) & carry;
        uint32_t gt4 = (uint32_t)((gte >> 16) & 1) | (uint32_t)((gto >> 15) & 2)
                     | (uint32_t)((gte >> 46) & 4) | (uint32_t)((gto >> 45) & 8);
        uint32_t ge4 = (uint32_t)((gee >> 16) & 1) | (uint32_t)((geo >> 15) & 2)
                     | (uint32_t)((gee >> 46) & 4) | (uint32_t)((geo >> 45) & 8);
        w |= gt4 << (4 * k);
        eq |= (ge4 & ~gt4) << (4 * k);
    }
    if (eq != 0)
        return tlo == 0 ? w | eq : FNAME(dropout_fixup)(w, eq, z2, tlo);
    return w;
}
#endif
#define FNN_DROPOUT_WORD FNAME(dropout_word)

/* out[k] = in[k] * (bit k of w ? scale : 0) for k < 32 (a full block). With `stream` (out
 * 64-byte aligned, AVX2/AVX-512 only), out is written with non-temporal stores: the block is
 * computed in registers, then copied out as whole 64-byte lines without reading them first.
 * out may be in (in place, forward and backward): no `restrict` on them. */
static inline void FNAME(dropout_apply)(const REAL *in, REAL *out, uint32_t w,
                                        REAL scale, int stream)
{
#if defined(__AVX2__)
    if (stream) {
        FNN_DROPOUT_ALIGN64 REAL tmp[32];
        for (int k = 0; k < 32; k++)
            tmp[k] = in[k] * ((w & fnn_dropout_bit[k]) ? scale : (REAL)0);
#if defined(__AVX512F__)
        for (int c = 0; c < (int)(32 * sizeof(REAL) / 64); c++)
            _mm512_stream_si512((__m512i *)out + c, _mm512_load_si512((const __m512i *)tmp + c));
#else
        for (int c = 0; c < (int)(32 * sizeof(REAL) / 32); c++)
            _mm256_stream_si256((__m256i *)out + c, _mm256_load_si256((const __m256i *)tmp + c));
#endif
        return;
    }
#else
    (void)stream;
#endif
    for (int k = 0; k < 32; k++)
        out[k] = in[k] * ((w & fnn_dropout_bit[k]) ? scale : (REAL)0);
}

/* Whether to stream an output of n elements at out, and the fence that ends the streaming. */
static inline int FNAME(dropout_stream)(const REAL *out, ptrdiff_t n)
{
#if defined(__AVX2__)
    return n * (ptrdiff_t)sizeof(REAL) >= FNN_STREAM_MIN_BYTES && ((uintptr_t)out & 63) == 0;
#else
    (void)out; (void)n;
    return 0;
#endif
}

static inline void FNAME(dropout_fence)(int stream)
{
#if defined(__AVX2__)
    if (stream) _mm_sfence();
#else
    (void)stream;
#endif
}

#ifndef FNN_DROPOUT_GEN_DEFINED
#define FNN_DROPOUT_GEN_DEFINED
/* What every mask word of one seed and threshold is computed from (dropout.h). */
typedef struct {
    uint64_t key, key2;
    uint32_t thi, tlo;      /* thr's high and low 16 bits */
    int drop_all;           /* thr >= 2^32 */
} fnn_dropout_gen;

static inline fnn_dropout_gen fnn_dropout_gen_of(uint64_t seed, uint64_t thr)
{
    fnn_dropout_gen g;
    g.key = fnn_mix64(seed);
    g.key2 = fnn_mix64(~g.key);
    g.thi = (uint32_t)(thr >> 16) & 0xFFFFu;
    g.tlo = (uint32_t)thr & 0xFFFFu;
    g.drop_all = thr > UINT64_C(0xFFFFFFFF);
    return g;
}
#endif

/* The mask word of block b (elements 32b .. 32b+31; hashes 8b .. 8b+7). */
static inline uint32_t FNAME(dropout_gen_word)(const fnn_dropout_gen *g, ptrdiff_t b)
{
    const uint64_t off = (uint64_t)b * (8 * FNN_DROPOUT_GAMMA);
    return g->drop_all ? 0 : FNN_DROPOUT_WORD(g->key + off, g->key2 + off, g->thi, g->tlo);
}

/* Mask words and outputs of the whole blocks [lo, hi). */
static inline void FNAME(dropout_forward_blocks)(const REAL *x, REAL *y,
                                                 uint32_t *restrict bits, ptrdiff_t lo,
                                                 ptrdiff_t hi, const fnn_dropout_gen *g,
                                                 REAL scale, int stream)
{
    for (ptrdiff_t b = lo; b < hi; b++) {
        const uint32_t w = FNAME(dropout_gen_word)(g, b);
        bits[b] = w;
        FNAME(dropout_apply)(x + b * FNN_DROPOUT_BLOCK, y + b * FNN_DROPOUT_BLOCK, w, scale,
                             stream);
    }
    FNAME(dropout_fence)(stream);
}

/* Blocks [lo, hi) of the forward of n elements (the last, partial block included when hi
 * reaches it); blocks_total = ceil(n / 32). Mask bits depend on the element index only, so any
 * split of the blocks gives the same result. nt: threads for the whole blocks. */
static void FNAME(dropout_forward_range)(const REAL *x, REAL *y, uint32_t *restrict bits,
                                         ptrdiff_t n, uint64_t seed, uint64_t thr,
                                         double scale_d, ptrdiff_t lo_block, ptrdiff_t hi_block,
                                         int nt)
{
    const REAL scale = (REAL)scale_d;
    const ptrdiff_t nfull = n / FNN_DROPOUT_BLOCK, rem = n % FNN_DROPOUT_BLOCK;
    const fnn_dropout_gen gen = fnn_dropout_gen_of(seed, thr);
    const int stream = FNAME(dropout_stream)(y, n);
    const ptrdiff_t b0 = lo_block, b1 = hi_block < nfull ? hi_block : nfull;
    if (b1 > b0)
        FNN_PARALLEL_BLOCKS(b1 - b0, FNAME(dropout_forward_blocks)(x, y, bits, b0 + lo, b0 + hi,
                                                                   &gen, scale, stream));
    if (rem && hi_block > nfull && lo_block <= nfull) {   /* last, partial block */
        const ptrdiff_t base = nfull * FNN_DROPOUT_BLOCK;
        const uint32_t w = FNAME(dropout_gen_word)(&gen, nfull) & ((UINT32_C(1) << rem) - 1);
        bits[nfull] = w;
        for (ptrdiff_t k = 0; k < rem; k++)
            y[base + k] = x[base + k] * ((w & fnn_dropout_bit[k]) ? scale : (REAL)0);
    }
}

static void FNAME(dropout_forward)(const REAL *x, REAL *y, uint32_t *restrict bits, ptrdiff_t n,
                                   uint64_t seed, uint64_t thr, double scale, int n_threads)
{
    FNAME(dropout_forward_range)(x, y, bits, n, seed, thr, scale, 0, FNN_DROPOUT_WORDS(n),
                                 fnn_threads_for(n, n_threads));
}

/* Whole blocks [lo, hi) of the backward; in place is allowed: out[k] depends on in[k] only. */
static inline void FNAME(dropout_backward_blocks)(const REAL *dout, const uint32_t *restrict bits,
                                                  REAL *dx, ptrdiff_t lo, ptrdiff_t hi,
                                                  REAL scale, int stream)
{
    for (ptrdiff_t b = lo; b < hi; b++)
        FNAME(dropout_apply)(dout + b * FNN_DROPOUT_BLOCK, dx + b * FNN_DROPOUT_BLOCK, bits[b],
                             scale, stream);
    FNAME(dropout_fence)(stream);
}

/* dx[i] = dout[i] * (kept ? scale : 0). dx may be dout itself (element-wise, same index). */
static void FNAME(dropout_backward)(const REAL *dout, const uint32_t *restrict bits, REAL *dx,
                                    ptrdiff_t n, double scale_d, int n_threads)
{
    const REAL scale = (REAL)scale_d;
    const ptrdiff_t nfull = n / FNN_DROPOUT_BLOCK, rem = n % FNN_DROPOUT_BLOCK;
    const int stream = FNAME(dropout_stream)(dx, n) && dx != dout;
    int nt = fnn_threads_for(n, n_threads);
    FNN_PARALLEL_BLOCKS(nfull, FNAME(dropout_backward_blocks)(dout, bits, dx, lo, hi, scale,
                                                              stream));
    if (rem) {
        const ptrdiff_t base = nfull * FNN_DROPOUT_BLOCK;
        const uint32_t w = bits[nfull];
        for (ptrdiff_t k = 0; k < rem; k++)
            dx[base + k] = dout[base + k] * ((w & fnn_dropout_bit[k]) ? scale : (REAL)0);
    }
}

/* ---- ReLU then Dropout (a training pass's Relu -> Dropout pair), one pass each way ----
 * The results of relu_forward then dropout_forward, and of dropout_backward then relu_backward,
 * element for element by the same operations (so bitwise the same), in one pass over the data
 * instead of two. For data that stays in cache: no streaming stores. */

/* Elements [0, len) of a block (its mask word w): mask = (x <= 0),
 * y = (mask ? 0 : x) * (kept ? scale : 0). y may be x. */
static inline void FNAME(relu_dropout_elems)(const REAL *x, REAL *y, uint8_t *restrict mask,
                                             uint32_t w, REAL scale, int len)
{
    for (int k = 0; k < len; k++) {
        const REAL v = x[k];
        const int m = v <= (REAL)0;
        mask[k] = (uint8_t)m;
        y[k] = (m ? (REAL)0 : v) * ((w & fnn_dropout_bit[k]) ? scale : (REAL)0);
    }
}

/* Their backward: dx = mask ? 0 : dout * (kept ? scale : 0). dx may be dout. */
static inline void FNAME(relu_dropout_back_elems)(const REAL *dout, const uint8_t *restrict mask,
                                                  REAL *dx, uint32_t w, REAL scale, int len)
{
    for (int k = 0; k < len; k++) {
        const REAL t = dout[k] * ((w & fnn_dropout_bit[k]) ? scale : (REAL)0);
        dx[k] = mask[k] ? (REAL)0 : t;
    }
}

/* One whole block: relu_dropout_elems of its 32 elements (explicit AVX-512 where the
 * compilers' vectorisation of the loop is slower than the two separate passes). */
static inline void FNAME(relu_dropout_block)(const REAL *x, REAL *y, uint8_t *restrict mask,
                                             uint32_t w, REAL scale)
{
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    /* The compares gathered as bits, the 32 mask bytes written by one store (a narrow store
     * per vector beside the wide ones slows the whole loop down on these cores). */
    uint32_t relu = 0;
#if FNN_IS_F32
    const __m512 vs = _mm512_set1_ps(scale), zero = _mm512_setzero_ps();
    for (int c = 0; c < 2; c++) {
        const __m512 v = _mm512_loadu_ps(x + 16 * c);
        const __mmask16 m = _mm512_cmp_ps_mask(v, zero, _CMP_LE_OQ);
        relu |= (uint32_t)m << (16 * c);
        _mm512_storeu_ps(y + 16 * c, _mm512_mul_ps(_mm512_maskz_mov_ps((__mmask16)~m, v),
                                                   _mm512_mask_blend_ps((__mmask16)(w >> (16 * c)),
                                                                        zero, vs)));
    }
#else
    const __m512d vs = _mm512_set1_pd(scale), zero = _mm512_setzero_pd();
    for (int c = 0; c < 4; c++) {
        const __m512d v = _mm512_loadu_pd(x + 8 * c);
        const __mmask8 m = _mm512_cmp_pd_mask(v, zero, _CMP_LE_OQ);
        relu |= (uint32_t)m << (8 * c);
        _mm512_storeu_pd(y + 8 * c, _mm512_mul_pd(_mm512_maskz_mov_pd((__mmask8)~m, v),
                                                  _mm512_mask_blend_pd((__mmask8)(w >> (8 * c)),
                                                                       zero, vs)));
    }
#endif
    _mm256_storeu_si256((__m256i *)mask, _mm256_maskz_set1_epi8(relu, 1));
#else
    FNAME(relu_dropout_elems)(x, y, mask, w, scale, FNN_DROPOUT_BLOCK);
#endif
}

/* Forward of n elements: relu_mask (n bytes) as relu_forward writes it, bits and y as
 * dropout_forward writes them from the ReLU's output. y may be x. One thread. */
static void FNAME(relu_dropout_forward)(const REAL *x, REAL *y, uint8_t *restrict relu_mask,
                                        uint32_t *restrict bits, ptrdiff_t n, uint64_t seed,
                                        uint64_t thr, double scale_d)
{
    const REAL scale = (REAL)scale_d;
    const fnn_dropout_gen gen = fnn_dropout_gen_of(seed, thr);
    const ptrdiff_t nfull = n / FNN_DROPOUT_BLOCK, rem = n % FNN_DROPOUT_BLOCK;
    for (ptrdiff_t b = 0; b < nfull; b++) {
        const uint32_t w = FNAME(dropout_gen_word)(&gen, b);
        bits[b] = w;
        FNAME(relu_dropout_block)(x + b * FNN_DROPOUT_BLOCK, y + b * FNN_DROPOUT_BLOCK,
                                  relu_mask + b * FNN_DROPOUT_BLOCK, w, scale);
    }
    if (rem) {                                        /* the last, partial block */
        const ptrdiff_t base = nfull * FNN_DROPOUT_BLOCK;
        const uint32_t w = FNAME(dropout_gen_word)(&gen, nfull) & ((UINT32_C(1) << rem) - 1);
        bits[nfull] = w;
        FNAME(relu_dropout_elems)(x + base, y + base, relu_mask + base, w, scale, (int)rem);
    }
}

/* One whole block of the backward: relu_dropout_back_elems of its 32 elements. */
static inline void FNAME(relu_dropout_back_block)(const REAL *dout, const uint8_t *restrict mask,
                                                  REAL *dx, uint32_t w, REAL scale)
{
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
    /* (GCC leaves the element loop scalar, with a branch per element) */
    const __m128i ones = _mm_set1_epi8(1);
#if FNN_IS_F32
    const __m512 vs = _mm512_set1_ps(scale), zero = _mm512_setzero_ps();
    for (int c = 0; c < 2; c++) {
        const __mmask16 keep = (__mmask16)(w >> (16 * c));
        const __mmask16 relu = _mm_test_epi8_mask(_mm_loadu_si128((const __m128i *)(mask + 16 * c)),
                                                  ones);
        const __m512 t = _mm512_mul_ps(_mm512_loadu_ps(dout + 16 * c),
                                       _mm512_mask_blend_ps(keep, zero, vs));
        _mm512_storeu_ps(dx + 16 * c, _mm512_maskz_mov_ps((__mmask16)~relu, t));
    }
#else
    const __m512d vs = _mm512_set1_pd(scale), zero = _mm512_setzero_pd();
    for (int c = 0; c < 4; c++) {
        const __mmask8 keep = (__mmask8)(w >> (8 * c));
        const __mmask8 relu = (__mmask8)_mm_test_epi8_mask(
            _mm_loadl_epi64((const __m128i *)(mask + 8 * c)), ones);
        const __m512d t = _mm512_mul_pd(_mm512_loadu_pd(dout + 8 * c),
                                        _mm512_mask_blend_pd(keep, zero, vs));
        _mm512_storeu_pd(dx + 8 * c, _mm512_maskz_mov_pd((__mmask8)~relu, t));
    }
#endif
#else
    FNAME(relu_dropout_back_elems)(dout, mask, dx, w, scale, FNN_DROPOUT_BLOCK);
#endif
}

/* Backward of n elements: dx = relu_mask ? 0 : dout * (kept ? scale : 0). dx may be dout. One
 * thread. */
static void FNAME(relu_dropout_backward)(const REAL *dout, const uint32_t *restrict bits,
                                         const uint8_t *restrict relu_mask, REAL *dx,
                                         ptrdiff_t n, double scale_d)
{
    const REAL scale = (REAL)scale_d;
    const ptrdiff_t nfull = n / FNN_DROPOUT_BLOCK;
    for (ptrdiff_t b = 0; b < nfull; b++)
        FNAME(relu_dropout_back_block)(dout + b * FNN_DROPOUT_BLOCK,
                                       relu_mask + b * FNN_DROPOUT_BLOCK,
                                       dx + b * FNN_DROPOUT_BLOCK, bits[b], scale);
    const ptrdiff_t base = nfull * FNN_DROPOUT_BLOCK;
    if (n > base)                                     /* the last, partial block */
        FNAME(relu_dropout_back_elems)(dout + base, relu_mask + base, dx + base, bits[nfull],
                                       scale, (int)(n - base));
}
#undef FNN_DROPOUT_WORD
