"""Tests of the reference networks and Trainer (book-compat.md sections 1, 7-9,
test ideas 1-5, 24-27, 29).  Small synthetic problems only (never MNIST)."""

import numpy as np
import pytest

from fastnn.reference.layers import BatchNormalization, Relu, Sigmoid
from fastnn.reference.multi_layer_net import MultiLayerNet
from fastnn.reference.multi_layer_net_extend import MultiLayerNetExtend
from fastnn.reference.optimizer import SGD, Adam, AdaGrad, Momentum, Nesterov, RMSprop
from fastnn.reference.trainer import Trainer
from fastnn.reference.two_layer_net import TwoLayerNet
from fastnn.reference import gradient as G

IN, HID, OUT = 20, [10, 10], 5


def make_data(n, seed=0, one_hot=False):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, IN)
    w_true = np.random.RandomState(1234).randn(IN, OUT)
    t = np.argmax(x @ w_true, axis=1)
    if one_hot:
        t = np.eye(OUT)[t]
    return x, t


def max_diff(a, b):
    return np.max(np.abs(a - b))


# --------------------------------------------------------------------------- structure

def test_multilayernet_structure_and_key_orders():
    net = MultiLayerNet(IN, HID, OUT)
    assert list(net.layers) == ["Affine1", "Activation_function1", "Affine2",
                                "Activation_function2", "Affine3"]
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    assert isinstance(net.layers["Activation_function1"], Relu)
    assert (net.input_size, net.output_size, net.hidden_layer_num) == (IN, OUT, 2)
    assert net.hidden_size_list is HID and net.weight_decay_lambda == 0
    assert net.params["W1"].shape == (20, 10) and net.params["b3"].shape == (5,)
    x, t = make_data(4)
    assert list(net.gradient(x, t)) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    sig = MultiLayerNet(IN, HID, OUT, activation="sigmoid")
    assert isinstance(sig.layers["Activation_function2"], Sigmoid)


def test_multilayernet_bad_arguments():
    with pytest.raises(TypeError):
        MultiLayerNet(IN, (10, 10), OUT)           # tuple hidden_size_list
    with pytest.raises(KeyError):
        MultiLayerNet(IN, HID, OUT, activation="ReLU")
    with pytest.raises(TypeError):
        MultiLayerNet(IN, HID, OUT, weight_init_std="foo")


def test_extend_structure_and_key_orders():
    net = MultiLayerNetExtend(IN, HID, OUT, use_dropout=True, dropout_ration=0.2,
                              use_batchnorm=True)
    assert list(net.layers) == ["Affine1", "BatchNorm1", "Activation_function1", "Dropout1",
                                "Affine2", "BatchNorm2", "Activation_function2", "Dropout2",
                                "Affine3"]
    assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3",
                                "gamma1", "beta1", "gamma2", "beta2"]
    assert net.use_dropout and net.use_batchnorm
    assert net.layers["Dropout1"].dropout_ratio == 0.2
    assert isinstance(net.layers["BatchNorm2"], BatchNormalization)
    assert net.layers["BatchNorm1"].momentum == 0.9
    np.testing.assert_array_equal(net.params["gamma1"], np.ones(10))
    np.testing.assert_array_equal(net.params["beta2"], np.zeros(10))
    x, t = make_data(6)
    assert list(net.gradient(x, t)) == ["W1", "b1", "gamma1", "beta1", "W2", "b2",
                                        "gamma2", "beta2", "W3", "b3"]
    plain = MultiLayerNetExtend(IN, HID, OUT)
    assert list(plain.layers) == ["Affine1", "Activation_function1", "Affine2",
                                  "Activation_function2", "Affine3"]


@pytest.mark.parametrize("cls", [MultiLayerNet, MultiLayerNetExtend])
@pytest.mark.parametrize("init,power", [("relu", 2.0), ("He", 2.0), ("sigmoid", 1.0),
                                        ("xavier", 1.0), (0.01, None)])
