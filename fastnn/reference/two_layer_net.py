"""The chapter-5 two-layer network built from layers (``ch05/two_layer_net.py``)."""

from collections import OrderedDict

import numpy as np

from .layers import Affine, Relu, SoftmaxWithLoss
from .gradient import numerical_gradient


class TwoLayerNet:
    """``Affine1 -> Relu1 -> Affine2 -> softmax`` with Gaussian init.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    weight_init_std : float, default 0.01
        ``W = weight_init_std * randn(...)`` (W1 drawn first); biases zero.

    Attributes
    ----------
    params : dict
        'W1', 'b1', 'W2', 'b2', shared with the layers.
    layers : OrderedDict
        'Affine1', 'Relu1', 'Affine2'.
    lastLayer : SoftmaxWithLoss
        Book name (camelCase, unlike ``last_layer`` of the common/ networks).
    """

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = {}
        self.params['W1'] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params['b1'] = np.zeros(hidden_size)
        self.params['W2'] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params['b2'] = np.zeros(output_size)

        self.layers = OrderedDict()
        self.layers['Affine1'] = Affine(self.params['W1'], self.params['b1'])
        self.layers['Relu1'] = Relu()
        self.layers['Affine2'] = Affine(self.params['W2'], self.params['b2'])

        self.lastLayer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        """Softmax cross-entropy of the predictions."""
        y = self.predict(x)
        return self.lastLayer.forward(y, t)

    def accuracy(self, x, t):
        """Fraction of correct argmax predictions; ``t`` index or one-hot."""
        y = self.predict(x)
        y = np.argmax(y, axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def numerical_gradient(self, x, t):
        """Central-difference gradients of :meth:`loss` (keys W1, b1, W2, b2)."""
        def loss_W(W):
            return self.loss(x, t)

        grads = {}
        grads['W1'] = numerical_gradient(loss_W, self.params['W1'])
        grads['b1'] = numerical_gradient(loss_W, self.params['b1'])
        grads['W2'] = numerical_gradient(loss_W, self.params['W2'])
        grads['b2'] = numerical_gradient(loss_W, self.params['b2'])
        return grads

    def gradient(self, x, t):
        """Backpropagation gradients: the layers' ``dW``/``db`` objects themselves."""
        self.loss(x, t)

        dout = 1
        dout = self.lastLayer.backward(dout)
        layers = list(self.layers.values())
        layers.reverse()
        for layer in layers:
            dout = layer.backward(dout)

        grads = {}
        grads['W1'], grads['b1'] = self.layers['Affine1'].dW, self.layers['Affine1'].db
        grads['W2'], grads['b2'] = self.layers['Affine2'].dW, self.layers['Affine2'].db
        return grads
