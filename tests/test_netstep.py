"""The compiled training pass (fastnn._netstep) against the layer-by-layer pass.

On the serial schedule both run the same kernels with the same arguments in the same order, so
every number must be bitwise equal: gradients, losses, parameters after the optimizer, and the
attributes the layers keep (x, mask, running statistics, dropout seeds, softmax output). The
two-thread schedule splits GEMMs, which the BLAS may round differently: equal within float
tolerance. Also: when the plan is used, rebuilt or given up.
"""
import numpy as np
import pytest
from conftest import assert_close

from fastnn import _netstep, layers as L
from fastnn.multi_layer_net import MultiLayerNet
from fastnn.multi_layer_net_extend import MultiLayerNetExtend
from fastnn.optimizer import SGD, Adam
from fastnn.two_layer_net import TwoLayerNet

IN, OUT = 20, 5
N_THREADS, ONE_THREAD, TWO_THREADS = 0, 1, 2    # TrainPass.policy (FNN_PASS_* in netstep.h)

NETS = {
    "two": lambda dt: TwoLayerNet(IN, 12, OUT, weight_init_std=0.3, dtype=dt),
    "mln relu": lambda dt: MultiLayerNet(IN, [12, 10], OUT, dtype=dt),
    "mln sigmoid decay": lambda dt: MultiLayerNet(IN, [12, 10], OUT, activation="sigmoid",
                                                  weight_decay_lambda=0.1, dtype=dt),
    "ext bn dropout": lambda dt: MultiLayerNetExtend(IN, [12, 10, 8], OUT, use_batchnorm=True,
                                                     use_dropout=True, dropout_ration=0.15,
                                                     dtype=dt),
    "ext sigmoid bn dropout decay": lambda dt: MultiLayerNetExtend(
        IN, [12, 10], OUT, activation="sigmoid", use_batchnorm=True, use_dropout=True,
        weight_decay_lambda=0.05, dtype=dt),
    "ext dropout": lambda dt: MultiLayerNetExtend(IN, [16, 9], OUT, use_dropout=True,
                                                  dtype=dt),
    "ext bn": lambda dt: MultiLayerNetExtend(IN, [12, 33], OUT, use_batchnorm=True, dtype=dt),
}


@pytest.fixture(autouse=True)
def two_thread_schedule_for_small_nets(monkeypatch):
    """These networks are far below the work per layer at which the two-thread schedule pays:
    lower the threshold so that their passes at two threads take it and get checked."""
    monkeypatch.setattr(_netstep, "TWO_THREAD_MIN_FLOPS_PER_OP", 0.0)


def twins(name, dtype, seed=3):
    """The same network twice (same draws): compiled pass on the first, layers on the second."""
    np.random.seed(seed)
    fast = NETS[name](dtype)
    np.random.seed(seed)
    slow = NETS[name](dtype)
    slow.compiled_step = slow.compiled_predict = False
    return fast, slow


def data(n=16, seed=0, one_hot=False, dtype=np.float64):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, IN).astype(dtype)
    t = rng.randint(0, OUT, n)
    return x, (np.eye(OUT)[t] if one_hot else t)


def layer_state(net):
    """Every array or value a layer keeps after a training pass, keyed by layer and name."""
    state = {}
    for key, layer in list(net.layers.items()) + [("loss", getattr(net, net._loss_layer_attr))]:
        for attr in ("x", "original_x_shape", "dW", "db", "mask", "out", "running_mean",
                     "running_var", "batch_size", "input_shape", "xc", "std", "dgamma",
                     "dbeta", "last_seed", "_calls", "loss", "y", "t"):
            if hasattr(layer, attr):
                state[key, attr] = getattr(layer, attr)
    return state


def serial_pass(net):
    """Whether the network's last pass (if compiled) ran the serial schedule: then it equals the
    layer path bitwise. The two-thread schedule splits GEMMs, which the BLAS may round
    differently from the whole product: equal within float tolerance."""
    plan = net._train_pass
    return plan is None or plan.schedule != 2


def assert_same_state(a, b, exact=None):
    exact = serial_pass(a) if exact is None else exact
    # values a float32 network computes (its batch statistics) keep float32's precision even
    # where they are stored in float64 (running statistics the user set as float64 arrays)
    tol = np.float32 if np.dtype(a.dtype) == np.float32 else None
    assert_states_equal(layer_state(a), layer_state(b), exact, tol)


