#!/usr/bin/env bash
# Where the CPU goes while a scenario runs: runs `loadtest run SCENARIO [ARGS...]` and, when each
# strategy's load has started (its first progress line with events caused), samples every CPU
# of the machine with `perf record -a` for PROFILE_S seconds. Then, per strategy, it prints the
# share of the machine's CPU that each kind of process took (the server instances, the harness,
# MariaDB, RabbitMQ, Redis, Docker's proxies, idle) and the hottest functions of the server
# processes.
#
#   scripts/profile-cpu.sh scenarios/profile/notify-steady.toml --strategies rabbitmq
#
# Writes target/profile/<scenario>-<time>/<strategy>.{perf.data,processes.txt,server-symbols.txt}.
# Needs `perf` (Debian: linux-perf; installed here when missing) and root or
# kernel.perf_event_paranoid <= 0 for system-wide sampling. Works with kinds whose runs print
# `caused N` progress lines (fanout, capacity).
#
# Environment:
#   PROFILE_S     seconds sampled per strategy (default 20)
#   PROFILE_HZ    samples per second per CPU (default 499)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'profile-cpu: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[[ $# -ge 1 ]] || die "usage: scripts/profile-cpu.sh SCENARIO [loadtest run arguments...]"
scenario=$1
shift
[[ -f $scenario ]] || die "$scenario does not exist"
seconds=${PROFILE_S:-20}
hz=${PROFILE_HZ:-499}

if ! command -v perf >/dev/null 2>&1; then
  command -v apt-get >/dev/null || die "perf is missing and apt-get is not available: install linux-perf"
  say "installing linux-perf (apt-get)"
  apt-get install -y -qq --no-install-recommends linux-perf >/dev/null || die "apt-get install linux-perf failed"
fi
if [[ $(id -u) -ne 0 && $(cat /proc/sys/kernel/perf_event_paranoid) -gt 0 ]]; then
  die "system-wide sampling needs root or kernel.perf_event_paranoid <= 0 (sysctl -w kernel.perf_event_paranoid=0)"
fi

bash scripts/setup.sh
cargo build --release --locked -p server -p loadtest
out=target/profile/$(basename "$scenario" .toml)-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$out"
log=$out/run.log
say "running $scenario; its output goes to $log"
target/release/loadtest run "$scenario" "$@" >"$log" 2>&1 &
run=$!

profile() {
  local strategy=$1 base=$out/$1
  say "[$strategy] load started: sampling every CPU for ${seconds}s"
  ps -eo pid=,comm=,args= >"$base.ps"
  perf record -a -F "$hz" -o "$base.perf.data" -- sleep "$seconds" 2>"$base.perf.log" || {
    cat "$base.perf.log" >&2
    die "perf record failed (see above)"
  }
  # The processes that started during the window are named too.
  ps -eo pid=,comm=,args= >>"$base.ps"
  perf script -i "$base.perf.data" -F pid 2>/dev/null | python3 -c '
import collections, sys
ps_file, out = sys.argv[1], sys.argv[2]
names, args = {}, {}
for line in open(ps_file):
    parts = line.split(None, 2)
    if len(parts) >= 2:
        names[parts[0]] = parts[1]
        args[parts[0]] = parts[2].strip() if len(parts) > 2 else parts[1]
def kind(pid):
    if pid == "0":
        return "idle"
    name, cmd = names.get(pid, "?"), args.get(pid, "")
    if name == "server" or cmd.endswith("/server"):
        return "server instances"
    if name == "loadtest":
        return "harness (loadtest)"
    return {"mariadbd": "MariaDB", "beam.smp": "RabbitMQ", "redis-server": "Redis",
            "docker-proxy": "Docker userland proxies"}.get(name, "other (" + name + ")")
counts = collections.Counter(line.strip() for line in sys.stdin if line.strip())
total = sum(counts.values()) or 1
by_kind, members = collections.Counter(), collections.defaultdict(set)
for pid, n in counts.items():
    k = kind(pid)
    by_kind[k] += n
    members[k].add(pid)
lines = ["| process | processes | share of the machine CPU |", "|---|---:|---:|"]
for k, n in by_kind.most_common():
    if n * 1000 < total:
        continue
    lines.append("| %s | %d | %.1f%% |" % (k, len(members[k]) if k != "idle" else 0, 100.0 * n / total))
servers = sorted(members.get("server instances", []))
lines.append("")
lines.append("server pids: " + ",".join(servers))
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
' "$base.ps" "$base.processes.txt" >&2
  local pids
  pids=$(sed -n 's/^server pids: //p' "$base.processes.txt")
  if [[ -n $pids ]]; then
    perf report -i "$base.perf.data" --pid="$pids" --sort sym --stdio --percentage relative --percent-limit 1 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -40 >"$base.server-symbols.txt" || true
    say "[$strategy] hottest functions of the server processes (share of their samples):"
    head -15 "$base.server-symbols.txt" >&2
  fi
}

seen=" "
while kill -0 "$run" 2>/dev/null; do
  strategy=$(grep -aoE '^\[[a-z-]+\] +[0-9.]+s +caused +[1-9]' "$log" 2>/dev/null \
    | sed -E 's/^\[([a-z-]+)\].*/\1/' | awk '!seen[$0]++' \
    | while read -r s; do [[ $seen == *" $s "* ]] || { echo "$s"; break; }; done || true)
  if [[ -n $strategy ]]; then
    seen="$seen$strategy "
    profile "$strategy"
  fi
  sleep 1
done
status=0
wait "$run" || status=$?
grep -v ' INFO ' "$log" | tail -n 20 >&2 || true
[[ $seen != " " ]] || say "no strategy's load was seen starting (no 'caused N' progress line in $log): nothing sampled"
say "written: $out"
exit "$status"
