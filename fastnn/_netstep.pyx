"""Compiled training pass of a network's chain of layers: forward, loss and backward in one call.

A network's ``gradient()`` runs ``Affine → [BatchNormalization] → Relu/Sigmoid → [Dropout] → … →
Affine → SoftmaxWithLoss`` as ~50 layer calls; each costs microseconds of Python and argument
checking, as much as its kernel on a 100×100 batch. :class:`TrainPass` does the same work
without returning to Python: a plan (one C struct per layer, built once per batch shape) and two
nogil loops calling the same C kernels and BLAS GEMMs, in the same order, as the layers do — so
the results are bitwise those of the layer-by-layer pass. The layers' attributes (``x``, ``mask``,
``running_mean``, ``dW``, …) are then set as their own forward and backward would set them.

Memory: each forward output the layers keep (an Affine's ``x``, a BatchNormalization's input, a
Sigmoid's ``out``, the softmax ``y``) is reused by the next pass unless something else still
holds it (reference count), as the layers' own recycled outputs are. ReLU, Sigmoid and Dropout
work in place when their input is a buffer nothing keeps; the backward pass ping-pongs between
two private buffers.
"""
cimport numpy as cnp
import numpy as np
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.ref cimport Py_REFCNT
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t

from fastnn._blas cimport gemm_rowmajor, blas_int
from fastnn._runtime cimport get_num_threads
from fastnn import _softmax_xent as _sx
from fastnn._dtypes import compute_dtype
from fastnn.reference import dropout_rng as _drng

# NumPy's global generator (np.random.seed and set_state act on this same object)
_random_sample = np.random.random_sample

cnp.import_array()

cdef extern from "affine.h" nogil:
    void fnn_bias_fill_f32(const float *b, float *Y, Py_ssize_t N, Py_ssize_t D)
    void fnn_bias_fill_f64(const double *b, double *Y, Py_ssize_t N, Py_ssize_t D)
    void fnn_bias_grad_f32(const float *dY, Py_ssize_t N, Py_ssize_t D, float *db, double *acc)
    void fnn_bias_grad_f64(const double *dY, Py_ssize_t N, Py_ssize_t D, double *db, double *acc)

cdef extern from "activations.h" nogil:
    void fnn_relu_forward_f32(const float *x, float *y, uint8_t *mask, Py_ssize_t n, int nt)
    void fnn_relu_forward_f64(const double *x, double *y, uint8_t *mask, Py_ssize_t n, int nt)
    void fnn_relu_backward_f32(const float *dout, const uint8_t *mask, float *dx, Py_ssize_t n,
                               int nt)
    void fnn_relu_backward_f64(const double *dout, const uint8_t *mask, double *dx,
                               Py_ssize_t n, int nt)
    void fnn_sigmoid_forward_f32(const float *x, float *y, Py_ssize_t n, int nt)
    void fnn_sigmoid_forward_f64(const double *x, double *y, Py_ssize_t n, int nt)
    void fnn_sigmoid_backward_f32(const float *dout, const float *out, float *dx, Py_ssize_t n,
                                  int nt)
    void fnn_sigmoid_backward_f64(const double *dout, const double *out, double *dx,
                                  Py_ssize_t n, int nt)

