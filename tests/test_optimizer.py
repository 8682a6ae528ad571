"""fastnn.optimizer (compiled) against the NumPy reference (fastnn.reference.optimizer).

SGD, Momentum, Nesterov, AdaGrad and RMSprop follow the reference's float32/float64 arithmetic
operation by operation, so they are compared bit for bit; Adam too in float64. Adam's float32
step is computed in float32 (the reference computes it in float64): compared with tolerances.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import optimizer as F
from fastnn.reference import optimizer as R
from conftest import assert_close, subprocess_env

NAMES = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]
STATES = {"SGD": (), "Momentum": ("v",), "Nesterov": ("v",), "AdaGrad": ("h",),
          "RMSprop": ("h",), "Adam": ("m", "v"), "AdamW": ("m", "v")}
SHAPES = {"W1": (7, 5), "b1": (5,), "W2": (5, 3, 2, 2), "b2": (1,), "s": ()}


def _params(dtype, seed=0, shapes=SHAPES):
    rng = np.random.RandomState(seed)
    return {k: np.asarray(rng.randn(*s)).astype(dtype) for k, s in shapes.items()}


def _grads(params, rng):
    return {k: np.asarray(rng.randn(*v.shape)).astype(v.dtype) for k, v in params.items()}


def _copy(d):
    return {k: v.copy() for k, v in d.items()}


def _exact(name, dtype):
    return name != "Adam" or np.dtype(dtype) == np.float64


def _assert_match(name, dtype, actual, desired, scale=1.0):
    for k in desired:
        assert actual[k].dtype == desired[k].dtype
        if _exact(name, dtype):
            np.testing.assert_array_equal(actual[k], desired[k], err_msg=k)
        else:
            assert_close(actual[k], desired[k], dtype, scale=scale)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [1, 6])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_reference(name, steps, seed, dtype, n_threads):
    params = _params(dtype, seed)
    ref_params = _copy(params)
    ids = {k: id(v) for k, v in params.items()}
    fast, ref = getattr(F, name)(), getattr(R, name)()
    rng = np.random.RandomState(100 + seed)
    for _ in range(steps):
        grads = _grads(params, rng)
        assert fast.update(params, grads) is None
        ref.update(ref_params, grads)
    _assert_match(name, dtype, params, ref_params)
    assert {k: id(v) for k, v in params.items()} == ids          # updated in place
    for state in STATES[name]:                                   # state readable like the book's
        fs, rs = getattr(fast, state), getattr(ref, state)
        assert list(fs) == list(rs)
        _assert_match(name, dtype, fs, rs)
    if name == "Adam":
        assert fast.iter == ref.iter == steps


@pytest.mark.parametrize("name", NAMES)
def test_hyperparameters_and_changes_between_calls(name):
    kw = {"SGD": dict(lr=0.3), "Momentum": dict(lr=0.05, momentum=0.5),
          "Nesterov": dict(lr=0.05, momentum=0.7), "AdaGrad": dict(lr=0.2),
          "RMSprop": dict(lr=0.02, decay_rate=0.9), "Adam": dict(lr=0.01, beta1=0.8, beta2=0.99)}
    params = _params(np.float64, 3)
    ref_params = _copy(params)
    fast, ref = getattr(F, name)(**kw[name]), getattr(R, name)(**kw[name])
    rng = np.random.RandomState(5)
    for step in range(4):
        if step == 2:                                            # a schedule changes lr
            fast.lr = ref.lr = kw[name]["lr"] / 3
        grads = _grads(params, rng)
        fast.update(params, grads)
        ref.update(ref_params, grads)
    _assert_match(name, np.float64, params, ref_params)


@pytest.mark.parametrize("name", NAMES + ["AdamW"])
def test_float32_stays_float32(name):
    params = _params(np.float32)
    opt = getattr(F, name)()
    opt.update(params, _grads(params, np.random.RandomState(0)))
    for k, v in params.items():
        assert v.dtype == np.float32 and v.shape == SHAPES[k]
    for state in STATES[name]:
        for k, v in getattr(opt, state).items():
            assert v.dtype == np.float32 and v.shape == SHAPES[k]


@pytest.mark.parametrize("name", NAMES)
def test_python_float_params(name):
    """The book's 2-D optimizer comparison: params are Python floats."""
    params, ref_params = {"x": -7.0, "y": 2.0}, {"x": -7.0, "y": 2.0}
    fast, ref = getattr(F, name)(lr=0.1), getattr(R, name)(lr=0.1)
    for _ in range(5):
        fast.update(params, {"x": params["x"] / 10.0, "y": 2.0 * params["y"]})
        ref.update(ref_params, {"x": ref_params["x"] / 10.0, "y": 2.0 * ref_params["y"]})
    for k in params:
        assert params[k] == ref_params[k]
        assert type(params[k]) is type(ref_params[k])
    assert type(params["x"]) is (float if name == "SGD" else np.float64)


