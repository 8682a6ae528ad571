"""Backpropagation layers with the book's names, signatures and attributes (``common/layers.py``).

Drop-in for ``from common.layers import *``: a star import also provides ``np``, every function
of :mod:`fastnn.functions` and ``im2col``/``col2im``, as the book's module does.

Relu, Sigmoid, Affine, SoftmaxWithLoss, Dropout and BatchNormalization run compiled kernels
(``show_config()`` lists which classes do); Convolution and Pooling are the reference's. Parameters are held by reference, never copied: ``net.params['W1'] is
layers['Affine1'].W``, and optimizers update them in place.

The attributes a compiled training pass checks and sets on every step (``W``, ``x``, ``mask``,
``running_mean``, ...) are C members of each class's base (fastnn._layerstate): ordinary
attributes to Python code, which pickle and copy with the layer.
"""
import math

import numpy as np  # noqa: F401  (re-exported, as in the book)

from fastnn import _activations, _affine, _batchnorm, _dropout, _layerstate, _softmax_xent
from fastnn._buffers import RecycledBuffers
from fastnn._dtypes import as_dtype, compute_dtype
from fastnn.functions import *  # noqa: F401,F403  (re-exported, as in the book)
from fastnn.reference import dropout_rng as _drng
from fastnn.reference import layers as _ref
from fastnn.util import col2im, im2col  # noqa: F401

_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)

_PUBLIC_CLASSES = ("Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout",
                   "BatchNormalization", "Convolution", "Pooling")


def _float_array(x, name):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = as_dtype(x, compute_dtype(x, np.float32 if x.dtype == np.float16 else np.float64))
    return x


class Relu(_layerstate.ReluState):
    """Rectified linear unit (compiled).

    Attributes
    ----------
    mask : ndarray of bool
        True where the last forward's input was ``<= 0``; its buffer is reused across calls of
        the same shape.
    """
    _implementation = "compiled"

    def __init__(self):
        self.mask = None
        self._outs = RecycledBuffers()

    def forward(self, x):
        x = _float_array(x, "x")
        reuse = self.mask if (isinstance(self.mask, np.ndarray) and self.mask.shape == x.shape
                              and self.mask.dtype == np.bool_
                              and self.mask.flags.c_contiguous and self.mask.flags.writeable) else None
        out, self.mask = _activations.relu_forward(x, mask=reuse,
                                                   out=self._outs.empty(x.shape, x.dtype))
        return out

    def backward(self, dout):
        """Zero ``dout`` where the input was <= 0. As in the book, ``dout`` itself is modified and
        returned when it is a writeable contiguous float array; otherwise a new array is returned."""
        if self.mask is None:
            raise RuntimeError("Relu.backward called before forward")
        if (isinstance(dout, np.ndarray) and dout.dtype in (np.float32, np.float64)
                and dout.flags.c_contiguous and dout.flags.writeable and dout.flags.aligned
                and dout.shape == self.mask.shape):
            return _activations.relu_backward(dout, self.mask, out=dout)
        return _activations.relu_backward(_float_array(dout, "dout"), self.mask)


class Sigmoid(_layerstate.SigmoidState):
    """Logistic layer ``1 / (1 + exp(-x))`` (compiled).

    Attributes
    ----------
    out : ndarray
        The last forward's output.
    """
    _implementation = "compiled"

    def __init__(self):
        self.out = None
        self._outs = RecycledBuffers()
        self._dxs = RecycledBuffers()

    def forward(self, x):
        x = _float_array(x, "x")
        self.out = _activations.sigmoid_forward(x, out=self._outs.empty(x.shape, x.dtype))
        return self.out

    def backward(self, dout):
        if self.out is None:
            raise RuntimeError("Sigmoid.backward called before forward")
        dout = np.asarray(dout)
        dt = compute_dtype(dout, self.out)
        return _activations.sigmoid_backward(as_dtype(dout, dt), as_dtype(self.out, dt),
                                             out=self._dxs.empty(self.out.shape, dt))


