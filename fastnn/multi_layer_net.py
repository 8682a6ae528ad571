"""Fully connected network of any depth (the book's ``common/multi_layer_net.py``), on the
compiled layers.

Same constructor, attributes, key names and orders, initialisation (same NumPy RNG draws:
after ``np.random.seed(s)`` a float64 network's weights equal the book's bit for bit), loss,
weight decay and gradients as the book's class. What is different inside:

* ``dtype=`` (keyword, default float64 as in the book): float32 runs the whole network in
  float32 (inputs and one-hot labels are converted to float32 on the way in);
* every ``params[k]`` is a view of one contiguous buffer (``net.flat_params``), so the
  optimizers of :mod:`fastnn.optimizer` update the network in one pass; the layers hold those
  same arrays (``net.params['W1'] is net.layers['Affine1'].W``);
* the gradients are views of a second buffer laid out like the first (``net.flat_grads``):
  ``gradient()`` returns a new dict each call, but its arrays are **overwritten by the next
  ``gradient()`` call** (the book's ``grads['b1']`` is the layer's ``db`` too; with weight decay
  the book's ``grads['W1']`` is a fresh array and here it is the flat view holding
  ``dW + lambda*W``). Copy them to keep them;
* the first Affine layer does not compute the gradient of the input (``layers['Affine1']
  .need_dx`` is False: its ``backward`` returns None);
* ``loss`` skips the weight-decay sum when ``weight_decay_lambda`` is 0 (it adds 0 then).
"""
from collections import OrderedDict

import numpy as np

from fastnn import _netstep, layers as _layers
from fastnn.gradient import numerical_gradient
from fastnn._netutil import (GradCollector, allocate_params, as_input, as_labels, init_scale,
                             network_dtype)


_KEEP_INFER_PLAN_BYTES = 32 << 20


