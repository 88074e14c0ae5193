#!/usr/bin/env bash
# One command: set up what the demo uses (scripts/setup.sh --demo: .venv with runyard's demo and studio extras, no
# test tools), then run the main demo — a workspace and a small scikit-learn project in ./runyard-demo, the project
# submitted as a run on the local target, its output streamed, its metrics and files shown.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
.venv/bin/runyard demo "${1:-runyard-demo}"
