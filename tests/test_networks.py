"""fastnn networks against the reference networks (book-compat.md sections 7-8, test ideas 1-3,
24-26, 29): same seed -> same weights, same loss trajectories (float64), gradient checks, and
the flat-buffer contracts."""
import numpy as np
import pytest

from fastnn.multi_layer_net import MultiLayerNet
from fastnn.multi_layer_net_extend import MultiLayerNetExtend
from fastnn.two_layer_net import TwoLayerNet
from fastnn.optimizer import SGD, Adam
from fastnn import optimizer as fopt
from fastnn.reference.multi_layer_net import MultiLayerNet as RefMLN
from fastnn.reference.multi_layer_net_extend import MultiLayerNetExtend as RefExt
from fastnn.reference.two_layer_net import TwoLayerNet as RefTwo
from fastnn.reference import optimizer as ropt
from fastnn import layers as L

IN, OUT = 20, 5


def data(n=16, seed=0, one_hot=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, IN)
    t = np.argmax(x @ np.random.RandomState(99).randn(IN, OUT), axis=1)
    return x, (np.eye(OUT)[t] if one_hot else t)


def pair(fast_cls, ref_cls, *args, seed=3, **kw):
    np.random.seed(seed)
    a = ref_cls(*args, **kw)
    np.random.seed(seed)
    b = fast_cls(*args, **kw)
    return a, b


CONFIGS = [
    ("two", lambda M, R: pair(M, R, IN, 10, OUT, weight_init_std=0.3), TwoLayerNet, RefTwo),
    ("mln relu", lambda M, R: pair(M, R, IN, [12, 10], OUT), MultiLayerNet, RefMLN),
    ("mln sigmoid decay", lambda M, R: pair(M, R, IN, [12, 10], OUT, activation="sigmoid",
                                            weight_init_std="xavier", weight_decay_lambda=0.1),
     MultiLayerNet, RefMLN),
    ("ext bn", lambda M, R: pair(M, R, IN, [12, 10, 8], OUT, use_batchnorm=True),
     MultiLayerNetExtend, RefExt),
    ("ext bn decay", lambda M, R: pair(M, R, IN, [12, 10], OUT, use_batchnorm=True,
                                       weight_decay_lambda=0.05, weight_init_std=0.1),
     MultiLayerNetExtend, RefExt),
]


@pytest.mark.parametrize("name,make,M,R", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("opt", ["SGD", "Adam", "Momentum"])
def test_same_trajectory_as_reference_float64(name, make, M, R, opt):
    ref, fast = make(M, R)
    assert list(fast.params) == list(ref.params)
    for k in ref.params:                       # same draws: bitwise equal weights
        assert fast.params[k].dtype == np.float64
        assert np.array_equal(fast.params[k], ref.params[k]), k
    ro, fo = getattr(ropt, opt)(lr=0.05), getattr(fopt, opt)(lr=0.05)
    x, t = data()
    for step in range(6):
        gr, gf = ref.gradient(x, t), fast.gradient(x, t)
        assert list(gf) == list(gr)
        for k in gr:
            np.testing.assert_allclose(gf[k], gr[k], rtol=1e-9, atol=1e-12, err_msg=k)
        ro.update(ref.params, gr)
        fo.update(fast.params, gf)
        np.testing.assert_allclose(fast.loss(x, t), ref.loss(x, t), rtol=1e-11)
    assert fast.accuracy(x, t) == ref.accuracy(x, t)


def test_float32_network_runs_in_float32():
    np.random.seed(0)
    net = MultiLayerNetExtend(IN, [12, 10], OUT, use_batchnorm=True, use_dropout=True,
                              dropout_ration=0.1, dtype=np.float32)
    np.random.seed(0)
    ref = RefExt(IN, [12, 10], OUT, use_batchnorm=True)
    for k in ref.params:                        # the float64 draws, rounded
        assert net.params[k].dtype == np.float32
        assert np.array_equal(net.params[k], ref.params[k].astype(np.float32))
    x, t = data(one_hot=True)                   # float64 input and labels are converted
    g = net.gradient(x, t)
    assert all(v.dtype == np.float32 for v in g.values())
    assert net.predict(x).dtype == np.float32
    assert net.predict(x, train_flg=True).dtype == np.float32
    loss0 = float(net.loss(x, t))
    opt = Adam(lr=0.01)
    for _ in range(30):
        opt.update(net.params, net.gradient(x, t))
    assert float(net.loss(x, t)) < loss0
    with pytest.raises(ValueError, match="float32 or float64"):
        MultiLayerNet(IN, [4], OUT, dtype=np.int32)


def test_flat_buffer_contracts():
    np.random.seed(1)
    net = MultiLayerNetExtend(IN, [12, 10], OUT, use_batchnorm=True, weight_decay_lambda=0.1)
    flat = net.flat_params
    off = 0
    for k, p in net.params.items():             # params tile the flat buffer in params order
        assert np.shares_memory(p, flat) and p.flags.c_contiguous
        assert p.ctypes.data == flat.ctypes.data + off * 8
        off += p.size
    assert off == flat.size and flat.ctypes.data % 64 == 0
    for i in (1, 2, 3):
        assert net.params["W%d" % i] is net.layers["Affine%d" % i].W
        assert net.params["b%d" % i] is net.layers["Affine%d" % i].b
    for i in (1, 2):
        assert net.params["gamma%d" % i] is net.layers["BatchNorm%d" % i].gamma
        assert net.params["beta%d" % i] is net.layers["BatchNorm%d" % i].beta
    x, t = data()
    g = net.gradient(x, t)
    assert list(g) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]
    gflat = net.flat_grads
    for k, v in g.items():                      # grads: same offsets in the gradient buffer
        assert v.ctypes.data - gflat.ctypes.data == net.params[k].ctypes.data - flat.ctypes.data
    assert g["b1"] is net.layers["Affine1"].db
    assert g["gamma1"] is net.layers["BatchNorm1"].dgamma
    assert g["beta2"] is net.layers["BatchNorm2"].dbeta
    # weight decay: grads W = dW + lambda*W, the layer's dW stays the data gradient
    aff = net.layers["Affine2"]
    np.testing.assert_array_equal(g["W2"], aff.dW + 0.1 * net.params["W2"])
    # first layer: no input gradient
    assert net.layers["Affine1"].need_dx is False
    # the grads are overwritten by the next gradient() call (documented)
    before = g["b3"].copy()
    g2 = net.gradient(x[::-1].copy(), t[::-1].copy() * 0)
    assert g2["b3"] is g["b3"] and not np.array_equal(before, g2["b3"])
    # in-place optimizer updates reach the layers
    w_before = net.layers["Affine1"].W.copy()
    SGD(lr=0.1).update(net.params, g2)
    assert net.params["W1"] is net.layers["Affine1"].W
    assert not np.array_equal(w_before, net.layers["Affine1"].W)


