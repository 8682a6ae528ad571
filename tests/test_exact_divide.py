"""The float64 division of the AdaGrad/RMSprop/Adam/AdamW kernels (csrc/optim_body.h, div_rn8).

On AVX-512 the kernels divide with an FMA sequence instead of the divider; it must return the
correctly rounded quotient, bit for bit NumPy's ``a / d``, for every input. The hook
``fastnn._optim._exact_divide_f64`` runs the very routine the kernels inline (8 lanes at a time,
the last n % 8 with the hardware division), and ``_exact_divide_f64_uses_fma()`` says whether
the FMA sequence ran (asserted below when the CPU has AVX-512 and FASTNN_SIMD does not cap it).
The FMA sequence covers 2^-900 <= |a| <= 2^900, 2^-100 <= d <= 2^100; other lanes use the
hardware division, so the cases below cover both sides of every bound.
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import subprocess_env
from fastnn import _optim, _runtime

A_LO, A_HI, D_LO, D_HI = 2.0 ** -900, 2.0 ** 900, 2.0 ** -100, 2.0 ** 100


def _check(a, d):
    a = np.ascontiguousarray(a, dtype=np.float64)
    d = np.ascontiguousarray(d, dtype=np.float64)
    got = _optim._exact_divide_f64(a, d)
    with np.errstate(all="ignore"):
        want = a / d
    assert got.shape == want.shape and got.dtype == np.float64
    bad = np.flatnonzero(got.view(np.uint64) != want.view(np.uint64))
    if bad.size:
        i = bad[0]
        pytest.fail("%d of %d quotients differ, first: %r / %r = %r, got %r"
                    % (bad.size, a.size, float(a.flat[i]).hex(), float(d.flat[i]).hex(),
                       float(want.flat[i]).hex(), float(got.flat[i]).hex()))


def _doubles(rng, n, emin, emax, signed=True):
    """n doubles with uniform random 52-bit significands and unbiased exponents in [emin, emax]
    (emin -1023: subnormals and zeros)."""
    mant = rng.integers(0, 1 << 52, n, dtype=np.uint64)
    expo = (rng.integers(emin, emax + 1, n) + 1023).astype(np.uint64)
    bits = (expo << np.uint64(52)) | mant
    if signed:
        bits |= rng.integers(0, 2, n, dtype=np.uint64) << np.uint64(63)
    return bits.view(np.float64)


def _in_fast_range(a, d):
    return (np.abs(a) >= A_LO) & (np.abs(a) <= A_HI) & (d >= D_LO) & (d <= D_HI)


def test_kernels_use_the_fma_division_on_avx512():
    uses = _optim._exact_divide_f64_uses_fma()
    assert uses == (_runtime.simd_path() == "AVX-512")
    if _runtime.simd_cpu() == "AVX-512" and not os.environ.get("FASTNN_SIMD"):
        assert uses


def test_random_pairs_in_the_fast_range():
    rng = np.random.default_rng(1)
    n = 3_000_000
    a = _doubles(rng, n, -900, 899)
    d = _doubles(rng, n, -100, 99, signed=False)
    assert _in_fast_range(a, d).all()
    _check(a, d)


def test_random_pairs_adam_range():
    """d = sqrt(v) + eps in [1e-7, 1e3], a = lr_t * m in [1e-12, 1], log-uniform, both signs."""
    rng = np.random.default_rng(2)
    n = 1_000_000
    d = np.exp(rng.uniform(np.log(1e-7), np.log(1e3), n))
    a = np.exp(rng.uniform(np.log(1e-12), 0.0, n)) * rng.choice([-1.0, 1.0], n)
    _check(a, d)


def test_random_pairs_whole_exponent_range():
    """Every exponent (zeros and subnormals included) and both signs of d: mostly the hardware
    division's lanes, mixed in each vector with the fast ones."""
    rng = np.random.default_rng(3)
    n = 1_000_000
    a = _doubles(rng, n, -1023, 1023)
    d = _doubles(rng, n, -1023, 1023)
    a[::3] = _doubles(rng, a[::3].size, -900, 899)
    d[::2] = _doubles(rng, d[::2].size, -100, 99, signed=False)
    fast = _in_fast_range(a, d).mean()
    assert 0.1 < fast < 0.9
    _check(a, d)


