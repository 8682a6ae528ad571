"""The book's `common/util.py` (pure NumPy: see fastnn.reference.util)."""
from fastnn.reference.util import *  # noqa: F401,F403
from fastnn.reference.util import np  # noqa: F401