def test_book_attributes_and_errors():
    net = MultiLayerNet(IN, [10, 10], OUT)
    assert list(net.layers) == ["Affine1", "Activation_function1", "Affine2",
                                "Activation_function2", "Affine3"]
    assert isinstance(net.last_layer, L.SoftmaxWithLoss)
    assert (net.input_size, net.output_size, net.hidden_layer_num) == (IN, OUT, 2)
    with pytest.raises(TypeError):
        MultiLayerNet(IN, (10, 10), OUT)
    with pytest.raises(KeyError):
        MultiLayerNet(IN, [10], OUT, activation="ReLU")
    with pytest.raises(TypeError):
        MultiLayerNet(IN, [10], OUT, weight_init_std="foo")
    ext = MultiLayerNetExtend(IN, [10, 10], OUT, use_dropout=True, dropout_ration=0.2,
                              use_batchnorm=True)
    assert list(ext.layers) == ["Affine1", "BatchNorm1", "Activation_function1", "Dropout1",
                                "Affine2", "BatchNorm2", "Activation_function2", "Dropout2",
                                "Affine3"]
    assert list(ext.params) == ["W1", "b1", "W2", "b2", "W3", "b3", "gamma1", "beta1",
                                "gamma2", "beta2"]
    assert ext.layers["Dropout1"].dropout_ratio == 0.2
    two = TwoLayerNet(IN, 8, OUT)
    assert list(two.layers) == ["Affine1", "Relu1", "Affine2"]
    assert isinstance(two.lastLayer, L.SoftmaxWithLoss)
    x, t = data(one_hot=True)
    assert two.accuracy(x, t) == two.accuracy(x, np.argmax(t, axis=1))


def test_weight_scales():
    np.random.seed(5)
    net = MultiLayerNet(400, [300], 10, weight_init_std="he")
    assert abs(net.params["W1"].std() - np.sqrt(2 / 400)) < 0.003
    np.random.seed(5)
    net = MultiLayerNet(400, [300], 10, weight_init_std="xavier")
    assert abs(net.params["W1"].std() - np.sqrt(1 / 400)) < 0.002


def test_extend_train_flag_and_bn_statistics():
    np.random.seed(2)
    net = MultiLayerNetExtend(IN, [10], OUT, use_batchnorm=True, use_dropout=True,
                              dropout_ration=0.5)
    x, t = data()
    bn = net.layers["BatchNorm1"]
    net.gradient(x, t)                          # one training forward -> running stats move
    rm = bn.running_mean.copy()
    assert np.any(rm != 0)
    a, b = net.predict(x), net.predict(x)       # inference: deterministic, stats unchanged
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(bn.running_mean, rm)
    net.predict(x, train_flg=True)
    assert not np.array_equal(bn.running_mean, rm)


def test_loss_weight_decay_term():
    ref, fast = pair(MultiLayerNet, RefMLN, IN, [10], OUT, weight_decay_lambda=0.3)
    x, t = data()
    np.testing.assert_allclose(fast.loss(x, t), ref.loss(x, t), rtol=1e-13)
    wsum = sum(np.sum(fast.params["W%d" % i] ** 2) for i in (1, 2))
    plain = MultiLayerNet(IN, [10], OUT)
    for k in plain.params:
        plain.params[k][...] = fast.params[k]
    np.testing.assert_allclose(fast.loss(x, t) - plain.loss(x, t), 0.15 * wsum, rtol=1e-10)


@pytest.mark.parametrize("make", [
    lambda: TwoLayerNet(IN, 6, OUT, weight_init_std=0.5),
    lambda: MultiLayerNet(IN, [6, 5], OUT, activation="sigmoid", weight_decay_lambda=0.1),
    lambda: MultiLayerNetExtend(IN, [6, 5], OUT, activation="sigmoid", use_batchnorm=True,
                                weight_decay_lambda=0.05),
], ids=["two", "mln", "ext"])
def test_gradient_check(make):
    np.random.seed(4)
    net = make()
    x, t = data(8)
    num = net.numerical_gradient(x, t)
    grad = {k: v.copy() for k, v in net.gradient(x, t).items()}
    assert set(num) == set(grad)
    relu = isinstance(net, TwoLayerNet)   # ReLU kinks inside h: the book's mean-diff check
    for k in grad:
        if relu:
            assert np.mean(np.abs(grad[k] - num[k])) < 1e-5, k
        else:
            np.testing.assert_allclose(grad[k], num[k], atol=2e-6, rtol=1e-4, err_msg=k)
