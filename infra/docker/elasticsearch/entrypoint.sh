#!/bin/bash
# Like the official image: every environment variable whose name holds a dot
# (discovery.type, xpack.security.enabled, ...) becomes an -E setting.
set -euo pipefail
if [ "${1:-}" != elasticsearch ]; then
  exec "$@"
fi
shift
settings=()
while IFS= read -r -d '' pair; do
  name="${pair%%=*}"
  if [[ "$name" =~ ^[a-z0-9_]+(\.[a-z0-9_]+)+$ ]]; then
    settings+=("-E$name=${pair#*=}")
  fi
done < <(env -0)
exec elasticsearch "${settings[@]}" "$@"
