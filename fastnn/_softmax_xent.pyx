"""Cython wrappers of the fused softmax + cross-entropy kernels (csrc/softmax_xent.c)."""
cimport numpy as cnp
import numpy as np
from libc.stdint cimport int64_t
from fastnn._runtime cimport get_num_threads
from fastnn._checks cimport float_code, contiguous, check_output

cnp.import_array()

cdef extern from "softmax_xent.h" nogil:
    double fnn_softmax_xent_forward_f32(const float *x, Py_ssize_t N, Py_ssize_t C,
                                        const int64_t *idx, const float *onehot, float *y,
                                        float *dx, double grad_scale, int n_threads)
    double fnn_softmax_xent_forward_f64(const double *x, Py_ssize_t N, Py_ssize_t C,
                                        const int64_t *idx, const double *onehot, double *y,
                                        double *dx, double grad_scale, int n_threads)
    void fnn_softmax_xent_backward_f32(const float *y, Py_ssize_t N, Py_ssize_t C,
                                       const int64_t *idx, const float *onehot,
                                       double grad_scale, float *dx, int n_threads)
    void fnn_softmax_xent_backward_f64(const double *y, Py_ssize_t N, Py_ssize_t C,
                                       const int64_t *idx, const double *onehot,
                                       double grad_scale, double *dx, int n_threads)


def labels(t, Py_ssize_t N, Py_ssize_t C, dtype):
    """(idx, onehot) for labels t of scores of shape (N, C) and the given float dtype: exactly
    one is an array (int64 class indices, or one-hot converted to dtype), the other None.

    As in the book, t is one-hot when it has N*C elements, else class indices. Raises TypeError
    or ValueError for labels that are neither.
    """
    ta = t if isinstance(t, np.ndarray) else np.asarray(t)
    cdef cnp.ndarray idx
    cdef Py_ssize_t i
    if ta.size == N * C:
        if ta.dtype.kind not in "fiub":
            raise TypeError("t (one-hot labels) must be numeric, got dtype %s" % ta.dtype)
        return None, np.ascontiguousarray(ta.reshape(N, C), dtype=dtype)
    if ta.dtype.kind not in "iu":
        raise TypeError("t must hold integer class indices of shape (%d,) or one-hot labels of "
                        "shape (%d, %d); got dtype %s and shape %s" % (N, N, C, ta.dtype, ta.shape))
    if ta.size != N:
        raise ValueError("t must have shape (%d,) (class indices) or (%d, %d) (one-hot) to match "
                         "x, got shape %s" % (N, N, C, ta.shape))
    idx = np.ascontiguousarray(ta.reshape(N), dtype=np.int64)
    cdef const int64_t *iv = <const int64_t *>cnp.PyArray_DATA(idx)
    for i in range(N):
        if iv[i] < 0 or iv[i] >= C:
            raise ValueError("t holds a class index out of range [0, %d): t[%d] = %d"
                             % (C, i, iv[i]))
    return idx, None


