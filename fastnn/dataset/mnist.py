"""MNIST loader compatible with the book's ``dataset/mnist.py``.

``load_mnist(normalize=True, flatten=True, one_hot_label=False)`` returns
``((x_train, t_train), (x_test, t_test))`` exactly as the book's does: uint8 images (N, 784)
(``normalize``: float32 in [0, 1]; ``flatten=False``: (N, 1, 28, 28)), uint8 labels (N,)
(``one_hot_label``: float64 (N, 10)); as in the book, arrays that are not converted are
read-only.

Where the files come from
-------------------------
The four IDX files (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``; uncompressed files without the
``.gz`` are accepted too) are read from the directory in the environment variable
``FASTNN_DATA_DIR``, default ``~/.fastnn/mnist`` (the book writes into its own source
directory instead, and caches a pickle; fastnn parses the IDX files directly).

* Files a user put there are validated by structure: magic numbers (2051 images, 2049 labels),
  item counts, image sizes, total length, images and labels pairing. Any data in MNIST's IDX
  format works (e.g. Fashion-MNIST).
* Missing files are downloaded from ``url_base`` (the book's mirror) unless
  ``FASTNN_NO_DOWNLOAD=1``; what was downloaded is checked against the MD5 of the canonical
  decompressed files before it is kept.
* Offline and absent, truncated, corrupt or wrong-format files raise :class:`MNISTError`
  (a ValueError subclass: FileNotFoundError-like cases say which file and where to put it).
"""
import gzip
import hashlib
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib

import numpy as np

url_base = 'https://ossci-datasets.s3.amazonaws.com/mnist/'  # the book's mirror (since 2024)
key_file = {
    'train_img': 'train-images-idx3-ubyte.gz',
    'train_label': 'train-labels-idx1-ubyte.gz',
    'test_img': 't10k-images-idx3-ubyte.gz',
    'test_label': 't10k-labels-idx1-ubyte.gz',
}
# MD5 of the *decompressed* canonical files (checked on download)
md5_raw = {
    'train-images-idx3-ubyte.gz': '6bbc9ace898e44ae57da46a324031adb',
    'train-labels-idx1-ubyte.gz': 'a25bea736e30d166cdddb491f175f624',
    't10k-images-idx3-ubyte.gz': '2646ac647ad5339dbf082846283269ea',
    't10k-labels-idx1-ubyte.gz': '27ae3e4e09519cfbb04c329615203637',
}
dataset_dir = os.path.join(os.path.expanduser("~"), ".fastnn", "mnist")
train_num = 60000
test_num = 10000
img_dim = (1, 28, 28)
img_size = 784

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) fastnn"
_TIMEOUT = 60


class MNISTError(ValueError):
    """A missing, truncated, corrupt or malformed MNIST/IDX file, or a failed download."""


def data_dir():
    """The directory the files are read from: ``$FASTNN_DATA_DIR`` or ``dataset_dir``."""
    return os.environ.get("FASTNN_DATA_DIR") or dataset_dir


def _no_download():
    return os.environ.get("FASTNN_NO_DOWNLOAD", "").strip().lower() not in ("", "0", "false", "no")


def _find(file_name, directory):
    """Path of file_name (.gz) or of its uncompressed form, or None."""
    for cand in (file_name, file_name[:-3] if file_name.endswith(".gz") else file_name + ".gz"):
        path = os.path.join(directory, cand)
        if os.path.isfile(path):
            return path
    return None


