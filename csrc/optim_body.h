/* Optimizer update rules: one fused, in-place pass per segment (see optim.h for the formulas).
 * Included by fnn_multiversion.h with REAL, FNN_T, FNN_ISA defined (see fnn_common.h).
 *
 * Each rule is a plain loop over restrict pointers that GCC vectorises at every ISA level. The
 * `WD` argument is a compile-time 0/1 at every call site (always_inline), so the book's rule
 * (no weight decay) carries no extra work and is exactly the NumPy reference's arithmetic.
 * Constants are rounded to REAL once, as NumPy does with Python-float scalars (NEP 50). */

#define FNN_OPT_INLINE static inline __attribute__((always_inline))
#define FNN_OPT_SQRT(x) _Generic((x), float: sqrtf, double: sqrt)(x)

/* ---- Correctly rounded float64 division without the divider (AVX-512 float64 copy only) ----
 *
 * The float64 rules with a square root and a division per element (AdaGrad, RMSprop, Adam,
 * AdamW) are bound by the shared divide/square-root unit. FNAME(div_rn8) returns RN(a / d)
 * (IEEE-754 round to nearest even, bit for bit what `a / d` gives, NumPy's included) for 8
 * lanes, computing the quotient with the FMA units and leaving the divider to the square root.
 * Lanes outside the range below use the hardware division (vdivpd); so does the scalar tail.
 *
 * Fast lanes: 2^-900 <= |a| <= 2^900 and 2^-100 <= d <= 2^100 (ordered compares: NaN, Inf, zero,
 * subnormal and negative d, zero and subnormal a all take the hardware division). Then
 * Q = |a| / d lies in [2^-1000, 2^1000], so every value below is a normal double far from
 * overflow. With u = 2^-53 (unit roundoff) and d_k, every |d_k| <= u, the rounding errors:
 *   y0 = rcp14(d):              E = 1 - d*y0, |E| < 2^-14 (Intel's bound for rcp14, normal d)
 *   e  = RN(1 - d*y0) = E(1+d1)                                   (fnmadd: one rounding)
 *   y  = RN(y0 + y0*e) = (1/d)(1 - E^2 + (1-E)E d1)(1+d2),  so |d*y - 1| < 2^-28 + 2^-52.9
 *   q0 = RN(|a|*y),                                         so |q0/Q - 1| < 2^-28 (1 + 2^-24)
 *   r0 = RN(|a| - q0*d) = R0(1+d3) with R0 = d(Q - q0) exactly (fnmadd; R0 normal or 0)
 *   q1 = RN(z), z = q0 + r0*y = Q + (Q - q0)(d3 + (d*y - 1) + d3(d*y - 1)),
 *        |z - Q| <= Q 2^-28(1+2^-24) (2^-53 + 2^-28(1+2^-24.9) + 2^-80) < 2^-56 (1+2^-23) Q.
 * Let 2^k <= Q < 2^(k+1), U = 2^(k-52) (the spacing of the doubles in [2^k, 2^(k+1)); U/2 just
 * below 2^k, 2U at and above 2^(k+1)). |z - Q| < U/8: if L <= Q <= H are the two doubles
 * around Q (L = H when Q is a double), z lies within U/8 of [L, H], and every other double is
 * at least U/2 away from L or H, so q1 = RN(z) is L or H. Hence Q lies between q1 and its
 * neighbour q2 in the direction of Q (or Q = q1), and RN(Q) is q1 or q2.
 *   r1 = |a| - q1*d and r2 = |a| - q2*d (fnmadd) are exact: for q = q1 or q2, with exponents
 *   eq, ed, both |a| and q*d are integer multiples of 2^(eq+ed-104) (|a| >= 2^(eq+ed-1)), and
 *   |a - q*d| = d|Q - q| < 2^(ed+1) 2^(eq-52) (|Q - q| is at most the spacing between q1 and q2,
 *   at most the spacing at q): an integer below 2^53 times 2^(eq+ed-104) >= 2^-1005, a double.
 *   So sign(r1) = sign(Q - q1): q2 is q1's bit pattern + 1 (next up) if r1 >= +0, else - 1
 *   (q1 > 0 is normal, so this is the adjacent double, across a binade too).
 *   |r_i| = d |Q - q_i| exactly, so the nearer of q1, q2 is the one with the smaller |r|:
 *   vrangepd (smaller magnitude, its own sign) then == r2 (r1 = r2 would need r1 = r2 = 0).
 *   There is never a tie: a midpoint m of two doubles has 54 significant bits, the last one 1;
 *   a = m*d would need the 54-bit odd significand of m times d's significand to be a 53-bit
 *   significand times a power of two, impossible. RN(a/d) = sign(a) RN(|a|/d): the sign of a
 *   is put back last (|a| and d > 0 give the positive quotient).
 * Assumes the default rounding mode (round to nearest), as the NumPy reference does; FTZ/DAZ
 * would not matter (no subnormal in the fast lanes). Tests: tests/test_exact_divide.py (hook
 * fnn_div_exact_f64 runs this very function), near-midpoint quotients included. */
