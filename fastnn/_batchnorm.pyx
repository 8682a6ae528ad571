"""Cython wrappers of the batch normalisation kernels (csrc/batchnorm.c).

All arrays are per-feature over row-major (N, D) data. Output and state buffers may be passed in
(they are validated: dtype, shape, C-contiguity, writeability) so a layer can reuse them.
"""
cimport numpy as cnp
import numpy as np
from fastnn._runtime cimport get_num_threads
from fastnn._checks cimport float_code, contiguous, check_output, check_same_dtype, check_shape

cnp.import_array()

cdef extern from "batchnorm.h" nogil:
    void fnn_batchnorm_forward_train_f32(const float *x, Py_ssize_t N, Py_ssize_t D,
                                         const float *gamma, const float *beta, double eps,
                                         float *y, float *mean, float *var, float *std, int nt)
    void fnn_batchnorm_forward_train_f64(const double *x, Py_ssize_t N, Py_ssize_t D,
                                         const double *gamma, const double *beta, double eps,
                                         double *y, double *mean, double *var, double *std,
                                         int nt)
    void fnn_batchnorm_forward_infer_f32(const float *x, Py_ssize_t N, Py_ssize_t D,
                                         const float *gamma, const float *beta,
                                         const double *rm, const double *rv, double eps,
                                         float *y, int nt)
    void fnn_batchnorm_forward_infer_f64(const double *x, Py_ssize_t N, Py_ssize_t D,
                                         const double *gamma, const double *beta,
                                         const double *rm, const double *rv, double eps,
                                         double *y, int nt)
    void fnn_batchnorm_backward_f32(const float *dout, const float *x, Py_ssize_t N,
                                    Py_ssize_t D, const float *gamma, const float *mean,
                                    const float *std, float *dx, float *dgamma, float *dbeta,
                                    int nt)
    void fnn_batchnorm_backward_f64(const double *dout, const double *x, Py_ssize_t N,
                                    Py_ssize_t D, const double *gamma, const double *mean,
                                    const double *std, double *dx, double *dgamma,
                                    double *dbeta, int nt)
    void fnn_batchnorm_running_update_f32(const double *old, const float *stat, double momentum,
                                          double *out, Py_ssize_t D)
    void fnn_batchnorm_running_update_f32state(const float *old, const float *stat,
                                               double momentum, float *out, Py_ssize_t D)
    void fnn_batchnorm_running_update_f64(const double *old, const double *stat,
                                          double momentum, double *out, Py_ssize_t D)


cdef cnp.ndarray _data2d(object x, str name):
    """x validated as a non-empty 2-D float array, C-contiguous (copied if needed)."""
    float_code(x, name)
    cdef cnp.ndarray a = contiguous(<cnp.ndarray>x)
    if a.ndim != 2:
        raise ValueError("%s must be 2-D (N, D), got shape %s" % (name, (<object>a).shape))
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError("%s must hold at least one row and one feature, got shape %s"
                         % (name, (<object>a).shape))
    return a


cdef inline bint _overlap(cnp.ndarray a, cnp.ndarray b):
    """True if the memory spans of the C-contiguous arrays a and b intersect."""
    cdef char *pa = <char *>cnp.PyArray_DATA(a)
    cdef char *pb = <char *>cnp.PyArray_DATA(b)
    return pa < pb + cnp.PyArray_NBYTES(b) and pb < pa + cnp.PyArray_NBYTES(a)


cdef cnp.ndarray _vector(object v, str name, cnp.ndarray like, Py_ssize_t D):
    """v validated as a float array of D values with like's dtype, contiguous 1-D view."""
    float_code(v, name)
    cdef cnp.ndarray a = <cnp.ndarray>v
    check_same_dtype(a, name, like, "x")
    if a.size != D:
        raise ValueError("%s must have %d values (one per feature), got shape %s"
                         % (name, D, (<object>a).shape))
    if a.ndim == 1 and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a):
        return a
    return contiguous(a).reshape(D)


cdef cnp.ndarray _state(object v, str name, Py_ssize_t D, bint allow_f32=False):
    """Running statistics: D values, float64 (the book's), or float32 if allow_f32 (a float32
    network's); a contiguous 1-D view."""
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>v) if isinstance(v, np.ndarray) else -1
    if not (t == cnp.NPY_DOUBLE or (allow_f32 and t == cnp.NPY_FLOAT)):
        raise TypeError("%s must be a float64%s ndarray, got %s"
                        % (name, " (or float32, like x)" if allow_f32 else "",
                           getattr(v, "dtype", type(v).__name__)))
    cdef cnp.ndarray a = <cnp.ndarray>v
    if a.size != D:
        raise ValueError("%s must have %d values (one per feature), got shape %s"
                         % (name, D, (<object>a).shape))
    if a.ndim == 1 and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a):
        return a
    return contiguous(a).reshape(D)


