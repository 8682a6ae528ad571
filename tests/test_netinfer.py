"""The compiled inference forward (fastnn._netstep.InferPass) against the layer-by-layer forward.

On one thread both run the same kernels and GEMMs with the same arguments in the same order, so
predictions, losses, accuracies and the attributes the layers keep (``x``, ``mask``, ``out``,
``input_shape``) must be bitwise equal. At two threads the compiled forward runs each half of
the batch on its own thread, and a GEMM on half the rows may round differently from the whole
(the BLAS picks its kernels by shape): equal within float tolerance. The same network object is
run both ways (``compiled_predict`` toggled), so parameters and running statistics are shared.
"""
import copy
import pickle

import numpy as np
import pytest
from test_netstep import NETS, assert_states_equal, check_value, data, layer_state

import fastnn
from fastnn import _netstep, layers as L
from fastnn.multi_layer_net import MultiLayerNet
from fastnn.multi_layer_net_extend import MultiLayerNetExtend
from fastnn.optimizer import Adam


@pytest.fixture(autouse=True)
def two_thread_schedule_for_small_nets(monkeypatch):
    """These networks are far below the work at which the two-thread forward pays: lower the
    threshold so that their forwards at two threads take it and get checked."""
    monkeypatch.setattr(_netstep, "INFER_TWO_THREAD_MIN_FLOPS", 0.0)


def exact_here():
    """Whether a compiled forward now runs on one thread (then it is bitwise the layers')."""
    return fastnn.get_num_threads() < 2 or not _netstep.two_thread_schedule_available()


def trained(name, dtype, steps=3, seed=3):
    """A network after a few training steps (running statistics away from their start)."""
    np.random.seed(seed)
    net = NETS[name](dtype)
    opt = Adam(lr=0.05)
    for i in range(steps):
        x, t = data(seed=20 + i, dtype=dtype)
        opt.update(net.params, net.gradient(x, t))
    return net


def snapshot(net):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v)
            for k, v in layer_state(net).items()}


def both_ways(net, call):
    """call(net) by the layer path, then compiled: the results and the layer states after each."""
    net.compiled_predict = False
    slow = call(net)
    slow = slow.copy() if isinstance(slow, np.ndarray) else slow
    slow_state = snapshot(net)
    net.compiled_predict = True
    fast = call(net)
    return slow, fast, slow_state, layer_state(net)


def assert_same(slow, fast, slow_state, fast_state, exact=None):
    """Bitwise equal results and layer states (within float tolerance where the compiled forward
    ran on two threads: ``exact`` None means as the current thread count implies)."""
    exact = exact_here() if exact is None else exact
    if isinstance(slow, np.ndarray):
        assert isinstance(fast, np.ndarray) and fast.dtype == slow.dtype
    check_value(fast, slow, exact)
    assert_states_equal(fast_state, slow_state, exact)


@pytest.mark.parametrize("name", sorted(NETS))
def test_predict_loss_accuracy_equal_to_layer_path(name, dtype, n_threads):
    net = trained(name, dtype)
    x, t = data(seed=9, dtype=dtype)
    for call in (lambda n: n.predict(x), lambda n: n.loss(x, t), lambda n: n.accuracy(x, t)):
        assert_same(*both_ways(net, call))
    assert net._infer_passes and net._infer_passes[x.shape[0]] is not None


def test_running_statistics_and_parameters_followed(dtype):
    """Training replaces the running statistics with new arrays and updates the weights in
    place: each prediction after a step is the layer path's."""
    net = trained("ext bn dropout", dtype, steps=1)
    opt = Adam(lr=0.05)
    x, t = data(seed=9, dtype=dtype)
    for i in range(3):
        assert_same(*both_ways(net, lambda n: n.predict(x)))
        xs, ts = data(seed=30 + i, dtype=dtype)
        opt.update(net.params, net.gradient(xs, ts))
    assert len(net._infer_passes) == 1


def test_held_outputs_are_not_overwritten():
    net = trained("ext bn dropout", np.float64)
    x1, _ = data(seed=1)
    x2, _ = data(seed=2)
    y1 = net.predict(x1)
    kept_x = net.layers["Affine2"].x
    y1_copy, kept_copy = y1.copy(), kept_x.copy()
    y2 = net.predict(x2)
    np.testing.assert_array_equal(y1, y1_copy)
    np.testing.assert_array_equal(kept_x, kept_copy)
    assert not np.shares_memory(y1, y2)
    net.compiled_predict = False
    np.testing.assert_array_equal(net.predict(x2), y2)


def test_batch_sizes_alternate_without_rebuilding():
    """Training batches and a whole evaluation set: one plan per batch size."""
    net = trained("ext bn dropout", np.float32)
    xa, _ = data(n=16, seed=1, dtype=np.float32)
    xb, _ = data(n=7, seed=2, dtype=np.float32)
    xc, _ = data(n=1, seed=3, dtype=np.float32)
    plans = []
    for _ in range(2):
        for x in (xa, xb, xc):
            assert_same(*both_ways(net, lambda n: n.predict(x)))
            plans.append(net._infer_passes[x.shape[0]])
    assert plans[:3] == plans[3:] and len(set(map(id, plans))) == 3


