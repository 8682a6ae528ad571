"""Counter-based dropout masks in NumPy: the reference of fastnn's compiled Dropout.

The book's Dropout draws ``np.random.rand(*x.shape)`` per training forward. fastnn instead
derives every mask bit from a 64-bit seed and the element's index (a counter-based generator),
so masks are identical for any thread count and can be recomputed here, bit for bit.

The generator (all arithmetic modulo 2**64, as in ``csrc/dropout.h``)::

    mix64(z)   SplitMix64's finaliser:  z ^= z >> 30; z *= 0xBF58476D1CE4E5B9;
                                        z ^= z >> 27; z *= 0x94D049BB133111EB; z ^= z >> 31
    key  = mix64(seed),   key2 = mix64(~key)
    h_j  = mix64(key  + j * GAMMA),    g_j = mix64(key2 + j * GAMMA),   GAMMA = 0x9E3779B97F4A7C15
    p_i  = (h_(i//4) >> 16*(i%4)) & 0xFFFF,   s_i = (g_(i//4) >> 16*(i%4)) & 0xFFFF
    u_i  = p_i * 2**16 + s_i                     (a uniform 32-bit integer)
    kept_i = u_i >= thr,   thr = round(ratio * 2**32)

so an element is kept with probability exactly ``1 - thr / 2**32``. Index i runs over the
elements in C order. The seed of each training forward comes from NumPy's global generator
(:func:`draw_seed`), so ``np.random.seed(s)`` reproduces a whole run; with an explicit seed, call
c of a layer uses :func:`call_seed` ``(seed, c)``.
"""
import numpy as np

GAMMA = 0x9E3779B97F4A7C15
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = (1 << 64) - 1


