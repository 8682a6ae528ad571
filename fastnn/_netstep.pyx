"""Compiled passes over a network's chain of layers: the training pass (forward, loss and
backward) and the inference forward, each in one call.

A network's ``gradient()`` runs ``Affine → [BatchNormalization] → Relu/Sigmoid → [Dropout] → … →
Affine → SoftmaxWithLoss`` as ~50 layer calls; each costs microseconds of Python and argument
checking, as much as its kernel on a 100×100 batch. :class:`TrainPass` does the same work
without returning to Python: a plan (one C struct per layer, built here once per batch shape from
the layer objects) run by csrc/netstep.c without the GIL, calling the same C kernels and BLAS
GEMMs with the same arguments as the layers do -- so the results are bitwise those of the
layer-by-layer pass (serial schedule; the two-thread schedule splits GEMMs, which the BLAS may
round differently: within float rounding). The layers' attributes (``x``, ``mask``,
``running_mean``, ``dW``, …) are then set as their own forward and backward would set them.
:class:`InferPass` does the same for ``predict()`` in inference mode (``train_flg=False``).

With two or more threads, and enough work per layer, the training pass runs on two threads (see
netstep.h): the forward splits each layer between them, the backward computes the weight
gradients beside the chain of input gradients. The inference forward, with enough work in all,
runs each half of the batch through the whole chain on its own thread (no waits: every output
row depends on its input row alone). Both round within float rounding of the serial schedule.
Chains whose GEMMs are all small run on one thread, the BLAS included.

Memory: each forward output the layers keep (an Affine's ``x``, a BatchNormalization's input, a
Sigmoid's ``out``, the softmax ``y``) is reused by the next pass unless something else still
holds it (reference count), as the layers' own recycled outputs are. ReLU, Sigmoid and Dropout
work in place when their input is a buffer nothing keeps. In the backward, the Affine and
BatchNormalization ops write their input gradients into two buffers in turn on the serial
schedule, into a private buffer each on the two-thread one (which reads an op's output gradient
while the chain goes on); element-wise ops work in place.
"""
cimport numpy as cnp
import numpy as np
from cpython.mem cimport PyMem_Calloc, PyMem_Free
from cpython.ref cimport Py_REFCNT
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t

from fastnn._blas cimport fnn_blas, blas_describe
from fastnn._runtime cimport get_num_threads
from fastnn._layerstate cimport (AffineState, BatchNormState, ReluState, SigmoidState,
                                 DropoutState, SoftmaxWithLossState)
from fastnn import _softmax_xent as _sx
from fastnn._dtypes import compute_dtype
from fastnn.reference import dropout_rng as _drng

# NumPy's global generator (np.random.seed and set_state act on this same object)
_random_sample = np.random.random_sample

cnp.import_array()

from cpython.pycapsule cimport PyCapsule_GetPointer
from fastnn._optim_kernels cimport fnn_optim_hparams, fnn_optim_tables

cdef extern from "netstep.h" nogil:
    enum:
        FNN_OP_AFFINE
        FNN_OP_BATCHNORM
        FNN_OP_RELU
        FNN_OP_SIGMOID
        FNN_OP_DROPOUT
    enum:
        FNN_PASS_N_THREADS
        FNN_PASS_ONE_THREAD
        FNN_PASS_TWO_THREADS
    ctypedef struct fnn_op:
        int kind
        Py_ssize_t d_in, d_out
        int in_buf, out_buf
        void *x
        void *y
        void *dx
        void *dx_serial
        void *dout
        void *W
        void *b
        void *dW
        void *db
        int need_dx
        void *Wt
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
        int f32_state
        double eps, momentum
        uint8_t *mask
        uint32_t *bits
        uint64_t seed, thr
        double scale
        int update
        void *s1[2]
        void *s2[2]
    ctypedef struct fnn_softmax_args:
        const void *scores
        Py_ssize_t C
        const int64_t *idx
        const void *onehot
        void *probs
        double grad_scale
    ctypedef struct fnn_fused_update:
        int kind
        fnn_optim_hparams hp
        const fnn_optim_tables *tables
    double fnn_netstep_pass(fnn_op *ops, int n_ops, Py_ssize_t N, int dbl, const fnn_blas *blas,
                            const fnn_softmax_args *sm, void *d_last, double *acc, int *ready,
                            void *partial, double *bn_sums, int n_threads, int policy,
                            const fnn_fused_update *upd, int *schedule, int *updated)
    void fnn_netstep_infer(fnn_op *ops, int n_ops, Py_ssize_t N, int dbl, const fnn_blas *blas,
                           int n_threads, int policy, int *schedule)
    int fnn_netstep_two_threads_built()

ctypedef fnn_op Op

cdef enum:
    OP_AFFINE = FNN_OP_AFFINE
    OP_BATCHNORM = FNN_OP_BATCHNORM
    OP_RELU = FNN_OP_RELU
    OP_SIGMOID = FNN_OP_SIGMOID
    OP_DROPOUT = FNN_OP_DROPOUT


# SciPy's BLAS GEMMs (what every fastnn GEMM calls) and, when found, its thread-count functions
# (the two-thread schedule sets the BLAS to one thread while its two threads run GEMMs side by
# side; without them passes are serial).
_TWO_THREADS_BUILT = bool(fnn_netstep_two_threads_built())
TWO_THREAD_MIN_FLOPS_PER_OP = 2e6
# Below that, when every GEMM is small too (flops, and weights that fit in L2), a pass at two or
# more threads runs on one, the BLAS included: the BLAS's own threads cost more than they save on
# such GEMMs (the digits network 64-100x3-10 at batch 100, two threads: 1.07-1.26x faster than
# serial with a two-thread BLAS, as fast as at one thread). Larger GEMMs (a wide layer at a small
# batch: bound by reading its weights) keep the BLAS's threads.
ONE_THREAD_MAX_GEMM_FLOPS = 8e6
ONE_THREAD_MAX_WEIGHTS = 262144
# The inference forward's two-thread schedule (each thread runs the chain on half the batch: no
# barriers) pays from this many forward GEMM flops in all (waking the second thread: ~12 us).
INFER_TWO_THREAD_MIN_FLOPS = 4e6

