/* The training pass and the inference forward of a chain of layers (see netstep.h). */
#include "netstep.h"
#include "fnn_common.h"
#include "activations.h"
#include "affine.h"
#include "batchnorm.h"
#include "dropout.h"
#include "softmax_xent.h"
#include "gemm.h"
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FNN_SPIN_PAUSE() _mm_pause()
#else
#define FNN_SPIN_PAUSE() ((void)0)
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#define FNN_YIELD() sched_yield()
#else
#define FNN_YIELD() FNN_SPIN_PAUSE()
#endif

/* The two-thread schedule needs OpenMP and the GCC/Clang atomic builtins. */
#if defined(_OPENMP) && (defined(__GNUC__) || defined(__clang__))
#define FNN_NETSTEP_TWO_THREADS 1
#else
#define FNN_NETSTEP_TWO_THREADS 0
#endif

/* Running statistics of a BatchNormalization op's features [lo, hi). */
static void running_updates(const fnn_op *op, int dbl, ptrdiff_t lo, ptrdiff_t hi)
{
    const size_t item = dbl ? sizeof(double) : sizeof(float);
    const size_t sitem = (dbl || !op->f32_state) ? sizeof(double) : sizeof(float);
    char *rm_old = (char *)op->rm_old + lo * sitem, *rv_old = (char *)op->rv_old + lo * sitem;
    char *rm_new = (char *)op->rm_new + lo * sitem, *rv_new = (char *)op->rv_new + lo * sitem;
    char *mean = (char *)op->mean + lo * item, *var = (char *)op->var + lo * item;
    if (dbl) {
        fnn_batchnorm_running_update_f64((double *)rm_old, (double *)mean, op->momentum,
                                         (double *)rm_new, hi - lo);
        fnn_batchnorm_running_update_f64((double *)rv_old, (double *)var, op->momentum,
                                         (double *)rv_new, hi - lo);
    } else if (op->f32_state) {
        fnn_batchnorm_running_update_f32state((float *)rm_old, (float *)mean, op->momentum,
                                              (float *)rm_new, hi - lo);
        fnn_batchnorm_running_update_f32state((float *)rv_old, (float *)var, op->momentum,
                                              (float *)rv_new, hi - lo);
    } else {
        fnn_batchnorm_running_update_f32((double *)rm_old, (float *)mean, op->momentum,
                                         (double *)rm_new, hi - lo);
        fnn_batchnorm_running_update_f32((double *)rv_old, (float *)var, op->momentum,
                                         (double *)rv_new, hi - lo);
    }
}

/* Rows [r0, r1) of op's training forward (the whole op: rows [0, N), with up to nt kernel
 * threads). The bias is folded into the GEMM: y = b, then y += x W. A BatchNormalization needs
 * every row's statistics: its whole forward here, or, in the two-thread schedule, see
 * batchnorm_rows. */
static void forward_rows(fnn_op *op, ptrdiff_t N, int dbl, const fnn_blas *blas, ptrdiff_t r0,
                         ptrdiff_t r1, int nt)
{
    const size_t item = dbl ? sizeof(double) : sizeof(float);
    const ptrdiff_t lo = r0 * op->d_out, hi = r1 * op->d_out, n = N * op->d_out;
    if (r1 <= r0)
        return;
    switch (op->kind) {
    case FNN_OP_AFFINE: {
        char *y = (char *)op->y + lo * item;
        if (dbl) fnn_bias_fill_f64(op->b, (double *)y, r1 - r0, op->d_out);
        else fnn_bias_fill_f32(op->b, (float *)y, r1 - r0, op->d_out);
        fnn_gemm(blas, dbl, 0, 0, (int)(r1 - r0), (int)op->d_out, (int)op->d_in, 1.0,
                 (const char *)op->x + r0 * op->d_in * item, (int)op->d_in, op->W,
                 (int)op->d_out, 1.0, y, (int)op->d_out);
        break;
    }
    case FNN_OP_BATCHNORM:
        if (dbl)
            fnn_batchnorm_forward_train_f64(op->x, N, op->d_out, op->gamma, op->beta, op->eps,
                                            op->y, op->mean, op->var, op->std, nt);
        else
            fnn_batchnorm_forward_train_f32(op->x, N, op->d_out, op->gamma, op->beta, op->eps,
                                            op->y, op->mean, op->var, op->std, nt);
        running_updates(op, dbl, 0, op->d_out);
        break;
    case FNN_OP_RELU:
        if (dbl)
            fnn_relu_forward_f64((const double *)op->x + lo, (double *)op->y + lo, op->mask + lo,
                                 hi - lo, nt);
        else
            fnn_relu_forward_f32((const float *)op->x + lo, (float *)op->y + lo, op->mask + lo,
                                 hi - lo, nt);
        break;
    case FNN_OP_SIGMOID:
        if (dbl)
            fnn_sigmoid_forward_f64((const double *)op->x + lo, (double *)op->y + lo, hi - lo,
                                    nt);
        else
            fnn_sigmoid_forward_f32((const float *)op->x + lo, (float *)op->y + lo, hi - lo, nt);
        break;
    case FNN_OP_DROPOUT: {        /* whole mask words: rows start on a word (rows_unit) */
        const ptrdiff_t w0 = lo / FNN_DROPOUT_BLOCK;
        const ptrdiff_t w1 = r1 == N ? FNN_DROPOUT_WORDS(n) : hi / FNN_DROPOUT_BLOCK;
        if (dbl)
            fnn_dropout_forward_range_f64(op->x, op->y, op->bits, n, op->seed, op->thr, op->scale,
                                          w0, w1, fnn_threads_for(n, nt));
        else
            fnn_dropout_forward_range_f32(op->x, op->y, op->bits, n, op->seed, op->thr, op->scale,
                                          w0, w1, fnn_threads_for(n, nt));
        break;
    }
    }
}

