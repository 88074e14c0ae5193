#!/usr/bin/env bash
# One command: set up, start a local PostgreSQL (Debian package, 127.0.0.1 only), run every test on SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
eval "$(bash .ci/postgres.sh)"
.venv/bin/python -m pytest -q "$@"
