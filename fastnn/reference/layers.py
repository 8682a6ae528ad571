"""Backpropagation layers (the book's ``common/layers.py``).

Like the book's module, a star import of this module also provides ``np``,
every public name of :mod:`functions` and ``im2col``/``col2im`` (there is
deliberately no ``__all__``).

Every layer has ``forward(x) -> out`` and ``backward(dout) -> dx`` and caches
what the last forward needs in attributes.  Parameters (``W``, ``b``,
``gamma``, ``beta``) are held *by reference*: a network's ``params`` dict and
its layers share the same arrays, and optimizers update them in place.
"""

import numpy as np
from .functions import *  # noqa: F401,F403  (re-exported, as in the book)
from .util import im2col, col2im


class Relu:
    """Rectified linear unit.

    Attributes
    ----------
    mask : ndarray of bool
        True where the last forward's input was ``<= 0`` (so the gradient at
        exactly 0 is 0, unlike :func:`relu_grad`).
    """

    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = (x <= 0)
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        # book quirk: dout is modified in place and returned (dx is dout)
        dout[self.mask] = 0
        dx = dout
        return dx


class Sigmoid:
    """Logistic layer.

    Attributes
    ----------
    out : ndarray
        ``sigmoid(x)`` of the last forward.
    """

    def __init__(self):
        self.out = None

    def forward(self, x):
        out = sigmoid(x)  # noqa: F405
        self.out = out
        return out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Affine:
    """Fully connected layer ``out = x2d @ W + b``.

    Parameters
    ----------
    W : ndarray, shape (D, M)
    b : ndarray, shape (M,)
        Both stored by reference (never copied).

    Attributes
    ----------
    x : ndarray
        Last input reshaped to 2-D ``(N, -1)`` (so 4-D conv output works;
        1-D input fails, there is no batch axis).
    original_x_shape : tuple
        Shape of the last input; ``backward`` reshapes dx to it.
    dW, db : ndarray or None
        Gradients of the last backward (None before).  No 1/N scaling here.
    """

    def __init__(self, W, b):
        self.W = W
        self.b = b
        self.x = None
        self.original_x_shape = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        x = x.reshape(x.shape[0], -1)
        self.x = x
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        dx = dx.reshape(*self.original_x_shape)
        return dx


class SoftmaxWithLoss:
    """Softmax followed by the cross-entropy loss.

    Attributes
    ----------
    loss : numpy scalar
        Loss of the last forward (includes the 1e-7 inside the log).
    y : ndarray
        Softmax output of the last forward.
    t : ndarray
        Labels as given: one-hot (same size as ``y``) or class indices.
    """

    def __init__(self):
        self.loss = None
        self.y = None
        self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)  # noqa: F405
        self.loss = cross_entropy_error(self.y, self.t)  # noqa: F405
        return self.loss

    def backward(self, dout=1):
        """Return ``(y - onehot(t)) / N`` with ``N = t.shape[0]``.

        Book quirk: the value of ``dout`` is ignored, and for a 1-D ``x``
        with one-hot ``t`` the divisor is the number of classes.
        """
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:  # one-hot labels
            dx = (self.y - self.t) / batch_size
        else:
            dx = self.y.copy()
            dx[np.arange(batch_size), self.t] -= 1
            dx = dx / batch_size
        return dx


class Dropout:
    """Dropout in the book's (non-inverted) form.

    Training: ``out = x * mask`` with ``mask = np.random.rand(*x.shape) >
    dropout_ratio`` and *no* rescaling.  Test: ``out = x * (1 - dropout_ratio)``.

    Parameters
    ----------
    dropout_ratio : float, default 0.5
        Probability of dropping a unit.

    Attributes
    ----------
    mask : ndarray of bool or None
        Mask of the last *training* forward; ``backward`` uses it.
    """

    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        if train_flg:
            # exactly one rand(*shape) draw per training forward
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        # book quirk: not inverted dropout -- scale at test time instead
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