@pytest.mark.parametrize("inverted", [False, True])
def test_dropout_ratio_and_mode_changes_are_followed(inverted):
    net = trained("ext bn dropout", np.float64)
    x, _ = data(seed=5)
    net.predict(x)
    for layer in net.layers.values():
        if isinstance(layer, L.Dropout):
            layer.dropout_ratio = 0.4
            layer.inverted = inverted
    assert_same(*both_ways(net, lambda n: n.predict(x)))


def test_batchnorm_eps_and_gamma_changes_are_followed():
    net = trained("ext bn", np.float64)
    x, _ = data(seed=5)
    net.predict(x)
    net.layers["BatchNorm1"]._eps = 1e-3
    assert_same(*both_ways(net, lambda n: n.predict(x)))
    net.layers["BatchNorm2"].gamma = net.layers["BatchNorm2"].gamma * 2   # a new array
    assert_same(*both_ways(net, lambda n: n.predict(x)))


@pytest.mark.parametrize("in_dtype", [np.uint8, np.float32])
def test_input_promoted_to_a_float64_network(in_dtype):
    net = trained("ext bn dropout", np.float64)
    x, t = data(seed=5)
    xi = (np.abs(x) * 40).astype(in_dtype)
    assert_same(*both_ways(net, lambda n: n.predict(xi)))
    assert net.layers["Affine1"].x.dtype == np.float64


def test_running_statistics_of_another_dtype_use_the_layers():
    """float64 running statistics in a float32 network make the layer compute in float64 (NumPy
    promotion, as the book's code would): the compiled forward leaves that to the layers."""
    net = trained("ext bn", np.float32)
    bn = net.layers["BatchNorm1"]
    bn.running_mean = bn.running_mean.astype(np.float64)
    bn.running_var = bn.running_var.astype(np.float64)
    x, _ = data(seed=5, dtype=np.float32)
    slow, fast, s1, s2 = both_ways(net, lambda n: n.predict(x))
    assert fast.dtype == np.float64
    assert_same(slow, fast, s1, s2)


def test_train_mode_layers_are_left_to_the_layers():
    """A BatchNormalization or Dropout layer that predict() does not give train_flg=False runs in
    training mode in the layer path (the book's default): no compiled plan for such a chain."""
    np.random.seed(0)
    net = MultiLayerNet(20, [12], 5)
    net.layers["Extra"] = L.Dropout(0.3)        # MultiLayerNet.predict passes no flag
    x, _ = data()
    np.random.seed(1)
    net.compiled_predict = False
    slow = net.predict(x).copy()
    np.random.seed(1)
    net.compiled_predict = True
    np.testing.assert_array_equal(net.predict(x), slow)
    assert not net._infer_passes

    ext = MultiLayerNetExtend(20, [12], 5, use_dropout=True)
    ext.layers["Renamed"] = ext.layers.pop("Dropout1")    # key without "Dropout": training mode
    ext.layers.move_to_end("Renamed", last=False)
    assert _netstep.InferPass.build(ext.layers, x, np.float64, ext._test_mode) is None


def test_bad_input_raises_as_the_layers_do():
    net = trained("mln relu", np.float64)
    with pytest.raises(ValueError):
        net.predict(np.ones((4, 7)))


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_networks_pickle_and_copy_after_a_compiled_predict(how):
    net = trained("ext bn dropout", np.float64)
    x, _ = data(seed=5)
    y = net.predict(x).copy()
    other = pickle.loads(pickle.dumps(net)) if how == "pickle" else copy.deepcopy(net)
    assert other._infer_passes is None
    np.testing.assert_array_equal(other.predict(x), y)
    np.testing.assert_array_equal(net.predict(x), y)


def test_trainer_pattern_equal_to_layer_path():
    """The book's Trainer: a step, loss() on the batch, and now and then accuracy() on a larger
    set; the compiled passes against the same run layer by layer (one thread: bitwise)."""
    import fastnn
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    try:
        nets = []
        for compiled in (True, False):
            np.random.seed(3)
            net = NETS["ext bn dropout"](np.float64)
            net.compiled_step = net.compiled_predict = compiled
            nets.append((net, Adam(lr=0.05)))
        xs, ts = data(n=40, seed=8)
        out = {True: [], False: []}
        for i in range(6):
            x, t = data(seed=40 + i)
            for net, opt in nets:
                np.random.seed(100 + i)
                opt.update(net.params, net.gradient(x, t))
                out[net.compiled_step].append(np.asarray(net.loss(x, t)))
                if i % 2:
                    out[net.compiled_step].append(np.asarray(net.accuracy(xs, ts)))
        for a, b in zip(out[True], out[False]):
            np.testing.assert_array_equal(a, b)
        assert_same(np.zeros(1), np.zeros(1), snapshot(nets[1][0]), layer_state(nets[0][0]))
    finally:
        fastnn.set_num_threads(old)


