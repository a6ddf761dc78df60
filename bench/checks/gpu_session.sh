#!/usr/bin/env bash
# The one script of a GPU session: under 8 minutes on one H100 (about 4 when nothing hangs).
#
#   0. installs what the bare machine lacks: the wheels carried in .whl/ (made here, where pip works,
#      by `DMC=1 bash bench/checks/gpu_wheels.sh`), and this checkout, editable, without deps;
#   1. times the policy-ensemble update at paper scale (5 x 4 members, 256 wide, batch 256, obs 24,
#      act 6: walker-walk), eager against CUDA graphs, the hand-written update and torch.compile,
#      each checked against eager's numbers (bench/speed/bench_update_capture.py), alone on the GPU;
#   2. side by side: pytest tests/test_cuda.py (with the replay's CUDA test; the training runs of
#      every variant on 6 workers) and bench/checks/cuda_check.sh's essential part, its smoke runs
#      at SCALE=short (every variant trains and resumes through the CLI on dmc; needs dm_control);
#   3. writes summary.md: versions, the timing table, the tests' results, cuda_check's summary.
#
# With the device tool:  run(command="bash bench/checks/gpu_session.sh", carry=[".whl"], timeout_s=540)
# Elsewhere:             bash bench/checks/gpu_session.sh [OUT_DIR]  (default: $OUT, else bench_runs/...)
# Environment: PY (default python3), T_BENCH and T_CHECKS (seconds allowed to steps 1 and 2, default
# 170 and 210; a step past its time is interrupted, and what it wrote stays), DRY_RUN=1 (the plumbing
# on a CPU: a tiny eager-only bench, the CUDA tests skipped, no smoke runs).
# Writes 7 files under OUT (the device tool brings back 8 at most): summary.md, session.log,
# update_capture.md and .json, pytest.log, cuda_check.md, cuda_check_logs.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
OUT=${1:-${OUT:-bench_runs/gpu_session/$(date +%Y-%m-%d_%H-%M-%S)}}
PY=${PY:-python3}
T_BENCH=${T_BENCH:-170}
T_CHECKS=${T_CHECKS:-210}
BENCH_ARGS=()
WORKERS=6
CHECK_JOBS=smoke
if [ "${DRY_RUN:-0}" = 1 ]; then
  BENCH_ARGS=(--device cpu --modes eager --shape 1x2 --hidden 16 --batch 16 --obs 5 --act 2 --check 2
              --warmup 1 --rounds 2 --updates 2)
  WORKERS=1
  CHECK_JOBS=none
fi
WORK=$(mktemp -d /tmp/gpu_session.XXXX)  # what does not come back: run dirs, installed wheels
mkdir -p "$OUT"
exec > >(tee -a "$OUT/session.log") 2>&1
export PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-disabled}  # training renders nothing
START=$SECONDS
stamp() { echo; echo "=== $1 ($((SECONDS - START)) s)"; }

stamp "0. environment"
if ! $PY -c "import tensordict, torchrl, hydra, gymnasium" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "error: tensordict, torchrl, hydra or gymnasium is missing and no wheels were carried:"
    echo "run 'DMC=1 bash bench/checks/gpu_wheels.sh' on a machine with pip, then carry .whl"
    exit 3
  fi
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" .whl/*.whl || exit 3
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! $PY -c "import sys, pathlib, torchrl_psmbpo as p; sys.exit(pathlib.Path(p.__file__).resolve().parent != pathlib.Path('components').resolve())" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 3
fi
$PY - <<'PYTHON' || exit 3
import importlib.util, os, torch, tensordict, torchrl, torchrl_psmbpo
print(f"torch {torch.__version__} ({torch.version.cuda}), tensordict {tensordict.__version__}, torchrl {torchrl.__version__}")
print(f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'NONE'}")
print(f"torchrl_psmbpo from {torchrl_psmbpo.__file__}; dm_control: {importlib.util.find_spec('dm_control') is not None}")
assert torch.cuda.is_available() or os.environ.get("DRY_RUN") == "1", "no CUDA device"
PYTHON

stamp "1. the update at paper scale: eager, CUDA graphs, hand-written, compile"
timeout -s INT -k 20 "$T_BENCH" $PY bench/speed/bench_update_capture.py --out "$OUT/update_capture.md" \
  "${BENCH_ARGS[@]}"
echo "bench_update_capture rc=$?"

stamp "2. CUDA tests and cuda_check.sh's smoke runs, side by side"
PYTEST=(-m pytest -q -rA -p no:cacheprovider)
( OMP_NUM_THREADS=1 timeout -s INT -k 20 "$T_CHECKS" $PY "${PYTEST[@]}" tests/test_cuda.py \
    tests/test_replay.py::test_mixed_batches_on_cuda -k "not every_variant" > "$WORK/pytest_fast.log" 2>&1
  echo "rc=$?" >> "$WORK/pytest_fast.log" ) &
JOBS_2=($!)
( OMP_NUM_THREADS=1 timeout -s INT -k 20 "$T_CHECKS" $PY "${PYTEST[@]}" -n "$WORKERS" tests/test_cuda.py \
    -k every_variant > "$WORK/pytest_variants.log" 2>&1
  echo "rc=$?" >> "$WORK/pytest_variants.log" ) &
JOBS_2+=($!)
if $PY -c "import dm_control" 2>/dev/null; then
  ( JOBS=$CHECK_JOBS SCALE=short PY=$PY timeout -s INT -k 30 "$T_CHECKS" bash bench/checks/cuda_check.sh \
      "$WORK/cuda_check" > "$WORK/cuda_check.log" 2>&1
    echo "cuda_check rc=$?" >> "$WORK/cuda_check.log" ) &
  JOBS_2+=($!)
else
  echo "dm_control is missing: cuda_check.sh's smoke runs skipped (carry the wheels of DMC=1 gpu_wheels.sh)" \
    | tee "$WORK/cuda_check.log"
fi
wait "${JOBS_2[@]}"  # (a bare wait would wait for the tee of the log too)
cat "$WORK/pytest_fast.log" "$WORK/pytest_variants.log" > "$OUT/pytest.log"
{ if [ -f "$WORK/cuda_check/summary.md" ]; then  # (with JOBS=smoke it misses the other jobs' runs: expected)
    cat "$WORK/cuda_check/summary.md"; grep "^cuda_check rc=" "$WORK/cuda_check.log"
  else
    echo "(no summary: cuda_check.sh did not finish; its last lines:)"; tail -n 20 "$WORK/cuda_check.log"
  fi; } > "$OUT/cuda_check.md"
tar czf "$OUT/cuda_check_logs.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' -C "$WORK" cuda_check.log \
  $(cd "$WORK" && ls -d cuda_check 2>/dev/null)

stamp "3. summary"
{
  echo "# GPU session, $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null) ($((SECONDS - START)) s)"
  echo; sed -n '/^=== 0/,/^=== 1/p' "$OUT/session.log" | grep -v "^==="
  echo; echo "## 1. the update"; cat "$OUT/update_capture.md" 2>/dev/null || echo "(no table: the bench failed, see session.log)"
  echo; echo "## 2. CUDA tests"
  grep -E "^(PASSED|FAILED|ERROR|SKIPPED)|passed|failed|^rc=" "$OUT/pytest.log"
  echo; echo "## 2. cuda_check.sh (smoke runs)"; cat "$OUT/cuda_check.md"
} > "$OUT/summary.md"
cat "$OUT/summary.md"