def assert_states_equal(sa, sb, exact, tol=None):
    """Two layer_state() snapshots: bitwise if exact, else within float tolerance (of dtype tol,
    default each value's own)."""
    assert sa.keys() == sb.keys()
    for k in sa:
        if isinstance(sb[k], np.ndarray):
            assert isinstance(sa[k], np.ndarray) and sa[k].dtype == sb[k].dtype, k
        check_value(sa[k], sb[k], exact, tol, str(k))


def check_value(actual, desired, exact, tol=None, err_msg=""):
    """One result or attribute: arrays and floats bitwise if exact, else within float tolerance
    (a boolean mask: a value at 0 may round to either side); anything else equal."""
    if isinstance(desired, np.ndarray):
        actual = np.asarray(actual)
        if exact or desired.dtype.kind not in "fb":
            np.testing.assert_array_equal(actual, desired, err_msg=err_msg)
        elif desired.dtype == np.bool_:
            assert actual.shape == desired.shape and np.mean(actual != desired) < 0.01, err_msg
        else:
            assert_close(actual, desired, dtype=tol, scale=100)
    elif exact or not isinstance(desired, (float, np.floating)):
        assert actual == desired or (actual is None and desired is None), (
            err_msg, actual, desired)
    else:
        assert_close(actual, desired, dtype=tol, scale=100)


def step_both(fast, slow, x, t, opts=None, exact=None):
    np.random.seed(11)                       # the dropout seeds come from NumPy's generator
    gf = fast.gradient(x, t)
    np.random.seed(11)
    gs = slow.gradient(x, t)
    exact = serial_pass(fast) if exact is None else exact
    assert list(gf) == list(gs)
    for k in gs:
        assert gf[k].dtype == gs[k].dtype, k
        if exact:
            np.testing.assert_array_equal(gf[k], gs[k], err_msg=k)
        else:
            assert_close(gf[k], gs[k], scale=100)
    if opts:
        opts[0].update(fast.params, gf)
        opts[1].update(slow.params, gs)
    return gf


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("blocks,batch", [(None, 16), (150, 16), (1e6, 100)],
                         ids=["gemm", "gemm-blocks", "gemm-transposed-W"])
def test_equal_to_layer_path(name, blocks, batch, dtype, n_threads, small_mnk):
    """Bitwise on the serial schedule (one thread), within float tolerance on the two-thread one.

    Between steps Adam on one thread; SGD on two: a bias followed by a BatchNormalization has a
    gradient that is 0 in exact arithmetic, so what is computed is rounding noise, which Adam
    normalises into steps of either sign; paths that round differently (the two-thread schedule)
    would then move those biases apart by whole steps, which SGD does not amplify.

    "gemm-blocks": the BLAS's small-kernel size lowered so that every GEMM of these small
    networks splits into blocks along each dimension where the BLAS runs on one thread (one
    thread; the two-thread schedule's GEMMs); "gemm-transposed-W": at batch 100 the dx products
    go through W's transpose there (csrc/gemm.h)."""
    if blocks is not None:
        small_mnk(blocks)
    fast, slow = twins(name, dtype)
    if n_threads == 1:
        opts = (Adam(lr=0.01), Adam(lr=0.01))
    else:
        opts = (SGD(lr=0.1), SGD(lr=0.1))
    for i in range(4):
        x, t = data(n=batch, seed=i, dtype=dtype)
        step_both(fast, slow, x, t, opts)
        assert_same_state(fast, slow)
    assert fast._train_pass is not None       # the compiled pass did run
    if n_threads == 2 and _netstep.two_thread_schedule_available():
        assert fast._train_pass.schedule == 2
    elif n_threads == 1:
        assert fast._train_pass.schedule == 1
    exact = serial_pass(fast)
    check = np.testing.assert_array_equal if exact else (
        lambda a, b, err_msg="": assert_close(a, b, scale=100))
    for k in slow.params:
        check(fast.params[k], slow.params[k], err_msg=k)
    x, t = data(n=batch, seed=9, dtype=dtype)
    check(fast.predict(x), slow.predict(x))
    if isinstance(fast, MultiLayerNetExtend):
        check(np.asarray(fast.loss(x, t)), np.asarray(slow.loss(x, t)))


