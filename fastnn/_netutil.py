"""Machinery shared by the fastnn networks (TwoLayerNet, MultiLayerNet, MultiLayerNetExtend).

* :func:`aligned_empty` / :class:`FlatBuffer`: one 64-byte-aligned contiguous buffer per network
  holding every parameter, and a second one, laid out identically, holding every gradient. The
  optimizers of :mod:`fastnn.optimizer` see parameter, gradient and state ranges that continue
  each other and update the whole network in a single pass.
* :func:`init_scale`: the book's weight-initialisation scale rule.
* :func:`network_dtype`, :func:`as_input`, :func:`as_labels`: the ``dtype=`` option.
"""
import numpy as np

_ALIGN = 64


def aligned_empty(n, dtype, align=_ALIGN):
    """An uninitialised 1-D array of n elements whose data starts on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    extra = align // dtype.itemsize
    raw = np.empty(n + extra, dtype=dtype)
    off = (-raw.ctypes.data % align) // dtype.itemsize
    return raw[off:off + n]


class FlatBuffer:
    """A contiguous buffer and named C-contiguous views of it, in insertion order.

    Parameters
    ----------
    shapes : list of (key, shape)
    dtype : dtype
    """

    def __init__(self, shapes, dtype, zero=False):
        self.dtype = np.dtype(dtype)
        self.offsets = {}
        total = 0
        for key, shape in shapes:
            n = int(np.prod(shape, dtype=np.int64))
            self.offsets[key] = (total, n, tuple(shape))
            total += n
        self.buffer = aligned_empty(total, self.dtype)
        if zero:
            self.buffer[...] = 0
        self.views = {key: self.buffer[o:o + n].reshape(shape)
                      for key, (o, n, shape) in self.offsets.items()}

    def __getitem__(self, key):
        return self.views[key]


def network_dtype(dtype):
    """Validate the ``dtype=`` option: float32 or float64."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError("dtype must be float32 or float64, got %s" % dt)
    return dt


def init_scale(weight_init_std, fan_in):
    """The book's rule: 'relu'/'he' -> sqrt(2/n), 'sigmoid'/'xavier' -> sqrt(1/n), else the value."""
    scale = weight_init_std
    if str(weight_init_std).lower() in ('relu', 'he'):
        scale = np.sqrt(2.0 / fan_in)
    elif str(weight_init_std).lower() in ('sigmoid', 'xavier'):
        scale = np.sqrt(1.0 / fan_in)
    return scale


def as_input(x, dtype):
    """Inputs of a float32 network are converted to float32 (a float64 network takes any input
    and promotes as NumPy would, like the book's)."""
    if dtype == np.float32:
        x = np.asarray(x)
        if x.dtype != np.float32:
            x = x.astype(np.float32)
    return x


def as_labels(t, dtype):
    """One-hot float64 labels of a float32 network become float32 (the loss and its gradient
    then stay float32); index labels are unchanged."""
    if dtype == np.float32 and isinstance(t, np.ndarray) and t.dtype == np.float64 and t.ndim > 1:
        t = t.astype(np.float32)
    return t


def allocate_params(draws, dtype):
    """Copy the initial values into views of one flat parameter buffer.

    Parameters
    ----------
    draws : list of (key, float64 ndarray)
        Values in the params dict's order (float64 draws: a float64 network's weights equal the
        book's bitwise; a float32 network gets them rounded).
    dtype : float32 or float64

    Returns
    -------
    FlatBuffer of the parameters (views keyed like ``draws``), and the zeroed FlatBuffer of the
    gradients with the same layout.
    """
    shapes = [(k, np.shape(v)) for k, v in draws]
    pbuf = FlatBuffer(shapes, dtype)
    for k, v in draws:
        pbuf.views[k][...] = v
    gbuf = FlatBuffer(shapes, dtype, zero=True)
    return pbuf, gbuf


class GradCollector:
    """Builds the ``grads`` dict of a network after its backward pass.

    Each entry is (grad_key, layer, attr, view, decay_param): the layer's gradient attribute
    ``attr`` (``dW``/``db``/``dgamma``/``dbeta``) should already be ``view`` (Affine layers write
    into their ``grad_buffers``); otherwise it is copied into ``view`` and the layer's attribute
    rebound to it, so ``grads[k] is layer.attr`` holds and the grads are views of one buffer.
    With weight decay, ``grads['W']`` is ``dW + lambda*W`` written into the flat view (the layer's
    ``dW`` stays the pure data gradient, in a scratch array of its own).
    """

    def __init__(self):
        self.entries = []

    def add(self, key, layer, attr, view, decay_param=None, lam=0):
        self.entries.append((key, layer, attr, view, decay_param, lam))

    def collect(self):
        grads = {}
        for key, layer, attr, view, decay_param, lam in self.entries:
            g = getattr(layer, attr)
            if decay_param is not None:
                p = decay_param() if callable(decay_param) else decay_param
                if (isinstance(g, np.ndarray) and g.shape == view.shape and isinstance(p, np.ndarray)
                        and p.shape == view.shape and np.result_type(g, p, lam) == view.dtype):
                    np.multiply(p, lam, out=view)
                    view += g           # == g + lam*p bitwise (IEEE addition commutes)
                    grads[key] = view
                else:
                    grads[key] = g + lam * p
                continue
            if g is not view:
                if (isinstance(g, np.ndarray) and g.shape == view.shape
                        and g.dtype == view.dtype):
                    view[...] = g
                    setattr(layer, attr, view)
                    g = view
            grads[key] = g
        return grads
