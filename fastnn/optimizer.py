"""The book's ``common/optimizer.py``: SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam.

Placeholder until the optimizer kernels land: these are the reference classes.
"""
import numpy as np  # noqa: F401  (re-exported: book scripts use np from this star import)

from fastnn.reference.optimizer import SGD, Momentum, Nesterov, AdaGrad, RMSprop, Adam  # noqa: F401

_PUBLIC_CLASSES = ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam")
