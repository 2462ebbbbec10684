#!/usr/bin/env bash
# The `deploy` adapter of deploy/docker/targets.toml: (re)creates LOADTEST_INSTANCES server
# containers, `app-1`.. by default, from the image, on the host's network, with every SERVER_*
# setting the harness passes (a fresh database, the strategy, a namespace). Instance i listens
# on 127.0.0.1:(APP_BASE_PORT + i).
#   APP_IMAGE (loadtest/server:dev), APP_PREFIX (app), APP_BASE_PORT (18080)
set -euo pipefail

image=${APP_IMAGE:-loadtest/server:dev}
prefix=${APP_PREFIX:-app}
base_port=${APP_BASE_PORT:-18080}
n=${LOADTEST_INSTANCES:?the harness sets LOADTEST_INSTANCES}

settings=()
while IFS= read -r name; do
  settings+=(-e "$name=${!name}")
done < <(compgen -e | grep '^SERVER_' | grep -v -e '^SERVER_LISTEN_ADDR$' -e '^SERVER_INSTANCE_ID$')

for i in $(seq 1 "$n"); do
  docker rm -f "$prefix-$i" >/dev/null 2>&1 || true
done
for i in $(seq 1 "$n"); do
  docker run -d --name "$prefix-$i" --network host \
    --label org.loadtest.owner=deploy-docker \
    "${settings[@]}" \
    -e "SERVER_LISTEN_ADDR=127.0.0.1:$((base_port + i))" \
    -e "SERVER_INSTANCE_ID=$prefix-$i" \
    "$image" >/dev/null
  echo "started $prefix-$i on 127.0.0.1:$((base_port + i))"
done
