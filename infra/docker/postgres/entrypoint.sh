#!/bin/bash
# First start: initdb with POSTGRES_USER/POSTGRES_PASSWORD and create POSTGRES_DB (without a
# temporary server, so "ready to accept connections" is printed once, by the real one).
set -euo pipefail
if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
shift
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile="$(mktemp)"
  printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" >"$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    echo "CREATE DATABASE \"$db\"" | postgres --single -D "$PGDATA" postgres >/dev/null
  fi
  echo "initialized $PGDATA for user $user, database $db"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
