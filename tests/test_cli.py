"""Smoke runs of the fastnn command (small epochs) and its JSON output."""
import json
import os
import subprocess
import sys

import pytest

from conftest import subprocess_env

import fastnn
from fastnn.cli import main



@pytest.fixture(autouse=True)
def keep_threads():
    old = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(old)


def test_train_json_and_compare(capsys):
    pytest.importorskip("sklearn")
    rc = main(["train", "--epochs", "2", "--hidden", "20x2", "--json", "--compare",
               "--threads", "1"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("train_acc", "test_acc", "seconds", "steps_per_second", "speedup"):
        assert key in out
    assert 0.0 <= out["test_acc"] <= 1.0 and out["steps"] == int(2 * 1438 / 100)
    assert out["speedup"] > 0 and out["reference"]["steps"] == out["steps"]
    # float64, same seed, no dropout: the reference run reaches the same accuracy
    assert out["reference"]["test_acc"] == pytest.approx(out["test_acc"], abs=1e-12)


def test_train_text_options(capsys):
    pytest.importorskip("sklearn")
    rc = main(["train", "--epochs", "1", "--hidden", "16,8", "--optimizer", "sgd",
               "--dropout", "0.1", "--weight-decay", "1e-4", "--dtype", "float32",
               "--no-batchnorm", "--activation", "sigmoid", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "64-16-8-10" in out and "float32" in out and "test acc" in out and "steps/s" in out


def test_train_mnist_missing_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTNN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FASTNN_NO_DOWNLOAD", "1")
    assert main(["train", "--dataset", "mnist", "--epochs", "1"]) == 1
    assert "not found" in capsys.readouterr().err


def test_gradcheck(capsys):
    assert main(["gradcheck"]) == 0
    out = capsys.readouterr().out
    assert "all passed" in out and "MultiLayerNetExtend" in out and "BatchNormalization" in out


def test_experiment_numbers_only(capsys):
    pytest.importorskip("sklearn")
    assert main(["experiment", "optimizers", "--iters", "3", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "iteration:0" in out and "Adam:" in out
    assert main(["experiment", "activations", "--no-plot"]) == 0


def test_experiment_plot(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    assert main(["experiment", "weight-decay", "--epochs", "2", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "weight-decay.png").stat().st_size > 1000


def test_python_dash_m_and_help():
    env = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "fastnn", "--help"], capture_output=True,
                       text=True, env=env, cwd="/", timeout=60)
    assert r.returncode == 0
    for sub in ("train", "bench", "gradcheck", "experiment"):
        assert sub in r.stdout
