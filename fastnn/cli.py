"""The ``fastnn`` command: ``train``, ``bench``, ``gradcheck``, ``experiment``, ``config``.

Run ``fastnn -h`` or ``fastnn SUBCOMMAND -h`` (also ``python -m fastnn ...``).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


# ------------------------------------------------------------------------------------ helpers

def _load_dataset(name, one_hot=False):
    if name == "digits":
        from fastnn.dataset import load_digits
        return load_digits(normalize=True, one_hot_label=one_hot)
    if name == "mnist":
        from fastnn.dataset import load_mnist
        return load_mnist(normalize=True, one_hot_label=one_hot)
    raise SystemExit("unknown dataset %r (choose digits or mnist)" % name)


def _int_list(text):
    try:
        vals = [int(v) for v in text.replace("x", ",").split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected comma-separated integers, e.g. 100,100,100")
    if not vals or min(vals) <= 0:
        raise argparse.ArgumentTypeError("hidden sizes must be positive integers")
    return vals


def _hidden(text):
    """'100,100,100' or '100x3' (three layers of 100)."""
    text = text.strip()
    if "x" in text and "," not in text:
        size, _, count = text.partition("x")
        try:
            size, count = int(size), int(count)
        except ValueError:
            raise argparse.ArgumentTypeError("expected e.g. 100x3 or 100,100,100")
        if size <= 0 or count <= 0:
            raise argparse.ArgumentTypeError("hidden sizes must be positive integers")
        return [size] * count
    return _int_list(text)


def _weight_init(text):
    try:
        return float(text)
    except ValueError:
        if text.lower() not in ("relu", "he", "sigmoid", "xavier"):
            raise argparse.ArgumentTypeError("expected relu/he, sigmoid/xavier or a number")
        return text


# -------------------------------------------------------------------------------------- train

def _build_net(args, input_size, output_size, reference=False):
    if reference:
        from fastnn.reference.multi_layer_net_extend import MultiLayerNetExtend
        kw = {}
    else:
        from fastnn.multi_layer_net_extend import MultiLayerNetExtend
        kw = {"dtype": args.dtype}
    return MultiLayerNetExtend(
        input_size, list(args.hidden), output_size, activation=args.activation,
        weight_init_std=args.weight_init, weight_decay_lambda=args.weight_decay,
        use_dropout=args.dropout > 0, dropout_ration=args.dropout,
        use_batchnorm=not args.no_batchnorm, **kw)


def _run_training(args, data, reference=False, progress=None):
    (x_train, t_train), (x_test, t_test) = data
    if reference:
        from fastnn.reference.trainer import Trainer
        extra = {}
    else:
        from fastnn.trainer import Trainer
        extra = {"progress": progress}
        if not reference and np.dtype(args.dtype) == np.float32:
            x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    np.random.seed(args.seed)
    n_out = int(max(t_train.max(), t_test.max())) + 1
    net = _build_net(args, x_train.shape[1], max(n_out, 2), reference=reference)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param={"lr": args.lr}, evaluate_sample_num_per_epoch=None,
                      verbose=False, **extra)
    t0 = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t0
    train_acc = float(net.accuracy(x_train, t_train))
    test_acc = float(net.accuracy(x_test, t_test))
    return {"train_acc": train_acc, "test_acc": test_acc, "seconds": seconds,
            "steps": trainer.max_iter,
            "steps_per_second": trainer.max_iter / seconds if seconds > 0 else float("inf"),
            "final_loss": float(trainer.train_loss_list[-1]) if trainer.train_loss_list else None}


def _set_threads(n):
    import fastnn
    import fastnn.layers  # noqa: F401  (loads SciPy's BLAS first, so that the limit reaches it)
    fastnn.set_num_threads(n)


def cmd_train(args):
    import fastnn
    data = _load_dataset(args.dataset)
    (x_train, _), (x_test, _) = data
    if args.threads is None:
        # small GEMMs (batch 100, layers of 100) lose with more threads: one thread unless large
        width = max([x_train.shape[1]] + list(args.hidden))
        args.threads = 1 if args.batch_size * width * max(args.hidden) < 5e7 else os.cpu_count()
    _set_threads(args.threads)
    desc = ("MultiLayerNetExtend %d-%s-%d, %s, %s%s%s, %s lr=%g, batch %d, %d epochs, %s, "
            "%d thread(s)" % (
                x_train.shape[1], "-".join(str(h) for h in args.hidden),
                int(max(data[0][1].max(), data[1][1].max())) + 1, args.activation,
                "BatchNorm" if not args.no_batchnorm else "no BatchNorm",
                ", dropout %g" % args.dropout if args.dropout > 0 else "",
                ", weight decay %g" % args.weight_decay if args.weight_decay else "",
                args.optimizer, args.lr, args.batch_size, args.epochs, args.dtype,
                fastnn.get_num_threads()))
    if not args.json:
        print("fastnn train: %s (%d train / %d test samples)" % (args.dataset, len(x_train),
                                                                   len(x_test)))
        print("  " + desc)
    progress = None if not args.no_progress else False
    if args.json:
        progress = False
    res = _run_training(args, data, progress=progress)
    summary = {"dataset": args.dataset, "config": desc, "dtype": args.dtype,
               "threads": fastnn.get_num_threads(), **res}
    if not args.json:
        print("  train acc %.4f  test acc %.4f  |  %d steps in %.2f s (%.0f steps/s)"
              % (res["train_acc"], res["test_acc"], res["steps"], res["seconds"],
                 res["steps_per_second"]))
    if args.compare:
        if not args.json:
            print("  rerunning on the reference (the book's NumPy code, float64) ...")
        ref = _run_training(args, data, reference=True)
        summary["reference"] = ref
        summary["speedup"] = ref["seconds"] / res["seconds"] if res["seconds"] > 0 else None
        if not args.json:
            print("  reference: train acc %.4f  test acc %.4f  |  %d steps in %.2f s "
                  "(%.0f steps/s)" % (ref["train_acc"], ref["test_acc"], ref["steps"],
                                      ref["seconds"], ref["steps_per_second"]))
            print("  speed-up: %.2fx" % summary["speedup"])
    if args.json:
        print(json.dumps(summary, indent=1))
    return 0


# -------------------------------------------------------------------------------------- bench

def _bench_dir():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    d = os.path.join(here, "bench")
    return d if os.path.isfile(os.path.join(d, "harness.py")) else None


def _builtin_bench(args):
    """End-to-end step benchmark of the ch.6 network (no bench/ directory needed)."""
    import fastnn
    from fastnn.multi_layer_net_extend import MultiLayerNetExtend
    from fastnn.optimizer import Adam
    from fastnn.reference.multi_layer_net_extend import MultiLayerNetExtend as RefNet
    from fastnn.reference.optimizer import Adam as RefAdam
    sizes = [784] + [100] * 6 + [10]
    rng = np.random.default_rng(0)
    print("%-30s %4s %12s %12s %9s" % ("one training step (fwd+bwd+Adam)", "thr", "reference ms",
                                        "fastnn ms", "speed-up"))
    old = fastnn.get_num_threads()
    rows = []
    try:
        for nt in args.thread_counts:
            fastnn.set_num_threads(nt)
            for dtype in (np.float32, np.float64):
                x = rng.random((100, 784)).astype(dtype)
                t = rng.integers(0, 10, 100)
                np.random.seed(0)
                fast = MultiLayerNetExtend(784, sizes[1:-1], 10, use_batchnorm=True,
                                           use_dropout=True, dropout_ration=0.15, dtype=dtype)
                np.random.seed(0)
                ref = RefNet(784, sizes[1:-1], 10, use_batchnorm=True, use_dropout=True,
                             dropout_ration=0.15)
                fo, ro = Adam(), RefAdam()
                impls = {"reference": lambda: ro.update(ref.params, ref.gradient(x, t)),
                         "fastnn": lambda: fast.train_step(x, t, fo)}   # as the Trainer
                times = {k: [] for k in impls}
                for k, f in impls.items():
                    for _ in range(3):
                        f()
                for r in range(args.repeats):
                    for k, f in impls.items():
                        # NumPy's OpenBLAS threads busy-wait ~0.1 s after the book's code; let
                        # them go idle so they do not take the cores of the next block
                        time.sleep(0.15)
                        t0 = time.perf_counter()
                        for _ in range(10):
                            f()
                        times[k].append((time.perf_counter() - t0) / 10)
                med = {k: float(np.median(v)) for k, v in times.items()}
                row = {"kernel": "train step %s" % np.dtype(dtype).name, "threads": nt,
                       "ms": {k: v * 1e3 for k, v in med.items()},
                       "speedup_vs_reference": med["reference"] / med["fastnn"]}
                rows.append(row)
                print("%-30s %4d %12.3f %12.3f %8.2fx" % (row["kernel"], nt, row["ms"]["reference"],
                                                          row["ms"]["fastnn"],
                                                          row["speedup_vs_reference"]))
    finally:
        fastnn.set_num_threads(old)
    return rows


def cmd_bench(args):
    args.thread_counts = [int(t) for t in args.threads.split(",") if t]
    bdir = _bench_dir()
    if bdir is None or args.builtin:
        rows = _builtin_bench(args)
        if args.json:
            print(json.dumps(rows, indent=1))
        return 0
    scripts = sorted(f for f in os.listdir(bdir) if f.startswith("bench_") and f.endswith(".py"))
    if args.only:
        scripts = [s for s in scripts if any(o in s for o in args.only.split(","))]
    status = 0
    for s in scripts:
        cmd = [sys.executable, os.path.join(bdir, s), "--threads", args.threads]
        if args.quick:
            cmd.append("--quick")
        if args.no_torch:
            cmd.append("--no-torch")
        print("$ " + " ".join(cmd[1:]), flush=True)
        rc = subprocess.call(cmd)
        status = status or rc
        print(flush=True)
    return status


# ---------------------------------------------------------------------------------- gradcheck

def cmd_gradcheck(args):
    from fastnn.gradcheck import run_all
    ok = run_all(seed=args.seed, verbose=True)
    return 0 if ok else 1


# --------------------------------------------------------------------------------- experiment

def cmd_experiment(args):
    from fastnn import experiments
    return experiments.run(args)


def cmd_config(args):
    import fastnn
    fastnn.show_config()
    return 0


# ------------------------------------------------------------------------------------ parser

def build_parser():
    p = argparse.ArgumentParser(prog="fastnn", description="fastnn: the book's networks, compiled.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train MultiLayerNetExtend (default: digits, BatchNorm, Adam)",
                       description="Train MultiLayerNetExtend with the book's Trainer and report "
                                   "accuracy, time and steps/s.")
    t.add_argument("--dataset", choices=["digits", "mnist"], default="digits",
                   help="digits: scikit-learn's bundled 8x8 digits (offline, default); mnist: "
                        "IDX files in $FASTNN_DATA_DIR (downloaded when missing)")
    t.add_argument("--hidden", type=_hidden, default=[100, 100, 100],
                   help="hidden layer sizes, e.g. 100,100,100 or 100x3 (default 100x3)")
    t.add_argument("--activation", choices=["relu", "sigmoid"], default="relu")
    t.add_argument("--weight-init", type=_weight_init, default="relu",
                   help="relu/he, sigmoid/xavier or a number (default relu)")
    t.add_argument("--optimizer", default="adam",
                   choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
    t.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.001 for adam, 0.01 otherwise)")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=100)
    t.add_argument("--dropout", type=float, default=0.0, help="dropout ratio (0: no dropout)")
    t.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay lambda")
    t.add_argument("--no-batchnorm", action="store_true", help="train without BatchNorm")
    t.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="float64 (the book's, default) or float32")
    t.add_argument("--threads", type=int, default=None, help="kernel and BLAS threads (default: 1 for small networks, "
                        "all cores for large ones)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--compare", action="store_true",
                   help="repeat the run on the reference (the book's NumPy code) and print the "
                        "speed-up")
    t.add_argument("--json", action="store_true", help="print a JSON summary only")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    b = sub.add_parser("bench", help="kernel and end-to-end benchmark table",
                       description="Run the bench/ scripts (a source checkout) or the built-in "
                                   "end-to-end training-step benchmark.")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--threads", default="1,2")
    b.add_argument("--no-torch", action="store_true")
    b.add_argument("--only", default=None, help="comma-separated substrings of script names")
    b.add_argument("--builtin", action="store_true", help="only the built-in step benchmark")
    b.add_argument("--repeats", type=int, default=7)
    b.add_argument("--json", action="store_true", help="(built-in benchmark) JSON output")
    b.set_defaults(func=cmd_bench)

    g = sub.add_parser("gradcheck", help="numerical vs backprop gradients of every layer and "
                                         "network")
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_gradcheck)

    from fastnn.experiments import NAMES, add_arguments
    e = sub.add_parser("experiment", help="chapter-6 experiments: " + ", ".join(NAMES),
                       description="The chapter-6 experiments on digits or MNIST: prints the "
                                   "numbers and writes PNG plots when matplotlib is installed.")
    add_arguments(e)
    e.set_defaults(func=cmd_experiment)

    c = sub.add_parser("config", help="show the build, threads, BLAS and compiled classes")
    c.set_defaults(func=cmd_config)
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if args.command == "train" and args.lr is None:
        args.lr = 0.001 if args.optimizer == "adam" else 0.01
    try:
        return args.func(args)
    except ImportError as e:
        print("fastnn %s: %s" % (args.command, e), file=sys.stderr)
        return 1
    except ValueError as e:
        from fastnn.dataset.mnist import MNISTError
        if isinstance(e, MNISTError):
            print("fastnn %s: %s" % (args.command, e), file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
