"""Cython wrapper of the optimizer kernels (csrc/optim.c): one C call per ``update``.

``StepPlan`` belongs to one optimizer instance. Each call it walks the params dict once at C
level (dict lookups, type/shape/flag checks: no Python-level work per array), fills a table of
(param, grad, state) pointers and sizes, and reuses the previous call's overlap check and
coalesced segment table when every pointer and size is unchanged. Segments that continue each
other in memory (params that are views of one flat buffer, with grads and state laid out the
same way) are merged, so a flat network is updated in a single pass over its buffer.
Nothing is written before every array has been validated. A training pass can run the update
itself (fastnn._netstep): ``reserve`` validates a call, ``reserved_tables`` hands the pass its
pointer tables (a capsule of ``fnn_optim_tables``), ``unreserve`` ends it.
"""
cimport numpy as cnp
import numpy as np
from libc.string cimport memcmp
from libc.stdlib cimport qsort
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.ref cimport PyObject, Py_INCREF
from cpython.pycapsule cimport PyCapsule_New

cdef extern from "Python.h":
    void _decref "Py_DECREF"(PyObject *o)
from fastnn._runtime cimport get_num_threads
from fastnn._optim_kernels cimport (
    fnn_optim_hparams, fnn_optim_tables, fnn_optim_step_f32, fnn_optim_step_f64,
    fnn_div_exact_f64, FNN_OPT_SGD, FNN_OPT_MOMENTUM, FNN_OPT_NESTEROV, FNN_OPT_ADAGRAD,
    FNN_OPT_RMSPROP, FNN_OPT_ADAM, FNN_OPT_ADAMW, FNN_OPT_COUNT)

cnp.import_array()

SGD = FNN_OPT_SGD
MOMENTUM = FNN_OPT_MOMENTUM
NESTEROV = FNN_OPT_NESTEROV
ADAGRAD = FNN_OPT_ADAGRAD
RMSPROP = FNN_OPT_RMSPROP
ADAM = FNN_OPT_ADAM
ADAMW = FNN_OPT_ADAMW

# step() results
DONE = 1
FALLBACK = 0     # something the kernels do not handle: nothing was written, use the NumPy rules

ctypedef struct Seg:
    char *p
    char *g
    char *s1
    char *s2
    Py_ssize_t n        # elements
    Py_ssize_t cols     # row width: the last dimension (the size of a 1-D array)
    int code            # 0: float32, 1: float64

ctypedef struct Interval:
    char *lo
    char *hi
    int written


cdef int _cmp_interval(const void *a, const void *b) noexcept nogil:
    cdef const Interval *x = <const Interval *>a
    cdef const Interval *y = <const Interval *>b
    if x.lo < y.lo:
        return -1
    if x.lo > y.lo:
        return 1
    return 0


cdef int _cmp_seg(const void *a, const void *b) noexcept nogil:
    cdef const Seg *x = <const Seg *>a
    cdef const Seg *y = <const Seg *>b
    if x.code != y.code:
        return -1 if x.code < y.code else 1
    if x.p < y.p:
        return -1
    if x.p > y.p:
        return 1
    return 0


cdef inline bint _usable(object a, int typenum) noexcept:
    """a is an aligned, C-contiguous, writeable ndarray of dtype typenum."""
    if not cnp.PyArray_Check(a):
        return False
    cdef cnp.ndarray x = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(x) == typenum and cnp.PyArray_IS_C_CONTIGUOUS(x)
            and cnp.PyArray_ISALIGNED(x) and cnp.PyArray_ISWRITEABLE(x))


cdef inline bint _same_shape(cnp.ndarray a, cnp.ndarray b) noexcept:
    cdef int nd = cnp.PyArray_NDIM(a)
    if nd != cnp.PyArray_NDIM(b):
        return False
    return nd == 0 or memcmp(cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(b),
                             nd * sizeof(cnp.npy_intp)) == 0