/* Whether ops[i] is a ReLU whose output the Dropout ops[i + 1] takes and overwrites (both in
 * place on one buffer), small enough for the one-pass kernels (data in cache, one thread): the
 * serial schedule then runs the pair as one pass each way (dropout.h). */
static int relu_dropout_pair(const fnn_op *ops, int n_ops, int i, ptrdiff_t N, int dbl, int nt)
{
    const ptrdiff_t bytes = N * ops[i].d_out * (ptrdiff_t)(dbl ? sizeof(double) : sizeof(float));
    return i + 1 < n_ops && ops[i].kind == FNN_OP_RELU && ops[i + 1].kind == FNN_OP_DROPOUT
           && ops[i + 1].x == ops[i].y && ops[i + 1].y == ops[i].y && nt == 1
           && bytes < FNN_STREAM_MIN_BYTES;
}

static void forward_serial(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, const fnn_blas *blas,
                           int nt)
{
    for (int i = 0; i < n_ops; i++) {
        if (relu_dropout_pair(ops, n_ops, i, N, dbl, nt)) {
            const fnn_op *relu = &ops[i], *drop = &ops[i + 1];
            const ptrdiff_t n = N * relu->d_out;
            if (dbl)
                fnn_relu_dropout_forward_f64(relu->x, relu->y, relu->mask, drop->bits, n,
                                             drop->seed, drop->thr, drop->scale);
            else
                fnn_relu_dropout_forward_f32(relu->x, relu->y, relu->mask, drop->bits, n,
                                             drop->seed, drop->thr, drop->scale);
            i++;
            continue;
        }
        forward_rows(&ops[i], N, dbl, blas, 0, N, nt);
    }
}

/* Rows [k0, k1) of an Affine op's weight gradient dW = x^T dout (rows of dW are columns of x). */
static void affine_dW_rows(const fnn_op *op, ptrdiff_t N, int dbl, const fnn_blas *blas,
                           ptrdiff_t k0, ptrdiff_t k1)
{
    const size_t item = dbl ? sizeof(double) : sizeof(float);
    if (k1 <= k0)
        return;
    fnn_gemm(blas, dbl, 1, 0, (int)(k1 - k0), (int)op->d_out, (int)N, 1.0,
             (const char *)op->x + k0 * item, (int)op->d_in, op->dout, (int)op->d_out, 0.0,
             (char *)op->dW + k0 * op->d_out * item, (int)op->d_out);
}

static void affine_db(const fnn_op *op, ptrdiff_t N, int dbl, double *acc)
{
    if (dbl) fnn_bias_grad_f64(op->dout, N, op->d_out, op->db, acc);
    else fnn_bias_grad_f32(op->dout, N, op->d_out, op->db, acc);
}

/* The chain part of op i's backward: its input gradient from d into dx (Affine, BatchNorm;
 * element-wise ops: in place). Returns the gradient for the op before it (NULL when nothing
 * further is needed). */