def _near_midpoints(rng, count, span=1000, d_all_ones=False):
    """(a, d, expected) with a/d within span * 2^-52 half-ulps of a midpoint of two doubles.

    M odd in [2^53, 2^54) is the midpoint's significand; D (in [2^52, 2^53)) solves
    M*D = t (mod 2^54) for a small t != 0, so M*D = K*2^54 + t with K < 2^53: a = K*2^54 and
    d = D (times powers of two) give a/d = (M - t/D) * 2^e, just below the midpoint M * 2^e
    if t > 0 (RN: (M-1) * 2^e), just above if t < 0 (RN: (M+1) * 2^e)."""
    out_a, out_d, out_q = [], [], []
    two54 = 1 << 54
    while len(out_a) < count:
        t = int(rng.integers(1, span + 1)) * (1 if rng.integers(0, 2) else -1)
        if d_all_ones:
            D = (1 << 53) - 1
            if t % 2 == 0:
                t += 1
            M = (t * pow(D, -1, two54)) % two54
            if not ((1 << 53) <= M < two54):
                continue
        else:
            M = int(rng.integers(1 << 52, 1 << 53)) * 2 + 1
            D = (t * pow(M, -1, two54)) % two54
            if not ((1 << 52) <= D < (1 << 53)):
                continue
        P = M * D
        K = (P - t) >> 54
        assert K * two54 + t == P and 0 < K < (1 << 53)
        # exponents: d in [2^-100, 2^100), a in [2^-900, 2^900) (some just outside as well)
        j = int(rng.integers(-152, 48))
        s = int(rng.integers(-900 - 53 - 54, 900 - 53 - 54))
        a = math.ldexp(K, 54 + s)
        d = math.ldexp(D, j)
        q = math.ldexp(M - (1 if t > 0 else -1), s - j)
        if rng.integers(0, 2):
            a, q = -a, -q
        out_a.append(a)
        out_d.append(d)
        out_q.append(q)
    return np.array(out_a), np.array(out_d), np.array(out_q)


@pytest.mark.parametrize("d_all_ones", [False, True])
def test_near_midpoint_quotients(d_all_ones):
    rng = np.random.default_rng(4 + d_all_ones)
    a, d, q = _near_midpoints(rng, 30_000, span=2000 if d_all_ones else 1000,
                              d_all_ones=d_all_ones)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(a / d, q)   # the construction (and NumPy) as expected
    assert _in_fast_range(a, d).mean() > 0.95
    _check(a, d)
    # the numerators' neighbours, and the same pairs scaled out of the fast range
    for k in (1, 2, 3):
        _check(np.nextafter(a, np.inf * k), d)
        _check(np.nextafter(a, -np.inf * k), d)
    for k in (-3, -1, 1, 2):
        _check(a, np.nextafter(d, np.inf * k))
    _check(a * 2.0 ** 100, d)
    _check(a, d * 2.0 ** 150)


def test_powers_of_two_and_exact_quotients():
    rng = np.random.default_rng(6)
    n = 200_000
    d = _doubles(rng, n, -100, 99, signed=False)
    # quotients that are powers of two, and numerators around them
    q = np.ldexp(1.0, rng.integers(-790, 790, n)) * rng.choice([-1.0, 1.0], n)
    a = q * d
    for k in range(-3, 4):
        x = a
        for _ in range(abs(k)):
            x = np.nextafter(x, np.inf if k > 0 else -np.inf)
        _check(x, d)
    # d a power of two (exact quotients), and d with an all-ones significand
    a = _doubles(rng, n, -890, 890)
    _check(a, np.ldexp(1.0, rng.integers(-100, 100, n)))
    ones = np.ldexp(np.float64((1 << 53) - 1), rng.integers(-152, 47, n))
    _check(a, ones)
    _check(a, np.nextafter(ones, np.inf))
    # exact quotients: short significands
    qi = rng.integers(1, 1 << 26, n).astype(np.float64) * np.ldexp(1.0, rng.integers(-400, 400, n))
    di = rng.integers(1, 1 << 26, n).astype(np.float64) * np.ldexp(1.0, rng.integers(-70, 40, n))
    _check(qi * di, di)
    _check(-qi * di, di)