class Affine(_layerstate.AffineState):
    """Fully connected layer ``out = x·W + b`` (compiled: BLAS GEMMs, fused bias).

    Parameters
    ----------
    W : ndarray (K, M)
        Weights, held by reference (never copied).
    b : ndarray (M,)
        Bias, held by reference.

    Attributes
    ----------
    x : ndarray (N, K)
        The last forward's input reshaped to 2-D.
    original_x_shape : tuple
        The last forward's input shape (4-D input is flattened as in the book).
    dW, db : ndarray or None
        Gradients from the last backward.
    need_dx : bool
        Set False (e.g. on a network's first layer) to skip computing ``dx``; backward then
        returns None.
    grad_buffers : tuple (dW, db) of ndarrays or None
        If set, backward writes the gradients into these arrays (e.g. views of a network's flat
        gradient buffer) and ``dW``/``db`` are them; otherwise each backward returns new arrays.
    """
    _implementation = "compiled"

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None
        self.need_dx = True
        self.grad_buffers = None
        self._outs = RecycledBuffers()   # large outputs reuse memory once released
        self._dxs = RecycledBuffers()
        self._dWs = RecycledBuffers()

    def forward(self, x):
        W, b = self.W, self.b
        if (type(x) is np.ndarray and x.ndim == 2 and type(W) is np.ndarray
                and type(b) is np.ndarray and x.dtype is W.dtype is b.dtype and x.shape[0]):
            # common case (2-D batch, one float dtype): no promotion or reshaping to do; the
            # kernel wrapper validates shapes, contiguity and dtype
            self.original_x_shape = x.shape
            self.x = x if x.flags.c_contiguous else np.ascontiguousarray(x)
            return _affine.affine_forward(self.x, W, b,
                                          self._outs.empty((x.shape[0], W.shape[-1]), x.dtype))
        x = np.asarray(x)
        if x.ndim < 2:
            raise ValueError("x must have a batch axis: expected shape (N, ...), got %s" % (x.shape,))
        if x.size == 0:
            raise ValueError("x must hold at least one sample, got an empty batch of shape %s"
                             % (x.shape,))
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        dt = compute_dtype(x, self.W, self.b)
        # the weights are converted per call when their dtype differs, never cached
        self.x = np.ascontiguousarray(as_dtype(x, dt))
        return _affine.affine_forward(self.x, as_dtype(self.W, dt), as_dtype(self.b, dt))

    def backward(self, dout):
        if self.x is None:
            raise RuntimeError("Affine.backward called before forward")
        x, W = self.x, self.W
        if type(dout) is np.ndarray and type(W) is np.ndarray and dout.dtype is x.dtype is W.dtype:
            dt = x.dtype    # common case: nothing to promote
        else:
            dout = np.asarray(dout)
            dt = compute_dtype(dout, x, W)
            dout, x, W = as_dtype(dout, dt), as_dtype(x, dt), as_dtype(W, dt)
        if self.grad_buffers is not None and self.grad_buffers[0].dtype == dt:
            dW_out, db_out = self.grad_buffers
        else:
            dW_out, db_out = self._dWs.empty(W.shape, dt), None
        dx_out = self._dxs.empty(x.shape, dt) if self.need_dx else None
        dx, self.dW, self.db = _affine.affine_backward(dout, x, W, self.need_dx, dW_out, db_out,
                                                       dx_out)
        if dx is None:
            return None
        return dx if dx.shape == self.original_x_shape else dx.reshape(*self.original_x_shape)


