"""Tests of fastnn.reference.functions, .gradient and .util against the book's
documented behaviour (book-compat.md sections 2-4, test ideas 13, 15-18)."""

import numpy as np
import pytest

from fastnn.reference import functions as F
from fastnn.reference import gradient as G
from fastnn.reference import util as U


# --------------------------------------------------------------------------- functions

def test_identity_function_returns_same_object():
    x = np.arange(3.0)
    assert F.identity_function(x) is x


def test_step_function_integer_dtype_and_values():
    out = F.step_function(np.array([-1.0, 0.0, 0.5, 2.0]))
    assert out.dtype == np.dtype(int)
    np.testing.assert_array_equal(out, [0, 0, 1, 1])


def test_sigmoid_values_dtype_and_naive_overflow():
    np.testing.assert_allclose(F.sigmoid(np.array([0.0, 1.0, -1.0])),
                               [0.5, 1 / (1 + np.exp(-1.0)), 1 / (1 + np.e)], rtol=1e-15)
    assert F.sigmoid(np.ones(3, np.float32)).dtype == np.float32
    with pytest.warns(RuntimeWarning):          # naive form: exp overflows
        assert F.sigmoid(np.array([-1000.0]))[0] == 0.0


def test_sigmoid_grad_closed_form():
    x = np.linspace(-3, 3, 7)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(F.sigmoid_grad(x), s * (1 - s), rtol=1e-15)


def test_relu_and_relu_grad_at_zero_is_one():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(F.relu(x), [0.0, 0.0, 3.0])
    np.testing.assert_array_equal(F.relu_grad(x), [0.0, 1.0, 1.0])
    assert F.relu_grad(np.array(0.0)) == 1


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 4)])
def test_softmax_last_axis(shape):
    rng = np.random.RandomState(0)
    x = rng.randn(*shape) * 3
    y = F.softmax(x)
    e = np.exp(x)
    np.testing.assert_allclose(y, e / e.sum(axis=-1, keepdims=True), rtol=1e-13)
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-14)


def test_softmax_large_values_and_float32():
    np.testing.assert_array_equal(F.softmax(np.array([1000.0, 1000.0])), [0.5, 0.5])
    np.testing.assert_allclose(F.softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])),
                               [[0.5, 0.5], [0.25, 0.75]], rtol=1e-15)
    assert F.softmax(np.ones((2, 3), np.float32)).dtype == np.float32


def test_sum_squared_error_book_example_and_no_batch_mean():
    t = np.zeros(10); t[2] = 1
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    assert F.sum_squared_error(y, t) == pytest.approx(0.0975, rel=1e-12)
    Y = np.stack([y, y, y])
    T = np.stack([t, t, t])
    assert F.sum_squared_error(Y, T) == pytest.approx(3 * 0.0975, rel=1e-12)
    assert F.mean_squared_error is F.sum_squared_error


def test_cross_entropy_book_example_one_hot_and_index_agree():
    t = np.zeros(10); t[2] = 1
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    expected = -np.log(0.6 + 1e-7)
    assert F.cross_entropy_error(y, t) == pytest.approx(expected, rel=1e-14)
    # 1-D y with a 0-d index label
    assert F.cross_entropy_error(y, np.array(2)) == F.cross_entropy_error(y, t)
    out = F.cross_entropy_error(y, t)
    assert isinstance(out, np.floating)


def test_cross_entropy_batch_mean_and_delta_inside_log():
    y = np.array([[0.2, 0.8, 0.0], [0.5, 0.25, 0.25]])
    idx = np.array([1, 0])
    onehot = np.eye(3)[idx]
    expected = -(np.log(0.8 + 1e-7) + np.log(0.5 + 1e-7)) / 2
    assert F.cross_entropy_error(y, idx) == pytest.approx(expected, rel=1e-14)
    assert F.cross_entropy_error(y, onehot) == F.cross_entropy_error(y, idx)
    # probability 0 at the target: -log(1e-7) = 16.118...
    assert F.cross_entropy_error(np.array([1.0, 0.0]), np.array(1)) == pytest.approx(16.11809565, rel=1e-9)


def test_softmax_loss_composition():
    rng = np.random.RandomState(1)
    X = rng.randn(4, 5)
    t = np.array([0, 4, 2, 2])
    p = np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(4), t] + 1e-7))
    assert F.softmax_loss(X, t) == pytest.approx(expected, rel=1e-13)


# --------------------------------------------------------------------------- gradient

def test_numerical_gradient_book_example():
    x = np.array([3.0, 4.0])
    g = G.numerical_gradient(lambda x: np.sum(x ** 2), x)
    np.testing.assert_allclose(g, [6.0, 8.0], rtol=1e-9)


def test_numerical_gradient_uses_h_1e4_central_difference():
    # for x**3 the central difference is exactly 3x^2 + h^2
    x = np.array([1.0, 2.0])
    g = G.numerical_gradient(lambda x: np.sum(x ** 3), x)
    np.testing.assert_allclose(g, 3 * x ** 2 + 1e-8, rtol=0, atol=1e-10)


def test_numerical_gradient_in_place_multi_index_and_restore():
    rng = np.random.RandomState(2)
    x = rng.randn(2, 3, 2)
    original = x.copy()
    A = rng.randn(2, 3, 2)
    calls = []

    def f(arg):
        calls.append(arg)
        return np.sum(A * x ** 2)     # ignores its argument: sees x mutated in place

    g = G.numerical_gradient(f, x)
    np.testing.assert_allclose(g, 2 * A * original, rtol=1e-7, atol=1e-9)
    assert len(calls) == 2 * x.size
    assert all(c is x for c in calls)
    assert np.array_equal(x, original) and x.tobytes() == original.tobytes()


