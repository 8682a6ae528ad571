"""fastnn: the NumPy neural-network code of *Deep Learning from Scratch*, compiled.

Swap ``common.`` for ``fastnn.`` in a book script's imports: same classes, names, attributes and
numbers, with C/Cython kernels underneath. ``fastnn.reference`` holds the plain-NumPy version.
"""
__version__ = "0.1.0"

# The compiled runtime is imported eagerly: a missing extension is an ImportError here, never a
# silent fall-back to pure Python.
from fastnn import _runtime  # noqa: F401
from fastnn._config import get_num_threads, set_num_threads, show_config

__all__ = ["get_num_threads", "set_num_threads", "show_config", "__version__"]
