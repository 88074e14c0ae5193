#!/usr/bin/env bash
# Start a throwaway PostgreSQL on 127.0.0.1 (Debian's package) and print the URL for RUNYARD_TEST_DB_URI.
# Usage: eval "$(bash .ci/postgres.sh)"   — idempotent; installs the package when it is missing.
set -euo pipefail
PORT=${RUNYARD_PG_PORT:-55432}
DATA=${RUNYARD_PG_DATA:-/tmp/runyard-pg}
if ! ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
if [ ! -f "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA"; [ "$(id -u)" = 0 ] && chown postgres "$DATA"
  as_pg "$BIN/initdb -D $DATA -A trust -U postgres" >/dev/null
fi
if ! as_pg "$BIN/pg_ctl -D $DATA status" >/dev/null 2>&1; then
  as_pg "$BIN/pg_ctl -D $DATA -w -l $DATA/server.log -o \"-c listen_addresses=127.0.0.1 -p $PORT -k /tmp -c fsync=off\" start" >&2
fi
as_pg "$BIN/psql -h 127.0.0.1 -p $PORT -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='runyard_test'\"" | grep -q 1 \
  || as_pg "$BIN/createdb -h 127.0.0.1 -p $PORT -U postgres runyard_test"
echo "export RUNYARD_TEST_DB_URI=postgresql+psycopg://postgres@127.0.0.1:$PORT/runyard_test"
