/* Optimizer update rules: one fused, in-place pass per segment (see optim.h for the formulas).
 * Included by fnn_multiversion.h with REAL, FNN_T, FNN_ISA defined (see fnn_common.h).
 *
 * Each rule is a plain loop over restrict pointers that GCC vectorises at every ISA level. The
 * `WD` argument is a compile-time 0/1 at every call site (always_inline), so the book's rule
 * (no weight decay) carries no extra work and is exactly the NumPy reference's arithmetic.
 * Constants are rounded to REAL once, as NumPy does with Python-float scalars (NEP 50). */

#define FNN_OPT_INLINE static inline __attribute__((always_inline))
#define FNN_OPT_SQRT(x) _Generic((x), float: sqrtf, double: sqrt)(x)

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

/* FN over the n elements at p, g, s1, s2 (NS state streams), blocked with prefetch if long. */
#define FNN_OPT_RUN(FN, NS, MODE)                                                              \
    do {                                                                                       \
        ptrdiff_t i_ = 0;                                                                      \
        if (n >= FNN_PF_MIN) {                                                                 \
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
        if (wd_on) FNN_OPT_RUN(seg_sgd, 0, 1); else FNN_OPT_RUN(seg_sgd, 0, 0);
        break;
    case FNN_OPT_MOMENTUM:
        if (wd_on) FNN_OPT_RUN(seg_momentum, 1, 1); else FNN_OPT_RUN(seg_momentum, 1, 0);
        break;
    case FNN_OPT_NESTEROV:
        if (wd_on) FNN_OPT_RUN(seg_nesterov, 1, 1); else FNN_OPT_RUN(seg_nesterov, 1, 0);
        break;
    case FNN_OPT_ADAGRAD:
        if (wd_on) FNN_OPT_RUN(seg_adagrad, 1, 1); else FNN_OPT_RUN(seg_adagrad, 1, 0);
        break;
    case FNN_OPT_RMSPROP:
        if (wd_on) FNN_OPT_RUN(seg_rmsprop, 1, 1); else FNN_OPT_RUN(seg_rmsprop, 1, 0);
        break;
    case FNN_OPT_ADAM:
        if (wd_on) FNN_OPT_RUN(seg_adam, 2, 1); else FNN_OPT_RUN(seg_adam, 2, 0);
        break;
    case FNN_OPT_ADAMW:
        if (wd_on) FNN_OPT_RUN(seg_adam, 2, 2); else FNN_OPT_RUN(seg_adam, 2, 0);
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
     * element (float64 Adam: ~2 ns/element here), so a second thread pays from ~128K elements
     * (e.g. the chapter-6 network's 131K parameters). */
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
#undef FNN_OPT_SQRT
#undef FNN_OPT_RUN
#undef FNN_PF_MIN
#undef FNN_PF_BLOCK
#undef FNN_PF_DIST
#undef FNN_PF_LINE