@pytest.mark.parametrize("name", NAMES)
def test_zero_d_params(name):
    p, rp = {"a": np.array(1.5), "b": np.array(-0.5, np.float32)}, None
    rp = _copy(p)
    fast, ref = getattr(F, name)(), getattr(R, name)()
    for i in range(3):
        g = {"a": np.array(0.3 * i - 0.2), "b": np.array(0.7, np.float32)}
        fast.update(p, g)
        ref.update(rp, g)
    np.testing.assert_array_equal(p["a"], rp["a"])
    assert p["a"].shape == () and p["b"].dtype == np.float32
    _assert_match(name, np.float32, {"b": p["b"]}, {"b": rp["b"]})


@pytest.mark.parametrize("name", NAMES + ["AdamW"])
def test_flat_buffer_matches_separate_arrays(name, dtype):
    sizes = {"W1": (300, 100), "b1": (100,), "g1": (100,), "W2": (100, 10), "b2": (10,)}
    sep = _params(dtype, 7, sizes)
    pbuf, flat = F.flat_views(sep)
    assert flat["W1"].base is pbuf and pbuf.dtype == dtype
    opt_sep, opt_flat = getattr(F, name)(), getattr(F, name)()
    rng = np.random.RandomState(8)
    for _ in range(3):
        g = _grads(sep, rng)
        gbuf, gflat = F.flat_views(g)
        opt_sep.update(sep, g)
        opt_flat.update(flat, gflat)
        assert opt_flat._plan.last_segments == 1                 # one pass over the buffer
        assert opt_sep._plan.last_segments == len(sizes)
    for k in sep:
        np.testing.assert_array_equal(flat[k], sep[k])
    for state in STATES[name]:
        st = getattr(opt_flat, state)
        assert st["W1"].base is not None and st["W1"].base is st["b2"].base   # flat state


def test_flat_params_with_fresh_grads():
    """Flat params and flat state, but the book's fresh gradient arrays: still right."""
    sep = _params(np.float32, 2)
    _, flat = F.flat_views(sep)
    a, b = F.Adam(), R.Adam()
    rng = np.random.RandomState(1)
    for _ in range(3):
        g = _grads(sep, rng)
        a.update(flat, g)
        b.update(sep, g)
    _assert_match("Adam", np.float32, flat, sep)


@pytest.mark.parametrize("name", NAMES + ["AdamW"])
def test_threads_identical_on_large_arrays(name):
    """Big enough to be split over threads, with the split falling inside tensors."""
    shapes = {"A": (700, 1000), "b": (13,), "B": (5, 111_111), "c": ()}
    base = _params(np.float32, 11, shapes)
    grads = [_grads(base, np.random.RandomState(s)) for s in range(2)]
    out = {}
    old = fastnn.get_num_threads()
    try:
        for nt in (1, 2):
            fastnn.set_num_threads(nt)
            p = _copy(base)
            opt = getattr(F, name)()
            for g in grads:
                opt.update(p, g)
            out[nt] = p
    finally:
        fastnn.set_num_threads(old)
    for k in base:
        np.testing.assert_array_equal(out[1][k], out[2][k])
    if _exact(name, np.float32) and name != "AdamW":
        ref = _copy(base)
        r = getattr(R, name)()
        for g in grads:
            r.update(ref, g)
        for k in base:
            np.testing.assert_array_equal(out[2][k], ref[k])


