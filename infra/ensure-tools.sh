#!/usr/bin/env bash
# Command-line tools the test suite uses besides Python packages, from Debian's packages;
# the open-loop load generator (vegeta, a Go module) into the project's .tools/bin.
set -euo pipefail
VEGETA_VERSION=v12.12.0
tools_bin="$(cd "$(dirname "$0")/.." && pwd)/.tools/bin"
if [ ! -x "$tools_bin/vegeta" ]; then
  if command -v go >/dev/null; then
    echo "installing vegeta $VEGETA_VERSION into .tools/bin with go install ..."
    GOBIN="$tools_bin" go install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
  else
    echo "vegeta: not installed, no Go toolchain (the open-loop benchmark needs it)" >&2
  fi
fi
missing=()
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v unzip >/dev/null || missing+=(unzip)
command -v chromium >/dev/null || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing: ${missing[*]} (install them with apt-get as root)" >&2
  exit 1
fi
echo "installing ${missing[*]} from Debian's packages ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
