#!/usr/bin/env bash
# Make sure a Docker engine answers: reuse a running one, else start dockerd as root with its
# data under the stack's state directory. Exit 0 when an engine answers, 3 when none can be
# had here (not root, no kernel support): callers skip the Docker steps on 3.
set -euo pipefail

state="${ORDERS_STACK_DIR:-/var/lib/orders-stack}"
log="$state/dockerd.log"

answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null && answers; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "docker: no engine answers and starting dockerd needs root; skipping the Docker steps" >&2
  exit 3
fi
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  # The package may have started an engine of its own: use it rather than start a second.
  if answers; then
    exit 0
  fi
fi

mkdir -p "$state/docker"
pidfile=/var/run/orders-dockerd.pid
# An engine that died leaves its pid file, and dockerd refuses to start while that pid runs,
# even when the pid now belongs to another process: drop a pid file that names no dockerd.
if [ -f "$pidfile" ] && [ "$(cat "/proc/$(cat "$pidfile")/comm" 2>/dev/null)" != dockerd ]; then
  echo "removing $pidfile: the engine it names is gone"
  rm -f "$pidfile"
fi
echo "starting dockerd (data root $state/docker, log $log) ..."
# setsid: the engine outlives this make step, like the native services do. --ip: a port
# published without an address (testcontainers does that) binds 127.0.0.1 only.
setsid dockerd --data-root "$state/docker" --pidfile "$pidfile" --ip 127.0.0.1 \
  >>"$log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if answers; then
    echo "dockerd answers"
    exit 0
  fi
  if ! kill -0 $! 2>/dev/null; then
    break
  fi
  sleep 0.5
done
echo "docker: dockerd did not start here (see $log); skipping the Docker steps" >&2
tail -n 5 "$log" >&2 || true
exit 3