def test_weight_init_scales_and_draw_order(cls, init, power):
    np.random.seed(5)
    net = cls(IN, HID, OUT, weight_init_std=init)
    np.random.seed(5)
    sizes = [IN] + HID + [OUT]
    for i in range(1, 4):
        n = sizes[i - 1]
        scale = np.sqrt(power / n) if power else init
        np.testing.assert_array_equal(net.params["W%d" % i], scale * np.random.randn(n, sizes[i]))
        np.testing.assert_array_equal(net.params["b%d" % i], np.zeros(sizes[i]))


def test_two_layer_net_structure_init_and_accuracy():
    np.random.seed(3)
    net = TwoLayerNet(IN, 10, OUT)
    np.random.seed(3)
    W1 = 0.01 * np.random.randn(IN, 10)
    W2 = 0.01 * np.random.randn(10, OUT)
    np.testing.assert_array_equal(net.params["W1"], W1)
    np.testing.assert_array_equal(net.params["W2"], W2)
    assert list(net.params) == ["W1", "b1", "W2", "b2"]
    assert list(net.layers) == ["Affine1", "Relu1", "Affine2"]
    assert hasattr(net, "lastLayer") and not hasattr(net, "last_layer")
    x, t = make_data(8)
    pred = np.argmax(np.maximum(x @ W1, 0) @ W2, axis=1)
    acc = net.accuracy(x, t)
    assert type(acc) is np.float64 and acc == np.mean(pred == t)
    assert net.accuracy(x, np.eye(OUT)[t]) == acc
    grads = net.gradient(x, t)
    assert grads["W1"] is net.layers["Affine1"].dW and grads["b2"] is net.layers["Affine2"].db


# --------------------------------------------------------------------------- sharing (ideas 1-5)

def test_params_are_the_layer_arrays_and_sgd_mutates_them():
    net = MultiLayerNetExtend(IN, HID, OUT, use_batchnorm=True)
    for i in (1, 2, 3):
        assert net.params["W%d" % i] is net.layers["Affine%d" % i].W
        assert net.params["b%d" % i] is net.layers["Affine%d" % i].b
    for i in (1, 2):
        assert net.params["gamma%d" % i] is net.layers["BatchNorm%d" % i].gamma
        assert net.params["beta%d" % i] is net.layers["BatchNorm%d" % i].beta
    x, t = make_data(8)
    ids = {k: id(v) for k, v in net.params.items()}
    before = net.predict(x)
    grads = net.gradient(x, t)
    SGD(lr=0.1).update(net.params, grads)
    assert {k: id(v) for k, v in net.params.items()} == ids
    for i in (1, 2, 3):
        assert net.params["W%d" % i] is net.layers["Affine%d" % i].W
    assert max_diff(net.predict(x), before) > 1e-6


def test_gradients_are_returned_by_reference():
    net = MultiLayerNetExtend(IN, HID, OUT, use_batchnorm=True)
    x, t = make_data(8)
    grads = net.gradient(x, t)
    assert grads["b1"] is net.layers["Affine1"].db
    assert grads["gamma1"] is net.layers["BatchNorm1"].dgamma
    assert grads["beta2"] is net.layers["BatchNorm2"].dbeta
    assert grads["W1"] is not net.layers["Affine1"].dW       # dW + lambda*W is a new array
    np.testing.assert_array_equal(grads["W1"], net.layers["Affine1"].dW)
    plain = MultiLayerNet(IN, HID, OUT)
    g = plain.gradient(x, t)
    assert g["b3"] is plain.layers["Affine3"].db


