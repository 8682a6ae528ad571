"""fastnn.layers.Dropout and the counter-based mask generator (issue 4).

The oracle is fastnn.reference.dropout_rng (NumPy implementation of the same generator):
masks and outputs must be bit-for-bit equal. Statistical checks use 5-sigma bounds, so they
fail with negligible probability for a good generator (and are deterministic: fixed seeds).
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env

import fastnn
from fastnn import _activations, _dropout
from fastnn.layers import Dropout
from fastnn.reference import dropout_rng as R
from fastnn.reference.dropout_rng import CounterDropout

DTYPES = [np.float32, np.float64]


@pytest.fixture
def threads():
    """Set the thread count inside a test; restored afterwards."""
    old = fastnn.get_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(old)


def keep_mask(bits, n):
    return R.unpack_mask(bits, (n,))


# --------------------------------------------------------------------------- the generator

def test_mix64_is_splitmix64():
    # first outputs of SplitMix64 seeded with 0 (Vigna's reference implementation)
    assert R.mix64_int(R.GAMMA) == 0xE220A8397B1DCDAF
    assert R.mix64_int(2 * R.GAMMA) == 0x6E789E6AA1B965F4
    z = np.array([R.GAMMA, (2 * R.GAMMA) % 2 ** 64], dtype=np.uint64)
    assert R.mix64(z).tolist() == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


@pytest.mark.parametrize("n", [0, 1, 3, 4, 31, 32, 33, 63, 64, 65, 1000, 4099])
@pytest.mark.parametrize("seed", [0, 1, 2 ** 64 - 1, 0xDEADBEEF12345678])
def test_kernel_mask_equals_reference(n, seed):
    for thr in [0, 1, 2 ** 31, R.threshold(0.3), R.threshold(0.9), 7 * 65536 + 3,
                2 ** 32 - 1, 2 ** 32]:
        ref = R.pack_mask(R.uniforms(seed, n) >= np.uint64(thr))
        assert np.array_equal(_dropout.dropout_mask_bits(n, seed, thr), ref)
        x = np.arange(n, dtype=np.float32) - 7
        y, bits = _dropout.dropout_forward(x, seed, thr, 1.0)
        assert np.array_equal(bits, ref), (n, seed, thr)
        assert np.array_equal(y, x * keep_mask(ref, n))


@pytest.mark.parametrize("nt", [1, 2])
def test_rare_tie_path_matches_reference(threads, nt):
    """Elements whose high 16 bits equal the threshold's are decided by the secondary stream
    (probability 2^-16 each): a 2M-element mask has ~30 of them."""
    threads(nt)
    n = 2_000_003
    for thr in [R.threshold(0.3), 7 * 65536 + 3, 2 ** 32 - 1, 40000 * 65536]:
        u = R.uniforms(12345, n)
        ties = int(((u >> np.uint64(16)) == np.uint64(thr >> 16)).sum())
        assert ties > 5
        ref = R.pack_mask(u >= np.uint64(thr))
        for dt in DTYPES:
            x = np.linspace(-1, 1, n, dtype=dt)
            y, bits = _dropout.dropout_forward(x, 12345, thr, 1.0)
            assert np.array_equal(bits, ref)
            assert np.array_equal(y, x * keep_mask(ref, n))


def aligned_empty(n, dtype, align=64):
    """An n-element array whose data starts on an `align`-byte boundary."""
    item = np.dtype(dtype).itemsize
    raw = np.empty(n * item + align, dtype=np.uint8)
    off = (-raw.__array_interface__["data"][0]) % align
    return raw[off:off + n * item].view(dtype)


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_streaming_stores_path(threads, nt, dtype):
    """Outputs >= 8 MB and 64-byte aligned are written with non-temporal stores."""
    threads(nt)
    n = 3 * 1024 * 1024 + 17
    x = np.linspace(-3, 3, n).astype(dtype)
    thr = R.threshold(0.35)
    m = R.uniforms(5, n) >= np.uint64(thr)
    y = aligned_empty(n, dtype)
    _, bits = _dropout.dropout_forward(x, 5, thr, 1.0 / 0.65, out=y)
    assert np.array_equal(bits, R.pack_mask(m))
    assert np.array_equal(y, x * m * dtype(1.0 / 0.65))
    dx = aligned_empty(n, dtype)
    _dropout.dropout_backward(x, bits, 2.0, out=dx)
    assert np.array_equal(dx, x * m * dtype(2.0))
    # misaligned output of the same size: normal stores, same values
    y2 = aligned_empty(n + 1, dtype)[1:]
    _dropout.dropout_forward(x, 5, thr, 1.0 / 0.65, out=y2)
    assert np.array_equal(y2, y)


_ISA_SCRIPT = r"""
import numpy as np
from fastnn import _activations, _dropout, _runtime
from fastnn.reference import dropout_rng as R
print(_runtime.simd_path())
for n in (5, 97, 300_001):
    for thr in (R.threshold(0.5), R.threshold(0.3), 7 * 65536 + 3, 2 ** 32):
        ref = R.pack_mask(R.uniforms(99, n) >= np.uint64(thr))
        for dt in (np.float32, np.float64):
            x = np.linspace(-1, 1, n, dtype=dt)
            y, bits = _dropout.dropout_forward(x, 99, thr, 1.0 / 0.7)
            assert np.array_equal(bits, ref)
            m = R.unpack_mask(bits, (n,))
            assert np.array_equal(y, x * m * dt(1.0 / 0.7))
            assert np.array_equal(_dropout.dropout_backward(x, bits, 2.0), x * m * dt(2.0))
