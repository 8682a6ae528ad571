"""float32 AdaGrad/RMSprop/Adam/AdamW update sequences with quotients of every kind: gradients of
every magnitude, moments decayed into subnormals, zero numerators, params and grads at every
offset in a cache line. tests/test_optimizer.py runs them in the test process and, with
FASTNN_SIMD=avx2, in a child process, and compares every result bit for bit (the AVX-512 copy of
the kernels must compute what the AVX2 copy does, whatever division either uses).
Deterministic: the same arrays in both processes."""
import numpy as np

from fastnn import optimizer as F

RULES = {
    "AdaGrad": lambda: F.AdaGrad(),
    "AdaGrad_wd": lambda: F.AdaGrad(weight_decay=0.01),
    "RMSprop": lambda: F.RMSprop(),
    "RMSprop_wd": lambda: F.RMSprop(weight_decay=0.01),
    "Adam": lambda: F.Adam(),
    "Adam_wd": lambda: F.Adam(weight_decay=0.01),
    "AdamW": lambda: F.AdamW(),
}
STATES = {"AdaGrad": ("h",), "RMSprop": ("h",), "Adam": ("m", "v"), "AdamW": ("m", "v")}
SHAPES = {"W1": (7, 37), "b1": (37,), "W2": (37, 5), "b2": (5,)}


def _states(name, opt, params):
    return {"%s.%s" % (s, k): getattr(opt, s)[k] for s in STATES[name.split("_")[0]]
            for k in params}


def _every_magnitude(out):
    """Gradients from 1e-45 (subnormal) to 1e18 (and a few to 1e38: infinite squares) with
    zeros; params partly zeroed before each step, so that they then hold -quotient exactly."""
    for name, make in RULES.items():
        rng = np.random.RandomState(1)
        params = {k: rng.randn(*s).astype(np.float32) for k, s in SHAPES.items()}
        opt = make()
        for step in range(5):
            grads = {}
            for k, p in params.items():
                top = 38.0 if step == 4 else 18.0
                g = rng.choice([-1.0, 1.0], p.shape) * 10.0 ** rng.uniform(-45, top, p.shape)
                g[rng.rand(*p.shape) < 0.1] = 0.0
                grads[k] = g.astype(np.float32)
                p.flat[::2] = 0.0
            opt.update(params, grads)
            for k, p in params.items():
                out["magnitude/%s/%d/%s" % (name, step, k)] = p.copy()
        for k, s in _states(name, opt, params).items():
            out["magnitude/%s/%s" % (name, k)] = s.copy()


def _dead_units(out, steps=900):
    """Half the units of W and b get a zero gradient after the first step: Adam's m decays by
    0.9 a step, below 2^-76 / lr_t (from about step 430) into subnormals (about step 810), and
    lr_t*m to subnormals and zeros, mixed in every vector of 16 with units that keep learning.
    The units of Z below 32 or a multiple of 3 never get a gradient: m = 0, v = 0, so the
    division is 0 / eps, in whole vectors and next to live units."""
    for name in ("Adam", "AdamW"):
        rng = np.random.RandomState(2)
        shapes = {"W": (3, 37), "b": (37,), "Z": (64,)}
        params = {k: rng.randn(*s).astype(np.float32) for k, s in shapes.items()}
        live = {k: np.arange(v.size).reshape(v.shape) % 2 == 0 for k, v in params.items()}
        z = np.arange(64)
        live["Z"] = (z >= 32) & (z % 3 != 0)
        opt = RULES[name]()
        for step in range(steps):
            grads = {k: rng.randn(*v.shape).astype(np.float32) for k, v in params.items()}
            grads = {k: np.where(live[k] | (step == 0 and k != "Z"), g, np.float32(0))
                     for k, g in grads.items()}
            for k in shapes:
                params[k][~live[k]] = 0.0
            opt.update(params, grads)
            if step % 50 == 49:
                for k, p in params.items():
                    out["dead/%s/%d/%s" % (name, step, k)] = p.copy()
        for k, s in _states(name, opt, params).items():
            out["dead/%s/%s" % (name, k)] = s.copy()


def _alignments(out):
    """Params and grads at every 4-byte offset within a 64-byte line (40003 elements: the
    prefetching blocks too)."""
    for n in (61, 40003):
        for name, make in RULES.items():
            rng = np.random.RandomState(3)
            pbuf = np.empty(n + 16, dtype=np.float32)
            gbuf = np.empty(n + 16, dtype=np.float32)
            for off in range(16):
                p = pbuf[off:off + n]
                g = gbuf[(5 * off) % 16:(5 * off) % 16 + n]
                p[...] = rng.randn(n)
                opt = make()
                for _ in range(2):
                    g[...] = rng.randn(n) * 10.0 ** rng.uniform(-3, 1)
                    opt.update({"w": p}, {"w": g})
                out["align/%d/%s/%d" % (n, name, off)] = p.copy()
                for k, s in _states(name, opt, {"w": p}).items():
                    out["align/%d/%s/%d/%s" % (n, name, off, k)] = s.copy()


def run_cases():
    out = {}
    _every_magnitude(out)
    _dead_units(out)
    _alignments(out)
    return out
