"""Benchmarks of BatchNormalization: training forward, backward, and forward+backward.

Implementations: the book's NumPy code (fastnn.reference), fastnn, and PyTorch CPU when importable.
PyTorch is timed kernel to kernel (``aten.native_batch_norm`` training forward, which also saves
the mean and inverse std, and ``aten.native_batch_norm_backward``), without autograd overhead; the
fwd+bwd rows also time PyTorch through autograd (``F.batch_norm`` + ``backward``), as its users run
it ("torch autograd" column).

Bytes per element (GB/s column): forward reads x twice (statistics, then normalisation) and
writes y: 3 element accesses; backward reads dout and x twice (sums, then dx) and writes dx: 5.
No algorithm does less on data that does not stay in cache between its passes.

Run: python bench/bench_batchnorm.py [--quick] [--threads 1,2] [--json FILE]
"""
import harness  # first: it configures the thread pools before NumPy loads its BLAS

import numpy as np  # noqa: E402
from fastnn import layers
from fastnn.reference import layers as ref

EPS = 1e-6


def _cases(N, D, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(dtype)
    gamma = (1 + 0.1 * rng.standard_normal(D)).astype(dtype)
    beta = (0.1 * rng.standard_normal(D)).astype(dtype)
    dout = rng.standard_normal((N, D)).astype(dtype)
    fast = layers.BatchNormalization(gamma, beta)
    slow = ref.BatchNormalization(gamma, beta)
    fast.forward(x)
    slow.forward(x)
    item = np.dtype(dtype).itemsize
    size = "%dx%d" % (N, D)

    fwd = {"reference": lambda: slow.forward(x), "fastnn": lambda: fast.forward(x)}
    bwd = {"reference": lambda: slow.backward(dout), "fastnn": lambda: fast.backward(dout)}

    def both_ref():
        slow.forward(x)
        slow.backward(dout)

    def both_fast():
        fast.forward(x)
        fast.backward(dout)

    both = {"reference": both_ref, "fastnn": both_fast}

    torch = harness.torch
    if torch is not None:
        tx, tdout = torch.from_numpy(x), torch.from_numpy(dout)
        tg, tb = torch.from_numpy(gamma), torch.from_numpy(beta)
        trm, trv = torch.zeros(D, dtype=tx.dtype), torch.zeros(D, dtype=tx.dtype)
        aten = torch.ops.aten
        _, smean, sinvstd = aten.native_batch_norm(tx, tg, tb, trm, trv, True, 0.1, EPS)
        mask = [True, True, True]

        def t_fwd():
            return aten.native_batch_norm(tx, tg, tb, trm, trv, True, 0.1, EPS)

        def t_bwd():
            return aten.native_batch_norm_backward(tdout, tx, tg, trm, trv, smean, sinvstd,
                                                   True, EPS, mask)

        def t_both():
            _, m, s = aten.native_batch_norm(tx, tg, tb, trm, trv, True, 0.1, EPS)
            return aten.native_batch_norm_backward(tdout, tx, tg, trm, trv, m, s, True, EPS, mask)

        ax = tx.clone().requires_grad_(True)
        ag, ab = tg.clone().requires_grad_(True), tb.clone().requires_grad_(True)

        def t_autograd():
            ax.grad = ag.grad = ab.grad = None
            out = torch.nn.functional.batch_norm(ax, trm, trv, ag, ab, training=True,
                                                 momentum=0.1, eps=EPS)
            out.backward(tdout)

        fwd["torch"], bwd["torch"], both["torch"] = t_fwd, t_bwd, t_both
        both["torch autograd"] = t_autograd

    return [
        harness.Case(kernel="BatchNorm fwd (train)", size=size, impls=fwd, bytes=3.0 * item * N * D),
        harness.Case(kernel="BatchNorm bwd", size=size, impls=bwd, bytes=5.0 * item * N * D),
        harness.Case(kernel="BatchNorm fwd+bwd", size=size, impls=both, bytes=8.0 * item * N * D),
    ]


def make_cases(args):
    sizes = [(100, 100), (256, 1024)] + ([] if args.quick else [(4096, 1024)])
    cases = []
    for N, D in sizes:
        cases += _cases(N, D)
    return cases


if __name__ == "__main__":
    harness.main("BatchNorm kernels (float32)", make_cases)
