"""Cython wrappers of the Affine layer: GEMMs through SciPy's BLAS, bias kernels in csrc/affine.c."""
cimport numpy as cnp
import numpy as np
from fastnn._checks cimport float_code, contiguous, check_output, check_same_dtype
from fastnn._blas cimport (gemm_rowmajor, blas_int, fnn_blas, blas_describe, blas_now, fnn_gemm,
                           fnn_gemm_bt, fnn_gemm_bt_scratch)

cnp.import_array()

cdef extern from "affine.h" nogil:
    void fnn_bias_fill_f32(const float *b, float *Y, Py_ssize_t N, Py_ssize_t D)
    void fnn_bias_fill_f64(const double *b, double *Y, Py_ssize_t N, Py_ssize_t D)
    void fnn_bias_grad_f32(const float *dY, Py_ssize_t N, Py_ssize_t D, float *db, double *acc)
    void fnn_bias_grad_f64(const double *dY, Py_ssize_t N, Py_ssize_t D, double *db, double *acc)

cdef Py_ssize_t BLAS_INT_MAX = 2147483647

cdef fnn_blas _BLAS
blas_describe(&_BLAS)


cdef inline void _dx_product(const fnn_blas *call, bint dbl, Py_ssize_t N, Py_ssize_t K,
                             Py_ssize_t M, const void *pd, const void *pW, void *pdx,
                             void *scratch) noexcept nogil:
    """dx (N, K) = dout (N, M) · Wᵀ (W: K×M), through W's transpose in scratch (K·M elements)
    where fnn_gemm_bt takes it that way (_wt_scratch)."""
    fnn_gemm_bt(call, dbl, <int>N, <int>K, <int>M, 1.0, pd, <int>M, pW, <int>M, 0.0, pdx,
                <int>K, scratch)


cdef object _wt_scratch(const fnn_blas *call, object dtype, Py_ssize_t N, Py_ssize_t K,
                        Py_ssize_t M):
    """The scratch _dx_product needs for these sizes, or None."""
    if fnn_gemm_bt_scratch(call, <int>N, <int>K, <int>M):
        return np.empty(K * M, dtype=dtype)
    return None


cdef int _check_dims(Py_ssize_t n, Py_ssize_t k, Py_ssize_t m) except -1:
    if n > BLAS_INT_MAX or k > BLAS_INT_MAX or m > BLAS_INT_MAX:
        raise ValueError("matrix dimension too large for 32-bit BLAS: (%d, %d, %d)" % (n, k, m))
    return 0


def affine_forward(x, W, b, out=None):
    """``out = x @ W + b`` with the bias folded into the GEMM (beta = 1 over broadcast rows).

    Parameters
    ----------
    x : ndarray (N, K), float32 or float64
    W : ndarray (K, M), x's dtype
    b : ndarray (M,), x's dtype
    out : ndarray (N, M), x's dtype, C-contiguous, optional (allocated if None)

    Returns
    -------
    out : ndarray (N, M)
    """
    cdef int code = float_code(x, "x")
    float_code(W, "W")
    float_code(b, "b")
    cdef cnp.ndarray xc = contiguous(<cnp.ndarray>x)
    cdef cnp.ndarray Wc = contiguous(<cnp.ndarray>W)
    cdef cnp.ndarray bc = contiguous(<cnp.ndarray>b)
    check_same_dtype(xc, "x", Wc, "W")
    check_same_dtype(xc, "x", bc, "b")
    if xc.ndim != 2:
        raise ValueError("x must be 2-D (N, K), got shape %s" % ((<object>xc).shape,))
    if Wc.ndim != 2:
        raise ValueError("W must be 2-D (K, M), got shape %s" % ((<object>Wc).shape,))
    cdef Py_ssize_t N = xc.shape[0], K = xc.shape[1], M = Wc.shape[1]
    if Wc.shape[0] != K:
        raise ValueError("x has %d features per row but W has %d rows: expected W of shape "
                         "(%d, M), got %s" % (K, Wc.shape[0], K, (Wc.shape[0], M)))
    if bc.ndim != 1 or bc.shape[0] != M:
        raise ValueError("b must have shape (%d,) to match W's %d columns, got %s"
                         % (M, M, (<object>bc).shape))
    _check_dims(N, K, M)
    if out is None:
        out = np.empty((N, M), dtype=xc.dtype)
    else:
        check_output(out, "out", (N, M), cnp.PyArray_TYPE(xc))
    cdef cnp.ndarray o = <cnp.ndarray>out
    cdef void *px = cnp.PyArray_DATA(xc)
    cdef void *pW = cnp.PyArray_DATA(Wc)
    cdef void *pb = cnp.PyArray_DATA(bc)
    cdef void *po = cnp.PyArray_DATA(o)
    cdef fnn_blas call = blas_now(&_BLAS)
    with nogil:
        if code == 0:
            fnn_bias_fill_f32(<float *>pb, <float *>po, N, M)
        else:
            fnn_bias_fill_f64(<double *>pb, <double *>po, N, M)
        if N > 0 and M > 0 and K > 0:
            gemm_rowmajor(&call, code == 1, False, False, <blas_int>N, <blas_int>M, <blas_int>K,
                          1.0, px, pW, 1.0, po)
    return out