def _edges(x):
    return [np.nextafter(x, -np.inf), x, np.nextafter(x, np.inf)]


def test_special_values_and_range_edges():
    tiny, sub = np.finfo(np.float64).tiny, 5e-324
    big = np.finfo(np.float64).max
    mags = ([0.0, sub, 3 * sub, tiny / 3, tiny, 1e-300, 1.0, 1.5, 1e300, big, np.inf]
            + _edges(A_LO) + _edges(A_HI) + _edges(D_LO) + _edges(D_HI) + _edges(1e-7))
    vals = np.array(mags + [-m for m in mags] + [np.nan, -np.nan], dtype=np.float64)
    a, d = np.meshgrid(vals, vals)
    a, d = a.ravel(), d.ravel()
    rng = np.random.default_rng(7)
    for _ in range(4):                      # every vector of 8 mixes kinds of lanes
        perm = rng.permutation(a.size)
        _check(a[perm], d[perm])
    # the edges with random partners on the other side
    n = 20_000
    for edge in (A_LO, A_HI):
        for x in _edges(edge):
            _check(np.full(n, x) * rng.choice([-1.0, 1.0], n),
                   _doubles(rng, n, -100, 99, signed=False))
    for edge in (D_LO, D_HI):
        for x in _edges(edge):
            _check(_doubles(rng, n, -900, 899), np.full(n, x))
    # signed zeros: a = +-0 gives a zero of the right sign
    z = _optim._exact_divide_f64(np.array([0.0, -0.0] * 8), np.full(16, 3.0))
    assert (z == 0).all() and list(np.signbit(z)) == [False, True] * 8


def test_lengths_and_layouts():
    rng = np.random.default_rng(8)
    for n in list(range(0, 41)) + [63, 64, 65, 1001]:
        _check(_doubles(rng, n, -50, 50), _doubles(rng, n, -60, 60, signed=False))
    a = _doubles(rng, 3 * 7 * 5, -50, 50).reshape(3, 7, 5)
    d = _doubles(rng, 3 * 7 * 5, -50, 50, signed=False).reshape(3, 7, 5)
    got = _optim._exact_divide_f64(a, d)
    assert got.shape == (3, 7, 5)
    np.testing.assert_array_equal(got, a / d)
    got = _optim._exact_divide_f64(a[:, ::2].transpose(), d[:, ::2].transpose())
    np.testing.assert_array_equal(got, a[:, ::2].transpose() / d[:, ::2].transpose())


def test_bad_input():
    x = np.ones(4)
    with pytest.raises(TypeError, match="float64"):
        _optim._exact_divide_f64(x.astype(np.float32), x)
    with pytest.raises(TypeError, match="numpy.ndarray"):
        _optim._exact_divide_f64([1.0], x)
    with pytest.raises(ValueError, match="one shape"):
        _optim._exact_divide_f64(x, np.ones(5))


def test_hardware_division_path_agrees():
    """FASTNN_SIMD=avx2: the kernels divide with the divider, the same quotients."""
    code = ("import numpy as np; from fastnn import _optim;"
            "r = np.random.default_rng(9); a = r.standard_normal(10007) * 1e-3;"
            "d = r.uniform(1e-7, 10, 10007);"
            "assert not _optim._exact_divide_f64_uses_fma();"
            "assert (_optim._exact_divide_f64(a, d) == a / d).all(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(FASTNN_SIMD="avx2"),
                         capture_output=True, text=True, cwd="/")   # the same fastnn as here
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
