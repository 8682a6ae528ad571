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


def test_package_is_the_installed_one_when_expected():
    # tools/wheel_test.sh sets this: the tests must run against the installed wheel
    import os
    if not os.environ.get("FASTNN_EXPECT_INSTALLED"):
        pytest.skip("FASTNN_EXPECT_INSTALLED not set")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert not os.path.abspath(fastnn.__file__).startswith(repo + os.sep), fastnn.__file__


def test_simd_cap_from_environment():
    import os
    from fastnn import _runtime
    names = {"baseline": "baseline (SSE2)", "avx2": "AVX2+FMA", "avx512": "AVX-512"}
    forced = os.environ.get("FASTNN_SIMD")
    if forced in names and _runtime.simd_cpu() != "baseline (SSE2)":
        order = list(names.values())
        expected = min(order.index(names[forced]), order.index(_runtime.simd_cpu()))
        assert _runtime.simd_path() == order[expected]
    else:
        assert _runtime.simd_path() == _runtime.simd_cpu()


def test_set_num_threads_limits_scipy_blas_in_a_fresh_process():
    # threadpoolctl only sees loaded libraries: set_num_threads must load SciPy's BLAS first
    import subprocess
    import sys
    code = ("import fastnn; fastnn.set_num_threads(1)\n"
            "from threadpoolctl import threadpool_info\n"
            "pools = [p for p in threadpool_info() if p['user_api'] == 'blas']\n"
            "assert any('scipy' in p['filepath'] for p in pools), pools\n"
            "assert all(p['num_threads'] == 1 for p in pools), pools\n")
    import os
    # import the same fastnn the tests use (installed or in-place build), from outside the tree
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(fastnn.__file__)))
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env=env)


def test_import_leaves_the_environment_as_it_was():
    # fastnn loads its OpenMP runtime with a passive wait policy, then restores os.environ
    import subprocess
    import sys
    import os
    from conftest import subprocess_env
    env = subprocess_env()
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("GOMP_SPINCOUNT", None)
    code = ("import os, fastnn\n"
            "assert 'OMP_WAIT_POLICY' not in os.environ, os.environ.get('OMP_WAIT_POLICY')\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env=env)
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    code = "import os, fastnn\nassert os.environ['OMP_WAIT_POLICY'] == 'ACTIVE'\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/", env=env)