def softmax_xent_forward(x, t, bint with_grad=False, grad_scale=None, y_out=None, dx_out=None):
    """Softmax of the rows of x and the book's cross-entropy loss in one pass.

    Parameters
    ----------
    x : ndarray (N, C), float32 or float64
    t : ndarray, class indices (N,) of an integer dtype, or one-hot labels (N, C)
    with_grad : bool
        Also compute the backward result ``dx = (y - onehot(t)) * grad_scale`` while the rows
        are in cache.
    grad_scale : float, optional
        Scale of dx; default ``1 / N`` (the book's ``1 / batch_size``).
    y_out, dx_out : ndarray (N, C) of x's dtype, C-contiguous, optional
        Where to write y and dx (e.g. recycled buffers); new arrays are allocated if None.

    Returns
    -------
    loss : float
        ``-sum_i log(y[i, t_i] + 1e-7) / N`` (labels of one-hot t are its row argmax).
    y : ndarray (N, C), the softmax
    dx : ndarray (N, C) or None
    """
    cdef int code = float_code(x, "x")
    cdef cnp.ndarray xc = contiguous(<cnp.ndarray>x)
    if xc.ndim != 2:
        raise ValueError("x must be 2-D (N, C), got shape %s" % ((<object>xc).shape,))
    cdef Py_ssize_t N = xc.shape[0], C = xc.shape[1]
    if N == 0 or C == 0:
        raise ValueError("x must hold at least one row and one class, got shape %s" % ((<object>xc).shape,))
    idx, onehot = labels(t, xc.shape[0], xc.shape[1], xc.dtype)
    cdef double scale = 1.0 / N if grad_scale is None else float(grad_scale)
    if y_out is None:
        y_out = np.empty_like(xc)
    else:
        check_output(y_out, "y_out", (N, C), cnp.PyArray_TYPE(xc))
    if with_grad and dx_out is None:
        dx_out = np.empty_like(xc)
    elif with_grad:
        check_output(dx_out, "dx_out", (N, C), cnp.PyArray_TYPE(xc))
    cdef cnp.ndarray y = <cnp.ndarray>y_out
    cdef cnp.ndarray dx = <cnp.ndarray>dx_out if with_grad else None
    cdef void *px = cnp.PyArray_DATA(xc)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *pdx = cnp.PyArray_DATA(dx) if with_grad else NULL
    cdef int64_t *pi = <int64_t *>cnp.PyArray_DATA(idx) if idx is not None else NULL
    cdef void *po = cnp.PyArray_DATA(onehot) if onehot is not None else NULL
    cdef int nt = get_num_threads()
    cdef double loss
    with nogil:
        if code == 0:
            loss = fnn_softmax_xent_forward_f32(<float *>px, N, C, pi, <float *>po, <float *>py,
                                                <float *>pdx, scale, nt)
        else:
            loss = fnn_softmax_xent_forward_f64(<double *>px, N, C, pi, <double *>po,
                                                <double *>py, <double *>pdx, scale, nt)
    # the kernel returns NaN when its scratch allocation fails; finite scores cannot give a NaN
    # loss otherwise (infinite or NaN scores can: that loss is the book's)
    if loss != loss and np.isfinite(xc).all():
        raise MemoryError("softmax_xent_forward: out of memory")
    return loss, y, dx


def softmax_xent_backward(y, t, grad_scale, out=None):
    """``dx = (y - onehot(t)) * grad_scale`` for the softmax output y (N, C) and labels t,
    written to ``out`` (N, C, y's dtype, C-contiguous) or to a new array if None."""
    cdef int code = float_code(y, "y")
    cdef cnp.ndarray yc = contiguous(<cnp.ndarray>y)
    if yc.ndim != 2 or yc.shape[0] == 0 or yc.shape[1] == 0:
        raise ValueError("y must be a non-empty 2-D array (N, C), got shape %s" % ((<object>yc).shape,))
    cdef Py_ssize_t N = yc.shape[0], C = yc.shape[1]
    idx, onehot = labels(t, yc.shape[0], yc.shape[1], yc.dtype)
    if out is None:
        out = np.empty_like(yc)
    else:
        check_output(out, "out", (N, C), cnp.PyArray_TYPE(yc))
    cdef cnp.ndarray dx = <cnp.ndarray>out
    cdef void *py = cnp.PyArray_DATA(yc)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    cdef int64_t *pi = <int64_t *>cnp.PyArray_DATA(idx) if idx is not None else NULL
    cdef void *po = cnp.PyArray_DATA(onehot) if onehot is not None else NULL
    cdef double scale = float(grad_scale)
    cdef int nt = get_num_threads()
    with nogil:
        if code == 0:
            fnn_softmax_xent_backward_f32(<float *>py, N, C, pi, <float *>po, scale,
                                          <float *>pdx, nt)
        else:
            fnn_softmax_xent_backward_f64(<double *>py, N, C, pi, <double *>po, scale,
                                          <double *>pdx, nt)
    return dx