def test_numerical_gradient_dtype_follows_x():
    x = np.array([1.0, 2.0], np.float32)
    g = G.numerical_gradient(lambda x: np.sum(x ** 2), x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, [2.0, 4.0], rtol=2e-2)


def test_numerical_gradient_1d_and_2d_helpers():
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(G._numerical_gradient_1d(lambda v: np.sum(v ** 2), x), 2 * x, rtol=1e-9)
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    before = X.copy()
    # f is applied to each row separately
    np.testing.assert_allclose(G.numerical_gradient_2d(lambda v: np.sum(v ** 2), X), 2 * X, rtol=1e-9)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_allclose(G.numerical_gradient_2d(lambda v: np.sum(v ** 2), x), 2 * x, rtol=1e-9)


# --------------------------------------------------------------------------- util

def _kaiser():
    w = np.kaiser(11, 2)
    return w / w.sum()


@pytest.mark.parametrize("n", [11, 12, 30])
def test_smooth_curve_length_constant_and_interior(n):
    rng = np.random.RandomState(n)
    x = rng.rand(n)
    y = U.smooth_curve(x)
    assert len(y) == n
    w = _kaiser()
    for i in range(5, n - 5):                       # full window inside the data
        assert y[i] == pytest.approx(np.dot(w, x[i - 5:i + 6]), rel=1e-12)
    np.testing.assert_allclose(U.smooth_curve(np.ones(n)), np.ones(n), rtol=1e-12)


def test_smooth_curve_edges_and_list_input():
    x = [float(v) for v in np.random.RandomState(3).rand(15)]
    y = U.smooth_curve(x)
    w = _kaiser()
    n = len(x)
    # start: mirror without repeating x[0]  -> x[|k-5|]
    assert y[0] == pytest.approx(sum(w[k] * x[abs(k - 5)] for k in range(11)), rel=1e-12)
    # end: mirror that repeats the last sample -> x[n-6+k] (k<=5), x[n+5-k] (k>5)
    expected_end = sum(w[k] * (x[n - 6 + k] if k <= 5 else x[n + 5 - k]) for k in range(11))
    assert y[-1] == pytest.approx(expected_end, rel=1e-12)


def test_smooth_curve_short_input_quirk():
    assert len(U.smooth_curve(np.ones(10))) == 9
    assert len(U.smooth_curve(np.ones(5))) == 0


def test_shuffle_dataset_uses_permutation():
    x = np.arange(24.0).reshape(6, 4)
    t = np.arange(6)
    np.random.seed(7)
    xs, ts = U.shuffle_dataset(x, t)
    np.random.seed(7)
    perm = np.random.permutation(6)
    np.testing.assert_array_equal(xs, x[perm])
    np.testing.assert_array_equal(ts, t[perm])
    assert not np.shares_memory(xs, x)
    x4 = np.arange(6 * 2 * 2 * 2.0).reshape(6, 2, 2, 2)
    np.random.seed(7)
    xs4, ts4 = U.shuffle_dataset(x4, t)
    np.testing.assert_array_equal(xs4, x4[perm])
    with pytest.raises(IndexError):
        U.shuffle_dataset(np.zeros((6, 2, 2)), t)


def test_conv_output_size_true_division():
    out = U.conv_output_size(28, 5)
    assert out == 24.0 and isinstance(out, float)
    assert U.conv_output_size(7, 3, stride=2, pad=1) == 4.0
    assert U.conv_output_size(8, 3, stride=2) == 3.5


def _naive_im2col(x, fh, fw, stride, pad):
    N, C, H, W = x.shape
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    oh = (H + 2 * pad - fh) // stride + 1
    ow = (W + 2 * pad - fw) // stride + 1
    rows = []
    for n in range(N):
        for i in range(oh):
            for j in range(ow):
                patch = xp[n, :, i * stride:i * stride + fh, j * stride:j * stride + fw]
                rows.append(patch.reshape(-1))          # (c, ky, kx) order
    return np.array(rows)


def test_im2col_hand_example():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    col = U.im2col(x, 2, 2)
    np.testing.assert_array_equal(col, [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]])


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 0), (1, 1), (2, 1), (1, 2)])
def test_im2col_matches_naive_and_col2im_is_adjoint(stride, pad):
    rng = np.random.RandomState(10 * stride + pad)
    x = rng.randn(2, 3, 5, 6)
    col = U.im2col(x, 3, 2, stride, pad)
    oh = (5 + 2 * pad - 3) // stride + 1
    ow = (6 + 2 * pad - 2) // stride + 1
    assert col.shape == (2 * oh * ow, 3 * 3 * 2)
    np.testing.assert_array_equal(col, _naive_im2col(x, 3, 2, stride, pad))
    c = rng.randn(*col.shape)
    back = U.col2im(c, x.shape, 3, 2, stride, pad)
    assert back.shape == x.shape and back.dtype == np.float64
    assert np.sum(col * c) == pytest.approx(np.sum(x * back), rel=1e-12)


def test_im2col_col2im_always_float64():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    assert U.im2col(x, 2, 2).dtype == np.float64
    assert U.im2col(x.astype(np.int32), 2, 2).dtype == np.float64
    assert U.col2im(np.ones((9, 4), np.float32), (1, 1, 4, 4), 2, 2).dtype == np.float64


def test_col2im_accumulates_and_returns_view():
    out = U.col2im(np.ones((4, 4)), (1, 1, 3, 3), 2, 2)
    np.testing.assert_array_equal(out[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    padded = U.col2im(np.ones((2 * 16, 4)), (2, 1, 3, 3), 2, 2, stride=1, pad=1)
    assert padded.base is not None and not padded.flags.c_contiguous
    assert padded.base.shape == (2, 1, 3 + 2 + 1 - 1, 3 + 2 + 1 - 1)