@pytest.mark.parametrize("labels", ["one_hot", "int32", "list"])
def test_label_forms(labels, dtype):
    fast, slow = twins("ext bn dropout", dtype)
    x, t = data(dtype=dtype, one_hot=labels == "one_hot")
    if labels == "int32":
        t = t.astype(np.int32)
    elif labels == "list":
        t = t.tolist()
    step_both(fast, slow, x, t)
    assert_same_state(fast, slow)


def test_float32_network_float64_input_and_one_hot():
    fast, slow = twins("ext bn dropout", np.float32)
    x, t = data(one_hot=True)                 # float64 input and labels: converted as the layers do
    step_both(fast, slow, x, t)
    assert_same_state(fast, slow)
    assert fast.layers["Affine1"].x.dtype == np.float32


def test_invalid_labels_raise_as_the_layers_do():
    fast, _ = twins("ext bn dropout", np.float64)
    x, t = data()
    with pytest.raises(ValueError, match="out of range"):
        fast.gradient(x, t + OUT)
    with pytest.raises(ValueError, match="shape"):
        fast.gradient(x, t[:-1])


def test_kept_outputs_are_not_overwritten_while_held(dtype):
    fast, slow = twins("ext bn dropout", dtype)
    x, t = data(dtype=dtype)
    step_both(fast, slow, x, t)
    held = fast.layers["Affine2"].x
    held_y = fast.last_layer.y
    copy, copy_y = held.copy(), held_y.copy()
    x2, t2 = data(seed=5, dtype=dtype)
    step_both(fast, slow, x2, t2)
    np.testing.assert_array_equal(held, copy)        # the user's array kept its values
    np.testing.assert_array_equal(held_y, copy_y)
    assert fast.layers["Affine2"].x is not held
    assert_same_state(fast, slow)
    del held, held_y
    step_both(fast, slow, x, t)
    assert_same_state(fast, slow)


def test_batch_size_change_and_plan_reuse(dtype):
    fast, slow = twins("ext bn dropout", dtype)
    x, t = data(dtype=dtype)
    step_both(fast, slow, x, t)
    plan = fast._train_pass
    step_both(fast, slow, x, t)
    assert fast._train_pass is plan                  # reused while nothing changed
    xs, ts = data(n=7, seed=2, dtype=dtype)
    step_both(fast, slow, xs, ts)                    # another batch size: a new plan
    assert fast._train_pass is not plan
    assert_same_state(fast, slow)


def test_changed_layers_are_followed(dtype):
    """Whatever a user changes between steps is what the next pass uses."""
    fast, slow = twins("ext bn dropout", dtype)
    x, t = data(dtype=dtype)
    step_both(fast, slow, x, t)
    for net in (fast, slow):
        net.layers["Dropout1"].dropout_ratio = 0.5
        net.layers["BatchNorm2"].momentum = 0.5
        net.layers["BatchNorm1"].running_mean = np.full(12, 0.25)
        net.layers["BatchNorm1"].running_var = np.full(12, 2.0)
        net.layers["Affine2"].W = net.layers["Affine2"].W * 0.5   # a new array (not in params)
        net.weight_decay_lambda = 0.01
    step_both(fast, slow, x, t)
    assert_same_state(fast, slow)
    for net in (fast, slow):
        net.layers["Activation_function2"] = L.Sigmoid()   # another layer object: a new plan
    step_both(fast, slow, x, t)
    assert_same_state(fast, slow)


def test_seeded_and_inverted_dropout(dtype):
    fast, slow = twins("ext dropout", dtype)
    for net in (fast, slow):
        net.layers["Dropout1"] = L.Dropout(0.3, inverted=True, seed=5)
        net.layers["Dropout2"] = L.Dropout(0.6, seed=7)
        net.layers.move_to_end("Affine3")
    x, t = data(dtype=dtype)
    for _ in range(3):
        step_both(fast, slow, x, t)
        assert_same_state(fast, slow)
    assert fast._train_pass is not None


