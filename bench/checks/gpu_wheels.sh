#!/usr/bin/env bash
# The wheels a bare GPU machine lacks, fetched HERE (where pip reaches PyPI) into .whl/ (ignored by
# git), for bench/checks/gpu_session.sh to install THERE (no network there). The GPU machines we
# borrow run a CUDA PyTorch image with Python 3.12, torch, numpy, scipy, matplotlib, lxml, pytest
# and pytest-xdist; this adds this project's pins of the rest: tensordict and torchrl (the components),
# Hydra and Gymnasium (the recipes, and tests/test_cuda.py's training runs on gym:Pendulum-v1).
# DMC=1 adds dm_control and MuJoCo, what bench/checks/cuda_check.sh's runs need (dm_control without
# its locomotion meshes, which the control suite never imports: 17 MB instead of 56). About 5 MB,
# or 32 MB with DMC=1: the working tree and the carried paths travel within 64 MiB together.
#
# Usage, from the repo root:  DMC=1 bash bench/checks/gpu_wheels.sh    # then carry [".whl"]
# Environment: PY (default python3: any Python with pip; the wheels are chosen for 3.12, x86_64).
set -euo pipefail
PY=${PY:-python3}
DIR=.whl
mkdir -p "$DIR"
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
PKGS=(tensordict==0.14.3 torchrl==0.14.1 pyvers==0.2.3 orjson==3.13.0 importlib_metadata==10.2.0
      hydra-core==1.3.8 omegaconf==2.3.1 gymnasium==1.4.0 Farama-Notifications==0.0.6)
if [ "${DMC:-0}" = 1 ]; then  # (labmaze, dm_control's last need, serves its locomotion only)
  PKGS+=(dm_control==1.0.28 mujoco==3.3.0 dm-env==1.6 dm-tree==0.1.10 PyOpenGL==3.1.10 glfw==2.11.0)
fi
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d "$DIR" "${PKGS[@]}"
# antlr4-python3-runtime 4.9.3 (omegaconf's parser) is published as a source archive only: build its
# pure-Python wheel here
ls "$DIR"/antlr4_python3_runtime-4.9.3-*.whl >/dev/null 2>&1 \
  || $PY -m pip wheel -q --no-deps -w "$DIR" antlr4-python3-runtime==4.9.3
if [ "${DMC:-0}" = 1 ]; then
  $PY - "$DIR"/dm_control-1.0.28-py3-none-any.whl <<'PYTHON'
import sys, zipfile
from pathlib import Path

path, skip = Path(sys.argv[1]), "dm_control/locomotion/"
with zipfile.ZipFile(path) as src:
    if not any(name.startswith(skip) for name in src.namelist()):
        sys.exit(0)  # slimmed already
    slim = path.with_suffix(".slim")
    with zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename.startswith(skip):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"".join(l for l in data.splitlines(keepends=True) if not l.startswith(skip.encode()))
            dst.writestr(info, data)
slim.replace(path)
PYTHON
fi
ls -la "$DIR"
echo "total: $(du -sh "$DIR" | cut -f1) (the working tree and the carried paths travel within 64 MiB)"
