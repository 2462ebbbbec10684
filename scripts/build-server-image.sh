#!/usr/bin/env bash
# Builds the server's container image from a server binary, without a registry:
#   scripts/build-server-image.sh [BINARY] [TAG]
# BINARY defaults to target/release/server, TAG to loadtest/server:dev. With WITH_HARNESS=1
# the harness binary beside BINARY (`loadtest`) goes in too: deploy/k8s's Jobs run it. The
# base image is the Debian trixie one scripts/build-images.sh imports (run that first;
# scripts/setup.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/release/server}
tag=${2:-loadtest/server:dev}
base=${SERVER_IMAGE_BASE:-loadtest-debian/base:trixie-r2}

die() {
  echo "build-server-image: $*" >&2
  exit 1
}
[ -x "$bin" ] || die "$bin is missing: build it with cargo build --release -p server"
docker image inspect "$base" >/dev/null 2>&1 || die "base image $base is missing: run scripts/build-images.sh"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir "$context/bin"
cp "$bin" "$context/bin/server"
if [ "${WITH_HARNESS:-0}" = 1 ]; then
  harness="$(dirname "$bin")/loadtest"
  [ -x "$harness" ] || die "$harness is missing: build it with cargo build --release -p loadtest"
  cp "$harness" "$context/bin/loadtest"
fi
cp deploy/docker/Dockerfile "$context/Dockerfile"
# The legacy builder prints a deprecation notice on every build: keep it out of the way.
docker build -q --build-arg "BASE=$base" -t "$tag" "$context" >/dev/null 2>"$context/build.log" \
  || { cat "$context/build.log" >&2; die "docker build $tag failed"; }
echo "$tag"