def _adamw_numpy(p, grads_seq, lr=0.001, b1=0.9, b2=0.999, wd=0.01):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads_seq, 1):
        lr_t = lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        m = m + (1 - b1) * (g - m)
        v = v + (1 - b2) * (g * g - v)
        p = p * (1 - lr * wd) - lr_t * m / (np.sqrt(v) + 1e-7)
    return p


def test_adamw(dtype):
    params = _params(dtype, 4)
    p0 = _copy(params)
    rng = np.random.RandomState(2)
    seq = [_grads(params, rng) for _ in range(5)]
    opt = F.AdamW(lr=0.01, weight_decay=0.1)
    for g in seq:
        opt.update(params, g)
    for k in params:
        want = _adamw_numpy(p0[k], [g[k] for g in seq], lr=0.01, wd=0.1)
        assert_close(params[k], want, dtype, scale=4)
    assert opt.iter == 5
    # weight_decay=0 is exactly Adam
    a, b = _params(dtype, 4), _params(dtype, 4)
    oa, ob = F.AdamW(weight_decay=0.0), F.Adam()
    for g in seq:
        oa.update(a, g)
        ob.update(b, g)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def _l2_numpy(name, p, grads_seq, wd, **kw):
    """Coupled L2: the reference rule with g + wd*p in place of g."""
    ref = getattr(R, name)(**kw)
    params = {"p": p.copy()}
    for g in grads_seq:
        ref.update(params, {"p": g + wd * params["p"]})
    return params["p"]


@pytest.mark.parametrize("name", NAMES)
def test_l2_weight_decay(name):
    params = _params(np.float64, 9)
    p0 = _copy(params)
    rng = np.random.RandomState(3)
    seq = [_grads(params, rng) for _ in range(4)]
    opt = getattr(F, name)(weight_decay=0.05)
    for g in seq:
        opt.update(params, g)
    for k in params:
        want = _l2_numpy(name, p0[k], [g[k] for g in seq], 0.05)
        np.testing.assert_allclose(params[k], want, rtol=1e-12, atol=1e-14)


def test_python_float_params_with_weight_decay():
    params = {"x": 3.0}
    F.SGD(lr=0.1, weight_decay=0.5).update(params, {"x": 1.0})
    assert params["x"] == pytest.approx(3.0 - 0.1 * (1.0 + 0.5 * 3.0))


# ---------------------------------------------------------------- bad input: nothing modified

def _snapshot(opt, params):
    st = {s: _copy(getattr(opt, s)) for s in STATES[type(opt).__name__]
          if getattr(opt, s) is not None}
    return _copy(params), st, getattr(opt, "iter", None)


def _assert_unchanged(opt, params, snap):
    p, st, it = snap
    for k in p:
        np.testing.assert_array_equal(params[k], p[k])
    for s, d in st.items():
        for k in d:
            np.testing.assert_array_equal(getattr(opt, s)[k], d[k])
    assert getattr(opt, "iter", None) == it


def _bad_cases(params):
    g = _grads(params, np.random.RandomState(0))
    missing = dict(g)
    del missing["s"]                                            # the last key: others come first
    wrong_shape = dict(g, W2=np.zeros((5, 3, 4), params["W2"].dtype))
    wrong_dtype = dict(g, b2=g["b2"].astype(np.float16))
    not_array = dict(g, b2=[0.5])
    return [(missing, KeyError, "s"),
            (wrong_shape, ValueError, r"grads\['W2'\] has shape \(5, 3, 4\), expected \(5, 3, 2, 2\)"),
            (wrong_dtype, TypeError, r"grads\['b2'\] has dtype float16, expected float32"),
            (not_array, TypeError, r"grads\['b2'\] must be a numpy.ndarray")]