cdef class StepPlan:
    """Validated pointer tables of one optimizer instance (see the module docstring).

    Parameters
    ----------
    kind : int
        One of the module constants SGD ... ADAMW.
    n_states : int
        Number of state dicts the rule uses (0, 1 or 2).
    """
    cdef readonly int kind
    cdef readonly int n_states
    cdef Py_ssize_t cap          # capacity of the tables
    cdef Py_ssize_t count        # segments in `cur` (non-empty arrays of the last call)
    cdef Py_ssize_t total        # their elements
    cdef Py_ssize_t prev_count   # segments in `prev` (last validated, coalesced call)
    cdef Seg *cur
    cdef Seg *prev
    cdef Seg *runs               # coalesced segments, sorted by dtype then address
    cdef Py_ssize_t n_runs[2]
    cdef Interval *ivals
    cdef void **tp
    cdef void **tg
    cdef void **ts1
    cdef void **ts2
    cdef Py_ssize_t *tn
    cdef Py_ssize_t *tcols
    cdef PyObject **held         # arrays referenced by the tables, kept alive during the kernel
    cdef Py_ssize_t n_held
    cdef bint busy               # an update of this plan is running (GIL released)
    cdef bint reserved           # between a reserve() that returned DONE and unreserve()
    cdef bint copied             # the last validation copied a gradient (strided or aliased)
    cdef fnn_optim_tables tables # reserved_tables' result
    cdef readonly Py_ssize_t last_segments   # coalesced segments of the last call (for tests)
    cdef readonly Py_ssize_t last_elements

    def __cinit__(self, int kind, int n_states):
        if kind < 0 or kind >= FNN_OPT_COUNT:
            raise ValueError("unknown optimizer kind %d" % kind)
        if n_states < 0 or n_states > 2:
            raise ValueError("n_states must be 0, 1 or 2, got %d" % n_states)
        self.kind = kind
        self.n_states = n_states
        self.cap = 0
        self.count = 0
        self.prev_count = -1
        self.cur = self.prev = self.runs = NULL
        self.ivals = NULL
        self.tp = self.tg = self.ts1 = self.ts2 = NULL
        self.tn = self.tcols = NULL
        self.held = NULL
        self.n_held = 0
        self.busy = False
        self.reserved = False
        self.copied = False
        self.last_segments = 0
        self.last_elements = 0

    def __dealloc__(self):
        self._free()

    cdef void _free(self) noexcept:
        PyMem_Free(self.cur)
        PyMem_Free(self.prev)
        PyMem_Free(self.runs)
        PyMem_Free(self.ivals)
        PyMem_Free(self.tp)
        PyMem_Free(self.tg)
        PyMem_Free(self.ts1)
        PyMem_Free(self.ts2)
        PyMem_Free(self.tn)
        PyMem_Free(self.tcols)
        PyMem_Free(self.held)
        self.held = NULL
        self.cur = self.prev = self.runs = NULL
        self.ivals = NULL
        self.tp = self.tg = self.ts1 = self.ts2 = NULL
        self.tn = self.tcols = NULL
        self.cap = 0

    cdef int _reserve(self, Py_ssize_t n) except -1:
        if n <= self.cap:
            return 0
        self._free()
        self.prev_count = -1
        cdef Py_ssize_t c = n if n > 16 else 16
        self.cur = <Seg *>PyMem_Malloc(c * sizeof(Seg))
        self.prev = <Seg *>PyMem_Malloc(c * sizeof(Seg))
        self.runs = <Seg *>PyMem_Malloc(c * sizeof(Seg))
        self.ivals = <Interval *>PyMem_Malloc(4 * c * sizeof(Interval))
        self.tp = <void **>PyMem_Malloc(c * sizeof(void *))
        self.tg = <void **>PyMem_Malloc(c * sizeof(void *))
        self.ts1 = <void **>PyMem_Malloc(c * sizeof(void *))
        self.ts2 = <void **>PyMem_Malloc(c * sizeof(void *))
        self.tn = <Py_ssize_t *>PyMem_Malloc(c * sizeof(Py_ssize_t))
        self.tcols = <Py_ssize_t *>PyMem_Malloc(c * sizeof(Py_ssize_t))
        self.held = <PyObject **>PyMem_Malloc(4 * c * sizeof(PyObject *))
        if (self.held == NULL or self.cur == NULL or self.prev == NULL or self.runs == NULL or self.ivals == NULL
                or self.tp == NULL or self.tg == NULL or self.ts1 == NULL or self.ts2 == NULL
                or self.tn == NULL or self.tcols == NULL):
            self._free()
            raise MemoryError()
        self.cap = c
        return 0

    cdef bint _unchanged(self) noexcept:
        if self.count != self.prev_count:
            return False
        cdef Py_ssize_t i
        cdef Seg *a
        cdef Seg *b
        for i in range(self.count):
            a = &self.cur[i]
            b = &self.prev[i]
            if (a.p != b.p or a.g != b.g or a.s1 != b.s1 or a.s2 != b.s2 or a.n != b.n
                    or a.cols != b.cols or a.code != b.code):
                return False
        return True

    cdef bint _overlaps(self) noexcept:
        """True if a written range (param or state) overlaps any other range of the call."""
        cdef Py_ssize_t i, k = 0
        cdef Seg *s
        cdef Py_ssize_t nb
        for i in range(self.count):
            s = &self.cur[i]
            nb = s.n * (4 if s.code == 0 else 8)
            self.ivals[k].lo = s.p; self.ivals[k].hi = s.p + nb; self.ivals[k].written = 1; k += 1
            self.ivals[k].lo = s.g; self.ivals[k].hi = s.g + nb; self.ivals[k].written = 0; k += 1
            if s.s1 != NULL:
                self.ivals[k].lo = s.s1; self.ivals[k].hi = s.s1 + nb
                self.ivals[k].written = 1; k += 1
            if s.s2 != NULL:
                self.ivals[k].lo = s.s2; self.ivals[k].hi = s.s2 + nb
                self.ivals[k].written = 1; k += 1
        qsort(self.ivals, k, sizeof(Interval), _cmp_interval)
        cdef char *end_all = NULL
        cdef char *end_written = NULL
        for i in range(k):
            if self.ivals[i].lo < end_written:
                return True
            if self.ivals[i].written and self.ivals[i].lo < end_all:
                return True
            if self.ivals[i].hi > end_all:
                end_all = self.ivals[i].hi
            if self.ivals[i].written and self.ivals[i].hi > end_written:
                end_written = self.ivals[i].hi
        return False

    cdef void _coalesce(self) noexcept:
        """Sort the segments by dtype and address and merge those that continue each other."""
        cdef Py_ssize_t i, r = -1
        cdef Seg *a
        cdef Seg *b
        cdef Py_ssize_t nb
        for i in range(self.count):
            self.runs[i] = self.cur[i]
        qsort(self.runs, self.count, sizeof(Seg), _cmp_seg)
        self.n_runs[0] = 0
        self.n_runs[1] = 0
        for i in range(self.count):
            b = &self.runs[i]
            if r >= 0:
                a = &self.runs[r]
                nb = a.n * (4 if a.code == 0 else 8)
                if (a.code == b.code and b.p == a.p + nb and b.g == a.g + nb
                        and (a.s1 == NULL or b.s1 == a.s1 + nb)
                        and (a.s2 == NULL or b.s2 == a.s2 + nb)):
                    a.n += b.n
                    continue
            r += 1
            self.runs[r] = b[0]
            self.n_runs[b.code] += 1
        for i in range(self.count):
            self.prev[i] = self.cur[i]
        self.prev_count = self.count

    def step(self, params, grads, s1, s2, double lr, double momentum=0.0, double beta2=0.0,
             double eps=0.0, double weight_decay=0.0, double lr_wd=0.0):
        """Validate everything, then update every array of ``params`` in place in one C call.

        ``s1``/``s2`` are the state dicts (None when the rule has fewer states). Returns DONE,
        or FALLBACK (nothing written) when an entry is not a float32/float64 C-contiguous
        ndarray (Python floats, other dtypes, strided views), a state entry is not an array
        like its param, or arrays overlap in memory (tied weights): the caller then applies
        the NumPy rules. Raises KeyError (missing grads/state key), TypeError (grad not an
        array, dtype mismatch), ValueError (shape mismatch, read-only param).
        """
        if self.busy:
            raise RuntimeError("this optimizer is already running an update (in another thread)")
        self.busy = True
        try:
            return self._step(params, grads, s1, s2, lr, momentum, beta2, eps, weight_decay,
                              lr_wd)
        finally:
            self._release()
            self.busy = False

    def reserve(self, params, grads, s1, s2):
        """Validate a call as :meth:`step` does, without writing anything: DONE if the compiled
        kernels can run it (a training pass may then apply the update itself, from
        :meth:`reserved_tables`), else FALLBACK. Raises as :meth:`step` does. After DONE the plan
        holds the call's arrays and counts as running an update (another thread's :meth:`step`
        or :meth:`reserve` raises RuntimeError) until :meth:`unreserve`."""
        if self.busy:
            raise RuntimeError("this optimizer is already running an update (in another thread)")
        self.busy = True
        rc = FALLBACK
        try:
            rc = self._validate(params, grads, s1, s2)
        finally:
            if rc != DONE:       # FALLBACK, or an error raised: not reserved
                self._release()
                self.busy = False
        self.reserved = rc == DONE
        return rc

    def reserved_tables(self, int code, bint per_array=False):
        """After :meth:`reserve` returned DONE: a capsule ("fastnn._optim.tables") of the
        ``fnn_optim_tables`` (optim.h) of the validated call, its arrays of dtype ``code``
        (0: float32, 1: float64): merged into segments as the one-thread step runs them, or with
        ``per_array`` one entry per (non-empty) array, in the params dict's order. Valid until
        :meth:`unreserve` (which keeps the arrays alive until then). None if the call cannot be
        run from the tables: arrays of the other dtype too, or a gradient the validation had to
        copy (strided or aliased: the copy would not see a later write of the gradient)."""
        if not self.reserved:
            raise RuntimeError("reserved_tables() needs a reserve() that returned DONE")
        if self.copied or self.n_runs[1 - code] != 0:
            return None
        cdef Py_ssize_t j, m = 0, first = self.n_runs[0] if code == 1 else 0
        if per_array:
            for j in range(self.count):
                self._table(j, &self.cur[j])      # (all of dtype code: checked above)
            m = self.count
        else:
            for j in range(self.n_runs[code]):
                self._table(j, &self.runs[first + j])
            m = self.n_runs[code]
        self.tables.n_tensors = m
        self.tables.p, self.tables.g, self.tables.n = self.tp, self.tg, self.tn
        self.tables.s1 = self.ts1 if self.n_states >= 1 else NULL
        self.tables.s2 = self.ts2 if self.n_states == 2 else NULL
        self.last_segments = m
        self.last_elements = self.total
        return PyCapsule_New(&self.tables, "fastnn._optim.tables", NULL)

    def unreserve(self):
        """End what :meth:`reserve` started (and release the arrays it held)."""
        self._release()
        self.reserved = False
        self.busy = False

    cdef void _hold(self, object a) noexcept:
        Py_INCREF(a)
        self.held[self.n_held] = <PyObject *>a
        self.n_held += 1

    cdef void _release(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self.n_held):
            _decref(self.held[i])
        self.n_held = 0

    cdef object _step(self, params, grads, s1, s2, double lr, double momentum, double beta2,
                      double eps, double weight_decay, double lr_wd):
        if self._validate(params, grads, s1, s2) != DONE:
            return FALLBACK
        self._run(lr, momentum, beta2, eps, weight_decay, lr_wd)
        self.last_segments = self.n_runs[0] + self.n_runs[1]
        self.last_elements = self.total
        return DONE

    cdef object _validate(self, params, grads, s1, s2):
        """Fill the tables (and hold the arrays) for this call: DONE, or FALLBACK."""
        cdef Py_ssize_t n = len(params)
        self._reserve(n)
        cdef Py_ssize_t count = 0, total = 0
        cdef list keep = None            # contiguous copies of strided or aliased grads
        cdef cnp.ndarray pa, ga, s1a, s2a
        cdef int typenum, code
        cdef Seg *s
        cdef int ns = self.n_states
        for key, p in params.items():
            if not cnp.PyArray_Check(p):
                return FALLBACK
            pa = <cnp.ndarray>p
            typenum = cnp.PyArray_TYPE(pa)
            if typenum == cnp.NPY_FLOAT:
                code = 0
            elif typenum == cnp.NPY_DOUBLE:
                code = 1
            else:
                return FALLBACK
            g = grads[key]
            if not cnp.PyArray_Check(g):
                raise TypeError("grads[%r] must be a numpy.ndarray like params[%r], got %s"
                                % (key, key, type(g).__name__))
            ga = <cnp.ndarray>g
            if cnp.PyArray_TYPE(ga) != typenum:
                raise TypeError("grads[%r] has dtype %s, expected %s (the dtype of params[%r])"
                                % (key, ga.dtype, pa.dtype, key))
            if not _same_shape(pa, ga):
                raise ValueError("grads[%r] has shape %s, expected %s (the shape of params[%r])"
                                 % (key, (<object>ga).shape, (<object>pa).shape, key))
            if not cnp.PyArray_ISWRITEABLE(pa):
                raise ValueError("params[%r] is read-only: the optimizer updates it in place"
                                 % (key,))
            if not (cnp.PyArray_IS_C_CONTIGUOUS(pa) and cnp.PyArray_ISALIGNED(pa)):
                return FALLBACK
            if ns >= 1:
                x = s1[key]
                if not _usable(x, typenum) or not _same_shape(pa, <cnp.ndarray>x):
                    return FALLBACK
                s1a = <cnp.ndarray>x
            if ns == 2:
                x = s2[key]
                if not _usable(x, typenum) or not _same_shape(pa, <cnp.ndarray>x):
                    return FALLBACK
                s2a = <cnp.ndarray>x
            if cnp.PyArray_SIZE(pa) == 0:
                continue
            if (not (cnp.PyArray_IS_C_CONTIGUOUS(ga) and cnp.PyArray_ISALIGNED(ga))
                    or cnp.PyArray_DATA(ga) == cnp.PyArray_DATA(pa)):
                ga = np.array(ga, order="C", copy=True)
                if keep is None:
                    keep = []
                keep.append(ga)
            if count >= self.cap:
                raise RuntimeError("params changed size during the update")
            self._hold(pa)
            self._hold(ga)
            if ns >= 1:
                self._hold(s1a)
            if ns == 2:
                self._hold(s2a)
            s = &self.cur[count]
            s.p = <char *>cnp.PyArray_DATA(pa)
            s.g = <char *>cnp.PyArray_DATA(ga)
            s.s1 = <char *>cnp.PyArray_DATA(s1a) if ns >= 1 else NULL
            s.s2 = <char *>cnp.PyArray_DATA(s2a) if ns == 2 else NULL
            s.n = cnp.PyArray_SIZE(pa)
            s.cols = (cnp.PyArray_DIMS(pa)[cnp.PyArray_NDIM(pa) - 1]
                      if cnp.PyArray_NDIM(pa) >= 2 else s.n)
            s.code = code
            total += s.n
            count += 1
        self.count = count
        self.total = total
        self.copied = keep is not None
        if not self._unchanged():
            if self._overlaps():
                self.prev_count = -1
                return FALLBACK
            self._coalesce()
        return DONE

    cdef int _run(self, double lr, double momentum, double beta2, double eps,
                  double weight_decay, double lr_wd) except -1:
        cdef fnn_optim_hparams hp
        hp.lr = lr
        hp.momentum = momentum
        hp.beta2 = beta2
        hp.eps = eps
        hp.weight_decay = weight_decay
        hp.lr_wd = lr_wd
        cdef int nt = get_num_threads()
        cdef int code, rc = 0
        cdef Py_ssize_t i, j, first = 0, m
        cdef Seg *s
        # One thread: the coalesced segments (a flat network in one pass). Two or more: the arrays
        # one by one with their row widths, which the two-thread split follows (see optim.h).
        cdef bint by_array = nt >= 2
        cdef Py_ssize_t *cols = self.tcols if by_array else NULL
        for code in range(2):
            m = 0
            if by_array:
                for i in range(self.count):
                    s = &self.cur[i]
                    if s.code == code:
                        self._table(m, s)
                        m += 1
            else:
                for j in range(self.n_runs[code]):
                    self._table(j, &self.runs[first + j])
                m = self.n_runs[code]
                first += m
            if m == 0:
                continue
            with nogil:
                if code == 0:
                    rc = fnn_optim_step_f32(self.kind, &hp, m, <float **>self.tp,
                                            <float **>self.tg,
                                            <float **>self.ts1 if self.n_states >= 1 else NULL,
                                            <float **>self.ts2 if self.n_states == 2 else NULL,
                                            self.tn, cols, nt)
                else:
                    rc = fnn_optim_step_f64(self.kind, &hp, m, <double **>self.tp,
                                            <double **>self.tg,
                                            <double **>self.ts1 if self.n_states >= 1 else NULL,
                                            <double **>self.ts2 if self.n_states == 2 else NULL,
                                            self.tn, cols, nt)
            if rc != 0:
                raise ValueError("unknown optimizer kind %d" % self.kind)
        return 0

    cdef inline void _table(self, Py_ssize_t j, const Seg *s) noexcept:
        self.tp[j] = s.p
        self.tg[j] = s.g
        self.ts1[j] = s.s1
        self.ts2[j] = s.s2
        self.tn[j] = s.n
        self.tcols[j] = s.cols


