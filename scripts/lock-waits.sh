#!/usr/bin/env bash
# Who waits for whose lock inside MariaDB while a scenario runs: runs `loadtest run SCENARIO
# [ARGS...]` and, once the run's MariaDB container is up and LOCKS_AFTER_S seconds have passed,
# asks InnoDB every LOCKS_EVERY_S seconds which transactions wait for a lock, on what, and what
# the blocking transaction is doing (information_schema.innodb_lock_waits, innodb_trx,
# innodb_locks). Then it counts the samples by (table, index, lock mode) and by (waiting
# statement, blocking statement, the blocker's state).
#
#   scripts/lock-waits.sh scenarios/profile/notify-steady.toml --strategies rabbitmq
#
# Writes target/lock-waits/<time>.tsv, one line per waiting lock per sample. The "Database
# work" table of a report counts the waits (row lock waits, row lock ms); this says whose.
# Reads only the first strategy's container if the run has several (containers are per run).
#
# Environment:
#   LOCKS_AFTER_S   seconds to wait after the container appears (default 8: the load has begun)
#   LOCKS_SAMPLES   samples taken (default 60)
#   LOCKS_EVERY_S   seconds between samples (default 0.2)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'lock-waits: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[[ $# -ge 1 ]] || die "usage: scripts/lock-waits.sh SCENARIO [loadtest run arguments...]"
[[ -f $1 ]] || die "$1 does not exist"
command -v docker >/dev/null || die "docker is missing: run scripts/docker-up.sh"
after=${LOCKS_AFTER_S:-8}
samples=${LOCKS_SAMPLES:-60}
every=${LOCKS_EVERY_S:-0.2}
bin=target/release/loadtest
[[ -x $bin ]] || cargo build --release -p loadtest -p server >&2
out_dir=target/lock-waits
mkdir -p "$out_dir"
out=$out_dir/$(date -u +%Y%m%d-%H%M%S).tsv
: >"$out"

# The root password of the containers the harness starts (loadtest/src/infra/images.rs).
password=loadtest
query="SELECT l.lock_table, IFNULL(l.lock_index, '-'), l.lock_mode, LEFT(IFNULL(r.trx_query, '-'), 48),
  LEFT(IFNULL(b.trx_query, '<between statements>'), 48), b.trx_state, IFNULL(b.trx_operation_state, '-')
  FROM information_schema.innodb_lock_waits w
  JOIN information_schema.innodb_trx r ON r.trx_id = w.requesting_trx_id
  JOIN information_schema.innodb_trx b ON b.trx_id = w.blocking_trx_id
  JOIN information_schema.innodb_locks l ON l.lock_id = w.requested_lock_id"

sample() {
  local c=""
  for _ in $(seq 1 600); do
    c=$(docker ps -q --filter label=org.loadtest.service=mariadb | head -1)
    [[ -n $c ]] && break
    sleep 0.5
  done
  [[ -n $c ]] || { say "no MariaDB container of the harness appeared"; return; }
  sleep "$after"
  say "sampling container $c: $samples samples every $every s"
  for _ in $(seq 1 "$samples"); do
    docker exec "$c" mariadb -uroot -p"$password" -N -e "$query" >>"$out" 2>/dev/null || true
    sleep "$every"
  done
}

sample &
sampler=$!
status=0
"$bin" run "$@" || status=$?
wait "$sampler" || true

lines=$(wc -l <"$out")
echo
echo "lock waits sampled: $lines (in $out)"
if [[ $lines -gt 0 ]]; then
  echo "by table, index, lock mode:"
  cut -f1-3 "$out" | sed 's/`[^`]*`\.//' | sort | uniq -c | sort -rn | head -10
  echo "by waiting statement, blocking statement, the blocker's state:"
  cut -f4-7 "$out" | sort | uniq -c | sort -rn | head -15
fi
exit "$status"