def test_kept_plans_hold_a_bounded_memory(monkeypatch):
    import fastnn.multi_layer_net as mln
    net = trained("ext bn dropout", np.float64)
    x16, _ = data(n=16, seed=1)
    x7, _ = data(n=7, seed=2)
    net.predict(x16)
    monkeypatch.setattr(mln, "_KEEP_INFER_PLAN_BYTES", net._infer_passes[16].buffer_bytes + 10)
    net.predict(x7)                     # both would exceed the bound: only the newest is kept
    assert list(net._infer_passes) == [7]
    assert_same(*both_ways(net, lambda n: n.predict(x16)))


def test_large_evaluations_keep_no_plan(monkeypatch):
    """A plan whose buffers are large (a whole evaluation set) is used once, not kept: the network
    holds no more memory after the call than the layers' own attributes."""
    import fastnn.multi_layer_net as mln
    monkeypatch.setattr(mln, "_KEEP_INFER_PLAN_BYTES", 1000)
    net = trained("ext bn dropout", np.float64)
    x, _ = data(n=16, seed=5)
    assert_same(*both_ways(net, lambda n: n.predict(x)))
    assert not net._infer_passes


def test_concurrent_predictions_from_python_threads():
    """predict() on one network from several Python threads at once (the GIL is released during
    a pass): a call finding the plan busy runs the layers instead; every result is right."""
    import threading
    np.random.seed(0)
    net = MultiLayerNetExtend(64, [200, 200], 10, use_batchnorm=True, use_dropout=True)
    opt = Adam(lr=0.01)
    rng = np.random.RandomState(1)
    x = rng.rand(600, 64)
    opt.update(net.params, net.gradient(x, rng.randint(0, 10, 600)))
    inputs = [rng.rand(600, 64) for _ in range(4)]
    net.compiled_predict = False
    expected = [net.predict(xi).copy() for xi in inputs]
    net.compiled_predict = True
    errors = []
    exact = exact_here()

    def work(i):
        for _ in range(15):
            y = net.predict(inputs[i])
            if not (np.array_equal(y, expected[i]) if exact
                    else np.allclose(y, expected[i], rtol=1e-10, atol=1e-12)):
                errors.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert net._infer_passes                     # the compiled forward did run


N_THREADS, ONE_THREAD, TWO_THREADS = 0, 1, 2    # InferPass.policy (FNN_PASS_* in netstep.h)


def test_two_thread_forward_only_where_it_pays(monkeypatch, n_threads):
    """The default threshold: the chapter-6 sized network at batch 100 takes the two-thread
    forward at two threads (each thread runs half the batch), a network too small for it does
    not; both equal the layer path (bitwise on one thread)."""
    monkeypatch.setattr(_netstep, "INFER_TWO_THREAD_MIN_FLOPS", 4e6)
    np.random.seed(0)
    small = MultiLayerNetExtend(20, [12, 10], 5, use_batchnorm=True, use_dropout=True)
    large = MultiLayerNetExtend(784, [100] * 2, 10, use_batchnorm=True, use_dropout=True)
    for net, inputs in ((small, 20), (large, 784)):
        x = np.random.rand(100, inputs)
        opt = Adam(lr=0.01)
        opt.update(net.params, net.gradient(x, np.random.randint(0, 5, 100)))
        assert_same(*both_ways(net, lambda n: n.predict(x)))
    assert small._infer_passes[100].policy == ONE_THREAD
    assert small._infer_passes[100].schedule == 1
    plan = large._infer_passes[100]
    assert plan.policy == TWO_THREADS
    two = n_threads == 2 and _netstep.two_thread_schedule_available()
    assert plan.schedule == (2 if two else 1)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 101])
def test_two_thread_forward_any_batch_size(n, dtype, n_threads):
    """Odd halves, and one row (serial then), on every layer kind: each row is computed from its
    own input row alone, so the halves give the whole batch's rows."""
    for name in ("ext bn dropout", "ext sigmoid bn dropout decay", "mln relu"):
        net = trained(name, dtype)
        x, t = data(n=n, seed=4, dtype=dtype)
        for call in (lambda m: m.predict(x), lambda m: m.loss(x, t)):
            assert_same(*both_ways(net, call))
        two = n_threads == 2 and _netstep.two_thread_schedule_available() and n >= 2
        assert net._infer_passes[n].schedule == (2 if two else 1)


def test_two_thread_forward_restores_the_blas_threads(n_threads):
    from threadpoolctl import threadpool_info

    def blas_threads():
        return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    before = blas_threads()
    net = trained("ext bn", np.float64)
    x, _ = data(n=16, seed=6)
    net.predict(x)
    assert blas_threads() == before
