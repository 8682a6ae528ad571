# The layers' state that the compiled passes (fastnn/_netstep.pyx) read and write on every step,
# as C members of the layer classes' bases (see _layerstate.pyx).

cdef class _State:
    pass

cdef class AffineState(_State):
    cdef public object W, b, x, original_x_shape, dW, db, need_dx, grad_buffers

cdef class BatchNormState(_State):
    cdef public object gamma, beta, momentum, running_mean, running_var, input_shape
    cdef public object batch_size, dgamma, dbeta, _x

cdef class ReluState(_State):
    cdef public object mask

cdef class SigmoidState(_State):
    cdef public object out

cdef class DropoutState(_State):
    cdef public object dropout_ratio, inverted, seed, last_seed, _calls, _bits, _shape
    cdef public object _scale, _mask

cdef class SoftmaxWithLossState(_State):
    cdef public object loss, y, t, _dx
