"""Tests of fastnn.reference.layers and .layer_naive against the book's
documented behaviour (book-compat.md sections 5 and 7, test ideas 4, 6-14)."""

import numpy as np
import pytest

from fastnn.reference import layers as L
from fastnn.reference.gradient import numerical_gradient
from fastnn.reference.layer_naive import AddLayer, MulLayer


# --------------------------------------------------------------------------- module surface

def test_star_import_reexports_np_functions_and_im2col():
    ns = {}
    exec("from fastnn.reference.layers import *", ns)
    assert ns["np"] is np
    for name in ["sigmoid", "softmax", "cross_entropy_error", "relu", "step_function",
                 "im2col", "col2im", "Affine", "Relu", "BatchNormalization", "Pooling"]:
        assert name in ns, name
    assert not hasattr(L, "__all__")


# --------------------------------------------------------------------------- naive layers

def test_buy_apple():
    mul_apple, mul_tax = MulLayer(), MulLayer()
    price = mul_tax.forward(mul_apple.forward(100, 2), 1.1)
    dapple_price, dtax = mul_tax.backward(1)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert int(price) == 220 and price == pytest.approx(220)
    assert dapple == pytest.approx(2.2) and int(dapple_num) == 110 and dtax == 200
    assert (mul_apple.x, mul_apple.y) == (100, 2)


def test_buy_apple_orange():
    mul_apple, mul_orange, mul_tax, add = MulLayer(), MulLayer(), MulLayer(), AddLayer()
    apple = mul_apple.forward(100, 2)
    orange = mul_orange.forward(150, 3)
    total = add.forward(apple, orange)
    price = mul_tax.forward(total, 1.1)
    dtotal, dtax = mul_tax.backward(1)
    dapple_price, dorange_price = add.backward(dtotal)
    dorange, dorange_num = mul_orange.backward(dorange_price)
    dapple, dapple_num = mul_apple.backward(dapple_price)
    assert int(price) == 715 and dtax == 650
    assert dapple == pytest.approx(2.2) and int(dapple_num) == 110
    assert dorange == 3.3000000000000003 and int(dorange_num) == 165


# --------------------------------------------------------------------------- Relu / Sigmoid

def test_relu_mask_and_in_place_backward():
    layer = L.Relu()
    x = np.array([[-1.0, 0.0, 2.0], [3.0, -0.0, np.nan]])
    out = layer.forward(x)
    np.testing.assert_array_equal(layer.mask, [[True, True, False], [False, True, False]])
    assert out[0, 0] == 0 and out[0, 2] == 2 and np.isnan(out[1, 2])
    assert not np.signbit(out[1, 1])            # -0.0 becomes 0.0
    assert x[0, 0] == -1.0                      # input untouched
    d = np.ones_like(x)
    dx = layer.backward(d)
    assert dx is d                              # book: mutates dout and returns it
    np.testing.assert_array_equal(d, [[0, 0, 1], [1, 0, 1]])  # gradient 0 at x == 0


def test_relu_preserves_float32():
    assert L.Relu().forward(np.ones(3, np.float32)).dtype == np.float32


def test_sigmoid_layer():
    layer = L.Sigmoid()
    x = np.array([[-1.0, 0.0, 2.0]])
    out = layer.forward(x)
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(out, s, rtol=1e-15)
    assert layer.out is out
    dout = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(layer.backward(dout), dout * s * (1 - s), rtol=1e-15)


# --------------------------------------------------------------------------- Affine

def test_affine_4d_input():
    rng = np.random.RandomState(0)
    x = rng.randn(3, 1, 2, 6)
    W = rng.randn(12, 4)
    b = rng.randn(4)
    layer = L.Affine(W, b)
    assert layer.dW is None and layer.db is None
    assert layer.W is W and layer.b is b
    out = layer.forward(x)
    x2 = x.reshape(3, 12)
    np.testing.assert_allclose(out, x2 @ W + b, rtol=1e-13)
    assert layer.x.shape == (3, 12) and layer.original_x_shape == (3, 1, 2, 6)
    dout = rng.randn(3, 4)
    dx = layer.backward(dout)
    assert dx.shape == (3, 1, 2, 6)
    np.testing.assert_allclose(dx.reshape(3, 12), dout @ W.T, rtol=1e-13)
    np.testing.assert_allclose(layer.dW, x2.T @ dout, rtol=1e-13)
    np.testing.assert_allclose(layer.db, dout.sum(axis=0), rtol=1e-13)


def test_affine_1d_input_raises_and_dtype_promotion():
    layer = L.Affine(np.ones((3, 2)), np.zeros(2))
    with pytest.raises(ValueError):
        layer.forward(np.ones(3))
    assert layer.forward(np.ones((2, 3), np.float32)).dtype == np.float64
    l32 = L.Affine(np.ones((3, 2), np.float32), np.zeros(2, np.float32))
    assert l32.forward(np.ones((2, 3), np.float32)).dtype == np.float32