for dt in (np.float32, np.float64):     # the one-pass ReLU-then-Dropout kernels
    x = np.array([1.5, -0.0, 0.0, -2.0, np.nan, np.inf, -np.inf] * 15, dtype=dt)
    y, mask, bits, dx = _dropout.relu_dropout(x, 4, R.threshold(0.3), 1.5, dout=x[::-1])
    r, rmask = _activations.relu_forward(x)
    y2, bits2 = _dropout.dropout_forward(r, 4, R.threshold(0.3), 1.5)
    d2 = _activations.relu_backward(_dropout.dropout_backward(x[::-1].copy(), bits2, 1.5), rmask)
    assert np.array_equal(bits, bits2) and np.array_equal(mask, rmask)
    assert y.tobytes() == y2.tobytes() and dx.tobytes() == d2.tobytes()
n = 3 * 1024 * 1024 + 5          # >= 8 MB, aligned: the streaming-store path
raw = np.empty(8 * n + 64, dtype=np.uint8)
off = (-raw.__array_interface__["data"][0]) % 64
for dt in (np.float32, np.float64):
    x = np.linspace(-1, 1, n, dtype=dt)
    y = raw[off:off + n * np.dtype(dt).itemsize].view(dt)
    _, bits = _dropout.dropout_forward(x, 3, R.threshold(0.5), 1.0, out=y)
    m = R.uniforms(3, n) >= np.uint64(R.threshold(0.5))
    assert np.array_equal(bits, R.pack_mask(m)) and np.array_equal(y, x * m)
print("ok")
"""


@pytest.mark.parametrize("isa", ["baseline", "avx2"])
def test_every_instruction_set_gives_the_same_masks(isa):
    env = subprocess_env(FASTNN_SIMD=isa)
    res = subprocess.run([sys.executable, "-c", _ISA_SCRIPT], env=env, capture_output=True,
                         text=True, cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok")


# --------------------------------------------------------------------------- layer vs reference

SHAPES = [(7,), (1, 10), (100, 100), (2, 3, 8, 8), (33, 65)]


def _with_special_values(n, dtype, seed):
    """n values: normal ones of both signs, and +-0, +-inf, NaN, subnormals in between."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(dtype).tiny / 4,
                        -np.finfo(dtype).tiny / 4], dtype=dtype)
    pick = rng.random(n) < 0.2
    x[pick] = rng.choice(special, int(pick.sum()))
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 31, 32, 33, 100, 1000, 10_007])
@pytest.mark.parametrize("ratio, scale", [(0.15, 1.0), (0.5, 2.0), (0.0, 1.0), (1.0, 1.0),
                                          (0.3, 1.0 / 0.7)])