cdef extern from "batchnorm.h" nogil:
    void fnn_batchnorm_forward_train_f32(const float *x, Py_ssize_t N, Py_ssize_t D,
                                         const float *gamma, const float *beta, double eps,
                                         float *y, float *mean, float *var, float *std, int nt)
    void fnn_batchnorm_forward_train_f64(const double *x, Py_ssize_t N, Py_ssize_t D,
                                         const double *gamma, const double *beta, double eps,
                                         double *y, double *mean, double *var, double *std,
                                         int nt)
    void fnn_batchnorm_backward_f32(const float *dout, const float *x, Py_ssize_t N,
                                    Py_ssize_t D, const float *gamma, const float *mean,
                                    const float *std, float *dx, float *dgamma, float *dbeta,
                                    int nt)
    void fnn_batchnorm_backward_f64(const double *dout, const double *x, Py_ssize_t N,
                                    Py_ssize_t D, const double *gamma, const double *mean,
                                    const double *std, double *dx, double *dgamma,
                                    double *dbeta, int nt)
    void fnn_batchnorm_running_update_f32(const double *old, const float *stat, double momentum,
                                          double *out, Py_ssize_t D)
    void fnn_batchnorm_running_update_f32state(const float *old, const float *stat,
                                               double momentum, float *out, Py_ssize_t D)
    void fnn_batchnorm_running_update_f64(const double *old, const double *stat,
                                          double momentum, double *out, Py_ssize_t D)

cdef extern from "dropout.h" nogil:
    void fnn_dropout_forward_f32(const float *x, float *y, uint32_t *bits, Py_ssize_t n,
                                 uint64_t seed, uint64_t thr, double scale, int nt)
    void fnn_dropout_forward_f64(const double *x, double *y, uint32_t *bits, Py_ssize_t n,
                                 uint64_t seed, uint64_t thr, double scale, int nt)
    void fnn_dropout_backward_f32(const float *dout, const uint32_t *bits, float *dx,
                                  Py_ssize_t n, double scale, int nt)
    void fnn_dropout_backward_f64(const double *dout, const uint32_t *bits, double *dx,
                                  Py_ssize_t n, double scale, int nt)

cdef extern from "softmax_xent.h" nogil:
    double fnn_softmax_xent_forward_f32(const float *x, Py_ssize_t N, Py_ssize_t C,
                                        const int64_t *idx, const float *onehot, float *y,
                                        float *dx, double grad_scale, int nt)
    double fnn_softmax_xent_forward_f64(const double *x, Py_ssize_t N, Py_ssize_t C,
                                        const int64_t *idx, const double *onehot, double *y,
                                        double *dx, double grad_scale, int nt)


cdef enum:
    OP_AFFINE = 0
    OP_BATCHNORM = 1
    OP_RELU = 2
    OP_SIGMOID = 3
    OP_DROPOUT = 4

# what a forward output buffer is, for reuse: kept by a layer attribute (recycled by reference
# count) or private (always reused)
cdef enum:
    BUF_PRIVATE = 0
    BUF_KEPT = 1


cdef struct Op:
    int kind
    Py_ssize_t d_in, d_out      # features in and out (rows: the plan's N)
    int in_buf, out_buf         # forward input / output: buffer index (-1: the network input)
    void *x                     # resolved data pointers of in_buf / out_buf
    void *y
    # Affine
    void *W
    void *b
    void *dW
    void *db
    bint need_dx
    # BatchNormalization
    void *gamma
    void *beta
    void *mean
    void *var
    void *std
    void *dgamma
    void *dbeta
    void *rm_old
    void *rv_old
    void *rm_new
    void *rv_new
    bint f32_state              # float32 running statistics (a float32 network's)
    double eps, momentum
    # Relu
    uint8_t *mask
    # Dropout
    uint32_t *bits
    uint64_t seed, thr
    double scale


