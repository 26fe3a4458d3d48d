#!/bin/bash
# Without a config file Redis starts in protected mode, which refuses clients from other
# containers; the network boundary is the container's published port instead.
set -euo pipefail
if [ "${1:-}" = redis-server ] && { [ $# -eq 1 ] || [[ "${2:-}" == -* ]]; }; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
