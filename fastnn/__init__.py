"""fastnn: the NumPy neural-network code of *Deep Learning from Scratch*, compiled.

Swap ``common.`` for ``fastnn.`` in a book script's imports: same classes, names, attributes and
numbers, with C/Cython kernels underneath. ``fastnn.reference`` holds the plain-NumPy version.
"""
import os as _os

__version__ = "0.1.0"


def _load_runtime():
    """Import the compiled runtime (which loads the OpenMP library) with a passive wait policy.

    By default OpenMP workers busy-wait after a parallel region; the BLAS threads that run the
    next GEMM then share the cores with them (a 512x784x256 GEMM right after a 4M-element ReLU
    took 4.2 ms instead of 1.3 ms here). fastnn's regions are long (>= 1M elements), so waking
    sleeping workers costs nothing measurable. The policy is read once, when the OpenMP library
    loads (the wheel bundles its own copy); the environment is restored afterwards, and a
    user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is respected.
    """
    set_policy = "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ
    if set_policy:
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from fastnn import _runtime  # noqa: F401
    finally:
        if set_policy:
            del _os.environ["OMP_WAIT_POLICY"]


# The compiled runtime is imported eagerly: a missing extension is an ImportError here, never a
# silent fall-back to pure Python.
_load_runtime()

from fastnn._config import get_num_threads, set_num_threads, show_config  # noqa: E402

__all__ = ["get_num_threads", "set_num_threads", "show_config", "__version__"]
