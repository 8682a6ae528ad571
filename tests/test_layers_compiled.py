"""Compiled Affine, Relu, Sigmoid and SoftmaxWithLoss against the NumPy reference."""
import numpy as np
import pytest

from fastnn import layers
from fastnn.reference import layers as ref

from conftest import assert_close

SEEDS = [0, 1, 2]


# ---------------------------------------------------------------- Affine
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape,M", [((1, 7), 3), ((5, 12), 4), ((64, 100), 33),
                                     ((3, 1, 2, 6), 5), ((2, 3, 4, 4), 10)])
def test_affine_matches_reference(seed, shape, M, dtype, n_threads):
    rng = np.random.default_rng(seed)
    K = int(np.prod(shape[1:]))
    x = rng.standard_normal(shape).astype(dtype)
    W = rng.standard_normal((K, M)).astype(dtype)
    b = rng.standard_normal(M).astype(dtype)
    dout = rng.standard_normal((shape[0], M)).astype(dtype)
    fast, slow = layers.Affine(W, b), ref.Affine(W, b)
    y = fast.forward(x)
    assert y.dtype == dtype
    assert_close(y, slow.forward(x), scale=K)
    dx = fast.backward(dout)
    dx_ref = slow.backward(dout)
    assert dx.shape == shape and fast.original_x_shape == shape
    assert fast.x.shape == (shape[0], K)
    assert_close(dx, dx_ref, scale=M)
    assert_close(fast.dW, slow.dW, scale=shape[0])
    assert_close(fast.db, slow.db, scale=shape[0])
    assert fast.dW.dtype == dtype and fast.db.dtype == dtype


def test_affine_shares_weights_and_sees_in_place_updates():
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    layer = layers.Affine(W, b)
    assert layer.W is W and layer.b is b
    x = rng.standard_normal((2, 4))
    y0 = layer.forward(x)
    W -= 0.5          # an optimizer's in-place update
    b[...] = 0
    np.testing.assert_allclose(layer.forward(x), x @ W)
    assert not np.allclose(y0, layer.forward(x))


def test_affine_mixed_dtypes_promote_like_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    W, b = rng.standard_normal((4, 2)), rng.standard_normal(2)
    fast, slow = layers.Affine(W, b), ref.Affine(W, b)
    y = fast.forward(x)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, slow.forward(x), rtol=1e-12)
    # uint8 images (MNIST with normalize=False) with float64 weights give float64
    xi = rng.integers(0, 255, (3, 4)).astype(np.uint8)
    np.testing.assert_allclose(fast.forward(xi), slow.forward(xi), rtol=1e-12)


def test_affine_non_contiguous_input_and_skip_dx():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 10))[:, ::2]
    W, b = rng.standard_normal((5, 3)), rng.standard_normal(3)
    fast, slow = layers.Affine(W, b), ref.Affine(W, b)
    np.testing.assert_allclose(fast.forward(x), slow.forward(x), rtol=1e-12)
    fast.need_dx = False
    dout = rng.standard_normal((8, 3))
    assert fast.backward(dout) is None
    slow.backward(dout)
    np.testing.assert_allclose(fast.dW, slow.dW, rtol=1e-12)


# ---------------------------------------------------------------- Relu / Sigmoid
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (4, 3, 5, 5), (1100, 1000)])
def test_relu_matches_reference(seed, shape, dtype, n_threads):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::7] = 0.0        # exact zeros: masked (gradient 0 at 0, as the book's layer)
    fast, slow = layers.Relu(), ref.Relu()
    out = fast.forward(x)
    np.testing.assert_array_equal(out, slow.forward(x))
    assert out.dtype == dtype
    np.testing.assert_array_equal(fast.mask, slow.mask)
    assert fast.mask.dtype == np.bool_
    dout = rng.standard_normal(shape).astype(dtype)
    d1, d2 = dout.copy(), dout.copy()
    dx = fast.backward(d1)
    assert dx is d1          # the book's in-place backward
    np.testing.assert_array_equal(dx, slow.backward(d2))


def test_relu_special_values():
    x = np.array([[-0.0, 0.0, np.nan, -np.inf, np.inf, -1.0, 2.0]])
    fast, slow = layers.Relu(), ref.Relu()
    np.testing.assert_array_equal(fast.forward(x), slow.forward(x))
    np.testing.assert_array_equal(fast.mask, slow.mask)
    assert not np.signbit(fast.forward(x)[0, 0])   # -0.0 becomes 0.0


def test_relu_backward_read_only_dout_returns_new_array():
    fast = layers.Relu()
    fast.forward(np.array([[-1.0, 2.0]]))
    d = np.array([[3.0, 4.0]])
    d.flags.writeable = False
    dx = fast.backward(d)
    assert dx is not d
    np.testing.assert_array_equal(dx, [[0.0, 4.0]])
    np.testing.assert_array_equal(d, [[3.0, 4.0]])


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (4, 3, 5, 5), (1100, 1000)])
def test_sigmoid_matches_reference(seed, shape, dtype, n_threads):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 6).astype(dtype)
    fast, slow = layers.Sigmoid(), ref.Sigmoid()
    out = fast.forward(x)
    assert out.dtype == dtype and fast.out is out
    assert_close(out, slow.forward(x))
    dout = rng.standard_normal(shape).astype(dtype)
    assert_close(fast.backward(dout), slow.backward(dout))


