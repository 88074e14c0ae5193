#!/usr/bin/env bash
# One command: set up, start a local PostgreSQL (Debian package, 127.0.0.1 only) and a private Docker engine
# (scripts/dockerd.sh: no iptables, no bridge; stopped at the end) with runyard's base image built offline, run every
# test on SQLite and PostgreSQL, then the Ray suite in a loopback-only network namespace (scripts/test_ray.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
eval "$(bash .ci/postgres.sh)"
eval "$(bash scripts/dockerd.sh start)"
if [ -n "${RUNYARD_DOCKERD_PID:-}" ]; then trap 'bash scripts/dockerd.sh stop' EXIT; fi
.venv/bin/runyard image build-base --cache .cache/images
.venv/bin/python -m pytest -q -m "not ray" "$@"
bash scripts/test_ray.sh
