"""fastnn.layers.BatchNormalization (compiled) against the NumPy reference (the book's code)."""
import numpy as np
import pytest

import fastnn
from fastnn import _batchnorm, layers
from fastnn.reference import layers as ref
from fastnn.reference.gradient import numerical_gradient

# float32: ours accumulates in double, the reference in float32, so allow a few float32 ulps of
# the values' magnitude (outputs are O(1..10)); float64 agrees to rounding.
TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}
DTYPES = [np.float32, np.float64]


@pytest.fixture
def threads():
    old = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(old)


def _data(shape, dtype, seed, loc=0.0, scale=1.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale + loc).astype(dtype)
    D = int(np.prod(shape[1:]))
    gamma = (1.0 + 0.5 * rng.standard_normal(D)).astype(dtype)
    beta = rng.standard_normal(D).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dout


def _close(a, b, dtype, scale=1.0):
    tol = TOL[dtype]
    np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 7), (2, 3), (5, 17), (64, 100), (100, 100), (4096, 24),
                                   (3, 2, 4, 5), (8, 3, 5, 5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_train_forward_backward_matches_reference(dtype, shape, seed):
    x, gamma, beta, dout = _data(shape, dtype, seed, loc=1.5, scale=2.0)
    fast = layers.BatchNormalization(gamma, beta)
    slow = ref.BatchNormalization(gamma, beta)
    for step in range(3):  # running statistics accumulate over several steps
        xs = x + dtype(step)
        y, yr = fast.forward(xs), slow.forward(xs)
        assert y.dtype == yr.dtype == dtype and y.shape == shape
        _close(y, yr, dtype, scale=10)
        dx, dxr = fast.backward(dout), slow.backward(dout)
        assert dx.dtype == dxr.dtype and dx.shape == shape
        # dx is a difference of O(gamma/std * dout) terms: compare at that scale
        _close(dx, dxr, dtype, scale=10)
        _close(fast.dgamma, slow.dgamma, dtype, scale=shape[0])
        _close(fast.dbeta, slow.dbeta, dtype, scale=shape[0])
        assert fast.dgamma.dtype == slow.dgamma.dtype
    assert fast.running_mean.dtype == fast.running_var.dtype == np.float64
    # the reference sums float32 in float32 (error grows with N): compare at float32 precision
    rt = 2e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fast.running_mean, slow.running_mean, rtol=rt, atol=rt)
    np.testing.assert_allclose(fast.running_var, slow.running_var, rtol=rt, atol=rt)
    # test mode from the running statistics (float64: the book's test output is float64)
    yt, ytr = fast.forward(x, train_flg=False), slow.forward(x, train_flg=False)
    assert yt.dtype == ytr.dtype
    _close(yt, ytr, dtype, scale=10)
    assert fast.input_shape == slow.input_shape == shape
    assert fast.batch_size == slow.batch_size == shape[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_book_caches_and_shared_params(dtype):
    x, gamma, beta, dout = _data((6, 4), dtype, 3)
    fast, slow = layers.BatchNormalization(gamma, beta), ref.BatchNormalization(gamma, beta)
    assert fast.gamma is gamma and fast.beta is beta
    assert fast.running_mean is None and fast.xc is None and fast.std is None
    with pytest.raises(AttributeError):
        fast.xn
    fast.forward(x), slow.forward(x)
    for name in ("xc", "std", "xn"):
        a, b = getattr(fast, name), getattr(slow, name)
        assert a.dtype == b.dtype and a.shape == b.shape
        _close(a, b, dtype)
    # parameters are used by reference: in-place updates are seen by the next call
    gamma *= 2
    beta += 1
    _close(fast.forward(x), slow.forward(x), dtype, scale=10)
    fast.backward(dout)
    grads = {"gamma1": fast.dgamma}
    assert grads["gamma1"] is fast.dgamma


def test_running_statistics_bitwise_as_reference():
    """The running-statistics update reproduces NumPy's rounding of the book's expression."""
    rng = np.random.default_rng(5)
    for dtype in DTYPES:
        old = rng.standard_normal(257)
        stat = rng.standard_normal(257).astype(dtype)
        for m in (0.9, 0.99, 0.5, 0.0, 1.0):
            expect = m * old + (1 - m) * stat
            got = _batchnorm.running_update(old, stat, m)
            assert got.dtype == np.float64
            np.testing.assert_array_equal(got, expect)
            assert got is not old


def test_running_statistics_start_at_zero_and_test_mode_before_training():
    x, gamma, beta, _ = _data((4, 3), np.float64, 7)
    fast, slow = layers.BatchNormalization(gamma, beta), ref.BatchNormalization(gamma, beta)
    y, yr = fast.forward(x, train_flg=False), slow.forward(x, train_flg=False)
    np.testing.assert_allclose(y, yr, rtol=1e-12, atol=1e-9)  # xn = 1000 x: large values
    np.testing.assert_array_equal(fast.running_var, np.zeros(3))
    fast.forward(x), slow.forward(x)
    np.testing.assert_allclose(fast.running_mean, 0.1 * x.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(fast.running_var, slow.running_var, rtol=1e-13)


def test_given_running_stats_and_momentum():
    x, gamma, beta, _ = _data((9, 5), np.float32, 8)
    rm, rv = np.full(5, 0.5), np.full(5, 2.0)
    fast = layers.BatchNormalization(gamma, beta, momentum=0.8, running_mean=rm.copy(),
                                     running_var=rv.copy())
    slow = ref.BatchNormalization(gamma, beta, momentum=0.8, running_mean=rm.copy(),
                                  running_var=rv.copy())
    fast.forward(x), slow.forward(x)
    np.testing.assert_allclose(fast.running_mean, slow.running_mean, rtol=1e-6)
    np.testing.assert_allclose(fast.running_var, slow.running_var, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_of_one(dtype):
    x, gamma, beta, dout = _data((1, 8), dtype, 9)
    fast, slow = layers.BatchNormalization(gamma, beta), ref.BatchNormalization(gamma, beta)
    y = fast.forward(x)
    np.testing.assert_array_equal(y, slow.forward(x))      # variance 0: y = beta
    np.testing.assert_array_equal(y, np.broadcast_to(beta, (1, 8)))
    dx = fast.backward(dout)
    np.testing.assert_array_equal(dx, np.zeros_like(dx))   # as the reference: exactly 0
    np.testing.assert_array_equal(slow.backward(dout), dx)
    np.testing.assert_array_equal(fast.running_var, slow.running_var)


def test_numerical_gradient_of_reference_network_style():
    """dx, dgamma, dbeta against central differences of the reference loss sum(y * w)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((5, 4))
    gamma, beta = rng.standard_normal(4) + 1.0, rng.standard_normal(4)
    w = rng.standard_normal((5, 4))
    fast = layers.BatchNormalization(gamma, beta)
    fast.forward(x)
    dx = fast.backward(w)

    def loss(_):
        return np.sum(ref.BatchNormalization(gamma, beta).forward(x) * w)

    np.testing.assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fast.dgamma, numerical_gradient(loss, gamma), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(fast.dbeta, numerical_gradient(loss, beta), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1100, 1000), (2100, 1003)])
def test_threads_bitwise_identical(dtype, shape, threads):
    # above the serial threshold (1M elements), D not a multiple of the 16-feature split unit;
    # outputs of >= 8 MiB take the streaming-store path (unaligned rows: peeled stores)
    x, gamma, beta, dout = _data(shape, dtype, 12, loc=3.0)
    results = []
    for n in (1, 2):
        threads(n)
        layer = layers.BatchNormalization(gamma, beta)
        y = layer.forward(x)
        dx = layer.backward(dout)
        yt = layer.forward(x, train_flg=False)
        results.append((y, dx, layer.dgamma, layer.dbeta, layer.running_mean, layer.running_var, yt))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    slow = ref.BatchNormalization(gamma, beta)
    _close(results[0][0], slow.forward(x), dtype, scale=10)
    _close(results[0][1], slow.backward(dout), dtype, scale=10)


def test_large_offset_variance_is_accurate():
    """Shifted sums: no cancellation for data far from zero (float32, mean 1e4, std 1)."""
    rng = np.random.default_rng(13)
    x = (1e4 + rng.standard_normal((2048, 8))).astype(np.float32)
    layer = layers.BatchNormalization(np.ones(8, np.float32), np.zeros(8, np.float32))
    layer.forward(x)
    exact = np.sqrt(x.astype(np.float64).var(axis=0) + 1e-6)
    np.testing.assert_allclose(layer.std, exact, rtol=1e-6)


def test_workspaces_reused_and_outputs_fresh():
    x, gamma, beta, dout = _data((16, 32), np.float32, 14)
    layer = layers.BatchNormalization(gamma, beta)
    y1 = layer.forward(x)
    bufs = (layer._mean, layer._var, layer._std)
    dg1 = (layer.backward(dout), layer.dgamma)[1]
    y2 = layer.forward(x)
    assert y2 is not y1 and not np.shares_memory(y1, y2)
    assert all(a is b for a, b in zip(bufs, (layer._mean, layer._var, layer._std)))
    layer.backward(dout)
    assert layer.dgamma is not dg1
    np.testing.assert_array_equal(y1, y2)


def test_mixed_dtypes_promote_as_numpy():
    x, gamma, beta, dout = _data((10, 6), np.float32, 15)
    g64, b64 = gamma.astype(np.float64), beta.astype(np.float64)
    fast, slow = layers.BatchNormalization(g64, b64), ref.BatchNormalization(g64, b64)
    y, yr = fast.forward(x), slow.forward(x)
    assert y.dtype == yr.dtype == np.float64
    np.testing.assert_allclose(y, yr, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.running_var, slow.running_var, rtol=1e-6)
    dx, dxr = fast.backward(dout), slow.backward(dout)
    assert dx.dtype == dxr.dtype
    np.testing.assert_allclose(dx, dxr, rtol=1e-4, atol=1e-4)
    # integer input is computed in float64, as NumPy promotes it
    xi = np.arange(60).reshape(10, 6)
    np.testing.assert_allclose(layers.BatchNormalization(g64, b64).forward(xi),
                               ref.BatchNormalization(g64, b64).forward(xi), rtol=1e-12)


def test_non_contiguous_input():
    x, gamma, beta, dout = _data((12, 10), np.float64, 16)
    xt = np.asfortranarray(x)
    _close(layers.BatchNormalization(gamma, beta).forward(xt[:, :]),
           ref.BatchNormalization(gamma, beta).forward(x), np.float64)


def test_bad_input():
    gamma, beta = np.ones(6), np.zeros(6)
    layer = layers.BatchNormalization(gamma, beta)
    with pytest.raises(RuntimeError, match="before a training-mode forward"):
        layer.backward(np.ones((2, 6)))
    with pytest.raises(ValueError, match="2-D .* or 4-D"):
        layer.forward(np.ones((2, 3, 2)))
    with pytest.raises(ValueError, match="2-D .* or 4-D"):
        layer.forward(np.ones(6))
    with pytest.raises(ValueError, match="gamma must have 6 values"):
        layers.BatchNormalization(np.ones(5), beta).forward(np.ones((2, 6)))
    with pytest.raises(ValueError, match="beta must have 6 values"):
        layers.BatchNormalization(gamma, np.ones(7)).forward(np.ones((2, 6)))
    with pytest.raises(ValueError, match="per feature over C\\*H\\*W = 6"):
        layers.BatchNormalization(np.ones(3), np.zeros(3)).forward(np.ones((2, 3, 1, 2)))
    with pytest.raises(TypeError, match="float32 or float64|real numeric"):
        layer.forward(np.ones((2, 6), dtype=complex))
    with pytest.raises(ValueError, match="at least one sample"):
        layer.forward(np.ones((0, 6)))
    layer.forward(np.random.rand(4, 6))
    with pytest.raises(ValueError, match="dout must have the shape"):
        layer.backward(np.ones((3, 6)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        layer.backward(np.ones((4, 5)))
    with pytest.raises(ValueError, match="dout must have the shape"):
        layer.backward(np.ones((4, 6, 1)))


def test_wrapper_validation():
    x = np.ones((4, 3), np.float32)
    g = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        _batchnorm.forward_train(x.astype(np.int32), g, g)
    with pytest.raises(TypeError, match="gamma and x must have the same dtype"):
        _batchnorm.forward_train(x, g.astype(np.float64), g)
    with pytest.raises(ValueError, match="out must have shape"):
        _batchnorm.forward_train(x, g, g, out=np.empty((3, 3), np.float32))
    with pytest.raises(ValueError, match="must not overlap x"):
        _batchnorm.forward_train(x, g, g, out=x)
    ro = np.empty(3, np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="mean must be writeable"):
        _batchnorm.forward_train(x, g, g, mean=ro)
    with pytest.raises(TypeError, match="running_mean must be a float64"):
        _batchnorm.forward_infer(x, g, g, np.zeros(3, np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="dout must have shape"):
        _batchnorm.backward(np.ones((4, 4), np.float32), x, g, g, g)


def test_nan_propagates():
    x = np.random.default_rng(17).standard_normal((5, 3))
    x[2, 1] = np.nan
    layer = layers.BatchNormalization(np.ones(3), np.zeros(3))
    y = layer.forward(x)
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()


def test_show_config_reports_compiled():
    from fastnn._config import implementations
    assert implementations()["layers.BatchNormalization"] == "compiled"


def test_4d_forward_then_2d_dout_gives_4d_dx_like_the_book():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 2, 3, 3))
    D = 18
    fast = layers.BatchNormalization(np.ones(D), np.zeros(D))
    slow = ref.BatchNormalization(np.ones(D), np.zeros(D))
    fast.forward(x)
    slow.forward(x)
    dout = rng.standard_normal((4, D))
    dx, dx_ref = fast.backward(dout), slow.backward(dout)
    assert dx.shape == dx_ref.shape == x.shape
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)


def test_float32_running_statistics_follow_numpys_float32_expression():
    # a float32 network keeps float32 running statistics: the update must be the book's
    # expression evaluated by NumPy in float32
    rng = np.random.default_rng(7)
    D = 37
    rm0 = rng.standard_normal(D).astype(np.float32)
    rv0 = rng.random(D).astype(np.float32)
    layer = layers.BatchNormalization(np.ones(D, np.float32), np.zeros(D, np.float32),
                                      momentum=0.9, running_mean=rm0.copy(),
                                      running_var=rv0.copy())
    x = rng.standard_normal((16, D)).astype(np.float32)
    layer.forward(x)
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    var = ((x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)) ** 2).mean(axis=0)
    var = var.astype(np.float32)
    assert layer.running_mean.dtype == np.float32 and layer.running_var.dtype == np.float32
    np.testing.assert_array_equal(layer.running_mean, 0.9 * rm0 + (1 - 0.9) * mean)
    np.testing.assert_allclose(layer.running_var, 0.9 * rv0 + (1 - 0.9) * var, rtol=1e-6)


_ISA_SCRIPT = r"""
import hashlib
import numpy as np
from fastnn import _batchnorm, _runtime, layers
print(_runtime.simd_path())
h = hashlib.sha256()
for dt in (np.float32, np.float64):
    shapes = [(N, D) for N in (1, 2, 5, 100)
              for D in range(1, 141)]  # every tail, register blocks of 1 to 8 units and two blocks
    for N, D in shapes + [(1000, 65), (1000, 130)]:   # and above 256 KB: the row sweeps
        rng = np.random.default_rng(1000 * N + D)
        x = (rng.standard_normal((N, D)) * 3 + 5).astype(dt)
        g, b = rng.random(D).astype(dt), rng.random(D).astype(dt)
        y, mean, var, std = (np.empty_like(x), np.empty(D, dt), np.empty(D, dt),
                             np.empty(D, dt))
        _batchnorm.forward_train(x, g, b, 1e-7, y, mean, var, std)
        dx, dgamma, dbeta = _batchnorm.backward(rng.standard_normal((N, D)).astype(dt), x, g,
                                                mean, std)
        aff = layers.Affine(rng.standard_normal((3, D)).astype(dt), b)
        out = aff.forward(rng.standard_normal((N, 3)).astype(dt))
        aff.backward(x)
        for a in (y, mean, var, std, dx, dgamma, dbeta, out, aff.db):
            h.update(a.tobytes())
print(h.hexdigest())
"""


def test_avx512_copies_match_the_avx2_copies_bit_for_bit():
    """The AVX-512 batch-norm and bias-gradient sums (accumulators in registers) make the same
    additions in the same order as the plain loops of the AVX2 copy (both with FMA): the same
    bits for every width's tail and register-block split."""
    import subprocess
    import sys

    from conftest import subprocess_env

    from fastnn import _runtime
    if _runtime.simd_cpu() != "AVX-512":
        pytest.skip("needs an AVX-512 CPU")
    envs = [subprocess_env(), subprocess_env(FASTNN_SIMD="avx2")]
    envs[0].pop("FASTNN_SIMD", None)        # (the suite may run with a cap)
    runs = [subprocess.run([sys.executable, "-c", _ISA_SCRIPT], env=env, capture_output=True,
                           text=True, cwd="/") for env in envs]
    for r in runs:
        assert r.returncode == 0, r.stderr
    (path0, digest0), (path1, digest1) = (r.stdout.split() for r in runs)
    assert (path0, path1) == ("AVX-512", "AVX2+FMA")
    assert digest0 == digest1
