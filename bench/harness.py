"""Shared benchmark harness (DESIGN.md §6).

A bench script builds a list of :class:`Case` (one kernel at one size, with a callable per
implementation) and calls :func:`main`, which, in one run:

- measures this machine's ceilings at each thread count: an in-place streaming probe
  (``a += alpha*b``, 12 B/element float32, fastnn's own OpenMP kernel) and a large SGEMM
  (SciPy's BLAS, the one fastnn's GEMMs call);
- runs every case at 1 and 2 threads (fastnn kernels, BLAS and torch all limited alike);
- alternates the implementations round by round, takes medians after warm-up;
- prints the speed-ups of fastnn over the reference and over PyTorch, and the achieved GB/s or
  GFLOP/s as a percentage of the ceiling; ``--json`` writes the same as JSON.

Timings on shared machines are noisy: quote the ratios and medians from one run.
"""
import argparse
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

# One process holds several thread pools here: fastnn's OpenMP, NumPy's and SciPy's OpenBLAS
# copies and torch's OpenMP. OpenBLAS threads busy-wait for up to ~0.1 s after each call, so when
# implementations alternate, the previous one's BLAS threads steal the two cores from the next
# (a 100x784x100 Affine then took 4x longer): make both OpenBLAS copies sleep at once when idle
# (this must be set before they load). fastnn's own OpenMP workers already sleep when idle (see
# fastnn/__init__.py). torch's OpenMP pool keeps its default policy -- a passive pool made its
# two-thread small ops 7x slower -- and its short spin ends in the pause time_alternating leaves
# between implementations. A user's explicit settings win.
if "numpy" in sys.modules:
    print("harness: import harness before numpy, or NumPy's BLAS threads keep busy-waiting",
          file=sys.stderr)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn import _runtime  # noqa: E402

try:  # PyTorch is a comparison only, never a dependency
    if os.environ.get("FASTNN_BENCH_NO_TORCH"):
        raise ImportError
    import torch
except ImportError:
    torch = None


@dataclass
class Case:
    """One kernel at one size.

    impls maps an implementation name ("reference", "fastnn", "torch", or others) to a callable
    with no arguments doing one operation; None entries are skipped. ``bytes`` is the minimal
    number of bytes the operation must read and write, ``flops`` its floating-point operations
    (either may be None). ``setup`` (optional) is called once per thread count before timing.
    ``min_round``: least duration of one timed round (calls back to back; see
    :func:`time_alternating`).
    """
    kernel: str
    size: str
    impls: dict
    bytes: float = None
    flops: float = None
    setup: object = None
    min_round: float = 2e-3
    extra: dict = field(default_factory=dict)


