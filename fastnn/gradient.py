"""The book's `common/gradient.py` (pure NumPy: see fastnn.reference.gradient)."""
from fastnn.reference.gradient import *  # noqa: F401,F403
from fastnn.reference.gradient import np  # noqa: F401
from fastnn.reference.gradient import _numerical_gradient_1d  # noqa: F401