def test_seeded_and_unseeded_dropout_draw_the_same_numbers(dtype):
    """The unseeded Dropout layers of a pass draw their seeds in one call of NumPy's global
    generator: the same seeds, and the same numbers left in the stream, as one call per layer
    (the layer path), with a seeded layer between them."""
    fast, slow = twins("ext bn dropout", dtype)
    for net in (fast, slow):
        net.layers["Dropout2"] = L.Dropout(0.3, seed=9)
    x, t = data(dtype=dtype)
    for i in range(3):
        nxt = []
        for net in (fast, slow):
            np.random.seed(20 + i)
            net.gradient(x, t)
            nxt.append(np.random.random_sample())
        assert nxt[0] == nxt[1]
        assert_same_state(fast, slow)
    assert fast._train_pass is not None


def test_running_statistics_in_place_unless_held(dtype):
    """A pass updates the running statistics in place when only the layer holds them (nobody
    can tell them from the new arrays the book's code makes); held ones keep their values and
    the layer gets new arrays, as the book's code does."""
    fast, slow = twins("ext bn dropout", dtype)
    x, t = data(dtype=dtype)
    step_both(fast, slow, x, t)
    bn = fast.layers["BatchNorm1"]
    ids = id(bn.running_mean), id(bn.running_var)
    step_both(fast, slow, x, t)
    if serial_pass(fast):
        assert (id(bn.running_mean), id(bn.running_var)) == ids
    assert_same_state(fast, slow)
    held = bn.running_var
    copy = held.copy()
    step_both(fast, slow, x, t)
    np.testing.assert_array_equal(held, copy)
    assert bn.running_var is not held
    assert_same_state(fast, slow)


class MyRelu(L.Relu):
    pass


def test_unsupported_chains_use_the_layers():
    fast, slow = twins("mln relu", np.float64)
    for net in (fast, slow):
        net.layers["Activation_function1"] = MyRelu()   # a subclass: its own methods may differ
    x, t = data()
    step_both(fast, slow, x, t)
    assert fast._train_pass is None
    np.random.seed(1)
    fast = MultiLayerNet(IN, [10, 10], OUT)
    np.random.seed(1)
    slow = MultiLayerNet(IN, [10, 10], OUT)
    slow.compiled_step = False
    shared = L.Relu()
    for net in (fast, slow):                            # one layer object twice
        net.layers["Activation_function1"] = net.layers["Activation_function2"] = shared
    step_both(fast, slow, x, t)
    assert fast._train_pass is None


@pytest.mark.parametrize("in_dtype", [np.uint8, np.int32, np.float16, np.float32])
@pytest.mark.parametrize("name", ["mln relu", "ext bn dropout"])
def test_input_promoted_to_a_float64_network_runs_compiled(name, in_dtype):
    """The book's float32 MNIST (or uint8 images) into a float64 network: the first Affine layer
    computes from a float64 copy, and so does the compiled pass, bitwise alike."""
    fast, slow = twins(name, np.float64)
    for i in range(2):
        x, t = data(seed=i)
        xi = (np.abs(x) * 40).astype(in_dtype)
        step_both(fast, slow, xi, t.astype(np.uint8))
        assert_same_state(fast, slow)
        assert fast._train_pass is not None
        assert fast.layers["Affine1"].x.dtype == np.float64


def test_large_layers_threaded_kernels(n_threads):
    """Layers large enough for the kernels (and the BLAS) to use threads. At one thread the pass
    is bitwise the layer path's; at two, the two-thread backward runs each GEMM on one BLAS
    thread, and where the BLAS would have split a GEMM (inner dimension 1000 here) the last bits
    may differ, as between BLAS thread counts."""
    np.random.seed(4)
    fast = MultiLayerNetExtend(IN, [1030], OUT, use_batchnorm=True, use_dropout=True,
                               dtype=np.float32)
    np.random.seed(4)
    slow = MultiLayerNetExtend(IN, [1030], OUT, use_batchnorm=True, use_dropout=True,
                               dtype=np.float32)
    slow.compiled_step = False
    x, t = data(n=1000, dtype=np.float32)
    step_both(fast, slow, x, t)
    if n_threads == 1:
        assert_same_state(fast, slow)
    assert fast._train_pass is not None