def parse_args(description, argv=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per case")
    p.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if importable")
    p.add_argument("--json", metavar="FILE", nargs="?", const="-", default=None,
                   help="write results as JSON to FILE (or stdout with no FILE)")
    p.add_argument("--filter", default=None, help="only cases whose kernel name contains this")
    args = p.parse_args(argv)
    args.thread_counts = [int(t) for t in args.threads.split(",") if t]
    if args.repeats is None:
        args.repeats = 7 if args.quick else 21
    return args


@contextmanager
def threads(n):
    """Limit fastnn kernels, every loaded BLAS and torch to n threads."""
    from threadpoolctl import threadpool_limits
    old = fastnn.get_num_threads()
    old_torch = torch.get_num_threads() if torch is not None else None
    _runtime.set_kernel_threads(n)
    if torch is not None:
        torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        _runtime.set_kernel_threads(old)
        if torch is not None:
            torch.set_num_threads(old_torch)


def _call_time(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


PAUSE = 0.002   # seconds between implementations (outside the timed calls)


def time_alternating(impls, repeats, warmup=2, min_round=2e-3, stat=np.median):
    """Median (or ``stat``) seconds per call for each callable, alternating them round by round.

    Each round calls every implementation ``inner`` times in a row, where ``inner`` is chosen so
    a round lasts at least ``min_round`` seconds for the fastest one (short calls are batched).
    """
    names = [k for k, f in impls.items() if f is not None]
    for _ in range(warmup):
        for k in names:
            impls[k]()
    probe = {k: max(_call_time(impls[k], 1), 1e-7) for k in names}
    inner = {k: max(1, int(min_round / probe[k])) for k in names}
    samples = {k: [] for k in names}
    for r in range(repeats):
        order = names if r % 2 == 0 else names[::-1]
        for k in order:
            time.sleep(PAUSE)    # let the previous implementation's thread pools go idle
            samples[k].append(_call_time(impls[k], inner[k]))
    return {k: float(stat(v)) for k, v in samples.items()}


def measure_ceilings(n_threads, quick=False):
    """In-place bandwidth (GB/s, float32 a += alpha*b) and SGEMM GFLOP/s at n_threads.

    A ceiling is the best the machine does, so this takes the fastest round, not the median."""
    from scipy.linalg.blas import sgemm
    n = (1 << 22) if quick else (1 << 24)
    a = np.ones(n, np.float32)
    b = np.ones(n, np.float32)
    m = 1024 if quick else 2048
    A = np.asfortranarray(np.random.rand(m, m).astype(np.float32))
    B = np.asfortranarray(np.random.rand(m, m).astype(np.float32))
    C = np.asfortranarray(np.zeros((m, m), np.float32))
    with threads(n_threads):
        t = time_alternating({
            "bw": lambda: _runtime.stream_axpy(a, b, 1e-7, n_threads),
            "gemm": lambda: sgemm(1.0, A, B, 0.0, C, overwrite_c=1),
        }, repeats=5 if quick else 9, stat=np.min)
    return {"bandwidth_GBps": 12.0 * n / t["bw"] / 1e9, "gemm_GFLOPs": 2.0 * m ** 3 / t["gemm"] / 1e9}


def machine_description():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "simd_path": _runtime.simd_path(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "fastnn": fastnn.__version__,
        "torch": getattr(torch, "__version__", None),
    }


def _fmt_ms(s):
    return "%.3f" % (s * 1e3) if s is not None else "-"


def _fmt_ratio(r):
    return "%.2fx" % r if r is not None else "-"


def run_cases(cases, args):
    """Time every case at every thread count; returns a list of result rows (dicts)."""
    rows = []
    ceilings = {}
    for nt in args.thread_counts:
        ceilings[nt] = measure_ceilings(nt, args.quick)
        for case in cases:
            if args.filter and args.filter not in case.kernel:
                continue
            impls = dict(case.impls)
            if args.no_torch:
                impls.pop("torch", None)
            with threads(nt):
                if case.setup is not None:
                    case.setup()
                t = time_alternating(impls, args.repeats, min_round=case.min_round)
            fast = t.get("fastnn")
            row = {"kernel": case.kernel, "size": case.size, "threads": nt,
                   "ms": {k: v * 1e3 for k, v in t.items()}}
            row["speedup_vs_reference"] = t["reference"] / fast if fast and "reference" in t else None
            row["speedup_vs_torch"] = t["torch"] / fast if fast and "torch" in t else None
            row["GBps"] = case.bytes / fast / 1e9 if fast and case.bytes else None
            row["GFLOPs"] = case.flops / fast / 1e9 if fast and case.flops else None
            if row["GBps"] is not None:
                row["pct_ceiling"] = 100.0 * row["GBps"] / ceilings[nt]["bandwidth_GBps"]
            elif row["GFLOPs"] is not None:
                row["pct_ceiling"] = 100.0 * row["GFLOPs"] / ceilings[nt]["gemm_GFLOPs"]
            else:
                row["pct_ceiling"] = None
            row.update(case.extra)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows, ceilings


HEADER = "%-30s %-16s %3s %10s %10s %10s %9s %9s %16s" % (
    "kernel", "size", "thr", "ref ms", "fastnn ms", "torch ms", "vs ref", "vs torch", "of ceiling")


def format_row(row):
    ms = row["ms"]
    if row["GBps"] is not None:
        ceil = "%.1f GB/s %3.0f%%" % (row["GBps"], row["pct_ceiling"])
    elif row["GFLOPs"] is not None:
        ceil = "%.1f GF/s %3.0f%%" % (row["GFLOPs"], row["pct_ceiling"])
    else:
        ceil = "-"
    others = "".join("  %s %.3f ms" % (k, v) for k, v in ms.items()
                     if k not in ("reference", "fastnn", "torch"))
    return "%-30s %-16s %3d %10s %10s %10s %9s %9s %16s%s" % (
        row["kernel"], row["size"], row["threads"],
        _fmt_ms(ms.get("reference", 0) / 1e3 if "reference" in ms else None),
        _fmt_ms(ms.get("fastnn", 0) / 1e3 if "fastnn" in ms else None),
        _fmt_ms(ms.get("torch", 0) / 1e3 if "torch" in ms else None),
        _fmt_ratio(row["speedup_vs_reference"]), _fmt_ratio(row["speedup_vs_torch"]), ceil, others)


def main(description, make_cases, argv=None):
    """Parse arguments, build the cases, run them, print the table (and JSON with --json)."""
    args = parse_args(description, argv)
    if args.no_torch:
        global torch
        torch = None
    machine = machine_description()
    print("# %s" % description)
    print("# %s, %s cores, SIMD %s, numpy %s, torch %s" % (
        machine["cpu"], machine["cores"], machine["simd_path"], machine["numpy"], machine["torch"]))
    cases = make_cases(args)
    print(HEADER)
    rows, ceilings = run_cases(cases, args)
    for nt, c in ceilings.items():
        print("# ceilings at %d thread(s): in-place bandwidth %.1f GB/s, SGEMM %.1f GFLOP/s"
              % (nt, c["bandwidth_GBps"], c["gemm_GFLOPs"]))
    if args.json is not None:
        out = {"description": description, "machine": machine,
               "ceilings": {str(k): v for k, v in ceilings.items()}, "rows": rows}
        text = json.dumps(out, indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    return rows