cdef void _forward(Op *ops, int n_ops, Py_ssize_t N, bint dbl, int nt) noexcept nogil:
    """Every layer's training forward, in order (the kernels the layers call, same arguments)."""
    cdef int i
    cdef Op *op
    cdef Py_ssize_t n
    for i in range(n_ops):
        op = &ops[i]
        n = N * op.d_out
        if op.kind == OP_AFFINE:
            if dbl:
                fnn_bias_fill_f64(<double *>op.b, <double *>op.y, N, op.d_out)
            else:
                fnn_bias_fill_f32(<float *>op.b, <float *>op.y, N, op.d_out)
            gemm_rowmajor(dbl, False, False, <blas_int>N, <blas_int>op.d_out, <blas_int>op.d_in,
                          1.0, op.x, op.W, 1.0, op.y)
        elif op.kind == OP_BATCHNORM:
            if dbl:
                fnn_batchnorm_forward_train_f64(<double *>op.x, N, op.d_out, <double *>op.gamma,
                                                <double *>op.beta, op.eps, <double *>op.y,
                                                <double *>op.mean, <double *>op.var,
                                                <double *>op.std, nt)
                fnn_batchnorm_running_update_f64(<double *>op.rm_old, <double *>op.mean,
                                                 op.momentum, <double *>op.rm_new, op.d_out)
                fnn_batchnorm_running_update_f64(<double *>op.rv_old, <double *>op.var,
                                                 op.momentum, <double *>op.rv_new, op.d_out)
            else:
                fnn_batchnorm_forward_train_f32(<float *>op.x, N, op.d_out, <float *>op.gamma,
                                                <float *>op.beta, op.eps, <float *>op.y,
                                                <float *>op.mean, <float *>op.var,
                                                <float *>op.std, nt)
                if op.f32_state:
                    fnn_batchnorm_running_update_f32state(<float *>op.rm_old, <float *>op.mean,
                                                          op.momentum, <float *>op.rm_new,
                                                          op.d_out)
                    fnn_batchnorm_running_update_f32state(<float *>op.rv_old, <float *>op.var,
                                                          op.momentum, <float *>op.rv_new,
                                                          op.d_out)
                else:
                    fnn_batchnorm_running_update_f32(<double *>op.rm_old, <float *>op.mean,
                                                     op.momentum, <double *>op.rm_new, op.d_out)
                    fnn_batchnorm_running_update_f32(<double *>op.rv_old, <float *>op.var,
                                                     op.momentum, <double *>op.rv_new, op.d_out)
        elif op.kind == OP_RELU:
            if dbl:
                fnn_relu_forward_f64(<double *>op.x, <double *>op.y, op.mask, n, nt)
            else:
                fnn_relu_forward_f32(<float *>op.x, <float *>op.y, op.mask, n, nt)
        elif op.kind == OP_SIGMOID:
            if dbl:
                fnn_sigmoid_forward_f64(<double *>op.x, <double *>op.y, n, nt)
            else:
                fnn_sigmoid_forward_f32(<float *>op.x, <float *>op.y, n, nt)
        elif op.kind == OP_DROPOUT:
            if dbl:
                fnn_dropout_forward_f64(<double *>op.x, <double *>op.y, op.bits, n, op.seed,
                                        op.thr, op.scale, nt)
            else:
                fnn_dropout_forward_f32(<float *>op.x, <float *>op.y, op.bits, n, op.seed,
                                        op.thr, op.scale, nt)