@pytest.mark.parametrize("name", NAMES + ["AdamW"])
@pytest.mark.parametrize("first_call", [True, False])
def test_bad_input_leaves_params_untouched(name, first_call):
    params = _params(np.float32, 1)
    opt = getattr(F, name)()
    if not first_call:
        opt.update(params, _grads(params, np.random.RandomState(9)))
    for grads, exc, match in _bad_cases(params):
        snap = _snapshot(opt, params)
        with pytest.raises(exc, match=match):
            opt.update(params, grads)
        _assert_unchanged(opt, params, snap)
    # the optimizer still works afterwards, and agrees with a fresh copy of itself
    opt.update(params, _grads(params, np.random.RandomState(1)))


@pytest.mark.parametrize("name", NAMES)
def test_read_only_param(name):
    params = _params(np.float64, 1)
    params["b2"].flags.writeable = False
    opt = getattr(F, name)()
    snap = _snapshot(opt, params)
    with pytest.raises(ValueError, match=r"params\['b2'\] is read-only"):
        opt.update(params, _grads(params, np.random.RandomState(0)))
    _assert_unchanged(opt, params, snap)


@pytest.mark.parametrize("name", ["Momentum", "Adam"])
def test_key_added_later_is_keyerror(name):
    params = _params(np.float64, 1)
    opt = getattr(F, name)()
    opt.update(params, _grads(params, np.random.RandomState(0)))
    params["new"] = np.ones(3)
    snap = _snapshot(opt, {k: v for k, v in params.items()})
    with pytest.raises(KeyError, match="new"):
        opt.update(params, _grads(params, np.random.RandomState(1)))
    _assert_unchanged(opt, params, snap)


def test_extra_grad_keys_are_ignored():
    params = _params(np.float64, 1)
    ref_params = _copy(params)
    g = _grads(params, np.random.RandomState(0))
    g["unused"] = np.ones(4)
    F.Momentum().update(params, g)
    R.Momentum().update(ref_params, g)
    _assert_match("Momentum", np.float64, params, ref_params)


# ---------------------------------------------------------------- unusual layouts

@pytest.mark.parametrize("name", NAMES)
def test_strided_and_aliased_arrays_match_reference(name):
    """Strided params/grads, a grad that is its own param, a param listed twice (tied)."""
    rng = np.random.RandomState(6)
    big = rng.randn(8, 10)
    tied = rng.randn(4)

    def make():
        return {"T": big.copy()[:, ::2], "a": rng.randn(3, 3), "t1": tied.copy()}

    params = make()
    params["t2"] = params["t1"]                                 # tied weights
    ref_params = {k: v.copy() for k, v in params.items()}
    ref_params["t2"] = ref_params["t1"]
    fast, ref = getattr(F, name)(), getattr(R, name)()
    for _ in range(3):
        g = {"T": rng.randn(8, 20)[:, ::4], "t1": rng.randn(4), "t2": rng.randn(4)}
        gf = dict(g, a=params["a"])                            # grad aliases its param
        gr = dict(g, a=ref_params["a"])
        fast.update(params, gf)
        ref.update(ref_params, gr)
    for k in params:
        np.testing.assert_allclose(params[k], ref_params[k], rtol=1e-13, atol=1e-15)


def test_strided_grad_with_contiguous_params_uses_kernel():
    params = _params(np.float32, 1, {"W": (6, 4)})
    ref_params = _copy(params)
    g = {"W": np.asarray(np.random.RandomState(0).randn(4, 6).astype(np.float32)).T}
    opt = F.SGD()
    opt.update(params, g)
    R.SGD().update(ref_params, g)
    assert opt._plan.last_elements == 24
    np.testing.assert_array_equal(params["W"], ref_params["W"])


