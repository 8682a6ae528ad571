"""Build the compiled extensions of fastnn (metadata lives in pyproject.toml).

Each ``fastnn/_<name>.pyx`` wrapper is built together with its C kernel family ``csrc/<name>.c``.

Environment switches:
  FASTNN_NO_OPENMP=1       build without OpenMP (kernels then run on one thread)
  FASTNN_CYTHON_DEBUG=1    turn Cython's bounds/wraparound/initialised checks back on
  FASTNN_MARCH_NATIVE=1    add -march=native (local comparison builds only; never for wheels)
  FASTNN_BUILD_ONLY=a,b    development: build only these modules (e.g. _affine,_runtime)
  FASTNN_KEEP_SYMBOLS=1    do not strip the modules (for profilers such as perf)
"""
import glob
import os
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))

# extension module -> C sources of its kernel family
KERNELS = {
    "_runtime": ["csrc/runtime.c"],
    "_layerstate": [],      # (no kernels: the layers' per-step state as C members)
    "_affine": ["csrc/affine.c", "csrc/gemm.c"],
    "_activations": ["csrc/activations.c"],
    "_softmax_xent": ["csrc/softmax_xent.c"],
    "_dropout": ["csrc/dropout.c"],
    "_optim": ["csrc/optim.c"],
    "_batchnorm": ["csrc/batchnorm.c"],
    # a network's whole training pass, calling the kernel families above (its own copy of them)
    "_netstep": ["csrc/netstep.c", "csrc/gemm.c", "csrc/affine.c", "csrc/activations.c",
                 "csrc/batchnorm.c", "csrc/dropout.c", "csrc/softmax_xent.c", "csrc/optim.c"],
}


def _flag_on(name):
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


def openmp_flags():
    """Compile-and-link probe for OpenMP: returns the flag list, or [] if unavailable."""
    if _flag_on("FASTNN_NO_OPENMP"):
        return []
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()
    if sys.platform == "darwin":
        candidates = [["-Xpreprocessor", "-fopenmp", "-lomp"], ["-fopenmp"]]
    elif sys.platform == "win32":
        return ["/openmp"]
    else:
        candidates = [["-fopenmp"]]
    src = "#include <omp.h>\nint main(void){int n=0;\n#pragma omp parallel\n{n=omp_get_num_threads();}\nreturn n<1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(src)
        for flags in candidates:
            try:
                res = subprocess.run(cc + [path, "-o", os.path.join(tmp, "probe")] + flags,
                                     capture_output=True)
            except OSError:
                return []
            if res.returncode == 0:
                return flags
    print("fastnn: OpenMP not available, building single-threaded kernels", file=sys.stderr)
    return []


def extensions():
    omp = openmp_flags()
    if sys.platform == "win32":
        cflags = ["/O2", "/fp:precise"] + omp
        ldflags = []
    else:
        # -fno-math-errno: GCC keeps sqrt/exp loops scalar without it. -fno-trapping-math: lets
        # GCC if-convert float selects (clamps, masks) below AVX-512, so those loops vectorise
        # on the AVX2 and SSE2 paths too; results and NaN/Inf semantics are unchanged (fastnn
        # never enables floating-point traps).
        cflags = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-std=gnu11", "-g0"]
        if _flag_on("FASTNN_MARCH_NATIVE"):
            cflags.append("-march=native")
        cflags += [f for f in omp if f.startswith("-f") or f.startswith("-X")]
        if not omp:
            cflags.append("-fopenmp-simd")   # keep `omp simd` loops vectorised without OpenMP
        strip = sys.platform.startswith("linux") and not _flag_on("FASTNN_KEEP_SYMBOLS")
        ldflags = ["-s"] + omp if strip else omp
    build_desc = " ".join(cflags)
    macros = [
        ("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION"),
        ("FNN_BUILD_CFLAGS", '"%s"' % build_desc),
    ]
    only = [m for m in os.environ.get("FASTNN_BUILD_ONLY", "").split(",") if m]
    exts = []
    for name, sources in KERNELS.items():
        if only and name not in only:
            continue
        exts.append(Extension(
            "fastnn." + name,
            sources=["fastnn/%s.pyx" % name] + sources,
            include_dirs=["csrc", np.get_include()],
            depends=sorted(glob.glob("csrc/*.h")) + glob.glob("fastnn/*.pxd"),  # rebuild on header edits
            define_macros=macros,
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        ))
    debug = _flag_on("FASTNN_CYTHON_DEBUG")
    return cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "boundscheck": debug,
            "wraparound": debug,
            "initializedcheck": debug,
            "cdivision": True,
            "embedsignature": True,
        },
        nthreads=0,
    )


setup(ext_modules=extensions())
