#!/usr/bin/env bash
# The service adapters of deploy/docker/targets.toml:
#   service.sh ACTION SERVICE [OWNER_PID]
# ACTION is stop, start, restart, pause or unpause; SERVICE is rabbitmq, redis or mariadb. It
# acts on the container the harness started for that service (`loadtest infra up`, or a test:
# OWNER_PID narrows to the containers of that process), found by its labels. start and
# restart return once the service answers its own protocol again (AMQP, Redis PING, the
# MariaDB handshake).
set -euo pipefail
action=${1:?usage: service.sh ACTION SERVICE [OWNER_PID]}
service=${2:?usage: service.sh ACTION SERVICE [OWNER_PID]}

filter=(--filter "label=org.loadtest.service=$service")
[ -n "${3:-}" ] && filter+=(--filter "label=org.loadtest.owner-pid=$3")
id=$(docker ps -aq "${filter[@]}" | head -n 1)
[ -n "$id" ] || { echo "service.sh: no container of $service (labels ${filter[*]})" >&2; exit 1; }

# Ready means answering its own protocol, not a TCP accept: Docker's port proxy accepts
# connections on the host port as soon as the container starts, long before the service does.
answers() { # port
  exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
  local reply
  case $service in
    rabbitmq) # the AMQP 0-9-1 protocol header; a broker that listens answers Connection.Start
      printf 'AMQP\0\0\011\001' >&3
      reply=$(timeout 2 head -c 1 <&3 | od -An -tx1 | tr -d ' \n') ;;
    redis) # PING; a Redis still loading its snapshot answers -LOADING, not +PONG
      printf 'PING\r\n' >&3
      reply=$(timeout 2 head -c 5 <&3)
      [ "$reply" = "+PONG" ] || reply="" ;;
    *) # MariaDB greets every new connection with its handshake
      reply=$(timeout 2 head -c 1 <&3 | od -An -tx1 | tr -d ' \n') ;;
  esac
  exec 3<&- 3>&-
  [ -n "$reply" ]
}

docker "$action" "$id" >/dev/null
case $action in
  start | restart)
    port=$(docker port "$id" | head -n 1 | sed 's/.*://')
    for _ in $(seq 1 240); do
      if answers "$port"; then
        echo "$service ($id) answers on 127.0.0.1:$port"
        exit 0
      fi
      sleep 0.25
    done
    echo "service.sh: $service did not answer its protocol on 127.0.0.1:$port within 60 s" >&2
    exit 1
    ;;
esac
echo "$action $service ($id)"