def test_sigmoid_extremes():
    x = np.array([-1000.0, -745.0, -50.0, 0.0, 50.0, 1000.0, np.inf, -np.inf, np.nan])
    with np.errstate(over="ignore"):
        expected = 1.0 / (1.0 + np.exp(-x))
    out = layers.Sigmoid().forward(x)
    np.testing.assert_allclose(out, expected, rtol=1e-14, atol=1e-300)
    for dt in (np.float32, np.float64):
        with np.errstate(over="ignore"):
            e = (1 / (1 + np.exp(-x.astype(dt)))).astype(dt)
        np.testing.assert_allclose(layers.Sigmoid().forward(x.astype(dt)), e, rtol=1e-6, atol=1e-37)


def test_exp_kernel_accuracy_over_range(dtype):
    # sigmoid(x) = 1/(1+exp(-x)) exposes the vectorised exp over its whole useful range
    x = np.linspace(-80 if dtype == np.float32 else -700, 80 if dtype == np.float32 else 700,
                    200001).astype(dtype)
    with np.errstate(over="ignore"):
        expected = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    rtol = 4e-7 if dtype == np.float32 else 2e-15
    np.testing.assert_allclose(layers.Sigmoid().forward(x), expected, rtol=rtol, atol=1e-37)


# ---------------------------------------------------------------- SoftmaxWithLoss
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("N,C", [(1, 1), (1, 10), (100, 10), (33, 1000), (1100, 1000),
                                 (2200, 1001)])   # >= 8 MiB in float32: the streaming path
@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_with_loss_matches_reference(seed, N, C, one_hot, dtype, n_threads):
    if C == 1 and not one_hot:
        pytest.skip("t.size == y.size makes the book treat t as one-hot (and its argmax fails)")
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 5).astype(dtype)
    t = rng.integers(0, C, N)
    if one_hot:
        t = np.eye(C)[t]
    fast, slow = layers.SoftmaxWithLoss(), ref.SoftmaxWithLoss()
    loss = fast.forward(x, t)
    loss_ref = slow.forward(x, t)
    assert isinstance(loss, np.generic) and loss.dtype == dtype
    assert_close(loss, loss_ref, scale=10)
    assert_close(fast.y, slow.y)
    assert fast.t is t
    dx = fast.backward()
    dx_ref = slow.backward()
    assert dx.dtype == dx_ref.dtype   # float64 one-hot labels promote dx, as in the book
    assert_close(dx, dx_ref, dtype=dtype)
    # a second backward recomputes the same gradient; the book ignores dout's value
    assert_close(fast.backward(5), dx)


def test_softmax_with_loss_book_cases():
    layer = layers.SoftmaxWithLoss()
    # probability 0 at the target: -log(1e-7) = 16.118 (the book's delta)
    x = np.array([[0.0, 1000.0]])
    np.testing.assert_allclose(layer.forward(x, np.array([0])), -np.log(1e-7), rtol=1e-6)
    # one-hot and index labels agree
    x = np.random.default_rng(0).standard_normal((4, 3))
    t = np.array([0, 2, 1, 1])
    a = layers.SoftmaxWithLoss()
    b = layers.SoftmaxWithLoss()
    np.testing.assert_allclose(a.forward(x, t), b.forward(x, np.eye(3)[t]), rtol=1e-14)
    np.testing.assert_allclose(a.backward(), b.backward(), rtol=1e-14)
    # 1-D x with one-hot t: the book divides by t.shape[0] = C (its quirk)
    x1, t1 = np.array([0.3, 2.9, 4.0]), np.array([0.0, 0.0, 1.0])
    fast, slow = layers.SoftmaxWithLoss(), ref.SoftmaxWithLoss()
    np.testing.assert_allclose(fast.forward(x1, t1), slow.forward(x1, t1), rtol=1e-14)
    np.testing.assert_allclose(fast.backward(), slow.backward(), rtol=1e-14)
    assert fast.y.shape == (3,)


def test_softmax_with_loss_uint8_labels_and_large_logits():
    x = np.array([[1000.0, 1000.0, -1000.0], [1e4, 0.0, 0.0]], dtype=np.float32)
    t = np.array([0, 2], dtype=np.uint8)
    fast, slow = layers.SoftmaxWithLoss(), ref.SoftmaxWithLoss()
    np.testing.assert_allclose(fast.forward(x, t), slow.forward(x, t), rtol=1e-6)
    np.testing.assert_allclose(fast.y, slow.y, atol=1e-7)


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_relu_streaming_path_large_and_misaligned_outputs(offset, dtype, n_threads):
    # outputs of 8 MiB or more take the streaming-store path (AVX-512): check it, including
    # outputs that do not start on a 64-byte line
    from fastnn import _activations
    n = (9 << 20) // dtype.itemsize + 5
    rng = np.random.default_rng(offset)
    x = rng.standard_normal(n).astype(dtype)
    x[::11] = 0.0
    buf = np.empty(n + offset, dtype)
    out = buf[offset:]
    y, mask = _activations.relu_forward(x, out=out)
    assert y is out
    np.testing.assert_array_equal(y, np.where(x <= 0, 0, x))
    np.testing.assert_array_equal(mask, x <= 0)
