#!/usr/bin/env bash
# Memory of one server process under bursts of concurrent wrong-password logins, with the
# production password hashing parameters (argon2id, 19 MiB, 2 passes).
#
#   eval "$(scripts/loadtest infra up)"        # RabbitMQ, Redis, MariaDB on loopback
#   scripts/measure-login-burst.sh [server binary] [logins per burst] [bursts]
#
# Prints the process's resident memory (VmRSS) and its peak (VmHWM) before and after each
# burst, and how the logins were answered. Traffic goes to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/release/server}
per_burst=${2:-64}
bursts=${3:-2}
: "${LOADTEST_MYSQL_URL:?run eval \"\$(scripts/loadtest infra up)\" first}"
: "${LOADTEST_REDIS_URL:?}" "${LOADTEST_AMQP_URL:?}"
command -v curl >/dev/null || { echo "measure-login-burst: curl is missing" >&2; exit 1; }

db="burst_$(date +%s)_$$"
mariadb=$(docker ps --filter ancestor=loadtest-debian/mariadb:11.8-r2 --format '{{.Names}}' | head -n 1)
[[ -n $mariadb ]] || { echo "measure-login-burst: no MariaDB container of the debian image set is running" >&2; exit 1; }
password=$(sed -E 's#^mysql://[^:]+:([^@]*)@.*#\1#' <<<"$LOADTEST_MYSQL_URL")
docker exec "$mariadb" mariadb -uroot -p"$password" -e "CREATE DATABASE $db"

log=$(mktemp)
SERVER_DATABASE_URL="$LOADTEST_MYSQL_URL/$db" SERVER_REDIS_URL="$LOADTEST_REDIS_URL" SERVER_AMQP_URL="$LOADTEST_AMQP_URL" \
  SERVER_NAMESPACE="$db:" SERVER_LISTEN_ADDR=127.0.0.1:0 SERVER_NOTIFY_DELIVERY=local SERVER_AI_ENABLED=false \
  "$bin" >"$log" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.1; done
addr=$(sed -E 's/.*"addr":"([^"]+)".*/\1/' <"$log")
[[ $addr == 127.0.0.1:* ]] || { echo "measure-login-burst: the server did not start" >&2; exit 1; }
base="http://$addr"

memory() { awk '/^VmRSS|^VmHWM/ { printf "%s %d MB  ", $1, $2 / 1024 }' "/proc/$pid/status"; echo; }
curl -sf -o /dev/null -X POST "$base/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"target@example.test","password":"correct horse","display_name":"target"}'
echo "server $bin, $per_burst concurrent wrong-password logins per burst"
echo -n "before:        "; memory
for b in $(seq "$bursts"); do
  seq "$per_burst" | xargs -P "$per_burst" -I{} curl -s -o /dev/null -w '%{http_code}\n' -X POST "$base/auth/login" \
    -H 'content-type: application/json' -H "x-forwarded-for: 10.9.$b.{}" \
    -d '{"email":"target@example.test","password":"wrong guess"}' | sort | uniq -c | tr '\n' ' '
  echo
  echo -n "after burst $b: "; memory
done
