#!/usr/bin/env bash
# The `teardown` adapter of deploy/docker/targets.toml: removes the containers deploy.sh made.
set -euo pipefail
prefix=${APP_PREFIX:-app}
n=${LOADTEST_INSTANCES:?the harness sets LOADTEST_INSTANCES}
for i in $(seq 1 "$n"); do
  # The instances' own logs go beside the harness's (LOADTEST_LOG_DIR: the strategy's log folder).
  if [ -n "${LOADTEST_LOG_DIR:-}" ]; then
    docker logs "$prefix-$i" >"$LOADTEST_LOG_DIR/instance-$i.log" 2>&1 || true
  fi
  docker rm -f "$prefix-$i" >/dev/null 2>&1 || true
done
echo "removed $prefix-1..$prefix-$n"
