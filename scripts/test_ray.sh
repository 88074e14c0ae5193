#!/usr/bin/env bash
# The Ray suite (pytest -m ray) inside a loopback-only network namespace: Ray listens on every interface and probes
# a public address to find its own, so the cluster and the tests that talk to it get a network with only `lo`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null 2>&1; then
  echo "the Ray tests need root and iproute2 (ip netns) for a loopback-only namespace" >&2
  [ "${RUNYARD_ALLOW_SKIPS:-}" = 1 ] && { echo "skipped (RUNYARD_ALLOW_SKIPS=1)" >&2; exit 0; }
  exit 1  # a skipped suite is a failed check
fi
ns="runyard-ray-$$"
ip netns add "$ns"
trap 'ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null; ip netns delete "$ns"' EXIT
ip netns exec "$ns" ip link set lo up
# PostgreSQL listens on the host's loopback, which the namespace cannot see: the Ray suite's stores are SQLite.
ip netns exec "$ns" env -u RUNYARD_TEST_DB_URI RAY_USAGE_STATS_ENABLED=0 .venv/bin/python -m pytest -q -m ray \
  tests/integration/test_ray_target.py tests/integration/test_compute_contract.py "$@"
