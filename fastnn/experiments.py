"""The chapter-6 experiments of the book, on fastnn (``fastnn experiment NAME``).

Each follows the book's script (book-compat.md section 11) with smaller default sizes, on the
bundled digits (default) or MNIST, prints the numbers and, when matplotlib is installed, writes
a PNG into ``--out``:

* ``optimizers``   -- SGD / Momentum / AdaGrad / Adam on MultiLayerNet([100]*4): loss curves
* ``weight-init``  -- std 0.01 / Xavier / He (all ReLU) on MultiLayerNet([100]*4): loss curves
* ``activations``  -- activation histograms of 5 layers of 100 (randn input) per init scale
* ``batchnorm``    -- accuracy with and without BatchNorm for several weight_init_std
* ``weight-decay`` -- overfitting on 300 samples, lambda 0 vs 0.1: train/test accuracy
* ``dropout``      -- overfitting on 300 samples, without / with dropout 0.2
* ``hyperparams``  -- random search of lr and weight decay, top results
"""
import os

import numpy as np

NAMES = ("optimizers", "weight-init", "activations", "batchnorm", "weight-decay", "dropout",
         "hyperparams")


def add_arguments(p):
    p.add_argument("name", choices=NAMES + ("all",), help="experiment to run")
    p.add_argument("--dataset", choices=["digits", "mnist"], default="digits")
    p.add_argument("--iters", type=int, default=None,
                   help="iterations (optimizers, weight-init; book 2000, default 500)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs (weight-decay/dropout: book 201/301, default 100; batchnorm: "
                        "book 20, default 20; hyperparams: book 50, default 30)")
    p.add_argument("--trials", type=int, default=20, help="hyperparams trials (book 100)")
    p.add_argument("--out", default="fastnn-experiments", help="directory for the PNG plots")
    p.add_argument("--no-plot", action="store_true", help="numbers only")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")


def _plt(args):
    if args.no_plot:
        return None
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: numbers only; pip install 'fastnn[plot]' for PNGs)")
        return None
    return plt


def _save(plt, fig, args, name):
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, name + ".png")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    print("wrote " + path)


def _data(args):
    from fastnn.cli import _load_dataset
    (x_train, t_train), (x_test, t_test) = _load_dataset(args.dataset)
    if args.dtype == "float32":
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    return (x_train, t_train), (x_test, t_test)


def _loss_race(args, title, nets, optimizers, ylim):
    from fastnn.util import smooth_curve
    (x_train, t_train), _ = _data(args)
    iters = args.iters or 500
    batch = 128
    losses = {k: [] for k in nets}
    for i in range(iters):
        mask = np.random.choice(x_train.shape[0], batch)
        xb, tb = x_train[mask], t_train[mask]
        for k in nets:
            grads = nets[k].gradient(xb, tb)
            optimizers[k].update(nets[k].params, grads)
            losses[k].append(float(nets[k].loss(xb, tb)))
        if i % 100 == 0 or i == iters - 1:
            print("===========" + "iteration:" + str(i) + "===========")
            for k in nets:
                print(k + ":" + str(losses[k][-1]))
    plt = _plt(args)
    if plt is not None:
        fig = plt.figure()
        markers = ["o", "x", "s", "D", "^"]
        for j, k in enumerate(nets):
            plt.plot(np.arange(iters), smooth_curve(np.array(losses[k])), marker=markers[j % 5],
                     markevery=100, label=k)
        plt.xlabel("iterations")
        plt.ylabel("loss")
        plt.ylim(*ylim)
        plt.title(title)
        plt.legend()
        _save(plt, fig, args, title)
    return {k: v[-1] for k, v in losses.items()}


def exp_optimizers(args):
    from fastnn.multi_layer_net import MultiLayerNet
    from fastnn.optimizer import SGD, Momentum, AdaGrad, Adam
    (x_train, _), _ = _data(args)
    opts = {"SGD": SGD(), "Momentum": Momentum(), "AdaGrad": AdaGrad(), "Adam": Adam()}
    nets = {k: MultiLayerNet(x_train.shape[1], [100] * 4, 10, dtype=args.dtype) for k in opts}
    return _loss_race(args, "optimizers", nets, opts, (0, 1))


def exp_weight_init(args):
    from fastnn.multi_layer_net import MultiLayerNet
    from fastnn.optimizer import SGD
    (x_train, _), _ = _data(args)
    types = {"std=0.01": 0.01, "Xavier": "sigmoid", "He": "relu"}
    nets = {k: MultiLayerNet(x_train.shape[1], [100] * 4, 10, weight_init_std=v,
                             dtype=args.dtype) for k, v in types.items()}
    opt = SGD(lr=0.01)
    return _loss_race(args, "weight-init", nets, {k: opt for k in nets}, (0, 2.5))