#if defined(__AVX512F__) && defined(__AVX512DQ__) && FNN_IS_F32 == 0
#define FNN_OPT_EXACT_DIV 1
FNN_OPT_INLINE __m512d FNAME(div_rn8)(__m512d a, __m512d d)
{
    const __m512d one = _mm512_set1_pd(1.0);
    const __m512d aa = _mm512_abs_pd(a);
    __mmask8 fast = _mm512_cmp_pd_mask(aa, _mm512_set1_pd(0x1p-900), _CMP_GE_OQ);
    fast = _mm512_mask_cmp_pd_mask(fast, aa, _mm512_set1_pd(0x1p900), _CMP_LE_OQ);
    fast = _mm512_mask_cmp_pd_mask(fast, d, _mm512_set1_pd(0x1p-100), _CMP_GE_OQ);
    fast = _mm512_mask_cmp_pd_mask(fast, d, _mm512_set1_pd(0x1p100), _CMP_LE_OQ);
    __m512d y = _mm512_rcp14_pd(d);
    const __m512d e = _mm512_fnmadd_pd(d, y, one);
    y = _mm512_fmadd_pd(y, e, y);
    __m512d q = _mm512_mul_pd(aa, y);
    const __m512d r0 = _mm512_fnmadd_pd(q, d, aa);
    q = _mm512_fmadd_pd(r0, y, q);
    const __m512d r1 = _mm512_fnmadd_pd(q, d, aa);
    const __m512i step = _mm512_or_si512(_mm512_srai_epi64(_mm512_castpd_si512(r1), 63),
                                         _mm512_set1_epi64(1));
    const __m512d q2 = _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(q), step));
    const __m512d r2 = _mm512_fnmadd_pd(q2, d, aa);
    const __mmask8 take2 = _mm512_cmp_pd_mask(_mm512_range_pd(r1, r2, 0x06), r2, _CMP_EQ_OQ);
    q = _mm512_mask_blend_pd(take2, q, q2);
    q = _mm512_castsi512_pd(_mm512_ternarylogic_epi64(         /* q | (a & sign bit) */
        _mm512_castpd_si512(q), _mm512_castpd_si512(a), _mm512_set1_epi64(INT64_MIN), 0xF8));
    if (__builtin_expect(fast != 0xFF, 0))
        q = _mm512_mask_div_pd(q, (__mmask8)~fast, a, d);
    return q;
}
#else
#define FNN_OPT_EXACT_DIV 0
#endif

#if FNN_IS_F32 == 0
/* out[i] = a[i] / d[i] with the division the float64 rules use (test hook): returns 1 if the
 * FMA sequence above ran (AVX-512 copy; the last n % 8 elements use the divider), 0 if every
 * element used the hardware division. */
static int FNAME(div_exact)(const REAL *a, const REAL *d, REAL *out, ptrdiff_t n)
{
    ptrdiff_t i = 0;
#if FNN_OPT_EXACT_DIV
    for (; i + 8 <= n; i += 8)
        _mm512_storeu_pd(out + i, FNAME(div_rn8)(_mm512_loadu_pd(a + i), _mm512_loadu_pd(d + i)));
#endif
    for (; i < n; i++) out[i] = a[i] / d[i];
    return FNN_OPT_EXACT_DIV;
}
#endif