static void *chain_backward(fnn_op *op, void *d, void *dx, ptrdiff_t N, int dbl,
                            const fnn_blas *blas, int nt)
{
    const ptrdiff_t n = N * op->d_out;
    switch (op->kind) {
    case FNN_OP_AFFINE:
        if (!op->need_dx)
            return NULL;
        fnn_gemm_bt(blas, dbl, (int)N, (int)op->d_in, (int)op->d_out, 1.0, d, (int)op->d_out,
                    op->W, (int)op->d_out, 0.0, dx, (int)op->d_in, op->Wt);
        return dx;
    case FNN_OP_BATCHNORM:
        if (dbl)
            fnn_batchnorm_backward_f64(d, op->x, N, op->d_out, op->gamma, op->mean, op->std, dx,
                                       op->dgamma, op->dbeta, nt);
        else
            fnn_batchnorm_backward_f32(d, op->x, N, op->d_out, op->gamma, op->mean, op->std, dx,
                                       op->dgamma, op->dbeta, nt);
        return dx;
    case FNN_OP_RELU:
        if (dbl) fnn_relu_backward_f64(d, op->mask, d, n, nt);
        else fnn_relu_backward_f32(d, op->mask, d, n, nt);
        return d;
    case FNN_OP_SIGMOID:
        if (dbl) fnn_sigmoid_backward_f64(d, op->y, d, n, nt);
        else fnn_sigmoid_backward_f32(d, op->y, d, n, nt);
        return d;
    case FNN_OP_DROPOUT:
        if (dbl) fnn_dropout_backward_f64(d, op->bits, d, n, op->scale, nt);
        else fnn_dropout_backward_f32(d, op->bits, d, n, op->scale, nt);
        return d;
    }
    return NULL;
}

static void backward_serial(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, void *d, double *acc,
                            const fnn_blas *blas, int nt)
{
    for (int i = n_ops - 1; i >= 0 && d != NULL; i--) {
        fnn_op *op = &ops[i];
        op->dout = d;
        if (i > 0 && relu_dropout_pair(ops, n_ops, i - 1, N, dbl, nt)) {
            const ptrdiff_t n = N * op->d_out;  /* the Dropout's backward, then the ReLU's */
            if (dbl) fnn_relu_dropout_backward_f64(d, op->bits, ops[i - 1].mask, d, n, op->scale);
            else fnn_relu_dropout_backward_f32(d, op->bits, ops[i - 1].mask, d, n, op->scale);
            ops[--i].dout = d;
            continue;
        }
        if (op->kind == FNN_OP_AFFINE) {       /* dW, dx, db: the layer's order */
            affine_dW_rows(op, N, dbl, blas, 0, op->d_in);
            d = chain_backward(op, d, op->dx_serial, N, dbl, blas, nt);
            affine_db(op, N, dbl, acc);
        } else {
            d = chain_backward(op, d, op->dx_serial, N, dbl, blas, nt);
        }
    }
}

static double softmax(const fnn_softmax_args *sm, ptrdiff_t N, int dbl, void *d_last, int nt)
{
    if (dbl)
        return fnn_softmax_xent_forward_f64(sm->scores, N, sm->C, sm->idx, sm->onehot, sm->probs,
                                            d_last, sm->grad_scale, nt);
    return fnn_softmax_xent_forward_f32(sm->scores, N, sm->C, sm->idx, sm->onehot, sm->probs,
                                        d_last, sm->grad_scale, nt);
}

/* The optimizer rule of upd over n_tensors tensors (fnn_optim_step_T on one thread). */
static void optim_step(const fnn_fused_update *upd, int dbl, ptrdiff_t n_tensors,
                       void *const *p, void *const *g, void *const *s1, void *const *s2,
                       const ptrdiff_t *n)
{
    if (dbl)
        fnn_optim_step_f64(upd->kind, &upd->hp, n_tensors, (double *const *)p,
                           (double *const *)g, (double *const *)s1, (double *const *)s2, n,
                           NULL, 1);
    else
        fnn_optim_step_f32(upd->kind, &upd->hp, n_tensors, (float *const *)p, (float *const *)g,
                           (float *const *)s1, (float *const *)s2, n, NULL, 1);
}

#if FNN_NETSTEP_TWO_THREADS
/* The fused optimizer update (netstep.h) of op's parameter j (0: W or gamma, 1: b or beta),
 * elements [lo, hi), on the calling thread: once its gradient is computed and the chain has
 * done with the old values (the op's input gradient). */
static void update_range(const fnn_op *op, const fnn_fused_update *upd, int dbl, int j,
                         ptrdiff_t lo, ptrdiff_t hi)
{
    const int affine = op->kind == FNN_OP_AFFINE;
    const size_t off = (size_t)lo * (dbl ? sizeof(double) : sizeof(float));
    void *p = (char *)(affine ? (j ? op->b : op->W) : (j ? op->beta : op->gamma)) + off;
    void *g = (char *)(affine ? (j ? op->db : op->dW) : (j ? op->dbeta : op->dgamma)) + off;
    void *s1 = op->s1[j] != NULL ? (char *)op->s1[j] + off : NULL;
    void *s2 = op->s2[j] != NULL ? (char *)op->s2[j] + off : NULL;
    const ptrdiff_t n = hi - lo;
    if (n <= 0)
        return;
    optim_step(upd, dbl, 1, &p, &g, s1 ? &s1 : NULL, s2 ? &s2 : NULL, &n);
}

