"""Cython wrappers of the dropout kernels (csrc/dropout.c).

Masks come from a counter-based generator (see csrc/dropout.h): bit i is a pure function of the
64-bit ``seed`` and i, stored packed, 32 elements per uint32 word (bit r of word b is element
32b + r, 1 = kept). ``thr`` is the integer threshold ``round(ratio * 2**32)``: element i is kept
when its 32-bit uniform is >= thr (thr >= 2**32 drops everything).
"""
cimport numpy as cnp
import numpy as np
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from fastnn._runtime cimport get_num_threads
from fastnn._checks cimport float_code, contiguous, check_output, check_shape

cnp.import_array()

cdef extern from "dropout.h" nogil:
    void fnn_dropout_forward_f32(const float *x, float *y, uint32_t *bits, Py_ssize_t n,
                                 uint64_t seed, uint64_t thr, double scale, int nt)
    void fnn_dropout_forward_f64(const double *x, double *y, uint32_t *bits, Py_ssize_t n,
                                 uint64_t seed, uint64_t thr, double scale, int nt)
    void fnn_dropout_backward_f32(const float *dout, const uint32_t *bits, float *dx,
                                  Py_ssize_t n, double scale, int nt)
    void fnn_dropout_backward_f64(const double *dout, const uint32_t *bits, double *dx,
                                  Py_ssize_t n, double scale, int nt)
    void fnn_dropout_mask(uint32_t *bits, Py_ssize_t n, uint64_t seed, uint64_t thr, int nt)
    void fnn_relu_dropout_forward_f32(const float *x, float *y, uint8_t *relu_mask,
                                      uint32_t *bits, Py_ssize_t n, uint64_t seed, uint64_t thr,
                                      double scale)
    void fnn_relu_dropout_forward_f64(const double *x, double *y, uint8_t *relu_mask,
                                      uint32_t *bits, Py_ssize_t n, uint64_t seed, uint64_t thr,
                                      double scale)
    void fnn_relu_dropout_backward_f32(const float *dout, const uint32_t *bits,
                                       const uint8_t *relu_mask, float *dx, Py_ssize_t n,
                                       double scale)
    void fnn_relu_dropout_backward_f64(const double *dout, const uint32_t *bits,
                                       const uint8_t *relu_mask, double *dx, Py_ssize_t n,
                                       double scale)

_THR_MAX = 2 ** 32