typedef struct {
    REAL lr, mu, mu2, c_nes, one_m_mu, one_m_b2, eps, wd, decay;
    ACC lr_t;
} FNAME(optim_consts);

FNN_OPT_INLINE void FNAME(seg_sgd)(REAL *restrict p, const REAL *restrict g, REAL *s1, REAL *s2,
                                   ptrdiff_t n, const FNAME(optim_consts) *c, int WD)
{
    (void)s1; (void)s2;
    const REAL lr = c->lr, wd = c->wd;
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL gi = g[i];
        if (WD) gi = gi + wd * p[i];
        p[i] = p[i] - lr * gi;
    }
}

FNN_OPT_INLINE void FNAME(seg_momentum)(REAL *restrict p, const REAL *restrict g,
                                        REAL *restrict v, REAL *s2, ptrdiff_t n,
                                        const FNAME(optim_consts) *c, int WD)
{
    (void)s2;
    const REAL lr = c->lr, mu = c->mu, wd = c->wd;
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL gi = g[i];
        if (WD) gi = gi + wd * p[i];
        REAL vi = mu * v[i] - lr * gi;
        v[i] = vi;
        p[i] = p[i] + vi;
    }
}

/* Current book order: p += mu^2 v_old; p -= (1+mu) lr g; v = mu v - lr g (two steps). */
FNN_OPT_INLINE void FNAME(seg_nesterov)(REAL *restrict p, const REAL *restrict g,
                                        REAL *restrict v, REAL *s2, ptrdiff_t n,
                                        const FNAME(optim_consts) *c, int WD)
{
    (void)s2;
    const REAL lr = c->lr, mu = c->mu, mu2 = c->mu2, cn = c->c_nes, wd = c->wd;
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL pi = p[i], vi = v[i], gi = g[i];
        if (WD) gi = gi + wd * pi;
        pi = pi + mu2 * vi;
        pi = pi - cn * gi;
        p[i] = pi;
        vi = vi * mu;
        v[i] = vi - lr * gi;
    }
}

FNN_OPT_INLINE void FNAME(seg_adagrad)(REAL *restrict p, const REAL *restrict g,
                                       REAL *restrict h, REAL *s2, ptrdiff_t n,
                                       const FNAME(optim_consts) *c, int WD)
{
    (void)s2;
    const REAL lr = c->lr, eps = c->eps, wd = c->wd;
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL gi = g[i];
        if (WD) gi = gi + wd * p[i];
        REAL hi = h[i] + gi * gi;
        h[i] = hi;
        p[i] = p[i] - (lr * gi) / (FNN_OPT_SQRT(hi) + eps);
    }
}

FNN_OPT_INLINE void FNAME(seg_rmsprop)(REAL *restrict p, const REAL *restrict g,
                                       REAL *restrict h, REAL *s2, ptrdiff_t n,
                                       const FNAME(optim_consts) *c, int WD)
{
    (void)s2;
    const REAL lr = c->lr, rho = c->mu, one_m_rho = c->one_m_mu, eps = c->eps, wd = c->wd;
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL gi = g[i];
        if (WD) gi = gi + wd * p[i];
        REAL hi = h[i] * rho;
        hi = hi + (one_m_rho * gi) * gi;
        h[i] = hi;
        p[i] = p[i] - (lr * gi) / (FNN_OPT_SQRT(hi) + eps);
    }
}

