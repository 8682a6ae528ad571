"""The book's ``common/optimizer.py`` (SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam), compiled,
plus ``AdamW``.

Same constructors, same ``update(params, grads)``: ``params`` and ``grads`` are dicts of arrays,
every ``params[key]`` is updated in place, and the state (``v``, ``h``, ``m``, ``iter``) is
created at the first call and readable as the book's dicts of arrays. The numbers are the book's
(book-compat.md section 6): float32 parameters stay float32 and SGD ... RMSprop give the NumPy
reference's values bit for bit; Adam's float32 step is computed in float32 (the reference
computes ``lr_t * m`` in float64), within an ulp or so of it.

What the compiled path adds:

* one C call per ``update`` for all the arrays of the dict, split over threads when the total is
  large (static blocks: identical results for any thread count), serial when it is small;
* a flat-buffer path: state arrays are views of one buffer per dtype, laid out like the
  parameters when those are views of one contiguous buffer (see ``flat_views``). Parameter,
  gradient and state ranges that continue each other are merged, so such a network is updated
  in one pass over its buffer;
* validation of every array before the first write: a missing ``grads`` key raises KeyError (as
  in the book), a dtype mismatch TypeError, a shape mismatch or a read-only parameter
  ValueError, and then no parameter has been modified;
* an optional coupled L2 ``weight_decay`` argument (``g + weight_decay * p`` is used in place of
  ``g``; 0, the default, is exactly the book's rule), and ``AdamW`` (decoupled weight decay).

Python floats and other non-array parameters (the book's 2-D optimizer comparison), arrays of
other dtypes, strided parameters and parameters sharing memory are updated with the book's NumPy
formulas, with the book's results (SGD keeps Python floats, the others produce numpy.float64).

A star import of this module provides ``np`` (the book's ``optimizer_compare_mnist.py`` relies on
it); there is deliberately no ``__all__``.
"""
import math

import numpy as np

from fastnn import _optim

_PUBLIC_CLASSES = ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "AdamW")

_EPS = 1e-7          # the book's epsilon, added after the square root
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_ALIGN = 64          # bytes: alignment of each packed state array in its flat buffer


def flat_views(arrays, dtype=None):
    """Copy a dict of arrays into one contiguous buffer and return views of it.

    A network whose ``params`` (and gradients) are such views is updated by the optimizers in a
    single pass over the buffer.

    Parameters
    ----------
    arrays : dict of array_like
        Values to copy, in the dict's order.
    dtype : dtype, optional
        dtype of the buffer; default: NumPy's promotion of the arrays' dtypes.

    Returns
    -------
    buffer : ndarray, 1-D
    views : dict
        Same keys, each a C-contiguous view of ``buffer`` with the original shape.
    """
    arrs = {k: np.asarray(v) for k, v in arrays.items()}
    if dtype is None:
        dtype = np.result_type(*arrs.values()) if arrs else np.float64
    total = sum(a.size for a in arrs.values())
    buf = np.empty(total, dtype=dtype)
    views = {}
    off = 0
    for k, a in arrs.items():
        v = buf[off:off + a.size].reshape(a.shape)
        v[...] = a
        views[k] = v
        off += a.size
    return buf, views


def _address(a):
    return a.__array_interface__["data"][0]