def affine_backward(dout, x, W, bint need_dx=True, dW_out=None, db_out=None, dx_out=None):
    """Gradients of ``x @ W + b``: ``dx = dout @ W.T``, ``dW = x.T @ dout``, ``db = dout.sum(0)``.

    Parameters
    ----------
    dout : ndarray (N, M)
    x : ndarray (N, K), the forward input (2-D)
    W : ndarray (K, M)
    need_dx : bool
        If False, dx is not computed (e.g. for a network's first layer) and None is returned.
    dW_out, db_out, dx_out : ndarray, optional
        C-contiguous writeable outputs for dW (K, M), db (M,) (e.g. views of a network's flat
        gradient buffer) and dx (N, K); new arrays are allocated when None.

    Returns
    -------
    dx : ndarray (N, K) or None
    dW : ndarray (K, M)
    db : ndarray (M,), summed in double precision, rows in order
    """
    cdef int code = float_code(dout, "dout")
    float_code(x, "x")
    float_code(W, "W")
    cdef cnp.ndarray d = contiguous(<cnp.ndarray>dout)
    cdef cnp.ndarray xc = contiguous(<cnp.ndarray>x)
    cdef cnp.ndarray Wc = contiguous(<cnp.ndarray>W)
    check_same_dtype(d, "dout", xc, "x")
    check_same_dtype(d, "dout", Wc, "W")
    if xc.ndim != 2 or Wc.ndim != 2 or d.ndim != 2:
        raise ValueError("dout, x and W must be 2-D, got shapes %s, %s, %s"
                         % ((<object>d).shape, (<object>xc).shape, (<object>Wc).shape))
    cdef Py_ssize_t N = xc.shape[0], K = xc.shape[1], M = Wc.shape[1]
    if Wc.shape[0] != K:
        raise ValueError("W must have shape (%d, M) to match x, got %s" % (K, (<object>Wc).shape))
    if d.shape[0] != N or d.shape[1] != M:
        raise ValueError("dout must have shape %s (the forward output's), got %s"
                         % ((N, M), (<object>d).shape))
    _check_dims(N, K, M)
    if dW_out is None:
        dW_out = np.empty((K, M), dtype=d.dtype)
    else:
        check_output(dW_out, "dW_out", (K, M), cnp.PyArray_TYPE(d))
    if db_out is None:
        db_out = np.empty(M, dtype=d.dtype)
    else:
        check_output(db_out, "db_out", (M,), cnp.PyArray_TYPE(d))
    cdef cnp.ndarray dW = <cnp.ndarray>dW_out
    cdef cnp.ndarray db = <cnp.ndarray>db_out
    cdef cnp.ndarray acc = np.empty(M, dtype=np.float64)
    cdef cnp.ndarray dx = None
    if need_dx:
        if dx_out is None:
            dx = np.empty((N, K), dtype=d.dtype)
        else:
            check_output(dx_out, "dx_out", (N, K), cnp.PyArray_TYPE(d))
            dx = <cnp.ndarray>dx_out
    cdef void *pd = cnp.PyArray_DATA(d)
    cdef void *px = cnp.PyArray_DATA(xc)
    cdef void *pW = cnp.PyArray_DATA(Wc)
    cdef void *pdW = cnp.PyArray_DATA(dW)
    cdef void *pdb = cnp.PyArray_DATA(db)
    cdef double *pacc = <double *>cnp.PyArray_DATA(acc)
    cdef void *pdx = cnp.PyArray_DATA(dx) if need_dx else NULL
    cdef fnn_blas call = blas_now(&_BLAS)
    cdef object wt = _wt_scratch(&call, d.dtype, N, K, M) if need_dx else None
    cdef void *pwt = cnp.PyArray_DATA(<cnp.ndarray>wt) if wt is not None else NULL
    with nogil:
        if K > 0 and M > 0:
            if N > 0:
                gemm_rowmajor(&call, code == 1, True, False, <blas_int>K, <blas_int>M, <blas_int>N,
                              1.0, px, pd, 0.0, pdW)
            else:
                memset_zero(pdW, K * M * (8 if code == 1 else 4))
        if need_dx and N > 0 and K > 0:
            if M > 0:
                _dx_product(&call, code == 1, N, K, M, pd, pW, pdx, pwt)
            else:
                memset_zero(pdx, N * K * (8 if code == 1 else 4))
        if code == 0:
            fnn_bias_grad_f32(<float *>pd, N, M, <float *>pdb, pacc)
        else:
            fnn_bias_grad_f64(<double *>pd, N, M, <double *>pdb, pacc)
    return dx, dW, db