/* MODE 0: Adam; 1: Adam with coupled L2 (g' = g + wd p); 2: AdamW (p decayed by lr*wd). */
FNN_OPT_INLINE void FNAME(seg_adam)(REAL *restrict p, const REAL *restrict g,
                                    REAL *restrict m, REAL *restrict v, ptrdiff_t n,
                                    const FNAME(optim_consts) *c, int MODE)
{
    const REAL b1c = c->one_m_mu, b2c = c->one_m_b2, eps = c->eps, wd = c->wd;
    const REAL decay = c->decay;
    const REAL lr_t = (REAL)c->lr_t;
    for (ptrdiff_t i = 0; i < n; i++) {
        REAL pi = p[i], gi = g[i], mi = m[i], vi = v[i];
        if (MODE == 1) gi = gi + wd * pi;
        mi = mi + b1c * (gi - mi);
        vi = vi + b2c * (gi * gi - vi);
        m[i] = mi;
        v[i] = vi;
        if (MODE == 2) pi = pi * decay;
        p[i] = pi - (lr_t * mi) / (FNN_OPT_SQRT(vi) + eps);
    }
}

#if FNN_OPT_EXACT_DIV
/* The AVX-512 float64 AdaGrad, RMSprop and Adam/AdamW: the loops above, 8 elements at a time
 * with the division by FNAME(div_rn8) and every other operation in the same order and
 * rounding (explicit intrinsics: no contraction); the last n % 8 through the loops above.
 * FNN_OPT_RUN first aligns the streams (FNAME(align_head)). Each vector's loads are issued
 * before the previous vector's stores: NumPy places large arrays 16 bytes past a page, fastnn's
 * state 64-byte aligned, and a load 48 bytes past a pending store modulo 4 KiB waits for it
 * (4K aliasing): Adam's loop then ran ~10-20 % slower. */

/* AdaGrad (RMS 0: h += g*g) and RMSprop (RMS 1: h = h*rho + ((1-rho)*g)*g), then
 * p -= (lr*g) / (sqrt(h) + eps): one loop, RMS a compile-time constant at each call. */
FNN_OPT_INLINE void FNAME(seg_sqdiv_fma)(REAL *restrict p, const REAL *restrict g,
                                         REAL *restrict h, REAL *s2, ptrdiff_t n,
                                         const FNAME(optim_consts) *c, int WD, int RMS)
{
    ptrdiff_t i = 0;
    const __m512d vlr = _mm512_set1_pd(c->lr), veps = _mm512_set1_pd(c->eps);
    const __m512d vwd = _mm512_set1_pd(c->wd), vrho = _mm512_set1_pd(c->mu);
    const __m512d v1mr = _mm512_set1_pd(c->one_m_mu);
    __m512d pn = _mm512_setzero_pd(), gn = pn, hn = pn;
    if (n >= 8) {
        pn = _mm512_loadu_pd(p);
        gn = _mm512_loadu_pd(g);
        hn = _mm512_loadu_pd(h);
    }
    for (; i + 8 <= n; i += 8) {
        __m512d pi = pn, gi = gn, hp = hn;
        if (i + 16 <= n) {                   /* the next loads before this vector's stores */
            pn = _mm512_loadu_pd(p + i + 8);
            gn = _mm512_loadu_pd(g + i + 8);
            hn = _mm512_loadu_pd(h + i + 8);
        }
        if (WD) gi = _mm512_add_pd(gi, _mm512_mul_pd(vwd, pi));
        __m512d hi;
        if (RMS)
            hi = _mm512_add_pd(_mm512_mul_pd(hp, vrho),
                               _mm512_mul_pd(_mm512_mul_pd(v1mr, gi), gi));
        else
            hi = _mm512_add_pd(hp, _mm512_mul_pd(gi, gi));
        _mm512_storeu_pd(h + i, hi);
        __m512d q = FNAME(div_rn8)(_mm512_mul_pd(vlr, gi),
                                   _mm512_add_pd(_mm512_sqrt_pd(hi), veps));
        _mm512_storeu_pd(p + i, _mm512_sub_pd(pi, q));
    }
    if (RMS) FNAME(seg_rmsprop)(p + i, g + i, h + i, s2, n - i, c, WD);
    else FNAME(seg_adagrad)(p + i, g + i, h + i, s2, n - i, c, WD);
}