def test_two_thread_schedule_only_where_it_pays(monkeypatch, n_threads):
    monkeypatch.setattr(_netstep, "TWO_THREAD_MIN_FLOPS_PER_OP", 2e6)
    np.random.seed(0)
    small = MultiLayerNetExtend(64, [100] * 3, 10, use_batchnorm=True, dtype=np.float32)
    large = MultiLayerNetExtend(784, [100] * 2, 10, use_batchnorm=True, dtype=np.float32)
    for net, inputs in ((small, 64), (large, 784)):
        x, t = np.random.rand(100, inputs).astype(np.float32), np.random.randint(0, 10, 100)
        net.gradient(x, t)
    assert not small._train_pass.two_threads_pay and small._train_pass.schedule == 1
    assert small._train_pass.policy == ONE_THREAD     # small GEMMs: one thread, BLAS included
    assert large._train_pass.two_threads_pay and large._train_pass.policy == TWO_THREADS
    if n_threads == 2 and _netstep.two_thread_schedule_available():
        assert large._train_pass.schedule == 2
    wide = MultiLayerNetExtend(784, [2000], 10, use_dropout=True, dtype=np.float32)
    x, t = np.random.rand(1, 784).astype(np.float32), np.random.randint(0, 10, 1)
    wide.gradient(x, t)                                 # 1.6M weights, one sample
    assert not wide._train_pass.two_threads_pay
    assert wide._train_pass.policy == N_THREADS        # bound by its weights: the BLAS's threads


@pytest.mark.parametrize("name", ["ext bn dropout", "mln sigmoid decay"])
def test_one_thread_policy_equals_the_layer_path(monkeypatch, name, n_threads):
    """Networks too small for threads: at any thread count the pass runs serially with the BLAS
    on one thread, bitwise the layer path, and leaves the BLAS's thread count as it was."""
    from threadpoolctl import threadpool_info
    monkeypatch.setattr(_netstep, "TWO_THREAD_MIN_FLOPS_PER_OP", 2e6)
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    fast, slow = twins(name, np.float64)
    opts = (Adam(lr=0.01), Adam(lr=0.01))
    for i in range(3):
        x, t = data(seed=i)
        step_both(fast, slow, x, t, opts, exact=True)
        assert_same_state(fast, slow, exact=True)
    assert fast._train_pass.policy == ONE_THREAD and fast._train_pass.schedule == 1
    assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before


def test_non_contiguous_input(dtype):
    fast, slow = twins("ext bn dropout", dtype)
    x, t = data(n=16, dtype=dtype)
    wide = np.repeat(x, 2, axis=1)[:, ::2]          # the same values, not C-contiguous
    assert not wide.flags.c_contiguous
    step_both(fast, slow, wide, t)
    assert fast._train_pass is not None
    assert_same_state(fast, slow)


def test_unsupported_network_retries_later():
    fast, slow = twins("mln relu", np.float64)
    for net in (fast, slow):
        net.layers["Activation_function1"] = MyRelu()
    x, t = data()
    step_both(fast, slow, x, t)
    assert fast._train_pass is None and fast._plan_backoff == 64
    step_both(fast, slow, x, t)                         # no new attempt meanwhile
    assert fast._plan_backoff == 63
    for net in (fast, slow):
        net.layers["Activation_function1"] = L.Relu()   # fixed: picked up within 64 calls
    for _ in range(64):
        step_both(fast, slow, x, t)
    assert fast._train_pass is not None
    assert_same_state(fast, slow)


def _same_value(a, b):
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, tuple):
        return (isinstance(b, tuple) and len(a) == len(b)
                and all(_same_value(u, v) for u, v in zip(a, b)))
    return a == b


def test_a_layer_given_a_subclass_leaves_the_plan(dtype):
    # the plan reads and writes the layers' state as C members of their exact classes: a layer
    # turned into a subclass (its own forward) makes the next pass the layers' own
    fast, _ = twins("ext bn dropout", dtype)
    x, t = data(dtype=dtype)
    fast.gradient(x, t)
    calls = []

    class CountingRelu(L.Relu):
        def forward(self, x):
            calls.append(1)
            return super().forward(x)

    fast.layers["Activation_function1"].__class__ = CountingRelu
    fast.gradient(x, t)
    assert calls == [1]


