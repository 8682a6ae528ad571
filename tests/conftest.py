"""Shared fixtures: per-dtype tolerances and a thread-count fixture that restores the setting."""
import numpy as np
import pytest

import fastnn

# Tolerances of fast paths against the reference, per dtype.
TOL = {
    np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-13),
}


def assert_close(actual, desired, dtype=None, scale=1.0):
    """assert_allclose with the tolerance of dtype (default: desired's dtype), widened by scale."""
    dtype = np.dtype(dtype if dtype is not None else np.asarray(desired).dtype)
    tol = TOL.get(dtype, TOL[np.dtype(np.float64)])
    np.testing.assert_allclose(actual, desired, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def n_threads(request):
    """Run the test with fastnn (and BLAS) limited to 1 and to 2 threads."""
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(request.param)
    yield request.param
    fastnn.set_num_threads(old)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


def subprocess_env(**extra):
    """Environment for a child Python that must import the same fastnn as the tests (installed
    wheel or in-place build), never the uncompiled source tree: run it with a cwd outside the
    repository and this PYTHONPATH."""
    import os
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = pkg_parent + os.pathsep + os.environ.get("PYTHONPATH", "")
    return env


@pytest.fixture
def small_mnk():
    """A setter of the m·n·k up to which the GEMMs of fastnn._affine and fastnn._netstep take
    the BLAS's small kernels (csrc/gemm.h: larger ones split into blocks of it); restored after
    the test."""
    from fastnn import _affine, _netstep
    old = _affine._set_small_mnk(0), _netstep._set_small_mnk(0)
    _affine._set_small_mnk(old[0])
    _netstep._set_small_mnk(old[1])

    def set_both(v):
        _affine._set_small_mnk(v)
        _netstep._set_small_mnk(v)
    yield set_both
    _affine._set_small_mnk(old[0])
    _netstep._set_small_mnk(old[1])
