"""``net.train_step(x, t, optimizer)``: the optimizer update fused into the compiled pass.

The pass applies a fastnn optimizer's update itself (netstep.h): on the two-thread schedule
layer by layer during the backward, on the serial schedule at one thread after it (from the
optimizer's validated tables, without returning to Python in between). The results must be
those of ``gradient()`` then ``optimizer.update()`` on a twin network, bitwise (the gradients are
computed the same way and every update rule is element-wise), for every rule and both dtypes.
Elsewhere train_step is those two calls. Also: what makes it fall back, errors, and the Trainer
using it.
"""
import numpy as np
import pytest

import fastnn
from fastnn import _netstep, optimizer as O
from fastnn.multi_layer_net import MultiLayerNet
from fastnn.multi_layer_net_extend import MultiLayerNetExtend
from fastnn.reference import optimizer as book_optimizer
from fastnn.trainer import Trainer
from fastnn.two_layer_net import TwoLayerNet

IN, OUT = 20, 5
TWO = _netstep.two_thread_schedule_available()
RULES = [O.SGD, O.Momentum, O.Nesterov, O.AdaGrad, O.RMSprop, O.Adam, O.AdamW]

NETS = {
    "ext bn dropout": lambda dt: MultiLayerNetExtend(IN, [12, 10, 8], OUT, use_batchnorm=True,
                                                     use_dropout=True, dropout_ration=0.15,
                                                     dtype=dt),
    "ext sigmoid bn": lambda dt: MultiLayerNetExtend(IN, [16, 9], OUT, activation="sigmoid",
                                                     use_batchnorm=True, dtype=dt),
    "mln": lambda dt: MultiLayerNet(IN, [12, 10], OUT, dtype=dt),
    "two": lambda dt: TwoLayerNet(IN, 12, OUT, weight_init_std=0.3, dtype=dt),
    # the first layer's weights (40 rows) are updated in two row halves, one per thread
    "ext wide": lambda dt: MultiLayerNetExtend(2 * IN, [48, 12], OUT, use_batchnorm=True,
                                               dtype=dt),
}


@pytest.fixture(autouse=True)
def two_thread_schedule_for_small_nets(monkeypatch):
    """Let these small networks' passes at two threads take the two-thread schedule."""
    monkeypatch.setattr(_netstep, "TWO_THREAD_MIN_FLOPS_PER_OP", 0.0)


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    """Both places a pass applies the update: after the backward (serial schedule, one thread)
    and during it (two-thread schedule)."""
    if request.param == 2 and not TWO:
        pytest.skip("built without the two-thread schedule")
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(request.param)
    yield request.param
    fastnn.set_num_threads(old)


def twins(name, dtype, seed=3):
    np.random.seed(seed)
    a = NETS[name](dtype)
    np.random.seed(seed)
    b = NETS[name](dtype)
    return a, b


def batch(i, n=32, dtype=np.float64, width=IN):
    """A batch of n rows (32: the two-thread forward splits even the networks with Dropout
    widths that need 16-row blocks)."""
    rng = np.random.RandomState(i)
    return rng.randn(n, width).astype(dtype), rng.randint(0, OUT, n)


def train_both(fused_net, plain_net, opt_f, opt_p, steps=4):
    """train_step on one twin, gradient() + update() on the other, same batches and dropout
    seeds. Returns whether each train_step applied the update in the pass."""
    width = fused_net.params["W1"].shape[0]
    applied = []
    for i in range(steps):
        x, t = batch(i, dtype=fused_net.dtype, width=width)
        np.random.seed(100 + i)
        grads_f = fused_net.train_step(x, t, opt_f)
        np.random.seed(100 + i)
        grads_p = plain_net.gradient(x, t)
        opt_p.update(plain_net.params, grads_p)
        plan = fused_net._train_pass
        applied.append(bool(plan is not None and plan.updated))
        assert list(grads_f) == list(grads_p)
        for k in grads_p:
            np.testing.assert_array_equal(grads_f[k], grads_p[k], err_msg=k)
    return applied


def assert_same_training_state(a, b, opt_a, opt_b):
    for k in b.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
        assert a.params[k] is a._pbuf[k]          # still the flat views, updated in place
    for name in ("v", "h", "m"):
        sa, sb = getattr(opt_a, name, None), getattr(opt_b, name, None)
        assert (sa is None) == (sb is None)
        if sb is not None:
            for k in sb:
                np.testing.assert_array_equal(sa[k], sb[k], err_msg=(name, k))
    assert getattr(opt_a, "iter", None) == getattr(opt_b, "iter", None)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("name", sorted(NETS))
def test_fused_update_equals_gradient_then_update(name, rule, dtype, threads):
    """One thread: the update after the backward; two: layer by layer during it."""
    a, b = twins(name, dtype)
    opt_a, opt_b = rule(lr=0.01), rule(lr=0.01)
    applied = train_both(a, b, opt_a, opt_b)
    assert applied == [False, True, True, True]      # the first step builds the plan
    assert a._train_pass.schedule == threads
    assert_same_training_state(a, b, opt_a, opt_b)
    if threads == 1:   # the optimizer's tables: the flat network's parameters in one segment
        assert opt_a._plan.last_segments == 1
        assert opt_a._plan.last_elements == sum(p.size for p in a.params.values())