def test_numerical_gradient_matches_backprop_sigmoid_net():
    np.random.seed(0)
    net = MultiLayerNet(IN, HID, OUT, activation="sigmoid", weight_init_std="sigmoid",
                        weight_decay_lambda=0.1)
    x, t = make_data(3, one_hot=True)
    before = {k: v.copy() for k, v in net.params.items()}
    num = G.numerical_gradient(lambda _: net.loss(x, t), net.params["W1"])
    assert np.max(np.abs(num)) > 1e-3
    for k, v in net.params.items():                      # bitwise restored
        assert v.tobytes() == before[k].tobytes()
    grads = net.gradient(x, t)
    ngrads = net.numerical_gradient(x, t)
    assert list(ngrads) == list(grads)
    np.testing.assert_allclose(num, grads["W1"], atol=1e-6)
    for k in grads:
        assert max_diff(grads[k], ngrads[k]) <= 1e-6, k


def test_numerical_gradient_is_zero_if_layer_holds_a_copy():
    net = MultiLayerNet(IN, HID, OUT)
    x, t = make_data(3)
    net.layers["Affine1"].W = net.params["W1"].copy()       # break the sharing
    num = G.numerical_gradient(lambda _: net.loss(x, t), net.params["W1"])
    assert np.all(num == 0)


def test_half_float_rounding_in_place_changes_predictions():
    np.random.seed(1)
    net = MultiLayerNet(IN, HID, OUT)
    x, _ = make_data(5)
    before = net.predict(x)
    for param in net.params.values():
        param[...] = param.astype(np.float16)
    after = net.predict(x)
    assert net.params["W1"].dtype == np.float64
    assert not np.array_equal(before, after)
    np.testing.assert_allclose(after, before, rtol=1e-2, atol=1e-2)


def test_two_layer_net_gradient_check():
    np.random.seed(2)
    net = TwoLayerNet(IN, 10, OUT)
    x, t = make_data(3, one_hot=True)
    grads = net.gradient(x, t)
    ngrads = net.numerical_gradient(x, t)
    for k in ("W1", "b1", "W2", "b2"):
        assert np.mean(np.abs(grads[k] - ngrads[k])) < 1e-6, k


# --------------------------------------------------------------------------- weight decay

def test_weight_decay_loss_and_gradient():
    np.random.seed(4)
    net = MultiLayerNet(IN, HID, OUT, weight_decay_lambda=0.0)
    x, t = make_data(6)
    loss0 = net.loss(x, t)
    g0 = {k: v.copy() for k, v in net.gradient(x, t).items()}
    net.weight_decay_lambda = 0.3
    penalty = sum(0.5 * 0.3 * np.sum(net.params["W%d" % i] ** 2) for i in (1, 2, 3))
    assert net.loss(x, t) == pytest.approx(loss0 + penalty, rel=1e-13)
    g1 = net.gradient(x, t)
    for i in (1, 2, 3):
        np.testing.assert_allclose(g1["W%d" % i], g0["W%d" % i] + 0.3 * net.params["W%d" % i],
                                   rtol=1e-13)
        np.testing.assert_array_equal(g1["b%d" % i], g0["b%d" % i])


# --------------------------------------------------------------------------- Extend modes (idea 25)

def test_extend_predict_defaults_to_inference_mode():
    np.random.seed(6)
    net = MultiLayerNetExtend(IN, HID, OUT, use_dropout=True, dropout_ration=0.3,
                              use_batchnorm=True)
    x, t = make_data(8)
    net.predict(x)                                        # default train_flg=False
    bn = net.layers["BatchNorm1"]
    np.testing.assert_array_equal(bn.running_mean, np.zeros(10))
    assert net.layers["Dropout1"].mask is None            # no mask drawn at test time
    state = np.random.get_state()[1].copy()
    net.loss(x, t)
    net.accuracy(x, t)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    net.predict(x, train_flg=True)
    assert net.layers["Dropout1"].mask is not None