cdef inline bint overlap(cnp.ndarray a, cnp.ndarray b):
    """True if two C-contiguous arrays' byte ranges overlap."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return pa < pb + cnp.PyArray_NBYTES(b) and pb < pa + cnp.PyArray_NBYTES(a)


cdef inline Py_ssize_t n_words(Py_ssize_t n) noexcept:
    return (n + 31) // 32


cdef uint64_t check_seed(object seed) except? 0:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError("seed must be an int, got %s" % type(seed).__name__)
    s = int(seed)
    if s < 0 or s >= 2 ** 64:
        raise ValueError("seed must be in [0, 2**64), got %d" % s)
    return <uint64_t>s


cdef uint64_t check_thr(object thr) except? 0:
    if isinstance(thr, (bool, np.bool_)) or not isinstance(thr, (int, np.integer)):
        raise TypeError("thr must be an int, got %s" % type(thr).__name__)
    t = int(thr)
    if t < 0 or t > _THR_MAX:
        raise ValueError("thr must be in [0, 2**32], got %d" % t)
    return <uint64_t>t


cdef int check_bits(object bits, str name, Py_ssize_t n, bint writeable) except -1:
    if not isinstance(bits, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray, got %s" % (name, type(bits).__name__))
    cdef cnp.ndarray b = <cnp.ndarray>bits
    if cnp.PyArray_TYPE(b) != cnp.NPY_UINT32:
        raise TypeError("%s must have dtype uint32, got %s" % (name, b.dtype))
    if b.ndim != 1 or b.shape[0] != n_words(n):
        raise ValueError("%s must have shape (%d,) for %d elements, got %s"
                         % (name, n_words(n), n, (<object>b).shape))
    if not (cnp.PyArray_IS_C_CONTIGUOUS(b) and cnp.PyArray_ISALIGNED(b)):
        raise ValueError("%s must be C-contiguous" % name)
    if writeable and not cnp.PyArray_ISWRITEABLE(b):
        raise ValueError("%s must be writeable (it is read-only)" % name)
    return 0


def dropout_forward(x, seed, thr, double scale=1.0, bits=None, out=None):
    """Dropout forward: ``out = x * (kept ? scale : 0)`` with the mask of ``seed``.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape
    seed : int in [0, 2**64)
    thr : int in [0, 2**32]
        ``round(ratio * 2**32)``; an element is kept when its uniform is >= thr.
    scale : float
        1.0 for the book's dropout (``x * mask``), ``1 / (1 - ratio)`` for inverted dropout.
    bits : ndarray of uint32, shape (ceil(x.size / 32),), optional
        Workspace for the packed mask (reused); a new one is allocated if None.
    out : ndarray, optional
        Where to write the output (x's shape and dtype, C-contiguous, not overlapping x
        unless it is x itself); a new array is allocated if None.

    Returns
    -------
    out : ndarray, x's shape and dtype
    bits : ndarray of uint32, the packed mask
    """
    cdef int code = float_code(x, "x")
    cdef uint64_t s = check_seed(seed)
    cdef uint64_t t = check_thr(thr)
    cdef cnp.ndarray xc = contiguous(<cnp.ndarray>x)
    cdef Py_ssize_t n = xc.size
    if out is None:
        out = np.empty_like(xc)
    else:
        check_output(out, "out", (<object>xc).shape, cnp.PyArray_TYPE(xc))
        if out is not xc and overlap(<cnp.ndarray>out, xc):
            raise ValueError("out must not overlap x (except x itself)")
    if bits is None:
        bits = np.empty(n_words(n), dtype=np.uint32)
    else:
        check_bits(bits, "bits", n, True)
    cdef cnp.ndarray o = <cnp.ndarray>out
    cdef cnp.ndarray b = <cnp.ndarray>bits
    cdef int nt = get_num_threads()
    cdef void *px = cnp.PyArray_DATA(xc)
    cdef void *po = cnp.PyArray_DATA(o)
    cdef uint32_t *pb = <uint32_t *>cnp.PyArray_DATA(b)
    with nogil:
        if code == 0:
            fnn_dropout_forward_f32(<float *>px, <float *>po, pb, n, s, t, scale, nt)
        else:
            fnn_dropout_forward_f64(<double *>px, <double *>po, pb, n, s, t, scale, nt)
    return out, bits


def dropout_backward(dout, bits, double scale=1.0, out=None):
    """Dropout backward: ``dx = dout * (kept ? scale : 0)`` with the packed mask ``bits``.

    Parameters
    ----------
    dout : ndarray of float32 or float64
    bits : ndarray of uint32, shape (ceil(dout.size / 32),) (from dropout_forward)
    scale : float, as in the forward
    out : ndarray, optional
        Where to write dx: may be ``dout`` itself. A new array is allocated if None.

    Returns
    -------
    dx : ndarray (``out`` if given)
    """
    cdef int code = float_code(dout, "dout")
    cdef cnp.ndarray d = contiguous(<cnp.ndarray>dout)
    cdef Py_ssize_t n = d.size
    check_bits(bits, "bits", n, False)
    if out is None:
        out = np.empty_like(d)
    else:
        check_output(out, "out", (<object>d).shape, cnp.PyArray_TYPE(d))
        if out is not d and overlap(<cnp.ndarray>out, d):
            raise ValueError("out must not overlap dout (except dout itself)")
    cdef cnp.ndarray o = <cnp.ndarray>out
    cdef cnp.ndarray b = <cnp.ndarray>bits
    cdef int nt = get_num_threads()
    cdef void *pd = cnp.PyArray_DATA(d)
    cdef void *po = cnp.PyArray_DATA(o)
    cdef const uint32_t *pb = <const uint32_t *>cnp.PyArray_DATA(b)
    with nogil:
        if code == 0:
            fnn_dropout_backward_f32(<float *>pd, pb, <float *>po, n, scale, nt)
        else:
            fnn_dropout_backward_f64(<double *>pd, pb, <double *>po, n, scale, nt)
    return out


def dropout_mask_bits(Py_ssize_t n, seed, thr):
    """The packed mask (uint32 words) of ``n`` elements for ``seed`` and ``thr``, without data
    (a scalar implementation of the same generator, used by the tests)."""
    if n < 0:
        raise ValueError("n must be >= 0, got %d" % n)
    cdef uint64_t s = check_seed(seed)
    cdef uint64_t t = check_thr(thr)
    bits = np.empty(n_words(n), dtype=np.uint32)
    cdef uint32_t *pb = <uint32_t *>cnp.PyArray_DATA(<cnp.ndarray>bits)
    with nogil:
        fnn_dropout_mask(pb, n, s, t, 1)
    return bits


def relu_dropout(x, seed, thr, double scale=1.0, dout=None):
    """Test hook of the one-pass ReLU-then-Dropout kernels a compiled training pass runs
    (csrc/dropout.h): for a C-contiguous ``x``, returns ``(y, relu_mask, bits)`` as ReLU's
    forward followed by :func:`dropout_forward` give them (one thread, in place on a copy of
    ``x``), and with ``dout``, also the backward through both, ``dx`` (into a copy of ``dout``)."""
    cdef int code = float_code(x, "x")
    cdef uint64_t s = check_seed(seed)
    cdef uint64_t t = check_thr(thr)
    cdef cnp.ndarray y = np.array(x, order="C", copy=True)
    cdef Py_ssize_t n = y.size
    cdef cnp.ndarray mask = np.empty((<object>y).shape, dtype=np.bool_)
    cdef cnp.ndarray bits = np.empty(n_words(n), dtype=np.uint32)
    cdef cnp.ndarray dx
    cdef void *py = cnp.PyArray_DATA(y)
    cdef uint8_t *pm = <uint8_t *>cnp.PyArray_DATA(mask)
    cdef uint32_t *pb = <uint32_t *>cnp.PyArray_DATA(bits)
    with nogil:
        if code == 0:
            fnn_relu_dropout_forward_f32(<float *>py, <float *>py, pm, pb, n, s, t, scale)
        else:
            fnn_relu_dropout_forward_f64(<double *>py, <double *>py, pm, pb, n, s, t, scale)
    if dout is None:
        return y, mask, bits
    dx = np.array(dout, dtype=y.dtype, order="C", copy=True)
    if dx.size != n:
        raise ValueError("dout must have x's size %d, got %d" % (n, dx.size))
    cdef void *pd = cnp.PyArray_DATA(dx)
    with nogil:
        if code == 0:
            fnn_relu_dropout_backward_f32(<float *>pd, pb, pm, <float *>pd, n, scale)
        else:
            fnn_relu_dropout_backward_f64(<double *>pd, pb, pm, <double *>pd, n, scale)
    return y, mask, bits, dx