def test_relu_dropout_kernels_equal_the_two_layers_kernels(dtype, n, ratio, scale):
    # the compiled pass's one-pass kernels for a Relu -> Dropout pair: bitwise the two layers'
    # kernels in turn (NaN, signed zeros, infinities included), forward and backward
    x = _with_special_values(n, dtype, n)
    dout = _with_special_values(n, dtype, n + 1)
    thr = R.threshold(ratio)
    y, mask, bits, dx = _dropout.relu_dropout(x, 12345, thr, scale, dout=dout)
    r, relu_mask = _activations.relu_forward(x)
    y2, bits2 = _dropout.dropout_forward(r, 12345, thr, scale)
    dx2 = _activations.relu_backward(_dropout.dropout_backward(dout, bits2, scale), relu_mask)
    assert np.array_equal(bits, bits2)
    assert np.array_equal(mask, relu_mask)
    assert y.dtype == dx.dtype == dtype
    assert y.tobytes() == y2.tobytes()          # bitwise: NaN payloads and zero signs too
    assert dx.tobytes() == dx2.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.5, 0.77, 1.0])
@pytest.mark.parametrize("inverted", [False, True])
def test_layer_equals_reference(dtype, shape, ratio, inverted):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    np.random.seed(11)
    fast = Dropout(ratio, inverted=inverted)
    outs_f = [fast.forward(x), fast.backward(dout), fast.forward(x, train_flg=False)]
    mask_f = fast.mask.copy()
    np.random.seed(11)
    ref = CounterDropout(ratio, inverted=inverted)
    outs_r = [ref.forward(x), ref.backward(dout), ref.forward(x, train_flg=False)]
    assert fast.last_seed == ref.last_seed
    assert mask_f.dtype == np.bool_ and mask_f.shape == shape
    assert np.array_equal(mask_f, ref.mask)
    for a, b in zip(outs_f, outs_r):
        assert a.dtype == b.dtype == dtype
        assert np.array_equal(a, b)


@pytest.mark.parametrize("nt", [1, 2])
def test_explicit_seed_schedule_equals_reference(threads, nt):
    threads(nt)
    x = np.random.default_rng(0).standard_normal((1200, 1000)).astype(np.float32)  # parallel
    fast, ref = Dropout(0.4, seed=2024), CounterDropout(0.4, seed=2024)
    for _ in range(3):
        assert np.array_equal(fast.forward(x), ref.forward(x))
        assert fast.last_seed == ref.last_seed
        assert np.array_equal(fast.backward(x), ref.backward(x))


def test_threads_give_identical_masks_and_outputs(threads):
    x = np.random.default_rng(1).standard_normal((3, 1_000_003)).astype(np.float32)
    res = {}
    for nt in (1, 2):
        threads(nt)
        for inverted in (False, True):
            d = Dropout(0.3, inverted=inverted, seed=77)
            y = d.forward(x)
            res[nt, inverted] = (y.copy(), d.mask.copy(), d.backward(x).copy())
    for inverted in (False, True):
        for a, b in zip(res[1, inverted], res[2, inverted]):
            assert np.array_equal(a, b)


def test_np_random_seed_reproduces_a_run():
    x = np.ones((50, 40))

    def run():
        d = Dropout(0.5)
        return [d.forward(x).copy() for _ in range(3)]

    np.random.seed(5)
    a = run()
    np.random.seed(5)
    b = run()
    np.random.seed(6)
    c = run()
    for u, v in zip(a, b):
        assert np.array_equal(u, v)
    assert not np.array_equal(a[0], a[1])          # consecutive calls differ
    assert not np.array_equal(a[0], c[0])          # another global seed differs


def test_each_training_forward_draws_one_seed_from_numpy():
    np.random.seed(8)
    Dropout().forward(np.ones(10))
    after = np.random.rand()
    np.random.seed(8)
    np.random.random_sample()
    assert np.random.rand() == after
    # test mode and explicit seeds leave NumPy's generator alone
    np.random.seed(8)
    Dropout().forward(np.ones(10), train_flg=False)
    Dropout(seed=3).forward(np.ones(10))
    assert np.random.rand() == np.random.RandomState(8).rand()


