"""Benchmarks of Dropout: forward (training) and backward, float32.

Rows: the book's Dropout (fastnn.reference: ``np.random.rand`` masks), fastnn's compiled Dropout
(counter-based masks generated and applied in one pass, packed mask, one-pass backward) and
PyTorch CPU (``aten.native_dropout`` / ``native_dropout_backward``, what ``F.dropout`` runs) when
importable. Minimal bytes per element: read x, write out, write the mask as bits (4 + 4 + 1/8 B in
float32) forward; read dout and the mask bits, write dx backward.

Run: python bench/bench_dropout.py [--quick] [--threads 1,2] [--json FILE]
"""
import harness  # first: it configures the thread pools before NumPy loads its BLAS

import numpy as np  # noqa: E402
from fastnn import layers
from fastnn.reference import layers as ref

RATIO = 0.5


def _cases(N, D, label, dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, D)).astype(dtype)
    dout = rng.standard_normal((N, D)).astype(dtype)
    item = np.dtype(dtype).itemsize
    n = N * D
    nbytes = n * (2 * item + 1 / 8)
    fast, slow = layers.Dropout(RATIO), ref.Dropout(RATIO)
    fast.forward(x)          # backward rows need a mask
    slow.forward(x)
    fwd = {"reference": lambda: slow.forward(x), "fastnn": lambda: fast.forward(x)}
    bwd = {"reference": lambda: slow.backward(dout), "fastnn": lambda: fast.backward(dout)}
    torch = harness.torch
    if torch is not None:
        tx, tdout = torch.from_numpy(x), torch.from_numpy(dout)
        _, tmask = torch.ops.aten.native_dropout(tx, RATIO, True)
        scale = 1.0 / (1.0 - RATIO)
        fwd["torch"] = lambda: torch.ops.aten.native_dropout(tx, RATIO, True)
        bwd["torch"] = lambda: torch.ops.aten.native_dropout_backward(tdout, tmask, scale)
    return [harness.Case(kernel="Dropout fwd", size=label, impls=fwd, bytes=nbytes),
            harness.Case(kernel="Dropout bwd", size=label, impls=bwd, bytes=nbytes)]


def make_cases(args):
    sizes = [(100, 100, "100x100"), (4096, 1024, "4096x1024")]
    sizes.append((4096, 1024, "4M (quick)") if args.quick else (16384, 1024, "16M"))
    cases = []
    for N, D, label in sizes:
        cases += _cases(N, D, label)
    return cases


if __name__ == "__main__":
    harness.main("Dropout kernels (float32, ratio 0.5)", make_cases)
