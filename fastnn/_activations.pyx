"""Cython wrappers of the ReLU and sigmoid kernels (csrc/activations.c)."""
cimport numpy as cnp
import numpy as np
from libc.stdint cimport uint8_t
from fastnn._runtime cimport get_num_threads
from fastnn._checks cimport float_code, contiguous, check_output, check_same_dtype, check_shape

cnp.import_array()

cdef extern from "activations.h" nogil:
    void fnn_relu_forward_f32(const float *x, float *y, uint8_t *mask, Py_ssize_t n, int nt)
    void fnn_relu_forward_f64(const double *x, double *y, uint8_t *mask, Py_ssize_t n, int nt)
    void fnn_relu_backward_f32(const float *dout, const uint8_t *mask, float *dx, Py_ssize_t n, int nt)
    void fnn_relu_backward_f64(const double *dout, const uint8_t *mask, double *dx, Py_ssize_t n, int nt)
    void fnn_sigmoid_forward_f32(const float *x, float *y, Py_ssize_t n, int nt)
    void fnn_sigmoid_forward_f64(const double *x, double *y, Py_ssize_t n, int nt)
    void fnn_sigmoid_backward_f32(const float *dout, const float *out, float *dx, Py_ssize_t n, int nt)
    void fnn_sigmoid_backward_f64(const double *dout, const double *out, double *dx, Py_ssize_t n, int nt)


def relu_forward(x, mask=None, out=None):
    """ReLU forward: ``out = x`` where ``x > 0`` else 0, and ``mask = (x <= 0)``.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape
    mask : ndarray of bool with x's shape, C-contiguous, optional
        Workspace to reuse for the mask; a new one is allocated if None.
    out : ndarray with x's shape and dtype, C-contiguous, optional
        Where to write the output (must not overlap x); a new array is allocated if None.

    Returns
    -------
    out : ndarray, x's shape and dtype (new array)
    mask : ndarray of bool, x's shape
    """
    cdef int code = float_code(x, "x")
    cdef cnp.ndarray xc = contiguous(<cnp.ndarray>x)
    if out is None:
        out = np.empty_like(xc)
    else:
        check_output(out, "out", (<object>xc).shape, cnp.PyArray_TYPE(xc))
    cdef cnp.ndarray o = <cnp.ndarray>out
    if mask is None:
        mask = np.empty((<object>xc).shape, dtype=np.bool_)
    else:
        check_output(mask, "mask", (<object>xc).shape, cnp.NPY_BOOL)
    cdef cnp.ndarray m = <cnp.ndarray>mask
    cdef Py_ssize_t n = xc.size
    cdef int nt = get_num_threads()
    cdef void *px = cnp.PyArray_DATA(xc)
    cdef void *py = cnp.PyArray_DATA(o)
    cdef uint8_t *pm = <uint8_t *>cnp.PyArray_DATA(m)
    with nogil:
        if code == 0:
            fnn_relu_forward_f32(<float *>px, <float *>py, pm, n, nt)
        else:
            fnn_relu_forward_f64(<double *>px, <double *>py, pm, n, nt)
    return out, mask


def relu_backward(dout, mask, out=None):
    """ReLU backward: ``dx = dout`` where ``mask`` is False, else 0.

    Parameters
    ----------
    dout : ndarray of float32 or float64
    mask : ndarray of bool with dout's shape (from relu_forward)
    out : ndarray, optional
        Where to write dx: may be ``dout`` itself (the book's in-place backward).
        A new array is allocated if None.

    Returns
    -------
    dx : ndarray (``out`` if given)
    """
    cdef int code = float_code(dout, "dout")
    if not isinstance(mask, np.ndarray) or (<cnp.ndarray>mask).dtype != np.bool_:
        raise TypeError("mask must be a bool ndarray, got %r" % (type(mask).__name__,))
    cdef cnp.ndarray d = contiguous(<cnp.ndarray>dout)
    cdef cnp.ndarray m = contiguous(<cnp.ndarray>mask)
    check_shape(d, "dout", (<object>m).shape)
    if out is None:
        out = np.empty_like(d)
    else:
        check_output(out, "out", (<object>d).shape, cnp.PyArray_TYPE(d))
    cdef cnp.ndarray o = <cnp.ndarray>out
    cdef Py_ssize_t n = d.size
    cdef int nt = get_num_threads()
    cdef void *pd = cnp.PyArray_DATA(d)
    cdef void *po = cnp.PyArray_DATA(o)
    cdef uint8_t *pm = <uint8_t *>cnp.PyArray_DATA(m)
    with nogil:
        if code == 0:
            fnn_relu_backward_f32(<float *>pd, pm, <float *>po, n, nt)
        else:
            fnn_relu_backward_f64(<double *>pd, pm, <double *>po, n, nt)
    return out


def sigmoid_forward(x, out=None):
    """Sigmoid forward ``1 / (1 + exp(-x))``, written to ``out`` (x's shape and dtype,
    C-contiguous) or to a new array if None."""
    cdef int code = float_code(x, "x")
    cdef cnp.ndarray xc = contiguous(<cnp.ndarray>x)
    if out is None:
        out = np.empty_like(xc)
    else:
        check_output(out, "out", (<object>xc).shape, cnp.PyArray_TYPE(xc))
    cdef cnp.ndarray o = <cnp.ndarray>out
    cdef Py_ssize_t n = xc.size
    cdef int nt = get_num_threads()
    cdef void *px = cnp.PyArray_DATA(xc)
    cdef void *py = cnp.PyArray_DATA(o)
    with nogil:
        if code == 0:
            fnn_sigmoid_forward_f32(<float *>px, <float *>py, n, nt)
        else:
            fnn_sigmoid_forward_f64(<double *>px, <double *>py, n, nt)
    return out


def sigmoid_backward(dout, y, out=None):
    """Sigmoid backward ``dx = dout * (1 - y) * y`` where y is the forward output.

    ``out`` may be ``dout`` itself; a new array is allocated if None.
    """
    cdef int code = float_code(dout, "dout")
    float_code(y, "out (the forward output)")
    cdef cnp.ndarray d = contiguous(<cnp.ndarray>dout)
    cdef cnp.ndarray yc = contiguous(<cnp.ndarray>y)
    check_same_dtype(d, "dout", yc, "the forward output")
    check_shape(d, "dout", (<object>yc).shape)
    if out is None:
        out = np.empty_like(d)
    else:
        check_output(out, "out", (<object>d).shape, cnp.PyArray_TYPE(d))
    cdef cnp.ndarray o = <cnp.ndarray>out
    cdef Py_ssize_t n = d.size
    cdef int nt = get_num_threads()
    cdef void *pd = cnp.PyArray_DATA(d)
    cdef void *py = cnp.PyArray_DATA(yc)
    cdef void *po = cnp.PyArray_DATA(o)
    with nogil:
        if code == 0:
            fnn_sigmoid_backward_f32(<float *>pd, <float *>py, <float *>po, n, nt)
        else:
            fnn_sigmoid_backward_f64(<double *>pd, <double *>py, <double *>po, n, nt)
    return out