@pytest.mark.parametrize("layer", ["Affine1", "BatchNorm1", "Activation_function1", "Dropout1",
                                   "last"])
def test_layer_state_pickles_and_copies_with_the_layer(layer):
    # the state the passes keep in C members (fastnn._layerstate) goes with pickle and copy,
    # with the rest of the layer's attributes, and shared arrays stay shared
    import copy
    import pickle
    fast, _ = twins("ext bn dropout", np.float64)
    x, t = data()
    fast.gradient(x, t)
    obj = fast.last_layer if layer == "last" else fast.layers[layer]
    obj.note = "kept"
    names = [n for n in dir(type(obj)) if type(getattr(type(obj), n, None)).__name__
             == "getset_descriptor" and not n.startswith("__")]
    assert names                                      # the C members, e.g. x, mask, _bits
    for other in (pickle.loads(pickle.dumps([obj, fast.params]))[0], copy.deepcopy(obj)):
        assert type(other) is type(obj) and other.note == "kept"
        for n in names:
            assert _same_value(getattr(obj, n), getattr(other, n)), n
    if layer == "Affine1":
        w, params = pickle.loads(pickle.dumps([obj, fast.params]))
        assert w.W is params["W1"]                    # one object, as in the network


def test_layers_pickle_as_plain_objects():
    # the state is a plain object's (one dict): pickles of earlier versions, whose layers were
    # plain classes, load; the C members are exactly the names each base lists
    import copyreg
    from fastnn import _layerstate
    for base in (_layerstate.AffineState, _layerstate.BatchNormState, _layerstate.ReluState,
                 _layerstate.SigmoidState, _layerstate.DropoutState,
                 _layerstate.SoftmaxWithLossState):
        members = {n for n, v in vars(base).items()
                   if type(v).__name__ == "getset_descriptor" and not n.startswith("__")}
        assert members == set(base._state_members), base
    layer = L.Affine(np.ones((3, 2)), np.zeros(2))
    layer.note = 1
    fn, args, state = layer.__reduce_ex__(4)[:3]
    assert fn is copyreg.__newobj__ and args == (L.Affine,)
    assert type(state) is dict and state["W"] is layer.W and state["note"] == 1
    old = L.Affine.__new__(L.Affine)               # what an earlier version's pickle holds
    old.__setstate__({"W": layer.W, "b": layer.b, "x": None, "original_x_shape": None,
                      "dW": None, "db": None, "need_dx": True, "grad_buffers": None,
                      "_outs": layer._outs, "_dxs": layer._dxs, "_dWs": layer._dWs})
    assert old.W is layer.W and old.need_dx is True and "W" not in vars(old)
    y = old.forward(np.ones((4, 3)))
    np.testing.assert_array_equal(y, np.full((4, 2), 3.0))


@pytest.mark.parametrize("how", ["pickle", "deepcopy"])
def test_networks_pickle_and_copy_after_a_compiled_pass(how):
    import copy
    import pickle
    fast, _ = twins("ext bn dropout", np.float64)
    x, t = data()
    fast.gradient(x, t)
    other = pickle.loads(pickle.dumps(fast)) if how == "pickle" else copy.deepcopy(fast)
    assert other._train_pass is None
    np.random.seed(5)
    g1 = {k: v.copy() for k, v in fast.gradient(x, t).items()}
    np.random.seed(5)
    g2 = other.gradient(x, t)
    assert other._train_pass is not None and other._train_pass is not fast._train_pass
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k], err_msg=k)


