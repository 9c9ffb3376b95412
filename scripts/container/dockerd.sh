#!/usr/bin/env bash
# A private Docker engine for CI: `dockerd.sh start` prints `export DOCKER_HOST=...`, `dockerd.sh stop` ends it.
# Its own data root (under KEYSERVER_CACHE, so images and build layers are reused by the next run on this
# machine), exec root, pid file and socket; no iptables rules, no masquerading, no bridge: the host's network
# configuration is left alone, so builds and containers use host networking.
set -euo pipefail
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/keyserver-ci; else default_cache="${XDG_CACHE_HOME:-$HOME/.cache}/keyserver"; fi
CACHE="${KEYSERVER_CACHE:-$default_cache}"
RUN_DIR="${KEYSERVER_DOCKERD_RUN:-/run/keyserver-ci-docker}"
SOCK="$RUN_DIR/docker.sock"
PIDFILE="$RUN_DIR/dockerd.pid"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-}" in
  start)
    command -v dockerd >/dev/null || { echo "dockerd.sh: dockerd missing (apt-get install docker.io)" >&2; exit 1; }
    mkdir -p "$RUN_DIR" "$CACHE/docker"
    if ! running; then
      rm -f "$PIDFILE" "$SOCK"
      nohup dockerd --data-root "$CACHE/docker" --exec-root "$RUN_DIR/exec" --pidfile "$PIDFILE" -H "unix://$SOCK" \
        --iptables=false --ip-masq=false --bridge=none >"$RUN_DIR/dockerd.log" 2>&1 </dev/null &
      for _ in $(seq 1 60); do
        DOCKER_HOST="unix://$SOCK" docker version >/dev/null 2>&1 && break
        sleep 1
      done
    fi
    if ! DOCKER_HOST="unix://$SOCK" docker version >/dev/null 2>&1; then
      echo "dockerd.sh: the engine did not start; last lines of $RUN_DIR/dockerd.log:" >&2
      tail -20 "$RUN_DIR/dockerd.log" >&2 || true
      exit 1
    fi
    echo "export DOCKER_HOST=unix://$SOCK"
    ;;
  stop)
    if running; then
      pid="$(cat "$PIDFILE")"
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
    ;;
  *)
    echo "usage: dockerd.sh start|stop" >&2
    exit 2
    ;;
esac
