"""The GEMMs under the Affine layer and the network passes (csrc/gemm.c): one BLAS call per
product, or blocks of at most the BLAS's small-kernel size (``small_mnk``) when the BLAS runs on
one thread, and the dx product through W's transpose. Checked against NumPy in float64, with
small_mnk lowered so that small matrices split along every dimension; the rule for when the
layers split; the passes stay bitwise the layer path with splits everywhere (test_netstep)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import subprocess_env

import fastnn
from fastnn import _affine, _blas_lib

SHAPES = [(1, 1, 1), (7, 5, 3), (33, 17, 64), (20, 40, 100), (100, 10, 9), (3, 90, 70),
          (64, 100, 64), (37, 53, 29), (80, 37, 53)]
# (m, n, k) of dx = dout·Wᵀ products fnn_gemm_bt takes through W's transpose at small_mnk 1e6
# (at least FNN_GEMM_BT_MIN_ROWS = 80 rows, one small-kernel call); tile edges in n and k
TRANSPOSED = [(80, 37, 53), (100, 10, 9), (96, 16, 16), (81, 1, 1), (100, 100, 100)]


def _operands(m, n, k, trans_a, trans_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    c = rng.standard_normal((m, n)).astype(dtype)
    return a, b, c


def _expected(a, b, c, trans_a, trans_b, alpha, beta):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    prod = (a64.T if trans_a else a64) @ (b64.T if trans_b else b64)
    return alpha * prod + (beta * c.astype(np.float64) if beta != 0 else 0.0)


def _tolerance(dtype, k):
    eps = np.finfo(dtype).eps
    return 8 * eps * np.sqrt(k) * 4


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True)])
@pytest.mark.parametrize("limit", [0, 50, 1000, 1e6])
def test_blocks_match_numpy(m, n, k, trans_a, trans_b, limit, dtype, small_mnk):
    small_mnk(limit)
    a, b, c = _operands(m, n, k, trans_a, trans_b, dtype)
    for alpha, beta in ((1.0, 0.0), (1.0, 1.0), (0.5, -2.0)):
        out = c.copy()
        _affine._gemm(a, b, out, trans_a, trans_b, alpha, beta, True)
        want = _expected(a, b, c, trans_a, trans_b, alpha, beta)
        scale = np.abs(a).max() * np.abs(b).max() * k + abs(beta) * np.abs(c).max()
        np.testing.assert_allclose(out, want, rtol=0, atol=_tolerance(dtype, k) * scale)


@pytest.mark.parametrize("trans_a", [False, True])
def test_beta_zero_never_reads_c_in_any_block(trans_a, dtype, small_mnk):
    """The first k block takes the caller's beta = 0 (C not read: NaN in it is overwritten), the
    later ones add to what the earlier wrote."""
    small_mnk(100)
    a, b, _ = _operands(20, 30, 50, trans_a, False, dtype)
    c = np.full((20, 30), np.nan, dtype=dtype)
    _affine._gemm(a, b, c, trans_a, False, 1.0, 0.0, True)
    assert np.isfinite(c).all()
    want = _expected(a, b, c, trans_a, False, 1.0, 0.0)
    np.testing.assert_allclose(c, want, rtol=0, atol=_tolerance(dtype, 50) * np.abs(want).max())


@pytest.mark.parametrize("m,n,k", TRANSPOSED)
def test_transposed_b_through_scratch_is_the_plain_product_of_the_transpose(m, n, k, dtype,
                                                                            small_mnk):
    """fnn_gemm_bt transposes B exactly (tiles of 16, edges included): bitwise the untransposed
    call on B's transpose; and against NumPy."""
    small_mnk(1e6)
    a, b, c = _operands(m, n, k, False, True, dtype)
    via_scratch, direct = c.copy(), c.copy()
    assert _affine._gemm(a, b, via_scratch, False, True, 1.0, 0.5, True)
    _affine._gemm(a, np.ascontiguousarray(b.T), direct, False, False, 1.0, 0.5, True)
    np.testing.assert_array_equal(via_scratch, direct)
    want = _expected(a, b, c, False, True, 1.0, 0.5)
    scale = np.abs(a).max() * np.abs(b).max() * k + 0.5 * np.abs(c).max()
    np.testing.assert_allclose(via_scratch, want, rtol=0, atol=_tolerance(dtype, k) * scale)