/* One step of a wait loop: spin for a few microseconds (the pass's steps are that short, and
 * sleeping and waking would cost more), then yield the core at each step. Yielding matters when
 * more threads than cores are runnable -- e.g. another BLAS's idle workers busy-waiting after the
 * user's NumPy code: a waiter that only spun could hold the core the awaited thread needs. */
static inline void wait_step(unsigned *spins)
{
    if (*spins < 64) {
        ++*spins;
        FNN_SPIN_PAUSE();
    } else {
        FNN_YIELD();
    }
}

/* A barrier for the two threads of the pass's region: fastnn's OpenMP runtime is passive, so its
 * own barriers would sleep and wake each time. */
typedef struct { int count, sense; } spin_barrier;

static void spin_barrier_wait(spin_barrier *b, int *local_sense)
{
    *local_sense = !*local_sense;
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == 2) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&b->sense, *local_sense, __ATOMIC_RELEASE);
    } else {
        unsigned spins = 0;
        while (__atomic_load_n(&b->sense, __ATOMIC_ACQUIRE) != *local_sense)
            wait_step(&spins);
    }
}

/* The two-thread backward's per-op progress flags (`ready`, zeroed per pass), set by the chain:
 * the op's output gradient is ready (Affine ops); with a fused update, the chain has done with
 * the op (its input gradient is computed: its parameters may change). */
enum { DOUT_READY = 1, CHAIN_DONE = 2 };

static void wait_ready(const int *flag, int level)
{
    unsigned spins = 0;
    while (__atomic_load_n(flag, __ATOMIC_ACQUIRE) < level)
        wait_step(&spins);
}

/* The BLAS is set to one thread while any two-thread pass runs (passes of several networks may
 * run at once from Python threads: the GIL is released): the first pass to start saves the
 * BLAS's thread count and the last to end restores it. */
static int blas_lock = 0, blas_users = 0, blas_saved_threads = 1;

static void blas_lock_take(void)
{
    while (__atomic_exchange_n(&blas_lock, 1, __ATOMIC_ACQUIRE))
        FNN_YIELD();
}

static void blas_lock_give(void)
{
    __atomic_store_n(&blas_lock, 0, __ATOMIC_RELEASE);
}

static void blas_single_begin(const fnn_blas *blas)
{
    blas_lock_take();
    if (blas_users++ == 0) {
        blas_saved_threads = blas->get_threads();
        blas->set_threads(1);
    }
    blas_lock_give();
}

static void blas_single_end(const fnn_blas *blas)
{
    blas_lock_take();
    if (--blas_users == 0)
        blas->set_threads(blas_saved_threads);
    blas_lock_give();
}

/* y += partial over rows [0, N) and columns [c0, c1) of rows `width` wide. */
static void add_block(void *y, const void *partial, int dbl, ptrdiff_t N, ptrdiff_t width,
                      ptrdiff_t c0, ptrdiff_t c1)
{
    for (ptrdiff_t i = 0; i < N; i++) {
        if (dbl) {
            double *a = (double *)y + i * width;
            const double *b = (const double *)partial + i * width;
            for (ptrdiff_t j = c0; j < c1; j++) a[j] += b[j];
        } else {
            float *a = (float *)y + i * width;
            const float *b = (const float *)partial + i * width;
            for (ptrdiff_t j = c0; j < c1; j++) a[j] += b[j];
        }
    }
}

/* Thread `part`'s half of the first layer's forward split by its input rows K_part (fnn_halves):
 * the halves of W the optimizers' two-thread split updates on the same thread, so each thread
 * reads in the forward only the weights it wrote. P_part = x[:, K_part] W[K_part, :], thread 0
 * into y after y = b, thread 1 into `partial`; then, after a barrier, each thread adds `partial`
 * into its batch rows [r0, r1) of y, which the next ops read on the same thread. */
