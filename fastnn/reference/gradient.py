"""Numerical differentiation (the book's ``common/gradient.py``)."""

import numpy as np


def _numerical_gradient_1d(f, x):
    """Central-difference gradient of ``f`` at a 1-D array ``x`` (h = 1e-4).

    ``x`` is perturbed in place, one element at a time, and restored.
    """
    h = 1e-4
    grad = np.zeros_like(x)

    for idx in range(x.size):
        saved = x[idx]
        x[idx] = float(saved) + h
        fxh1 = f(x)
        x[idx] = saved - h
        fxh2 = f(x)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = saved

    return grad


def numerical_gradient_2d(f, X):
    """Legacy helper: row-wise :func:`_numerical_gradient_1d` for 2-D ``X``.

    A 1-D ``X`` is handled as a single vector.
    """
    if X.ndim == 1:
        return _numerical_gradient_1d(f, X)

    grad = np.zeros_like(X)
    for idx, row in enumerate(X):
        grad[idx] = _numerical_gradient_1d(f, row)
    return grad


def numerical_gradient(f, x):
    """Central-difference gradient of ``f`` with respect to every element of ``x``.

    Parameters
    ----------
    f : callable
        Called as ``f(x)`` 2 * x.size times, always with the same array
        object; network closures usually ignore the argument.
    x : ndarray
        Perturbed **in place** (``x[idx] = x[idx] + h``, then restored
        exactly), which is how the networks' shared parameter arrays get
        differentiated.  Integer arrays are silently truncated (book quirk).

    Returns
    -------
    ndarray
        ``zeros_like(x)`` filled with ``(f(x + h e_i) - f(x - h e_i)) / 2h``,
        h = 1e-4, elements visited in C order.
    """
    h = 1e-4
    grad = np.zeros_like(x)

    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        saved = x[idx]
        x[idx] = saved + h
        fxh1 = f(x)
        x[idx] = saved - h
        fxh2 = f(x)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = saved  # restore
        it.iternext()

    return grad
