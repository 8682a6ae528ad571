"""Thread control and the build/implementation report (``fastnn.show_config``)."""
import sys

import numpy as np

from fastnn import _runtime


def get_num_threads():
    """Number of threads the fastnn kernels use (OpenMP; default: ``OMP_NUM_THREADS`` or all cores)."""
    return _runtime.num_threads()


def set_num_threads(n):
    """Use ``n`` threads in the fastnn kernels and in the BLAS that runs the GEMMs.

    The BLAS limit is applied with threadpoolctl to every BLAS loaded in the process (NumPy and
    SciPy each bundle their own OpenBLAS).

    Parameters
    ----------
    n : int
        Number of threads, >= 1.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError("n must be an int, got %s" % type(n).__name__)
    _runtime.set_kernel_threads(int(n))
    # threadpoolctl limits only libraries already loaded: load SciPy's BLAS (the one fastnn's
    # GEMMs call, through fastnn._affine) before limiting it
    from fastnn import _affine  # noqa: F401
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=int(n), user_api="blas")


def _gemm_small_mnk():
    from fastnn import _affine  # noqa: F401  (loads SciPy's BLAS, which _blas_lib looks for)
    from fastnn._blas_lib import describe
    return describe()[2]


def _blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed"]
    rows = []
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            rows.append("%s %s (%s, %d threads) from %s" % (
                pool.get("internal_api"), pool.get("version"), pool.get("architecture"),
                pool.get("num_threads"), pool.get("prefix")))
    return rows or ["none loaded yet"]


def implementations():
    """``{"layers.Affine": "compiled", ...}``: which classes run compiled kernels."""
    from fastnn import layers, optimizer
    table = {}
    for module in (layers, optimizer):
        for name in getattr(module, "_PUBLIC_CLASSES", ()):
            cls = getattr(module, name)
            table["%s.%s" % (module.__name__.split(".")[-1], name)] = getattr(
                cls, "_implementation", "reference")
    return table


def show_config(file=None):
    """Print fastnn's version, build, threading, BLAS, SIMD path and which classes are compiled."""
    import fastnn
    file = file or sys.stdout
    lines = [
        "fastnn %s" % fastnn.__version__,
        "  python       %s" % sys.version.split()[0],
        "  numpy        %s" % np.__version__,
        "  compiler     %s" % _runtime.compiler(),
        "  C flags      %s" % _runtime.build_flags(),
        "  OpenMP       %s, %d kernel threads (default %d)" % (
            "on" if _runtime.openmp_enabled() else "off",
            _runtime.num_threads(), _runtime.openmp_max_threads()),
        "  SIMD path    %s (CPU supports %s; FASTNN_SIMD caps it)" % (
            _runtime.simd_path(), _runtime.simd_cpu()),
        "  GEMM         scipy.linalg.cython_blas; small-kernel blocks at one BLAS thread: %s"
        % ("on" if _gemm_small_mnk() else "off (FASTNN_GEMM_SPLIT, or no small kernels known)"),
    ]
    lines += ["  BLAS         %s" % row for row in _blas_info()]
    from fastnn import _netstep
    lines.append("  networks     gradient() and inference predict() as one compiled pass each; "
                 "two-thread schedule %s" % (
        "available" if _netstep.two_thread_schedule_available() else
        "unavailable (no OpenMP, or the BLAS's thread functions not found)"))
    lines.append("  implementations:")
    for name, impl in implementations().items():
        lines.append("    %-32s %s" % (name, impl))
    print("\n".join(lines), file=file)