def exp_activations(args):
    from fastnn.functions import sigmoid, relu
    x0 = np.random.randn(1000, 100)
    n = 100
    configs = [("sigmoid, std 1", sigmoid, 1.0), ("sigmoid, std 0.01", sigmoid, 0.01),
               ("sigmoid, Xavier", sigmoid, np.sqrt(1.0 / n)), ("relu, He", relu, np.sqrt(2.0 / n)),
               ("tanh, Xavier", np.tanh, np.sqrt(1.0 / n))]
    results = {}
    for name, f, scale in configs:
        x = x0
        acts = []
        for i in range(5):
            w = np.random.randn(n, n) * scale
            x = f(np.dot(x, w))
            acts.append(x)
        results[name] = acts
        print("%-18s " % name + "  ".join("L%d mean %.3f std %.3f" % (i + 1, a.mean(), a.std())
                                          for i, a in enumerate(acts)))
    plt = _plt(args)
    if plt is not None:
        fig, axes = plt.subplots(len(configs), 5, figsize=(12, 2.2 * len(configs)))
        for r, (name, acts) in enumerate(results.items()):
            for i, a in enumerate(acts):
                ax = axes[r][i]
                rng = (0, 1) if "sigmoid" in name else ((-1, 1) if "tanh" in name else (0, 3))
                ax.hist(a.flatten(), 30, range=rng)
                ax.set_title("%s: layer %d" % (name, i + 1) if i == 0 else "layer %d" % (i + 1),
                             fontsize=8)
                ax.set_yticks([])
        _save(plt, fig, args, "activations")
    return {k: [float(a.std()) for a in v] for k, v in results.items()}


