"""The BLAS that runs fastnn's GEMMs (SciPy's bundled OpenBLAS, through scipy.linalg.cython_blas):
its thread-count functions and whether it has small-matrix kernels (csrc/gemm.h).

Found once through threadpoolctl's list of loaded libraries. ``FASTNN_GEMM_SPLIT=0`` turns the
split into small-kernel blocks off, ``=1`` on whatever the BLAS (default: on where the BLAS is
known to have the kernels: OpenBLAS on its AVX-512 cores).
"""
import ctypes
import functools
import os

# OpenBLAS cores whose sgemm/dgemm small-matrix kernels take m*n*k <= 100^3 (NN and NT, in its
# column-major terms; kernel/x86_64/*gemm_small_kernel_*_skylakex.c, OpenBLAS >= 0.3.16)
SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")
SMALL_KERNEL_MNK = 1e6


def _scipy_openblas():
    """threadpoolctl's record of the OpenBLAS SciPy ships, or None (another BLAS, none found)."""
    try:
        from threadpoolctl import threadpool_info
        libs = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    except Exception:            # threadpoolctl missing or failing
        return None
    if len(libs) > 1:            # NumPy's and SciPy's copies: the one SciPy ships
        libs = [i for i in libs
                if "scipy" in os.path.basename(os.path.dirname(i.get("filepath", "")))]
    return libs[0] if len(libs) == 1 else None


@functools.lru_cache(maxsize=None)
def describe():
    """``(set_threads, get_threads, small_mnk)``: the addresses of the BLAS's
    ``openblas_set_num_threads`` and ``openblas_get_num_threads`` (0 if not found) and the
    largest m*n*k its small-matrix kernels take (0: none, or FASTNN_GEMM_SPLIT=0)."""
    setter = getter = 0
    info = _scipy_openblas()
    try:
        lib = ctypes.CDLL(info["filepath"]) if info is not None else None
    except OSError:              # found by threadpoolctl but not loadable by path: stay serial
        lib = None
    if lib is not None:
        for prefix in ("scipy_openblas_", "openblas_"):
            s = getattr(lib, prefix + "set_num_threads", None)
            g = getattr(lib, prefix + "get_num_threads", None)
            if s is not None and g is not None:
                setter = ctypes.cast(s, ctypes.c_void_p).value
                getter = ctypes.cast(g, ctypes.c_void_p).value
                break
    mode = os.environ.get("FASTNN_GEMM_SPLIT", "").strip().lower()
    if mode in ("0", "off", "no", "false"):
        small = 0.0
    elif mode in ("1", "on", "yes", "true"):
        small = SMALL_KERNEL_MNK
    else:
        core = str((info or {}).get("architecture", "")).lower()
        small = SMALL_KERNEL_MNK if core in SMALL_KERNEL_CORES else 0.0
    return setter, getter, small
