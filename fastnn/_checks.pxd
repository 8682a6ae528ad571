# Input validation shared by the Cython wrappers (inline: compiled into each module).
# Errors name the argument and say what was expected and what was given.
cimport numpy as cnp
import numpy as np

cnp.import_array()


cdef inline int float_code(object a, str name) except -1:
    """0 for a float32 ndarray, 1 for float64; TypeError for anything else."""
    if not isinstance(a, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray, got %s" % (name, type(a).__name__))
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if t == cnp.NPY_FLOAT:
        return 0
    if t == cnp.NPY_DOUBLE:
        return 1
    raise TypeError("%s must have dtype float32 or float64, got %s" % (name, a.dtype))


cdef inline cnp.ndarray contiguous(cnp.ndarray a):
    """a itself if C-contiguous and aligned, else a C-contiguous copy (never modifies a)."""
    if cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a):
        return a
    return np.ascontiguousarray(a)


cdef inline int check_same_dtype(cnp.ndarray a, str aname, cnp.ndarray b, str bname) except -1:
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(b):
        raise TypeError("%s and %s must have the same dtype, got %s and %s"
                        % (aname, bname, a.dtype, b.dtype))
    return 0


cdef inline int check_shape(cnp.ndarray a, str name, tuple expected) except -1:
    if (<object>a).shape != expected:
        raise ValueError("%s must have shape %s, got %s" % (name, expected, (<object>a).shape))
    return 0


cdef inline int check_output(object out, str name, tuple shape, int typenum) except -1:
    """out must be a writeable, C-contiguous ndarray of the given shape and dtype."""
    if not isinstance(out, np.ndarray):
        raise TypeError("%s must be a numpy.ndarray, got %s" % (name, type(out).__name__))
    cdef cnp.ndarray o = <cnp.ndarray>out
    if cnp.PyArray_TYPE(o) != typenum:
        raise TypeError("%s must have dtype %s, got %s"
                        % (name, np.dtype(cnp.PyArray_TypeObjectFromType(typenum)), o.dtype))
    if (<object>o).shape != shape:
        raise ValueError("%s must have shape %s, got %s" % (name, shape, (<object>o).shape))
    if not (cnp.PyArray_IS_C_CONTIGUOUS(o) and cnp.PyArray_ISALIGNED(o)):
        raise ValueError("%s must be C-contiguous" % name)
    if not cnp.PyArray_ISWRITEABLE(o):
        raise ValueError("%s must be writeable (it is read-only)" % name)
    return 0