class SoftmaxWithLoss(_layerstate.SoftmaxWithLossState):
    """Softmax and cross-entropy loss (compiled, fused).

    Labels ``t`` are class indices (N,) or one-hot (N, C), told apart as the book does
    (``t.size == y.size`` means one-hot). The loss is ``-Σ log(y[i, t_i] + 1e-7) / N``.

    Attributes
    ----------
    loss : scalar of x's dtype
    y : ndarray, the softmax of the last forward
    t : the labels as given
    """
    _implementation = "compiled"

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None
        self._dx = None   # backward result computed by the fused forward, handed out once
        self._ys = RecycledBuffers()
        self._dxs = RecycledBuffers()

    def forward(self, x, t):
        self.t = t
        x = _float_array(x, "x")
        if x.ndim not in (1, 2):
            raise ValueError("x must be 1-D (C,) or 2-D (N, C), got shape %s" % (x.shape,))
        if x.size == 0:
            raise ValueError("x must hold at least one row and one class, got shape %s" % (x.shape,))
        x2, t2, grad_scale, grad_dtype = self._prepare(x, t)
        # dx is computed in the same pass when it has x's dtype (with float64 one-hot labels
        # and float32 x, the book's dx is float64: backward computes it then)
        fused = grad_dtype == x.dtype
        loss, y, dx = _softmax_xent.softmax_xent_forward(
            x2, t2, with_grad=fused, grad_scale=grad_scale,
            y_out=self._ys.empty(x2.shape, x.dtype),
            dx_out=self._dxs.empty(x2.shape, x.dtype) if fused else None)
        self.y = y.reshape(x.shape)
        self._dx = dx.reshape(x.shape) if fused else None
        self.loss = x.dtype.type(loss)
        return self.loss

    def backward(self, dout=1):
        """``dx = (y - onehot(t)) / batch_size``; as in the book, the value of dout is ignored."""
        if self.y is None:
            raise RuntimeError("SoftmaxWithLoss.backward called before forward")
        dx, self._dx = self._dx, None
        if dx is not None:
            return dx
        y2, t2, grad_scale, grad_dtype = self._prepare(self.y, self.t)
        dx = _softmax_xent.softmax_xent_backward(as_dtype(y2, grad_dtype), t2, grad_scale,
                                                 out=self._dxs.empty(y2.shape, grad_dtype))
        return dx.reshape(self.y.shape)

    @staticmethod
    def _prepare(x, t):
        """2-D scores, labels, the book's gradient scale and the gradient's dtype."""
        t_arr = np.asarray(t)
        # the book divides the gradient by t.shape[0]; for 1-D x with one-hot t that is C (a
        # quirk we reproduce)
        grad_scale = 1.0 / (t_arr.shape[0] if t_arr.ndim > 0 else 1)
        one_hot = t_arr.size == x.size
        grad_dtype = compute_dtype(x, t_arr) if one_hot else x.dtype
        if x.ndim == 1:
            x = x.reshape(1, -1)
            if one_hot:
                t_arr = t_arr.reshape(1, -1)
        return x, t_arr, grad_scale, grad_dtype


