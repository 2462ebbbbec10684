#!/usr/bin/env bash
# The `teardown` adapter of deploy/local/targets.toml: stops every server process deploy.sh
# started (SIGTERM, then SIGKILL after 10 s). `teardown.sh INDEX` stops one instance with
# SIGKILL, as `kill-instance`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
run=${APP_RUN:-$(cd "$here/../.." && pwd)/target/deploy-local}

if [[ $# -eq 1 ]]; then
  kill -KILL "$(cat "$run/instance-$1.pid")"
  exit 0
fi
pids=()
for f in "$run"/instance-*.pid; do
  [[ -e "$f" ]] || continue
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  rm -f "$f"
done
for _ in $(seq 1 100); do
  alive=0
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [[ $alive -eq 0 ]] && break
  sleep 0.1
done
for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
echo "stopped ${#pids[@]} instance(s)"
