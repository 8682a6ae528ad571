/* The training pass of a chain of layers, executed in C (the plan is built by
 * fastnn/_netstep.pyx): every layer's training forward in order, then every backward in reverse,
 * calling the same kernels and BLAS GEMMs as the layers do, with the same arguments.
 *
 * Two schedules:
 *   serial      one thread runs every op in turn (the kernels may still use threads); on one
 *               thread, a ReLU followed by a Dropout (in place on one buffer) runs as one pass
 *               each way (fnn_relu_dropout_*: bitwise the two ops' kernels in turn);
 *   two-thread  the forward splits the batch rows in two blocks, one per thread through every
 *               op (batch statistics from both blocks' sums); in the backward,
 *               thread 0 runs the chain of input gradients while thread 1 computes the weight
 *               and bias gradients of each Affine op as soon as its output gradient is ready.
 *               Each GEMM runs on one BLAS thread (set so for the pass through fnn_blas). The
 *               forward GEMMs run as two row blocks, except the first layer's, which runs as two
 *               halves of its weight rows (summed), and the first layer's dW as two row halves
 *               (see netstep.c: the optimizers update the same halves on the same threads). The
 *               BLAS picks its kernels by shape, so a half can round differently from the whole
 *               product, and the batch statistics group their sums differently: results match
 *               the serial schedule within float rounding (deterministically for a given
 *               shape), not bitwise. */
#ifndef FNN_NETSTEP_H
#define FNN_NETSTEP_H
#include <stddef.h>
#include <stdint.h>
#include "gemm.h"
#include "optim.h"

enum { FNN_OP_AFFINE = 0, FNN_OP_BATCHNORM = 1, FNN_OP_RELU = 2, FNN_OP_SIGMOID = 3,
       FNN_OP_DROPOUT = 4 };


/* One layer of the chain. Arrays are row-major; rows: the pass's N. */
typedef struct {
    int kind;
    ptrdiff_t d_in, d_out;      /* features in and out */
    int in_buf, out_buf;        /* forward buffers (indices kept by the planner) */
    void *x, *y;                /* forward input (N, d_in) and output (N, d_out) */
    void *dx;                   /* backward output (N, d_in): Affine (if need_dx), BatchNorm; the
                                 * two-thread schedule's, a buffer of the op's own */
    void *dx_serial;            /* the same for the serial schedule, which needs only two buffers
                                 * alternated along the chain (a smaller working set) */
    void *dout;                 /* set by the backward: the gradient this op received */
    /* Affine */
    void *W, *b, *dW, *db;
    int need_dx;
    void *Wt;                   /* scratch for W's transpose in the dx product (fnn_gemm_bt;
                                 * d_in * d_out elements, shared by the ops) or NULL */
    /* BatchNormalization */
    void *gamma, *beta, *mean, *var, *std, *dgamma, *dbeta;
    void *rm_old, *rv_old, *rm_new, *rv_new;
    int f32_state;              /* float32 running statistics (a float32 network's) */
    double eps, momentum;
    /* ReLU */
    uint8_t *mask;
    /* Dropout */
    uint32_t *bits;
    uint64_t seed, thr;
    double scale;
    /* Fused optimizer update (fnn_netstep_pass's upd): the op's two parameter tensors (Affine: W,
     * b; BatchNormalization: gamma, beta) are updated with these states (s1/s2[j]: tensor j's,
     * NULL for the rule's unused ones) once the backward has their gradients; 0: not this op. */
    int update;
    void *s1[2], *s2[2];
} fnn_op;

/* An optimizer update fused into the pass (optim.h: kind, hyper-parameters as for
 * fnn_optim_step_T). */
typedef struct {
    int kind;
    fnn_optim_hparams hp;
    const fnn_optim_tables *tables;   /* the serial schedule's: the whole update, as the
                                       * optimizer's own one-thread step runs it (NULL: none) */
} fnn_fused_update;

