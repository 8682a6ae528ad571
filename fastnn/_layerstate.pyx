"""Bases of the layer classes (fastnn.layers) holding, as C members, the attributes that the
compiled passes (fastnn._netstep) read and write on every step: a network's plan checks each
layer's parameters and flags before a pass and sets its ``x``, ``mask``, ``dW``, ... after it.
As instance-dictionary entries, those ~100 attribute lookups and stores cost tens of
microseconds a step once the pass's kernels have evicted the dictionaries from the caches; as
C members each is one load or store.

To Python code they are ordinary attributes (``layer.W``, ``layer.x = ...``), which default to
None; everything else a layer holds stays in its ``__dict__``. Instances pickle and copy with
their members and their ``__dict__`` (Cython's generated ``__reduce__``).
"""


cdef class AffineState:
    """Affine: parameters, the input and gradients the backward uses and leaves."""


cdef class BatchNormState:
    """BatchNormalization: parameters, running statistics, the last training forward's input
    and the gradients of the backward."""


cdef class ReluState:
    """Relu: the mask of the last forward."""


cdef class SigmoidState:
    """Sigmoid: the output of the last forward."""


cdef class DropoutState:
    """Dropout: ratio, seed and the packed mask of the last training forward."""


cdef class SoftmaxWithLossState:
    """SoftmaxWithLoss: the loss, probabilities and labels of the last forward."""
