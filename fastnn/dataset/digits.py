"""scikit-learn's bundled handwritten digits (1797 images of 8x8), with ``load_mnist``'s API.

The offline default of ``fastnn train``: nothing is downloaded (the data ship inside
scikit-learn, an optional dependency: ``pip install 'fastnn[cli]'``).
"""
import numpy as np


def load_digits(normalize=True, flatten=True, one_hot_label=False, test_size=0.2, seed=0):
    """Read the 8x8 digits, split into train and test sets.

    Parameters
    ----------
    normalize : bool
        Images as float32 in [0.0, 1.0] (pixel values 0..16 divided by 16); otherwise uint8 0..16.
    flatten : bool
        Images as (N, 64) rows (otherwise (N, 1, 8, 8)).
    one_hot_label : bool
        Labels as float64 one-hot rows (N, 10) (otherwise uint8 class indices).
    test_size : float, default 0.2
        Fraction of the 1797 samples held out as the test set (360 with the default).
    seed : int, default 0
        Seed of the (deterministic, global-RNG-free) shuffle before the split.

    Returns
    -------
    (x_train, t_train), (x_test, t_test)
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn (it bundles the data): "
                          "pip install 'fastnn[cli]' (or pip install scikit-learn)") from None
    if not 0.0 < test_size < 1.0:
        raise ValueError("test_size must be between 0 and 1, got %r" % (test_size,))
    bunch = _sk_load_digits()
    x = np.asarray(bunch.data).astype(np.uint8)            # 0..16
    t = np.asarray(bunch.target).astype(np.uint8)
    order = np.random.RandomState(seed).permutation(len(x))
    n_test = int(round(len(x) * test_size))
    test_idx, train_idx = order[:n_test], order[n_test:]

    def prep(idx):
        xs, ts = x[idx], t[idx]
        if normalize:
            xs = xs.astype(np.float32)
            xs /= 16.0
        if one_hot_label:
            T = np.zeros((ts.size, 10))
            T[np.arange(ts.size), ts] = 1
            ts = T
        if not flatten:
            xs = xs.reshape(-1, 1, 8, 8)
        return xs, ts

    return prep(train_idx), prep(test_idx)
