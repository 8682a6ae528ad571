"""Bad input to the compiled layers: clear TypeError/ValueError naming the argument, never a crash,
and parameters left untouched."""
import numpy as np
import pytest

from fastnn import _activations, _affine, _softmax_xent, layers


def _affine_layer(K=784, M=10, dtype=np.float32):
    rng = np.random.default_rng(0)
    return layers.Affine(rng.standard_normal((K, M)).astype(dtype), np.zeros(M, dtype))


def test_affine_width_mismatch_names_shapes():
    layer = _affine_layer()
    W_before = layer.W.copy()
    with pytest.raises(ValueError, match=r"783 features per row but W has 784 rows"):
        layer.forward(np.ones((5, 783), np.float32))
    np.testing.assert_array_equal(layer.W, W_before)


def test_affine_bias_and_rank_errors():
    W = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"b must have shape \(3,\)"):
        layers.Affine(W, np.zeros(2)).forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match="batch axis"):
        layers.Affine(W, np.zeros(3)).forward(np.ones(4))
    with pytest.raises(ValueError, match="W must be 2-D"):
        _affine.affine_forward(np.ones((2, 4)), np.ones(4), np.zeros(3))


def test_affine_backward_dout_shape():
    layer = _affine_layer(4, 3, np.float64)
    layer.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3\)"):
        layer.backward(np.ones((2, 4)))
    with pytest.raises(RuntimeError, match="before forward"):
        _affine_layer().backward(np.ones((1, 10)))


@pytest.mark.parametrize("bad", [np.ones((2, 4), complex), np.array([["a"] * 4] * 2)])
def test_affine_rejects_non_real_dtypes(bad):
    with pytest.raises(TypeError, match="dtype"):
        _affine_layer(4, 3, np.float64).forward(bad)


def test_wrappers_reject_wrong_types_and_mixed_dtypes():
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        _affine.affine_forward([[1.0]], np.ones((1, 1)), np.ones(1))
    with pytest.raises(TypeError, match="x and W must have the same dtype"):
        _affine.affine_forward(np.ones((1, 1), np.float32), np.ones((1, 1)), np.ones(1, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        _activations.relu_forward(np.ones(3, np.int64))
    with pytest.raises(ValueError, match="out must be writeable"):
        out = np.empty((2, 3))
        out.flags.writeable = False
        _affine.affine_forward(np.ones((2, 4)), np.ones((4, 3)), np.ones(3), out=out)
    with pytest.raises(ValueError, match="out must have shape"):
        _affine.affine_forward(np.ones((2, 4)), np.ones((4, 3)), np.ones(3), out=np.empty((3, 2)))
    with pytest.raises(ValueError, match="mask must have shape"):
        _activations.relu_forward(np.ones((2, 2)), mask=np.empty((3, 3), bool))


def test_read_only_and_non_contiguous_inputs_are_handled():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 8))
    x.flags.writeable = False
    W = rng.standard_normal((4, 3))
    W_view = np.asfortranarray(W)           # non C-contiguous weights
    layer = layers.Affine(W_view, np.zeros(3))
    np.testing.assert_allclose(layer.forward(x[:, ::2]), x[:, ::2] @ W, rtol=1e-12)
    r = layers.Relu()
    np.testing.assert_array_equal(r.forward(x.T), np.maximum(x.T, 0))


def test_softmax_labels_out_of_range_and_bad_labels():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"out of range \[0, 4\): t\[1\] = 4"):
        layers.SoftmaxWithLoss().forward(x, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"out of range"):
        layers.SoftmaxWithLoss().forward(x, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"t must have shape \(3,\)"):
        layers.SoftmaxWithLoss().forward(x, np.array([0, 1]))
    with pytest.raises(TypeError, match="integer class indices"):
        layers.SoftmaxWithLoss().forward(x, np.array([0.0, 1.0, 2.0]))


def test_softmax_empty_batch_and_rank():
    with pytest.raises(ValueError, match="at least one row"):
        layers.SoftmaxWithLoss().forward(np.zeros((0, 10)), np.zeros(0, int))
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        layers.SoftmaxWithLoss().forward(np.zeros((2, 3, 4)), np.zeros(2, int))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        _softmax_xent.softmax_xent_backward(np.zeros((0, 3)), np.zeros(0, int), 1.0)


def test_affine_empty_batch_is_rejected():
    # the book fails in reshape; fastnn says what is wrong
    with pytest.raises(ValueError, match="empty batch"):
        _affine_layer(4, 3, np.float64).forward(np.zeros((0, 4)))


def test_relu_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        layers.Relu().backward(np.ones(3))
    with pytest.raises(RuntimeError, match="before forward"):
        layers.Sigmoid().backward(np.ones(3))