# SciPy's GEMMs and what fastnn._blas_lib finds of its BLAS: its thread-count functions (NULL
# for another BLAS or none found: passes then stay serial) and small-matrix kernels
cdef fnn_blas _BLAS
blas_describe(&_BLAS)


def _set_small_mnk(double small_mnk):
    """Test hook: set the m·n·k up to which the passes' GEMMs take the BLAS's small kernels
    (csrc/gemm.h; 0: never split); returns the previous value."""
    old = _BLAS.small_mnk
    _BLAS.small_mnk = small_mnk
    return old


def two_thread_schedule_available():
    """Whether passes at two or more threads can use the two-thread schedule (an OpenMP build
    with GCC or Clang, and the BLAS's thread-count functions found)."""
    return _TWO_THREADS_BUILT and _BLAS.set_threads != NULL


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


cdef bint _valid_index_labels(object t, Py_ssize_t N, Py_ssize_t C):
    """t is already what fastnn._softmax_xent.labels makes of valid class indices for scores
    (N, C): an aligned C-contiguous int64 (N,) array of values in [0, C), and not one-hot by the
    book's rule (N*C elements, i.e. C == 1). Anything else goes through labels()."""
    if type(t) is not np.ndarray or C == 1:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>t
    if (cnp.PyArray_TYPE(a) != cnp.NPY_INT64 or cnp.PyArray_NDIM(a) != 1
            or cnp.PyArray_DIMS(a)[0] != N or not cnp.PyArray_IS_C_CONTIGUOUS(a)
            or not cnp.PyArray_ISALIGNED(a)):
        return False
    cdef const int64_t *v = <const int64_t *>cnp.PyArray_DATA(a)
    cdef Py_ssize_t i
    for i in range(N):
        if v[i] < 0 or v[i] >= C:
            return False
    return True


cdef inline Py_ssize_t _refs(list items, Py_ssize_t i):
    obj = items[i]
    return Py_REFCNT(obj)

cdef enum:
    # _refs of an object only the list and one other holder reference (the count includes
    # _refs's own reference)
    _PLAN_AND_LAYER = 3


cdef int _serial_policy(const Op *ops, int n_ops, Py_ssize_t N):
    """FNN_PASS_ONE_THREAD when every GEMM of the chain is small (see ONE_THREAD_MAX_*), else
    FNN_PASS_N_THREADS."""
    cdef int i
    for i in range(n_ops):
        if ops[i].kind == OP_AFFINE and (
                2.0 * N * ops[i].d_in * ops[i].d_out > ONE_THREAD_MAX_GEMM_FLOPS
                or ops[i].d_in * ops[i].d_out > ONE_THREAD_MAX_WEIGHTS):
            return FNN_PASS_N_THREADS
    return FNN_PASS_ONE_THREAD


_LAYER_TYPES = None


class _NotPlanned:
    """Stands for a layer class that does not derive from its C-member base (one put in
    fastnn.layers in place of fastnn's): no layer is of this class, so none is planned."""


def _layer_types():
    # fastnn.layers imports this module's siblings only; bound on first use (no import cycle).
    # The plans cast each layer of these exact classes to its base (fastnn._layerstate): a
    # class that does not derive from it is replaced by _NotPlanned (its layers take the layer
    # path).
    global _LAYER_TYPES
    if _LAYER_TYPES is None:
        from fastnn import layers as L
        pairs = ((L.Affine, AffineState), (L.BatchNormalization, BatchNormState),
                 (L.Relu, ReluState), (L.Sigmoid, SigmoidState), (L.Dropout, DropoutState),
                 (L.SoftmaxWithLoss, SoftmaxWithLossState))
        _LAYER_TYPES = tuple(cls if isinstance(cls, type) and issubclass(cls, base)
                             else _NotPlanned for cls, base in pairs)
    return _LAYER_TYPES


# The layer attributes that keep a forward buffer (_ChainPlan.keepers).
cdef enum:
    _KEPT_AFFINE_X = 0
    _KEPT_BATCHNORM_X = 1
    _KEPT_SIGMOID_OUT = 2
    _KEPT_SOFTMAX_Y = 3


cdef inline object _kept(object layer, int attr):
    """The attribute ``attr`` (_KEPT_*) of ``layer``, a layer of the matching class."""
    if attr == _KEPT_AFFINE_X:
        return (<AffineState>layer).x
    if attr == _KEPT_BATCHNORM_X:
        return (<BatchNormState>layer)._x
    if attr == _KEPT_SIGMOID_OUT:
        return (<SigmoidState>layer).out
    return (<SoftmaxWithLossState>layer).y


