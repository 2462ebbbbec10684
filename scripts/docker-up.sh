#!/usr/bin/env bash
# Brings up a Docker engine on this machine, idempotently.
#
# * If `docker info` already answers, does nothing.
# * Otherwise installs Debian's docker.io (when dockerd is missing) and starts dockerd with
#   `--ip 127.0.0.1`, so every port a container publishes binds to loopback only, and without
#   the userland proxy (ports reached through iptables, not a copying process).
# * Waits until `docker info` answers, or says clearly why it cannot.
#
# Environment:
#   DOCKERD_LOG   where dockerd writes its log (default /var/log/loadtest-dockerd.log)
#   DOCKER_WAIT_S how long to wait for the engine (default 60)
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/loadtest-dockerd.log}
wait_s=${DOCKER_WAIT_S:-60}

say() { printf 'docker-up: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if engine_answers; then
  say "a Docker engine already answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
  exit 0
fi

if [[ -n ${DOCKER_HOST:-} ]]; then
  die "DOCKER_HOST=$DOCKER_HOST is set but no engine answers there; unset it to use a local engine, or start that engine"
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "not root and no sudo: run this script as root to install and start dockerd"
  sudo_cmd=(sudo)
fi

if ! command -v dockerd >/dev/null 2>&1; then
  command -v apt-get >/dev/null || die "dockerd is missing and apt-get is not available: install a Docker engine by hand"
  say "installing Debian's docker.io (apt-get)"
  "${sudo_cmd[@]}" apt-get update -qq || die "apt-get update failed: no package mirror reachable?"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    docker.io iptables >/dev/null || die "apt-get install docker.io failed (see the output above)"
fi
command -v docker >/dev/null || die "the docker client is missing after installing docker.io"

# A dockerd that was killed leaves its pid file; a new dockerd then refuses to start.
for pidfile in /var/run/docker.pid /run/docker.pid; do
  if [[ -f $pidfile ]]; then
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then
      say "removing stale $pidfile (process ${pid:-?} is gone)"
      "${sudo_cmd[@]}" rm -f "$pidfile"
    fi
  fi
done

started_pid=
if ! pgrep -x dockerd >/dev/null 2>&1; then
  # --userland-proxy=false: published ports are reached through iptables' NAT, not through a
  # docker-proxy process per port copying every byte. With the proxy, at 840 notifications/s
  # on 3 instances the proxies in front of MariaDB and RabbitMQ took 15.7% of this machine's
  # CPU, as much as the three servers together (reports/README.md, "Where the CPU goes").
  say "starting dockerd --ip 127.0.0.1 --userland-proxy=false (log: $log)"
  # setsid + nohup: the engine outlives this script and the shell that ran it.
  "${sudo_cmd[@]}" setsid nohup dockerd --ip 127.0.0.1 --userland-proxy=false >"$log" 2>&1 </dev/null &
  # The process we started (sudo, setsid and nohup exec or wait, so it lives as long as dockerd
  # does). Asking `pgrep -x dockerd` instead raced with those execs: on a busy machine the first
  # check could run before the process was named dockerd, and a healthy start was called dead.
  started_pid=$!
fi

dockerd_alive() {
  if [[ -n $started_pid ]]; then
    # /proc, not kill -0: under sudo the process is root's, and kill -0 would be refused.
    [[ -d /proc/$started_pid ]]
  else
    pgrep -x dockerd >/dev/null 2>&1
  fi
}

for ((i = 0; i < wait_s; i++)); do
  if engine_answers; then
    say "Docker engine is up ($(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'))"
    exit 0
  fi
  if ! dockerd_alive; then
    tail -n 20 "$log" >&2 || true
    die "dockerd exited while starting; its log is above ($log)"
  fi
  sleep 1
done
tail -n 20 "$log" >&2 || true
die "no Docker engine answered within ${wait_s}s; dockerd's log is above ($log)"
