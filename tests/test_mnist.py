"""fastnn.dataset: load_mnist on IDX files the tests write (valid, truncated, wrong magic,
corrupt), the book's output forms, no-download errors; load_digits."""
import gzip
import os
import struct

import numpy as np
import pytest

from fastnn.dataset import mnist
from fastnn.dataset import load_mnist, load_digits, MNISTError
from conftest import subprocess_env


def idx_images(imgs, magic=2051):
    n, r, c = imgs.shape
    return struct.pack(">IIII", magic, n, r, c) + imgs.astype(np.uint8).tobytes()


def idx_labels(labels, magic=2049):
    return struct.pack(">II", magic, len(labels)) + np.asarray(labels, np.uint8).tobytes()


def write(dirpath, name, payload, compress=True):
    path = os.path.join(dirpath, name if compress else name[:-3])
    with open(path, "wb") as f:
        f.write(gzip.compress(payload) if compress else payload)
    return path


@pytest.fixture
def mnist_dir(tmp_path, monkeypatch):
    rng = np.random.RandomState(0)
    tr_img = rng.randint(0, 256, (12, 28, 28))
    te_img = rng.randint(0, 256, (5, 28, 28))
    tr_lab = rng.randint(0, 10, 12)
    te_lab = rng.randint(0, 10, 5)
    write(tmp_path, "train-images-idx3-ubyte.gz", idx_images(tr_img))
    write(tmp_path, "train-labels-idx1-ubyte.gz", idx_labels(tr_lab))
    write(tmp_path, "t10k-images-idx3-ubyte.gz", idx_images(te_img))
    write(tmp_path, "t10k-labels-idx1-ubyte.gz", idx_labels(te_lab), compress=False)
    monkeypatch.setenv("FASTNN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FASTNN_NO_DOWNLOAD", "1")
    return tmp_path, (tr_img, tr_lab, te_img, te_lab)


def test_valid_files_book_forms(mnist_dir):
    _, (tr_img, tr_lab, te_img, te_lab) = mnist_dir
    (x, t), (xt, tt) = load_mnist(normalize=False)
    assert x.dtype == np.uint8 and x.shape == (12, 784) and xt.shape == (5, 784)
    np.testing.assert_array_equal(x, tr_img.reshape(12, -1))
    np.testing.assert_array_equal(tt, te_lab)
    assert t.dtype == np.uint8 and not t.flags.writeable     # the book's read-only labels
    (x, t), (xt, tt) = load_mnist()
    assert x.dtype == np.float32 and x.max() <= 1.0
    np.testing.assert_allclose(x, tr_img.reshape(12, -1) / np.float32(255.0))
    (x, t), _ = load_mnist(flatten=False, one_hot_label=True)
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.float32
    assert t.shape == (12, 10) and t.dtype == np.float64
    np.testing.assert_array_equal(np.argmax(t, axis=1), tr_lab)
    assert np.all(t.sum(axis=1) == 1)