def test_extend_gradient_updates_running_stats_once_per_call():
    np.random.seed(7)
    net = MultiLayerNetExtend(IN, HID, OUT, use_batchnorm=True)
    x, t = make_data(8)
    h = x @ net.params["W1"] + net.params["b1"]
    mu, var = h.mean(axis=0), h.var(axis=0)
    bn = net.layers["BatchNorm1"]
    net.gradient(x, t)
    np.testing.assert_allclose(bn.running_mean, 0.1 * mu, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, 0.1 * var, rtol=1e-12)
    net.gradient(x, t)
    np.testing.assert_allclose(bn.running_mean, 0.19 * mu, rtol=1e-12)
    # numerical_gradient also runs training-mode forwards (documented side effect)
    rm = bn.running_mean.copy()
    G.numerical_gradient(lambda _: net.loss(x, t, train_flg=True), net.params["b3"])
    assert not np.allclose(bn.running_mean, rm)


def test_extend_bn_gradient_check():
    np.random.seed(8)
    net = MultiLayerNetExtend(IN, HID, OUT, activation="sigmoid", weight_init_std="xavier",
                              weight_decay_lambda=0.05, use_batchnorm=True)
    x, t = make_data(8, one_hot=True)
    grads = net.gradient(x, t)
    ngrads = net.numerical_gradient(x, t)
    assert list(ngrads) == list(grads)
    for k in grads:
        assert max_diff(grads[k], ngrads[k]) <= 1e-6, k


def test_extend_dropout_uses_global_rng_in_layer_order():
    np.random.seed(9)
    net = MultiLayerNetExtend(IN, HID, OUT, use_dropout=True, dropout_ration=0.25)
    x, t = make_data(4)
    np.random.seed(10)
    net.predict(x, train_flg=True)
    np.random.seed(10)
    m1 = np.random.rand(4, 10) > 0.25
    m2 = np.random.rand(4, 10) > 0.25
    np.testing.assert_array_equal(net.layers["Dropout1"].mask, m1)
    np.testing.assert_array_equal(net.layers["Dropout2"].mask, m2)


# --------------------------------------------------------------------------- Trainer (idea 27)

def _trainer(n_train=300, n_test=100, seed=0, **kw):
    np.random.seed(seed)
    net = MultiLayerNet(IN, HID, OUT)
    x_train, t_train = make_data(n_train, seed=1)
    x_test, t_test = make_data(n_test, seed=2)
    return Trainer(net, x_train, t_train, x_test, t_test, **kw)


@pytest.mark.parametrize("name,cls", [("SGD", SGD), ("sgd", SGD), ("Momentum", Momentum),
                                      ("nesterov", Nesterov), ("AdaGrad", AdaGrad),
                                      ("rmsprop", RMSprop), ("RMSprop", RMSprop),
                                      ("rmsprpo", RMSprop), ("Adam", Adam)])
def test_trainer_optimizer_lookup(name, cls):
    tr = _trainer(optimizer=name, optimizer_param={"lr": 0.05})
    assert type(tr.optimizer) is cls and tr.optimizer.lr == 0.05


def test_trainer_defaults_and_unknown_optimizer():
    tr = _trainer()
    assert type(tr.optimizer) is SGD and tr.optimizer.lr == 0.01
    assert (tr.epochs, tr.batch_size, tr.verbose, tr.evaluate_sample_num_per_epoch) == (20, 100, True, None)
    assert tr.train_size == 300 and (tr.current_iter, tr.current_epoch) == (0, 0)
    assert tr.train_loss_list == [] and tr.train_acc_list == [] and tr.test_acc_list == []
    with pytest.raises(KeyError):
        _trainer(optimizer="lbfgs")


@pytest.mark.parametrize("n,batch,epochs,ipe,max_iter,n_eval", [
    (300, 100, 5, 3.0, 15, 5),
    (500, 128, 8, 3.90625, 31, 1),       # non-integer iter_per_epoch: float modulo
    (50, 100, 3, 1, 3, 3),               # train_size < batch: every step is an epoch
])
def test_trainer_epoch_arithmetic(n, batch, epochs, ipe, max_iter, n_eval):
    tr = _trainer(n_train=n, n_test=20, epochs=epochs, mini_batch_size=batch, verbose=False)
    assert tr.iter_per_epoch == ipe
    if n >= batch:
        assert isinstance(tr.iter_per_epoch, float)
    assert tr.max_iter == max_iter
    assert tr.train() is None
    assert tr.current_iter == max_iter and len(tr.train_loss_list) == max_iter
    assert len(tr.train_acc_list) == n_eval and len(tr.test_acc_list) == n_eval
    assert tr.current_epoch == n_eval