cdef cnp.ndarray _out(object out, str name, tuple shape, cnp.ndarray like):
    if out is None:
        return np.empty(shape, dtype=like.dtype)
    check_output(out, name, shape, cnp.PyArray_TYPE(like))
    return <cnp.ndarray>out


def forward_train(x, gamma, beta, double eps=1e-6, out=None, mean=None, var=None, std=None,
                  running=None, double momentum=0.9):
    """Training forward over the rows of x (N, D).

    Returns ``(out, mean, var, std)``: ``out = gamma * (x - mean) / std + beta`` (N, D), the
    batch mean and biased variance (D,) and ``std = sqrt(var + eps)`` (D,), all in x's dtype
    (statistics accumulated in double). gamma and beta must have x's dtype and D values.
    Buffers given as out/mean/var/std are filled and returned (they must not overlap x).

    With ``running = (running_mean, running_var)`` (float64, D values each), also returns the
    updated running statistics as two new arrays (see :func:`running_update`):
    ``(out, mean, var, std, new_running_mean, new_running_var)``.
    """
    cdef cnp.ndarray xa = _data2d(x, "x")
    cdef Py_ssize_t N = xa.shape[0], D = xa.shape[1]
    cdef cnp.ndarray g = _vector(gamma, "gamma", xa, D)
    cdef cnp.ndarray b = _vector(beta, "beta", xa, D)
    cdef cnp.ndarray y = _out(out, "out", (N, D), xa)
    cdef cnp.ndarray mu = _out(mean, "mean", (D,), xa)
    cdef cnp.ndarray va = _out(var, "var", (D,), xa)
    cdef cnp.ndarray sd = _out(std, "std", (D,), xa)
    if _overlap(y, xa) or _overlap(mu, xa) or _overlap(va, xa) or _overlap(sd, xa):
        raise ValueError("out, mean, var and std must not overlap x")
    cdef cnp.ndarray rm, rv, new_rm, new_rv
    if running is not None:
        f32 = cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT
        rm = _state(running[0], "running_mean", D, f32)
        rv = _state(running[1], "running_var", D, f32)
        if cnp.PyArray_TYPE(rm) != cnp.PyArray_TYPE(rv):
            raise TypeError("running_mean and running_var must share a dtype, got %s and %s"
                            % (rm.dtype, rv.dtype))
        new_rm = np.empty(D, dtype=rm.dtype)
        new_rv = np.empty(D, dtype=rv.dtype)
    cdef void *px = cnp.PyArray_DATA(xa)
    cdef void *pg = cnp.PyArray_DATA(g)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef void *pm = cnp.PyArray_DATA(mu)
    cdef void *pv = cnp.PyArray_DATA(va)
    cdef void *ps = cnp.PyArray_DATA(sd)
    cdef int nt = get_num_threads()
    with nogil:
        if cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT:
            fnn_batchnorm_forward_train_f32(<float *>px, N, D, <float *>pg, <float *>pb, eps,
                                            <float *>py, <float *>pm, <float *>pv,
                                            <float *>ps, nt)
        else:
            fnn_batchnorm_forward_train_f64(<double *>px, N, D, <double *>pg, <double *>pb, eps,
                                            <double *>py, <double *>pm, <double *>pv,
                                            <double *>ps, nt)
    if running is None:
        return y, mu, va, sd
    _update(rm, mu, momentum, new_rm)
    _update(rv, va, momentum, new_rv)
    return y, mu, va, sd, new_rm, new_rv


cdef void _update(cnp.ndarray old, cnp.ndarray stat, double momentum, cnp.ndarray out) noexcept:
    cdef double *po = <double *>cnp.PyArray_DATA(old)
    cdef double *pr = <double *>cnp.PyArray_DATA(out)
    cdef void *ps = cnp.PyArray_DATA(stat)
    if cnp.PyArray_TYPE(old) == cnp.NPY_FLOAT:    # float32 state (and stat)
        fnn_batchnorm_running_update_f32state(<float *>po, <float *>ps, momentum, <float *>pr,
                                              out.shape[0])
    elif cnp.PyArray_TYPE(stat) == cnp.NPY_FLOAT:
        fnn_batchnorm_running_update_f32(po, <float *>ps, momentum, pr, out.shape[0])
    else:
        fnn_batchnorm_running_update_f64(po, <double *>ps, momentum, pr, out.shape[0])


