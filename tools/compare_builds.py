"""Compare fastnn builds on this machine: the portable wheel (run-time SIMD dispatch), the same
wheel with the baseline path forced (FASTNN_SIMD=baseline), and a local -march=native build.

Each build lives in its own virtual environment; the bench scripts run in each, rounds
alternating between builds, and the table reports fastnn's best per-round median per row and the ratio to
the first build. Only the fastnn column is compared (torch is skipped).

Usage:
  python tools/compare_builds.py --build wheel=/path/venvA/bin/python \
      --build baseline=/path/venvA/bin/python:FASTNN_SIMD=baseline \
      --build native=/path/venvB/bin/python [--scripts bench_layers,bench_dropout] [--rounds 3]
tools/compare_builds.sh makes the environments and calls this.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.join(os.path.dirname(HERE), "bench")


def parse_build(text):
    label, _, rest = text.partition("=")
    python, *envs = rest.split(":")
    env = dict(e.split("=", 1) for e in envs)
    return label, python, env


def run(python, env, script, extra):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    cmd = [python, os.path.join(BENCH, script + ".py"), "--no-torch", "--json", out] + extra
    subprocess.run(cmd, check=True, cwd="/", env=dict(os.environ, **env),
                   stdout=subprocess.DEVNULL)
    with open(out) as f:
        rows = json.load(f)["rows"]
    os.unlink(out)
    return {(r["kernel"], r["size"], r["threads"]): r["ms"]["fastnn"] for r in rows}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", action="append", required=True, help="label=python[:VAR=VALUE...]")
    p.add_argument("--scripts", default="bench_layers,bench_batchnorm,bench_dropout,bench_optim")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", default="1")
    args = p.parse_args()
    builds = [parse_build(b) for b in args.build]
    times = {label: {} for label, _, _ in builds}
    for r in range(args.rounds):
        for script in args.scripts.split(","):
            for label, python, env in (builds if r % 2 == 0 else builds[::-1]):
                print("round %d: %s on %s" % (r + 1, script, label), file=sys.stderr, flush=True)
                for key, ms in run(python, env, script,
                                   ["--threads", args.threads, "--repeats", "7"]).items():
                    times[label].setdefault(key, []).append(ms)
    labels = [b[0] for b in builds]
    first = labels[0]
    print("%-28s %-16s %3s " % ("kernel", "size", "thr") +
          " ".join("%12s" % ("%s ms" % l) for l in labels) +
          " " + " ".join("%12s" % ("%s/%s" % (l, first)) for l in labels[1:]))
    for key in times[first]:
        # each round gives a median; the best round is the least disturbed by the noisy machine
        med = {l: min(times[l][key]) for l in labels if key in times[l]}
        print("%-28s %-16s %3d " % key + " ".join("%12.3f" % med[l] for l in labels) + " " +
              " ".join("%12.2f" % (med[l] / med[first]) for l in labels[1:]))


if __name__ == "__main__":
    main()
