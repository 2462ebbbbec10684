#!/usr/bin/env bash
# The service adapters of deploy/docker/targets.toml:
#   service.sh ACTION SERVICE [OWNER_PID]
# ACTION is stop, start, restart, pause or unpause; SERVICE is rabbitmq, redis or mariadb. It
# acts on the container the harness started for that service (`loadtest infra up`, or a test:
# OWNER_PID narrows to the containers of that process), found by its labels. start and
# restart return once the service's port accepts connections again.
set -euo pipefail
action=${1:?usage: service.sh ACTION SERVICE [OWNER_PID]}
service=${2:?usage: service.sh ACTION SERVICE [OWNER_PID]}

filter=(--filter "label=org.loadtest.service=$service")
[ -n "${3:-}" ] && filter+=(--filter "label=org.loadtest.owner-pid=$3")
id=$(docker ps -aq "${filter[@]}" | head -n 1)
[ -n "$id" ] || { echo "service.sh: no container of $service (labels ${filter[*]})" >&2; exit 1; }

docker "$action" "$id" >/dev/null
case $action in
  start | restart)
    port=$(docker port "$id" | head -n 1 | sed 's/.*://')
    for _ in $(seq 1 240); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "$service ($id) answers on 127.0.0.1:$port"
        exit 0
      fi
      sleep 0.25
    done
    echo "service.sh: $service did not answer on 127.0.0.1:$port within 60 s" >&2
    exit 1
    ;;
esac
echo "$action $service ($id)"
