"""One training step of the chapter-6 network: forward, backward and Adam update.

Network 784-100x6-10 (MultiLayerNetExtend: He init, BatchNorm, ReLU, Dropout 0.15), batch 100,
float32 and float64, at 1 and 2 threads. Implementations:

* reference  -- the book's NumPy code (fastnn.reference network + reference Adam);
* fastnn     -- fastnn.MultiLayerNetExtend (compiled layers, flat buffers) + fastnn Adam, one
                ``net.train_step(x, t, opt)`` (what fastnn's Trainer calls: the pass applies
                the update, at one thread after the backward, at two overlapping it);
* fastnn 2 calls -- the same as the book's code calls it: ``opt.update(net.params,
                net.gradient(x, t))`` (the same results);
* fastnn gradient, fastnn update -- the two calls' parts alone, each timed on its own (the
                update on one fixed set of gradients): where a step's time goes;
* torch      -- PyTorch eager: nn.Sequential of Linear/BatchNorm1d/ReLU/Dropout,
                CrossEntropyLoss, Adam(fused=True), when torch is importable;
* gemm floor -- only the network's GEMM calls: per layer the forward x·W, and the backward
                xᵀ·dout and dout·Wᵀ, through fastnn._affine.gemm_floor (three GEMMs in one call,
                the same BLAS calls as the layers: split into the BLAS's small-kernel blocks
                and dx through W's transpose where the layers do so, csrc/gemm.h). The first
                layer's dx is not needed by a network, so "floor-dx1" leaves it out (layer 1:
                forward and dW GEMMs only);
* plain floor-dx1 -- the same products, each as one BLAS call (what the layers called before
                the small-kernel blocks): "plain x" is fastnn / (plain floor-dx1).

The "floor x" column is fastnn / (floor-dx1): the target is <= 1.3 ("2 calls floor x": the same
for "fastnn 2 calls"; "grad x" and "update x" for the parts, whose sum can be less than the two
calls': run alone, each keeps more of its data in cache).

A second case times one evaluation, ``loss(x, t)`` in inference mode (what the book's Trainer
calls after every step): the book's code, fastnn (one compiled forward), "fastnn layers" (the
same network calling its layers one by one, ``compiled_predict = False``) and PyTorch
(``eval()`` forward and CrossEntropyLoss under ``no_grad``).

Each timed round runs one implementation's steps back to back for at least 30 ms (a short
stretch of training, as a training loop runs them) after the other implementations' rounds;
the medians are over rounds.

Run: python bench/bench_train_step.py [--quick] [--threads 1,2] [--json FILE]
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (first: it configures the thread pools before NumPy loads its BLAS)

import numpy as np  # noqa: E402

from fastnn import _affine  # noqa: E402
from fastnn.multi_layer_net_extend import MultiLayerNetExtend  # noqa: E402
from fastnn.optimizer import Adam  # noqa: E402
from fastnn.reference.multi_layer_net_extend import MultiLayerNetExtend as RefNet  # noqa: E402
from fastnn.reference.optimizer import Adam as RefAdam  # noqa: E402

SIZES = [784] + [100] * 6 + [10]
BATCH = 100
DROPOUT = 0.15


def _data(dtype):
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, SIZES[0])).astype(dtype)
    t = rng.integers(0, SIZES[-1], BATCH)
    return x, t


def _fastnn_net(dtype):
    np.random.seed(0)
    return MultiLayerNetExtend(SIZES[0], SIZES[1:-1], SIZES[-1], use_batchnorm=True,
                               use_dropout=True, dropout_ration=DROPOUT, dtype=dtype)


def _fastnn_step(dtype, part=None):
    """One step (``train_step``), or part "two calls", "gradient" or "update" of it."""
    net = _fastnn_net(dtype)
    opt = Adam(lr=0.001)
    x, t = _data(dtype)
    grads = {k: v.copy() for k, v in net.gradient(x, t).items()}
    return {None: lambda: net.train_step(x, t, opt),
            "two calls": lambda: opt.update(net.params, net.gradient(x, t)),
            "gradient": lambda: net.gradient(x, t),
            "update": lambda: opt.update(net.params, grads)}[part]


def _reference_net(dtype):
    np.random.seed(0)
    net = RefNet(SIZES[0], SIZES[1:-1], SIZES[-1], use_batchnorm=True, use_dropout=True,
                 dropout_ration=DROPOUT)
    for k in net.params:                       # the book's network in float32: cast in place
        if dtype == np.float32:
            net.params[k] = net.params[k].astype(np.float32)
    # rebind the layers to the cast arrays (the book's nets share them)
    for i in range(1, len(SIZES)):
        aff = net.layers['Affine%d' % i]
        aff.W, aff.b = net.params['W%d' % i], net.params['b%d' % i]
        if i < len(SIZES) - 1:
            bn = net.layers['BatchNorm%d' % i]
            bn.gamma, bn.beta = net.params['gamma%d' % i], net.params['beta%d' % i]
    return net


def _reference_step(dtype):
    net = _reference_net(dtype)
    opt = RefAdam(lr=0.001)
    x, t = _data(dtype)

    def step():
        opt.update(net.params, net.gradient(x, t))
    return step


def _torch_step(torch, dtype):
    nn = torch.nn
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    torch.manual_seed(0)
    mods = []
    for i in range(1, len(SIZES) - 1):
        mods += [nn.Linear(SIZES[i - 1], SIZES[i]), nn.BatchNorm1d(SIZES[i], eps=1e-6),
                 nn.ReLU(), nn.Dropout(DROPOUT)]
    mods.append(nn.Linear(SIZES[-2], SIZES[-1]))
    model = nn.Sequential(*mods).to(tdt).train()
    opt = torch.optim.Adam(model.parameters(), lr=0.001, fused=True)
    loss_fn = nn.CrossEntropyLoss()
    x, t = _data(dtype)
    tx, tt = torch.from_numpy(x), torch.from_numpy(t)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(tx), tt)
        loss.backward()
        opt.step()
    step.parts = (model, loss_fn, tx, tt)
    return step


def _trained(net, opt, dtype):
    """A few steps first: running statistics away from their start, as in an evaluation."""
    x, t = _data(dtype)
    for _ in range(3):
        opt.update(net.params, net.gradient(x, t))
    return net


def _fastnn_eval(dtype, compiled):
    net = _trained(_fastnn_net(dtype), Adam(lr=0.001), dtype)
    net.compiled_predict = compiled
    x, t = _data(dtype)
    return lambda: net.loss(x, t)


def _reference_eval(dtype):
    net = _trained(_reference_net(dtype), RefAdam(lr=0.001), dtype)
    x, t = _data(dtype)
    return lambda: net.loss(x, t)


def _torch_eval(torch, dtype):
    step = _torch_step(torch, dtype)
    for _ in range(3):
        step()
    model, loss_fn, tx, tt = step.parts
    model.eval()

    def run():
        with torch.no_grad():
            return loss_fn(model(tx), tt)
    return run


def _gemm_floor(dtype, skip_dx1, plain=False):
    rng = np.random.default_rng(2)
    bufs = []
    for i in range(1, len(SIZES)):
        K, M = SIZES[i - 1], SIZES[i]
        x = rng.random((BATCH, K)).astype(dtype)
        W = rng.random((K, M)).astype(dtype)
        d = rng.random((BATCH, M)).astype(dtype)
        dx = None if (skip_dx1 and i == 1) else np.empty((BATCH, K), dtype)
        bufs.append((x, W, d, np.empty((BATCH, M), dtype), dx, np.empty((K, M), dtype)))
    floor = _affine.gemm_floor

    def run():
        for x, W, d, y, dx, dW in bufs:
            floor(x, W, d, y, dx, dW, plain)
    return run


def make_cases(args):
    torch = harness.torch
    cases = []
    for dtype in (np.float32, np.float64):
        impls = {"reference": _reference_step(dtype), "fastnn": _fastnn_step(dtype),
                 "fastnn 2 calls": _fastnn_step(dtype, "two calls"),
                 "fastnn gradient": _fastnn_step(dtype, "gradient"),
                 "fastnn update": _fastnn_step(dtype, "update"),
                 "torch": _torch_step(torch, dtype) if torch is not None else None,
                 "gemm floor": _gemm_floor(dtype, False),
                 "floor-dx1": _gemm_floor(dtype, True),
                 "plain floor-dx1": _gemm_floor(dtype, True, plain=True)}
        cases.append(harness.Case(kernel="train step %s" % np.dtype(dtype).name,
                                  size="784-100x6-10 b100", impls=impls, min_round=0.03))
    for dtype in (np.float32, np.float64):
        impls = {"reference": _reference_eval(dtype), "fastnn": _fastnn_eval(dtype, True),
                 "fastnn layers": _fastnn_eval(dtype, False),
                 "torch": _torch_eval(torch, dtype) if torch is not None else None}
        cases.append(harness.Case(kernel="eval loss %s" % np.dtype(dtype).name,
                                  size="784-100x6-10 b100", impls=impls, min_round=0.03))
    return cases


def _report(rows):
    print()
    print("%-20s %3s %10s %10s %10s %12s %9s %14s %7s %9s %8s" % (
        "step", "thr", "vs ref", "vs torch", "floor ms", "floor-dx1 ms", "floor x",
        "2 calls floor x", "grad x", "update x", "plain x"))
    for r in rows:
        ms = r["ms"]
        if "floor-dx1" not in ms:
            continue
        fl = ms.get("floor-dx1")
        r["step_over_floor"] = ms["fastnn"] / fl if fl else None
        r["two_calls_over_floor"] = ms["fastnn 2 calls"] / fl if fl else None
        r["gradient_over_floor"] = ms["fastnn gradient"] / fl if fl else None
        r["update_over_floor"] = ms["fastnn update"] / fl if fl else None
        plain = ms.get("plain floor-dx1")
        r["step_over_plain_floor"] = ms["fastnn"] / plain if plain else None
        print("%-20s %3d %10s %10s %10.3f %12.3f %8.2fx %13.2fx %6.2fx %8.2fx %7.2fx" % (
            r["kernel"], r["threads"], harness._fmt_ratio(r["speedup_vs_reference"]),
            harness._fmt_ratio(r["speedup_vs_torch"]), ms.get("gemm floor", float("nan")),
            fl or float("nan"), r["step_over_floor"] or float("nan"),
            r["two_calls_over_floor"] or float("nan"), r["gradient_over_floor"] or float("nan"),
            r["update_over_floor"] or float("nan"), r["step_over_plain_floor"] or float("nan")))


if __name__ == "__main__":
    rows = harness.main("One training step: forward, backward, Adam (ch.6 network)", make_cases)
    _report(rows)
