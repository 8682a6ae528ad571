"""Build/run-time information and the thread count shared by all fastnn kernels."""
import numpy as np

cdef extern from "runtime.h" nogil:
    int fnn_openmp_enabled()
    int fnn_openmp_max_threads()
    int fnn_simd_level_selected()
    int fnn_simd_level_detected()
    const char *fnn_compiler_version()
    void fnn_stream_axpy_f32(float *a, const float *b, float alpha, Py_ssize_t n, int n_threads)
    void fnn_stream_axpy_f64(double *a, const double *b, double alpha, Py_ssize_t n, int n_threads)

cdef extern from *:
    const char *FNN_BUILD_CFLAGS

_SIMD_NAMES = ("baseline (SSE2)", "AVX2+FMA", "AVX-512")

cdef int _num_threads = fnn_openmp_max_threads()


cdef int get_num_threads() noexcept nogil:
    return _num_threads


def num_threads():
    """Number of threads the fastnn kernels use."""
    return _num_threads


def set_kernel_threads(int n):
    """Set the fastnn kernels' thread count (BLAS threads are set by fastnn.set_num_threads)."""
    global _num_threads
    if n < 1:
        raise ValueError("n_threads must be >= 1, got %d" % n)
    _num_threads = n


def openmp_enabled():
    """True if the kernels were compiled with OpenMP."""
    return bool(fnn_openmp_enabled())


def openmp_max_threads():
    """OpenMP's default thread count (honours OMP_NUM_THREADS)."""
    return fnn_openmp_max_threads()


def simd_path():
    """Name of the instruction set the kernels run with (FASTNN_SIMD caps it)."""
    return _SIMD_NAMES[fnn_simd_level_selected()]


def simd_cpu():
    """Best instruction set this CPU supports."""
    return _SIMD_NAMES[fnn_simd_level_detected()]


def compiler():
    """Compiler that built the kernels."""
    return fnn_compiler_version().decode()


def build_flags():
    """C flags the kernels were compiled with."""
    return FNN_BUILD_CFLAGS.decode()


def stream_axpy(a, b, alpha, n_threads=None):
    """a += alpha * b in place (the bandwidth probe of the benchmarks).

    Parameters
    ----------
    a : ndarray, float32 or float64, C-contiguous, writeable
    b : ndarray, same dtype and size as a
    alpha : float
    n_threads : int, optional (default: the fastnn thread count)
    """
    if not isinstance(a, np.ndarray) or not isinstance(b, np.ndarray):
        raise TypeError("a and b must be numpy arrays")
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        raise TypeError("a and b must share a float32/float64 dtype, got %s and %s" % (a.dtype, b.dtype))
    if a.size != b.size or not a.flags.c_contiguous or not b.flags.c_contiguous or not a.flags.writeable:
        raise ValueError("a and b must be C-contiguous arrays of equal size, a writeable")
    cdef int nt = _num_threads if n_threads is None else int(n_threads)
    cdef Py_ssize_t n = a.size
    cdef float[::1] af, bf
    cdef double[::1] ad, bd
    cdef double alpha_d = alpha
    if a.size == 0:
        return
    if a.dtype == np.float32:
        af = a.reshape(-1); bf = b.reshape(-1)
        with nogil:
            fnn_stream_axpy_f32(&af[0], &bf[0], <float>alpha_d, n, nt)
    else:
        ad = a.reshape(-1); bd = b.reshape(-1)
        with nogil:
            fnn_stream_axpy_f64(&ad[0], &bd[0], alpha_d, n, nt)
