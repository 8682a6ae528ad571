"""Helpers: curve smoothing, shuffling and the im2col/col2im transforms
(the book's ``common/util.py``)."""

import numpy as np


def smooth_curve(x):
    """Smooth a loss curve for plotting with a normalised Kaiser window.

    The sequence is padded by mirroring 10 samples at each end, convolved
    ('valid') with a Kaiser window of length 11 and beta 2, and 5 samples are
    dropped from each end.

    Parameters
    ----------
    x : sequence of float or 1-D ndarray
        Python lists are accepted (that is how the book calls it).

    Returns
    -------
    ndarray
        Same length as ``x`` when ``len(x) >= 11``.  Book quirk: shorter input
        gives a wrong length (10 -> 9, <= 5 -> 0), because the leading mirror
        skips the first sample while the trailing one repeats the last sample.
    """
    window_len = 11
    head = x[window_len - 1:0:-1]       # x[10], ..., x[1]
    tail = x[-1:-window_len:-1]         # x[-1], ..., x[-10]
    s = np.r_[head, x, tail]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5:len(y) - 5]


def shuffle_dataset(x, t):
    """Shuffle samples and labels with one ``np.random.permutation`` draw.

    Parameters
    ----------
    x : ndarray
        Data of shape (N, D) or (N, C, H, W).  Book quirk: any other rank
        (e.g. 3-D) raises IndexError, since only 2-D and 4-D indexing exist.
    t : ndarray
        Labels, first axis N.

    Returns
    -------
    x, t : ndarray
        New (fancy-indexed) arrays.
    """
    permutation = np.random.permutation(x.shape[0])
    x = x[permutation, :] if x.ndim == 2 else x[permutation, :, :, :]
    t = t[permutation]
    return x, t


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    """Spatial output size ``(in + 2*pad - filter) / stride + 1``.

    Book quirk: true division, so the result is a float (e.g. 24.0).
    """
    return (input_size + 2 * pad - filter_size) / stride + 1


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """Unfold image patches into rows.

    Parameters
    ----------
    input_data : ndarray, shape (N, C, H, W)
    filter_h, filter_w : int
    stride, pad : int

    Returns
    -------
    col : ndarray of float64, shape (N*out_h*out_w, C*filter_h*filter_w)
        Rows ordered (n, oh, ow), columns ordered (c, ky, kx).  Always
        float64, whatever the input dtype (the buffer is ``np.zeros``).
    """
    N, C, H, W = input_data.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1

    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))

    for ky in range(filter_h):
        ky_end = ky + stride * out_h
        for kx in range(filter_w):
            kx_end = kx + stride * out_w
            col[:, :, ky, kx, :, :] = img[:, :, ky:ky_end:stride, kx:kx_end:stride]

    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """Fold rows back into an image: the adjoint of :func:`im2col`.

    Overlapping patch contributions are summed.

    Parameters
    ----------
    col : ndarray, shape (N*out_h*out_w, C*filter_h*filter_w)
    input_shape : tuple (N, C, H, W)
    filter_h, filter_w, stride, pad : int

    Returns
    -------
    ndarray of float64, shape (N, C, H, W)
        Book quirk: a non-contiguous view into a larger padded buffer of
        shape (N, C, H + 2*pad + stride - 1, W + 2*pad + stride - 1).
    """
    N, C, H, W = input_shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)

    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1))
    for ky in range(filter_h):
        ky_end = ky + stride * out_h
        for kx in range(filter_w):
            kx_end = kx + stride * out_w
            img[:, :, ky:ky_end:stride, kx:kx_end:stride] += col[:, :, ky, kx, :, :]

    return img[:, :, pad:H + pad, pad:W + pad]
