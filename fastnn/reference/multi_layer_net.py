"""Fully connected network of any depth (the book's ``common/multi_layer_net.py``)."""

from collections import OrderedDict

import numpy as np

from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss
from .gradient import numerical_gradient


class MultiLayerNet:
    """Fully connected network ``(Affine -> activation) * L -> Affine -> softmax``.

    Parameters
    ----------
    input_size : int
    hidden_size_list : list of int
        Must be a list (book quirk: a tuple raises TypeError on
        ``[input_size] + hidden_size_list``).
    output_size : int
    activation : {'relu', 'sigmoid'}
        Case-sensitive ('ReLU' raises KeyError).
    weight_init_std : {'relu', 'he', 'sigmoid', 'xavier'} or float
        'relu'/'he' -> sqrt(2/n), 'sigmoid'/'xavier' -> sqrt(1/n) with n the
        fan-in; a number is used as the scale itself.
    weight_decay_lambda : float
        L2 decay: the loss adds ``0.5*lambda*sum(W**2)`` over all W (not b).

    Attributes
    ----------
    params : dict
        'W1', 'b1', ..., 'W{L+1}', 'b{L+1}'; the same arrays as the layers'.
    layers : OrderedDict
        'Affine{i}', 'Activation_function{i}', ..., 'Affine{L+1}'.
    last_layer : SoftmaxWithLoss
    """

    def __init__(self, input_size, hidden_size_list, output_size,
                 activation='relu', weight_init_std='relu', weight_decay_lambda=0):
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size_list = hidden_size_list
        self.hidden_layer_num = len(hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self.params = {}

        self._init_weight(weight_init_std)

        activation_layer = {'sigmoid': Sigmoid, 'relu': Relu}
        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 1):
            self.layers['Affine' + str(idx)] = Affine(self.params['W' + str(idx)],
                                                      self.params['b' + str(idx)])
            self.layers['Activation_function' + str(idx)] = activation_layer[activation]()

        idx = self.hidden_layer_num + 1
        self.layers['Affine' + str(idx)] = Affine(self.params['W' + str(idx)],
                                                  self.params['b' + str(idx)])

        self.last_layer = SoftmaxWithLoss()

    def _init_weight(self, weight_init_std):
        """Draw ``W{i} = scale * randn(n_in, n_out)`` in layer order; zero biases."""
        all_size_list = [self.input_size] + self.hidden_size_list + [self.output_size]
        for idx in range(1, len(all_size_list)):
            scale = weight_init_std
            if str(weight_init_std).lower() in ('relu', 'he'):
                scale = np.sqrt(2.0 / all_size_list[idx - 1])  # He
            elif str(weight_init_std).lower() in ('sigmoid', 'xavier'):
                scale = np.sqrt(1.0 / all_size_list[idx - 1])  # Xavier
            self.params['W' + str(idx)] = scale * np.random.randn(all_size_list[idx - 1],
                                                                  all_size_list[idx])
            self.params['b' + str(idx)] = np.zeros(all_size_list[idx])

    def predict(self, x):
        """Scores (pre-softmax) of the network for input ``x``."""
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        """Softmax cross-entropy plus ``0.5*lambda*sum(W**2)`` for every W."""
        y = self.predict(x)

        weight_decay = 0
        for idx in range(1, self.hidden_layer_num + 2):
            W = self.params['W' + str(idx)]
            weight_decay += 0.5 * self.weight_decay_lambda * np.sum(W ** 2)

        return self.last_layer.forward(y, t) + weight_decay

    def accuracy(self, x, t):
        """Fraction of argmax predictions equal to ``t`` (index or one-hot)."""
        y = self.predict(x)
        y = np.argmax(y, axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def numerical_gradient(self, x, t):
        """Central-difference gradients of :meth:`loss`, keys W1, b1, ..."""
        def loss_W(W):
            return self.loss(x, t)

        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            grads['W' + str(idx)] = numerical_gradient(loss_W, self.params['W' + str(idx)])
            grads['b' + str(idx)] = numerical_gradient(loss_W, self.params['b' + str(idx)])
        return grads

    def gradient(self, x, t):
        """Backpropagation gradients, keys W1, b1, ...

        ``grads['W{i}'] = dW + lambda*W`` is a new array; ``grads['b{i}']``
        is the layer's ``db`` itself.
        """
        self.loss(x, t)

        dout = 1
        dout = self.last_layer.backward(dout)
        layers = list(self.layers.values())
        layers.reverse()
        for layer in layers:
            dout = layer.backward(dout)

        grads = {}
        for idx in range(1, self.hidden_layer_num + 2):
            affine = self.layers['Affine' + str(idx)]
            grads['W' + str(idx)] = affine.dW + self.weight_decay_lambda * affine.W
            grads['b' + str(idx)] = affine.db
        return grads