cdef void _backward(Op *ops, int n_ops, Py_ssize_t N, bint dbl, int nt, void *d, void *other,
                    double *acc) noexcept nogil:
    """Every layer's backward, last to first; d holds the loss gradient of the last output.
    Elementwise layers work in place on d; Affine and BatchNormalization write into ``other``
    and the two buffers swap."""
    cdef int i
    cdef Op *op
    cdef Py_ssize_t n
    cdef void *tmp
    for i in range(n_ops - 1, -1, -1):
        op = &ops[i]
        n = N * op.d_out
        if op.kind == OP_AFFINE:
            gemm_rowmajor(dbl, True, False, <blas_int>op.d_in, <blas_int>op.d_out, <blas_int>N,
                          1.0, op.x, d, 0.0, op.dW)
            if op.need_dx:
                gemm_rowmajor(dbl, False, True, <blas_int>N, <blas_int>op.d_in,
                              <blas_int>op.d_out, 1.0, d, op.W, 0.0, other)
            if dbl:
                fnn_bias_grad_f64(<double *>d, N, op.d_out, <double *>op.db, acc)
            else:
                fnn_bias_grad_f32(<float *>d, N, op.d_out, <float *>op.db, acc)
            if not op.need_dx:
                return          # nothing reads further gradients (the network's first layer)
            tmp = d; d = other; other = tmp
        elif op.kind == OP_BATCHNORM:
            if dbl:
                fnn_batchnorm_backward_f64(<double *>d, <double *>op.x, N, op.d_out,
                                           <double *>op.gamma, <double *>op.mean,
                                           <double *>op.std, <double *>other,
                                           <double *>op.dgamma, <double *>op.dbeta, nt)
            else:
                fnn_batchnorm_backward_f32(<float *>d, <float *>op.x, N, op.d_out,
                                           <float *>op.gamma, <float *>op.mean,
                                           <float *>op.std, <float *>other,
                                           <float *>op.dgamma, <float *>op.dbeta, nt)
            tmp = d; d = other; other = tmp
        elif op.kind == OP_RELU:
            if dbl:
                fnn_relu_backward_f64(<double *>d, op.mask, <double *>d, n, nt)
            else:
                fnn_relu_backward_f32(<float *>d, op.mask, <float *>d, n, nt)
        elif op.kind == OP_SIGMOID:
            if dbl:
                fnn_sigmoid_backward_f64(<double *>d, <double *>op.y, <double *>d, n, nt)
            else:
                fnn_sigmoid_backward_f32(<float *>d, <float *>op.y, <float *>d, n, nt)
        elif op.kind == OP_DROPOUT:
            if dbl:
                fnn_dropout_backward_f64(<double *>d, op.bits, <double *>d, n, op.scale, nt)
            else:
                fnn_dropout_backward_f32(<float *>d, op.bits, <float *>d, n, op.scale, nt)