def test_trainer_replays_manual_loop_exactly():
    """Batches via np.random.choice (with replacement), loss logged after the update."""
    tr = _trainer(seed=11, epochs=2, mini_batch_size=50, optimizer="momentum",
                  optimizer_param={"lr": 0.1}, verbose=False)
    np.random.seed(12)
    tr.train()

    np.random.seed(11)
    net = MultiLayerNet(IN, HID, OUT)
    x_train, t_train = make_data(300, seed=1)
    opt = Momentum(lr=0.1)
    np.random.seed(12)
    losses = []
    for _ in range(12):
        mask = np.random.choice(300, 50)
        grads = net.gradient(x_train[mask], t_train[mask])
        opt.update(net.params, grads)
        losses.append(net.loss(x_train[mask], t_train[mask]))
    assert tr.train_loss_list == losses
    for k in net.params:
        np.testing.assert_array_equal(tr.network.params[k], net.params[k])


def test_trainer_print_formats(capsys):
    tr = _trainer(seed=13, epochs=2, mini_batch_size=100, verbose=True)
    np.random.seed(14)
    tr.train()
    lines = capsys.readouterr().out.splitlines()
    final_acc = tr.network.accuracy(tr.x_test, tr.t_test)
    expected = []
    epoch = 0
    for i, loss in enumerate(tr.train_loss_list):
        expected.append("train loss:" + str(loss))
        if i % 3 == 0:
            a, b = tr.train_acc_list[epoch], tr.test_acc_list[epoch]
            epoch += 1
            expected.append("=== epoch:%d, train acc:%s, test acc:%s ===" % (epoch, a, b))
    expected += ["=============== Final Test Accuracy ===============",
                 "test acc:" + str(final_acc)]
    assert lines == expected
    assert lines[0].startswith("train loss:2.") or lines[0].startswith("train loss:1.")


def test_trainer_quiet_and_evaluate_sample_num(capsys):
    tr = _trainer(n_train=100, n_test=100, epochs=1, mini_batch_size=100,
                  evaluate_sample_num_per_epoch=30, verbose=False)
    tr.train()
    assert capsys.readouterr().out == ""
    net = tr.network                      # one step: evaluation happened after it
    assert tr.train_acc_list == [net.accuracy(tr.x_train[:30], tr.t_train[:30])]
    assert tr.test_acc_list == [net.accuracy(tr.x_test[:30], tr.t_test[:30])]


# --------------------------------------------------------------------------- end to end (idea 29)

def _e2e_run(seed):
    np.random.seed(seed)
    net = TwoLayerNet(IN, 16, OUT, weight_init_std=0.1)
    x, t = make_data(400, seed=21, one_hot=True)
    opt = SGD(lr=0.1)
    losses, accs = [], []
    for i in range(150):
        mask = np.random.choice(400, 50)
        grads = net.gradient(x[mask], t[mask])
        opt.update(net.params, grads)
        losses.append(net.loss(x[mask], t[mask]))
        if i % 10 == 0:
            accs.append(net.accuracy(x, t))
    return np.array(losses), np.array(accs)


def test_end_to_end_training_decreases_loss_and_is_reproducible():
    losses, accs = _e2e_run(30)
    assert losses[-20:].mean() < 0.6 * losses[:20].mean()
    assert accs[-1] > accs[0] + 0.2
    losses2, accs2 = _e2e_run(30)
    np.testing.assert_array_equal(losses, losses2)
    np.testing.assert_array_equal(accs, accs2)