@pytest.mark.parametrize("min_flops", [0.0, 2e6], ids=["two-thread", "one-thread"])
def test_concurrent_passes_restore_the_blas_threads(monkeypatch, n_threads, min_flops):
    """Passes of two networks from two Python threads at once (the GIL is released): the BLAS
    thread count the two-thread schedule (or the one-thread policy) lowers is restored after
    both, and each network's gradients are those of its layer path."""
    import threading
    from threadpoolctl import threadpool_info
    monkeypatch.setattr(_netstep, "TWO_THREAD_MIN_FLOPS_PER_OP", min_flops)

    def blas_threads():
        return sorted(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    before = blas_threads()
    pairs = [twins("ext bn dropout", np.float64, seed=s) for s in (1, 2)]
    x, t = data()
    expected = []
    for _, slow in pairs:
        np.random.seed(7)
        expected.append({k: v.copy() for k, v in slow.gradient(x, t).items()})
    results = [None, None]

    def train(i):
        fast = pairs[i][0]
        for _ in range(30):
            fast.compiled_step = True
            g = fast.gradient(x, t)
        results[i] = g

    threads = [threading.Thread(target=train, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert blas_threads() == before
    # the threads drew their dropout seeds from NumPy's shared generator in some interleaving;
    # gradient() leaves the parameters unchanged, so one more pass from a known seed must give
    # the layer path's gradients
    for i, (fast, _) in enumerate(pairs):
        assert results[i] is not None
        np.random.seed(7)
        g = fast.gradient(x, t)
        for k in g:
            if serial_pass(fast):
                np.testing.assert_array_equal(g[k], expected[i][k], err_msg=k)
            else:                                # split GEMMs: within float rounding
                assert_close(g[k], expected[i][k], scale=100)


def test_outputs_held_across_a_layer_path_call_are_not_overwritten():
    """A user keeps last_layer.y / Affine2.x of one step; loss() (the layer path) then rebinds the
    attributes; the next compiled pass must not write into the held arrays."""
    fast, slow = twins("mln relu", np.float64)
    x, t = data(seed=1)
    x2, _ = data(seed=2)
    fast.gradient(x, t)
    y, xin = fast.last_layer.y, fast.layers["Affine2"].x
    y_copy, xin_copy = y.copy(), xin.copy()
    fast.loss(x2, t)
    fast.gradient(x2, t)
    np.testing.assert_array_equal(y, y_copy)
    np.testing.assert_array_equal(xin, xin_copy)
    fast.loss(x, t)                       # and the pass goes on matching the layer path
    slow.loss(x, t)
    step_both(fast, slow, x2, t)
    assert_same_state(fast, slow)


def test_batchnorm_eps_change_is_followed():
    fast, slow = twins("ext bn dropout", np.float64)
    x, t = data()
    step_both(fast, slow, x, t)
    for net in (fast, slow):
        net.layers["BatchNorm1"]._eps = 0.5
    step_both(fast, slow, x, t)
    assert_same_state(fast, slow)


def test_batchnorm_eps_set_on_the_class_is_followed(monkeypatch):
    # the book's eps is a class attribute here: changed on the class, every layer uses it
    fast, slow = twins("ext bn dropout", np.float64)
    x, t = data()
    step_both(fast, slow, x, t)
    monkeypatch.setattr(L.BatchNormalization, "_eps", 0.5)
    step_both(fast, slow, x, t)
    assert fast._train_pass is not None
    assert_same_state(fast, slow)


_REPLACED_CLASS_SCRIPT = r"""
import numpy as np
import fastnn.layers
from fastnn.reference import layers as ref
fastnn.layers.Relu = ref.Relu             # a plain class put in place of fastnn's, before any plan
from fastnn.multi_layer_net import MultiLayerNet
np.random.seed(0)
net = MultiLayerNet(6, [5, 4], 3)
assert type(net.layers["Activation_function1"]) is ref.Relu
x, t = np.random.rand(8, 6), np.arange(8) % 3
for _ in range(3):
    g = net.gradient(x, t)
assert net._train_pass is None and np.isfinite(g["W1"]).all()
print("ok")
"""


def test_a_plain_class_put_in_place_of_a_layer_class_is_not_planned():
    # the plans cast layers of the planned classes to their C-member bases: a class that does
    # not derive from its base (here the reference's Relu bound as fastnn.layers.Relu) must
    # never be planned (a fresh interpreter: the classes are bound once per process)
    import subprocess
    import sys
    from conftest import subprocess_env
    res = subprocess.run([sys.executable, "-c", _REPLACED_CLASS_SCRIPT], capture_output=True,
                         text=True, env=subprocess_env(), cwd="/")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("ok")


def test_shapes_the_blas_rounds_differently_when_split(n_threads):
    """Row halves of a narrow GEMM can round differently from the whole (the BLAS picks its
    kernels by shape): the two-thread schedule stays within float tolerance of the layers."""
    for n in (4, 5, 7, 101):
        np.random.seed(n)
        fast = MultiLayerNetExtend(33, [1], 4, use_batchnorm=True)
        np.random.seed(n)
        slow = MultiLayerNetExtend(33, [1], 4, use_batchnorm=True)
        slow.compiled_step = False
        x = np.random.RandomState(n).randn(n, 33)
        t = np.random.RandomState(n + 1).randint(0, 4, n)
        step_both(fast, slow, x, t)
        assert_same_state(fast, slow)


def test_infinite_scores_give_the_layers_nan_loss_not_memory_error():
    fast, slow = twins("mln relu", np.float32)
    for net in (fast, slow):
        net.params["W3"][...] = 1e38
    x, t = data(dtype=np.float32)
    with np.errstate(all="ignore"):
        fast.gradient(x, t)
        slow.gradient(x, t)
    assert np.isnan(fast.last_layer.loss) == np.isnan(slow.last_layer.loss)


def test_kept_outputs_are_reused_when_nobody_else_holds_them():
    fast, _ = twins("ext bn dropout", np.float32)
    x, t = data(dtype=np.float32)

    def kept():
        return [fast.layers[k].x for k in fast.layers if k.startswith("Affine")] + [
            fast.last_layer.y]

    fast.gradient(x, t)
    first = [id(a) for a in kept()]
    for _ in range(3):
        fast.gradient(x, t)
    assert [id(a) for a in kept()] == first


@pytest.mark.skipif(not _netstep.two_thread_schedule_available(),
                    reason="built without the two-thread schedule")
@pytest.mark.parametrize("hidden, n", [([33, 20], 100), ([64, 48], 7), ([30], 3)])
def test_two_thread_row_blocks(hidden, n, dtype, n_threads):
    """The two-thread forward splits the batch rows in blocks whose Dropout masks start on whole
    mask words (an odd width needs blocks of 32 rows), one block possibly empty; the batch
    statistics combine both blocks' sums. Within float tolerance of the layer path."""
    np.random.seed(5)
    make = lambda: MultiLayerNetExtend(IN, hidden, OUT, use_batchnorm=True,  # noqa: E731
                                       use_dropout=True, dropout_ration=0.3, dtype=dtype)
    fast = make()
    np.random.seed(5)
    slow = make()
    slow.compiled_step = slow.compiled_predict = False
    opts = (SGD(lr=0.1), SGD(lr=0.1))
    for i in range(3):
        x, t = data(n=n, seed=i, dtype=dtype)
        step_both(fast, slow, x, t, opts)
        assert_same_state(fast, slow)
    if n_threads == 2:
        assert fast._train_pass.schedule == 2


@pytest.mark.skipif(not _netstep.two_thread_schedule_available(),
                    reason="built without the two-thread schedule")
def test_two_thread_batch_statistics_of_data_far_from_zero(dtype, n_threads):
    """Each row block's sums are shifted by its own first row and the blocks combined by their
    means: no cancellation for a large mean with a small spread (plain sums of squares would
    lose every digit at a mean of 1e8 in float64). Against float64 statistics of the pass's own
    batch-norm input."""
    np.random.seed(6)
    net = MultiLayerNetExtend(IN, [24], OUT, use_batchnorm=True, dtype=dtype)
    net.params["b1"][...] = 1e8 if dtype == np.float64 else 3e4
    x, t = data(n=64, seed=1, dtype=dtype)
    net.gradient(x, t)
    if n_threads == 2:
        assert net._train_pass.schedule == 2
    bn = net.layers["BatchNorm1"]
    xin = np.asarray(bn._x, dtype=np.float64)
    assert np.ptp(xin, axis=0).max() < 100 * np.abs(xin).mean() * 1e-3     # a small spread
    mean = xin.mean(axis=0)
    std = np.sqrt(((xin - mean) ** 2).mean(axis=0) + 1e-6)
    f64 = dtype == np.float64       # float32 statistics are rounded to float32 when stored
    np.testing.assert_allclose(np.asarray(bn.std, dtype=np.float64), std,
                               rtol=1e-10 if f64 else 1e-6)
    np.testing.assert_allclose(np.asarray(bn._mean, np.float64), mean, rtol=0,
                               atol=1e-7 if f64 else 4e-3)
