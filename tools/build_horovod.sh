#!/usr/bin/env bash
# Build Horovod 0.28.1 (the last release, unmaintained since 2023) with Open MPI into a Python environment, for the
# frameworks that environment holds: PyTorch and/or TensorFlow.
#
#   bash tools/build_horovod.sh [PYTHON]        # default: .venv/bin/python; e.g. a runyard env's bin/python
#
# What it takes on today's frameworks (torch 2.13, tensorflow-cpu 2.21), all found the hard way:
# - C++17: Horovod's sdist forces C++14 in its CMake files; torch >= 2 and TF >= 2.16 headers need C++17 (patched).
# - --no-build-isolation, after the frameworks are installed: in an isolated build Horovod's CMake cannot import
#   them ("Could NOT find Tensorflow" is that, not the version).
# - TensorFlow's wheel ships headers that include third-party headers it does not ship (highwayhash, farmhash):
#   Debian's libhighwayhash-dev and libfarmhash-dev provide them (installed here with apt when missing, as root).
# - Horovod's XLA ops (a GPU feature) use TF's pre-2.16 XLA header paths: left out of this CPU build.
# - Keras 3 (TF >= 2.16) breaks horovod.tensorflow.keras / horovod.keras (its callbacks call Variable.ref()); use
#   horovod.tensorflow (DistributedGradientTape, allreduce, broadcast_variables) — tf-keras, which would bring
#   Keras 2 back, is not offered by the package indexes here.
# About 3 minutes on 2 cores. Needs Open MPI (apt-get install openmpi-bin libopenmpi-dev), a C++ compiler; the sdist
# comes from your package index.
set -euo pipefail
PY=${1:-.venv/bin/python}
HAS_TORCH=0; HAS_TF=0
"$PY" -c "import torch" 2>/dev/null && HAS_TORCH=1
"$PY" -c "import tensorflow" 2>/dev/null && HAS_TF=1
if [ $HAS_TORCH = 0 ] && [ $HAS_TF = 0 ]; then
  echo "error: $PY has neither torch nor tensorflow; install the framework first" >&2; exit 1
fi
command -v mpicxx >/dev/null || { echo "error: no mpicxx: apt-get install openmpi-bin libopenmpi-dev" >&2; exit 1; }
if [ $HAS_TF = 1 ] && { [ ! -e /usr/include/highwayhash/arch_specific.h ] || [ ! -e /usr/include/farmhash.h ]; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq libhighwayhash-dev libfarmhash-dev >/dev/null)
  else
    echo "error: TensorFlow's headers need highwayhash and farmhash: apt-get install libhighwayhash-dev libfarmhash-dev" >&2
    exit 1
  fi
fi
"$PY" -m pip --version >/dev/null 2>&1 || "$PY" -m ensurepip >/dev/null  # uv-made environments have no pip
"$PY" -m pip install -q cmake packaging wheel setuptools psutil pyyaml cloudpickle
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$PY" -m pip download -q --no-deps --no-binary :all: horovod==0.28.1 -d "$WORK"
tar -xzf "$WORK"/horovod-0.28.1.tar.gz -C "$WORK"
SRC="$WORK/horovod-0.28.1"
for f in "$SRC/CMakeLists.txt" "$SRC/horovod/torch/CMakeLists.txt" "$SRC/horovod/tensorflow/CMakeLists.txt"; do
  sed -i -E 's/CMAKE_CXX_STANDARD 1[14]/CMAKE_CXX_STANDARD 17/g; s/-std=c\+\+1[14]/-std=c++17/g' "$f"
done
sed -i '/xla_mpi_ops.cc/d' "$SRC/horovod/tensorflow/CMakeLists.txt"
WITH=(HOROVOD_WITH_MPI=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_WITHOUT_GLOO=1 HOROVOD_CPU_OPERATIONS=MPI)
[ $HAS_TORCH = 1 ] && WITH+=(HOROVOD_WITH_PYTORCH=1) || WITH+=(HOROVOD_WITHOUT_PYTORCH=1)
[ $HAS_TF = 1 ] && WITH+=(HOROVOD_WITH_TENSORFLOW=1) || WITH+=(HOROVOD_WITHOUT_TENSORFLOW=1)
env "${WITH[@]}" MAKEFLAGS="-j$(nproc)" "$PY" -m pip install --no-build-isolation --no-deps "$SRC"
[ $HAS_TORCH = 0 ] || "$PY" -c "import horovod.torch as hvd; print('horovod.torch built with MPI:', hvd.mpi_built())"
[ $HAS_TF = 0 ] || TF_CPP_MIN_LOG_LEVEL=3 "$PY" -c "import horovod.tensorflow as hvd; print('horovod.tensorflow built with MPI:', hvd.mpi_built())"
