#!/usr/bin/env bash
# Create .venv and install runyard with its test and demo extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Open MPI for the mpi launcher (Debian's package; needs root and apt — skipped with a note otherwise).
if ! command -v mpirun >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Open MPI (openmpi-bin libopenmpi-dev)" >&2
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq openmpi-bin libopenmpi-dev >/dev/null) >&2
  else
    echo "note: no mpirun (apt-get install openmpi-bin libopenmpi-dev); the MPI tests will be skipped" >&2
  fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev,mlflow,demo]'
