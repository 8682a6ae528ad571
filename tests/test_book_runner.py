"""python -m fastnn.book runs an unmodified book-style script with common.* and dataset.mnist
served by fastnn."""
import gzip
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np

from conftest import subprocess_env


SCRIPT = textwrap.dedent("""
    # coding: utf-8
    import sys, os
    sys.path.append(os.pardir)  # the book's line: must not shadow fastnn's modules
    import numpy as np
    from dataset.mnist import load_mnist
    from common.layers import *
    from common.optimizer import *
    from common.multi_layer_net_extend import MultiLayerNetExtend
    from common.trainer import Trainer
    from common.util import smooth_curve
    import common.layers

    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)
    net = MultiLayerNetExtend(784, [10, 10], 10, use_batchnorm=True)
    opt = Adam(lr=0.01)
    for i in range(5):
        grads = net.gradient(x_train, t_train)
        opt.update(net.params, grads)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=1, mini_batch_size=10,
                      optimizer='rmsprpo', verbose=False)
    trainer.train()
    print("layers module:", common.layers.__name__, type(net).__module__)
    print("argv:", sys.argv[1:], "main:", __name__)
    print("shapes:", x_train.shape, t_train.shape, x_test.dtype)
""")


def _idx(tmp, name, payload):
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(gzip.compress(payload))


def test_book_script_runs_on_fastnn(tmp_path):
    rng = np.random.RandomState(0)
    data = tmp_path / "data"
    data.mkdir()
    for prefix, n in (("train", 20), ("t10k", 6)):
        img = rng.randint(0, 256, (n, 28, 28)).astype(np.uint8)
        lab = rng.randint(0, 10, n).astype(np.uint8)
        _idx(data, "%s-images-idx3-ubyte.gz" % prefix,
             struct.pack(">IIII", 2051, n, 28, 28) + img.tobytes())
        _idx(data, "%s-labels-idx1-ubyte.gz" % prefix, struct.pack(">II", 2049, n) + lab.tobytes())
    chdir = tmp_path / "ch06"
    chdir.mkdir()
    script = chdir / "my_script.py"
    script.write_text(SCRIPT)
    env = subprocess_env(FASTNN_DATA_DIR=str(data), FASTNN_NO_DOWNLOAD="1")
    r = subprocess.run([sys.executable, "-m", "fastnn.book", str(script), "--flag", "x"],
                       capture_output=True, text=True, env=env, cwd=str(chdir), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "layers module: fastnn.layers fastnn.multi_layer_net_extend" in r.stdout
    assert "argv: ['--flag', 'x'] main: __main__" in r.stdout
    assert "shapes: (20, 784) (20, 10) float32" in r.stdout


def test_missing_script():
    env = subprocess_env()
    r = subprocess.run([sys.executable, "-m", "fastnn.book", "no_such_script.py"],
                       capture_output=True, text=True, env=env, cwd="/", timeout=60)
    assert r.returncode == 2 and "no such script" in r.stderr