def mix64(z):
    """SplitMix64's finaliser of a uint64 array (wrapping arithmetic), as a new uint64 array."""
    z = np.array(z, dtype=np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= _M1
    z ^= z >> np.uint64(27)
    z *= _M2
    z ^= z >> np.uint64(31)
    return z


def mix64_int(z):
    """mix64 of one Python int in [0, 2**64) (exact integer arithmetic)."""
    z &= _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def threshold(dropout_ratio):
    """The integer threshold ``round(ratio * 2**32)`` (ratio must be in [0, 1]).

    ``ratio * 2**32`` is exact in float64, so this is the nearest integer (ties to even)."""
    r = float(dropout_ratio)
    if not 0.0 <= r <= 1.0:   # also rejects NaN
        raise ValueError("dropout_ratio must be in [0, 1], got %r" % (dropout_ratio,))
    return int(round(r * 4294967296.0))


def _stream16(key, n_hashes):
    """The uint16 words of mix64(key + j*GAMMA), j < n_hashes, in stream order (4 per hash)."""
    j = np.arange(n_hashes, dtype=np.uint64)
    h = mix64(np.uint64(key) + j * np.uint64(GAMMA))
    shifts = np.array([0, 16, 32, 48], dtype=np.uint64)
    return ((h[:, None] >> shifts) & np.uint64(0xFFFF)).ravel()


def uniforms(seed, n):
    """The 32-bit uniforms u_0 .. u_(n-1) of ``seed`` (uint64 array of length n)."""
    key = mix64_int(int(seed))
    key2 = mix64_int(~key & _MASK64)
    n_hashes = (n + 3) // 4
    p = _stream16(key, n_hashes)[:n]
    s = _stream16(key2, n_hashes)[:n]
    return (p << np.uint64(16)) | s


def counter_mask(seed, shape, dropout_ratio):
    """The boolean keep-mask (True = kept) of ``shape`` for ``seed`` and ``dropout_ratio``."""
    shape = tuple(int(d) for d in np.atleast_1d(shape)) if not isinstance(shape, tuple) else shape
    n = int(np.prod(shape, dtype=np.int64))
    thr = threshold(dropout_ratio)
    return (uniforms(seed, n) >= np.uint64(thr) if thr < 2 ** 32
            else np.zeros(n, dtype=bool)).reshape(shape)


def pack_mask(mask):
    """A bool mask as fastnn's packed words: uint32 word b holds elements 32b..32b+31 (C order),
    bit r = element 32b + r."""
    flat = np.ascontiguousarray(mask, dtype=bool).ravel()
    n = flat.size
    padded = np.zeros(((n + 31) // 32) * 32, dtype=bool)
    padded[:n] = flat
    weights = (np.uint64(1) << np.arange(32, dtype=np.uint64))
    return (padded.reshape(-1, 32).astype(np.uint64) * weights).sum(axis=1).astype(np.uint32)


def unpack_mask(bits, shape):
    """Inverse of :func:`pack_mask`: the bool mask of ``shape`` from packed uint32 words."""
    n = int(np.prod(shape, dtype=np.int64))
    words = np.asarray(bits, dtype=np.uint32)
    flat = ((words[:, None] >> np.arange(32, dtype=np.uint32)) & np.uint32(1)).astype(bool).ravel()
    return flat[:n].reshape(shape)


def draw_seed():
    """A seed from NumPy's global generator: one ``np.random.random_sample()`` call (53 random
    bits; a seven-times cheaper call than a 64-bit ``randint``, which matters once per layer and
    step). SplitMix64 mixes it before use."""
    return int(np.random.random_sample() * 2.0 ** 53)


def call_seed(seed, counter):
    """The seed of call ``counter`` (0, 1, ...) of a layer built with an explicit ``seed``:
    ``(seed + counter * GAMMA) mod 2**64`` (distinct for every call; mix64 decorrelates them)."""
    return (int(seed) + int(counter) * GAMMA) & _MASK64


def check_seed(seed):
    """Validate an explicit seed: an int in [0, 2**64) (or None)."""
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError("seed must be an int or None, got %s" % type(seed).__name__)
    if not 0 <= int(seed) < 2 ** 64:
        raise ValueError("seed must be in [0, 2**64), got %d" % int(seed))
    return int(seed)


class CounterDropout:
    """Dropout with counter-based masks: the NumPy oracle of ``fastnn.layers.Dropout``.

    Same masks, outputs and seed schedule as the compiled class, computed plainly.

    Parameters
    ----------
    dropout_ratio : float in [0, 1], default 0.5
    inverted : bool, default False
        False: the book's form (train ``x * mask``, test ``x * (1 - ratio)``).
        True: train ``x * mask / (1 - ratio)`` (the scale rounded to x's dtype; zeros when
        ratio is 1), test ``x`` unchanged.
    seed : int in [0, 2**64) or None
        None: each training forward draws its seed with :func:`draw_seed`. Otherwise training
        forward number c (from 0) uses ``call_seed(seed, c)``.

    Attributes
    ----------
    mask : ndarray of bool or None (the last training forward's keep-mask)
    last_seed : int or None (the seed of the last training forward)
    """

    def __init__(self, dropout_ratio=0.5, inverted=False, seed=None):
        self.dropout_ratio = dropout_ratio
        self.inverted = bool(inverted)
        self.seed = check_seed(seed)
        self.calls = 0
        self.mask = None
        self.last_seed = None

    def _scale(self):
        r = float(self.dropout_ratio)
        return 1.0 / (1.0 - r) if self.inverted and r < 1.0 else 1.0

    def forward(self, x, train_flg=True):
        threshold(self.dropout_ratio)
        if train_flg:
            if self.seed is None:
                s = draw_seed()
            else:
                s = call_seed(self.seed, self.calls)
            self.calls += 1
            self.last_seed = s
            self.mask = counter_mask(s, x.shape, self.dropout_ratio)
            out = x * self.mask
            if self.inverted:
                out = out * x.dtype.type(self._scale())
            return out
        if self.inverted:
            return x
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        dx = dout * self.mask
        if self.inverted:
            dx = dx * dx.dtype.type(self._scale())
        return dx