def test_replaced_arrays_and_state_are_revalidated():
    params = _params(np.float64, 1)
    ref_params = _copy(params)
    fast, ref = F.Adam(), R.Adam()
    rng = np.random.RandomState(4)
    g = _grads(params, rng)
    fast.update(params, g)
    ref.update(ref_params, g)
    # a new array object under a key, and a state entry the user replaced
    params["W1"] = params["W1"].copy()
    ref_params["W1"] = ref_params["W1"].copy()
    fast.m["b1"] = fast.m["b1"].copy()
    for _ in range(2):
        g = _grads(params, rng)
        fast.update(params, g)
        ref.update(ref_params, g)
    _assert_match("Adam", np.float64, params, ref_params)
    # a state the kernels cannot use (float32 for a float64 param): the book's NumPy arithmetic
    fast.v["b2"] = fast.v["b2"].astype(np.float32)
    ref.v["b2"] = ref.v["b2"].astype(np.float32)
    g = _grads(params, rng)
    fast.update(params, g)
    ref.update(ref_params, g)
    _assert_match("Adam", np.float64, params, ref_params)


def test_module_surface():
    ns = {}
    exec("from fastnn.optimizer import *", ns)
    assert ns["np"] is np
    for name in F._PUBLIC_CLASSES:
        assert name in ns
    assert set(F._PUBLIC_CLASSES) == set(NAMES + ["AdamW"])
    impl = fastnn._config.implementations()
    for name in F._PUBLIC_CLASSES:
        assert impl["optimizer." + name] == "compiled"


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_threads_identical_on_a_flat_network(name):
    """A network's parameters, views of one flat buffer: on two threads each parameter is split in
    two halves of its rows (the halves the network's two-thread pass owns); the same numbers as
    the one-thread single pass."""
    from fastnn.multi_layer_net_extend import MultiLayerNetExtend
    out = {}
    old = fastnn.get_num_threads()
    try:
        for nt in (1, 2):
            fastnn.set_num_threads(nt)
            np.random.seed(0)
            net = MultiLayerNetExtend(784, [600] * 3, 10, use_batchnorm=True)   # 1.2M
            opt = getattr(F, name)()
            rng = np.random.RandomState(5)
            for _ in range(3):
                opt.update(net.params, {k: rng.randn(*v.shape) for k, v in net.params.items()})
            out[nt] = {k: v.copy() for k, v in net.params.items()}
    finally:
        fastnn.set_num_threads(old)
    for k in out[1]:
        np.testing.assert_array_equal(out[1][k], out[2][k], err_msg=k)


def test_adam_float64_moments_decayed_into_subnormals():
    """Units whose gradient stays 0 after the first step: m decays by 0.9 a step, out of the range
    in which the AVX-512 float64 kernel divides with FMAs (|lr_t * m| >= 2^-900, from about step
    5900) into subnormals (from about step 6700), those lanes then taking the hardware division,
    mixed in every vector of 8 with units that keep learning. Bit for bit the reference. The
    dead units' params are set to 0 before each step, so that they then hold the step's quotient
    exactly (-lr_t*m / (sqrt(v) + eps)), however small: compared every 10 steps."""
    shapes = {"W": (3, 37), "b": (37,)}
    params = _params(np.float64, 11, shapes)
    ref_params = _copy(params)
    fast, ref = F.Adam(), R.Adam()
    rng = np.random.RandomState(12)
    live = {k: np.arange(v.size).reshape(v.shape) % 2 == 0 for k, v in params.items()}
    tiny = np.finfo(np.float64).tiny
    seen = set()
    for step in range(7300):
        grads = _grads(params, rng)
        if step:
            grads = {k: np.where(live[k], g, 0.0) for k, g in grads.items()}
        for k in shapes:
            params[k][~live[k]] = 0.0
            ref_params[k][~live[k]] = 0.0
        fast.update(params, grads)
        ref.update(ref_params, grads)
        if step % 10 == 9:
            _assert_match("Adam", np.float64, params, ref_params)
            dead_m = np.abs(np.concatenate([fast.m[k][~live[k]] for k in shapes]))
            a = 0.001 * dead_m                     # lr_t * m, lr_t ~ lr = 0.001 by then
            if (a >= 2.0 ** -900).any() and (a < 2.0 ** -900).any():
                seen.add("straddle")
            if ((dead_m < tiny) & (dead_m > 0)).all():
                seen.add("subnormal")
        if step % 730 == 729 or step == 7299:
            _assert_match("Adam", np.float64, fast.m, ref.m)
            _assert_match("Adam", np.float64, fast.v, ref.v)
    assert seen == {"straddle", "subnormal"}


