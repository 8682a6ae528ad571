"""The compiled extensions exist and report themselves; no silent pure-Python fallback."""
import importlib
import io

import pytest

import fastnn

EXTENSIONS = ["_runtime", "_affine", "_activations", "_softmax_xent"]


@pytest.mark.parametrize("name", EXTENSIONS)
def test_extension_is_compiled(name):
    mod = importlib.import_module("fastnn." + name)
    assert mod.__file__.endswith((".so", ".pyd")), mod.__file__


@pytest.mark.parametrize("cls", ["Relu", "Sigmoid", "Affine", "SoftmaxWithLoss"])
def test_foundation_layers_are_compiled(cls):
    assert fastnn.show_config is not None
    from fastnn import _config
    assert _config.implementations()["layers." + cls] == "compiled"


def test_show_config_reports_build():
    buf = io.StringIO()
    fastnn.show_config(file=buf)
    text = buf.getvalue()
    for needle in ("fastnn " + fastnn.__version__, "OpenMP", "SIMD path", "BLAS", "-O3",
                   "-fno-math-errno", "layers.Affine", "compiled", "optimizer.Adam"):
        assert needle in text, needle
    assert "-march=native" not in text or "FASTNN_MARCH_NATIVE" in text


def test_set_num_threads_roundtrip():
    old = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
        from threadpoolctl import threadpool_info
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    finally:
        fastnn.set_num_threads(old)
    with pytest.raises(ValueError, match="n_threads must be >= 1"):
        fastnn.set_num_threads(0)
    with pytest.raises(TypeError, match="must be an int"):
        fastnn.set_num_threads(1.5)