FNN_OPT_INLINE void FNAME(seg_adagrad_fma)(REAL *restrict p, const REAL *restrict g,
                                           REAL *restrict h, REAL *s2, ptrdiff_t n,
                                           const FNAME(optim_consts) *c, int WD)
{
    FNAME(seg_sqdiv_fma)(p, g, h, s2, n, c, WD, 0);
}

FNN_OPT_INLINE void FNAME(seg_rmsprop_fma)(REAL *restrict p, const REAL *restrict g,
                                           REAL *restrict h, REAL *s2, ptrdiff_t n,
                                           const FNAME(optim_consts) *c, int WD)
{
    FNAME(seg_sqdiv_fma)(p, g, h, s2, n, c, WD, 1);
}

FNN_OPT_INLINE void FNAME(seg_adam_fma)(REAL *restrict p, const REAL *restrict g,
                                        REAL *restrict m, REAL *restrict v, ptrdiff_t n,
                                        const FNAME(optim_consts) *c, int MODE)
{
    ptrdiff_t i = 0;
    const __m512d vb1c = _mm512_set1_pd(c->one_m_mu), vb2c = _mm512_set1_pd(c->one_m_b2);
    const __m512d veps = _mm512_set1_pd(c->eps), vwd = _mm512_set1_pd(c->wd);
    const __m512d vdecay = _mm512_set1_pd(c->decay), vlr_t = _mm512_set1_pd(c->lr_t);
    __m512d pn = _mm512_setzero_pd(), gn = pn, mn = pn, vn = pn;
    if (n >= 8) {
        pn = _mm512_loadu_pd(p);
        gn = _mm512_loadu_pd(g);
        mn = _mm512_loadu_pd(m);
        vn = _mm512_loadu_pd(v);
    }
    for (; i + 8 <= n; i += 8) {
        __m512d pi = pn, gi = gn, mi = mn, vi = vn;
        if (i + 16 <= n) {                   /* the next loads before this vector's stores */
            pn = _mm512_loadu_pd(p + i + 8);
            gn = _mm512_loadu_pd(g + i + 8);
            mn = _mm512_loadu_pd(m + i + 8);
            vn = _mm512_loadu_pd(v + i + 8);
        }
        if (MODE == 1) gi = _mm512_add_pd(gi, _mm512_mul_pd(vwd, pi));
        mi = _mm512_add_pd(mi, _mm512_mul_pd(vb1c, _mm512_sub_pd(gi, mi)));
        vi = _mm512_add_pd(vi, _mm512_mul_pd(vb2c, _mm512_sub_pd(_mm512_mul_pd(gi, gi), vi)));
        _mm512_storeu_pd(m + i, mi);
        _mm512_storeu_pd(v + i, vi);
        if (MODE == 2) pi = _mm512_mul_pd(pi, vdecay);
        __m512d q = FNAME(div_rn8)(_mm512_mul_pd(vlr_t, mi),
                                   _mm512_add_pd(_mm512_sqrt_pd(vi), veps));
        _mm512_storeu_pd(p + i, _mm512_sub_pd(pi, q));
    }
    FNAME(seg_adam)(p + i, g + i, m + i, v + i, n - i, c, MODE);
}
#define FNN_SEG_ADAGRAD seg_adagrad_fma
#define FNN_SEG_RMSPROP seg_rmsprop_fma
#define FNN_SEG_ADAM seg_adam_fma
#else
#define FNN_SEG_ADAGRAD seg_adagrad
#define FNN_SEG_RMSPROP seg_rmsprop
#define FNN_SEG_ADAM seg_adam
#endif

/* Software prefetch for long segments: on one core, streaming from DRAM with 3-5 streams is
 * latency-bound and the hardware prefetchers alone leave ~10 % of the bandwidth unused. Blocks
 * of FNN_PF_BLOCK elements; each block first prefetches the cache lines FNN_PF_DIST bytes ahead
 * in every stream (prefetches never fault, so running past the end is harmless). */