/* The loss layer (SoftmaxWithLoss) between the forward and the backward: scores (N, C) are the
 * last op's output; exactly one of idx (N labels) and onehot (N, C) is set (softmax_xent.h). */
typedef struct {
    const void *scores;
    ptrdiff_t C;
    const int64_t *idx;
    const void *onehot;
    void *probs;
    double grad_scale;
} fnn_softmax_args;

/* How a pass at n_threads >= 2 uses them (at one thread every pass is serial):
 *   FNN_PASS_TWO_THREADS  the two-thread schedule, where built and the BLAS thread functions are
 *                         known (else serial at n_threads);
 *   FNN_PASS_ONE_THREAD   serial on one thread, the BLAS set to one thread for the pass (ops too
 *                         small for threads to pay: a threaded BLAS only adds its overhead);
 *   FNN_PASS_N_THREADS    serial, kernels and BLAS at n_threads. */
enum { FNN_PASS_N_THREADS = 0, FNN_PASS_ONE_THREAD = 1, FNN_PASS_TWO_THREADS = 2 };

/* One training pass: every op's forward, the loss (returned; its gradient goes to d_last, N x C),
 * every op's backward. acc: scratch of (widest op) doubles. Scratch of the two-thread schedule:
 * ready, n_ops ints, and bn_sums, 12 x (widest BatchNormalization) doubles (either NULL: serial
 * only); partial, N x (first op's width) elements (NULL: its
 * first layer is split by batch rows).
 * *schedule: the threads it ran on, 2 for the two-thread schedule (see netstep.c), 1 for serial. Every op's arrays are as the plan
 * set them; dout is filled in.
 * upd (NULL: none): an optimizer update the pass applies itself (fnn_optim_step_T). The
 * two-thread schedule, with each op that has `update` set, updates its parameters during the
 * backward: thread 1, which computes the weight gradients, updates a layer's parameters as soon
 * as their gradients are computed and the chain (thread 0) has done with their old values, so
 * the update overlaps the rest of the chain; the first layer's weights are updated in the row
 * halves each thread computed the gradient of (the optimizers' two-thread split). The serial
 * schedule at one thread, with upd->tables, runs the optimizer's own one-thread step over them
 * after the backward (per layer during it was measured slower: each update evicts what the
 * next GEMMs read). The results are those of the pass followed by the optimizer's step (every
 * rule is element-wise). *updated: 1 if that was done, 0 if not (upd is NULL, the two-thread
 * schedule without ops to update, the serial schedule without tables or at more threads, or
 * the loss is NaN): the caller then runs the optimizer itself if it should. */
double fnn_netstep_pass(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, const fnn_blas *blas,
                        const fnn_softmax_args *sm, void *d_last, double *acc, int *ready,
                        void *partial, double *bn_sums, int n_threads, int policy,
                        const fnn_fused_update *upd, int *schedule, int *updated);

/* The inference forward (the layers' forward with train_flg=False): every op in order. A
 * BatchNormalization op normalises with rm_old and rv_old (float64 running statistics); a Dropout
 * op scales x by `scale` into y (in place by 1: the identity, nothing to do). At n_threads >= 2,
 * policy: FNN_PASS_TWO_THREADS splits the batch rows in two halves, each thread running the whole
 * chain on its half (each GEMM on one BLAS thread; a half's GEMM may round differently from the
 * whole batch's, deterministically for a given shape); FNN_PASS_ONE_THREAD runs on one thread with
 * the BLAS set to one thread (as fnn_netstep_pass does); FNN_PASS_N_THREADS runs the ops in turn,
 * the kernels and the BLAS at n_threads. *schedule: 2 if the two-thread schedule ran, else 1. */
void fnn_netstep_infer(fnn_op *ops, int n_ops, ptrdiff_t N, int dbl, const fnn_blas *blas,
                       int n_threads, int policy, int *schedule);

/* 1 if this build has the two-thread schedule (OpenMP and GCC/Clang atomics), else 0. */
int fnn_netstep_two_threads_built(void);
#endif
