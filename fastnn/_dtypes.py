"""dtype promotion shared by the Python layer classes."""
import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def compute_dtype(*arrays):
    """The dtype a layer computes in: NumPy's promotion of the inputs, as the book's code gets.

    float32 and float64 are computed natively. Integer/bool inputs promote with the float
    weights as NumPy would (to float64); float16 is computed in float32.

    Raises
    ------
    TypeError
        For complex, object or other non-real dtypes.
    """
    dt = np.result_type(*arrays)
    if dt in _FLOATS:
        return dt
    if dt.kind in "biu":
        return np.dtype(np.float64)
    if dt == np.float16:
        return np.dtype(np.float32)
    raise TypeError("expected real numeric arrays (float32/float64), got dtype %s" % dt)


def as_dtype(a, dtype):
    """a as an ndarray of dtype, without a copy when it already is one."""
    a = np.asarray(a)
    return a if a.dtype == dtype else a.astype(dtype)
