"""Tests of fastnn.reference.optimizer against the closed-form update rules
(book-compat.md section 6, test ideas 19-23)."""

import numpy as np
import pytest

from fastnn.reference import optimizer as O


def _problem(seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    params = {"W": rng.randn(3, 4).astype(dtype), "b": rng.randn(4).astype(dtype)}
    grads_seq = [{"W": rng.randn(3, 4).astype(dtype), "b": rng.randn(4).astype(dtype)}
                 for _ in range(5)]
    return params, grads_seq


# Independent closed forms, written functionally (no in-place operations).

def ref_sgd(p, gs, lr=0.01):
    for g in gs:
        p = p - lr * g
    return p


def ref_momentum(p, gs, lr=0.01, mu=0.9):
    v = 0 * p
    for g in gs:
        v = mu * v - lr * g
        p = p + v
    return p


def ref_nesterov(p, gs, lr=0.01, mu=0.9):
    # Bengio et al. 2012 / PyTorch nesterov=True form: p += mu*v_new - lr*g
    v = 0 * p
    for g in gs:
        v = mu * v - lr * g
        p = p + mu * v - lr * g
    return p


def ref_nesterov_old(p, gs, lr=0.01, mu=0.9):
    # the pre-2021 book order: v first, then p += mu^2 v - (1+mu) lr g
    v = 0 * p
    for g in gs:
        v = mu * v - lr * g
        p = p + mu * mu * v - (1 + mu) * lr * g
    return p


def ref_adagrad(p, gs, lr=0.01):
    h = 0 * p
    for g in gs:
        h = h + g ** 2
        p = p - lr * g / (np.sqrt(h) + 1e-7)
    return p


def ref_rmsprop(p, gs, lr=0.01, rho=0.99):
    h = 0 * p
    for g in gs:
        h = rho * h + (1 - rho) * g ** 2
        p = p - lr * g / (np.sqrt(h) + 1e-7)
    return p


def ref_adam(p, gs, lr=0.001, b1=0.9, b2=0.999):
    # textbook Adam with bias-corrected moments and eps_t = 1e-7 / sqrt(1 - b2^t)
    m = 0 * p
    v = 0 * p
    for t, g in enumerate(gs, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        mhat = m / (1 - b1 ** t)
        vhat = v / (1 - b2 ** t)
        eps_t = 1e-7 / np.sqrt(1 - b2 ** t)
        p = p - lr * mhat / (np.sqrt(vhat) + eps_t)
    return p


CASES = [
    (O.SGD, {}, ref_sgd),
    (O.SGD, {"lr": 0.5}, ref_sgd),
    (O.Momentum, {}, ref_momentum),
    (O.Momentum, {"lr": 0.1, "momentum": 0.5}, ref_momentum),
    (O.Nesterov, {}, ref_nesterov),
    (O.Nesterov, {"lr": 0.1, "momentum": 0.8}, ref_nesterov),
    (O.AdaGrad, {}, ref_adagrad),
    (O.AdaGrad, {"lr": 1.5}, ref_adagrad),
    (O.RMSprop, {}, ref_rmsprop),
    (O.RMSprop, {"lr": 0.1, "decay_rate": 0.9}, ref_rmsprop),
    (O.Adam, {}, ref_adam),
    (O.Adam, {"lr": 0.3, "beta1": 0.8, "beta2": 0.99}, ref_adam),
]

_KW = {"momentum": "mu", "decay_rate": "rho", "beta1": "b1", "beta2": "b2"}


@pytest.mark.parametrize("cls,kw,ref", CASES)
@pytest.mark.parametrize("steps", [1, 5])
def test_update_matches_closed_form(cls, kw, ref, steps):
    params, grads_seq = _problem(steps)
    start = {k: v.copy() for k, v in params.items()}
    objs = {k: v for k, v in params.items()}
    grads_copy = [{k: v.copy() for k, v in g.items()} for g in grads_seq]
    opt = cls(**kw)
    for g in grads_seq[:steps]:
        assert opt.update(params, g) is None
    for k in params:
        assert params[k] is objs[k]                      # updated in place
        expected = ref(start[k], [g[k] for g in grads_seq[:steps]],
                       **{_KW.get(a, a): b for a, b in kw.items()})
        np.testing.assert_allclose(params[k], expected, rtol=1e-12, atol=1e-15)
    for g, gc in zip(grads_seq, grads_copy):             # grads never modified
        for k in g:
            np.testing.assert_array_equal(g[k], gc[k])


def test_default_hyperparameters():
    assert O.SGD().lr == 0.01
    m = O.Momentum(); assert (m.lr, m.momentum, m.v) == (0.01, 0.9, None)
    n = O.Nesterov(); assert (n.lr, n.momentum, n.v) == (0.01, 0.9, None)
    a = O.AdaGrad(); assert (a.lr, a.h) == (0.01, None)
    r = O.RMSprop(); assert (r.lr, r.decay_rate, r.h) == (0.01, 0.99, None)
    d = O.Adam(); assert (d.lr, d.beta1, d.beta2, d.iter, d.m, d.v) == (0.001, 0.9, 0.999, 0, None, None)


def test_hand_computed_single_steps():
    g = np.array([2.0])
    p = {"x": np.array([1.0])}
    O.AdaGrad(lr=0.5).update(p, {"x": g})
    assert p["x"][0] == pytest.approx(1 - 0.5 * 2 / (2 + 1e-7), rel=1e-15)
    p = {"x": np.array([1.0])}
    O.RMSprop(lr=0.5).update(p, {"x": g})
    assert p["x"][0] == pytest.approx(1 - 0.5 * 2 / (np.sqrt(0.04) + 1e-7), rel=1e-15)
    p = {"x": np.array([1.0])}
    opt = O.Adam(lr=0.1)
    opt.update(p, {"x": g})
    lr_t = 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9)
    m, v = 0.1 * 2, 0.001 * 4
    assert p["x"][0] == pytest.approx(1 - lr_t * m / (np.sqrt(v) + 1e-7), rel=1e-15)
    np.testing.assert_allclose(opt.m["x"], [m], rtol=1e-15)
    np.testing.assert_allclose(opt.v["x"], [v], rtol=1e-15)


def test_nesterov_current_order_differs_from_old_order():
    params, grads_seq = _problem(11)
    start = params["W"].copy()
    opt = O.Nesterov(lr=0.1)
    for g in grads_seq[:2]:
        opt.update(params, g)
    gs = [g["W"] for g in grads_seq[:2]]
    np.testing.assert_allclose(params["W"], ref_nesterov(start, gs, lr=0.1), rtol=1e-12)
    old = ref_nesterov_old(start, gs, lr=0.1)
    assert np.max(np.abs(params["W"] - old)) > 1e-3


def test_adam_iter_counts_calls_not_keys():
    params, grads_seq = _problem(12)
    opt = O.Adam()
    for i, g in enumerate(grads_seq[:3], start=1):
        opt.update(params, g)
        assert opt.iter == i


def _naive_trajectory(opt, steps=30):
    params = {"x": -7.0, "y": 2.0}
    path = []
    for _ in range(steps):
        path.append((params["x"], params["y"]))
        grads = {"x": params["x"] / 10.0, "y": 2.0 * params["y"]}
        opt.update(params, grads)
    return params, path


def _scalar_ref(name, lr, steps=30):
    x = np.array([-7.0, 2.0])
    s1 = np.zeros(2)
    s2 = np.zeros(2)
    path = []
    for t in range(1, steps + 1):
        path.append(tuple(x))
        g = np.array([x[0] / 10.0, 2.0 * x[1]])
        if name == "SGD":
            x = x - lr * g
        elif name == "Momentum":
            s1 = 0.9 * s1 - lr * g
            x = x + s1
        elif name == "AdaGrad":
            s1 = s1 + g * g
            x = x - lr * g / (np.sqrt(s1) + 1e-7)
        elif name == "Adam":
            s1 = 0.9 * s1 + 0.1 * g
            s2 = 0.999 * s2 + 0.001 * g * g
            lr_t = lr * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            x = x - lr_t * s1 / (np.sqrt(s2) + 1e-7)
    return x, path


@pytest.mark.parametrize("name,cls,lr", [("SGD", O.SGD, 0.95), ("Momentum", O.Momentum, 0.1),
                                         ("AdaGrad", O.AdaGrad, 1.5), ("Adam", O.Adam, 0.3)])
def test_python_float_params_optimizer_compare_naive(name, cls, lr):
    params, path = _naive_trajectory(cls(lr=lr))
    x_ref, path_ref = _scalar_ref(name, lr)
    np.testing.assert_allclose(np.array(path), np.array(path_ref), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose([params["x"], params["y"]], x_ref, rtol=1e-12, atol=1e-14)
    if name == "SGD":
        assert type(params["x"]) is float and type(params["y"]) is float
    else:
        assert type(params["x"]) is np.float64 and type(params["y"]) is np.float64


@pytest.mark.parametrize("cls", [O.Nesterov, O.RMSprop])
def test_python_float_params_other_optimizers(cls):
    params, _ = _naive_trajectory(cls(lr=0.05), steps=5)
    assert type(params["x"]) is np.float64


@pytest.mark.parametrize("cls", [O.SGD, O.Momentum, O.Nesterov, O.AdaGrad, O.RMSprop, O.Adam])
def test_float32_stays_float32_and_key_errors(cls):
    params, grads_seq = _problem(13, np.float32)
    opt = cls()
    opt.update(params, grads_seq[0])
    assert params["W"].dtype == np.float32 and params["b"].dtype == np.float32
    with pytest.raises(KeyError):                        # grads must hold every key
        opt.update(params, {"W": grads_seq[1]["W"]})
    if cls is not O.SGD:
        params2, grads2 = _problem(14)
        opt2 = cls()
        opt2.update(params2, grads2[0])
        params2["c"] = np.zeros(2)
        grads2[1]["c"] = np.ones(2)
        with pytest.raises(KeyError):                    # state only for the first keys
            opt2.update(params2, grads2[1])


def test_extra_grad_keys_ignored():
    params = {"a": np.ones(2)}
    O.SGD(lr=1.0).update(params, {"a": np.ones(2), "zzz": np.ones(5)})
    np.testing.assert_array_equal(params["a"], [0.0, 0.0])


def test_star_import_exports_np():
    ns = {}
    exec("from fastnn.reference.optimizer import *", ns)
    assert ns["np"] is np
    for name in ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"]:
        assert name in ns
    assert not hasattr(O, "__all__")
