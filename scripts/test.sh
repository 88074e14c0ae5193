#!/usr/bin/env bash
# One command: set up, start a local PostgreSQL (Debian package, 127.0.0.1 only), run every test on SQLite and
# PostgreSQL, then the Ray suite in a loopback-only network namespace (scripts/test_ray.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
eval "$(bash .ci/postgres.sh)"
.venv/bin/python -m pytest -q -m "not ray" "$@"
bash scripts/test_ray.sh