cdef extern from "string.h" nogil:
    void *memset(void *s, int c, size_t n)

cdef inline void memset_zero(void *p, Py_ssize_t nbytes) noexcept nogil:
    memset(p, 0, <size_t>nbytes)


def gemm_floor(x, W, dout, y, dx, dW, bint plain=False):
    """Benchmark helper: only the three GEMMs of Affine forward+backward, into preallocated
    C-contiguous outputs (``y = x·W``, ``dx = dout·Wᵀ``, ``dW = xᵀ·dout``; ``dx=None`` skips that
    one, as for a network's first layer). This is the floor the layer's time is compared with;
    it validates dtypes and shapes like the layer does, and calls the BLAS as the layer does
    (csrc/gemm.h), or, if ``plain``, once per product (no small-kernel blocks)."""
    cdef int code = float_code(x, "x")
    cdef cnp.ndarray xc = contiguous(<cnp.ndarray>x)
    cdef cnp.ndarray Wc = contiguous(<cnp.ndarray>W)
    cdef cnp.ndarray d = contiguous(<cnp.ndarray>dout)
    check_same_dtype(xc, "x", Wc, "W")
    check_same_dtype(xc, "x", d, "dout")
    if xc.ndim != 2 or Wc.ndim != 2 or d.ndim != 2:
        raise ValueError("x, W and dout must be 2-D")
    cdef Py_ssize_t N = xc.shape[0], K = xc.shape[1], M = Wc.shape[1]
    if Wc.shape[0] != K or d.shape[0] != N or d.shape[1] != M:
        raise ValueError("shapes do not match: x %s, W %s, dout %s"
                         % ((<object>xc).shape, (<object>Wc).shape, (<object>d).shape))
    _check_dims(N, K, M)
    check_output(y, "y", (N, M), cnp.PyArray_TYPE(xc))
    if dx is not None:
        check_output(dx, "dx", (N, K), cnp.PyArray_TYPE(xc))
    check_output(dW, "dW", (K, M), cnp.PyArray_TYPE(xc))
    cdef void *px = cnp.PyArray_DATA(xc)
    cdef void *pW = cnp.PyArray_DATA(Wc)
    cdef void *pd = cnp.PyArray_DATA(d)
    cdef void *py = cnp.PyArray_DATA(<cnp.ndarray>y)
    cdef void *pdx = cnp.PyArray_DATA(<cnp.ndarray>dx) if dx is not None else NULL
    cdef void *pdW = cnp.PyArray_DATA(<cnp.ndarray>dW)
    if N == 0 or K == 0 or M == 0:
        return
    cdef fnn_blas call = blas_now(&_BLAS)
    if plain:
        call.split = 0
    cdef object wt = _wt_scratch(&call, xc.dtype, N, K, M) if dx is not None else None
    cdef void *pwt = cnp.PyArray_DATA(<cnp.ndarray>wt) if wt is not None else NULL
    with nogil:
        gemm_rowmajor(&call, code == 1, False, False, <blas_int>N, <blas_int>M, <blas_int>K,
                      1.0, px, pW, 0.0, py)
        gemm_rowmajor(&call, code == 1, True, False, <blas_int>K, <blas_int>M, <blas_int>N,
                      1.0, px, pd, 0.0, pdW)
        if pdx != NULL:
            _dx_product(&call, code == 1, N, K, M, pd, pW, pdx, pwt)