@pytest.fixture
def one_thread():
    old = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    yield
    fastnn.set_num_threads(old)


def test_one_thread_update_is_not_applied_for_a_nan_loss(one_thread):
    """A NaN loss (the pass's sign of a failed scratch allocation) leaves the update to the
    optimizer's own call: the same results either way."""
    a, b = twins("ext bn dropout", np.float64)
    opt_a, opt_b = O.Adam(lr=0.01), O.Adam(lr=0.01)
    train_both(a, b, opt_a, opt_b, steps=2)
    for net in (a, b):
        net.params["W1"][0, 0] = np.nan
    applied = train_both(a, b, opt_a, opt_b, steps=2)
    assert applied == [False, False]
    for k in b.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


def test_thread_count_change_between_steps(dtype):
    """Two threads (fused), then one (the pass reports no update: the optimizer runs), then two."""
    a, b = twins("ext bn dropout", dtype)
    opt_a, opt_b = O.Momentum(lr=0.05), O.Momentum(lr=0.05)
    old = fastnn.get_num_threads()
    try:
        for n in (2, 1, 2):
            fastnn.set_num_threads(n)
            train_both(a, b, opt_a, opt_b, steps=3)
            assert_same_training_state(a, b, opt_a, opt_b)
    finally:
        fastnn.set_num_threads(old)


@pytest.mark.parametrize("case", ["weight decay", "book optimizer", "subclass update",
                                  "strided state", "compiled_step off"])
def test_fallbacks_give_the_same_results(case, threads):
    np.random.seed(3)
    kw = {"weight_decay_lambda": 0.1} if case == "weight decay" else {}
    make = lambda: MultiLayerNetExtend(IN, [12, 10], OUT, use_batchnorm=True, **kw)  # noqa
    np.random.seed(3)
    a = make()
    np.random.seed(3)
    b = make()
    calls = []
    if case == "book optimizer":
        opt_a, opt_b = book_optimizer.Adam(lr=0.01), book_optimizer.Adam(lr=0.01)
    elif case == "subclass update":
        class Counting(O.Adam):
            def update(self, params, grads):
                calls.append(1)
                super().update(params, grads)
        opt_a, opt_b = Counting(lr=0.01), O.Adam(lr=0.01)
    else:
        opt_a, opt_b = O.Adam(lr=0.01), O.Adam(lr=0.01)
    if case == "compiled_step off":
        a.compiled_step = b.compiled_step = False
    if case == "strided state":
        x, t = batch(0)
        a.train_step(x, t, opt_a)                 # creates the state
        opt_b.update(b.params, b.gradient(x, t))
        for opt in (opt_a, opt_b):
            w = opt.m["W2"]
            big = np.zeros((w.shape[0], 2 * w.shape[1]))
            big[:, ::2] = w
            opt.m["W2"] = big[:, ::2]             # a strided view: the NumPy rules
    applied = train_both(a, b, opt_a, opt_b)
    assert not any(applied)
    if case == "subclass update":
        assert len(calls) == 4
    for k in b.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


def test_replaced_params_entry_is_not_updated_through_the_layer(threads):
    """params['W2'] rebound to another array: the optimizer must update that array (as update()
    does), not the layer's weights. The two-thread schedule, which updates each layer's own
    arrays, may not apply it; after the serial schedule's backward the optimizer's tables (which
    hold the new array) apply it as update() would."""
    a, b = twins("ext bn dropout", np.float64)
    opt_a, opt_b = O.SGD(lr=0.1), O.SGD(lr=0.1)
    train_both(a, b, opt_a, opt_b, steps=2)
    for net in (a, b):
        net.params["W2"] = net.params["W2"].copy()
    applied = train_both(a, b, opt_a, opt_b, steps=2)
    assert applied == ([True, True] if threads == 1 else [False, False])
    assert not np.shares_memory(a.params["W2"], a.layers["Affine2"].W)
    for k in b.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    np.testing.assert_array_equal(a.layers["Affine2"].W, b.layers["Affine2"].W)


def test_errors_leave_the_parameters_unchanged(threads):
    a, _ = twins("ext bn dropout", np.float64)
    opt = O.Adam(lr=0.01)
    x, t = batch(0)
    for i in range(2):
        a.train_step(x, t, opt)
    before = a.flat_params.copy()
    state = {k: v.copy() for k, v in opt.m.items()}
    with pytest.raises(KeyError):                 # optimizer state of another network
        del opt.v["b2"]
        a.train_step(x, t, opt)
    np.testing.assert_array_equal(a.flat_params, before)
    for k in state:
        np.testing.assert_array_equal(opt.m[k], state[k])
    opt2 = O.Adam(lr=0.01)
    with pytest.raises(ValueError):
        a.train_step(x[:, :5], t, opt2)           # wrong input width: the layers' error
    np.testing.assert_array_equal(a.flat_params, before)


