"""Fully connected network with weight decay, dropout and batch normalisation (the book's
``common/multi_layer_net_extend.py``), on the compiled layers.

Book API and semantics (keyword ``dropout_ration`` included; ``train_flg`` reaches the layers
whose *key* contains "Dropout" or "BatchNorm"); the internal differences are those of
:mod:`fastnn.multi_layer_net` (``dtype=``, parameters and gradients as views of two flat
buffers, gradients overwritten by the next ``gradient()`` call, no input gradient in the first
layer). Also:

* ``grads['gamma{i}']``/``grads['beta{i}']`` are the BatchNorm layers' ``dgamma``/``dbeta``, as in
  the book: after ``gradient()`` the layer's attributes are rebound to the flat views;
* a float32 network keeps float32 BatchNorm running statistics (the book's are float64), so
  inference stays in float32.
"""
from collections import OrderedDict

import numpy as np

from fastnn import layers as _layers
from fastnn.multi_layer_net import _FlatNet
from fastnn._netutil import as_input, as_labels, network_dtype


class MultiLayerNetExtend(_FlatNet):
    """:class:`MultiLayerNet` plus optional Dropout and BatchNormalization.

    Per hidden layer i the layers are 'Affine{i}', 'BatchNorm{i}' (if ``use_batchnorm``),
    'Activation_function{i}', 'Dropout{i}' (if ``use_dropout``); then 'Affine{L+1}'.

    Parameters
    ----------
    input_size, hidden_size_list, output_size, activation, weight_init_std, weight_decay_lambda
        As for :class:`fastnn.multi_layer_net.MultiLayerNet`.
    use_dropout : bool
    dropout_ration : float, default 0.5
        Dropout ratio (the book's keyword, typo included); not stored on the network.
    use_batchnorm : bool
        Adds ``gamma{i}`` (ones) and ``beta{i}`` (zeros) to ``params``, after all the W/b keys.
    dtype : float64 (default) or float32

    Attributes
    ----------
    params : dict
        W1, b1, ..., W{L+1}, b{L+1}, gamma1, beta1, ...: views of ``flat_params``.
    layers : OrderedDict
    last_layer : SoftmaxWithLoss
    use_dropout, use_batchnorm, dtype
    """

    _decay_from_params = True

    def __init__(self, input_size, hidden_size_list, output_size,
                 activation='relu', weight_init_std='relu', weight_decay_lambda=0,
                 use_dropout=False, dropout_ration=0.5, use_batchnorm=False,
                 dtype=np.float64):
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size_list = hidden_size_list
        self.hidden_layer_num = len(hidden_size_list)
        self.use_dropout = use_dropout
        self.weight_decay_lambda = weight_decay_lambda
        self.use_batchnorm = use_batchnorm
        self.dtype = network_dtype(dtype)
        self.params = {}

        draws = self._draw_weights(weight_init_std)
        activation_layer = {'sigmoid': _layers.Sigmoid, 'relu': _layers.Relu}
        activation_cls = activation_layer[activation]     # KeyError before any allocation
        if self.use_batchnorm:
            for idx in range(1, self.hidden_layer_num + 1):
                draws.append(('gamma' + str(idx), np.ones(hidden_size_list[idx - 1])))
                draws.append(('beta' + str(idx), np.zeros(hidden_size_list[idx - 1])))
        self._allocate(draws)

        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers['Affine' + str(idx)] = _layers.Affine(self.params['W' + str(idx)],
                                                              self.params['b' + str(idx)])
            if self.use_batchnorm:
                bn = _layers.BatchNormalization(self.params['gamma' + str(idx)],
                                                self.params['beta' + str(idx)])
                if self.dtype == np.float32:
                    n = hidden_size_list[idx - 1]
                    bn.running_mean = np.zeros(n, np.float32)
                    bn.running_var = np.zeros(n, np.float32)
                self.layers['BatchNorm' + str(idx)] = bn

            self.layers['Activation_function' + str(idx)] = activation_cls()

            if self.use_dropout:
                self.layers['Dropout' + str(idx)] = _layers.Dropout(dropout_ration)

        idx = self.hidden_layer_num + 1
        self.layers['Affine' + str(idx)] = _layers.Affine(self.params['W' + str(idx)],
                                                          self.params['b' + str(idx)])
        self.last_layer = _layers.SoftmaxWithLoss()
        self._wire()

    def _grad_entries(self):
        for idx in range(1, self.hidden_layer_num + 2):
            i = str(idx)
            aff = self.layers['Affine' + i]
            yield 'W' + i, aff, 'dW', 'W' + i
            yield 'b' + i, aff, 'db', 'b' + i
            if self.use_batchnorm and idx != self.hidden_layer_num + 1:
                bn = self.layers['BatchNorm' + i]
                yield 'gamma' + i, bn, 'dgamma', 'gamma' + i
                yield 'beta' + i, bn, 'dbeta', 'beta' + i

    @staticmethod
    def _test_mode(key):
        """Whether predict() passes train_flg to the layer under ``key`` (the book's rule)."""
        return "Dropout" in key or "BatchNorm" in key

    def predict(self, x, train_flg=False):
        """Scores; ``train_flg`` goes to layers whose *key* contains "Dropout" or "BatchNorm"."""
        x = as_input(x, self.dtype)
        if not train_flg and self.compiled_predict:
            y = self._compiled_predict(x)
            if y is not None:
                return y
        for key, layer in self.layers.items():
            if self._test_mode(key):
                x = layer.forward(x, train_flg)
            else:
                x = layer.forward(x)
        return x

    def loss(self, x, t, train_flg=False):
        """Softmax cross-entropy plus ``0.5*lambda*sum(W**2)`` for every W."""
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, as_labels(t, self.dtype)) + self._decay()

    def accuracy(self, X, T):
        """Accuracy in inference mode (``train_flg=False``)."""
        return self._accuracy(self.predict(X, train_flg=False), T, X.shape[0])

    def _numerical_loss(self, x, t):
        # book: the training-mode loss, so each evaluation redraws dropout masks and updates the
        # BN running statistics
        return self.loss(x, t, train_flg=True)

    def gradient(self, x, t):
        """Backpropagation gradients from a training-mode forward.

        Keys W1, b1, gamma1, beta1, W2, ...; views of ``flat_grads`` (overwritten by the next
        call): b/gamma/beta are the layers' ``db``/``dgamma``/``dbeta``, W is ``dW + lambda*W``.
        """
        return self._gradient(x, t)

    def _train_scores(self, x):
        return self.predict(x, True)
