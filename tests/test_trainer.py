"""fastnn.trainer.Trainer: the book's schedule, printed lines and quirks (book-compat.md section
9, test idea 27), the returned history and the progress option."""
import io
import contextlib

import numpy as np
import pytest

from fastnn.multi_layer_net import MultiLayerNet
from fastnn.multi_layer_net_extend import MultiLayerNetExtend
from fastnn.trainer import Trainer
from fastnn.optimizer import RMSprop, Adam, SGD
from fastnn.reference.multi_layer_net import MultiLayerNet as RefMLN
from fastnn.reference.trainer import Trainer as RefTrainer


def data(n, d=12, k=4, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, d)
    t = np.argmax(x @ np.random.RandomState(7).randn(d, k), axis=1)
    return x, t


def make(n_train=300, n_test=50, **kw):
    x, t = data(n_train + n_test)
    net = MultiLayerNet(12, [8], 4)
    return net, Trainer(net, x[:n_train], t[:n_train], x[n_train:], t[n_train:], **kw)


def test_schedule_and_attributes():
    net, tr = make(epochs=5, mini_batch_size=100, verbose=False)
    assert isinstance(tr.iter_per_epoch, float) and tr.iter_per_epoch == 3.0
    assert tr.max_iter == 15 and tr.current_iter == 0 and tr.current_epoch == 0
    hist = tr.train()
    assert len(tr.train_acc_list) == len(tr.test_acc_list) == 5
    assert len(tr.train_loss_list) == 15 and tr.current_iter == 15
    assert hist["train_loss"] is tr.train_loss_list and hist["test_acc"] is tr.test_acc_list
    assert hist["iterations"] == 15 and hist["seconds"] > 0
    assert hist["final_test_acc"] == tr.final_test_acc


def test_float_iter_per_epoch_quirk():
    _, tr = make(n_train=500, epochs=8, mini_batch_size=128, verbose=False)
    assert tr.iter_per_epoch == 500 / 128 and tr.max_iter == 31
    tr.train()
    assert len(tr.train_acc_list) == 1               # only iteration 0 is an "epoch"
    _, tr = make(n_train=50, epochs=3, mini_batch_size=100, verbose=False)
    assert tr.iter_per_epoch == 1 and tr.max_iter == 3
    tr.train()
    assert len(tr.train_acc_list) == 3


def test_optimizer_names():
    for name, cls in [("SGD", SGD), ("adam", Adam), ("RMSprop", RMSprop), ("rmsprpo", RMSprop)]:
        _, tr = make(optimizer=name, optimizer_param={"lr": 0.01}, verbose=False)
        assert type(tr.optimizer) is cls
    with pytest.raises(KeyError):
        make(optimizer="lbfgs")


def test_evaluate_sample_num_and_printed_lines():
    net, tr = make(n_train=100, epochs=2, mini_batch_size=100, evaluate_sample_num_per_epoch=20)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tr.train()
    lines = buf.getvalue().splitlines()
    assert sum(line.startswith("train loss:") for line in lines) == 2
    epochs = [line for line in lines if line.startswith("=== epoch:")]
    assert len(epochs) == 2 and epochs[0].startswith("=== epoch:1, train acc:")
    assert epochs[0].endswith(" ===")
    assert lines[-2] == "=============== Final Test Accuracy ==============="
    assert lines[-1].startswith("test acc:")
    x20, t20 = tr.x_train[:20], tr.t_train[:20]      # evaluated after the last step
    assert tr.train_acc_list[-1] == net.accuracy(x20, t20)


def test_same_run_as_reference_trainer():
    x, t = data(350)
    np.random.seed(11)
    ref = RefMLN(12, [8, 8], 4)
    np.random.seed(11)
    fast = MultiLayerNet(12, [8, 8], 4)
    np.random.seed(5)
    RefTrainer(ref, x[:300], t[:300], x[300:], t[300:], epochs=4, optimizer="sgd",
               optimizer_param={"lr": 0.1}, verbose=False).train()
    np.random.seed(5)
    tf = Trainer(fast, x[:300], t[:300], x[300:], t[300:], epochs=4, optimizer="sgd",
                 optimizer_param={"lr": 0.1}, verbose=False)
    tf.train()
    for k in ref.params:
        np.testing.assert_allclose(fast.params[k], ref.params[k], rtol=1e-10, atol=1e-12)


def test_loss_logged_after_update_in_inference_mode():
    x, t = data(200)
    np.random.seed(0)
    net = MultiLayerNetExtend(12, [8], 4, use_batchnorm=True)
    tr = Trainer(net, x[:100], t[:100], x[100:], t[100:], epochs=1, mini_batch_size=100,
                 verbose=False)
    np.random.seed(3)
    tr.train_step()
    np.random.seed(3)
    mask = np.random.choice(100, 100)
    assert tr.train_loss_list[0] == net.loss(x[:100][mask], t[:100][mask])


def test_progress_bar_option():
    pytest.importorskip("tqdm")
    net, tr = make(epochs=2, verbose=False, progress=True)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        tr.train()
    assert "6/6" in err.getvalue()
    net, tr = make(epochs=2, verbose=False)         # auto: short run, not a tty -> no bar
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        tr.train()
    assert err.getvalue() == ""