def test_affine_sees_in_place_weight_changes():
    W = np.ones((2, 2)); b = np.zeros(2)
    layer = L.Affine(W, b)
    x = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(layer.forward(x), [[3.0, 3.0]])
    W *= 2
    b += 1
    np.testing.assert_array_equal(layer.forward(x), [[7.0, 7.0]])


# --------------------------------------------------------------------------- SoftmaxWithLoss

def test_softmax_with_loss_forward_backward():
    rng = np.random.RandomState(1)
    x = rng.randn(4, 3)
    idx = np.array([2, 0, 1, 1])
    onehot = np.eye(3)[idx]
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(4), idx] + 1e-7))

    a, b = L.SoftmaxWithLoss(), L.SoftmaxWithLoss()
    la, lb = a.forward(x, idx), b.forward(x, onehot)
    assert isinstance(la, np.floating)
    assert la == pytest.approx(expected, rel=1e-13) and lb == la
    assert a.loss is la and a.t is idx
    np.testing.assert_allclose(a.y, p, rtol=1e-14)
    dxa, dxb = a.backward(), b.backward()
    np.testing.assert_allclose(dxa, (p - onehot) / 4, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(dxb, dxa, rtol=1e-14, atol=1e-17)
    np.testing.assert_array_equal(a.backward(5), a.backward(1))   # dout ignored


def test_softmax_with_loss_1d_one_hot_quirk():
    x = np.array([0.3, -1.0, 2.0, 0.5])
    t = np.array([0.0, 0.0, 1.0, 0.0])
    layer = L.SoftmaxWithLoss()
    loss = layer.forward(x, t)
    p = np.exp(x) / np.exp(x).sum()
    assert loss == pytest.approx(-np.log(p[2] + 1e-7), rel=1e-13)
    np.testing.assert_allclose(layer.backward(), (p - t) / 4, rtol=1e-13)   # divided by C


def test_softmax_with_loss_float32():
    layer = L.SoftmaxWithLoss()
    loss = layer.forward(np.ones((2, 3), np.float32), np.array([0, 1]))
    assert loss.dtype == np.float32


# --------------------------------------------------------------------------- Dropout

def test_dropout_train_uses_rand_without_rescale():
    rng = np.random.RandomState(2)
    x = rng.randn(5, 7)
    layer = L.Dropout(0.3)
    np.random.seed(42)
    out1 = layer.forward(x)
    mask1 = layer.mask
    out2 = layer.forward(x, train_flg=True)
    np.random.seed(42)
    r1 = np.random.rand(5, 7)
    r2 = np.random.rand(5, 7)
    assert mask1.dtype == np.bool_
    np.testing.assert_array_equal(mask1, r1 > 0.3)
    np.testing.assert_array_equal(out1, x * (r1 > 0.3))
    np.testing.assert_array_equal(out2, x * (r2 > 0.3))       # a second draw
    dout = rng.randn(5, 7)
    np.testing.assert_array_equal(layer.backward(dout), dout * (r2 > 0.3))


def test_dropout_test_mode_scales_and_keeps_mask():
    layer = L.Dropout()
    assert layer.dropout_ratio == 0.5 and layer.mask is None
    x = np.arange(6.0).reshape(2, 3)
    layer.forward(x)
    mask = layer.mask
    state = np.random.get_state()[1].copy()
    np.testing.assert_array_equal(layer.forward(x, train_flg=False), x * 0.5)
    assert layer.mask is mask
    np.testing.assert_array_equal(np.random.get_state()[1], state)   # no RNG use


def test_dropout_backward_without_training_forward_fails():
    layer = L.Dropout(0.2)
    layer.forward(np.ones((2, 2)), train_flg=False)
    with pytest.raises(TypeError):
        layer.backward(np.ones((2, 2)))


# --------------------------------------------------------------------------- BatchNormalization

def _bn(D, gamma=None, beta=None, **kw):
    g = np.ones(D) if gamma is None else gamma
    b = np.zeros(D) if beta is None else beta
    return L.BatchNormalization(g, b, **kw)


def test_bn_forward_eps_biased_var_and_running_stats():
    rng = np.random.RandomState(3)
    x = rng.randn(6, 4) * 2 + 1
    gamma, beta = rng.rand(4) + 0.5, rng.randn(4)
    layer = L.BatchNormalization(gamma, beta)
    assert layer.momentum == 0.9 and layer.running_mean is None and layer.running_var is None
    out = layer.forward(x)                                    # default train_flg=True
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    std = np.sqrt(var + 1e-6)
    np.testing.assert_allclose(out, gamma * (x - mu) / std + beta, rtol=1e-13)
    np.testing.assert_allclose(layer.std, std, rtol=1e-15)
    np.testing.assert_allclose(layer.xc, x - mu, rtol=1e-14)
    np.testing.assert_allclose(layer.xn, (x - mu) / std, rtol=1e-13)
    assert layer.batch_size == 6 and layer.input_shape == (6, 4)
    assert layer.running_mean.dtype == np.float64 and layer.running_var.dtype == np.float64
    np.testing.assert_allclose(layer.running_mean, 0.1 * mu, rtol=1e-14)
    np.testing.assert_allclose(layer.running_var, 0.1 * var, rtol=1e-14)
    # second training forward: running <- m*running + (1-m)*batch
    x2 = rng.randn(6, 4)
    layer.forward(x2, True)
    mu2 = x2.mean(axis=0)
    var2 = x2.var(axis=0)
    np.testing.assert_allclose(layer.running_mean, 0.9 * 0.1 * mu + 0.1 * mu2, rtol=1e-13)
    np.testing.assert_allclose(layer.running_var, 0.9 * 0.1 * var + 0.1 * var2, rtol=1e-13)
    # test mode uses the running statistics and does not update them
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    out_t = layer.forward(x, train_flg=False)
    np.testing.assert_allclose(out_t, gamma * (x - rm) / np.sqrt(rv + 1e-6) + beta, rtol=1e-13)
    np.testing.assert_array_equal(layer.running_mean, rm)


def test_bn_custom_momentum():
    x = np.array([[1.0], [3.0]])
    layer = _bn(1, momentum=0.5, running_mean=np.array([4.0]), running_var=np.array([2.0]))
    layer.forward(x)
    np.testing.assert_allclose(layer.running_mean, [0.5 * 4 + 0.5 * 2])
    np.testing.assert_allclose(layer.running_var, [0.5 * 2 + 0.5 * 1])


def test_bn_test_mode_before_training_is_1000x():
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    layer = _bn(2)
    np.testing.assert_allclose(layer.forward(x, train_flg=False), 1000 * x, rtol=1e-12)
    np.testing.assert_array_equal(layer.running_var, [0.0, 0.0])


def test_bn_backward_numerical_and_closed_form():
    rng = np.random.RandomState(4)
    N, D = 4, 3
    x = rng.randn(N, D)
    gamma, beta = rng.rand(D) + 0.5, rng.randn(D)
    dout = rng.randn(N, D)
    layer = L.BatchNormalization(gamma, beta)
    layer.forward(x)
    dx = layer.backward(dout)

    f = lambda _: np.sum(layer.forward(x, True) * dout)
    np.testing.assert_allclose(numerical_gradient(f, x), dx, atol=1e-7)
    np.testing.assert_allclose(numerical_gradient(f, gamma), layer.dgamma, atol=1e-7)
    np.testing.assert_allclose(numerical_gradient(f, beta), layer.dbeta, atol=1e-7)

    xn = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-6)
    std = np.sqrt(x.var(0) + 1e-6)
    dxn = gamma * dout
    closed = (N * dxn - dxn.sum(0) - xn * (dxn * xn).sum(0)) / (N * std)
    np.testing.assert_allclose(dx, closed, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(layer.dbeta, dout.sum(0), rtol=1e-14)
    np.testing.assert_allclose(layer.dgamma, (xn * dout).sum(0), rtol=1e-12)


def test_bn_4d_is_per_feature_over_chw():
    rng = np.random.RandomState(5)
    x = rng.randn(4, 2, 3, 3)
    D = 2 * 3 * 3
    gamma, beta = rng.rand(D) + 0.5, rng.randn(D)
    l4, l2 = L.BatchNormalization(gamma, beta), L.BatchNormalization(gamma, beta)
    out4 = l4.forward(x)
    assert out4.shape == x.shape and l4.input_shape == x.shape
    np.testing.assert_array_equal(out4.reshape(4, D), l2.forward(x.reshape(4, D)))
    assert l4.running_mean.shape == (D,)
    np.testing.assert_allclose(l4.running_mean, 0.1 * x.reshape(4, D).mean(0), rtol=1e-14)
    dout = rng.randn(*x.shape)
    dx4 = l4.backward(dout)
    assert dx4.shape == x.shape
    np.testing.assert_array_equal(dx4.reshape(4, D), l2.backward(dout.reshape(4, D)))


def test_bn_bad_shapes_raise():
    with pytest.raises(ValueError):                  # per-channel gamma does not broadcast
        _bn(2).forward(np.ones((4, 2, 3, 3)))
    with pytest.raises(ValueError):                  # 3-D cannot unpack N, C, H, W
        _bn(6).forward(np.ones((4, 2, 3)))


def test_bn_float32():
    layer = L.BatchNormalization(np.ones(3, np.float32), np.zeros(3, np.float32))
    x = np.random.RandomState(6).randn(5, 3).astype(np.float32)
    out = layer.forward(x)
    assert out.dtype == np.float32
    assert layer.running_mean.dtype == np.float64
    assert layer.backward(np.ones_like(x)).dtype == np.float32


# --------------------------------------------------------------------------- Convolution

def _naive_conv(x, W, b, stride, pad):
    N, C, H, Wd = x.shape
    FN, _, FH, FW = W.shape
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    oh = (H + 2 * pad - FH) // stride + 1
    ow = (Wd + 2 * pad - FW) // stride + 1
    out = np.zeros((N, FN, oh, ow))
    for n in range(N):
        for f in range(FN):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[n, :, i * stride:i * stride + FH, j * stride:j * stride + FW]
                    out[n, f, i, j] = np.sum(patch * W[f]) + b[f]
    return out


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("pad", [0, 1, 2])
def test_convolution_forward_against_naive(stride, pad):
    rng = np.random.RandomState(stride * 10 + pad)
    x = rng.randn(2, 3, 5, 6)
    W = rng.randn(4, 3, 3, 2)
    b = rng.randn(4)
    layer = L.Convolution(W, b, stride, pad)
    out = layer.forward(x)
    expected = _naive_conv(x, W, b, stride, pad)
    assert out.shape == expected.shape
    assert not out.flags.c_contiguous             # transposed (N, oh, ow, FN) buffer
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1)])
def test_convolution_backward_numerical(stride, pad):
    rng = np.random.RandomState(7 + stride)
    x = rng.randn(2, 2, 5, 5)
    W = rng.randn(3, 2, 3, 3)
    b = rng.randn(3)
    layer = L.Convolution(W, b, stride, pad)
    out = layer.forward(x)
    dout = rng.randn(*out.shape)
    dx = layer.backward(dout)
    f = lambda _: np.sum(layer.forward(x) * dout)
    np.testing.assert_allclose(numerical_gradient(f, x), dx, atol=1e-7)
    np.testing.assert_allclose(numerical_gradient(f, W), layer.dW, atol=1e-7)
    np.testing.assert_allclose(numerical_gradient(f, b), layer.db, atol=1e-7)
    assert layer.dW.shape == W.shape and layer.db.shape == (3,)