def _exact_divide_f64(a, d):
    """Test hook: ``a / d`` for float64 arrays of one shape, computed by the division the
    float64 AdaGrad/RMSprop/Adam/AdamW kernels use (csrc/optim_body.h, div_rn8 on AVX-512).
    Returns a new C-contiguous array; it must equal NumPy's ``a / d`` bit for bit."""
    if not isinstance(a, np.ndarray) or not isinstance(d, np.ndarray):
        raise TypeError("a and d must be numpy.ndarray, got %s and %s"
                        % (type(a).__name__, type(d).__name__))
    if a.dtype != np.float64 or d.dtype != np.float64:
        raise TypeError("a and d must have dtype float64, got %s and %s" % (a.dtype, d.dtype))
    if a.shape != d.shape:
        raise ValueError("a and d must have one shape, got %s and %s" % (a.shape, d.shape))
    cdef cnp.ndarray A = np.ascontiguousarray(a)
    cdef cnp.ndarray D = np.ascontiguousarray(d)
    cdef cnp.ndarray out = np.empty_like(A, order="C")
    cdef Py_ssize_t n = cnp.PyArray_SIZE(A)
    with nogil:
        fnn_div_exact_f64(<const double *>cnp.PyArray_DATA(A), <const double *>cnp.PyArray_DATA(D),
                          <double *>cnp.PyArray_DATA(out), n)
    return out


def _exact_divide_f64_uses_fma():
    """True if the float64 kernels divide with the FMA sequence (the AVX-512 path), False if
    with the hardware division (baseline/AVX2 paths, or FASTNN_SIMD capping the path)."""
    cdef double a[8]
    cdef double d[8]
    cdef double out[8]
    cdef int i
    for i in range(8):
        a[i] = 1.0
        d[i] = 3.0
    return fnn_div_exact_f64(a, d, out, 8) == 1