def test_trainer_steps_through_train_step(monkeypatch):
    np.random.seed(0)
    net = MultiLayerNetExtend(IN, [12], OUT, use_batchnorm=True)
    seen = []
    real = net.train_step
    monkeypatch.setattr(net, "train_step", lambda x, t, opt: seen.append(opt) or real(x, t, opt))
    x, t = batch(0, n=40)
    tr = Trainer(net, x, t, x, t, epochs=1, mini_batch_size=10, optimizer="adam",
                 optimizer_param={"lr": 0.01}, verbose=False, progress=False)
    tr.train()
    assert len(seen) == tr.max_iter and all(o is tr.optimizer for o in seen)
    assert tr.optimizer.iter == tr.max_iter


def test_optimizer_counts_as_updating_while_a_pass_applies_it():
    """Between _fused_update and _fused_finish (the pass running), another update of the same
    optimizer raises as a concurrent update() does; nothing is counted unless applied."""
    np.random.seed(0)
    net = MultiLayerNetExtend(IN, [12], OUT)
    opt = O.Adam(lr=0.01)
    x, t = batch(0)
    grads = net.gradient(x, t)
    assert opt._fused_update(net.params, grads) is not None
    with pytest.raises(RuntimeError, match="already running"):
        opt.update(net.params, grads)
    opt._fused_finish(False)
    assert opt.iter == 0
    opt.update(net.params, grads)
    assert opt.iter == 1


@pytest.mark.parametrize("breakage", ["missing state key", "read-only param", "beta1=1"])
def test_a_failed_fused_update_leaves_the_optimizer_usable(breakage, threads):
    """Errors raised while preparing the fused update (as update() raises them) must not leave
    the optimizer marked as running an update."""
    a, _ = twins("ext bn dropout", np.float64)
    opt = O.Adam(lr=0.01, beta1=1.0) if breakage == "beta1=1" else O.Adam(lr=0.01)
    x, t = batch(0)
    if breakage != "beta1=1":
        for i in range(2):
            a.train_step(x, t, opt)
    if breakage == "missing state key":
        saved = opt.m.pop("b2")
    elif breakage == "read-only param":
        a.params["b2"].flags.writeable = False
    with pytest.raises((KeyError, ValueError, ZeroDivisionError)):
        a.train_step(x, t, opt)
    if breakage == "missing state key":
        opt.m["b2"] = saved
    elif breakage == "read-only param":
        a.params["b2"].flags.writeable = True
    else:
        opt.beta1 = 0.9
    a.train_step(x, t, opt)                       # usable again: no RuntimeError
    opt.update(a.params, a.gradient(x, t))


def test_a_network_subclass_gradient_override_is_used(threads):
    """train_step (and the Trainer) must call a subclass's own gradient()."""
    class Clipped(MultiLayerNet):
        calls = 0

        def gradient(self, x, t):
            Clipped.calls += 1
            grads = super().gradient(x, t)
            for g in grads.values():
                np.clip(g, -0.01, 0.01, out=g)
            return grads

    np.random.seed(3)
    a = Clipped(IN, [12, 10], OUT)
    np.random.seed(3)
    b = Clipped(IN, [12, 10], OUT)
    opt_a, opt_b = O.SGD(lr=1.0), O.SGD(lr=1.0)
    applied = train_both(a, b, opt_a, opt_b)
    assert not any(applied) and Clipped.calls == 8
    for k in b.params:
        np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)


def test_one_optimizer_for_two_networks_and_replaced_state(threads):
    """The update the pass applies comes from the optimizer's validation of this very call: an
    optimizer alternating between two networks (its state keyed by the same names: the
    book's optimizers allow it) and a state dict the user replaced between steps give what
    gradient() then update() give."""
    nets = [twins("ext bn dropout", np.float64, seed=s) for s in (3, 4)]
    opt_a, opt_b = O.Adam(lr=0.01), O.Adam(lr=0.01)
    for i in range(3):
        for a, b in nets:
            train_both(a, b, opt_a, opt_b, steps=1)
    for opt in (opt_a, opt_b):
        opt.m = {k: v.copy() for k, v in opt.m.items()}      # new, separate arrays
    for a, b in nets:
        applied = train_both(a, b, opt_a, opt_b, steps=2)
        assert applied == [True, True]
        for k in b.params:
            np.testing.assert_array_equal(a.params[k], b.params[k], err_msg=k)
    for k in opt_b.m:
        np.testing.assert_array_equal(opt_a.m[k], opt_b.m[k], err_msg=k)
        np.testing.assert_array_equal(opt_a.v[k], opt_b.v[k], err_msg=k)


@pytest.mark.parametrize("bad", [None, "adam", O.Adam])
def test_not_an_optimizer_raises_type_error_before_anything_changes(bad):
    np.random.seed(0)
    net = MultiLayerNetExtend(IN, [12], OUT, use_batchnorm=True)
    before = net.flat_params.copy()
    x, t = batch(0)
    with pytest.raises(TypeError, match="optimizer"):
        net.train_step(x, t, bad)
    np.testing.assert_array_equal(net.flat_params, before)