static void first_forward_rows(const fnn_op *op, ptrdiff_t N, int dbl, const fnn_blas *blas,
                               void *partial, int part, ptrdiff_t r0, ptrdiff_t r1,
                               spin_barrier *barrier, int *sense)
{
    const size_t item = dbl ? sizeof(double) : sizeof(float);
    const ptrdiff_t K = op->d_in, M = op->d_out;
    ptrdiff_t lo, hi;
    fnn_halves(K, part, 2, &lo, &hi);
    if (part == 0) {
        if (dbl) fnn_bias_fill_f64(op->b, (double *)op->y, N, M);
        else fnn_bias_fill_f32(op->b, (float *)op->y, N, M);
    }
    fnn_gemm(blas, dbl, 0, 0, (int)N, (int)M, (int)(hi - lo), 1.0,
             (const char *)op->x + lo * item, (int)K, (const char *)op->W + lo * M * item,
             (int)M, part == 0 ? 1.0 : 0.0, part == 0 ? op->y : partial, (int)M);
    spin_barrier_wait(barrier, sense);
    add_block(op->y, partial, dbl, 1, 0, r0 * M, r1 * M);
}

/* A BatchNormalization op's training forward on batch rows [r0, r1) of two threads (rows[p]:
 * thread p's count): the row sums of each thread into its part of `sums` (6 * d_out doubles), a
 * barrier, then from both, the statistics (thread 0 writes them and the running statistics) and
 * this thread's rows. Each thread reads only its own rows of the input. */
static void batchnorm_rows(fnn_op *op, ptrdiff_t N, int dbl, int part, ptrdiff_t r0,
                           ptrdiff_t r1, const ptrdiff_t *rows, double *sums,
                           spin_barrier *barrier, int *sense)
{
    const ptrdiff_t D = op->d_out;
    double *s = sums + 3 * part * D;
    if (dbl) fnn_batchnorm_row_sums_f64(op->x, D, r0, r1, s, s + D, s + 2 * D);
    else fnn_batchnorm_row_sums_f32(op->x, D, r0, r1, s, s + D, s + 2 * D);
    spin_barrier_wait(barrier, sense);
    if (dbl)
        fnn_batchnorm_forward_rows_f64(op->x, N, D, op->gamma, op->beta, op->eps, sums, rows, 2,
                                       op->y, op->mean, op->var, op->std, part == 0, r0, r1);
    else
        fnn_batchnorm_forward_rows_f32(op->x, N, D, op->gamma, op->beta, op->eps, sums, rows, 2,
                                       op->y, op->mean, op->var, op->std, part == 0, r0, r1);
    if (part == 0)
        running_updates(op, dbl, 0, D);
}

/* Rows per unit of the two-thread forward's row split: a Dropout op's rows must start on a mask
 * word (32 elements), so that the threads write whole words. */
static ptrdiff_t rows_unit(const fnn_op *ops, int n_ops)
{
    ptrdiff_t unit = 1;
    for (int i = 0; i < n_ops; i++) {
        if (ops[i].kind != FNN_OP_DROPOUT)
            continue;
        ptrdiff_t need = FNN_DROPOUT_BLOCK, d = ops[i].d_out;
        while (need > 1 && d % 2 == 0) {   /* FNN_DROPOUT_BLOCK / gcd(d, FNN_DROPOUT_BLOCK) */
            need /= 2;
            d /= 2;
        }
        while (unit % need != 0)          /* both are powers of two: the larger one */
            unit *= 2;
    }
    return unit;
}

/* The pass on two threads, each GEMM on one BLAS thread (the caller sets the BLAS so):
 * forward  each thread takes one block of the batch rows (rows_unit) through every op, so it
 *          reads only rows it wrote and the ops need no barrier between them, except a
 *          BatchNormalization: each thread sums its rows, and after a barrier both combine the
 *          two blocks' sums into the batch statistics (batchnorm_rows). Measured on the ch.6
 *          network at batch 100, against the former split of a BatchNormalization by features
 *          (half of its input, and of its output to the next op, then crossed between the
 *          cores, with a barrier between most ops): two-thread steps 5-14 % faster. The first
 *          layer (the chain's last in the backward) is split by the rows of its weight matrix
 *          instead, see below;
 * softmax  thread 0;
 * backward thread 0 runs the chain (input gradients: dx GEMMs, element-wise and batch-norm
 *          backwards); thread 1 computes each Affine op's dW and db as soon as its output
 *          gradient is final (ready[i], set with release order), the chain's last dW split
 *          between the two.
 * The first layer's weights (the network's largest: 784 inputs) are owned by halves of their
 * rows (fnn_halves): thread j computes dW[Kj, :], the optimizers' two-thread split updates
 * W[Kj, :] on thread j, and the next forward reads only W[Kj, :] on thread j (first_forward_rows).
 * That matrix and its gradient then stay in one core's cache between steps instead of crossing
 * to the other core twice per step: on the ch.6 network at batch 100, float32 steps at two
 * threads ~11 % faster. */
