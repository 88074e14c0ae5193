#!/usr/bin/env bash
# A private Docker engine for runyard's container tests (Debian's docker.io), leaving the host's own alone:
# no iptables rules, no bridge (containers use --network host), its own data root, exec root and socket.
#   eval "$(bash scripts/dockerd.sh start)"   → exports DOCKER_HOST (and RUNYARD_DOCKERD_PID when it started one)
#   bash scripts/dockerd.sh stop              → stops the engine it started (by its PID)
# `start` uses an engine that already answers at $DOCKER_HOST instead of starting one.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${RUNYARD_DOCKERD_DIR:-$PWD/.cache/dockerd}
RUN=${RUNYARD_DOCKERD_RUN:-/tmp/runyard-dockerd-$(id -u)}  # sockets need a short path
SOCK="$RUN/docker.sock"
PIDFILE="$RUN/dockerd.pid"
answers() { DOCKER_HOST="$1" timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
case "${1:-start}" in
  start)
    if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then
      echo "export DOCKER_HOST=$DOCKER_HOST"; exit 0
    fi
    if [ -S "$SOCK" ] && answers "unix://$SOCK"; then
      echo "export DOCKER_HOST=unix://$SOCK"; exit 0  # started by an earlier call: that caller stops it
    fi
    command -v dockerd >/dev/null || { echo "no dockerd: apt-get install docker.io" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "dockerd needs root here (or a rootless Docker of your own: set DOCKER_HOST)" >&2; exit 1; }
    mkdir -p "$STATE/data" "$RUN/exec"
    rm -f "$SOCK" "$PIDFILE"
    setsid dockerd --iptables=false --ip-masq=false --bridge=none --data-root "$STATE/data" --exec-root "$RUN/exec" \
      --pidfile "$PIDFILE" -H "unix://$SOCK" --containerd-namespace runyard --containerd-plugins-namespace runyard-plugins \
      >"$RUN/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 1 150); do
      answers "unix://$SOCK" && break
      sleep 0.2
    done
    answers "unix://$SOCK" || { echo "dockerd did not start; its log:" >&2; tail -20 "$RUN/dockerd.log" >&2; exit 1; }
    echo "started a private dockerd (pid $(cat "$PIDFILE"), socket $SOCK, log $RUN/dockerd.log)" >&2
    echo "export DOCKER_HOST=unix://$SOCK"
    echo "export RUNYARD_DOCKERD_PID=$(cat "$PIDFILE")"
    ;;
  stop)
    PID=${RUNYARD_DOCKERD_PID:-$(cat "$PIDFILE" 2>/dev/null || true)}
    [ -n "$PID" ] || { echo "no private dockerd to stop" >&2; exit 0; }
    if kill -0 "$PID" 2>/dev/null; then
      # containers left by a test are removed first (none should be: the tests check that)
      DOCKER_HOST="unix://$SOCK" docker ps -aq 2>/dev/null | xargs -r env DOCKER_HOST="unix://$SOCK" docker rm -f >/dev/null 2>&1 || true
      kill "$PID"
      for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$PID" 2>/dev/null || true
      echo "stopped the private dockerd (pid $PID)" >&2
    fi
    rm -f "$PIDFILE"
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
