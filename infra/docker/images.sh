#!/usr/bin/env bash
# Build the local images from what Debian's packages and the native stack's caches provide:
#   orders-local/base:bookworm, orders-local/base:trixie   debootstrap --variant=minbase + import
#   orders-local/python:3.11, orders-local/postgres:<major>, orders-local/redis:<major>
#   orders-local/elasticsearch:<version>                   the distribution zip + a JDK
#   orders-local/app:latest                                the project's Dockerfile
# Each image carries a label with the hash of what it was built from; an image whose label
# matches is kept, so a second run builds nothing. Run from the repository root.
# Exit 3 (with a message) when no Docker engine can be had here.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
state="${ORDERS_STACK_DIR:-/var/lib/orders-stack}"
work="$state/docker-build"
label=org.orders.content-hash
export DOCKER_BUILDKIT=0

bash "$here/dockerd.sh" || exit $?

pins="$(cd "$root" && "$python" -c 'from infra.versions import *
print(POSTGRES_MAJOR, REDIS_MAJOR, ELASTICSEARCH_VERSION)')"
read -r pg_major redis_major es_version <<<"$pins"

hash_stdin() { sha256sum | cut -c1-16; }
hash_files() { (cd "$1" && shift && find "$@" -type f ! -path '*/__pycache__/*' ! -path 'infra/docker/*' -print0 \
  | sort -z | xargs -0 sha256sum) | hash_stdin; }
current() { docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null || true; }
image_id() { docker image inspect -f '{{ .Id }}' "$1"; }

# build TAG HASH CONTEXT [docker build args...]
build() {
  local tag="$1" hash="$2" context="$3"
  shift 3
  if [ "$(current "$tag")" = "$hash" ]; then
    echo "  $tag: up to date"
    return
  fi
  echo "  $tag: building ..."
  local started=$SECONDS log="$work/build-${tag//[\/:]/-}.log"
  docker build --label "$label=$hash" -t "$tag" "$@" "$context" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; echo "  $tag: build failed, see $log" >&2; exit 1; }
  echo "  $tag: built in $((SECONDS - started))s"
}

# base SUITE: a minimal Debian root file system turned into an image. It trusts the same
# local certificate authorities as the building host, so builds behind an inspecting proxy
# reach the package registries too.
base() {
  local suite="$1" tag="orders-local/base:$1" hash
  # The recipe is this function itself: editing the rest of the script rebuilds no base.
  hash="$( { echo "$suite"; declare -f base;
             cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true; } | hash_stdin)"
  if [ "$(current "$tag")" = "$hash" ]; then
    echo "  $tag: up to date"
    return
  fi
  echo "  $tag: debootstrap --variant=minbase $suite ..."
  local started=$SECONDS rootfs="$work/rootfs-$suite"
  rm -rf "$rootfs"
  mkdir -p "$rootfs"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$rootfs" \
    ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$work/debootstrap-$suite.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap-$suite.log" >&2; exit 1; }
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  fi
  # Services are never started by package scripts inside an image.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod +x "$rootfs/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
    >"$rootfs/etc/apt/apt.conf.d/90orders-minimal"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | docker import --change "LABEL $label=$hash" \
    --change 'CMD ["bash"]' - "$tag" >/dev/null
  rm -rf "$rootfs"
  echo "  $tag: imported in $((SECONDS - started))s"
}

mkdir -p "$work"
started=$SECONDS
echo "local images:"
# The two debootstraps mostly wait on downloads: run them side by side.
base bookworm & bookworm_job=$!
base trixie & trixie_job=$!
wait "$bookworm_job"
wait "$trixie_job"
bookworm_id="$(image_id orders-local/base:bookworm)"
trixie_id="$(image_id orders-local/base:trixie)"

for name in python postgres redis; do
  declare "${name}_hash=$( { echo "$bookworm_id $pg_major $redis_major"; hash_files "$here" "$name"; } | hash_stdin)"
done
build orders-local/python:3.11 "$python_hash" "$here/python" --build-arg "BASE=$bookworm_id"
build "orders-local/postgres:$pg_major" "$postgres_hash" "$here/postgres" \
  --build-arg "BASE=$bookworm_id" --build-arg "PG_MAJOR=$pg_major"
build "orders-local/redis:$redis_major" "$redis_hash" "$here/redis" --build-arg "BASE=$bookworm_id"

# Elasticsearch: the zip the native stack fetched (fetched now if it has not).
zip="$(cd "$root" && "$python" -c 'from infra.native import Layout, _fetch_distribution
print(_fetch_distribution(Layout.default()))')"
jdk=openjdk-21-jre-headless
es_hash="$( { echo "$trixie_id $jdk"; sha256sum <"$zip"; hash_files "$here" elasticsearch; } | hash_stdin)"
es_tag="orders-local/elasticsearch:$es_version"
if [ "$(current "$es_tag")" != "$es_hash" ]; then
  context="$work/elasticsearch"
  rm -rf "$context"
  mkdir -p "$context"
  cp "$here/elasticsearch/Dockerfile" "$here/elasticsearch/entrypoint.sh" "$context/"
  unzip -q "$zip" -d "$context"
  mv "$context/elasticsearch-$es_version" "$context/elasticsearch"
  build "$es_tag" "$es_hash" "$context" --build-arg "BASE=$trixie_id" --build-arg "JDK_PACKAGE=$jdk"
  rm -rf "$context"
else
  echo "  $es_tag: up to date"
fi

# The app, from the project's own Dockerfile on the local Python image.
app_hash="$( { image_id orders-local/python:3.11; cat "$root/.dockerignore";
  hash_files "$root" Dockerfile pyproject.toml README.md app projectors infra; } | hash_stdin)"
build orders-local/app:latest "$app_hash" "$root" --build-arg PYTHON_IMAGE=orders-local/python:3.11

echo "local images ready in $((SECONDS - started))s"