@pytest.mark.parametrize("name", ["AdaGrad", "RMSprop", "Adam"])
def test_float64_gradients_of_every_magnitude(name):
    """Gradients from 1e-320 to 1e150: the quotients on both sides of every bound of the float64
    kernels' FMA division (numerator tiny or subnormal, sqrt(h) + eps above 2^100)."""
    rng = np.random.RandomState(13)
    shape = (301,)
    params = {"p": rng.randn(*shape)}
    ref_params = _copy(params)
    fast, ref = getattr(F, name)(), getattr(R, name)()
    for _ in range(4):
        g = rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(-320, 150, shape)
        g[rng.rand(*shape) < 0.1] = 0.0
        params["p"][::2] = ref_params["p"][::2] = 0.0     # these then hold -quotient exactly
        fast.update(params, {"p": g})
        ref.update(ref_params, {"p": g})
        _assert_match(name, np.float64, params, ref_params)
    for state in STATES[name]:
        _assert_match(name, np.float64, getattr(fast, state), getattr(ref, state))


@pytest.mark.parametrize("name", ["AdaGrad", "RMSprop", "Adam"])
@pytest.mark.parametrize("n", [61, 40_003])
def test_float64_params_at_every_alignment(name, n):
    """Params and grads at every 8-byte offset within a 64-byte line: the AVX-512 float64 loops
    start at the param's first 64-byte boundary (40003 elements: the prefetching blocks too)."""
    rng = np.random.RandomState(14)
    pbuf, gbuf = np.empty(n + 8), np.empty(n + 8)
    for off in range(8):
        p = pbuf[off:off + n]
        g = gbuf[(3 * off) % 8:(3 * off) % 8 + n]
        p[...] = rng.randn(n)
        ref_params = {"w": p.copy()}
        params = {"w": p}
        fast, ref = getattr(F, name)(), getattr(R, name)()
        for _ in range(3):
            g[...] = rng.randn(n)
            fast.update(params, {"w": g})
            ref.update(ref_params, {"w": g.copy()})
        assert params["w"] is p
        _assert_match(name, np.float64, params, ref_params)
        for state in STATES[name]:
            _assert_match(name, np.float64, getattr(fast, state), getattr(ref, state))


