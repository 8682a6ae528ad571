"""Benchmarks of the optimizer kernels (fastnn.optimizer).

Rows, float32:
- every optimizer on one tensor of 1M and of 16M parameters;
- Adam on the 26 tensors of the chapter-6 network (784-100x6-10 with batch-norm gamma/beta:
  W1..W7, b1..b7, gamma1..6, beta1..6), as separate arrays ("fastnn") and as views of one flat
  buffer ("fastnn flat": params and grads flat, one pass).
Rows, float64: AdaGrad, RMSprop and Adam on 1M parameters and Adam on the 26 tensors (their
division: with FMAs on AVX-512, see csrc/optim_body.h).

Each row times one ``update`` of the book's NumPy code (fastnn.reference), of fastnn, and of
PyTorch's CPU optimizer (fused where PyTorch has a fused CPU kernel: Adam, AdamW, SGD with or
without (Nesterov) momentum, Adagrad; RMSprop has only foreach) on equal tensors with .grad set.
Bytes per element are the minimum each rule must move: SGD 12 (p, g read; p written),
Momentum/Nesterov/AdaGrad/RMSprop 20 (+ one state read and written), Adam/AdamW 28 (float32;
twice that in float64).

Run: python bench/bench_optim.py [--quick] [--threads 1,2] [--filter Adam] [--json FILE]
"""
import harness  # first: it configures the thread pools before NumPy loads its BLAS

import numpy as np  # noqa: E402
from fastnn import optimizer as fo
from fastnn.reference import optimizer as ro

# name -> (bytes per float32 element, reference class or None, torch constructor and kwargs)
RULES = {
    "SGD": (12, "SGD", ("SGD", dict(lr=0.01, fused=True))),
    "Momentum": (20, "Momentum", ("SGD", dict(lr=0.01, momentum=0.9, fused=True))),
    "Nesterov": (20, "Nesterov", ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, fused=True))),
    "AdaGrad": (20, "AdaGrad", ("Adagrad", dict(lr=0.01, eps=1e-7, fused=True))),
    "RMSprop": (20, "RMSprop", ("RMSprop", dict(lr=0.01, alpha=0.99, eps=1e-7, foreach=True))),
    "Adam": (28, "Adam", ("Adam", dict(lr=0.001, eps=1e-7, fused=True))),
    "AdamW": (28, None, ("AdamW", dict(lr=0.001, eps=1e-7, weight_decay=0.01, fused=True))),
}


# The callables of the case being timed: setup() replaces them, freeing the previous case's arrays.
_LIVE = {}


def mlp_shapes():
    """The 26 parameter shapes of the ch.6 MultiLayerNetExtend (784-100x6-10, batch norm)."""
    sizes = [784] + [100] * 6 + [10]
    shapes = {}
    for i in range(1, 8):
        shapes["W%d" % i] = (sizes[i - 1], sizes[i])
        shapes["b%d" % i] = (sizes[i],)
    for i in range(1, 7):
        shapes["gamma%d" % i] = (100,)
        shapes["beta%d" % i] = (100,)
    return shapes


def _arrays(shapes, seed, dtype):
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(s) * 0.05).astype(dtype) for k, s in shapes.items()}


def _case(name, shapes, size_label, flat=False, dtype=np.float32):
    """A Case whose arrays are built in setup() (one case's arrays alive at a time)."""
    bpe, ref_name, (torch_cls, torch_kw) = RULES[name]
    bpe *= np.dtype(dtype).itemsize // 4
    live = _LIVE

    def setup():
        live.clear()
        params = _arrays(shapes, 0, dtype)
        grads = _arrays(shapes, 1, dtype)
        ref_params = {k: v.copy() for k, v in params.items()}
        fast = getattr(fo, name)()
        live["fastnn"] = lambda: fast.update(params, grads)
        if flat:
            _, fparams = fo.flat_views(params)
            _, fgrads = fo.flat_views(grads)
            fast_flat = getattr(fo, name)()
            live["fastnn flat"] = lambda: fast_flat.update(fparams, fgrads)
        if ref_name is not None:
            ref = getattr(ro, ref_name)()
            live["reference"] = lambda: ref.update(ref_params, grads)
        torch = harness.torch
        if torch is not None:
            tp = [torch.from_numpy(v.copy()).requires_grad_(True) for v in params.values()]
            for p, g in zip(tp, grads.values()):
                p.grad = torch.from_numpy(g.copy())
            opt = getattr(torch.optim, torch_cls)(tp, **torch_kw)
            live["torch"] = opt.step

    names = (["reference"] if ref_name else []) + ["fastnn"] + (["fastnn flat"] if flat else [])
    if harness.torch is not None:
        names.append("torch")
    impls = {k: (lambda k=k: live[k]()) for k in names}
    n = sum(int(np.prod(s)) for s in shapes.values())
    kernel = "%s update" % name + ("" if dtype == np.float32 else " float64")
    return harness.Case(kernel=kernel, size=size_label, impls=impls, bytes=bpe * n, setup=setup)


def make_cases(args):
    sizes = [1 << 20] + ([] if args.quick else [1 << 24])
    cases = []
    for name in RULES:
        for n in sizes:
            cases.append(_case(name, {"w": (n,)}, "%dM" % (n >> 20)))
    shapes = mlp_shapes()
    assert len(shapes) == 26
    cases.append(_case("Adam", shapes, "26 MLP tensors", flat=True))
    for name in ("AdaGrad", "RMSprop", "Adam"):
        cases.append(_case(name, {"w": (1 << 20,)}, "1M", dtype=np.float64))
    cases.append(_case("Adam", shapes, "26 MLP tensors", flat=True, dtype=np.float64))
    return cases


if __name__ == "__main__":
    harness.main("Optimizer kernels (float32; float64 rows so named)", make_cases)
