#!/usr/bin/env bash
# One command: set up, then run the main demo in a fresh workspace (./demo-workspace), then list its runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RUNYARD_HOME=${RUNYARD_HOME:-$PWD/demo-workspace}
.venv/bin/python examples/demo.py
.venv/bin/runyard runs list
