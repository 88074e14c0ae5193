#!/usr/bin/env bash
# Build Horovod 0.28.1 (the last release, unmaintained since 2023) for PyTorch + Open MPI into a Python environment.
#
#   bash tools/build_horovod.sh [PYTHON]        # default: .venv/bin/python; e.g. a runyard env's bin/python
#
# Horovod's published sdist forces C++14 in its CMake files, but torch >= 2.x headers need C++17: this script patches
# both CMakeLists.txt to C++17 and builds with --no-build-isolation against the torch already installed in PYTHON
# (HOROVOD_WITH_PYTORCH=1, HOROVOD_WITH_MPI=1, everything else off). About 4 minutes on 2 cores. Needs Open MPI
# (apt-get install openmpi-bin libopenmpi-dev), cmake and a C++ compiler; the sdist comes from your package index.
set -euo pipefail
PY=${1:-.venv/bin/python}
"$PY" -c "import torch" 2>/dev/null || { echo "error: $PY has no torch; install torch first" >&2; exit 1; }
command -v mpicxx >/dev/null || { echo "error: no mpicxx: apt-get install openmpi-bin libopenmpi-dev" >&2; exit 1; }
"$PY" -m pip --version >/dev/null 2>&1 || "$PY" -m ensurepip >/dev/null  # uv-made environments have no pip
"$PY" -m pip install -q cmake packaging wheel setuptools psutil pyyaml cloudpickle
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: horovod==0.28.1 -d "$WORK"
tar -xzf "$WORK"/horovod-0.28.1.tar.gz -C "$WORK"
SRC="$WORK/horovod-0.28.1"
for f in "$SRC/CMakeLists.txt" "$SRC/horovod/torch/CMakeLists.txt"; do
  sed -i -E 's/CMAKE_CXX_STANDARD 1[14]/CMAKE_CXX_STANDARD 17/g; s/-std=c\+\+1[14]/-std=c++17/g' "$f"
done
HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
HOROVOD_WITHOUT_GLOO=1 HOROVOD_CPU_OPERATIONS=MPI MAKEFLAGS="-j$(nproc)" \
  "$PY" -m pip install --no-build-isolation --no-deps "$SRC"
"$PY" -c "import horovod.torch as hvd; print('horovod', hvd.__version__ if hasattr(hvd, '__version__') else '0.28.1', 'built with MPI:', hvd.mpi_built())"