def test_truncated_file(mnist_dir):
    d, (tr_img, *_ ) = mnist_dir
    payload = idx_images(tr_img)
    write(d, "train-images-idx3-ubyte.gz", payload[:-100])
    with pytest.raises(MNISTError, match="truncated"):
        load_mnist()
    # a gzip stream cut short
    with open(os.path.join(d, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(gzip.compress(payload)[:200])
    with pytest.raises(MNISTError, match="truncated"):
        load_mnist()


def test_wrong_magic_and_corrupt(mnist_dir):
    d, (tr_img, tr_lab, *_ ) = mnist_dir
    write(d, "train-labels-idx1-ubyte.gz", idx_labels(tr_lab, magic=2051))
    with pytest.raises(MNISTError, match="magic number 2051, expected 2049"):
        load_mnist()
    write(d, "train-labels-idx1-ubyte.gz", idx_labels(tr_lab[:-1]))
    with pytest.raises(MNISTError, match="12 items but the train labels 11"):
        load_mnist()
    with open(os.path.join(d, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(b"\x1f\x8b" + b"garbage" * 10)
    with pytest.raises(MNISTError, match="not a valid gzip"):
        load_mnist()
    write(d, "train-images-idx3-ubyte.gz", idx_images(tr_img) + b"\0\0")
    write(d, "train-labels-idx1-ubyte.gz", idx_labels(tr_lab))
    with pytest.raises(MNISTError, match="trailing bytes"):
        load_mnist()


def test_absent_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("FASTNN_NO_DOWNLOAD", "1")
    with pytest.raises(MNISTError, match="not found in .*load_digits"):
        load_mnist()


def test_download_verifies_md5(tmp_path, monkeypatch):
    """A download whose decompressed bytes do not match the canonical MD5 is not kept."""
    monkeypatch.setenv("FASTNN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FASTNN_NO_DOWNLOAD", raising=False)

    class Resp:
        def __init__(self, data):
            self.data = data

        def read(self):
            return self.data

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    bad = gzip.compress(idx_labels([1, 2, 3]))
    monkeypatch.setattr(mnist.urllib.request, "urlopen", lambda req, timeout: Resp(bad))
    with pytest.raises(MNISTError, match="checksum mismatch"):
        mnist._download("t10k-labels-idx1-ubyte.gz", str(tmp_path))
    assert not os.path.exists(tmp_path / "t10k-labels-idx1-ubyte.gz")
    # and a good one (checksum patched to the payload's) is saved
    import hashlib
    monkeypatch.setitem(mnist.md5_raw, "t10k-labels-idx1-ubyte.gz",
                        hashlib.md5(idx_labels([1, 2, 3])).hexdigest())
    mnist._download("t10k-labels-idx1-ubyte.gz", str(tmp_path))
    assert os.path.exists(tmp_path / "t10k-labels-idx1-ubyte.gz")

    def offline(req, timeout):
        raise mnist.urllib.error.URLError("no network")
    monkeypatch.setattr(mnist.urllib.request, "urlopen", offline)
    with pytest.raises(MNISTError, match="are you offline"):
        mnist._download("t10k-images-idx3-ubyte.gz", str(tmp_path))


def test_digits_read_without_importing_scikit_learn_are_its_data(monkeypatch):
    """load_digits reads scikit-learn's bundled file itself (importing scikit-learn takes
    seconds): the same pixels and labels as scikit-learn's loader, which is also the fall-back
    when the file is not found."""
    pytest.importorskip("sklearn")
    import subprocess
    import sys
    from fastnn.dataset import digits
    code = ("import sys; from fastnn.dataset import load_digits; load_digits(); "
            "print('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=subprocess_env(), cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    x, t = digits._read_digits()
    from sklearn.datasets import load_digits as sk_load_digits
    bunch = sk_load_digits()
    np.testing.assert_array_equal(x, bunch.data)
    np.testing.assert_array_equal(t, bunch.target)
    assert x.dtype == np.uint8 and t.dtype == np.uint8
    monkeypatch.setattr(digits, "_bundled_csv", lambda: None)
    x2, t2 = digits._read_digits()
    np.testing.assert_array_equal(x2, x)
    np.testing.assert_array_equal(t2, t)


def test_load_digits():
    pytest.importorskip("sklearn")
    (x, t), (xt, tt) = load_digits()
    assert x.shape == (1438, 64) and xt.shape == (359, 64)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    assert t.dtype == np.uint8 and set(np.unique(t)) == set(range(10))
    (x2, t2), _ = load_digits()
    np.testing.assert_array_equal(x, x2)            # deterministic split
    (x3, t3), _ = load_digits(flatten=False, one_hot_label=True)
    assert x3.shape == (1438, 1, 8, 8) and t3.shape == (1438, 10)
    np.testing.assert_array_equal(np.argmax(t3, axis=1), t)
