"""Pure-NumPy reference implementation of *Deep Learning from Scratch* (ch. 5-6).

The book's semantics written plainly; oracle of the tests and baseline of the
benchmarks.  Every module mirrors one module of the book's ``common/`` package
(``layer_naive`` and ``two_layer_net`` mirror ``ch05/``), with the same names,
signatures, attributes and quirks (current Japanese repository).
"""

from . import functions, gradient, util, layer_naive, layers, optimizer
from . import multi_layer_net, multi_layer_net_extend, two_layer_net, trainer

__all__ = [
    "functions", "gradient", "util", "layer_naive", "layers", "optimizer",
    "multi_layer_net", "multi_layer_net_extend", "two_layer_net", "trainer",
]
