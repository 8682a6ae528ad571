# cython: auto_pickle=False
"""Bases of the layer classes (fastnn.layers) holding, as C members, the attributes that the
compiled passes (fastnn._netstep) read and write on every step: a network's plan checks each
layer's parameters and flags before a pass and sets its ``x``, ``mask``, ``dW``, ... after it.
As instance-dictionary entries, those ~100 attribute lookups and stores cost tens of
microseconds a step once the pass's kernels have evicted the dictionaries from the caches; as
C members each is one load or store.

To Python code they are ordinary attributes (``layer.W``, ``layer.x = ...``), which default to
None; everything else a layer holds stays in its ``__dict__``. Instances pickle and copy as plain
Python objects do, with one dict of the members and the ``__dict__`` as their state (and the
values of a subclass's ``__slots__``): pickles of earlier versions, whose layers were plain
classes, load, and a subclass's own ``__getstate__``/``__setstate__`` take precedence.
"""
import copyreg


cdef class _State:
    """Pickling and copying with a plain object's state (see the module docstring); each base
    names its members in ``_state_members``."""

    def __getstate__(self):
        d = getattr(self, "__dict__", None)
        state = dict(d) if d else {}
        for name in type(self)._state_members:
            state[name] = getattr(self, name)
        slots = {name: getattr(self, name) for name in copyreg._slotnames(type(self))
                 if hasattr(self, name)}
        return (state, slots) if slots else state

    def __setstate__(self, state):
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        members = type(self)._state_members
        for name, value in (state or {}).items():
            if name in members:
                setattr(self, name, value)
            else:
                self.__dict__[name] = value
        for name, value in (slots or {}).items():
            setattr(self, name, value)


cdef class AffineState(_State):
    """Affine: parameters, the input and gradients the backward uses and leaves."""
    _state_members = ("W", "b", "x", "original_x_shape", "dW", "db", "need_dx", "grad_buffers")


cdef class BatchNormState(_State):
    """BatchNormalization: parameters, running statistics, the last training forward's input
    and the gradients of the backward."""
    _state_members = ("gamma", "beta", "momentum", "running_mean", "running_var", "input_shape",
                      "batch_size", "dgamma", "dbeta", "_x")


cdef class ReluState(_State):
    """Relu: the mask of the last forward."""
    _state_members = ("mask",)


cdef class SigmoidState(_State):
    """Sigmoid: the output of the last forward."""
    _state_members = ("out",)


cdef class DropoutState(_State):
    """Dropout: ratio, seed and the packed mask of the last training forward."""
    _state_members = ("dropout_ratio", "inverted", "seed", "last_seed", "_calls", "_bits",
                      "_shape", "_scale", "_mask")


cdef class SoftmaxWithLossState(_State):
    """SoftmaxWithLoss: the loss, probabilities and labels of the last forward."""
    _state_members = ("loss", "y", "t", "_dx")
