"""Activation and loss functions (the book's ``common/functions.py``)."""

import numpy as np


def identity_function(x):
    """Return ``x`` itself (the same object)."""
    return x


def step_function(x):
    """Heaviside step: 1 where ``x > 0`` else 0, as a platform ``int`` array."""
    return np.array(x > 0, dtype=int)


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))``.

    The naive form: very negative ``x`` overflows ``exp`` (RuntimeWarning) and
    gives 0.0, exactly as the book.
    """
    return 1 / (1 + np.exp(-x))


def sigmoid_grad(x):
    """Derivative of :func:`sigmoid`, ``(1 - sigmoid(x)) * sigmoid(x)``."""
    return (1.0 - sigmoid(x)) * sigmoid(x)


def relu(x):
    """Rectified linear unit ``max(0, x)``."""
    return np.maximum(0, x)


def relu_grad(x):
    """Derivative of :func:`relu`: 1 where ``x >= 0``, else 0.

    Book quirk: the gradient at exactly 0 is 1 here, while the ``Relu`` layer
    (mask ``x <= 0``) gives 0.
    """
    grad = np.zeros_like(x)
    grad[x >= 0] = 1
    return grad


def softmax(x):
    """Softmax over the last axis, stabilised by subtracting the row maximum.

    Works for 1-D, 2-D and n-D input and preserves the dtype.
    """
    shifted = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=-1, keepdims=True)


def sum_squared_error(y, t):
    """Half the sum of squared differences over *all* elements (no batch mean)."""
    return 0.5 * np.sum((y - t) ** 2)


# The book's function was called mean_squared_error until 2019 (KO still is).
mean_squared_error = sum_squared_error


def cross_entropy_error(y, t):
    """Mean cross-entropy of probabilities ``y`` against labels ``t``.

    Parameters
    ----------
    y : ndarray
        Probabilities, shape (N, C) or (C,).
    t : ndarray
        One-hot labels of y's shape, or class indices of shape (N,) (0-d for
        1-D ``y``).  One-hot is detected by ``t.size == y.size``.

    Returns
    -------
    numpy scalar
        ``-sum(log(y[i, t_i] + 1e-7)) / N``.
    """
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)

    if t.size == y.size:  # one-hot labels -> indices
        t = t.argmax(axis=1)

    batch_size = y.shape[0]
    # book quirk: delta 1e-7 is added inside the log, so p=0 gives ~16.118
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


def softmax_loss(X, t):
    """``cross_entropy_error(softmax(X), t)``."""
    y = softmax(X)
    return cross_entropy_error(y, t)