def test_float32_division_rules_match_the_avx2_path(tmp_path):
    """float32 AdaGrad, RMSprop, Adam and AdamW (with and without weight decay) in this process
    (the AVX-512 copy on such a CPU) and with FASTNN_SIMD=avx2 in a child: bit for bit the same
    params and states, for gradients of every magnitude, moments decayed into subnormals, zero
    numerators, params and grads at every offset in a line (tests/_optim_f32_cases.py)."""
    import _optim_f32_cases
    here = os.path.dirname(os.path.abspath(__file__))
    path = str(tmp_path / "avx2.npz")
    code = ("import sys; sys.path.insert(0, %r); import numpy as np; from fastnn import _runtime;"
            "import _optim_f32_cases as c; assert _runtime.simd_path() != 'AVX-512';"
            "np.savez(%r, **c.run_cases())" % (here, path))
    child = subprocess.Popen([sys.executable, "-c", code], cwd="/",
                             env=subprocess_env(FASTNN_SIMD="avx2"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    mine = _optim_f32_cases.run_cases()
    _, err = child.communicate()
    assert child.returncode == 0, err
    with np.load(path) as theirs:
        assert sorted(theirs.files) == sorted(mine)
        for key, x in mine.items():
            assert x.dtype == np.float32
            y = theirs[key]
            bad = np.flatnonzero(x.view(np.uint32) != y.view(np.uint32))
            assert bad.size == 0, "%s: %d differ, first %r vs %r" % (
                key, bad.size, float(x.flat[bad[0]]), float(y.flat[bad[0]]))
    # the dead units' moments did decay into subnormals, the live ones' did not
    m = np.abs(mine["dead/Adam/m.W"].ravel())
    dead = np.arange(m.size) % 2 == 1
    assert (m[dead] < np.finfo(np.float32).tiny).all() and (m[~dead] > 2.0 ** -76).all()
    assert (mine["dead/Adam/m.Z"][:32] == 0).all()


# --- StepPlan.reserve / reserved_tables / unreserve: the update a training pass applies itself --

def _reserved_call(dtype=np.float64, n=3):
    rng = np.random.default_rng(0)
    params = {"p%d" % i: rng.random(5 + i).astype(dtype) for i in range(n)}
    grads = {k: rng.random(v.shape).astype(dtype) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(a) for k, a in params.items()}
    return params, grads, m, v


def test_reserved_tables_hold_the_arrays_until_unreserve():
    from fastnn import _optim
    params, grads, m, v = _reserved_call()
    plan = _optim.StepPlan(_optim.ADAM, 2)
    with pytest.raises(RuntimeError, match="reserve"):
        plan.reserved_tables(1)
    def refs():     # (outside the asserts: pytest's rewriting holds their operands)
        return sys.getrefcount(grads["p1"])
    before = refs()
    assert plan.reserve(params, grads, m, v) == _optim.DONE
    held = refs()
    assert held == before + 1                                # held while reserved
    tables = plan.reserved_tables(1)
    assert type(tables).__name__ == "PyCapsule"
    assert plan.last_segments == 3 and plan.last_elements == sum(a.size for a in params.values())
    with pytest.raises(RuntimeError, match="already running"):
        plan.reserve(params, grads, m, v)                    # one update at a time
    plan.unreserve()
    released = refs()
    assert released == before
    with pytest.raises(RuntimeError, match="reserve"):
        plan.reserved_tables(1)
    # usable again, and a failed reservation holds nothing
    m.pop("p2")
    with pytest.raises(KeyError):
        plan.reserve(params, grads, m, v)
    released = refs()
    assert released == before
    with pytest.raises(RuntimeError, match="reserve"):
        plan.reserved_tables(1)


@pytest.mark.parametrize("case", ["other dtype too", "strided gradient", "aliased gradient"])
def test_reserved_tables_refused_when_they_cannot_be_the_call(case):
    """No tables (None) when running them would differ from update(): arrays of the other
    dtype (the tables hold one), or a gradient the validation copied (a later write of the
    gradient would not reach the copy)."""
    from fastnn import _optim
    params, grads, m, v = _reserved_call()
    if case == "other dtype too":
        for d in (params, grads, m, v):
            d["p0"] = d["p0"].astype(np.float32)
    elif case == "strided gradient":
        grads["p1"] = np.repeat(grads["p1"], 2)[::2]
    else:
        grads["p1"] = params["p1"]
    plan = _optim.StepPlan(_optim.ADAM, 2)
    assert plan.reserve(params, grads, m, v) == _optim.DONE
    try:
        assert plan.reserved_tables(1) is None
    finally:
        plan.unreserve()