cdef class _ChainPlan:
    """What the compiled passes share: one C op per layer of the chain, the checks of the input
    and of the Affine layers' parameters, and the forward output buffers with their reuse by
    reference count."""
    cdef Op *ops
    cdef int n_ops
    cdef Py_ssize_t N, K
    cdef object n_rows          # N as a Python int (one object, set on the layers)
    cdef bint dbl
    cdef object dtype
    cdef int typenum
    cdef list layers            # the layer objects, in order
    cdef list types             # and their classes (exact fastnn layer classes)
    cdef list expect            # per layer: the objects its attributes must still be
    cdef list buffers           # forward output buffers (ndarrays)
    cdef list keepers           # per buffer: the (layer, attribute) pairs that keep it
    cdef list baseline          # reference counts of the buffers when only the plan held them
    cdef list in_shape          # per layer: the shape of its input
    cdef readonly int policy    # how a pass at two or more threads uses them (FNN_PASS_*)
    cdef readonly int schedule  # threads of the last pass's schedule (1 or 2; 0: none yet)
    cdef bint busy              # a pass of this plan is running (in another Python thread)

    def __cinit__(self):
        self.ops = NULL
        self.n_ops = 0
        self.busy = False

    def __dealloc__(self):
        PyMem_Free(self.ops)
        self.ops = NULL

    cdef bint _start(self, layers, x, object dt) except -1:
        """Checks the input (a C-contiguous, non-empty (N, K) array of dtype dt) and the chain
        (distinct layer objects), and allocates one op per layer."""
        if dt != np.float32 and dt != np.float64:
            return False
        if type(x) is not np.ndarray or x.ndim != 2 or not _is_array(x, dt, x.shape):
            return False
        if x.shape[0] == 0 or x.shape[1] == 0:
            return False
        self.N, self.K, self.dtype, self.dbl = x.shape[0], x.shape[1], dt, dt == np.float64
        self.n_rows = x.shape[0]
        self.typenum = cnp.NPY_DOUBLE if self.dbl else cnp.NPY_FLOAT
        self.layers = list(layers.values())
        if not self.layers or len(set(map(id, self.layers))) != len(self.layers):
            return False            # a layer object used twice keeps one state: layer path
        self.types = [type(layer) for layer in self.layers]
        self.n_ops = len(self.layers)
        self.ops = <Op *>PyMem_Calloc(self.n_ops, sizeof(Op))
        if self.ops == NULL:
            raise MemoryError()
        self.expect, self.in_shape = [], []
        self.buffers, self.keepers = [], []
        return True

    cdef Op *_next_op(self, int i, int cur, Py_ssize_t width):
        """Op i, reading the current activation (buffer cur, -1: the network input) of width
        features; its output defaults to the same width."""
        cdef Op *op = &self.ops[i]
        op.in_buf = cur
        op.d_in = op.d_out = width
        self.in_shape.append((self.N, width))
        return op

    cdef int _new_buffer(self, Py_ssize_t width):
        self.buffers.append(np.empty((self.N, width), dtype=self.dtype))
        self.keepers.append([])
        return len(self.buffers) - 1

    cdef int _output_keeping_input(self, int cur, layer, int attr, Py_ssize_t width):
        """A new output buffer for a layer that keeps its input as attribute ``attr``
        (_KEPT_*)."""
        if cur >= 0:
            self.keepers[cur].append((layer, attr))
        return self._new_buffer(width)

    cdef int _output_in_place(self, int cur, Py_ssize_t width):
        """An element-wise layer's output: its input buffer when nothing keeps it (not the
        network input), else a new buffer."""
        return self._new_buffer(width) if cur < 0 or self.keepers[cur] else cur

    cdef void _point_ops(self, x):
        """Every op's x and y at the current buffers (index -1: the network input)."""
        cdef Op *op
        for i in range(self.n_ops):
            op = &self.ops[i]
            op.x = _data(x) if op.in_buf < 0 else _data(self.buffers[op.in_buf])
            op.y = _data(x) if op.out_buf < 0 else _data(self.buffers[op.out_buf])

    cdef bint _affine_params(self, Op *op, layer, Py_ssize_t width) except -1:
        """An Affine layer's W (width, M) and b (M,), contiguous, of the plan's dtype: sets
        op.kind, op.d_out, op.W and op.b."""
        W, b = layer.W, layer.b
        if type(W) is not np.ndarray or W.ndim != 2 or W.shape[0] != width:
            return False
        cdef Py_ssize_t M = W.shape[1]
        if M == 0 or not _is_array(W, self.dtype, (width, M)) or not _is_array(b, self.dtype, (M,)):
            return False
        op.kind, op.d_out = OP_AFFINE, M
        op.W, op.b = _data(W), _data(b)
        return True

    cdef double _gemm_flops(self, bint backward):
        """Flops of the chain's GEMMs: the forward's, or with backward those of the whole pass
        (dW, and dx where the op needs it)."""
        cdef double flops = 0.0
        cdef Op *op
        for i in range(self.n_ops):
            op = &self.ops[i]
            if op.kind == OP_AFFINE:
                flops += 2.0 * self.N * op.d_in * op.d_out * (
                    (3 if op.need_dx else 2) if backward else 1)
        return flops

    cdef void _set_policy(self, bint two_threads_pay):
        """The two-thread schedule where it pays, else one thread or n (_serial_policy)."""
        self.policy = (FNN_PASS_TWO_THREADS if two_threads_pay
                       else _serial_policy(self.ops, self.n_ops, self.N))

    cdef void _finish(self):
        self.baseline = [_refs(self.buffers, i) for i in range(len(self.buffers))]

    @property
    def buffer_bytes(self):
        """Bytes of the output buffers this plan keeps between passes."""
        return sum(b.nbytes for b in self.buffers)

    cdef bint _input_matches(self, x, layers):
        """x is an input of the planned dtype and shape, and there are as many layers."""
        if type(x) is not np.ndarray:
            return False
        cdef cnp.ndarray xa = <cnp.ndarray>x
        return (cnp.PyArray_TYPE(xa) == self.typenum and cnp.PyArray_ISNOTSWAPPED(xa)
                and xa.ndim == 2 and xa.shape[0] == self.N and xa.shape[1] == self.K
                and cnp.PyArray_IS_C_CONTIGUOUS(xa) and cnp.PyArray_ISALIGNED(xa)
                and len(layers) == self.n_ops)

    @staticmethod
    cdef bint _batchnorm_matches(const Op *op, BatchNormState layer, e):
        """The BatchNormalization layer still has the gamma, beta (e[0], e[1]) and eps the plan
        read."""
        g, be = layer.gamma, layer.beta
        return (g is e[0] and be is e[1] and _data(g) == op.gamma and _data(be) == op.beta
                and getattr(layer, "_eps") == op.eps)   # (a class attribute, as in the book)

    @staticmethod
    cdef bint _affine_matches(const Op *op, AffineState layer, e):
        """The Affine layer still has the W and b (objects and memory) the plan read."""
        W, b = layer.W, layer.b
        return (W is e[0] and b is e[1] and _data(W) == op.W and _data(b) == op.b
                and cnp.PyArray_NDIM(<cnp.ndarray>W) == 2
                and cnp.PyArray_DIMS(<cnp.ndarray>W)[1] == op.d_out)

    cdef _release_held(self):
        """Outputs referenced by anything but the plan and the layer attributes that keep them
        (e.g. a user holds an earlier layer.x, or the scores) are left to their holders, as the
        layers' own outputs are: the next pass writes new buffers instead."""
        cdef Py_ssize_t i, held
        for i in range(len(self.buffers)):
            buf = self.buffers[i]
            held = 0
            for obj, attr in self.keepers[i]:
                if _kept(obj, attr) is buf:
                    held += 1
            del buf
            if _refs(self.buffers, i) > <Py_ssize_t>self.baseline[i] + held:
                self.buffers[i] = np.empty(self.buffers[i].shape, dtype=self.dtype)


