#!/usr/bin/env bash
# The `deploy` adapter of deploy/local/targets.toml: starts one server process per instance
# URL of the targets file (LOADTEST_INSTANCE_URLS, loopback only), with every SERVER_* setting
# the harness passes (a fresh database, the strategy, a namespace). A template for VMs: the
# same steps over ssh, or a systemd unit whose environment file holds the SERVER_* lines.
#   deploy.sh          (re)starts every instance
#   deploy.sh INDEX    starts instance INDEX (1-based) again, e.g. as `restart-instance`
#   APP_BIN   the server binary (default: target/release/server of this checkout)
#   APP_RUN   folder of the pid files (default: target/deploy-local)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${APP_BIN:-$root/target/release/server}
run=${APP_RUN:-$root/target/deploy-local}
logs=${LOADTEST_LOG_DIR:-$run/logs}
read -r -a urls <<<"${LOADTEST_INSTANCE_URLS:?the harness sets LOADTEST_INSTANCE_URLS}"
[[ -x "$bin" ]] || { echo "deploy.sh: no server binary at $bin: build it (cargo build --release -p server) or set APP_BIN" >&2; exit 1; }
mkdir -p "$run" "$logs"

start() {
  local i=$1 url=${urls[$(($1 - 1))]}
  local addr=${url#http://}
  case "$addr" in
    127.*:*) ;;
    *) echo "deploy.sh: instance $i is $url: this adapter starts processes on loopback only" >&2; exit 1 ;;
  esac
  SERVER_LISTEN_ADDR=$addr SERVER_INSTANCE_ID="local-$i" \
    setsid "$bin" </dev/null >>"$logs/instance-$i.log" 2>&1 &
  echo $! >"$run/instance-$i.pid"
  echo "started instance $i (pid $!) on $addr"
}

if [[ $# -eq 1 ]]; then
  start "$1"
  exit 0
fi
"$here/teardown.sh" >/dev/null
for i in $(seq 1 "${#urls[@]}"); do
  start "$i"
done