def test_convolution_scalar_bias_and_dtypes():
    x = np.random.RandomState(8).rand(1, 1, 6, 6).astype(np.float32)
    w = np.ones((1, 3, 3), np.float32)
    layer = L.Convolution(w[None], 0)                 # as ch07/apply_filter.py
    out = layer.forward(x)
    assert out.dtype == np.float64                    # im2col path is always float64
    assert out.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(out[0, 0, 0, 0], x[0, 0, :3, :3].sum(), rtol=1e-6)
    layer.backward(np.ones_like(out))
    np.testing.assert_array_equal(layer.db, [16.0])


# --------------------------------------------------------------------------- Pooling

def test_pooling_default_stride_and_arange():
    layer = L.Pooling(2, 2)
    assert layer.stride == 2 and layer.pad == 0
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    out = layer.forward(x)
    np.testing.assert_array_equal(out.reshape(-1), [5, 7, 13, 15])
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    expected = np.zeros((4, 4)); expected[[1, 1, 3, 3], [1, 3, 1, 3]] = 1
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_pooling_multichannel_layout():
    rng = np.random.RandomState(9)
    x = rng.randn(2, 3, 4, 6)
    out = L.Pooling(2, 2).forward(x)
    expected = x.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(out, expected)


def test_pooling_ties_go_to_first_element():
    layer = L.Pooling(2, 2)
    layer.forward(np.ones((1, 1, 2, 2)))
    dx = layer.backward(np.full((1, 1, 1, 1), 3.0))
    np.testing.assert_array_equal(dx[0, 0], [[3.0, 0.0], [0.0, 0.0]])


def test_pooling_stride1_overlap_accumulates():
    x = np.zeros((1, 1, 3, 3)); x[0, 0, 1, 1] = 5.0
    layer = L.Pooling(2, 2, stride=1)
    out = layer.forward(x)
    np.testing.assert_array_equal(out[0, 0], [[5, 5], [5, 5]])
    dx = layer.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    assert dx.dtype == np.float64
    assert dx[0, 0, 1, 1] == 10.0 and dx.sum() == 10.0


def test_pooling_pad_raises():
    with pytest.raises(ValueError):
        L.Pooling(2, 2, stride=2, pad=1).forward(np.ones((1, 1, 4, 4)))
