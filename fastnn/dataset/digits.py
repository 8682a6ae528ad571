"""scikit-learn's bundled handwritten digits (1797 images of 8x8), with ``load_mnist``'s API.

The offline default of ``fastnn train``: nothing is downloaded (the data ship inside
scikit-learn, an optional dependency: ``pip install 'fastnn[cli]'``).
"""
import importlib.util
import os

import numpy as np

N_DIGITS = 1797


def _bundled_csv():
    """Path of the digits file scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``),
    found without importing scikit-learn, or None."""
    spec = importlib.util.find_spec("sklearn")
    for base in (spec.submodule_search_locations or []) if spec is not None else []:
        path = os.path.join(base, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            return path
    return None


def _read_digits():
    """Pixels (1797, 64) and labels (1797,), both uint8. Read straight from scikit-learn's file,
    as its ``load_digits`` reads it (rows of 64 pixel values 0..16 and the label): importing
    scikit-learn takes 1.5-3.5 s here, most of ``fastnn train``'s time, against milliseconds for
    the file. scikit-learn's own loader when the file is not where it used to be."""
    path = _bundled_csv()
    if path is not None:
        try:
            raw = np.loadtxt(path, delimiter=",")
        except (OSError, ValueError):
            raw = None
        if (raw is not None and raw.shape == (N_DIGITS, 65) and np.all(raw == np.round(raw))
                and raw[:, :-1].min() >= 0 and raw[:, :-1].max() <= 16
                and raw[:, -1].min() >= 0 and raw[:, -1].max() <= 9):
            return raw[:, :-1].astype(np.uint8), raw[:, -1].astype(np.uint8)
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn (it bundles the data): "
                          "pip install 'fastnn[cli]' (or pip install scikit-learn)") from None
    bunch = _sk_load_digits()
    return np.asarray(bunch.data).astype(np.uint8), np.asarray(bunch.target).astype(np.uint8)


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
    if not 0.0 < test_size < 1.0:
        raise ValueError("test_size must be between 0 and 1, got %r" % (test_size,))
    x, t = _read_digits()                                  # pixels 0..16, labels 0..9
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