def test_explicit_seed_is_reproducible_and_calls_differ():
    x = np.ones(5000)
    a, b = Dropout(0.5, seed=1), Dropout(0.5, seed=1)
    ma = [a.forward(x).copy() for _ in range(3)]
    mb = [b.forward(x).copy() for _ in range(3)]
    assert all(np.array_equal(u, v) for u, v in zip(ma, mb))
    assert not np.array_equal(ma[0], ma[1]) and not np.array_equal(ma[1], ma[2])
    assert not np.array_equal(ma[0], Dropout(0.5, seed=2).forward(x))


# --------------------------------------------------------------------------- statistics

@pytest.mark.parametrize("n", [1000, 100_003, 2_000_000])
@pytest.mark.parametrize("ratio", [0.1, 0.3333, 0.5, 0.9])
def test_keep_rate_within_5_sigma(n, ratio):
    d = Dropout(ratio, seed=n)
    for _ in range(2):
        d.forward(np.ones(n, dtype=np.float32))
        p = 1.0 - ratio
        sigma = np.sqrt(p * (1 - p) / n)
        assert abs(d.mask.mean() - p) < 5 * sigma


def _corr(a, b):
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    a -= a.mean()
    b -= b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.mark.parametrize("ratio", [0.5, 0.2])
def test_neighbouring_elements_are_uncorrelated(ratio):
    n = 1 << 21
    m = Dropout(ratio, seed=9)
    m.forward(np.ones(n, dtype=np.float32))
    mask = m.mask
    bound = 5 / np.sqrt(n)
    # lags inside a hash (1-3), across hashes and mask words (4, 16, 31, 32, 33, 64), farther
    for lag in [1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 1024]:
        assert abs(_corr(mask[:-lag], mask[lag:])) < bound, lag
    # the four positions sharing a hash: every 4-bit pattern equally likely (chi-square, 15 dof)
    q = mask[: n - n % 4].reshape(-1, 4).astype(np.int64)
    codes = q @ np.array([1, 2, 4, 8])
    p = 1 - ratio
    probs = np.array([np.prod([p if (c >> k) & 1 else 1 - p for k in range(4)]) for c in range(16)])
    counts = np.bincount(codes, minlength=16)
    expected = probs * codes.size
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 50      # P(chi2_15 > 50) ~ 1e-5


def test_rows_and_columns_are_uncorrelated():
    d = Dropout(0.5, seed=4)
    d.forward(np.ones((2048, 1024), dtype=np.float32))
    m = d.mask
    bound = 5 / np.sqrt(m.size)
    assert abs(_corr(m[:-1], m[1:])) < bound          # consecutive rows
    assert abs(_corr(m[:, :-1], m[:, 1:])) < bound    # consecutive columns
    # per-row keep counts ~ Binomial(1024, 0.5): their variance matches (no row effect)
    counts = m.sum(axis=1)
    var = counts.var()
    assert abs(var / 256.0 - 1) < 5 * np.sqrt(2 / 2047)


def test_consecutive_calls_and_seeds_are_uncorrelated():
    n = 1 << 20
    x = np.ones(n, dtype=np.float32)
    bound = 5 / np.sqrt(n)
    d = Dropout(0.5, seed=0)
    masks = []
    for _ in range(4):
        d.forward(x)
        masks.append(d.mask.copy())
    for i in range(3):
        assert abs(_corr(masks[i], masks[i + 1])) < bound
    # raw consecutive seeds s, s+1 (and shifted by one element) through the generator
    for s in [0, 1, 2 ** 63]:
        a = R.uniforms(s, n) >= np.uint64(2 ** 31)
        b = R.uniforms(s + 1, n) >= np.uint64(2 ** 31)
        assert abs(_corr(a, b)) < bound
        assert abs(_corr(a[1:], b[:-1])) < bound
    # different layers drawing seeds from NumPy in turn
    np.random.seed(0)
    d1, d2 = Dropout(0.5), Dropout(0.5)
    d1.forward(x)
    d2.forward(x)
    assert abs(_corr(d1.mask, d2.mask)) < bound