#ifdef FNN_OPT_PREFETCH_MIN                       /* build-time override (experiments) */
#define FNN_PF_MIN FNN_OPT_PREFETCH_MIN
#else
#define FNN_PF_MIN 32768                          /* elements: shorter segments skip it */
#endif
#define FNN_PF_BLOCK 64                           /* elements per block */
#define FNN_PF_DIST (2048 / (ptrdiff_t)sizeof(REAL))
#define FNN_PF_LINE (64 / (ptrdiff_t)sizeof(REAL))

FNN_OPT_INLINE void FNAME(prefetch)(const REAL *p, const REAL *g, const REAL *s1, const REAL *s2,
                                    int NS)
{
    for (ptrdiff_t k = 0; k < FNN_PF_BLOCK; k += FNN_PF_LINE) {
        __builtin_prefetch(p + FNN_PF_DIST + k, 1, 3);
        __builtin_prefetch(g + FNN_PF_DIST + k, 0, 3);
        if (NS >= 1) __builtin_prefetch(s1 + FNN_PF_DIST + k, 1, 3);
        if (NS >= 2) __builtin_prefetch(s2 + FNN_PF_DIST + k, 1, 3);
    }
}

/* Elements (0..7, at most n) to update first so that the most streams then start on a 64-byte
 * boundary, the written ones (p and the NS states) counting twice, g once: the explicit 512-bit
 * loops of the FMA-division rules would split every unaligned access over two cache lines.
 * NumPy aligns arrays to 16 bytes only, while fastnn's optimizers allocate their state
 * 64-byte aligned (so aligning p alone would misalign Adam's m and v). */
static inline ptrdiff_t FNAME(align_head)(const REAL *p, const REAL *g, const REAL *s1,
                                          const REAL *s2, int NS, ptrdiff_t n)
{
    ptrdiff_t off[4], w[4] = {2, 1, 2, 2}, best = 0, best_score = -1;
    const REAL *ptr[4] = {p, g, s1, s2};
    for (int k = 0; k < 2 + NS; k++)
        off[k] = (ptrdiff_t)(((uintptr_t)0 - (uintptr_t)ptr[k]) & 63) / (ptrdiff_t)sizeof(REAL);
    for (int j = 0; j < 2 + NS; j++) {           /* candidate: align stream j */
        ptrdiff_t score = 0;
        for (int k = 0; k < 2 + NS; k++)
            if (off[k] == off[j]) score += w[k];
        if (score > best_score || (score == best_score && off[j] < best)) {
            best = off[j];
            best_score = score;
        }
    }
    return best < n ? best : n;
}

/* FN over the n elements at p, g, s1, s2 (NS state streams), blocked with prefetch if long;
 * ALIGN: first the FNAME(align_head) elements. */
#define FNN_OPT_RUN(FN, NS, MODE, ALIGN)                                                       \
    do {                                                                                       \
        ptrdiff_t i_ = 0;                                                                      \
        if (ALIGN) {                                                                           \
            i_ = FNAME(align_head)(p, g, s1, s2, NS, n);                                       \
            FNAME(FN)(p, g, s1, s2, i_, c, MODE);                                              \
        }                                                                                      \
        if (n - i_ >= FNN_PF_MIN) {                                                            \
            for (; i_ + FNN_PF_BLOCK <= n; i_ += FNN_PF_BLOCK) {                               \
                FNAME(prefetch)(p + i_, g + i_, NS >= 1 ? s1 + i_ : s1,                        \
                                NS >= 2 ? s2 + i_ : s2, NS);                                   \
                FNAME(FN)(p + i_, g + i_, NS >= 1 ? s1 + i_ : s1, NS >= 2 ? s2 + i_ : s2,      \
                          FNN_PF_BLOCK, c, MODE);                                              \
            }                                                                                  \
        }                                                                                      \
        FNAME(FN)(p + i_, g + i_, NS >= 1 ? s1 + i_ : s1, NS >= 2 ? s2 + i_ : s2, n - i_, c,   \
                  MODE);                                                                       \
    } while (0)

