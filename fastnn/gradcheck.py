"""Numerical versus backpropagation gradients of every fastnn layer and network (``fastnn
gradcheck``).

Central differences (``fastnn.gradient.numerical_gradient``, h = 1e-4) in float64 on small
random problems. Layers are checked through the scalar ``sum(forward(x) * w)`` for a random
``w`` (backward gets ``w``); Dropout keeps its mask fixed by reseeding NumPy's generator before
each forward. Networks are checked with their own ``numerical_gradient`` against ``gradient``
(sigmoid networks: no ReLU kinks; BatchNorm with a batch of 8, never 1).
"""
import numpy as np

from fastnn import layers as L
from fastnn.gradient import numerical_gradient

TOL = 1e-5      # max |backprop - numerical| / max(1, |numerical|) to pass (h = 1e-4: ~1e-7 typical)


def _rel(a, n):
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    return float(np.max(np.abs(a - n) / np.maximum(1.0, np.abs(n)))) if a.size else 0.0


def _layer_rows(rng):
    rows = []

    def check(name, layer, x, params=(), train=None, reseed=None, shape_out=None):
        w = rng.standard_normal(shape_out or x.shape)

        def fwd():
            if reseed is not None:
                np.random.seed(reseed)
            out = layer.forward(x) if train is None else layer.forward(x, train)
            return out

        def f(_):
            return float(np.sum(fwd() * w))
        fwd()
        dx = layer.backward(w.copy())
        rows.append((name, "x", _rel(dx, numerical_gradient(f, x))))
        for pname, attr in params:
            fwd()
            layer.backward(w.copy())
            analytic = np.array(getattr(layer, attr), copy=True)
            rows.append((name, pname, _rel(analytic, numerical_gradient(f, getattr(layer, pname)))))

    x = rng.standard_normal((6, 5))
    check("Relu", L.Relu(), x + np.sign(x) * 0.01)      # keep away from the kink
    check("Sigmoid", L.Sigmoid(), x)
    W, b = rng.standard_normal((5, 4)), rng.standard_normal(4)
    check("Affine", L.Affine(W, b), x, params=(("W", "dW"), ("b", "db")), shape_out=(6, 4))
    x4 = rng.standard_normal((3, 2, 2, 3))
    W4, b4 = rng.standard_normal((12, 4)), rng.standard_normal(4)
    check("Affine (4-D input)", L.Affine(W4, b4), x4, params=(("W", "dW"),), shape_out=(3, 4))
    g, be = rng.standard_normal(5) + 1.0, rng.standard_normal(5)
    check("BatchNormalization", L.BatchNormalization(g, be), rng.standard_normal((8, 5)),
          params=(("gamma", "dgamma"), ("beta", "dbeta")), train=True)
    check("Dropout", L.Dropout(0.3), x, train=True, reseed=1234)

    # SoftmaxWithLoss: index and one-hot labels
    for label in ("index", "one-hot"):
        s = L.SoftmaxWithLoss()
        xs = rng.standard_normal((6, 4))
        t = rng.integers(0, 4, 6)
        if label == "one-hot":
            t = np.eye(4)[t]

        def f(_, s=s, xs=xs, t=t):
            return float(s.forward(xs, t))
        s.forward(xs, t)
        dx = s.backward(1)
        rows.append(("SoftmaxWithLoss (%s)" % label, "x", _rel(dx, numerical_gradient(f, xs))))
    return rows


def _network_rows(rng):
    from fastnn.multi_layer_net import MultiLayerNet
    from fastnn.multi_layer_net_extend import MultiLayerNetExtend
    from fastnn.two_layer_net import TwoLayerNet
    rows = []
    x = rng.standard_normal((8, 6))
    t = rng.integers(0, 3, 8)
    nets = [
        ("TwoLayerNet (ReLU)", TwoLayerNet(6, 5, 3, weight_init_std=0.5)),
        ("MultiLayerNet (sigmoid)", MultiLayerNet(6, [5, 4], 3, activation="sigmoid",
                                                  weight_init_std="xavier")),
        ("MultiLayerNet (sigmoid, weight decay 0.1)",
         MultiLayerNet(6, [5, 4], 3, activation="sigmoid", weight_decay_lambda=0.1)),
        ("MultiLayerNetExtend (sigmoid, BatchNorm)",
         MultiLayerNetExtend(6, [5, 4], 3, activation="sigmoid", use_batchnorm=True)),
        ("MultiLayerNetExtend (ReLU, BatchNorm, decay 0.05)",
         MultiLayerNetExtend(6, [5, 4], 3, use_batchnorm=True, weight_decay_lambda=0.05)),
    ]
    for name, net in nets:
        numeric = net.numerical_gradient(x, t)
        backprop = {k: np.array(v, copy=True) for k, v in net.gradient(x, t).items()}
        for k in backprop:
            rows.append((name, k, _rel(backprop[k], numeric[k])))
    return rows


def run_all(seed=0, verbose=True, tol=TOL):
    """Check every layer and network; print the report; True when all pass."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        rng = np.random.default_rng(seed)
        rows = _layer_rows(rng) + _network_rows(rng)
    finally:
        np.random.set_state(state)
    ok = all(r[2] <= tol for r in rows)
    if verbose:
        print("gradient check: float64, central differences h=1e-4; error = max |backprop - "
              "numerical| / max(1, |numerical|), pass <= %g" % tol)
        print("%-52s %-8s %12s  %s" % ("layer / network", "grad", "error", ""))
        for name, key, err in rows:
            print("%-52s %-8s %12.3e  %s" % (name, key, err, "ok" if err <= tol else "FAIL"))
        print("%d checks, %s" % (len(rows), "all passed" if ok else
                                 "%d FAILED" % sum(r[2] > tol for r in rows)))
    return ok