def test_uniforms_are_uniform():
    u = R.uniforms(31337, 1 << 20).astype(np.float64) / 2 ** 32
    counts = np.histogram(u, bins=64, range=(0, 1))[0]
    expected = u.size / 64
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 120     # 63 dof; P(chi2 > 120) ~ 2e-5


# --------------------------------------------------------------------------- semantics

@pytest.mark.parametrize("dtype", DTYPES)
def test_book_semantics(dtype):
    x = np.random.default_rng(2).standard_normal((64, 50)).astype(dtype)
    d = Dropout(0.3)
    y = d.forward(x)
    assert y.dtype == dtype and y.shape == x.shape
    assert np.array_equal(y, x * d.mask)                 # no rescaling
    m = d.mask.copy()
    t = d.forward(x, train_flg=False)
    assert t.dtype == dtype
    assert np.array_equal(t, x * (1.0 - 0.3))
    assert np.array_equal(d.mask, m)                     # test mode keeps the mask
    dout = np.random.default_rng(3).standard_normal(x.shape).astype(dtype)
    assert np.array_equal(d.backward(dout), dout * m)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverted_semantics(dtype):
    x = np.random.default_rng(2).standard_normal((64, 50)).astype(dtype)
    d = Dropout(0.25, inverted=True)
    y = d.forward(x)
    tol = dict(rtol=1e-6) if dtype == np.float32 else dict(rtol=1e-15)
    np.testing.assert_allclose(y, x * d.mask / 0.75, **tol)
    assert d.forward(x, train_flg=False) is x
    np.testing.assert_allclose(d.backward(x), x * d.mask / 0.75, **tol)


def test_ratio_0_and_1():
    x = np.random.default_rng(0).standard_normal((10, 33)).astype(np.float32)
    d0 = Dropout(0.0)
    assert np.array_equal(d0.forward(x), x) and d0.mask.all()
    assert np.array_equal(d0.forward(x, train_flg=False), x)
    for inverted in (False, True):
        d1 = Dropout(1.0, inverted=inverted)
        y = d1.forward(x)
        assert not d1.mask.any()
        assert np.array_equal(y, np.zeros_like(x)) and y.dtype == np.float32
        assert np.array_equal(d1.backward(x), np.zeros_like(x))
    assert np.array_equal(Dropout(1.0).forward(x, train_flg=False), np.zeros_like(x))


def test_nan_and_inf_propagate_as_in_the_book():
    x = np.array([np.nan, np.inf, -np.inf, -1.0] * 16)
    d = Dropout(0.5, seed=0)
    y = d.forward(x)
    with np.errstate(invalid="ignore"):
        expected = x * d.mask
    np.testing.assert_array_equal(y, expected)           # NaN where NaN/Inf were dropped
    assert np.array_equal(np.signbit(y), np.signbit(expected))   # -1 * 0 = -0.0


def test_empty_and_4d_input():
    d = Dropout(0.5)
    for shape in [(0,), (0, 5), (3, 0, 2, 2)]:
        x = np.ones(shape, dtype=np.float32)
        y = d.forward(x)
        assert y.shape == shape and y.dtype == np.float32
        assert d.mask.shape == shape and d.mask.dtype == np.bool_
        assert d.backward(x).shape == shape
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 7))
    y = d.forward(x)
    assert y.shape == x.shape and np.array_equal(y, x * d.mask)


def test_integer_and_noncontiguous_input():
    d = Dropout(0.5, seed=1)
    y = d.forward(np.arange(12).reshape(3, 4))
    assert y.dtype == np.float64 and np.array_equal(y, np.arange(12).reshape(3, 4) * d.mask)
    x = np.random.default_rng(0).standard_normal((40, 30)).astype(np.float32)
    a = Dropout(0.5, seed=3).forward(x.T)
    b = Dropout(0.5, seed=3).forward(np.ascontiguousarray(x.T))
    assert np.array_equal(a, b)