/* Update elements [lo, hi) of one segment. */
static void FNAME(optim_segment)(int kind, const FNAME(optim_consts) *c, int wd_on,
                                 REAL *p, REAL *g, REAL *s1, REAL *s2, ptrdiff_t lo, ptrdiff_t hi)
{
    ptrdiff_t n = hi - lo;
    if (n <= 0) return;
    p += lo;
    g += lo;
    if (s1) s1 += lo;
    if (s2) s2 += lo;
    switch (kind) {
    case FNN_OPT_SGD:
        if (wd_on) FNN_OPT_RUN(seg_sgd, 0, 1, 0); else FNN_OPT_RUN(seg_sgd, 0, 0, 0);
        break;
    case FNN_OPT_MOMENTUM:
        if (wd_on) FNN_OPT_RUN(seg_momentum, 1, 1, 0); else FNN_OPT_RUN(seg_momentum, 1, 0, 0);
        break;
    case FNN_OPT_NESTEROV:
        if (wd_on) FNN_OPT_RUN(seg_nesterov, 1, 1, 0); else FNN_OPT_RUN(seg_nesterov, 1, 0, 0);
        break;
    case FNN_OPT_ADAGRAD:
        if (wd_on) FNN_OPT_RUN(FNN_SEG_ADAGRAD, 1, 1, FNN_OPT_EXACT_DIV);
        else FNN_OPT_RUN(FNN_SEG_ADAGRAD, 1, 0, FNN_OPT_EXACT_DIV);
        break;
    case FNN_OPT_RMSPROP:
        if (wd_on) FNN_OPT_RUN(FNN_SEG_RMSPROP, 1, 1, FNN_OPT_EXACT_DIV);
        else FNN_OPT_RUN(FNN_SEG_RMSPROP, 1, 0, FNN_OPT_EXACT_DIV);
        break;
    case FNN_OPT_ADAM:
        if (wd_on) FNN_OPT_RUN(FNN_SEG_ADAM, 2, 1, FNN_OPT_EXACT_DIV);
        else FNN_OPT_RUN(FNN_SEG_ADAM, 2, 0, FNN_OPT_EXACT_DIV);
        break;
    case FNN_OPT_ADAMW:
        if (wd_on) FNN_OPT_RUN(FNN_SEG_ADAM, 2, 2, FNN_OPT_EXACT_DIV);
        else FNN_OPT_RUN(FNN_SEG_ADAM, 2, 0, FNN_OPT_EXACT_DIV);
        break;
    default:
        break;
    }
}

/* Split the concatenation of all segments into nt contiguous blocks, 64-element aligned in the
 * global index space; thread `part` updates the pieces of the segments inside its block. */
static void FNAME(optim_block)(int kind, const FNAME(optim_consts) *c, int wd_on,
                               ptrdiff_t n_tensors, REAL *const *p, REAL *const *g,
                               REAL *const *s1, REAL *const *s2, const ptrdiff_t *n,
                               ptrdiff_t total, int part, int parts)
{
    ptrdiff_t chunks = (total + 63) / 64, clo, chi;
    fnn_block(chunks, part, parts, &clo, &chi);
    ptrdiff_t lo = clo * 64, hi = chi * 64 < total ? chi * 64 : total;
    ptrdiff_t start = 0;
    for (ptrdiff_t t = 0; t < n_tensors && start < hi; t++) {
        ptrdiff_t end = start + n[t];
        if (end > lo) {
            ptrdiff_t a = lo > start ? lo - start : 0;
            ptrdiff_t b = hi < end ? hi - start : n[t];
            FNAME(optim_segment)(kind, c, wd_on, p[t], g[t], s1 ? s1[t] : NULL,
                                 s2 ? s2[t] : NULL, a, b);
        }
        start = end;
    }
}

/* Thread `part` of two: one of two contiguous halves of each tensor, split between rows (of
 * cols[t] elements) as fnn_halves splits them, or between elements for a 1-D tensor or one of
 * fewer than 32 rows (see optim.h). */
