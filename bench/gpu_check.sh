#!/usr/bin/env bash
# GPU check, a few minutes on a machine with python3 + numpy + numba + cupy + numba-cuda + pytest
# preinstalled (nothing is downloaded): runs from the source tree, prints the device, runs the
# GPU-marked tests, then the quick benchmark table of every suite on CUDA.  Results (info,
# JUnit XML, bench JSON, logs) go to $OUT when it is set.
#   usage: bench/gpu_check.sh [SUITE...]       (default: all suites; `ring` adds `ring-tc` on CUDA)
#   env:   PYTHON (default python3), OUT, TEST_TIMEOUT (s, default 180), BENCH_TIMEOUT (s, default 360)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
export HECRYPT_DEVICE=cuda
PY=${PYTHON:-python3}
OUT=${OUT:-}
[ -n "$OUT" ] && mkdir -p "$OUT"
out() { [ -n "$OUT" ] && echo "$OUT/$1" || echo /dev/null; }

echo "== device"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$(out nvidia-smi.txt)" || true
"$PY" -c "import sys, numpy, numba; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__)"
"$PY" -m hecrypt.cli info ${OUT:+--json "$OUT/info.json"} 2>&1 | tee "$(out info.txt)"
"$PY" -c "from hecrypt.backend import cuda_status; ok, why = cuda_status(); print('cuda usable:', ok, '-', why); raise SystemExit(0 if ok else 1)" \
  || { echo "no usable CUDA device: stopping"; exit 2; }

echo "== GPU tests (pytest -m gpu tests/)"
timeout "${TEST_TIMEOUT:-180}" "$PY" -m pytest -q -m gpu tests/ -p no:cacheprovider --continue-on-collection-errors \
  -o addopts="-ra" ${OUT:+--junitxml "$OUT/gpu_tests.xml"} 2>&1 | tee "$(out gpu_tests.txt)"
rc_tests=${PIPESTATUS[0]}

echo "== quick benchmarks on cuda: ${*:-all suites}"
timeout "${BENCH_TIMEOUT:-360}" "$PY" -m hecrypt.cli bench "$@" --quick --device cuda -v \
  ${OUT:+--json "$OUT/bench_quick.json"} 2>&1 | tee "$(out bench_quick.txt)"
rc_bench=${PIPESTATUS[0]}

echo "== gpu_check: tests exit $rc_tests, bench exit $rc_bench (124 = timed out)"
[ "$rc_tests" -eq 0 ] && [ "$rc_bench" -eq 0 ]
