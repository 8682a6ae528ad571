"""Datasets: the book's ``dataset.mnist.load_mnist`` and the bundled (offline) digits.

``load_mnist`` reads the four MNIST IDX .gz files from ``$FASTNN_DATA_DIR`` (default
``~/.fastnn/mnist``), downloading them when absent; ``load_digits`` uses scikit-learn's bundled
8x8 handwritten digits (no network needed). Both return ``((x_train, t_train), (x_test, t_test))``.
"""
from fastnn.dataset.mnist import load_mnist, MNISTError
from fastnn.dataset.digits import load_digits

__all__ = ["load_mnist", "load_digits", "MNISTError"]