cdef class TrainPass(_ChainPlan):
    """A network's training pass (forward, softmax cross-entropy, backward) compiled for one
    layer chain, one dtype and one batch shape.

    :meth:`build` returns None unless the chain is made of exact fastnn ``Affine``,
    ``BatchNormalization``, ``Relu``, ``Sigmoid`` and ``Dropout`` layers followed by a
    ``SoftmaxWithLoss``, with contiguous parameters of the network's dtype; :meth:`matches` tells
    whether the plan still describes the network (same layer objects, parameters, flags and
    state arrays); :meth:`run` does one pass and leaves the layers as their own forward and
    backward would.
    """
    cdef Py_ssize_t C
    cdef object loss_layer, loss_type
    cdef list extra             # per layer: a BatchNormalization's dgamma, dbeta and statistics
    cdef object d_last, acc     # backward workspaces: the loss gradient, bias-sum scratch
    cdef object ready, partial  # two-thread schedule: per-op flags, thread 1's part of the first
                                # layer's output,
    cdef object bn_sums         # and the threads' batch-norm row sums (netstep.c)
    cdef list dxs               # per op: its input-gradient buffer on the two-thread schedule
    cdef list dx_pair           # the two the serial schedule alternates (netstep.h)
    cdef object wt_scratch      # the Affine ops' W transposes in the dx products (netstep.h)
    cdef int scores_buf, probs_buf
    cdef readonly bint two_threads_pay  # enough work per op for the two-thread schedule
    cdef readonly bint updated  # the last run applied the optimizer update it was given

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

    cdef bint _plan(self, layers, loss_layer, x, object dt, dict grad_views) except -1:
        Affine, BatchNorm, Relu, Sigmoid, Dropout, SoftmaxWithLoss = _layer_types()
        if type(loss_layer) is not SoftmaxWithLoss or not self._start(layers, x, dt):
            return False
        cdef Py_ssize_t N = self.N, width = self.K, M, D, max_width = width
        self.loss_layer, self.loss_type = loss_layer, SoftmaxWithLoss
        self.extra = []
        self.dxs = [None] * self.n_ops
        cdef int cur = -1           # buffer of the current activation (-1: the network input)
        cdef int i
        cdef Op *op
        for i, layer in enumerate(self.layers):
            op = self._next_op(i, cur, width)
            tp = type(layer)
            if tp is Affine:
                gb, need_dx = layer.grad_buffers, layer.need_dx
                if not self._affine_params(op, layer, width):
                    return False
                M = op.d_out
                if (type(gb) is not tuple or len(gb) != 2
                        or not _is_array(gb[0], dt, (width, M), True)
                        or not _is_array(gb[1], dt, (M,), True)
                        or (need_dx is not True and need_dx is not False)
                        or (not need_dx and i > 0)):     # the layer path fails there: let it
                    return False
                op.need_dx = need_dx
                if need_dx:
                    self.dxs[i] = np.empty((N, width), dtype=dt)
                op.dW, op.db = _data(gb[0]), _data(gb[1])
                cur = self._output_keeping_input(cur, layer, _KEPT_AFFINE_X, M)
                self.expect.append((layer.W, layer.b, gb, need_dx))
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
                op.kind = OP_BATCHNORM
                self.dxs[i] = np.empty((N, D), dtype=dt)
                op.gamma, op.beta, op.dgamma, op.dbeta = _data(g), _data(be), _data(dg), _data(db)
                op.mean, op.var, op.std = _data(stats[0]), _data(stats[1]), _data(stats[2])
                op.f32_state = not self.dbl and sdt == np.float32
                op.eps, op.momentum = float(layer._eps), momentum
                cur = self._output_keeping_input(cur, layer, _KEPT_BATCHNORM_X, D)
                self.expect.append([g, be, momentum, rm, rv])
                self.extra.append((dg, db) + stats)
            elif tp is Relu or tp is Sigmoid or tp is Dropout:
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
                    op.scale = layer._train_scale()
                    nwords = (N * width + 31) // 32
                    bits = layer._bits
                    if not _is_array(bits, np.uint32, (nwords,), True):
                        bits = np.empty(nwords, dtype=np.uint32)
                    op.bits = <uint32_t *>_data(bits)
                    self.expect.append((ratio, inverted, seed, bits))
                self.extra.append(None)
                cur = self._output_in_place(cur, width)
                if tp is Sigmoid:
                    self.keepers[cur].append((layer, _KEPT_SIGMOID_OUT))   # the layer keeps its output
            else:
                return False
            op.out_buf = cur
            width = op.d_out
            max_width = max(max_width, width)
        if cur < 0:
            return False
        # The serial backward needs only two input-gradient buffers, alternated along the chain
        # (an op's output gradient is consumed before the op after the next writes): a smaller
        # working set than a buffer per op, which the two-thread schedule needs (thread 1 reads
        # each Affine's output gradient while the chain goes on). Measured on the ch.6 network
        # at one thread: 1-3 % faster steps.
        cdef Py_ssize_t dx_width = max([d.shape[1] for d in self.dxs if d is not None] or [1])
        self.dx_pair = [np.empty(N * dx_width, dtype=dt), np.empty(N * dx_width, dtype=dt)]
        # W's transpose for the dx products (fnn_gemm_bt), one buffer for all: only the chain
        # computes them, one op at a time
        cdef Py_ssize_t wt_size = max([self.ops[i].d_in * self.ops[i].d_out
                                       for i in range(self.n_ops)
                                       if self.ops[i].kind == OP_AFFINE and self.ops[i].need_dx]
                                      or [0])
        self.wt_scratch = np.empty(wt_size, dtype=dt) if wt_size else None
        for i in range(self.n_ops):
            if self.ops[i].kind == OP_AFFINE and self.ops[i].need_dx:
                self.ops[i].Wt = _data(self.wt_scratch)
        cdef int k = 0
        for i in range(self.n_ops - 1, -1, -1):          # in backward order
            if self.dxs[i] is not None:
                self.ops[i].dx = _data(self.dxs[i])
                self.ops[i].dx_serial = _data(self.dx_pair[k & 1])
                k += 1
        self.C = width
        self.scores_buf = cur
        self.probs_buf = self._new_buffer(width)
        self.keepers[self.probs_buf].append((loss_layer, _KEPT_SOFTMAX_Y))   # the loss layer keeps y
        # The two-thread schedule costs ~12 us to wake the second thread plus a few us per op
        # (barriers, waits): measured here, it pays from ~2 MFLOP of GEMM work per op (784-50-50
        # or the ch.6 network at batch 100: 1.2-1.4x faster; 64-100x3-10 at batch 100: slower).
        self.two_threads_pay = (self._gemm_flops(True)
                                >= TWO_THREAD_MIN_FLOPS_PER_OP * self.n_ops)
        self._set_policy(self.two_threads_pay)
        self.d_last = np.empty((N, width), dtype=dt)
        self.acc = np.empty(max_width, dtype=np.float64)
        if self.two_threads_pay:
            self.ready = np.empty(self.n_ops, dtype=np.intc)
            self.partial = np.empty((N, self.ops[0].d_out), dtype=dt)
            self.bn_sums = np.empty(12 * max([self.ops[i].d_out for i in range(self.n_ops)
                                             if self.ops[i].kind == OP_BATCHNORM] or [1]))
        self._finish()
        return True

    def matches(self, layers, loss_layer, x):
        """True if this plan still describes the network: same loss layer and layer objects in
        the same order, each with the parameters, flags and state arrays the plan read, and an
        input of the planned dtype and shape."""
        if (loss_layer is not self.loss_layer or type(loss_layer) is not self.loss_type
                or not self._input_matches(x, layers)):
            return False
        cdef int i = 0
        cdef Op *op
        cdef AffineState af
        cdef BatchNormState bn
        cdef DropoutState dr
        for layer in layers.values():
            if layer is not self.layers[i] or type(layer) is not self.types[i]:
                return False
            op = &self.ops[i]
            e = self.expect[i]
            if op.kind == OP_AFFINE:
                af = <AffineState>layer
                if (not _ChainPlan._affine_matches(op, af, e)
                        or af.grad_buffers is not e[2] or af.need_dx is not e[3]):
                    return False
            elif op.kind == OP_BATCHNORM:
                bn = <BatchNormState>layer
                if (not _ChainPlan._batchnorm_matches(op, bn, e)
                        or bn.momentum is not e[2] or bn.running_mean is not e[3]
                        or bn.running_var is not e[4]):
                    return False
            elif op.kind == OP_RELU:
                if (<ReluState>layer).mask is not e[0]:
                    return False
            elif op.kind == OP_DROPOUT:
                dr = <DropoutState>layer
                if (dr.dropout_ratio is not e[0] or dr.inverted is not e[1]
                        or dr.seed is not e[2] or dr._bits is not e[3]):
                    return False
            i += 1
        return True

    def run(self, x, t, update=None):
        """One training pass on input ``x`` (as :meth:`matches` accepts) and labels ``t``
        (class indices or one-hot, as ``SoftmaxWithLoss`` reads them).

        Returns the loss (a scalar of the network's dtype), or None, before changing anything,
        when the labels need the layers' own path (invalid labels, whose error that path
        raises, or one-hot labels of a dtype that would promote the gradient), or when another
        Python thread is running this plan (its buffers are in use).

        ``update``: an optimizer update for the pass to apply, ``(kind, (lr, momentum, beta2,
        eps, weight_decay, lr_wd), step_plan)``: the rule, its hyper-parameters as
        ``fastnn._optim.StepPlan.step`` takes them, and the optimizer's step plan, on which the
        caller has validated the call (``reserve``; until its ``unreserve``, which the caller
        calls after this). The pass applies it from the plan's tables: the serial schedule at
        one thread after the backward (the optimizer's own one-thread step), the two-thread
        schedule layer by layer during it when each layer's parameters are arrays of the call
        (:meth:`_bind_update`). :attr:`updated` tells whether it was applied (else the caller
        runs the optimizer)."""
        if self.busy:
            return None
        self.busy = True
        try:
            return self._run(x, t, update)
        finally:
            self.busy = False

    cdef list _bind_update(self, update, fnn_fused_update *upd, bint per_op):
        """Bind the optimizer update ``update`` (see :meth:`run`) for the pass, from the
        optimizer's tables of the validated call: ``per_op`` (the two-thread schedule, which
        updates each layer during the backward) points every parameter op at its states, else
        the serial schedule runs the optimizer's own one-thread step after the backward.
        Returns a list to keep during the pass, or None (no fused update: the caller's update()
        runs) when the tables cannot be used, or, per op, unless every op's parameter is one of
        the call's arrays (the same memory, with the op's gradient) and every array one of the
        ops' parameters (e.g. not if ``params['W2']`` was rebound to another array)."""
        kind, hp, step_plan = update
        capsule = step_plan.reserved_tables(1 if self.dbl else 0, per_op)
        if capsule is None:
            return None
        cdef const fnn_optim_tables *tables = <const fnn_optim_tables *>PyCapsule_GetPointer(
            capsule, "fastnn._optim.tables")
        cdef int i, j
        cdef Py_ssize_t k, n, matched = 0
        cdef Op *op
        cdef void *p
        cdef void *g
        self._unbind()               # (the pass reads the flags only with an update: netstep.h)
        if per_op:
            for i in range(self.n_ops):
                op = &self.ops[i]
                if op.kind != OP_AFFINE and op.kind != OP_BATCHNORM:
                    continue
                for j in range(2):
                    if op.kind == OP_AFFINE:
                        p, g = (op.W, op.dW) if j == 0 else (op.b, op.db)
                        n = op.d_in * op.d_out if j == 0 else op.d_out
                    else:
                        p, g = (op.gamma, op.dgamma) if j == 0 else (op.beta, op.dbeta)
                        n = op.d_out
                    k = 0
                    while k < tables.n_tensors and tables.p[k] != p:
                        k += 1
                    if k == tables.n_tensors or tables.g[k] != g or tables.n[k] != n:
                        self._unbind()
                        return None
                    op.s1[j] = tables.s1[k] if tables.s1 != NULL else NULL
                    op.s2[j] = tables.s2[k] if tables.s2 != NULL else NULL
                    matched += 1
                op.update = 1
            if matched != tables.n_tensors:
                self._unbind()
                return None
        upd.kind = kind
        upd.hp.lr, upd.hp.momentum, upd.hp.beta2, upd.hp.eps, upd.hp.weight_decay, upd.hp.lr_wd = hp
        upd.tables = NULL
        if not per_op:
            upd.tables = tables
        return [capsule]

    cdef void _unbind(self) noexcept:
        cdef int i
        for i in range(self.n_ops):
            self.ops[i].update = 0

    cdef _run(self, x, t, update):
        cdef int i, n_ops = self.n_ops, nt = get_num_threads()
        cdef Op *op
        cdef DropoutState dr
        cdef Py_ssize_t N = self.N, C = self.C
        cdef bint dbl = self.dbl
        t_arr = t if type(t) is np.ndarray else np.asarray(t)
        if _valid_index_labels(t_arr, N, C):   # the common case, without a Python call
            idx, onehot = t_arr, None
        else:
            try:
                idx, onehot = _sx.labels(t_arr, N, C, self.dtype)
            except (TypeError, ValueError):
                return None
            if onehot is not None and compute_dtype(self.dtype, t_arr) != self.dtype:
                return None
        cdef double grad_scale = 1.0 / (t_arr.shape[0] if t_arr.ndim > 0 else 1)
        self._release_held()
        buffers = self.buffers
        layers = self.layers
        old_stats = []
        self._point_ops(x)
        # The Dropout layers without a seed of their own draw one each from NumPy's global
        # generator, in forward order (_drng.draw_seed): all in one call, the same numbers.
        seeds = [(<DropoutState>layers[i]).seed for i in range(n_ops)
                 if self.ops[i].kind == OP_DROPOUT]
        cdef Py_ssize_t n_draw = seeds.count(None), k_seed = 0, k_draw = 0
        draws = _random_sample(n_draw) if n_draw > 0 else None
        cdef const double *drawn = <const double *>_data(draws) if n_draw > 0 else NULL
        for i in range(n_ops):
            op = &self.ops[i]
            if op.kind == OP_DROPOUT:          # the layer's seed, in forward order
                dr = <DropoutState>layers[i]
                seed = seeds[k_seed]
                k_seed += 1
                calls = dr._calls
                if seed is not None:
                    seed = _drng.call_seed(seed, calls)
                else:
                    seed = <uint64_t>(drawn[k_draw] * 9007199254740992.0)   # x * 2**53: exact
                    k_draw += 1
                dr._calls = calls + 1
                dr.last_seed = seed
                op.seed = seed
            elif op.kind == OP_BATCHNORM:
                # Running statistics: new arrays, as the book's code makes, unless nothing but
                # this plan and the layer holds the old ones (matches() checked that the layer
                # holds them): then updating them in place is the same to every observer, and
                # saves two allocations per layer and step.
                e = self.expect[i]
                op.rm_old, op.rv_old = _data(e[3]), _data(e[4])
                if _refs(e, 3) > _PLAN_AND_LAYER or _refs(e, 4) > _PLAN_AND_LAYER:
                    old_stats.append((e[3], e[4]))  # alive until the pass has read them
                    e[3] = _new_like(e[3])
                    e[4] = _new_like(e[4])
                op.rm_new, op.rv_new = _data(e[3]), _data(e[4])
        cdef void *scores = _data(buffers[self.scores_buf])
        cdef void *probs = _data(buffers[self.probs_buf])
        cdef void *d_last = _data(self.d_last)
        cdef int *ready = <int *>_data(self.ready) if self.ready is not None else NULL
        cdef void *partial = _data(self.partial) if self.partial is not None else NULL
        cdef double *bn_sums = <double *>_data(self.bn_sums) if self.bn_sums is not None else NULL
        cdef double *acc = <double *>_data(self.acc)
        cdef fnn_softmax_args sm
        cdef int schedule
        cdef const int64_t *pidx = <const int64_t *>_data(idx) if idx is not None else NULL
        cdef void *ponehot = _data(onehot) if onehot is not None else NULL
        sm.scores, sm.C, sm.idx, sm.onehot, sm.probs = scores, C, pidx, ponehot, probs
        sm.grad_scale = grad_scale
        cdef double loss
        cdef fnn_fused_update upd
        cdef int updated = 0
        held = None
        if update is not None:
            held = self._bind_update(update, &upd, nt >= 2 and self.policy == FNN_PASS_TWO_THREADS)
        with nogil:
            loss = fnn_netstep_pass(self.ops, n_ops, N, dbl, &_BLAS, &sm, d_last, acc, ready,
                                    partial, bn_sums, nt, self.policy, &upd if held is not None else NULL,
                                    &schedule, &updated)
        self.updated = updated
        # the kernel returns NaN when its scratch allocation fails; finite scores cannot give a
        # NaN loss otherwise (infinite or NaN scores can, and then the pass is the layers')
        if loss != loss and np.isfinite(buffers[self.scores_buf]).all():
            raise MemoryError("softmax_xent_forward: out of memory")
        self.schedule = schedule
        self._set_layer_state(x, t, loss)
        return self.loss_layer.loss

    cdef _set_layer_state(self, x, t, double loss):
        """The attributes each layer's own forward and backward would have left. Most are the
        objects of the previous pass (the same buffers): those stores are skipped, sparing
        the objects' reference counts (cache misses after the pass's kernels)."""
        cdef int i
        cdef Op *op
        cdef AffineState af
        cdef BatchNormState bn
        cdef DropoutState dr
        cdef ReluState re
        cdef SigmoidState sg
        buffers = self.buffers
        for i in range(self.n_ops):
            op = &self.ops[i]
            layer = self.layers[i]
            xin = x if op.in_buf < 0 else buffers[op.in_buf]
            shape = self.in_shape[i]
            if op.kind == OP_AFFINE:
                af = <AffineState>layer
                gb = self.expect[i][2]
                if af.original_x_shape is not shape:
                    af.original_x_shape = shape
                if af.x is not xin:
                    af.x = xin
                if af.dW is not gb[0]:
                    af.dW = gb[0]
                if af.db is not gb[1]:
                    af.db = gb[1]
            elif op.kind == OP_BATCHNORM:
                bn = <BatchNormState>layer
                e, ex = self.expect[i], self.extra[i]
                if bn.input_shape is not shape:
                    bn.input_shape = shape
                if bn._x is not xin:
                    bn._x = xin
                if bn.batch_size is not self.n_rows:
                    bn.batch_size = self.n_rows
                if bn.running_mean is not e[3]:
                    bn.running_mean = e[3]
                if bn.running_var is not e[4]:
                    bn.running_var = e[4]
                if bn.dgamma is not ex[0]:
                    bn.dgamma = ex[0]
                if bn.dbeta is not ex[1]:
                    bn.dbeta = ex[1]
            elif op.kind == OP_RELU:
                re = <ReluState>layer
                if re.mask is not self.expect[i][0]:
                    re.mask = self.expect[i][0]
            elif op.kind == OP_SIGMOID:
                sg = <SigmoidState>layer
                if sg.out is not buffers[op.out_buf]:
                    sg.out = buffers[op.out_buf]
            elif op.kind == OP_DROPOUT:
                dr = <DropoutState>layer
                if dr._bits is not self.expect[i][3]:
                    dr._bits = self.expect[i][3]
                if dr._shape is not shape:
                    dr._shape = shape
                if type(dr._scale) is not float or <double>dr._scale != op.scale:
                    dr._scale = op.scale
                if dr._mask is not None:
                    dr._mask = None
        cdef SoftmaxWithLossState ll = <SoftmaxWithLossState>self.loss_layer
        if ll.t is not t:
            ll.t = t
        if ll.y is not buffers[self.probs_buf]:
            ll.y = buffers[self.probs_buf]
        if ll._dx is not None:
            ll._dx = None
        ll.loss = self.dtype.type(loss)


