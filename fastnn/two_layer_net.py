"""The chapter-5 two-layer network built from layers (the book's ``ch05/two_layer_net.py``), on
the compiled layers.

Book API: ``params`` W1, b1, W2, b2; ``layers`` 'Affine1', 'Relu1', 'Affine2'; the loss layer is
``lastLayer`` (camelCase, as in the book). Same RNG draws as the book (W1 then W2), so a float64
network equals the book's after ``np.random.seed``. Internal differences are those of
:mod:`fastnn.multi_layer_net`: ``dtype=`` (float64 default, float32 option), parameters and
gradients as views of two flat buffers (the gradients are overwritten by the next
``gradient()`` call), no input gradient in ``Affine1`` (its ``backward`` returns None).
"""
from collections import OrderedDict

import numpy as np

from fastnn import layers as _layers
from fastnn.multi_layer_net import _FlatNet
from fastnn._netutil import as_labels, network_dtype


class TwoLayerNet(_FlatNet):
    """``Affine1 -> Relu1 -> Affine2 -> softmax`` with Gaussian init.

    Parameters
    ----------
    input_size, hidden_size, output_size : int
    weight_init_std : float, default 0.01
        ``W = weight_init_std * randn(...)`` (W1 drawn first); biases zero.
    dtype : float64 (default) or float32

    Attributes
    ----------
    params : dict
        'W1', 'b1', 'W2', 'b2', shared with the layers (views of ``flat_params``).
    layers : OrderedDict
        'Affine1', 'Relu1', 'Affine2'.
    lastLayer : SoftmaxWithLoss
    """

    _loss_layer_attr = "lastLayer"
    weight_decay_lambda = 0

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01,
                 dtype=np.float64):
        self.dtype = network_dtype(dtype)
        draws = [('W1', weight_init_std * np.random.randn(input_size, hidden_size)),
                 ('b1', np.zeros(hidden_size)),
                 ('W2', weight_init_std * np.random.randn(hidden_size, output_size)),
                 ('b2', np.zeros(output_size))]
        self._allocate(draws)

        self.layers = OrderedDict()
        self.layers['Affine1'] = _layers.Affine(self.params['W1'], self.params['b1'])
        self.layers['Relu1'] = _layers.Relu()
        self.layers['Affine2'] = _layers.Affine(self.params['W2'], self.params['b2'])

        self.lastLayer = _layers.SoftmaxWithLoss()
        self._wire()

    def _grad_entries(self):
        for i in ('1', '2'):
            aff = self.layers['Affine' + i]
            yield 'W' + i, aff, 'dW', 'W' + i
            yield 'b' + i, aff, 'db', 'b' + i

    def loss(self, x, t):
        """Softmax cross-entropy of the predictions."""
        y = self.predict(x)
        return self.lastLayer.forward(y, as_labels(t, self.dtype))

    def gradient(self, x, t):
        """Backpropagation gradients: the layers' ``dW``/``db`` objects themselves (views of
        ``flat_grads``, overwritten by the next call)."""
        return self._gradient(x, t)