class _FlatNet:
    """Shared internals of the flat-buffer networks."""

    _loss_layer_attr = "last_layer"
    _decay_from_params = False   # Extend reads W from params, MultiLayerNet from the layer
    _train_pass = None           # the compiled training pass (fastnn._netstep.TrainPass)
    _direct_plan = None          # a pass whose gradients are the flat views themselves
    _plan_backoff = 0            # calls left before trying to build a plan again after a failure
    _infer_passes = None         # compiled inference forwards by batch size (InferPass)
    _infer_backoff = 0

    #: ``gradient()`` runs the whole forward and backward pass as one compiled call when the
    #: layers allow it (exact fastnn layer types with contiguous parameters of the network's
    #: dtype, input of that dtype): same kernels in the same order, so the same layer attributes
    #: afterwards and the same numbers (bitwise on one thread; within float rounding when its
    #: two-thread schedule splits the GEMMs), without ~50 Python layer calls. Set False (on the
    #: class or a network) to run the layers one by one.
    compiled_step = True

    #: ``predict()`` in inference mode (so ``loss()`` and ``accuracy()`` too) runs the layers'
    #: forward as one compiled call when they allow it, as ``gradient()`` does: the same numbers
    #: and layer attributes as the layer-by-layer forward (bitwise). Set False to run the layers.
    compiled_predict = True

    def __getstate__(self):
        # the compiled passes hold C pointers into this network's arrays: they are never pickled
        # or copied (a copy builds its own on its first gradient() or predict())
        state = self.__dict__.copy()
        for key in ('_train_pass', '_direct_plan', '_direct_grads', '_plan_backoff',
                    '_infer_passes', '_infer_backoff'):
            state.pop(key, None)
        return state

    def _draw_weights(self, weight_init_std):
        """float64 draws in the book's order: [(key, value)] for W1, b1, W2, b2, ..."""
        all_size_list = [self.input_size] + self.hidden_size_list + [self.output_size]
        draws = []
        for idx in range(1, len(all_size_list)):
            scale = init_scale(weight_init_std, all_size_list[idx - 1])
            W = scale * np.random.randn(all_size_list[idx - 1], all_size_list[idx])
            draws.append(('W' + str(idx), W))
            draws.append(('b' + str(idx), np.zeros(all_size_list[idx])))
        return draws

    def _allocate(self, draws):
        pbuf, gbuf = allocate_params(draws, self.dtype)
        self._pbuf, self._gbuf = pbuf, gbuf
        self.params = {}
        for k, _ in draws:
            self.params[k] = pbuf[k]

    @property
    def flat_params(self):
        """The contiguous buffer every ``params`` array is a view of (at construction)."""
        return self._pbuf.buffer

    @property
    def flat_grads(self):
        """The contiguous buffer the gradients are written into (same layout as flat_params)."""
        return self._gbuf.buffer

    def _grad_entries(self):
        """(grad_key, layer, attr, param_key) in the book's grads order."""
        raise NotImplementedError

    def _wire(self):
        """Point the layers' gradient outputs at the flat gradient buffer."""
        lam = self.weight_decay_lambda
        first = True
        for layer in self.layers.values():
            if isinstance(layer, _layers.Affine):
                if first:
                    layer.need_dx = False
                first = False
        self._scratch = {}
        col = GradCollector()
        for key, layer, attr, pkey in self._grad_entries():
            view = self._gbuf[pkey]
            if attr == 'dW' and lam:
                scratch = np.zeros_like(view)
                self._scratch[key] = scratch
                if self._decay_from_params:
                    getter = (lambda k=pkey: self.params[k])
                else:
                    getter = (lambda lay=layer: lay.W)
                col.add(key, layer, attr, view, decay_param=getter, lam=lam)
            else:
                col.add(key, layer, attr, view)
            if attr in ('dW', 'db'):
                bufs = list(getattr(layer, 'grad_buffers', None) or (None, None))
                bufs[0 if attr == 'dW' else 1] = self._scratch.get(key, view)
                layer.grad_buffers = tuple(bufs)
        self._collector = col
        self._wired_lambda = lam
        self._direct_plan = None

    def numerical_gradient(self, x, t):
        """Central-difference gradients of the loss (:meth:`_numerical_loss`), one per parameter,
        keyed and ordered as :meth:`gradient` keys them (W1, b1, [gamma1, beta1,] W2, ...)."""
        def loss_W(W):
            return self._numerical_loss(x, t)
        return {key: numerical_gradient(loss_W, self.params[key])
                for key, *_ in self._grad_entries()}

    def _numerical_loss(self, x, t):
        return self.loss(x, t)

    def _pass_input(self, x):
        """x as the first Affine layer computes from it, for a compiled pass: e.g. the book's
        float32 MNIST or uint8 images into a float64 network are promoted to a float64 copy,
        non-contiguous input is copied. Inputs the pass cannot take are returned as they are."""
        if type(x) is np.ndarray:
            if x.dtype != self.dtype:
                if (x.dtype.kind in 'fiu' and np.result_type(x.dtype, self.dtype) == self.dtype
                        and type(next(iter(self.layers.values()), None)) is _layers.Affine):
                    x = np.ascontiguousarray(x, dtype=self.dtype)
            elif not x.flags.c_contiguous:
                x = np.ascontiguousarray(x)
        return x

    @staticmethod
    def _test_mode(key):
        """Whether predict() gives the layer under ``key`` train_flg=False (here: none)."""
        return False

    def _compiled_predict(self, x):
        """Scores from one compiled inference forward, or None if the layers must run."""
        x = self._pass_input(x)
        if type(x) is not np.ndarray or x.ndim != 2:
            return None
        plans = self._infer_passes
        if plans is None:
            plans = self._infer_passes = {}
        plan = plans.get(x.shape[0])
        if plan is None or not plan.matches(self.layers, x):
            if self._infer_backoff > 0:     # the last attempt failed: layer path for a while
                self._infer_backoff -= 1
                return None
            plan = _netstep.InferPass.build(self.layers, x, self.dtype, self._test_mode)
            if plan is None:
                self._infer_backoff = 64
                return None
            # kept for the next call of this batch size (e.g. the Trainer's per-step loss) unless
            # its buffers are large (a whole evaluation set: the build is then a small part of
            # the call, and memory is not held between calls beyond what the layers keep); the
            # kept plans hold at most _KEEP_INFER_PLAN_BYTES in all
            size = plan.buffer_bytes
            if size <= _KEEP_INFER_PLAN_BYTES:
                if len(plans) >= 4 or size + sum(
                        p.buffer_bytes for p in plans.values()) > _KEEP_INFER_PLAN_BYTES:
                    plans.clear()
                plans[x.shape[0]] = plan
        return plan.run(x)

    def _compiled_gradient(self, x, t, optimizer=None):
        """The grads from one compiled training pass, or None if the layer path must run (then
        nothing has changed). With an optimizer (train_step), also its update: applied by the
        pass itself when the optimizer is a fastnn one and the pass can (netstep.h), else by
        ``optimizer.update`` afterwards."""
        if self.weight_decay_lambda != self._wired_lambda:
            self._wire()
        layers, loss_layer = self.layers, getattr(self, self._loss_layer_attr)
        x = self._pass_input(x)
        plan = self._train_pass
        if plan is None or not plan.matches(layers, loss_layer, x):
            if self._plan_backoff > 0:      # the last attempt failed: layer path for a while
                self._plan_backoff -= 1
                return None
            views = {(id(layer), attr): view
                     for _, layer, attr, view, decay, _ in self._collector.entries
                     if attr in ('dgamma', 'dbeta')}
            plan = self._train_pass = _netstep.TrainPass.build(layers, loss_layer, x,
                                                               self.dtype, views)
            if plan is None:
                # something the pass cannot run (a layer subclass, an input dtype to promote,
                # ...): retry only every 64 calls rather than pay a failed build each step
                self._plan_backoff = 64
                return None
        # the flat views, when the plan writes every gradient there (the plan's last run told)
        grads = dict(self._direct_grads) if self._direct_plan is plan else None
        update = None
        fused_update = getattr(optimizer, '_fused_update', None) if grads is not None else None
        if fused_update is not None:
            update = fused_update(self.params, grads)
        applied = False
        try:
            loss = plan.run(x, t, update)
            applied = update is not None and loss is not None and plan.updated
        finally:
            if update is not None:
                optimizer._fused_finish(applied)
        if loss is None:
            return None
        if grads is None:
            grads = self._collector.collect()
            # Without weight decay the pass writes every gradient into its flat view (and the
            # plan checks those outputs are unchanged before each run): later runs of this plan
            # can hand out the views without the collector.
            entries = self._collector.entries
            if all(e[4] is None and grads[e[0]] is e[3] for e in entries):
                self._direct_plan = plan
                self._direct_grads = tuple((e[0], e[3]) for e in entries)
        if optimizer is not None and not applied:
            optimizer.update(self.params, grads)
        return grads

    def train_step(self, x, t, optimizer):
        """One training step: ``grads = self.gradient(x, t)``, then
        ``optimizer.update(self.params, grads)``. Returns ``grads``.

        The same results as those two calls. With a fastnn optimizer, the compiled pass applies
        the update itself: at one thread right after the backward, without returning to Python
        in between (each return to the interpreter after the pass's memory-heavy kernels costs
        tens of microseconds of cache misses); on its two-thread schedule the thread that
        computes the weight gradients updates each layer as soon as its gradients are ready and
        the other thread has done with its old values, overlapping the update with the rest of
        the backward (the ch.6 network: see the README). Otherwise (weight decay, the book's
        optimizers, an optimizer subclass overriding ``update``, the layer path) this runs the
        two calls.

        Parameters
        ----------
        x, t : ndarray
            A batch, as for :meth:`gradient`.
        optimizer : object
            Has ``update(params, grads)`` (fastnn.optimizer or the book's).
        """
        if isinstance(optimizer, type) or not callable(getattr(optimizer, 'update', None)):
            raise TypeError("optimizer must be an object with an update(params, grads) method "
                            "(e.g. fastnn.optimizer.Adam()), got %r" % (optimizer,))
        if not self._library_gradient():        # a subclass's own gradient() must run
            grads = self.gradient(x, t)
            optimizer.update(self.params, grads)
            return grads
        return self._gradient(x, t, optimizer)

    @classmethod
    def _library_gradient(cls):
        """Whether ``gradient()`` is fastnn's own (not a subclass's override: clipping, say)."""
        fn = cls.gradient
        known = cls.__dict__.get('_gradient_is_library')    # (fn, answer), kept on the class:
        if known is None or known[0] is not fn:             # not an MRO walk every step
            owner = next(c for c in cls.__mro__ if 'gradient' in c.__dict__)
            known = (fn, owner.__module__.startswith('fastnn.'))
            cls._gradient_is_library = known
        return known[1]

    def _gradient(self, x, t, optimizer=None):
        """What every network's ``gradient()`` does: the compiled pass when it can run, else the
        layers' training forward (:meth:`_train_scores`), the loss layer and :meth:`_backprop`.
        With an optimizer (train_step), its update follows (or is applied by the pass)."""
        x, t = as_input(x, self.dtype), as_labels(t, self.dtype)
        if self.compiled_step:
            grads = self._compiled_gradient(x, t, optimizer)
            if grads is not None:
                return grads
        getattr(self, self._loss_layer_attr).forward(self._train_scores(x), t)
        grads = self._backprop()
        if optimizer is not None:
            optimizer.update(self.params, grads)
        return grads

    def _train_scores(self, x):
        """Scores of a training-mode forward through the layers, one by one."""
        return self._forward_layers(x)

    def _forward_layers(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def _backprop(self):
        if self.weight_decay_lambda != self._wired_lambda:
            self._wire()        # before the backward: it writes dW where the decay expects it
        dout = getattr(self, self._loss_layer_attr).backward(1)
        for layer in reversed(self.layers.values()):
            dout = layer.backward(dout)
        return self._collector.collect()

    def _decay(self):
        weight_decay = 0
        if self.weight_decay_lambda:
            for idx in range(1, self.hidden_layer_num + 2):
                W = self.params['W' + str(idx)]
                weight_decay += 0.5 * self.weight_decay_lambda * np.sum(W ** 2)
        return weight_decay

    def predict(self, x):
        """Scores (pre-softmax) of the network for input ``x``."""
        x = as_input(x, self.dtype)
        if self.compiled_predict:
            y = self._compiled_predict(x)
            if y is not None:
                return y
        return self._forward_layers(x)

    def accuracy(self, x, t):
        """Fraction of argmax predictions equal to ``t`` (index or one-hot)."""
        return self._accuracy(self.predict(x), t, x.shape[0])

    @staticmethod
    def _accuracy(y, t, n):
        y = np.argmax(y, axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(n)


class MultiLayerNet(_FlatNet):
    """Fully connected network ``(Affine -> activation) * L -> Affine -> softmax``.

    Parameters
    ----------
    input_size : int
    hidden_size_list : list of int
        Must be a list (book quirk: a tuple raises TypeError).
    output_size : int
    activation : {'relu', 'sigmoid'}
        Case-sensitive ('ReLU' raises KeyError).
    weight_init_std : {'relu', 'he', 'sigmoid', 'xavier'} or float
        'relu'/'he' -> sqrt(2/n), 'sigmoid'/'xavier' -> sqrt(1/n) with n the fan-in; a number is
        the scale itself.
    weight_decay_lambda : float
        L2 decay: the loss adds ``0.5*lambda*sum(W**2)`` over all W (not b), the gradient
        ``lambda*W``.
    dtype : float64 (default) or float32

    Attributes
    ----------
    params : dict
        'W1', 'b1', ..., 'W{L+1}', 'b{L+1}': views of ``flat_params``, the layers' own arrays.
    layers : OrderedDict
        'Affine{i}', 'Activation_function{i}', ..., 'Affine{L+1}'.
    last_layer : SoftmaxWithLoss
    dtype : numpy.dtype
    """

    def __init__(self, input_size, hidden_size_list, output_size,
                 activation='relu', weight_init_std='relu', weight_decay_lambda=0,
                 dtype=np.float64):
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size_list = hidden_size_list
        self.hidden_layer_num = len(hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self.dtype = network_dtype(dtype)
        self.params = {}

        self._init_weight(weight_init_std)

        activation_layer = {'sigmoid': _layers.Sigmoid, 'relu': _layers.Relu}
        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers['Affine' + str(idx)] = _layers.Affine(self.params['W' + str(idx)],
                                                              self.params['b' + str(idx)])
            self.layers['Activation_function' + str(idx)] = activation_layer[activation]()

        idx = self.hidden_layer_num + 1
        self.layers['Affine' + str(idx)] = _layers.Affine(self.params['W' + str(idx)],
                                                          self.params['b' + str(idx)])
        self.last_layer = _layers.SoftmaxWithLoss()
        self._wire()

    def _init_weight(self, weight_init_std):
        """Draw ``W{i} = scale * randn(n_in, n_out)`` in layer order (float64, as the book);
        zero biases; all copied into one flat buffer of the network's dtype."""
        self._allocate(self._draw_weights(weight_init_std))

    def _grad_entries(self):
        for idx in range(1, self.hidden_layer_num + 2):
            i = str(idx)
            aff = self.layers['Affine' + i]
            yield 'W' + i, aff, 'dW', 'W' + i
            yield 'b' + i, aff, 'db', 'b' + i

    def loss(self, x, t):
        """Softmax cross-entropy plus ``0.5*lambda*sum(W**2)`` for every W."""
        y = self.predict(x)
        return self.last_layer.forward(y, as_labels(t, self.dtype)) + self._decay()

    def gradient(self, x, t):
        """Backpropagation gradients, keys W1, b1, ...

        ``grads['W{i}']`` is ``dW + lambda*W`` and ``grads['b{i}']`` the layer's ``db`` itself;
        all are views of ``flat_grads``, overwritten by the next call.
        """
        return self._gradient(x, t)
