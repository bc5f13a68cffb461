#!/usr/bin/env bash
# GPU check: one script, a few minutes, for a machine with an NVIDIA GPU and python3 + numpy +
# numba + cupy + pytest preinstalled (nothing is downloaded).  Runs from the source tree
# (PYTHONPATH=., no install and no `hecrypt` console script needed):
#   1. device and versions (nvidia-smi, `python3 -m hecrypt.cli info`); stops (exit 2) when
#      CUDA is not usable;
#   2. builds the kernel fatbins with CMake + nvcc (sm_80, sm_90) when both are on the PATH,
#      and points hecrypt at them ($HECRYPT_FATBIN_DIR); on a failed build hecrypt compiles
#      the same sources with NVRTC instead;
#   3. every GPU-marked test (pytest -m gpu tests/);
#   4. the quick benchmark table on CUDA (`ring` is followed by its GPU companion `ring-tc`).
#
#   usage: bench/gpu_check.sh [SUITE...]      (default: every suite)
#   env:   PYTHON (python3)  OUT (results dir; unset: nothing kept)  BUDGET (s, 540: the whole run)
#          BUILD=0 (skip the fatbin build)  BUILD_TIMEOUT (s, 150)  TEST_TIMEOUT (s, 180)
#          BENCH_TIMEOUT (s, the rest of BUDGET)  BUILD_DIR (default under $TMPDIR)
#          WHEELS=DIR  extra wheels (e.g. cryptography, cffi, pycparser for that machine's
#                      Python) installed with pip --no-index into a private directory first
#   $OUT receives five files: gpu_check.log (everything printed), info.json, build.log,
#   gpu_tests.xml (JUnit) and bench_quick.json (rewritten after each suite, so a run cut
#   short by its time limit keeps the suites that finished).
#   exit: 0 all passed; 1 tests or a suite failed (124: timed out); 2 no usable GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export HECRYPT_DEVICE=cuda
PY=${PYTHON:-python3}
OUT=${OUT:-}
BUDGET=${BUDGET:-540}
T0=$SECONDS
[ -n "$OUT" ] && mkdir -p "$OUT"
out() { if [ -n "$OUT" ]; then echo "$OUT/$1"; else echo /dev/null; fi; }
left() { echo $((BUDGET - (SECONDS - T0))); }
# limit DEFAULT: the smaller of DEFAULT and what is left of the budget (at least 10 s)
limit() { local l; l=$(left); [ "$1" -lt "$l" ] && l=$1; [ "$l" -lt 10 ] && l=10; echo "$l"; }

main() {
if [ -n "${WHEELS:-}" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
  SITE=${TMPDIR:-/tmp}/hecrypt-gpu-check-site
  echo "== installing $(ls "$WHEELS"/*.whl | wc -l) wheel(s) from $WHEELS into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl && export PYTHONPATH="$PYTHONPATH:$SITE"
fi

echo "== device"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
command -v nvcc >/dev/null && nvcc --version | tail -n 2
"$PY" -c "import sys, numpy, numba; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__)"
"$PY" -c "import cryptography" 2>/dev/null \
  || echo "warning: the 'cryptography' package (a core dependency: the CPU ChaCha20 keystream) is missing;" \
          "tests that compare the GPU keystream with the CPU one use a slower reference or fail (set WHEELS to install it)"
"$PY" -c "from hecrypt.backend import cuda_status; ok, why = cuda_status(); print('cuda usable:', ok, '-', why); raise SystemExit(0 if ok else 1)" \
  || { "$PY" -m hecrypt.cli info ${OUT:+--json "$OUT/info.json"}; echo "no usable CUDA device: stopping"; exit 2; }

echo "== kernel fatbins (CMake + nvcc, sm_80 and sm_90)"
BUILD_DIR=${BUILD_DIR:-${TMPDIR:-/tmp}/hecrypt-gpu-check-build}
if [ "${BUILD:-1}" = 0 ]; then
  echo "skipped (BUILD=0): kernels are compiled with NVRTC on first use"
elif command -v cmake >/dev/null && command -v nvcc >/dev/null; then
  gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  [ -f "$BUILD_DIR/CMakeCache.txt" ] && ! grep -q "CMAKE_HOME_DIRECTORY:INTERNAL=$ROOT\$" "$BUILD_DIR/CMakeCache.txt" \
    && rm -rf "$BUILD_DIR"
  tb=$(limit "${BUILD_TIMEOUT:-150}")
  if timeout -k 10 "$tb" bash -c 'cmake -S "$1" -B "$2" "${@:4}" && cmake --build "$2" -j "$3"' _ \
       "$ROOT" "$BUILD_DIR" "$(nproc 2>/dev/null || echo 4)" "${gen[@]}" >"$(out build.log)" 2>&1; then
    export HECRYPT_FATBIN_DIR=$BUILD_DIR
    echo "built $(ls "$BUILD_DIR"/*.fatbin | wc -l) fatbins in $BUILD_DIR (HECRYPT_FATBIN_DIR)"
  else
    echo "fatbin build failed or timed out (limit ${tb} s; see build.log): hecrypt falls back to NVRTC"
  fi
else
  echo "cmake or nvcc not on the PATH: kernels are compiled with NVRTC on first use"
fi
"$PY" -m hecrypt.cli info ${OUT:+--json "$OUT/info.json"}

echo "== GPU tests (pytest -m gpu tests/)"
timeout -k 10 "$(limit "${TEST_TIMEOUT:-180}")" "$PY" -m pytest -q -m gpu tests/ -p no:cacheprovider \
  --continue-on-collection-errors -o addopts="-ra" --durations=10 ${OUT:+--junitxml "$OUT/gpu_tests.xml"}
rc_tests=$?

echo "== quick benchmarks on cuda: ${*:-all suites}"
tbench=$(limit "${BENCH_TIMEOUT:-100000}")
echo "(time limit ${tbench} s)"
timeout -k 10 "$tbench" "$PY" -m hecrypt.cli bench "$@" --quick --device cuda -v \
  ${OUT:+--json "$OUT/bench_quick.json"}
rc_bench=$?

echo "== gpu_check: tests exit $rc_tests, bench exit $rc_bench (124 = timed out), $((SECONDS - T0)) s in all"
[ "$rc_tests" -eq 0 ] && [ "$rc_bench" -eq 0 ]
}

if [ -n "$OUT" ]; then
  main "$@" 2>&1 | tee "$OUT/gpu_check.log"
  exit "${PIPESTATUS[0]}"
fi
main "$@"