static double pass_two_threads(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl,
                               const fnn_blas *blas, const fnn_softmax_args *sm, void *d_last,
                               double *acc, int *ready, void *partial, double *bn_sums,
                               const fnn_fused_update *upd, int *updated)
{
    double loss = 0.0;
    ptrdiff_t bn_width = 0;     /* the widest BatchNormalization: bn_sums holds 12 times that */
    for (int i = 0; i < n_ops; i++)
        if (ops[i].kind == FNN_OP_BATCHNORM && ops[i].d_out > bn_width)
            bn_width = ops[i].d_out;
    const ptrdiff_t unit = rows_unit(ops, n_ops);
    spin_barrier barrier = {0, 0};
    int last = -1;              /* the Affine op the chain ends at */
    for (int i = n_ops - 1; i >= 0; i--) {
        if (ops[i].kind == FNN_OP_AFFINE)
            last = i;
        if (ops[i].kind == FNN_OP_AFFINE && !ops[i].need_dx)
            break;
    }
    /* The chain stops at an Affine op without an input gradient: ops below it get no gradients,
     * so none of them may have an update to fuse. */
    const int chain_end = last >= 0 && !ops[last].need_dx ? last : 0;
    int any_update = 0;
    for (int i = 0; i < n_ops; i++)
        any_update |= ops[i].update;
    if (!any_update)            /* (e.g. an update for the serial schedule: tables only) */
        upd = NULL;
    for (int i = 0; i < chain_end && upd != NULL; i++)
        if (ops[i].update)
            upd = NULL;
    ptrdiff_t k_lo, k_mid;
    fnn_halves(ops[0].d_in, 0, 2, &k_lo, &k_mid);
    const int split_first = last == 0 && partial != NULL && k_mid > 0 && k_mid < ops[0].d_in;
#pragma omp parallel num_threads(2)
    {
        const int tid = omp_get_thread_num();
        int sense = 0;
        if (omp_get_num_threads() < 2) {
            forward_serial(ops, n_ops, N, dbl, blas, 1);
            loss = softmax(sm, N, dbl, d_last, 1);
            backward_serial(ops, n_ops, N, dbl, d_last, acc, blas, 1);
        } else {
            /* The forward by batch rows: every op reads only the rows this thread wrote, so
             * the ops need no barrier between them, except for the batch statistics. */
            ptrdiff_t r0, r1, rows[2], lo, hi;
            for (int p = 0; p < 2; p++) {
                fnn_halves_by(N, unit, p, 2, &lo, &hi);
                rows[p] = hi - lo;
            }
            fnn_halves_by(N, unit, tid, 2, &r0, &r1);
            int i = 0, n_bn = 0;
            if (split_first) {
                first_forward_rows(&ops[0], N, dbl, blas, partial, tid, r0, r1, &barrier,
                                   &sense);
                i = 1;
            }
            for (; i < n_ops; i++) {
                if (ops[i].kind == FNN_OP_BATCHNORM)   /* alternate halves of bn_sums: one */
                    batchnorm_rows(&ops[i], N, dbl, tid, r0, r1, rows,   /* thread may start */
                                   bn_sums + (n_bn++ & 1) * 6 * bn_width,  /* the next one's */
                                   &barrier, &sense);  /* sums while the other reads these */
                else
                    forward_rows(&ops[i], N, dbl, blas, r0, r1, 1);
            }
            spin_barrier_wait(&barrier, &sense);       /* the softmax reads every row */
            if (tid == 0)
                loss = softmax(sm, N, dbl, d_last, 1);
            spin_barrier_wait(&barrier, &sense);
            /* a NaN loss may mean no gradient (the softmax's scratch allocation failed) */
            const fnn_fused_update *u = loss == loss ? upd : NULL;
            if (tid == 0) {                   /* the chain */
                *updated = u != NULL;
                void *d = d_last;
                for (int i = n_ops - 1; i >= 0 && d != NULL; i--) {
                    fnn_op *op = &ops[i];
                    op->dout = d;
                    if (op->kind == FNN_OP_AFFINE)
                        __atomic_store_n(&ready[i], DOUT_READY, __ATOMIC_RELEASE);
                    d = chain_backward(op, d, op->dx, N, dbl, blas, 1);
                    if (u != NULL)
                        __atomic_store_n(&ready[i], CHAIN_DONE, __ATOMIC_RELEASE);
                }
                if (last >= 0) {              /* first half of the chain's last dW: the rows */
                    ptrdiff_t lo, hi;         /* the optimizers' split gives thread 0 (optim.h) */
                    const fnn_op *op = &ops[last];
                    fnn_halves(op->d_in, 0, 2, &lo, &hi);
                    affine_dW_rows(op, N, dbl, blas, lo, hi);
                    if (u != NULL && op->update)
                        update_range(op, u, dbl, 0, lo * op->d_out, hi * op->d_out);
                }
            } else {                          /* weight and bias gradients, layer by layer */
                for (int i = n_ops - 1; i >= chain_end; i--) {
                    const fnn_op *op = &ops[i];
                    const int update = u != NULL && op->update;
                    if (op->kind == FNN_OP_AFFINE) {
                        wait_ready(&ready[i], DOUT_READY);
                        ptrdiff_t lo = 0, hi = op->d_in;
                        if (i == last)
                            fnn_halves(op->d_in, 1, 2, &lo, &hi);
                        affine_dW_rows(op, N, dbl, blas, lo, hi);
                        affine_db(op, N, dbl, acc);
                        if (update) {
                            wait_ready(&ready[i], CHAIN_DONE);
                            update_range(op, u, dbl, 0, lo * op->d_out, hi * op->d_out);
                            update_range(op, u, dbl, 1, 0, op->d_out);
                        }
                    } else if (update) {      /* BatchNorm: gamma, beta */
                        wait_ready(&ready[i], CHAIN_DONE);
                        update_range(op, u, dbl, 0, 0, op->d_out);
                        update_range(op, u, dbl, 1, 0, op->d_out);
                    }
                }
            }
        }
    }
    return loss;
}
#endif