class BatchNormalization:
    """Batch normalisation (Ioffe & Szegedy 2015), book form.

    Parameters
    ----------
    gamma, beta : ndarray, shape (D,)
        Scale and shift, held by reference.  For 4-D input D must be C*H*W:
        book quirk, 4-D input is normalised per feature over C*H*W, not per
        channel.
    momentum : float, default 0.9
        ``running = momentum * running + (1 - momentum) * batch_stat``.
    running_mean, running_var : ndarray or None
        Lazily set to float64 zeros of length D on the first forward (so
        running_var starts at 0, not 1).

    Attributes
    ----------
    input_shape : tuple
    batch_size : int
    xc, std, xn : ndarray
        Caches of the last training forward (``xn`` only exists after it).
    dgamma, dbeta : ndarray
        Gradients of the last backward.
    """

    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma = gamma
        self.beta = beta
        self.momentum = momentum
        self.input_shape = None  # 4 dims for conv input, 2 for fully connected

        # statistics used at test time
        self.running_mean = running_mean
        self.running_var = running_var

        # caches for backward
        self.batch_size = None
        self.xc = None
        self.std = None
        self.dgamma = None
        self.dbeta = None

    def forward(self, x, train_flg=True):
        """Normalise ``x``; training mode also updates the running statistics.

        Note the default ``train_flg=True`` (the networks default to False).
        """
        self.input_shape = x.shape
        if x.ndim != 2:
            N, C, H, W = x.shape  # book quirk: only 2-D or 4-D input
            x = x.reshape(N, -1)

        out = self._forward(x, train_flg)
        return out.reshape(*self.input_shape)

    def _forward(self, x, train_flg):
        if self.running_mean is None:
            N, D = x.shape
            self.running_mean = np.zeros(D)
            self.running_var = np.zeros(D)

        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc ** 2, axis=0)  # biased variance
            std = np.sqrt(var + 10e-7)  # book quirk: the literal 10e-7 is 1e-6
            xn = xc / std

            self.batch_size = x.shape[0]
            self.xc = xc
            self.xn = xn
            self.std = std
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xc = x - self.running_mean
            xn = xc / np.sqrt(self.running_var + 10e-7)

        return self.gamma * xn + self.beta

    def backward(self, dout):
        """Backward through the last *training* forward (caches are not checked)."""
        if dout.ndim != 2:
            N, C, H, W = dout.shape
            dout = dout.reshape(N, -1)

        dx = self._backward(dout)
        return dx.reshape(*self.input_shape)

    def _backward(self, dout):
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size

        self.dgamma = dgamma
        self.dbeta = dbeta
        return dx


class Convolution:
    """2-D convolution (cross-correlation) through :func:`im2col`.

    Parameters
    ----------
    W : ndarray, shape (FN, C, FH, FW)
    b : ndarray of shape (FN,), or a scalar (e.g. 0, as ``apply_filter.py``)
    stride, pad : int

    Attributes
    ----------
    x, col, col_W : ndarray
        Caches of the last forward (input, unfolded input, W as (C*FH*FW, FN)).
    dW, db : ndarray
        Gradients of the last backward.

    Notes
    -----
    The output is a non-contiguous float64 array even for float32 input.
    """

    def __init__(self, W, b, stride=1, pad=0):
        self.W = W
        self.b = b
        self.stride = stride
        self.pad = pad
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None

    def forward(self, x):
        FN, C, FH, FW = self.W.shape
        N, C, H, W = x.shape
        out_h = 1 + int((H + 2 * self.pad - FH) / self.stride)
        out_w = 1 + int((W + 2 * self.pad - FW) / self.stride)

        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = self.W.reshape(FN, -1).T
        out = np.dot(col, col_W) + self.b
        out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)

        self.x = x
        self.col = col
        self.col_W = col_W
        return out

    def backward(self, dout):
        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)

        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout)
        self.dW = self.dW.transpose(1, 0).reshape(FN, C, FH, FW)

        dcol = np.dot(dout, self.col_W.T)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


class Pooling:
    """Max pooling.

    Parameters
    ----------
    pool_h, pool_w : int
    stride : int, default 2
        (The printed book and old repository used 1.)
    pad : int, default 0
        Book quirk: the output size ignores ``pad``, so ``pad > 0`` fails
        with a reshape ValueError.

    Attributes
    ----------
    x : ndarray
        Last input.
    arg_max : ndarray
        Index of the first maximum within each window (ties go to the first
        element in row-major window order).
    """

    def __init__(self, pool_h, pool_w, stride=2, pad=0):
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.x = None
        self.arg_max = None

    def forward(self, x):
        N, C, H, W = x.shape
        out_h = int(1 + (H - self.pool_h) / self.stride)
        out_w = int(1 + (W - self.pool_w) / self.stride)

        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)  # rows ordered (n, oh, ow, c)

        arg_max = np.argmax(col, axis=1)
        out = np.max(col, axis=1)
        out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)

        self.x = x
        self.arg_max = arg_max
        return out

    def backward(self, dout):
        dout = dout.transpose(0, 2, 3, 1)

        pool_size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, pool_size))
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dmax = dmax.reshape(dout.shape + (pool_size,))

        dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)