static void FNAME(optim_owned)(int kind, const FNAME(optim_consts) *c, int wd_on,
                               ptrdiff_t n_tensors, REAL *const *p, REAL *const *g,
                               REAL *const *s1, REAL *const *s2, const ptrdiff_t *n,
                               const ptrdiff_t *cols, int part)
{
    for (ptrdiff_t t = 0; t < n_tensors; t++) {
        const ptrdiff_t w = cols[t] > 0 && n[t] % cols[t] == 0 ? cols[t] : n[t];
        ptrdiff_t lo, hi;
        if (w < n[t] && n[t] / w >= 32) {
            fnn_halves(n[t] / w, part, 2, &lo, &hi);
            lo *= w;
            hi *= w;
        } else {
            fnn_halves(n[t], part, 2, &lo, &hi);
        }
        FNAME(optim_segment)(kind, c, wd_on, p[t], g[t], s1 ? s1[t] : NULL, s2 ? s2[t] : NULL,
                             lo, hi);
    }
}

static int FNAME(optim_step)(int kind, const fnn_optim_hparams *hp, ptrdiff_t n_tensors,
                             REAL *const *p, REAL *const *g, REAL *const *s1, REAL *const *s2,
                             const ptrdiff_t *n, const ptrdiff_t *cols, int n_threads)
{
    if (kind < 0 || kind >= FNN_OPT_COUNT) return -1;
    FNAME(optim_consts) c;
    /* Each constant is formed in double, as the Python expression is, then rounded once. */
    c.lr = (REAL)hp->lr;
    c.mu = (REAL)hp->momentum;
    c.mu2 = (REAL)(hp->momentum * hp->momentum);
    c.c_nes = (REAL)((1.0 + hp->momentum) * hp->lr);
    c.one_m_mu = (REAL)(1.0 - hp->momentum);
    c.one_m_b2 = (REAL)(1.0 - hp->beta2);
    c.eps = (REAL)hp->eps;
    c.wd = (REAL)hp->weight_decay;
    c.decay = (REAL)(1.0 - hp->lr_wd);
    c.lr_t = hp->lr;
    int wd_on = kind == FNN_OPT_ADAMW ? hp->lr_wd != 0.0 : hp->weight_decay != 0.0;

    ptrdiff_t total = 0;
    for (ptrdiff_t t = 0; t < n_tensors; t++) total += n[t];
    /* The rules with a square root and a division per element (AdaGrad, RMSprop, Adam, AdamW)
     * are bound by the divider, not by memory: ~8x the work of a memory-bound update per
     * element (float64 Adam: ~1.9 ns/element here, ~1.4 with the AVX-512 FMA division), so a
     * second thread pays from ~128K elements (e.g. the chapter-6 network's 131K parameters). */
    const int divider_bound = kind == FNN_OPT_ADAGRAD || kind == FNN_OPT_RMSPROP
                              || kind == FNN_OPT_ADAM || kind == FNN_OPT_ADAMW;
    int nt = fnn_threads_for(divider_bound ? 8 * total : total, n_threads);
    if (nt <= 1) {
        for (ptrdiff_t t = 0; t < n_tensors; t++)
            FNAME(optim_segment)(kind, &c, wd_on, p[t], g[t], s1 ? s1[t] : NULL,
                                 s2 ? s2[t] : NULL, 0, n[t]);
        return 0;
    }
    #pragma omp parallel num_threads(nt)
    {
        int part = 0, parts = 1;
#ifdef _OPENMP
        part = omp_get_thread_num();
        parts = omp_get_num_threads();
#endif
        if (cols != NULL && parts == 2)
            FNAME(optim_owned)(kind, &c, wd_on, n_tensors, p, g, s1, s2, n, cols, part);
        else
            FNAME(optim_block)(kind, &c, wd_on, n_tensors, p, g, s1, s2, n, total, part, parts);
    }
    return 0;
}

#undef FNN_OPT_INLINE
#undef FNN_OPT_EXACT_DIV
#undef FNN_SEG_ADAGRAD
#undef FNN_SEG_RMSPROP
#undef FNN_SEG_ADAM
#undef FNN_OPT_SQRT
#undef FNN_OPT_RUN
#undef FNN_PF_MIN
#undef FNN_PF_BLOCK
#undef FNN_PF_DIST
#undef FNN_PF_LINE