def forward_infer(x, gamma, beta, running_mean, running_var, double eps=1e-6, out=None):
    """Inference forward: ``gamma * (x - running_mean) / sqrt(running_var + eps) + beta``.

    x (N, D) float32/float64, gamma and beta of x's dtype with D values, running statistics
    float64 with D values. Returns out (N, D) in x's dtype.
    """
    cdef cnp.ndarray xa = _data2d(x, "x")
    cdef Py_ssize_t N = xa.shape[0], D = xa.shape[1]
    cdef cnp.ndarray g = _vector(gamma, "gamma", xa, D)
    cdef cnp.ndarray b = _vector(beta, "beta", xa, D)
    cdef cnp.ndarray rm = _state(running_mean, "running_mean", D)
    cdef cnp.ndarray rv = _state(running_var, "running_var", D)
    cdef cnp.ndarray y = _out(out, "out", (N, D), xa)
    if _overlap(y, xa):
        raise ValueError("out must not overlap x")
    cdef void *px = cnp.PyArray_DATA(xa)
    cdef void *pg = cnp.PyArray_DATA(g)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef double *prm = <double *>cnp.PyArray_DATA(rm)
    cdef double *prv = <double *>cnp.PyArray_DATA(rv)
    cdef void *py = cnp.PyArray_DATA(y)
    cdef int nt = get_num_threads()
    with nogil:
        if cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT:
            fnn_batchnorm_forward_infer_f32(<float *>px, N, D, <float *>pg, <float *>pb,
                                            prm, prv, eps, <float *>py, nt)
        else:
            fnn_batchnorm_forward_infer_f64(<double *>px, N, D, <double *>pg, <double *>pb,
                                            prm, prv, eps, <double *>py, nt)
    return y


def backward(dout, x, gamma, mean, std, out=None):
    """Backward through a training forward of x (N, D) with its batch ``mean`` and ``std``.

    Returns ``(dx, dgamma, dbeta)``; dout must have x's shape and every array x's dtype.
    """
    cdef cnp.ndarray xa = _data2d(x, "x")
    cdef Py_ssize_t N = xa.shape[0], D = xa.shape[1]
    float_code(dout, "dout")
    cdef cnp.ndarray d = contiguous(<cnp.ndarray>dout)
    check_same_dtype(d, "dout", xa, "x")
    check_shape(d, "dout", (N, D))
    cdef cnp.ndarray g = _vector(gamma, "gamma", xa, D)
    cdef cnp.ndarray mu = _vector(mean, "mean", xa, D)
    cdef cnp.ndarray sd = _vector(std, "std", xa, D)
    cdef cnp.ndarray dx = _out(out, "out", (N, D), xa)
    if _overlap(dx, xa) or _overlap(dx, d):
        raise ValueError("out must not overlap x or dout")
    cdef cnp.ndarray dg = np.empty(D, dtype=xa.dtype)
    cdef cnp.ndarray db = np.empty(D, dtype=xa.dtype)
    cdef void *pd = cnp.PyArray_DATA(d)
    cdef void *px = cnp.PyArray_DATA(xa)
    cdef void *pg = cnp.PyArray_DATA(g)
    cdef void *pm = cnp.PyArray_DATA(mu)
    cdef void *ps = cnp.PyArray_DATA(sd)
    cdef void *pdx = cnp.PyArray_DATA(dx)
    cdef void *pdg = cnp.PyArray_DATA(dg)
    cdef void *pdb = cnp.PyArray_DATA(db)
    cdef int nt = get_num_threads()
    with nogil:
        if cnp.PyArray_TYPE(xa) == cnp.NPY_FLOAT:
            fnn_batchnorm_backward_f32(<float *>pd, <float *>px, N, D, <float *>pg, <float *>pm,
                                       <float *>ps, <float *>pdx, <float *>pdg, <float *>pdb, nt)
        else:
            fnn_batchnorm_backward_f64(<double *>pd, <double *>px, N, D, <double *>pg,
                                       <double *>pm, <double *>ps, <double *>pdx,
                                       <double *>pdg, <double *>pdb, nt)
    return dx, dg, db


def running_update(old, stat, double momentum):
    """``momentum * old + (1 - momentum) * stat`` rounded exactly as the book's NumPy code.

    old : float64 (D,); stat : float32 or float64 (D,). Returns a new float64 array (old is
    not modified, as the book rebinds the attribute).
    """
    float_code(stat, "stat")
    cdef cnp.ndarray s = contiguous(<cnp.ndarray>stat)
    cdef Py_ssize_t D = s.size
    cdef cnp.ndarray o = _state(old, "old", D)
    cdef cnp.ndarray r = np.empty(D, dtype=np.float64)
    _update(o, s, momentum, r)
    return r
