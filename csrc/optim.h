/* Optimizer update kernels (float: _f32, double: _f64).
 *
 * One call updates a whole list of tensors in place: segment i is the n[i] elements at p[i]
 * (parameter), g[i] (gradient), s1[i] / s2[i] (state; NULL tables when the rule has none).
 * Every rule is one fused pass per element with no temporaries. Large totals are split over
 * threads in contiguous blocks of the concatenated index space (static schedule); element-wise
 * rules give identical results for any thread count. Segments must not overlap each other
 * partially (a gradient may be its own parameter only at the same address).
 *
 * Rules (book-compat.md section 6; wd = coupled L2 weight decay, g' = g + wd*p when wd != 0):
 *   SGD        p -= lr*g'
 *   MOMENTUM   v = mu*v - lr*g';  p += v                                        (s1 = v)
 *   NESTEROV   p += mu*mu*v;  p -= (1+mu)*lr*g';  v *= mu;  v -= lr*g'           (s1 = v)
 *   ADAGRAD    h += g'*g';  p -= lr*g' / (sqrt(h) + eps)                        (s1 = h)
 *   RMSPROP    h *= rho;  h += (1-rho)*g'*g';  p -= lr*g' / (sqrt(h) + eps)    (s1 = h)
 *   ADAM       m += (1-b1)*(g'-m);  v += (1-b2)*(g'*g'-v);
 *              p -= lr_t*m / (sqrt(v) + eps)   (lr_t: bias correction folded in) (s1 = m, s2 = v)
 *   ADAMW      as ADAM with g' = g, then p is also decayed: p = p - lr_t*m/(...) - lr_wd*p,
 *              computed as p*(1 - lr_wd) - lr_t*m/(...) with lr_wd = lr*weight_decay.
 * float32 arithmetic follows the NumPy reference operation by operation (each step rounded to
 * float32, no FMA contraction), so SGD..RMSprop match it bit for bit; the Adam step in float32
 * is computed in float32 (the NumPy reference computes that one product in float64).
 * float64 likewise, bit for bit for every rule; the AVX-512 copies of AdaGrad, RMSprop, Adam
 * and AdamW divide without the divider (fnn_div_exact_f64's sequence: the same quotients). */
#ifndef FNN_OPTIM_H
#define FNN_OPTIM_H
#include <stddef.h>

enum {
    FNN_OPT_SGD = 0,
    FNN_OPT_MOMENTUM = 1,
    FNN_OPT_NESTEROV = 2,
    FNN_OPT_ADAGRAD = 3,
    FNN_OPT_RMSPROP = 4,
    FNN_OPT_ADAM = 5,
    FNN_OPT_ADAMW = 6,
    FNN_OPT_COUNT = 7
};

typedef struct {
    double lr;           /* learning rate; ADAM/ADAMW: lr_t (bias-corrected, computed by the caller) */
    double momentum;     /* MOMENTUM/NESTEROV: mu; RMSPROP: decay rate rho; ADAM/ADAMW: beta1 */
    double beta2;        /* ADAM/ADAMW */
    double eps;          /* ADAGRAD/RMSPROP/ADAM/ADAMW: added after the square root (book: 1e-7) */
    double weight_decay; /* coupled L2 coefficient (0: the book's rule, exactly) */
    double lr_wd;        /* ADAMW: lr * weight_decay (decoupled) */
} fnn_optim_hparams;

/* The tensors of one validated update call, one dtype (fastnn/_optim.pyx: StepPlan.reserve, then
 * StepPlan.reserved_tables): what fnn_optim_step_T takes, for a training pass to apply the
 * update itself (netstep.h). s1, s2: NULL for a rule with fewer states. */
typedef struct {
    ptrdiff_t n_tensors;
    void **p, **g, **s1, **s2;
    ptrdiff_t *n;
} fnn_optim_tables;

/* Updates n_tensors tensors (n[t] elements each) in place. cols: NULL, or each tensor's row width
 * (its last dimension; its size if 1-D): on two threads each thread then updates one half of
 * every tensor's rows (fnn_halves; the elements of a tensor with fewer than 32 rows), the halves
 * in which the training pass's two-thread schedule computes the first layer's weight gradient;
 * otherwise (and on more threads) the threads take contiguous blocks of all the elements. The
 * results do not depend on the split (every update is element-wise).
 * Returns 0, or -1 for an unknown kind (nothing is written then). */
#define FNN_DECLARE(T, REAL)                                                                   \
    int fnn_optim_step_##T(int kind, const fnn_optim_hparams *hp, ptrdiff_t n_tensors,         \
                           REAL *const *p, REAL *const *g, REAL *const *s1, REAL *const *s2,   \
                           const ptrdiff_t *n, const ptrdiff_t *cols, int n_threads);
FNN_DECLARE(f32, float)
FNN_DECLARE(f64, double)
#undef FNN_DECLARE

/* out[i] = a[i] / d[i] (n elements), with the division the float64 rules use: on AVX-512 the
 * correctly rounded FMA sequence of optim_body.h (div_rn8), elsewhere the hardware division;
 * bit for bit the same either way. Returns 1 if the FMA sequence ran, 0 if not (test hook). */
int fnn_div_exact_f64(const double *a, const double *d, double *out, ptrdiff_t n);
#endif