def test_outputs_are_fresh_arrays_even_when_memory_is_recycled():
    x = np.ones((1024, 1024), dtype=np.float32)      # 4 MB: goes through the buffer pool
    d = Dropout(0.5, seed=0)
    y1 = d.forward(x)
    keep = y1.copy()
    y2 = d.forward(x)
    assert y2 is not y1 and not np.shares_memory(y1, y2)
    assert np.array_equal(y1, keep)                   # the held output was not overwritten
    addr = y1.__array_interface__["data"][0]
    del y1
    y3 = d.forward(x)                                 # y1's memory, now unused, is recycled
    assert y3.__array_interface__["data"][0] == addr
    y4 = d.forward(x)
    assert y3 is not y4 and not np.shares_memory(y3, y4)
    dx1 = d.backward(x)
    dx2 = d.backward(x)
    assert not np.shares_memory(dx1, dx2)


def test_mask_setter_round_trip():
    d = Dropout(0.5)
    m = np.random.default_rng(0).random((5, 37)) > 0.5
    d.mask = m
    assert np.array_equal(d.mask, m)
    dout = np.ones((5, 37))
    assert np.array_equal(d.backward(dout), dout * m)
    d.mask = None
    assert d.mask is None


def test_show_config_reports_compiled():
    from fastnn._config import implementations
    assert implementations()["layers.Dropout"] == "compiled"


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_ratio_outside_0_1(ratio):
    with pytest.raises(ValueError, match="dropout_ratio must be in"):
        Dropout(ratio)
    d = Dropout(0.5)
    d.dropout_ratio = ratio
    with pytest.raises(ValueError, match="dropout_ratio must be in"):
        d.forward(np.ones(3))


def test_bad_seed():
    with pytest.raises(TypeError, match="seed must be an int"):
        Dropout(seed=1.5)
    with pytest.raises(ValueError, match="seed must be in"):
        Dropout(seed=-1)
    with pytest.raises(ValueError, match="seed must be in"):
        Dropout(seed=2 ** 64)


def test_backward_errors():
    d = Dropout()
    with pytest.raises(RuntimeError, match="before a training forward"):
        d.backward(np.ones(3))
    d.forward(np.ones(3), train_flg=False)
    with pytest.raises(RuntimeError, match="before a training forward"):
        d.backward(np.ones(3))
    d.forward(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"dout must have shape \(4, 5\)"):
        d.backward(np.ones((5, 4)))
    with pytest.raises(TypeError):
        d.backward(np.ones((4, 5), dtype=complex))
    with pytest.raises(TypeError):
        d.forward(np.ones(3, dtype=complex))


def test_wrapper_validation():
    x = np.ones(100, dtype=np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        _dropout.dropout_forward(np.ones(3, dtype=np.int32), 0, 0)
    with pytest.raises(ValueError, match=r"bits must have shape \(4,\)"):
        _dropout.dropout_forward(x, 0, 0, bits=np.zeros(3, dtype=np.uint32))
    with pytest.raises(TypeError, match="bits must have dtype uint32"):
        _dropout.dropout_forward(x, 0, 0, bits=np.zeros(4, dtype=np.int64))
    with pytest.raises(ValueError, match="thr must be in"):
        _dropout.dropout_forward(x, 0, 2 ** 32 + 1)
    with pytest.raises(ValueError, match="seed must be in"):
        _dropout.dropout_forward(x, -1, 0)
    ro = np.ones(100, dtype=np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        _dropout.dropout_forward(x, 0, 0, out=ro)
    with pytest.raises(ValueError, match="out must not overlap"):
        _dropout.dropout_forward(x[:50], 0, 0, out=x[25:75])
    _, bits = _dropout.dropout_forward(x, 0, 2 ** 31)
    with pytest.raises(ValueError, match="bits must have shape"):
        _dropout.dropout_backward(np.ones(200, dtype=np.float32), bits)
    with pytest.raises(TypeError, match="out must have dtype float32"):
        _dropout.dropout_backward(x, bits, out=np.ones(100))
    # in-place backward is allowed
    d = np.ones(100, dtype=np.float32)
    assert _dropout.dropout_backward(d, bits, out=d) is d
    assert np.array_equal(d, R.unpack_mask(bits, (100,)).astype(np.float32))