@pytest.mark.parametrize("m,n,k,limit,split", [
    (79, 10, 10, 1e6, True),        # too few rows to spread the transposition over
    (100, 100, 101, 1e6, True),     # more than one small-kernel call
    (100, 10, 10, 0, True),         # no small kernels
    (100, 10, 10, 1e6, False)])     # the BLAS on several threads
def test_transposed_b_only_where_it_pays(m, n, k, limit, split, small_mnk):
    small_mnk(limit)
    a, b, c = _operands(m, n, k, False, True, np.float64)
    assert not _affine._gemm(a, b, c, False, True, 1.0, 0.0, split)


def test_hook_rejects_bad_operands():
    a = np.ones((3, 4))
    with pytest.raises(ValueError, match="shapes"):
        _affine._gemm(a, np.ones((5, 2)), np.ones((3, 2)), False, False, 1.0, 0.0, True)
    with pytest.raises(ValueError, match="dtype"):
        _affine._gemm(a, np.ones((4, 2), np.float32), np.ones((3, 2)), False, False, 1.0, 0.0,
                      True)
    with pytest.raises(ValueError, match="together"):
        _affine._gemm(a, np.ones((2, 3)), np.ones((4, 2)), True, True, 1.0, 0.0, True)


@pytest.mark.parametrize("limit,batch", [(1000, 30), (1e6, 100)],
                         ids=["blocks", "transposed-W"])
def test_layer_splits_exactly_when_the_blas_runs_on_one_thread(limit, batch, dtype, small_mnk):
    """affine_forward/backward split (bitwise the split product; dx through W's transpose where
    fnn_gemm_bt takes it so) at one BLAS thread and call the BLAS once per product (bitwise the
    unsplit one) at two."""
    small_mnk(limit)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((batch, 40)).astype(dtype)
    W = rng.standard_normal((40, 20)).astype(dtype)
    b = np.zeros(20, dtype)
    dout = rng.standard_normal((batch, 20)).astype(dtype)
    old = fastnn.get_num_threads()
    try:
        for threads, split in ((1, True), (2, False)):
            fastnn.set_num_threads(threads)
            if threads == 2 and _blas_lib.describe()[1] == 0:
                continue                      # the BLAS's thread count is unknown: never split
            y = _affine.affine_forward(x, W, b)
            want = np.zeros_like(y)
            _affine._gemm(x, W, want, False, False, 1.0, 1.0, split)
            np.testing.assert_array_equal(y, want)
            dx, dW, _ = _affine.affine_backward(dout, x, W)
            want_dx, want_dW = np.empty_like(dx), np.empty_like(dW)
            _affine._gemm(dout, W, want_dx, False, True, 1.0, 0.0, split)
            _affine._gemm(x, dout, want_dW, True, False, 1.0, 0.0, split)
            np.testing.assert_array_equal(dx, want_dx)
            np.testing.assert_array_equal(dW, want_dW)
    finally:
        fastnn.set_num_threads(old)


@pytest.mark.parametrize("setting,expected", [("0", 0.0), ("1", _blas_lib.SMALL_KERNEL_MNK)])
def test_environment_switch(setting, expected):
    code = "from fastnn import _blas_lib; print(_blas_lib.describe()[2])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd="/", env=subprocess_env(FASTNN_GEMM_SPLIT=setting), check=True)
    assert float(out.stdout.strip()) == expected


def test_small_kernels_known_for_openblas_avx512_cores():
    """Unless the switch is set, the split is on exactly for OpenBLAS's AVX-512 cores."""
    if os.environ.get("FASTNN_GEMM_SPLIT"):
        pytest.skip("FASTNN_GEMM_SPLIT set")
    info = _blas_lib._scipy_openblas()
    core = str((info or {}).get("architecture", "")).lower()
    want = _blas_lib.SMALL_KERNEL_MNK if core in _blas_lib.SMALL_KERNEL_CORES else 0.0
    assert _blas_lib.describe()[2] == want
