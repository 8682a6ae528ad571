"""Parameter-update rules (the book's ``common/optimizer.py``).

All optimizers share ``update(params, grads)``: they iterate over
``params.keys()``, update ``params[key]`` in place (``-=`` / ``+=``) and
return None.  State (``v``, ``h``, ``m``) is a dict created lazily from the
keys present at the first call, with ``zeros_like`` of each parameter, so a
key added later raises KeyError.  Python-float parameters work as in the
book: SGD keeps floats, the stateful optimizers produce ``numpy.float64``.

A star import of this module provides ``np`` (the book's
``optimizer_compare_mnist.py`` relies on it); there is deliberately no
``__all__``.
"""

import numpy as np


class SGD:
    """Stochastic gradient descent: ``p -= lr * g``.

    Parameters
    ----------
    lr : float, default 0.01
    """

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params.keys():
            params[key] -= self.lr * grads[key]


class Momentum:
    """Momentum SGD: ``v = momentum*v - lr*g``; ``p += v``.

    Parameters
    ----------
    lr : float, default 0.01
    momentum : float, default 0.9

    Attributes
    ----------
    v : dict or None
        Velocity per key, created at the first update.
    """

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros_like(val)

        for key in params.keys():
            self.v[key] = self.momentum * self.v[key] - self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov:
    """Nesterov accelerated gradient, current (2021) order of the book.

    ``p += momentum**2 * v - (1 + momentum) * lr * g`` is applied with the
    *old* v, and only then ``v = momentum*v - lr*g``.  This equals
    ``p += momentum*v_new - lr*g`` (Bengio et al. 2012; PyTorch nesterov=True).
    The older book code updated v first, which is wrong.

    Parameters
    ----------
    lr : float, default 0.01
    momentum : float, default 0.9
    """

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = {}
            for key, val in params.items():
                self.v[key] = np.zeros_like(val)

        for key in params.keys():
            params[key] += self.momentum * self.momentum * self.v[key]
            params[key] -= (1 + self.momentum) * self.lr * grads[key]
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]


class AdaGrad:
    """AdaGrad: ``h += g*g``; ``p -= lr * g / (sqrt(h) + 1e-7)``.

    Parameters
    ----------
    lr : float, default 0.01
    """

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {}
            for key, val in params.items():
                self.h[key] = np.zeros_like(val)

        for key in params.keys():
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class RMSprop:
    """RMSprop: ``h = decay*h + (1-decay)*g*g``; ``p -= lr * g / (sqrt(h) + 1e-7)``.

    The h update is done as two in-place operations, as in the book.

    Parameters
    ----------
    lr : float, default 0.01
    decay_rate : float, default 0.99
    """

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = {}
            for key, val in params.items():
                self.h[key] = np.zeros_like(val)

        for key in params.keys():
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)


class Adam:
    """Adam (Kingma & Ba), in the book's "efficient" form.

    Per call: ``iter += 1`` (once, shared by all keys);
    ``lr_t = lr * sqrt(1 - beta2**iter) / (1 - beta1**iter)``; then for each
    key ``m += (1-beta1)*(g-m)``, ``v += (1-beta2)*(g**2-v)`` and
    ``p -= lr_t * m / (sqrt(v) + 1e-7)``.  Book quirk: epsilon sits outside
    the bias correction, i.e. textbook Adam with eps_t = 1e-7/sqrt(1-beta2**t).

    Parameters
    ----------
    lr : float, default 0.001
    beta1 : float, default 0.9
    beta2 : float, default 0.999

    Attributes
    ----------
    iter : int
        Number of ``update`` calls so far.
    m, v : dict or None
        First and second moment estimates, created at the first update.
    """

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m, self.v = {}, {}
            for key, val in params.items():
                self.m[key] = np.zeros_like(val)
                self.v[key] = np.zeros_like(val)

        self.iter += 1
        lr_t = self.lr * np.sqrt(1.0 - self.beta2 ** self.iter) / (1.0 - self.beta1 ** self.iter)

        for key in params.keys():
            self.m[key] += (1 - self.beta1) * (grads[key] - self.m[key])
            self.v[key] += (1 - self.beta2) * (grads[key] ** 2 - self.v[key])
            params[key] -= lr_t * self.m[key] / (np.sqrt(self.v[key]) + 1e-7)