def exp_batchnorm(args):
    from fastnn.multi_layer_net_extend import MultiLayerNetExtend
    from fastnn.optimizer import SGD
    (x_train, t_train), _ = _data(args)
    x_train, t_train = x_train[:1000], t_train[:1000]
    epochs = args.epochs or 20
    batch = 100
    iter_per_epoch = max(x_train.shape[0] // batch, 1)
    weights = np.logspace(0, -4, num=6)
    out = {}
    curves = []
    for w in weights:
        bn = MultiLayerNetExtend(x_train.shape[1], [100] * 5, 10, weight_init_std=w,
                                 use_batchnorm=True, dtype=args.dtype)
        plain = MultiLayerNetExtend(x_train.shape[1], [100] * 5, 10, weight_init_std=w,
                                    dtype=args.dtype)
        opt = SGD(lr=0.01)
        acc, bn_acc = [], []
        with np.errstate(all="ignore"):
            for i in range(epochs * iter_per_epoch):
                mask = np.random.choice(x_train.shape[0], batch)
                xb, tb = x_train[mask], t_train[mask]
                for net in (bn, plain):
                    opt.update(net.params, net.gradient(xb, tb))
                if i % iter_per_epoch == 0:
                    acc.append(float(plain.accuracy(x_train, t_train)))
                    bn_acc.append(float(bn.accuracy(x_train, t_train)))
        print("w=%-9.3g final train acc: without BN %.3f | with BN %.3f" % (w, acc[-1], bn_acc[-1]))
        out[float(w)] = {"without_bn": acc[-1], "with_bn": bn_acc[-1]}
        curves.append((w, acc, bn_acc))
    plt = _plt(args)
    if plt is not None:
        fig, axes = plt.subplots(2, 3, figsize=(10, 6))
        for ax, (w, acc, bn_acc) in zip(axes.flat, curves):
            ax.plot(bn_acc, label="Batch Normalization")
            ax.plot(acc, linestyle="--", label="Normal (without BatchNorm)")
            ax.set_title("W: %.4g" % w, fontsize=9)
            ax.set_ylim(0, 1.0)
        axes.flat[0].legend(fontsize=7)
        _save(plt, fig, args, "batchnorm")
    return out


def _overfit(args, name, make_nets, epochs_default=100):
    from fastnn.optimizer import SGD
    (x_train, t_train), (x_test, t_test) = _data(args)
    x_train, t_train = x_train[:300], t_train[:300]
    epochs = args.epochs or epochs_default
    results = {}
    plt = _plt(args)
    fig = plt.figure(figsize=(10, 4)) if plt is not None else None
    for j, (label, net) in enumerate(make_nets(x_train.shape[1])):
        opt = SGD(lr=0.01)
        batch = 100
        iter_per_epoch = max(x_train.shape[0] / batch, 1)
        train_acc, test_acc = [], []
        epoch_cnt = 0
        for i in range(1000000000):
            mask = np.random.choice(x_train.shape[0], batch)
            opt.update(net.params, net.gradient(x_train[mask], t_train[mask]))
            if i % iter_per_epoch == 0:
                train_acc.append(float(net.accuracy(x_train, t_train)))
                test_acc.append(float(net.accuracy(x_test, t_test)))
                epoch_cnt += 1
                if epoch_cnt >= epochs:
                    break
        print("%-22s epoch %d: train acc %.3f, test acc %.3f (gap %.3f)"
              % (label, epochs, train_acc[-1], test_acc[-1], train_acc[-1] - test_acc[-1]))
        results[label] = {"train_acc": train_acc[-1], "test_acc": test_acc[-1]}
        if plt is not None:
            ax = fig.add_subplot(1, 2, j + 1)
            ax.plot(train_acc, marker="o", markevery=10, label="train")
            ax.plot(test_acc, marker="s", markevery=10, label="test")
            ax.set_xlabel("epochs")
            ax.set_ylabel("accuracy")
            ax.set_ylim(0, 1.0)
            ax.set_title(label)
            ax.legend(loc="lower right")
    if plt is not None:
        _save(plt, fig, args, name)
    return results


def exp_weight_decay(args):
    from fastnn.multi_layer_net import MultiLayerNet

    def nets(n_in):
        for lam in (0, 0.1):
            yield ("weight decay %g" % lam,
                   MultiLayerNet(n_in, [100] * 6, 10, weight_decay_lambda=lam, dtype=args.dtype))
    return _overfit(args, "weight-decay", nets)


def exp_dropout(args):
    from fastnn.multi_layer_net_extend import MultiLayerNetExtend

    def nets(n_in):
        yield "no dropout", MultiLayerNetExtend(n_in, [100] * 6, 10, dtype=args.dtype)
        yield "dropout 0.2", MultiLayerNetExtend(n_in, [100] * 6, 10, use_dropout=True,
                                                 dropout_ration=0.2, dtype=args.dtype)
    return _overfit(args, "dropout", nets)


def exp_hyperparams(args):
    from fastnn.multi_layer_net import MultiLayerNet
    from fastnn.trainer import Trainer
    from fastnn.util import shuffle_dataset
    (x_train, t_train), _ = _data(args)
    x_train, t_train = x_train[:500], t_train[:500]
    x_train, t_train = shuffle_dataset(x_train, t_train)
    validation_num = int(x_train.shape[0] * 0.20)
    x_val, t_val = x_train[:validation_num], t_train[:validation_num]
    x_train, t_train = x_train[validation_num:], t_train[validation_num:]
    epochs = args.epochs or 30
    results_val, results_train = {}, {}
    for _ in range(args.trials):
        weight_decay = 10 ** np.random.uniform(-8, -4)
        lr = 10 ** np.random.uniform(-6, -2)
        net = MultiLayerNet(x_train.shape[1], [100] * 6, 10, weight_decay_lambda=weight_decay,
                            dtype=args.dtype)
        trainer = Trainer(net, x_train, t_train, x_val, t_val, epochs=epochs,
                          mini_batch_size=100, optimizer='sgd', optimizer_param={'lr': lr},
                          verbose=False, progress=False)
        trainer.train()
        val_acc = trainer.test_acc_list
        print("val acc:" + str(val_acc[-1]) + " | lr:" + str(lr) + ", weight decay:"
              + str(weight_decay))
        key = "lr:" + str(lr) + ", weight decay:" + str(weight_decay)
        results_val[key] = val_acc
        results_train[key] = trainer.train_acc_list
    print("=========== Hyper-Parameter Optimization Result ===========")
    ranked = sorted(results_val.items(), key=lambda x: x[1][-1], reverse=True)
    for i, (key, val_acc) in enumerate(ranked[:5]):
        print("Best-" + str(i + 1) + "(val acc:" + str(val_acc[-1]) + ") | " + key)
    plt = _plt(args)
    if plt is not None:
        n = min(len(ranked), 20)
        cols = 5
        rows = max(1, int(np.ceil(n / cols)))
        fig = plt.figure(figsize=(12, 2.4 * rows))
        for i, (key, val_acc) in enumerate(ranked[:n]):
            ax = fig.add_subplot(rows, cols, i + 1)
            ax.set_title("Best-" + str(i + 1), fontsize=8)
            ax.set_ylim(0.0, 1.0)
            if i % cols:
                ax.set_yticks([])
            ax.set_xticks([])
            ax.plot(val_acc)
            ax.plot(results_train[key], "--")
        _save(plt, fig, args, "hyperparams")
    return {k: v[-1] for k, v in ranked[:5]}


_RUNNERS = {"optimizers": exp_optimizers, "weight-init": exp_weight_init,
            "activations": exp_activations, "batchnorm": exp_batchnorm,
            "weight-decay": exp_weight_decay, "dropout": exp_dropout,
            "hyperparams": exp_hyperparams}


def run(args):
    names = NAMES if args.name == "all" else (args.name,)
    for name in names:
        np.random.seed(args.seed)
        print("## experiment %s (%s)" % (name, args.dataset))
        _RUNNERS[name](args)
    return 0