def _set_small_mnk(double small_mnk):
    """Test hook: set the m·n·k up to which this module's GEMMs take the BLAS's small kernels
    (csrc/gemm.h; 0: never split); returns the previous value."""
    old = _BLAS.small_mnk
    _BLAS.small_mnk = small_mnk
    return old


def _gemm(a, b, c, bint trans_a, bint trans_b, double alpha, double beta, bint split):
    """Test hook: ``c = alpha·op(a)·op(b) + beta·c`` through fnn_gemm (fnn_gemm_bt, with its
    scratch, if trans_b; not both transposed), split into small-kernel blocks if ``split``
    (whatever the BLAS's thread count). a, b, c: C-contiguous 2-D arrays of one float dtype, no
    dimension 0. Returns whether fnn_gemm_bt transposed b into its scratch."""
    cdef int code = float_code(c, "c")
    if trans_a and trans_b:
        raise ValueError("trans_a and trans_b together are not supported")
    for arr, name in ((a, "a"), (b, "b"), (c, "c")):
        float_code(arr, name)
        if arr.dtype != c.dtype or arr.ndim != 2 or not arr.flags.c_contiguous:
            raise ValueError("%s must be a C-contiguous 2-D array of c's dtype" % name)
    if not c.flags.writeable:
        raise ValueError("c must be writeable")
    cdef Py_ssize_t m = c.shape[0], n = c.shape[1]
    cdef Py_ssize_t k = a.shape[0] if trans_a else a.shape[1]
    if ((a.shape[1] if trans_a else a.shape[0]) != m
            or (b.shape[1] if trans_b else b.shape[0]) != k
            or (b.shape[0] if trans_b else b.shape[1]) != n or m == 0 or n == 0 or k == 0):
        raise ValueError("shapes do not match: a %s, b %s, c %s" % (a.shape, b.shape, c.shape))
    _check_dims(m, k, n)
    cdef fnn_blas call = _BLAS
    call.split = split
    cdef object wt = (_wt_scratch(&call, c.dtype, m, n, k) if trans_b else None)
    cdef void *pwt = cnp.PyArray_DATA(<cnp.ndarray>wt) if wt is not None else NULL
    cdef void *pa = cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef void *pb = cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef void *pc = cnp.PyArray_DATA(<cnp.ndarray>c)
    with nogil:
        if trans_b:
            fnn_gemm_bt(&call, code == 1, <int>m, <int>n, <int>k, alpha, pa, <int>k, pb, <int>k,
                        beta, pc, <int>n, pwt)
        else:
            fnn_gemm(&call, code == 1, trans_a, False, <int>m, <int>n, <int>k, alpha, pa,
                     <int>(m if trans_a else k), pb, <int>n, beta, pc, <int>n)
    return wt is not None
