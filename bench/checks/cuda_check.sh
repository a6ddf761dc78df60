#!/usr/bin/env bash
# The GPU check: every variant (and Marino & Yue's terms) trains, checkpoints and resumes on
# CUDA, the one CUDA test passes, and the per-phase cost of a step on the GPU is measured for
# the CPU protocol (beside the same run on one CPU core of the same machine) and at paper scale.
#
# Usage (from the repo root, on a machine with a GPU and this project's packages importable):
#   bash bench/checks/cuda_check.sh [OUT_DIR]   # default OUT_DIR: bench_runs/cuda_check/<date_time>
# Environment: DEVICE (default cuda; DEVICE=cpu dry-runs the same script on a CPU), PY (python),
# SCALE=short (a few hundred steps per job, for a CPU dry run), JOBS (default
# "smoke protocol paper test": which of the four parts below to run).
# All jobs run side by side (one CPU thread each), each bounded by `timeout -s INT`, which stops
# a run after its step in progress with a checkpoint; the whole script takes about 6 minutes.
# Writes OUT_DIR/summary.md (what passed, per-phase tables) and OUT_DIR/logs.tar.gz.
set -uo pipefail
OUT_DIR=${1:-bench_runs/cuda_check/$(date +%Y-%m-%d_%H-%M-%S)}
DEVICE=${DEVICE:-cuda}
PY=${PY:-python}
mkdir -p "$OUT_DIR"
R="$OUT_DIR/runs"
if [ -e "$R" ]; then echo "error: $R exists (an earlier check's runs); pass a new OUT_DIR" >&2; exit 2; fi
mkdir -p "$R"
if [ "${SCALE:-full}" = short ]; then
  SMOKE=(run.total_steps=700 run.init_random_steps=500 eval.every=350 run.checkpoint_every=350); MORE=800
  PROTO=(run.total_steps=1300); PAPER=(run.total_steps=1100); T_PROTO=200; T_PAPER=200
else
  SMOKE=(run.total_steps=1500 run.init_random_steps=500 eval.every=500 run.checkpoint_every=500); MORE=2000
  PROTO=(run.total_steps=3000); PAPER=(run.total_steps=2000); T_PROTO=300; T_PAPER=300
fi
COMMON=(progress=false run.threads=1)
JOBS=${JOBS:-smoke protocol paper test}
wants() { [[ " $JOBS " == *" $1 "* ]]; }

# 1. every variant, and both Marino & Yue terms, on the device: train, then resume to more steps
smoke() {  # name, overrides...
  local name=$1; shift
  local dir="$R/smoke_$name"
  { timeout -s INT 200 $PY recipes/psmbpo_dmc.py preset=small run.device=$DEVICE "${SMOKE[@]}" \
      "${COMMON[@]}" hydra.run.dir="$dir" "$@" \
    && timeout -s INT 100 $PY recipes/psmbpo_dmc.py resume="$dir" run.total_steps=$MORE "${COMMON[@]}"
  } > "$R/smoke_$name.log" 2>&1
  echo "$name rc=$?" >> "$R/smoke.rc"
}
if wants smoke; then
for v in sac mbpo ps-mbpo ops-mbpo ps-mbpo-fixed; do smoke "$v" variant=$v & done
smoke ps-mbpo+prior+info variant=ps-mbpo policy.action_prior=true rollout.information_weight=1 &
fi

if wants protocol; then
# 2. the CPU protocol's ps-mbpo (cpu_dmc) on the device and on one CPU core of this machine
timeout -s INT $T_PROTO $PY recipes/psmbpo_dmc.py preset=cpu_dmc variant=ps-mbpo seed=0 run.device=$DEVICE \
  "${PROTO[@]}" "${COMMON[@]}" hydra.run.dir="$R/cpu_dmc_ps-mbpo_$DEVICE" > "$R/cpu_dmc_$DEVICE.log" 2>&1 &
timeout -s INT $T_PROTO $PY recipes/psmbpo_dmc.py preset=cpu_dmc variant=ps-mbpo seed=0 run.device=cpu \
  "${PROTO[@]}" "${COMMON[@]}" hydra.run.dir="$R/cpu_dmc_ps-mbpo_cpu" > "$R/cpu_dmc_cpu.log" 2>&1 &
fi

if wants paper; then
# 3. paper scale (5 x 4 members, G = 20, 400 rollouts per member, 256-wide nets) on the device;
#    1,000 random steps instead of 5,000 so that the learning steps fit the check
timeout -s INT $T_PAPER $PY recipes/psmbpo_dmc.py variant=ps-mbpo seed=0 run.device=$DEVICE \
  run.init_random_steps=1000 "${PAPER[@]}" "${COMMON[@]}" hydra.run.dir="$R/paper_ps-mbpo_$DEVICE" \
  > "$R/paper_$DEVICE.log" 2>&1 &
fi

# 4. the CUDA tests (skipped on a machine without CUDA)
if wants test; then
$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py "tests/test_replay.py::test_mixed_batches_on_cuda" \
  > "$R/pytest_cuda.log" 2>&1 &
fi
wait

{
  echo "# cuda_check on $DEVICE ($(date -u +%FT%TZ))"
  $PY - <<'EOF'
import torch
print(f"torch {torch.__version__}, cuda available: {torch.cuda.is_available()}",
      f"({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "")
EOF
  echo; echo "## smoke runs (train, then resume to more steps): exit codes"; sort "$R/smoke.rc" 2>/dev/null
  for f in "$R"/smoke_*.log "$R"/pytest_cuda.log; do
    if grep -qi "traceback\|error" "$f"; then echo; echo "### $f"; grep -i -A3 "error\|traceback" "$f" | tail -n 30; fi
  done
  echo; echo "## CUDA tests"; tail -n 3 "$R/pytest_cuda.log" 2>/dev/null
  echo; echo "## seconds per 1K learning agent steps, by phase"
  $PY bench/speed/phase_times.py "$R"/cpu_dmc_ps-mbpo_*/ "$R/paper_ps-mbpo_$DEVICE" "$R"/smoke_*/
  echo; echo "## last lines of the timing runs"
  for f in "$R"/cpu_dmc_*.log "$R"/paper_*.log; do [ -f "$f" ] && { echo "### $f"; tail -n 4 "$f"; }; done
} > "$OUT_DIR/summary.md" 2>&1
tar czf "$OUT_DIR/logs.tar.gz" --exclude='*.pt' --exclude='*.pt.tmp' -C "$OUT_DIR" runs
cat "$OUT_DIR/summary.md"