/* The BLAS descriptor for one pass: GEMMs split into small blocks (fnn_gemm) where each runs on
 * one BLAS thread. The serial schedules split as the layers do (fastnn._affine): when the
 * user's BLAS runs on one thread (not when a pass set it so for itself: the saved count), so that
 * a serial pass stays bitwise the layer-by-layer path; the two-thread schedules (rounding as
 * they may) whenever the BLAS has small kernels. */
static fnn_blas pass_blas(const fnn_blas *blas, int two_threads)
{
    fnn_blas b = *blas;
    int single = 0;
    if (two_threads) {
        single = 1;
    } else if (blas->get_threads != NULL) {
#if FNN_NETSTEP_TWO_THREADS
        blas_lock_take();
        single = (blas_users > 0 ? blas_saved_threads : blas->get_threads()) == 1;
        blas_lock_give();
#else
        single = fnn_gemm_blas_single(blas);
#endif
    }
    b.split = single;
    return b;
}

int fnn_netstep_two_threads_built(void)
{
    return FNN_NETSTEP_TWO_THREADS;
}

/* The serial schedule: forward, loss, backward, then (upd with tables, one thread, a finite
 * loss) the optimizer's update over its tables: the same call as the optimizer's own step, only
 * without a return to Python between the two (each return to the interpreter after the
 * memory-heavy kernels costs tens of microseconds of cache misses). The whole update after the
 * whole backward: interleaved with it, each layer's update evicts what the next GEMMs read
 * (measured slower). */
static double pass_serial(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, const fnn_blas *blas,
                          const fnn_softmax_args *sm, void *d_last, double *acc, int nt,
                          const fnn_fused_update *upd, int *updated)
{
    forward_serial(ops, n_ops, N, dbl, blas, nt);
    double loss = softmax(sm, N, dbl, d_last, nt);
    backward_serial(ops, n_ops, N, dbl, d_last, acc, blas, nt);
    if (upd == NULL || upd->tables == NULL || nt != 1 || loss != loss)
        return loss;
    const fnn_optim_tables *t = upd->tables;
    optim_step(upd, dbl, t->n_tensors, t->p, t->g, t->s1, t->s2, t->n);
    *updated = 1;
    return loss;
}

/* One op of the inference forward; the ops that behave as in training share forward_rows. */
static void infer_op(fnn_op *op, ptrdiff_t N, int dbl, const fnn_blas *blas, int nt)
{
    const ptrdiff_t n = N * op->d_out;
    switch (op->kind) {
    case FNN_OP_BATCHNORM:
        if (dbl)
            fnn_batchnorm_forward_infer_f64(op->x, N, op->d_out, op->gamma, op->beta, op->rm_old,
                                            op->rv_old, op->eps, op->y, nt);
        else
            fnn_batchnorm_forward_infer_f32(op->x, N, op->d_out, op->gamma, op->beta, op->rm_old,
                                            op->rv_old, op->eps, op->y, nt);
        break;
    case FNN_OP_DROPOUT:                  /* the book's test-time x * (1 - ratio), in REAL */
        if (op->x == op->y && op->scale == 1.0)
            break;                        /* in place by 1 (the inverted mode): the identity */
        if (dbl) {
            const double *x = (const double *)op->x, s = op->scale;
            double *y = (double *)op->y;
            for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] * s;
        } else {
            const float *x = (const float *)op->x, s = (float)op->scale;
            float *y = (float *)op->y;
            for (ptrdiff_t i = 0; i < n; i++) y[i] = x[i] * s;
        }
        break;
    default:
        forward_rows(op, N, dbl, blas, 0, N, nt);
    }
}

