#!/usr/bin/env bash
# Makes the PostgreSQL and NATS servers that the tests use reachable, for .ci/run (which sources this file) or for a
# command of yours:
#   bash scripts/services.sh go test ./internal/store/   runs the command with both servers ready, then stops them
#
# A server that STOA_TEST_PG / STOA_TEST_NATS name and that answers is used as it is (PostgreSQL: a query through
# psql; NATS: its INFO line says JetStream is on). Otherwise this starts its own on a free loopback port and exports
# the variable to point at it: PostgreSQL from Debian's package (installed when missing), initdb into a temporary
# folder with trust authentication and a database "test"; nats-server built from the nats-server Go module at the
# version go.mod requires, with JetStream in a temporary folder. Those it started are stopped and their folders
# removed when the shell exits (an EXIT trap); a server it did not start is never stopped.

export GOTOOLCHAIN=go1.27.3 # the toolchain go.mod names (go1.26.8's standard library has known vulnerabilities)
export STOA_TEST_PG=${STOA_TEST_PG:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}
export STOA_TEST_NATS=${STOA_TEST_NATS:-nats://127.0.0.1:4222}

services_pg_bin=""
services_pg_dir=""
services_nats_dir=""
services_nats_pid=""
services_apt_updated=""

# apt_install installs Debian packages, running apt-get update once first.
apt_install() {
  local sudo_cmd=""
  if [ "$(id -u)" != 0 ]; then sudo_cmd=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$services_apt_updated" ]; then
    $sudo_cmd apt-get update -qq || echo "apt-get update failed; trying the install with the current package lists"
    services_apt_updated=1
  fi
  $sudo_cmd apt-get install -y -qq "$@" >/dev/null
}

# tcp_open HOST PORT: whether something accepts TCP connections there.
tcp_open() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# free_port prints a loopback port that nothing listens on.
free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % 40000))
    if ! tcp_open 127.0.0.1 "$port"; then echo "$port"; return; fi
  done
  echo "services: no free loopback port found" >&2
  return 1
}

# wait_for DESCRIPTION COMMAND...: polls COMMAND until it succeeds, for 60 s at most.
wait_for() {
  local what=$1; shift
  for _ in $(seq 1 300); do
    if "$@"; then return; fi
    sleep 0.2 # polling interval
  done
  echo "services: $what did not come up within 60 s" >&2
  return 1
}

pg_answers() {
  PGCONNECT_TIMEOUT=3 psql "$STOA_TEST_PG" -Atqc 'select 1' >/dev/null 2>&1
}

# as_postgres runs a PostgreSQL server command; initdb and postgres refuse to run as root.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# postgres_bin prints the folder of the newest PostgreSQL server installed from Debian's packages, if any.
postgres_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true
}

start_postgres() {
  local bin port
  bin=$(postgres_bin)
  if [ -z "$bin" ]; then
    echo "== installing postgresql"
    apt_install postgresql
    bin=$(postgres_bin)
  fi
  services_pg_bin=$bin
  port=$(free_port)
  services_pg_dir=$(mktemp -d /tmp/stoa-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$services_pg_dir"; fi
  as_postgres "$bin/initdb" -D "$services_pg_dir/data" -U postgres --auth=trust -E UTF8 >"$services_pg_dir/initdb.log"
  # Its socket goes into its own folder, so the machine's PostgreSQL (socket in /var/run/postgresql) is untouched.
  as_postgres "$bin/pg_ctl" -D "$services_pg_dir/data" -l "$services_pg_dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $services_pg_dir" start >/dev/null
  "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres test
  export STOA_TEST_PG="postgres://postgres@127.0.0.1:$port/test?sslmode=disable"
  wait_for "PostgreSQL on port $port" pg_answers
  echo "== started PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($services_pg_dir)"
}

stop_postgres() {
  if [ -n "$services_pg_dir" ]; then
    as_postgres "$services_pg_bin/pg_ctl" -D "$services_pg_dir/data" -m fast -w stop >/dev/null || true
    rm -rf "$services_pg_dir"
    services_pg_dir=""
  fi
}

# nats_jetstream_answers HOST PORT: whether a NATS server there announces JetStream in its INFO line.
nats_jetstream_answers() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"; head -n 1 <&3' _ "$1" "$2" 2>/dev/null | grep -q '"jetstream":true'
}

start_nats() {
  local port
  port=$(free_port)
  services_nats_dir=$(mktemp -d /tmp/stoa-nats.XXXXXX)
  echo "== building nats-server $(go list -m -f '{{.Version}}' github.com/nats-io/nats-server/v2) (the version in go.mod)"
  go build -o "$services_nats_dir/nats-server" github.com/nats-io/nats-server/v2
  "$services_nats_dir/nats-server" -js -a 127.0.0.1 -p "$port" -sd "$services_nats_dir/js" \
    -l "$services_nats_dir/server.log" &
  services_nats_pid=$!
  export STOA_TEST_NATS="nats://127.0.0.1:$port"
  wait_for "nats-server on port $port" nats_jetstream_answers 127.0.0.1 "$port"
  echo "== started nats-server on 127.0.0.1:$port ($services_nats_dir)"
}

stop_nats() {
  if [ -n "$services_nats_pid" ]; then
    kill "$services_nats_pid" 2>/dev/null || true
    wait "$services_nats_pid" 2>/dev/null || true
    services_nats_pid=""
  fi
  if [ -n "$services_nats_dir" ]; then rm -rf "$services_nats_dir"; services_nats_dir=""; fi
}

stop_services() {
  stop_nats
  stop_postgres
}

# redact prints a URL without its user information (a password may be there).
redact() {
  sed -E 's#//[^/@]*@#//#; s#\?.*$##' <<<"$1"
}

# start_services makes both servers reachable, starting its own where the configured one does not answer.
start_services() {
  trap stop_services EXIT
  trap 'exit 130' INT # so that the EXIT trap runs on ^C and on kill too
  trap 'exit 143' TERM
  if ! command -v psql >/dev/null; then
    echo "== installing postgresql (psql)"
    apt_install postgresql
  fi
  if pg_answers; then
    echo "== PostgreSQL answers at $(redact "$STOA_TEST_PG")"
  else
    echo "== no PostgreSQL answers at $(redact "$STOA_TEST_PG"); starting one"
    start_postgres
  fi

  local re='^nats://([^/@]*@)?([^:/@]+):([0-9]+)/?$'
  if [[ $STOA_TEST_NATS =~ $re ]] && nats_jetstream_answers "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"; then
    echo "== NATS with JetStream answers at $(redact "$STOA_TEST_NATS")"
  else
    echo "== no NATS with JetStream answers at $(redact "$STOA_TEST_NATS"); starting one"
    start_nats
  fi
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then # run, not sourced
  set -euo pipefail
  cd "$(dirname "$0")/.."
  start_services
  "$@"
fi
