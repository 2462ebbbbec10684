#!/usr/bin/env bash
# Builds the `debian` image set without any image registry: a Debian trixie root file system
# made by debootstrap, the three services installed with apt in a chroot, imported with
# `docker import`, and one thin image per service on top (same layer, its own start command).
#
#   loadtest-debian/rabbitmq:4.0-r2   RabbitMQ 4.0 (AMQP 5672), guest/guest allowed from any host
#   loadtest-debian/redis:8.0-r2      Redis 8.0 (6379), RDB snapshots as upstream's defaults (so a
#                                     graceful restart keeps the data, as the official image does)
#   loadtest-debian/mariadb:11.8-r2   MariaDB 11.8 (3306), root/$MARIADB_ROOT_PASSWORD (default loadtest)
#
# Idempotent: images that exist are kept (FORCE=1 rebuilds). Needs root, debootstrap, a Docker
# engine (scripts/docker-up.sh) and a Debian package mirror (taken from apt's own sources, or
# DEBIAN_MIRROR=...). Takes about two minutes on 2 cores.
#
# Keep the names in sync with loadtest/src/infra/images.rs (DEBIAN_RECIPE there is the `-rN` here).
# r2: Redis saves an RDB snapshot on shutdown, like the official image; with r1 a restart
# wiped every session and logged every user out.
set -euo pipefail

recipe=r2
base=loadtest-debian/base:trixie-$recipe
rabbit=loadtest-debian/rabbitmq:4.0-$recipe
redis=loadtest-debian/redis:8.0-$recipe
mariadb=loadtest-debian/mariadb:11.8-$recipe

say() { printf 'build-images: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

timeout 10 docker info >/dev/null 2>&1 || die "no Docker engine answers; run scripts/docker-up.sh first"

if [[ ${FORCE:-0} != 1 ]] && have_image "$rabbit" && have_image "$redis" && have_image "$mariadb"; then
  say "images exist: $rabbit $redis $mariadb (FORCE=1 rebuilds)"
  exit 0
fi

[[ $(id -u) -eq 0 ]] || die "debootstrap and chroot need root: run as root"

if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
    || die "could not install debootstrap"
fi

mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  # The first Debian archive URI apt is configured with (deb822 .sources or one-line .list).
  mirror=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)
  [[ -n $mirror ]] || mirror=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    | awk '{print $2}' | grep -i debian | grep -v -- '-security' | head -n1 || true)
fi
[[ -n $mirror ]] || die "no Debian mirror found in apt's sources; set DEBIAN_MIRROR=<url of a Debian archive>"

work=$(mktemp -d /var/tmp/loadtest-rootfs.XXXXXX)
root=$work/rootfs
cleanup() {
  for m in proc sys dev/pts dev; do umount -l "$root/$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

say "debootstrap trixie from $mirror"
debootstrap --variant=minbase trixie "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# No service may start inside the chroot while packages install.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
chmod 1777 "$root/tmp"
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

say "apt-get install rabbitmq-server redis-server mariadb-server"
chroot "$root" /bin/sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server redis-server mariadb-server procps' \
  >"$work/apt.log" 2>&1 || { tail -n 30 "$work/apt.log" >&2; die "apt-get in the chroot failed (log above)"; }

# RabbitMQ: let guest log in from other hosts (the harness connects through the port mapping),
# as the official image does.
mkdir -p "$root/etc/rabbitmq"
cat >"$root/etc/rabbitmq/rabbitmq.conf" <<'CONF'
loopback_users = none
listeners.tcp.default = 5672
CONF

# MariaDB: system tables made now, so a container starts in seconds.
if [[ ! -d $root/var/lib/mysql/mysql ]]; then
  chroot "$root" mariadb-install-db --user=mysql >"$work/installdb.log" 2>&1 \
    || { tail -n 30 "$work/installdb.log" >&2; die "mariadb-install-db failed (log above)"; }
fi

cat >"$root/usr/local/bin/start-rabbitmq" <<'SH'
#!/bin/sh
set -e
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
exec runuser -u rabbitmq -- /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
SH
cat >"$root/usr/local/bin/start-redis" <<'SH'
#!/bin/sh
exec redis-server --bind 0.0.0.0 --protected-mode no --dir /var/lib/redis --save '3600 1 300 100 60 10000' --appendonly no --daemonize no "$@"
SH
cat >"$root/usr/local/bin/start-mariadb" <<'SH'
#!/bin/sh
set -e
pw=${MARIADB_ROOT_PASSWORD:-loadtest}
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld
cat >/run/mysqld/init.sql <<SQL
CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$pw';
ALTER USER 'root'@'%' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
SQL
chown mysql:mysql /run/mysqld/init.sql
exec mariadbd --user=mysql --bind-address=0.0.0.0 --skip-name-resolve \
  --init-file=/run/mysqld/init.sql --max-connections=2000 "$@"
SH
chmod +x "$root"/usr/local/bin/start-*

# Slim the layer: package lists, caches and docs are not needed at run time.
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root/etc/resolv.conf"
for m in proc dev; do umount -l "$root/$m" 2>/dev/null || true; done

say "docker import $base"
tar -C "$root" -c . | docker import \
  --change 'LABEL org.loadtest.recipe='"$recipe" \
  --change 'ENV LANG=C.UTF-8' - "$base" >/dev/null

build_service() { # name cmd port
  # The legacy builder prints a deprecation notice on every build: keep it in the log.
  docker build -q -t "$1" - >/dev/null 2>"$work/build.log" <<DOCKERFILE || { cat "$work/build.log" >&2; die "docker build $1 failed"; }
FROM $base
LABEL org.loadtest.recipe=$recipe
EXPOSE $3
CMD ["$2"]
DOCKERFILE
  say "built $1"
}
build_service "$rabbit" /usr/local/bin/start-rabbitmq 5672
build_service "$redis" /usr/local/bin/start-redis 6379
build_service "$mariadb" /usr/local/bin/start-mariadb 3306

chroot_versions=$(docker run --rm "$base" sh -c 'dpkg-query -W -f="\${Package} \${Version}\n" rabbitmq-server redis-server mariadb-server' || true)
say "versions:"$'\n'"$chroot_versions"
