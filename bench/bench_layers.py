"""Benchmarks of the foundation's compiled layers: Affine, Relu, Sigmoid, SoftmaxWithLoss.

Each row times one forward+backward of the layer: the book's NumPy code (fastnn.reference),
fastnn, and PyTorch CPU (autograd, as its users run it) when importable. Affine rows also time
its three bare GEMM calls (the floor: "gemm floor" column, the BLAS called as the layer calls
it: csrc/gemm.h) and report fastnn / floor; "plain gemm floor" makes each product one BLAS call.

Run: python bench/bench_layers.py [--quick] [--threads 1,2] [--json FILE]
"""
import harness  # first: it configures the thread pools before NumPy loads its BLAS

import numpy as np  # noqa: E402
from fastnn import _affine, layers
from fastnn.reference import layers as ref


def _affine_case(N, K, M, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, K)).astype(dtype)
    W = (rng.standard_normal((K, M)) * 0.05).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    dout = rng.standard_normal((N, M)).astype(dtype)
    fast, slow = layers.Affine(W, b), ref.Affine(W, b)
    y, dx, dW = np.empty((N, M), dtype), np.empty((N, K), dtype), np.empty((K, M), dtype)

    def run_fast():
        fast.forward(x)
        fast.backward(dout)

    def run_ref():
        slow.forward(x)
        slow.backward(dout)

    impls = {"reference": run_ref, "fastnn": run_fast,
             "gemm floor": lambda: _affine.gemm_floor(x, W, dout, y, dx, dW),
             "plain gemm floor": lambda: _affine.gemm_floor(x, W, dout, y, dx, dW, True)}
    torch = harness.torch
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_(True)
        tW = torch.from_numpy(W).requires_grad_(True)
        tb = torch.from_numpy(b).requires_grad_(True)
        tdout = torch.from_numpy(dout)

        def run_torch():
            tx.grad = tW.grad = tb.grad = None
            out = torch.addmm(tb, tx, tW)
            out.backward(tdout)
        impls["torch"] = run_torch
    return harness.Case(kernel="Affine fwd+bwd", size="%dx%dx%d" % (N, K, M), impls=impls,
                        flops=3 * 2.0 * N * K * M)


def _elementwise_case(name, N, D, dtype=np.float32):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, D)).astype(dtype)
    dout = rng.standard_normal((N, D)).astype(dtype)
    item = np.dtype(dtype).itemsize
    fast = getattr(layers, name)()
    slow = getattr(ref, name)()
    # Relu's backward modifies dout in place (book semantics): give each call the same values
    d_fast, d_slow = dout.copy(), dout.copy()

    def run_fast():
        fast.forward(x)
        fast.backward(d_fast)

    def run_ref():
        slow.forward(x)
        slow.backward(d_slow)

    impls = {"reference": run_ref, "fastnn": run_fast}
    torch = harness.torch
    if torch is not None:
        tx = torch.from_numpy(x).requires_grad_(True)
        tdout = torch.from_numpy(dout)
        op = torch.relu if name == "Relu" else torch.sigmoid

        def run_torch():
            tx.grad = None
            op(tx).backward(tdout)
        impls["torch"] = run_torch
    # minimal traffic: forward reads x, writes out; backward reads dout and (mask bytes | out),
    # writes dx
    extra = 1 if name == "Relu" else item
    nbytes = N * D * (2 * item + 2 * item + extra)
    return harness.Case(kernel="%s fwd+bwd" % name, size="%dx%d" % (N, D), impls=impls,
                        bytes=nbytes)


def _softmax_case(N, C, dtype=np.float32):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C)).astype(dtype)
    t = rng.integers(0, C, N)
    fast, slow = layers.SoftmaxWithLoss(), ref.SoftmaxWithLoss()

    def run_fast():
        fast.forward(x, t)
        fast.backward()

    def run_ref():
        slow.forward(x, t)
        slow.backward()

    impls = {"reference": run_ref, "fastnn": run_fast}
    torch = harness.torch
    if torch is not None:
        import torch.nn.functional as F
        tx = torch.from_numpy(x).requires_grad_(True)
        tt = torch.from_numpy(t)

        def run_torch():
            tx.grad = None
            F.cross_entropy(tx, tt).backward()
        impls["torch"] = run_torch
    item = np.dtype(dtype).itemsize
    # read x, write y (the book keeps the softmax), write dx
    return harness.Case(kernel="SoftmaxWithLoss fwd+bwd", size="%dx%d" % (N, C), impls=impls,
                        bytes=3 * N * C * item)


def make_cases(args):
    cases = [
        _affine_case(100, 100, 100),
        _affine_case(100, 784, 100),
        _affine_case(1024, 1024, 1024) if args.quick else _affine_case(4096, 1024, 1024),
        _softmax_case(100, 10),
        _softmax_case(4096, 1000),
        _elementwise_case("Relu", 4096, 1024),
        _elementwise_case("Sigmoid", 4096, 1024),
    ]
    return cases


if __name__ == "__main__":
    harness.main("fastnn foundation layers: forward+backward, float32", make_cases)