#if FNN_NETSTEP_TWO_THREADS
/* Op restricted to the batch rows [lo, hi): every inference op computes each row from the same
 * row of its input (and the shared parameters) alone. */
static fnn_op op_rows(const fnn_op *op, ptrdiff_t lo, int dbl)
{
    const size_t item = dbl ? sizeof(double) : sizeof(float);
    fnn_op r = *op;
    r.x = (char *)op->x + lo * op->d_in * item;
    r.y = (char *)op->y + lo * op->d_out * item;
    if (op->mask != NULL)
        r.mask = op->mask + lo * op->d_out;
    return r;
}

/* The inference forward on two threads: each runs the whole chain on its half of the batch rows,
 * so nothing is exchanged and no op waits for the other thread. Returns the threads it ran on. */
static int infer_two_threads(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, const fnn_blas *blas)
{
    int team = 1;
#pragma omp parallel num_threads(2)
    {
        const int parts = omp_get_num_threads();
        ptrdiff_t lo, hi;
        fnn_halves_by(N, 1, omp_get_thread_num(), parts, &lo, &hi);
        if (omp_get_thread_num() == 0)
            team = parts;
        for (int i = 0; i < n_ops && hi > lo; i++) {
            fnn_op op = op_rows(&ops[i], lo, dbl);
            infer_op(&op, hi - lo, dbl, blas, 1);
        }
    }
    return team;
}
#endif

void fnn_netstep_infer(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, const fnn_blas *blas,
                       int n_threads, int policy, int *schedule)
{
    *schedule = 1;
#if FNN_NETSTEP_TWO_THREADS
    if (n_threads >= 2 && policy != FNN_PASS_N_THREADS && blas->set_threads != NULL
            && blas->get_threads != NULL) {
        const int two = policy == FNN_PASS_TWO_THREADS && N >= 2;
        const fnn_blas b = pass_blas(blas, two);
        blas_single_begin(blas);
        if (two) {
            *schedule = infer_two_threads(ops, n_ops, N, dbl, &b);
        } else {
            for (int i = 0; i < n_ops; i++)
                infer_op(&ops[i], N, dbl, &b, 1);
        }
        blas_single_end(blas);
        return;
    }
#else
    (void)policy;
#endif
    const fnn_blas b = pass_blas(blas, 0);
    for (int i = 0; i < n_ops; i++)
        infer_op(&ops[i], N, dbl, &b, n_threads);
}

double fnn_netstep_pass(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, const fnn_blas *blas,
                        const fnn_softmax_args *sm, void *d_last, double *acc, int *ready,
                        void *partial, double *bn_sums, int n_threads, int policy,
                        const fnn_fused_update *upd, int *schedule, int *updated)
{
    *schedule = 1;
    *updated = 0;
#if FNN_NETSTEP_TWO_THREADS
    double loss;
    if (n_threads >= 2 && policy != FNN_PASS_N_THREADS && blas->set_threads != NULL
            && blas->get_threads != NULL) {
        if (policy == FNN_PASS_ONE_THREAD) {
            const fnn_blas b = pass_blas(blas, 0);
            blas_single_begin(blas);
            loss = pass_serial(ops, n_ops, N, dbl, &b, sm, d_last, acc, 1, upd, updated);
            blas_single_end(blas);
            return loss;
        }
        if (ready != NULL && bn_sums != NULL) {
            const fnn_blas b = pass_blas(blas, 1);
            memset(ready, 0, (size_t)n_ops * sizeof(int));
            blas_single_begin(blas);
            loss = pass_two_threads(ops, n_ops, N, dbl, &b, sm, d_last, acc, ready, partial,
                                    bn_sums, upd, updated);
            blas_single_end(blas);
            *schedule = 2;
            return loss;
        }
    }
#else
    (void)policy;
    (void)ready;
    (void)partial;
    (void)bn_sums;
#endif
    const fnn_blas b = pass_blas(blas, 0);
    return pass_serial(ops, n_ops, N, dbl, &b, sm, d_last, acc, n_threads, upd, updated);
}