cdef inline void *_data(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef bint _is_array(object a, object dtype, tuple shape, bint writeable=False):
    """a is an aligned C-contiguous ndarray of this dtype and shape (and writeable if asked)."""
    if type(a) is not np.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (arr.dtype is dtype or arr.dtype == dtype) and (<object>arr).shape == shape \
        and cnp.PyArray_IS_C_CONTIGUOUS(arr) and cnp.PyArray_ISALIGNED(arr) \
        and (not writeable or cnp.PyArray_ISWRITEABLE(arr))


cdef inline cnp.ndarray _new_like(cnp.ndarray a):
    """An uninitialised 1-D array of a's length and dtype (np.empty_like without its overhead)."""
    return cnp.PyArray_EMPTY(1, cnp.PyArray_DIMS(a), cnp.PyArray_TYPE(a), 0)


cdef inline Py_ssize_t _refs(list items, Py_ssize_t i):
    obj = items[i]
    return Py_REFCNT(obj)


_LAYER_TYPES = None


def _layer_types():
    # fastnn.layers imports this module's siblings only; bound on first use (no import cycle)
    global _LAYER_TYPES
    if _LAYER_TYPES is None:
        from fastnn import layers as L
        _LAYER_TYPES = (L.Affine, L.BatchNormalization, L.Relu, L.Sigmoid, L.Dropout,
                        L.SoftmaxWithLoss)
    return _LAYER_TYPES


cdef class TrainPass:
    """A network's training pass (forward, softmax cross-entropy, backward) compiled for one
    layer chain, one dtype and one batch shape.

    :meth:`build` returns None unless the chain is made of exact fastnn ``Affine``,
    ``BatchNormalization``, ``Relu``, ``Sigmoid`` and ``Dropout`` layers followed by a
    ``SoftmaxWithLoss``, with contiguous parameters of the network's dtype; :meth:`matches` tells
    whether the plan still describes the network (same layer objects, parameters, flags and
    state arrays); :meth:`run` does one pass and leaves the layers as their own forward and
    backward would.
    """
    cdef Op *ops
    cdef int n_ops
    cdef Py_ssize_t N, K, C
    cdef bint dbl
    cdef object dtype
    cdef list layers            # the layer objects, in order
    cdef list expect            # per layer: the objects its attributes must still be
    cdef object loss_layer
    cdef list buffers           # forward output buffers (ndarrays)
    cdef list buf_kept          # True: a layer attribute keeps it (reused only when released)
    cdef list buf_shape
    cdef list baseline          # reference counts of the buffers after the last pass
    cdef list extra             # per layer: arrays of the op (grads, statistics, mask, bits)
    cdef list in_shape          # per layer: the shape of its input
    cdef object d0, d1, acc     # backward workspaces
    cdef int scores_buf, probs_buf

    def __cinit__(self):
        self.ops = NULL
        self.n_ops = 0

    def __dealloc__(self):
        PyMem_Free(self.ops)
        self.ops = NULL

    @staticmethod
    def build(layers, loss_layer, x, dtype, grad_views=None):
        """The plan for ``layers`` (an ordered mapping), ``loss_layer`` and input ``x``, or None.

        ``grad_views`` maps ``(id(layer), 'dgamma'|'dbeta')`` to arrays the BatchNormalization
        gradients are written into (the network's flat gradient views); others get arrays of
        their own.
        """
        cdef TrainPass p = TrainPass.__new__(TrainPass)
        if not p._plan(layers, loss_layer, x, np.dtype(dtype), grad_views or {}):
            return None
        return p

    cdef int _new_buffer(self, tuple shape):
        self.buffers.append(np.empty(shape, dtype=self.dtype))
        self.buf_kept.append(False)
        self.buf_shape.append(shape)
        return len(self.buffers) - 1

    cdef bint _plan(self, layers, loss_layer, x, object dt, dict grad_views) except -1:
        Affine, BatchNorm, Relu, Sigmoid, Dropout, SoftmaxWithLoss = _layer_types()
        if type(loss_layer) is not SoftmaxWithLoss or dt not in (np.float32, np.float64):
            return False
        if type(x) is not np.ndarray or x.ndim != 2 or not _is_array(x, dt, x.shape):
            return False
        cdef Py_ssize_t N = x.shape[0], width = x.shape[1], M, D, max_width = width
        if N == 0 or width == 0:
            return False
        self.N, self.K, self.dtype, self.dbl = N, width, dt, dt == np.float64
        self.loss_layer = loss_layer
        self.layers = list(layers.values())
        if not self.layers or len(set(map(id, self.layers))) != len(self.layers):
            return False            # a layer object used twice keeps one state: layer path
        self.n_ops = len(self.layers)
        self.ops = <Op *>PyMem_Calloc(self.n_ops, sizeof(Op))
        if self.ops == NULL:
            raise MemoryError()
        self.expect, self.extra, self.in_shape = [], [], []
        self.buffers, self.buf_kept, self.buf_shape = [], [], []
        cdef int cur = -1           # buffer of the current activation (-1: the network input)
        cdef int i
        cdef Op *op
        for i, layer in enumerate(self.layers):
            op = &self.ops[i]
            tp = type(layer)
            op.in_buf = cur
            op.d_in = width
            self.in_shape.append((N, width))
            if tp is Affine:
                W, b, gb, need_dx = layer.W, layer.b, layer.grad_buffers, layer.need_dx
                if type(W) is not np.ndarray or W.ndim != 2 or W.shape[0] != width:
                    return False
                M = W.shape[1]
                if (M == 0 or not _is_array(W, dt, (width, M)) or not _is_array(b, dt, (M,))
                        or type(gb) is not tuple or len(gb) != 2
                        or not _is_array(gb[0], dt, (width, M), True)
                        or not _is_array(gb[1], dt, (M,), True)
                        or (need_dx is not True and need_dx is not False)
                        or (not need_dx and i > 0)):     # the layer path fails there: let it
                    return False
                op.kind, op.d_out, op.need_dx = OP_AFFINE, M, need_dx
                op.W, op.b, op.dW, op.db = _data(W), _data(b), _data(gb[0]), _data(gb[1])
                if cur >= 0:
                    self.buf_kept[cur] = True          # the layer keeps its input (x)
                cur = self._new_buffer((N, M))
                self.expect.append((W, b, gb, need_dx))
                self.extra.append(None)
            elif tp is BatchNorm:
                D = width
                g, be, momentum = layer.gamma, layer.beta, layer.momentum
                if (not _is_array(g, dt, (D,)) or not _is_array(be, dt, (D,))
                        or type(momentum) is not float):
                    return False
                if layer.running_mean is None:         # as the layer's first forward does
                    layer.running_mean = np.zeros(D)
                    layer.running_var = np.zeros(D)
                rm, rv = layer.running_mean, layer.running_var
                sdt = rm.dtype if type(rm) is np.ndarray else None
                if (sdt not in (np.float64, dt) or not _is_array(rm, sdt, (D,))
                        or not _is_array(rv, sdt, (D,))):
                    return False
                dg = grad_views.get((id(layer), 'dgamma'))
                db = grad_views.get((id(layer), 'dbeta'))
                if not _is_array(dg, dt, (D,), True):
                    dg = np.empty(D, dtype=dt)
                if not _is_array(db, dt, (D,), True):
                    db = np.empty(D, dtype=dt)
                stats = (layer._buffer("_mean", D, dt), layer._buffer("_var", D, dt),
                         layer._buffer("_std", D, dt))
                op.kind, op.d_out = OP_BATCHNORM, D
                op.gamma, op.beta, op.dgamma, op.dbeta = _data(g), _data(be), _data(dg), _data(db)
                op.mean, op.var, op.std = _data(stats[0]), _data(stats[1]), _data(stats[2])
                op.f32_state = not self.dbl and sdt == np.float32
                op.eps, op.momentum = float(layer._eps), momentum
                if cur >= 0:
                    self.buf_kept[cur] = True          # the layer keeps its input (_x)
                cur = self._new_buffer((N, D))
                self.expect.append([g, be, momentum, rm, rv])
                self.extra.append((dg, db) + stats)
            elif tp is Relu or tp is Sigmoid or tp is Dropout:
                op.d_out = width
                extra = None
                if tp is Relu:
                    op.kind = OP_RELU
                    mask = layer.mask
                    if not _is_array(mask, np.bool_, (N, width), True):
                        mask = np.empty((N, width), dtype=np.bool_)
                    op.mask = <uint8_t *>_data(mask)
                    self.expect.append((mask,))
                elif tp is Sigmoid:
                    op.kind = OP_SIGMOID
                    self.expect.append(())
                else:
                    op.kind = OP_DROPOUT
                    ratio, inverted, seed = layer.dropout_ratio, layer.inverted, layer.seed
                    try:
                        op.thr = layer._threshold()
                    except ValueError:               # the layer's forward raises it
                        return False
                    r = float(ratio)
                    op.scale = 1.0 / (1.0 - r) if inverted and r < 1.0 else 1.0
                    nwords = (N * width + 31) // 32
                    bits = layer._bits
                    if not _is_array(bits, np.uint32, (nwords,), True):
                        bits = np.empty(nwords, dtype=np.uint32)
                    op.bits = <uint32_t *>_data(bits)
                    self.expect.append((ratio, inverted, seed, bits))
                    extra = bits
                self.extra.append(extra)
                # in place when nothing keeps the input buffer (not the network input, not a
                # Sigmoid's out); a new buffer otherwise
                if cur < 0 or self.buf_kept[cur]:
                    cur = self._new_buffer((N, width))
                if tp is Sigmoid:
                    self.buf_kept[cur] = True          # the layer keeps its output (out)
            else:
                return False
            op.out_buf = cur
            width = op.d_out
            max_width = max(max_width, width)
        if cur < 0:
            return False
        self.C = width
        self.scores_buf = cur
        self.probs_buf = self._new_buffer((N, width))
        self.buf_kept[self.probs_buf] = True           # the loss layer keeps y
        self.d0 = np.empty(N * max_width, dtype=dt)
        self.d1 = np.empty(N * max_width, dtype=dt)
        self.acc = np.empty(max_width, dtype=np.float64)
        self.baseline = [_refs(self.buffers, i) for i in range(len(self.buffers))]
        return True

    def matches(self, layers, loss_layer, x):
        """True if this plan still describes the network: same loss layer and layer objects in
        the same order, each with the parameters, flags and state arrays the plan read, and an
        input of the planned dtype and shape."""
        if loss_layer is not self.loss_layer or type(x) is not np.ndarray:
            return False
        cdef cnp.ndarray xa = <cnp.ndarray>x
        if (xa.dtype is not self.dtype or xa.ndim != 2 or xa.shape[0] != self.N
                or xa.shape[1] != self.K or not cnp.PyArray_IS_C_CONTIGUOUS(xa)
                or not cnp.PyArray_ISALIGNED(xa) or len(layers) != self.n_ops):
            return False
        cdef int i = 0
        cdef Op *op
        for layer in layers.values():
            if layer is not self.layers[i]:
                return False
            op = &self.ops[i]
            e = self.expect[i]
            if op.kind == OP_AFFINE:
                W, b = layer.W, layer.b
                if (W is not e[0] or b is not e[1] or layer.grad_buffers is not e[2]
                        or layer.need_dx is not e[3] or _data(W) != op.W or _data(b) != op.b
                        or cnp.PyArray_NDIM(<cnp.ndarray>W) != 2
                        or cnp.PyArray_DIMS(<cnp.ndarray>W)[1] != op.d_out):
                    return False
            elif op.kind == OP_BATCHNORM:
                g, be = layer.gamma, layer.beta
                if (g is not e[0] or be is not e[1] or layer.momentum is not e[2]
                        or layer.running_mean is not e[3] or layer.running_var is not e[4]
                        or _data(g) != op.gamma or _data(be) != op.beta):
                    return False
            elif op.kind == OP_RELU:
                if layer.mask is not e[0]:
                    return False
            elif op.kind == OP_DROPOUT:
                if (layer.dropout_ratio is not e[0] or layer.inverted is not e[1]
                        or layer.seed is not e[2] or layer._bits is not e[3]):
                    return False
            i += 1
        return True

    def run(self, x, t):
        """One training pass on input ``x`` (as :meth:`matches` accepts) and labels ``t``
        (class indices or one-hot, as ``SoftmaxWithLoss`` reads them).

        Returns the loss (a scalar of the network's dtype), or None, before changing anything,
        when the labels need the layers' own path (invalid labels, whose error that path
        raises, or one-hot labels of a dtype that would promote the gradient)."""
        cdef int i, n_ops = self.n_ops, nt = get_num_threads()
        cdef Op *op
        cdef Py_ssize_t N = self.N, C = self.C
        cdef bint dbl = self.dbl
        t_arr = t if type(t) is np.ndarray else np.asarray(t)
        try:
            idx, onehot = _sx.labels(t_arr, N, C, self.dtype)
        except (TypeError, ValueError):
            return None
        if onehot is not None and compute_dtype(self.dtype, t_arr) != self.dtype:
            return None
        cdef double grad_scale = 1.0 / (t_arr.shape[0] if t_arr.ndim > 0 else 1)
        # a kept output still referenced elsewhere (e.g. a user holds layer.x) is left to that
        # holder, as the layers' own outputs are: this pass writes a new buffer
        for i in range(len(self.buffers)):
            if self.buf_kept[i] and _refs(self.buffers, i) > self.baseline[i]:
                self.buffers[i] = np.empty(self.buf_shape[i], dtype=self.dtype)
        buffers = self.buffers
        layers = self.layers
        for i in range(n_ops):
            op = &self.ops[i]
            op.x = _data(x) if op.in_buf < 0 else _data(buffers[op.in_buf])
            op.y = _data(buffers[op.out_buf])
            if op.kind == OP_DROPOUT:          # the layer's seed draw, in forward order
                layer = layers[i]
                seed = layer.seed
                calls = layer._calls
                if seed is None:
                    # _drng.draw_seed(), inlined: one random_sample() call; x * 2**53 is exact
                    seed = <uint64_t>(<double>_random_sample() * 9007199254740992.0)
                else:
                    seed = _drng.call_seed(seed, calls)
                layer._calls = calls + 1
                layer.last_seed = seed
                op.seed = seed
            elif op.kind == OP_BATCHNORM:       # running statistics: new arrays, as the book's
                e = self.expect[i]
                op.rm_old, op.rv_old = _data(e[3]), _data(e[4])
                e[3] = _new_like(e[3])
                e[4] = _new_like(e[4])
                op.rm_new, op.rv_new = _data(e[3]), _data(e[4])
        cdef void *scores = _data(buffers[self.scores_buf])
        cdef void *probs = _data(buffers[self.probs_buf])
        cdef void *d0 = _data(self.d0)
        cdef void *d1 = _data(self.d1)
        cdef double *acc = <double *>_data(self.acc)
        cdef const int64_t *pidx = <const int64_t *>_data(idx) if idx is not None else NULL
        cdef void *ponehot = _data(onehot) if onehot is not None else NULL
        cdef double loss
        with nogil:
            _forward(self.ops, n_ops, N, dbl, nt)
            if dbl:
                loss = fnn_softmax_xent_forward_f64(<double *>scores, N, C, pidx,
                                                    <double *>ponehot, <double *>probs,
                                                    <double *>d0, grad_scale, nt)
            else:
                loss = fnn_softmax_xent_forward_f32(<float *>scores, N, C, pidx,
                                                    <float *>ponehot, <float *>probs,
                                                    <float *>d0, grad_scale, nt)
        if loss != loss and not np.isnan(buffers[self.scores_buf]).any():
            raise MemoryError("softmax_xent_forward: out of memory")
        with nogil:
            _backward(self.ops, n_ops, N, dbl, nt, d0, d1, acc)
        self._set_layer_state(x, t, loss)
        self.baseline = [_refs(buffers, i) for i in range(len(buffers))]
        return self.loss_layer.loss

    cdef _set_layer_state(self, x, t, double loss):
        """The attributes each layer's own forward and backward would have left."""
        cdef int i
        cdef Op *op
        buffers = self.buffers
        for i in range(self.n_ops):
            op = &self.ops[i]
            layer = self.layers[i]
            xin = x if op.in_buf < 0 else buffers[op.in_buf]
            if op.kind == OP_AFFINE:
                gb = self.expect[i][2]
                layer.original_x_shape = self.in_shape[i]
                layer.x = xin
                layer.dW, layer.db = gb[0], gb[1]
            elif op.kind == OP_BATCHNORM:
                e, ex = self.expect[i], self.extra[i]
                layer.input_shape = self.in_shape[i]
                layer._x = xin
                layer.batch_size = self.N
                layer.running_mean, layer.running_var = e[3], e[4]
                layer.dgamma, layer.dbeta = ex[0], ex[1]
            elif op.kind == OP_RELU:
                layer.mask = self.expect[i][0]
            elif op.kind == OP_SIGMOID:
                layer.out = buffers[op.out_buf]
            elif op.kind == OP_DROPOUT:
                layer._bits = self.extra[i]
                layer._shape = self.in_shape[i]
                layer._scale = op.scale
                layer._mask = None
        ll = self.loss_layer
        ll.t = t
        ll.y = buffers[self.probs_buf]
        ll._dx = None
        ll.loss = self.dtype.type(loss)