class Dropout(_layerstate.DropoutState):
    """Dropout with counter-based masks (compiled).

    The book's (non-inverted) dropout by default: training ``out = x * mask`` with no rescaling,
    test ``out = x * (1 - dropout_ratio)``, backward ``dout * mask``. Each element is kept with
    probability ``1 - dropout_ratio`` (exactly ``1 - round(ratio * 2**32) / 2**32``).

    The mask is a pure function of a 64-bit seed and the element's index (SplitMix64 streams,
    see :mod:`fastnn.reference.dropout_rng`), so it is the same for any thread count and
    ``fastnn.reference.dropout_rng.CounterDropout`` reproduces it bit for bit. It is not the
    mask the book's ``np.random.rand`` would draw.

    Parameters
    ----------
    dropout_ratio : float in [0, 1], default 0.5
        Probability of dropping a unit (checked at construction and at every forward).
    inverted : bool, default False
        True: inverted dropout, training ``x * mask / (1 - ratio)`` (the scale rounded to x's
        dtype; all zeros when ratio is 1), test ``x`` itself (returned unchanged, not copied).
    seed : int in [0, 2**64) or None, default None
        None: each training forward draws its seed from NumPy's global generator (one
        ``np.random.random_sample()`` call, 53 bits), so ``np.random.seed(s)``
        reproduces a whole run. An int: training forward number c (0, 1, ...) of this layer
        uses seed ``(seed + c * 0x9E3779B97F4A7C15) mod 2**64``, so successive calls get
        different masks and the sequence is reproducible without touching NumPy's generator.

    Attributes
    ----------
    dropout_ratio : float
    inverted : bool
    mask : ndarray of bool or None
        True where the last *training* forward kept the element (x's shape). Stored packed
        (one bit per element, reused across calls of the same size); reading the attribute
        unpacks it into a new array (cached until the next forward), so changing that array in
        place does not change what backward uses; assigning ``layer.mask = bool_array`` does.
    last_seed : int or None
        The seed of the last training forward (``CounterDropout`` masks of this seed are equal).

    Notes
    -----
    ``backward`` uses the mask of the last training forward, as in the book, and raises
    RuntimeError if there was none; ``dout`` must have that forward's input shape. Integer or
    float16 input is computed in float64 / float32 (see ``fastnn._dtypes``). Outputs are new
    arrays; the memory of large ones is recycled once the caller drops them.
    """
    _implementation = "compiled"

    def __init__(self, dropout_ratio=0.5, inverted=False, seed=None):
        _drng.threshold(dropout_ratio)           # ValueError outside [0, 1]
        self.dropout_ratio = dropout_ratio
        self.inverted = bool(inverted)
        self.seed = _drng.check_seed(seed)
        self.last_seed = None
        self._calls = 0
        self._bits = None          # packed mask of the last training forward (uint32 words)
        self._shape = None         # its shape
        self._scale = 1.0          # its scale (1, or 1 / (1 - ratio) when inverted)
        self._mask = None          # unpacked mask, cached
        self._outs = RecycledBuffers()
        self._dxs = RecycledBuffers()

    @property
    def mask(self):
        if self._bits is None:
            return None
        if self._mask is None:
            n = math.prod(self._shape)
            raw = self._bits.astype("<u4", copy=False).view(np.uint8)
            self._mask = np.unpackbits(raw, count=n, bitorder="little").view(np.bool_).reshape(
                self._shape)
        return self._mask

    @mask.setter
    def mask(self, value):
        if value is None:
            self._bits, self._shape, self._mask = None, None, None
            return
        m = np.asarray(value)
        if m.dtype != np.bool_:
            raise TypeError("mask must be a bool array, got dtype %s" % m.dtype)
        packed = np.packbits(m.ravel(), bitorder="little")
        words = np.zeros(4 * ((m.size + 31) // 32), dtype=np.uint8)
        words[:packed.size] = packed
        self._bits = words.view("<u4").astype(np.uint32)
        self._shape = m.shape
        self._mask = None
        self._scale = self._train_scale()

    def _train_scale(self):
        """Scale of the kept elements in training: 1 (the book's), or 1 / (1 - ratio) inverted."""
        ratio = float(self.dropout_ratio)
        return 1.0 / (1.0 - ratio) if self.inverted and ratio < 1.0 else 1.0

    def _threshold(self):
        return _drng.threshold(self.dropout_ratio)

    def forward(self, x, train_flg=True):
        thr = self._threshold()
        x = _float_array(x, "x")
        if not train_flg:
            if self.inverted:
                return x
            return x * (1.0 - self.dropout_ratio)     # the book's test-time scaling
        if self.seed is None:
            seed = _drng.draw_seed()
        else:
            seed = _drng.call_seed(self.seed, self._calls)
        self._calls += 1
        scale = self._train_scale()
        nwords = (x.size + 31) // 32
        bits = self._bits if (self._bits is not None and self._bits.shape[0] == nwords) else None
        out = self._outs.empty(x.shape, x.dtype)
        out, bits = _dropout.dropout_forward(x, seed, thr, scale, bits=bits, out=out)
        self._bits, self._shape, self._scale, self._mask = bits, x.shape, scale, None
        self.last_seed = seed
        return out

    def backward(self, dout):
        """``dout * mask`` (times the inverted scale), a new array of dout's dtype."""
        if self._bits is None:
            raise RuntimeError("Dropout.backward called before a training forward")
        dout = _float_array(dout, "dout")
        if dout.shape != self._shape:
            raise ValueError("dout must have shape %s (the last training forward's input), got %s"
                             % (self._shape, dout.shape))
        dx = self._dxs.empty(dout.shape, dout.dtype)
        return _dropout.dropout_backward(dout, self._bits, self._scale, out=dx)




class BatchNormalization(_layerstate.BatchNormState):
    """Batch normalisation, the book's form (compiled: one statistics pass and one normalisation
    pass forward, two passes backward).

    Parameters
    ----------
    gamma, beta : ndarray (D,)
        Scale and shift, held by reference (never copied). For 4-D input (N, C, H, W),
        D = C*H*W: as in the book, each of the C*H*W features is normalised over the batch.
    momentum : float, default 0.9
        ``running = momentum * running + (1 - momentum) * batch_statistic``.
    running_mean, running_var : ndarray or None
        Statistics used at test time; float64 zeros of length D on the first forward when None
        (so running_var starts at 0, as in the book).

    Attributes
    ----------
    input_shape : tuple, the last forward's input shape
    batch_size : int, N of the last training forward
    running_mean, running_var : ndarray (D,), float64; each training forward binds new arrays
    dgamma, dbeta : ndarray (D,), gradients of the last backward (new arrays each call)
    xc, std, xn : ndarray
        The book's caches of the last training forward (``x - mean``, ``sqrt(var + 1e-6)``,
        ``xc / std``), computed on access from the saved input, mean and std (the kernels do
        not materialise them). ``xn`` raises AttributeError before the first training forward,
        as in the book.

    Notes
    -----
    ε = 1e-6 (the book's literal 10e-7), biased batch variance. Statistics accumulate in double.
    The last training input is kept by reference (not copied) for backward. Test mode computes in
    the dtype NumPy would give ``x - running_mean`` (float64 running statistics: float64), as the
    book does.
    """
    _implementation = "compiled"
    _eps = 10e-7  # book: 10e-7 == 1e-6

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None
        self.running_mean = running_mean
        self.running_var = running_var
        self.batch_size = None
        self.dgamma = None
        self.dbeta = None
        self._x = None     # 2-D input of the last training forward, in the compute dtype
        self._mean = None  # its batch mean, variance and std (D,): workspaces reused per shape
        self._var = None
        self._std = None
        self._outs = RecycledBuffers()   # memory of large outputs, reused once released
        self._dxs = RecycledBuffers()

    # -- the book's caches, computed on demand -----------------------------------------------
    @property
    def xc(self):
        return None if self._x is None else self._x - self._mean

    @property
    def std(self):
        return None if self._std is None else self._std.copy()

    @property
    def xn(self):
        if self._x is None:
            raise AttributeError("'BatchNormalization' object has no attribute 'xn' "
                                 "(it is set by a training-mode forward)")
        return (self._x - self._mean) / self._std

    # -----------------------------------------------------------------------------------------
    def _params(self, D, x_shape):
        g, b = np.asarray(self.gamma), np.asarray(self.beta)
        for name, p in (("gamma", g), ("beta", b)):
            if p.size != D:
                hint = (" (4-D input is normalised per feature over C*H*W = %d, as in the book)"
                        % D if len(x_shape) == 4 else "")
                raise ValueError("%s must have %d values, one per feature of input shape %s%s; "
                                 "got shape %s" % (name, D, x_shape, hint, p.shape))
        return g, b

    def _buffer(self, name, D, dt):
        buf = getattr(self, name)
        if buf is None or buf.shape != (D,) or buf.dtype != dt:
            buf = np.empty(D, dtype=dt)
            setattr(self, name, buf)
        return buf

    def forward(self, x, train_flg=True):
        """Normalise ``x`` (N, D) or (N, C, H, W); training mode (the default, as in the book)
        uses the batch statistics and updates the running statistics."""
        if train_flg and type(x) is np.ndarray and x.ndim == 2 and x.flags.c_contiguous:
            out = self._forward_train_common(x)
            if out is not None:
                return out
        x = _float_array(x, "x")
        if x.ndim == 2:
            x2 = x
        elif x.ndim == 4:
            x2 = x.reshape(x.shape[0], -1)
        else:
            raise ValueError("BatchNormalization expects 2-D (N, D) or 4-D (N, C, H, W) input, "
                             "got %d-D shape %s" % (x.ndim, x.shape))
        N, D = x2.shape
        if N == 0 or D == 0:
            raise ValueError("x must hold at least one sample and one feature, got shape %s"
                             % (x.shape,))
        g, b = self._params(D, x.shape)
        self.input_shape = x.shape
        if self.running_mean is None:
            self.running_mean = np.zeros(D)
            self.running_var = np.zeros(D)
        if train_flg:
            out = self._forward_train(x2, g, b)
        else:
            out = self._forward_test(x2, g, b)
        return out if x.ndim == 2 else out.reshape(*self.input_shape)

    def _forward_train_common(self, x):
        """Training forward of the common case, with the checks reduced to what tells it apart
        from the general path (2-D C-contiguous x, gamma and beta of x's dtype, running
        statistics in float64 or x's dtype, float momentum): the kernel wrapper validates the
        rest. None: not that case."""
        g, b, rm, rv, m = self.gamma, self.beta, self.running_mean, self.running_var, self.momentum
        dt = x.dtype
        if not (type(g) is np.ndarray and type(b) is np.ndarray and g.dtype is dt
                and b.dtype is dt and type(rm) is np.ndarray and type(rv) is np.ndarray
                and (rm.dtype is _FLOAT64 or rm.dtype is dt) and rv.dtype is rm.dtype
                and type(m) is float
                and x.shape[0] and x.shape[1] and (dt is _FLOAT32 or dt is _FLOAT64)):
            return None
        N, D = x.shape
        res = _batchnorm.forward_train(
            x, g, b, self._eps, self._outs.empty((N, D), dt), self._buffer("_mean", D, dt),
            self._buffer("_var", D, dt), self._buffer("_std", D, dt), (rm, rv), m)
        self.input_shape = x.shape
        self._x = x
        self.batch_size = N
        self.running_mean, self.running_var = res[4], res[5]
        return res[0]

    def _forward_train(self, x2, g, b):
        N, D = x2.shape
        dt = x2.dtype if x2.dtype == g.dtype == b.dtype else compute_dtype(x2, g, b)
        xa = np.ascontiguousarray(as_dtype(x2, dt))
        m, rm, rv = self.momentum, self.running_mean, self.running_var
        fast_running = (type(m) in (float, int) and type(rm) is np.ndarray
                        and type(rv) is np.ndarray and rm.dtype == np.float64
                        and rv.dtype == np.float64 and rm.shape == (D,) and rv.shape == (D,))
        res = _batchnorm.forward_train(
            xa, as_dtype(g, dt), as_dtype(b, dt), self._eps, self._outs.empty((N, D), dt),
            self._buffer("_mean", D, dt), self._buffer("_var", D, dt),
            self._buffer("_std", D, dt), (rm, rv) if fast_running and x2.dtype == dt else None,
            m if fast_running else 0.0)
        self._x = xa
        self.batch_size = N
        out, mean, var = res[0], res[1], res[2]
        if len(res) == 6:
            self.running_mean, self.running_var = res[4], res[5]
            return out
        # the book's statistics have x's dtype (they are computed before gamma is applied)
        if x2.dtype != dt:
            mean, var = mean.astype(x2.dtype), var.astype(x2.dtype)
        if fast_running:
            self.running_mean = _batchnorm.running_update(rm, mean, m)
            self.running_var = _batchnorm.running_update(rv, var, m)
        else:  # unusual types: the book's expression itself
            self.running_mean = m * rm + (1 - m) * mean
            self.running_var = m * rv + (1 - m) * var
        return out

    def _forward_test(self, x2, g, b):
        rm, rv = self.running_mean, self.running_var
        dt = compute_dtype(x2, g, b, rm, rv)
        D = x2.shape[1]
        rm_a, rv_a = np.asarray(rm), np.asarray(rv)
        if rm_a.shape != (D,) or rv_a.shape != (D,):
            raise ValueError("running_mean and running_var must have shape (%d,), got %s and %s"
                             % (D, rm_a.shape, rv_a.shape))
        return _batchnorm.forward_infer(
            np.ascontiguousarray(as_dtype(x2, dt)), as_dtype(g, dt), as_dtype(b, dt),
            as_dtype(rm_a, np.float64), as_dtype(rv_a, np.float64), self._eps)

    def backward(self, dout):
        """Gradients through the last *training* forward: sets ``dgamma``, ``dbeta`` and returns
        ``dx`` in the shape of the last forward's input."""
        if self._x is None:
            raise RuntimeError("BatchNormalization.backward called before a training-mode forward")
        x, g = self._x, self.gamma
        if (type(dout) is np.ndarray and type(g) is np.ndarray and dout.dtype is x.dtype is g.dtype
                and dout.shape == x.shape == self.input_shape):
            # common case: 2-D, one dtype (the wrapper validates the rest)
            dx, self.dgamma, self.dbeta = _batchnorm.backward(
                dout, x, g, self._mean, self._std, self._dxs.empty(x.shape, x.dtype))
            return dx
        dout = np.asarray(dout)
        N, D = self._x.shape
        if dout.ndim not in (2, 4) or dout.shape[0] != N or dout.size != N * D:
            raise ValueError("dout must have the shape of the forward input (%d samples of %d "
                             "features, e.g. %s), got shape %s"
                             % (N, D, self.input_shape, dout.shape))
        d2 = dout if dout.shape == (N, D) else dout.reshape(N, D)
        g = np.asarray(self.gamma)
        if g.size != D:
            raise ValueError("gamma must have %d values, got shape %s" % (D, g.shape))
        x = self._x
        dt = x.dtype if d2.dtype == x.dtype == g.dtype else compute_dtype(d2, x, g)
        dx, self.dgamma, self.dbeta = _batchnorm.backward(
            as_dtype(d2, dt), as_dtype(x, dt), as_dtype(g, dt),
            as_dtype(self._mean, dt), as_dtype(self._std, dt), self._dxs.empty((N, D), dt))
        return dx if dx.shape == self.input_shape else dx.reshape(*self.input_shape)


# Chapter 7's layers are outside fastnn's compiled scope: the reference classes, as the book's.
Convolution = _ref.Convolution
Pooling = _ref.Pooling
