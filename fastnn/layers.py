"""Backpropagation layers with the book's names, signatures and attributes (``common/layers.py``).

Drop-in for ``from common.layers import *``: a star import also provides ``np``, every function
of :mod:`fastnn.functions` and ``im2col``/``col2im``, as the book's module does.

Relu, Sigmoid, Affine and SoftmaxWithLoss run compiled kernels (``show_config()`` lists which
classes do). Parameters are held by reference, never copied: ``net.params['W1'] is
layers['Affine1'].W``, and optimizers update them in place.
"""
import numpy as np  # noqa: F401  (re-exported, as in the book)

from fastnn import _activations, _affine, _softmax_xent
from fastnn._dtypes import as_dtype, compute_dtype
from fastnn.functions import *  # noqa: F401,F403  (re-exported, as in the book)
from fastnn.reference import layers as _ref
from fastnn.util import col2im, im2col  # noqa: F401

_PUBLIC_CLASSES = ("Relu", "Sigmoid", "Affine", "SoftmaxWithLoss", "Dropout",
                   "BatchNormalization", "Convolution", "Pooling")


def _float_array(x, name):
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = as_dtype(x, compute_dtype(x, np.float32 if x.dtype == np.float16 else np.float64))
    return x


class Relu:
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

    def forward(self, x):
        x = _float_array(x, "x")
        reuse = self.mask if (isinstance(self.mask, np.ndarray) and self.mask.shape == x.shape
                              and self.mask.dtype == np.bool_
                              and self.mask.flags.c_contiguous and self.mask.flags.writeable) else None
        out, self.mask = _activations.relu_forward(x, mask=reuse)
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


class Sigmoid:
    """Logistic layer ``1 / (1 + exp(-x))`` (compiled).

    Attributes
    ----------
    out : ndarray
        The last forward's output.
    """
    _implementation = "compiled"

    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = _activations.sigmoid_forward(_float_array(x, "x"))
        return self.out

    def backward(self, dout):
        if self.out is None:
            raise RuntimeError("Sigmoid.backward called before forward")
        dout = np.asarray(dout)
        dt = compute_dtype(dout, self.out)
        return _activations.sigmoid_backward(as_dtype(dout, dt), as_dtype(self.out, dt))


class Affine:
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

    def forward(self, x):
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
        dout = np.asarray(dout)
        dt = compute_dtype(dout, self.x, self.W)
        dW_out = db_out = None
        if self.grad_buffers is not None and self.grad_buffers[0].dtype == dt:
            dW_out, db_out = self.grad_buffers
        dx, self.dW, self.db = _affine.affine_backward(
            as_dtype(dout, dt), as_dtype(self.x, dt), as_dtype(self.W, dt), self.need_dx,
            dW_out, db_out)
        if dx is None:
            return None
        return dx.reshape(*self.original_x_shape)


class SoftmaxWithLoss:
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
        loss, y, dx = _softmax_xent.softmax_xent_forward(x2, t2, with_grad=fused,
                                                         grad_scale=grad_scale)
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
        dx = _softmax_xent.softmax_xent_backward(as_dtype(y2, grad_dtype), t2, grad_scale)
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


# Kernels of their own issues; until they land these are the reference classes.
Dropout = _ref.Dropout


BatchNormalization = _ref.BatchNormalization
Convolution = _ref.Convolution
Pooling = _ref.Pooling