def _new_state(params):
    """Zeroed state like each parameter: a dict of views into one buffer per dtype.

    When the float32/float64 parameters of one dtype tile a contiguous memory range (views of
    one flat buffer), the state buffer mirrors that layout, so parameter and state ranges can
    be merged into one pass. Other entries (Python floats, other dtypes, strided arrays) get
    ``np.zeros_like`` as in the book.
    """
    state = {}
    groups = {}
    for key, val in params.items():
        if (isinstance(val, np.ndarray) and val.dtype in _FLOATS
                and val.flags.c_contiguous and val.size > 0):
            groups.setdefault(val.dtype, []).append(key)
        else:
            state[key] = np.zeros_like(val)
    for dtype, keys in groups.items():
        item = dtype.itemsize
        spans = sorted((_address(params[k]), params[k].nbytes, k) for k in keys)
        tiled = all(spans[i][0] + spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
        offsets = {}
        if tiled and spans[0][0] % item == 0:
            base = spans[0][0]
            for addr, _, k in spans:
                offsets[k] = (addr - base) // item
            total = (spans[-1][0] + spans[-1][1] - base) // item
        else:
            step = _ALIGN // item
            total = 0
            for k in keys:
                offsets[k] = total
                total += -(-params[k].size // step) * step
        buf = np.zeros(total + _ALIGN // item, dtype=dtype)
        shift = (-_address(buf) % _ALIGN) // item        # start the buffer on a 64-byte boundary
        for k in keys:
            a = params[k]
            o = shift + offsets[k]
            state[k] = buf[o:o + a.size].reshape(a.shape)
    return {key: state[key] for key in params}        # the params' key order


def _check_keys(params, grads, *states):
    """Raise KeyError (as the book does) before anything is written."""
    for key in params:
        grads[key]
        for s in states:
            s[key]


class _Optimizer:
    """Shared machinery: the compiled step, state creation and the NumPy fall-back."""

    _implementation = "compiled"
    _kind = None
    _states = ()

    def _get_plan(self):
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = self._plan = _optim.StepPlan(self._kind, len(self._states))
        return plan

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("_plan", None)
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)

    def update(self, params, grads):
        """Update every ``params[key]`` in place from ``grads[key]``."""
        self._ensure_state(params)
        if self._step(params, grads):
            return
        # non-array or unusual parameters: the book's formulas, one key at a time
        self._prevalidate(params, grads)
        for key in params.keys():
            self._update_one(params, key, self._grad(params, grads, key))

    def _hyper(self):
        """The second hyper-parameter of the compiled step (momentum, decay rate) or 0."""
        return 0.0

    def _fused_update(self, params, grads):
        """The update of ``update(params, grads)`` for a compiled training pass to apply itself.

        Validates the call as :meth:`update` does (and creates the state), writing nothing.
        Returns ``(kind, (lr, momentum, beta2, eps, weight_decay, lr_wd), step_plan)`` (see
        ``fastnn._netstep.TrainPass.run``; step_plan: this optimizer's ``fastnn._optim.StepPlan``,
        reserved for the call), or None when :meth:`update` must run: a subclass
        with its own ``update``, or a call the compiled kernels do not take. After a tuple, the
        optimizer counts as running an update (as during :meth:`update`: a concurrent call
        raises RuntimeError) until :meth:`_fused_finish`, which the caller must call.
        """
        if type(self).update not in _FUSABLE_UPDATES:
            return None
        self._ensure_state(params)
        s1, s2 = self._state_dicts()
        hp = self._step_hparams()          # (may raise, as update() would: nothing reserved yet)
        plan = self._get_plan()
        if plan.reserve(params, grads, s1, s2) != _optim.DONE:
            return None
        return self._kind, hp, plan

    def _fused_finish(self, applied):
        """End a :meth:`_fused_update`; ``applied``: the pass did apply it (then what the rest of
        :meth:`update` does follows: Adam counts the step)."""
        self._plan.unreserve()            # (the plan _fused_update reserved)
        if applied:
            self._count_step()

    def _count_step(self):
        pass

    def _step_hparams(self):
        """(lr, momentum, beta2, eps, weight_decay, lr_wd) of the next compiled step."""
        return (float(self.lr), float(self._hyper()), 0.0, _EPS, float(self.weight_decay), 0.0)

    def _ensure_state(self, params):
        if self._states and getattr(self, self._states[0]) is None:
            for name in self._states:
                setattr(self, name, _new_state(params))

    def _state_dicts(self):
        """(s1, s2): the rule's state dicts, None for the ones it does not have."""
        names = self._states
        return (getattr(self, names[0]) if names else None,
                getattr(self, names[1]) if len(names) == 2 else None)

    def _step(self, params, grads):
        """The compiled update; False if it must fall back (nothing written then)."""
        s1, s2 = self._state_dicts()
        return self._get_plan().step(params, grads, s1, s2,
                                     *self._step_hparams()) == _optim.DONE

    def _grad(self, params, grads, key):
        g = grads[key]
        wd = getattr(self, "weight_decay", 0.0)
        return g if wd == 0 else g + wd * params[key]

    def _prevalidate(self, params, grads):
        states = [getattr(self, name) for name in self._states]
        _check_keys(params, grads, *states)
        for key, p in params.items():
            g = grads[key]
            if isinstance(p, np.ndarray):
                if not p.flags.writeable:
                    raise ValueError("params[%r] is read-only: the optimizer updates it in place"
                                     % (key,))
                if isinstance(g, np.ndarray) and g.shape != p.shape:
                    raise ValueError("grads[%r] has shape %s, expected %s (the shape of "
                                     "params[%r])" % (key, g.shape, p.shape, key))


class SGD(_Optimizer):
    """Stochastic gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : float, default 0.01
    weight_decay : float, default 0.0
        Coupled L2 decay: ``g + weight_decay * p`` is used in place of ``g``.
    """

    _kind = _optim.SGD

    def __init__(self, lr=0.01, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay

    def _update_one(self, params, key, g):
        params[key] -= self.lr * g


class Momentum(_Optimizer):
    """Momentum SGD: ``v = momentum*v - lr*g``; ``p += v``.

    Parameters
    ----------
    lr : float, default 0.01
    momentum : float, default 0.9
    weight_decay : float, default 0.0
        Coupled L2 decay (``g + weight_decay * p``).

    Attributes
    ----------
    v : dict or None
        Velocity per key, created at the first update.
    """

    _kind = _optim.MOMENTUM
    _states = ("v",)

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.v = None

    def _hyper(self):
        return self.momentum

    def _update_one(self, params, key, g):
        self.v[key] = self.momentum * self.v[key] - self.lr * g
        params[key] += self.v[key]


class Nesterov(_Optimizer):
    """Nesterov accelerated gradient, in the book's current (2021) order.

    ``p += momentum**2 * v - (1 + momentum) * lr * g`` with the old v, then
    ``v = momentum*v - lr*g``; equal to ``p += momentum*v_new - lr*g`` (PyTorch nesterov=True).

    Parameters
    ----------
    lr : float, default 0.01
    momentum : float, default 0.9
    weight_decay : float, default 0.0
        Coupled L2 decay (``g + weight_decay * p``, p before the step).

    Attributes
    ----------
    v : dict or None
    """

    _kind = _optim.NESTEROV
    _states = ("v",)

    def __init__(self, lr=0.01, momentum=0.9, weight_decay=0.0):
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.v = None

    def _hyper(self):
        return self.momentum

    def _update_one(self, params, key, g):
        params[key] += self.momentum * self.momentum * self.v[key]
        params[key] -= (1 + self.momentum) * self.lr * g
        self.v[key] *= self.momentum
        self.v[key] -= self.lr * g


class AdaGrad(_Optimizer):
    """AdaGrad: ``h += g*g``; ``p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, default 0.01
    weight_decay : float, default 0.0
        Coupled L2 decay (``g + weight_decay * p``).

    Attributes
    ----------
    h : dict or None
    """

    _kind = _optim.ADAGRAD
    _states = ("h",)

    def __init__(self, lr=0.01, weight_decay=0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self.h = None

    def _update_one(self, params, key, g):
        self.h[key] += g * g
        params[key] -= self.lr * g / (np.sqrt(self.h[key]) + _EPS)


class RMSprop(_Optimizer):
    """RMSprop: ``h = decay*h + (1-decay)*g*g``; ``p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, default 0.01
    decay_rate : float, default 0.99
    weight_decay : float, default 0.0
        Coupled L2 decay (``g + weight_decay * p``).

    Attributes
    ----------
    h : dict or None
    """

    _kind = _optim.RMSPROP
    _states = ("h",)

    def __init__(self, lr=0.01, decay_rate=0.99, weight_decay=0.0):
        self.lr = lr
        self.decay_rate = decay_rate
        self.weight_decay = weight_decay
        self.h = None

    def _hyper(self):
        return self.decay_rate

    def _update_one(self, params, key, g):
        self.h[key] *= self.decay_rate
        self.h[key] += (1 - self.decay_rate) * g * g
        params[key] -= self.lr * g / (np.sqrt(self.h[key]) + _EPS)


class Adam(_Optimizer):
    """Adam in the book's form: ``lr_t = lr * sqrt(1 - beta2**iter) / (1 - beta1**iter)``,
    ``m += (1-beta1)*(g-m)``, ``v += (1-beta2)*(g*g-v)``, ``p -= lr_t*m / (sqrt(v) + 1e-7)``.

    ``iter`` counts ``update`` calls (shared by all keys). Epsilon sits outside the bias
    correction, as in the book (textbook Adam with eps_t = 1e-7 / sqrt(1 - beta2**t)).

    Parameters
    ----------
    lr : float, default 0.001
    beta1 : float, default 0.9
    beta2 : float, default 0.999
    weight_decay : float, default 0.0
        Coupled L2 decay (``g + weight_decay * p`` feeds m and v); see ``AdamW`` for decoupled.

    Attributes
    ----------
    iter : int
    m, v : dict or None
    """

    _kind = _optim.ADAM
    _states = ("m", "v")

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, weight_decay=0.0):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.weight_decay = weight_decay
        self.iter = 0
        self.m = None
        self.v = None

    def _lr_t(self, it):
        return self.lr * np.sqrt(1.0 - self.beta2 ** it) / (1.0 - self.beta1 ** it)

    def _coupled(self):
        return self.weight_decay

    def _decoupled(self):
        return 0.0

    def _step_hparams(self):
        it = self.iter + 1
        # the book's lr_t (_lr_t) in Python floats: ZeroDivisionError rather than NumPy's inf
        # for beta1 = 1 (math.sqrt and np.sqrt are both the correctly rounded sqrt)
        lr_t = self.lr * math.sqrt(1.0 - self.beta2 ** it) / (1.0 - self.beta1 ** it)
        return (lr_t, float(self.beta1), float(self.beta2), _EPS, float(self._coupled()),
                float(self._decoupled()))

    def _count_step(self):
        self.iter += 1

    def update(self, params, grads):
        """Update every ``params[key]`` in place from ``grads[key]``."""
        if self.m is None:
            self._ensure_state(params)
        if self._step(params, grads):
            self.iter += 1
            return
        self._prevalidate(params, grads)
        self.iter += 1
        lr_t = self._lr_t(self.iter)
        lr_wd = self._decoupled()
        for key in params.keys():
            g = self._grad(params, grads, key)
            self.m[key] += (1 - self.beta1) * (g - self.m[key])
            self.v[key] += (1 - self.beta2) * (g ** 2 - self.v[key])
            if lr_wd != 0:
                params[key] *= 1 - lr_wd
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + _EPS)


class AdamW(Adam):
    """Adam (book form) with decoupled weight decay (Loshchilov & Hutter).

    Each step first decays the parameter, ``p *= 1 - lr * weight_decay`` (the base ``lr``, as
    PyTorch's AdamW does), then applies the Adam step of ``Adam``; the gradient itself is not
    decayed.

    Parameters
    ----------
    lr : float, default 0.001
    beta1 : float, default 0.9
    beta2 : float, default 0.999
    weight_decay : float, default 0.01
    """

    _kind = _optim.ADAMW

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999, weight_decay=0.01):
        super().__init__(lr, beta1, beta2)
        self.weight_decay = weight_decay

    def _decoupled(self):
        return float(self.lr * self.weight_decay)

    def _coupled(self):
        return 0.0

    def _grad(self, params, grads, key):
        return grads[key]


# the update() methods whose call a training pass may apply itself (_Optimizer._fused_update)
_FUSABLE_UPDATES = (_Optimizer.update, Adam.update)
