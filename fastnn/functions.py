"""The book's ``common/functions.py`` (activation and loss functions on NumPy arrays).

These are the reference implementations: the compiled kernels live in the layer classes.
"""
from fastnn.reference.functions import *  # noqa: F401,F403
from fastnn.reference.functions import np  # noqa: F401