def _read_bytes(path):
    """The (decompressed) content of an IDX file."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":
                with gzip.GzipFile(fileobj=f) as g:
                    return g.read()
            return f.read()
    except EOFError as e:
        raise MNISTError("%s is truncated: the gzip stream ends early (%s); delete it to "
                         "download it again, or replace it" % (path, e)) from None
    except (OSError, zlib.error) as e:
        raise MNISTError("%s is not a valid gzip file (%s); delete it to download it again, "
                         "or replace it" % (path, e)) from None


def _parse_idx(data, kind, path):
    """Validate an IDX images (idx3) or labels (idx1) file and return a read-only uint8 array."""
    if kind == "img":
        magic_expected, header = IMAGE_MAGIC, 16
    else:
        magic_expected, header = LABEL_MAGIC, 8
    if len(data) < header:
        raise MNISTError("%s is truncated: %d bytes, shorter than the %d-byte IDX header"
                         % (path, len(data), header))
    magic, count = struct.unpack(">II", data[:8])
    if magic != magic_expected:
        what = "images (idx3-ubyte)" if kind == "img" else "labels (idx1-ubyte)"
        raise MNISTError("%s has magic number %d, expected %d for MNIST %s: not an MNIST IDX "
                         "file of this kind" % (path, magic, magic_expected, what))
    if kind == "img":
        rows, cols = struct.unpack(">II", data[8:16])
        if rows == 0 or cols == 0:
            raise MNISTError("%s declares %dx%d images" % (path, rows, cols))
        item = rows * cols
    else:
        rows = cols = None
        item = 1
    expected = header + count * item
    if len(data) < expected:
        raise MNISTError("%s is truncated: it declares %d items (%d bytes) but holds %d bytes"
                         % (path, count, expected, len(data)))
    if len(data) > expected:
        raise MNISTError("%s has %d unexpected trailing bytes after its %d declared items"
                         % (path, len(data) - expected, count))
    arr = np.frombuffer(data, np.uint8, offset=header)
    if kind == "img":
        arr = arr.reshape(count, item)
        return arr, (rows, cols)
    return arr, None


def _download(file_name, directory):
    """Download file_name into directory, verify the MD5 of its decompressed bytes, keep it."""
    if _no_download():
        raise MNISTError(
            "MNIST file %s not found in %s and downloads are disabled (FASTNN_NO_DOWNLOAD). "
            "Put the four MNIST IDX .gz files there (or point FASTNN_DATA_DIR at them), or use "
            "fastnn.dataset.load_digits() (bundled, offline)." % (file_name, directory))
    url = url_base + file_name
    print("Downloading " + file_name + " ... ")
    try:
        req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
        with urllib.request.urlopen(req, timeout=_TIMEOUT) as resp:
            payload = resp.read()
    except (urllib.error.URLError, OSError) as e:
        raise MNISTError(
            "MNIST file %s not found in %s and the download from %s failed (%s): are you "
            "offline? Put the four MNIST IDX .gz files in %s (or set FASTNN_DATA_DIR), or use "
            "fastnn.dataset.load_digits() (bundled, offline)."
            % (file_name, directory, url, e, directory)) from None
    try:
        raw = gzip.decompress(payload)
    except (OSError, EOFError, zlib.error) as e:
        raise MNISTError("the download of %s is not a valid gzip file (%s)" % (url, e)) from None
    digest = hashlib.md5(raw).hexdigest()
    if digest != md5_raw[file_name]:
        raise MNISTError("checksum mismatch for the download of %s: MD5 of the decompressed "
                         "bytes is %s, expected %s; nothing was saved"
                         % (url, digest, md5_raw[file_name]))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + file_name)
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    os.replace(tmp, os.path.join(directory, file_name))
    print("Done")


def download_mnist():
    """Download the files missing from ``data_dir()``."""
    directory = data_dir()
    for v in key_file.values():
        if _find(v, directory) is None:
            _download(v, directory)


def _load_file(key, directory):
    file_name = key_file[key]
    path = _find(file_name, directory)
    if path is None:
        _download(file_name, directory)
        path = os.path.join(directory, file_name)
    kind = "img" if key.endswith("img") else "label"
    return _parse_idx(_read_bytes(path), kind, path)


def _load_img(file_name):
    return _parse_idx(_read_bytes(os.path.join(data_dir(), file_name)), "img", file_name)[0]


def _load_label(file_name):
    return _parse_idx(_read_bytes(os.path.join(data_dir(), file_name)), "label", file_name)[0]


def _convert_numpy():
    """The book's dict {'train_img', 'train_label', 'test_img', 'test_label'} of uint8 arrays."""
    directory = data_dir()
    dataset = {}
    shapes = {}
    for key in key_file:
        dataset[key], shape = _load_file(key, directory)
        if shape is not None:
            shapes[key] = shape
    for part in ("train", "test"):
        n_img, n_lab = len(dataset[part + "_img"]), len(dataset[part + "_label"])
        if n_img != n_lab:
            raise MNISTError("the %s images hold %d items but the %s labels %d (files %s, %s in "
                             "%s)" % (part, n_img, part, n_lab, key_file[part + "_img"],
                                      key_file[part + "_label"], directory))
    if shapes["train_img"] != shapes["test_img"]:
        raise MNISTError("train images are %dx%d but test images %dx%d"
                         % (shapes["train_img"] + shapes["test_img"]))
    dataset["_image_shape"] = shapes["train_img"]
    return dataset


def init_mnist():
    """Download what is missing and validate all four files (no pickle cache, unlike the book)."""
    download_mnist()
    _convert_numpy()


def _change_one_hot_label(X, num_classes=10):
    T = np.zeros((X.size, num_classes))
    T[np.arange(X.size), X] = 1
    return T


def load_mnist(normalize=True, flatten=True, one_hot_label=False):
    """Read the MNIST dataset.

    Parameters
    ----------
    normalize : bool
        Images as float32 in [0.0, 1.0] (otherwise uint8 0..255).
    flatten : bool
        Images as (N, 784) rows (otherwise (N, 1, 28, 28)).
    one_hot_label : bool
        Labels as float64 one-hot rows (N, 10) (otherwise uint8 class indices).

    Returns
    -------
    (x_train, t_train), (x_test, t_test)

    Raises
    ------
    MNISTError
        A file is missing and cannot be downloaded, or is truncated, corrupt or not MNIST IDX.
    """
    dataset = _convert_numpy()
    rows, cols = dataset.pop("_image_shape")

    if normalize:
        for key in ('train_img', 'test_img'):
            dataset[key] = dataset[key].astype(np.float32)
            dataset[key] /= 255.0

    if one_hot_label:
        n_classes = max(10, int(max(dataset['train_label'].max(initial=0),
                                    dataset['test_label'].max(initial=0))) + 1)
        dataset['train_label'] = _change_one_hot_label(dataset['train_label'], n_classes)
        dataset['test_label'] = _change_one_hot_label(dataset['test_label'], n_classes)

    if not flatten:
        for key in ('train_img', 'test_img'):
            dataset[key] = dataset[key].reshape(-1, 1, rows, cols)

    return ((dataset['train_img'], dataset['train_label']),
            (dataset['test_img'], dataset['test_label']))


if __name__ == '__main__':
    init_mnist()