cdef class InferPass(_ChainPlan):
    """A network's inference forward (``predict`` with ``train_flg=False``) compiled for one layer
    chain, one dtype and one batch shape: every layer's own forward -- the same kernels and GEMMs
    with the same arguments, so bitwise the layer-by-layer results -- in one call without the
    GIL instead of one Python call per layer.

    :meth:`build` returns None unless the chain is made of exact fastnn ``Affine``,
    ``BatchNormalization``, ``Relu``, ``Sigmoid`` and ``Dropout`` layers with contiguous
    parameters of the network's dtype; :meth:`matches` tells whether the plan still describes
    the network; :meth:`run` returns the scores and leaves the layers as their own forward would
    (``x``, ``mask``, ``out``, ``input_shape``), or returns None before changing anything when a
    BatchNormalization's running statistics are not contiguous arrays of the network's dtype (the
    layers then promote as NumPy does).

    Memory as in :class:`TrainPass`: the outputs the layers keep (an Affine's ``x``, a Sigmoid's
    ``out``) and the returned scores are reused by the next run unless something else still
    holds them; element-wise layers work in place on a buffer nothing keeps.
    """
    cdef list keys              # the layers' keys (the network's predict flags layers by key)
    cdef int out_buf            # the buffer of the scores

    @staticmethod
    def build(layers, x, dtype, test_mode):
        """The plan for ``layers`` (an ordered mapping) and input ``x``, or None.

        ``test_mode(key)`` tells whether the network's predict gives the layer under ``key``
        ``train_flg=False``: a BatchNormalization or Dropout layer that it does not (its forward
        then defaults to training mode) makes the plan None.
        """
        cdef InferPass p = InferPass.__new__(InferPass)
        if not p._plan(layers, x, np.dtype(dtype), test_mode):
            return None
        return p

    cdef bint _plan(self, layers, x, dt, test_mode) except -1:
        Affine, BatchNorm, Relu, Sigmoid, Dropout, _ = _layer_types()
        if not self._start(layers, x, dt):
            return False
        self.keys = list(layers)
        cdef Py_ssize_t N = self.N, width = self.K
        cdef int cur = -1           # buffer of the current activation (-1: the network input)
        cdef int i
        cdef Op *op
        for i, layer in enumerate(self.layers):
            op = self._next_op(i, cur, width)
            tp = type(layer)
            if (tp is BatchNorm or tp is Dropout) and not test_mode(self.keys[i]):
                return False            # its forward would default to training mode
            if tp is Affine:
                if not self._affine_params(op, layer, width):
                    return False
                cur = self._output_keeping_input(cur, layer, _KEPT_AFFINE_X, op.d_out)
                self.expect.append((layer.W, layer.b))
            elif tp is BatchNorm:
                g, be = layer.gamma, layer.beta
                if not _is_array(g, dt, (width,)) or not _is_array(be, dt, (width,)):
                    return False
                op.kind = OP_BATCHNORM
                op.gamma, op.beta = _data(g), _data(be)
                op.eps = float(layer._eps)
                cur = self._new_buffer(width)          # a new array: nothing keeps it
                self.expect.append((g, be))
            elif tp is Relu or tp is Sigmoid:
                op.kind = OP_RELU if tp is Relu else OP_SIGMOID
                self.expect.append(())
                cur = self._output_in_place(cur, width)
                if tp is Sigmoid:
                    self.keepers[cur].append((layer, _KEPT_SIGMOID_OUT))   # the layer keeps its output
            elif tp is Dropout:
                ratio, inverted = layer.dropout_ratio, layer.inverted
                try:
                    layer._threshold()
                except ValueError:                   # the layer's forward raises it
                    return False
                if type(ratio) is not float or (inverted is not True and inverted is not False):
                    return False                     # (a NumPy scalar ratio promotes otherwise)
                op.kind = OP_DROPOUT
                op.scale = 1.0 if inverted else 1.0 - ratio
                self.expect.append((ratio, inverted))
                # the inverted layer returns its input itself; the book's scales it into a new
                # array (in place when nothing keeps the input buffer)
                if not inverted:
                    cur = self._output_in_place(cur, width)
            else:
                return False
            op.out_buf = cur
            width = op.d_out
        if cur < 0:
            return False                # the scores would be the input array itself
        self.out_buf = cur
        self._set_policy(N >= 2 and self._gemm_flops(False) >= INFER_TWO_THREAD_MIN_FLOPS)
        self._finish()
        return True

    def matches(self, layers, x):
        """True if this plan still describes the network (same layer objects in the same order,
        with the same parameters and flags) and ``x`` is an input of its dtype and shape."""
        if not self._input_matches(x, layers):
            return False
        cdef int i = 0
        cdef Op *op
        for key, layer in layers.items():
            if (layer is not self.layers[i] or type(layer) is not self.types[i]
                    or (key is not self.keys[i] and key != self.keys[i])):
                return False
            op = &self.ops[i]
            e = self.expect[i]
            if op.kind == OP_AFFINE:
                if not _ChainPlan._affine_matches(op, <AffineState>layer, e):
                    return False
            elif op.kind == OP_BATCHNORM:
                if not _ChainPlan._batchnorm_matches(op, <BatchNormState>layer, e):
                    return False
            elif op.kind == OP_DROPOUT:
                if ((<DropoutState>layer).dropout_ratio is not e[0]
                        or (<DropoutState>layer).inverted is not e[1]):
                    return False
            i += 1
        return True

    def run(self, x):
        """The scores for input ``x`` (as :meth:`matches` accepts), or None (see the class, and
        when another Python thread is running this plan: its buffers are in use)."""
        if self.busy:
            return None
        self.busy = True
        try:
            return self._run(x)
        finally:
            self.busy = False

    cdef _run(self, x):
        cdef int i, n_ops = self.n_ops, nt = get_num_threads()
        cdef Op *op
        cdef Py_ssize_t N = self.N
        layers = self.layers
        stats, masks = [], []            # alive until the pass has read / written them
        for i in range(n_ops):           # checks first: nothing changes before they pass
            op = &self.ops[i]
            if op.kind == OP_BATCHNORM:
                rm = (<BatchNormState>layers[i]).running_mean
                rv = (<BatchNormState>layers[i]).running_var
                if not (_is_array(rm, self.dtype, (op.d_out,))
                        and _is_array(rv, self.dtype, (op.d_out,))):
                    return None
                if not self.dbl:         # the kernel reads them in float64, as the layer's call
                    rm, rv = rm.astype(np.float64), rv.astype(np.float64)
                stats.append((rm, rv))
                op.rm_old, op.rv_old = _data(rm), _data(rv)
            elif op.kind == OP_RELU:     # the layer's mask is reused when it fits, as it does
                mask = (<ReluState>layers[i]).mask
                if not _is_array(mask, np.bool_, (N, op.d_out), True):
                    mask = np.empty((N, op.d_out), dtype=np.bool_)
                masks.append(mask)
                op.mask = <uint8_t *>_data(mask)
        self._release_held()
        buffers = self.buffers
        self._point_ops(x)
        cdef int schedule
        with nogil:
            fnn_netstep_infer(self.ops, n_ops, N, self.dbl, &_BLAS, nt, self.policy, &schedule)
        self.schedule = schedule
        cdef int k = 0
        for i in range(n_ops):               # the attributes each layer's forward leaves
            op = &self.ops[i]
            layer = layers[i]
            if op.kind == OP_AFFINE:
                (<AffineState>layer).original_x_shape = self.in_shape[i]
                (<AffineState>layer).x = x if op.in_buf < 0 else buffers[op.in_buf]
            elif op.kind == OP_BATCHNORM:
                (<BatchNormState>layer).input_shape = self.in_shape[i]
            elif op.kind == OP_RELU:
                (<ReluState>layer).mask = masks[k]
                k += 1
            elif op.kind == OP_SIGMOID:
                (<SigmoidState>layer).out = buffers[op.out_buf]
        return buffers[self.out_buf]
