#!/usr/bin/env bash
# Start or stop a private PostgreSQL and Redis for chatp: their own data
# directory, free ports on 127.0.0.1, nothing shared with a system instance.
#
#   scripts/services.sh start DIR [pg|redis|all]   start them, write DIR/env
#   scripts/services.sh stop DIR [pg|redis|all]    stop them (data stays)
#   scripts/services.sh env DIR                    print the env lines
#
# DIR/env holds `export` lines for chat_server (DB_HOST, DB_PORT, DB_NAME,
# DB_USER, DB_PASS, REDIS_HOST, REDIS_PORT), a superuser for bootstrap SQL
# (DB_SUPERUSER, same password), and for TLS tests
# REDIS_TLS_PORT and CHATP_TEST_CA. A second `start` on the same DIR reuses
# the data and the ports it chose the first time.
#
# Both also speak TLS with a certificate for 127.0.0.1 and localhost from a
# CA made here (DIR/tls/ca.crt): PostgreSQL with ssl=on (plaintext still
# allowed), Redis on a second port (REDIS_TLS_PORT).
#
# Installs what is missing (Debian packages redis-server, postgresql).
# PostgreSQL refuses to run as root: as root, it runs as the `postgres` user.
# fsync is off: these instances are for development, tests and benchmarks.
set -euo pipefail

cmd=${1:?usage: services.sh start|stop|env DIR [pg|redis|all]}
dir=${2:?usage: services.sh start|stop|env DIR [pg|redis|all]}
which=${3:-all}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

DB_NAME=${DB_NAME:-chatdb}
DB_USER=${DB_USER:-chatuser}
DB_PASS=${DB_PASS:-chatpass}

log() { echo "services: $*" >&2; }

apt_install() {
    log "installing $*"
    if [ -z "${_apt_updated:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        _apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

pg_bin() {
    local b=${PG_BIN:-}
    if [ -z "$b" ]; then
        if [ -x /usr/lib/postgresql/15/bin/initdb ]; then
            b=/usr/lib/postgresql/15/bin
        else
            b=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
        fi
    fi
    if [ -z "$b" ] || [ ! -x "$b/initdb" ]; then
        apt_install postgresql
        b=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    echo "$b"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Runs a command as the postgres user when we are root (initdb/postgres refuse root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# A CA and a server certificate for 127.0.0.1 and localhost, once per DIR.
make_tls() {
    local t="$dir/tls"
    [ -s "$t/server.crt" ] && return 0
    command -v openssl >/dev/null || apt_install openssl
    mkdir -p "$t"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=chatp-services-ca" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout "$t/ca.key" -out "$t/ca.crt" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
        -keyout "$t/server.key" -out "$t/server.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$t/server.ext"
    openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial -days 3650 \
        -extfile "$t/server.ext" -out "$t/server.crt" 2>/dev/null
    chmod 644 "$t/ca.crt" "$t/server.crt"
}

port_of() { # name
    local f="$dir/$1.port"
    [ -s "$f" ] || free_port >"$f"
    cat "$f"
}

start_pg() {
    local bin; bin=$(pg_bin)
    local data="$dir/pg" port; port=$(port_of pg)
    if [ ! -s "$data/PG_VERSION" ]; then
        mkdir -p "$data"
        [ "$(id -u)" = 0 ] && chown postgres: "$data" && chmod 700 "$data" && chmod o+x "$dir"
        as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
        cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 400
CONF
        fresh=1
    fi
    if ! grep -q '^ssl = on' "$data/postgresql.conf"; then
        make_tls
        cp "$dir/tls/server.crt" "$dir/tls/server.key" "$data/"
        chmod 600 "$data/server.key"
        [ "$(id -u)" = 0 ] && chown postgres: "$data/server.crt" "$data/server.key"
        echo "ssl = on" >>"$data/postgresql.conf"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$data" -o "-p $port" -l "$data/server.log" -w -t 60 start >&2 \
            || { tail -n 20 "$data/server.log" >&2; exit 1; }
    fi
    if [ -n "${fresh:-}" ]; then
        as_pg "$bin/psql" -h "$data" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 >&2 <<SQL
CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASS';
CREATE DATABASE $DB_NAME OWNER $DB_USER;
SQL
    fi
    # A superuser for what only an operator's bootstrap does (the roles of
    # helm-chart/chat-app/files/roles.sql), kept apart from chatp's own user.
    as_pg "$bin/psql" -h "$data" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 >&2 <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${DB_USER}_admin') THEN
    CREATE ROLE ${DB_USER}_admin LOGIN SUPERUSER PASSWORD '$DB_PASS';
  END IF;
END \$\$;
SQL
    log "postgres on 127.0.0.1:$port (data $data)"
}

stop_pg() {
    local bin; bin=$(pg_bin)
    [ -s "$dir/pg/PG_VERSION" ] || return 0
    as_pg "$bin/pg_ctl" -D "$dir/pg" -m fast -w stop >/dev/null 2>&1 || true
}

start_redis() {
    command -v redis-server >/dev/null || apt_install redis-server
    local port; port=$(port_of redis)
    local tls_port; tls_port=$(port_of redis-tls)
    make_tls
    if [ -s "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
        log "redis already on 127.0.0.1:$port"; return 0
    fi
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --tls-port "$tls_port" --tls-cert-file "$dir/tls/server.crt" --tls-key-file "$dir/tls/server.key" \
        --tls-ca-cert-file "$dir/tls/ca.crt" --tls-auth-clients no \
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --dir "$dir" >&2
    for _ in $(seq 100); do
        redis-cli -p "$port" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    redis-cli -p "$port" ping >/dev/null || { log "redis did not start"; cat "$dir/redis.log" >&2; exit 1; }
    log "redis on 127.0.0.1:$port (TLS on $tls_port)"
}

stop_redis() {
    [ -s "$dir/redis.pid" ] || return 0
    local pid; pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    rm -f "$dir/redis.pid"
}

write_env() {
    cat >"$dir/env" <<ENV
export DB_HOST=127.0.0.1
export DB_PORT=$(port_of pg)
export DB_NAME=$DB_NAME
export DB_USER=$DB_USER
export DB_PASS=$DB_PASS
export DB_SUPERUSER=${DB_USER}_admin
export REDIS_HOST=127.0.0.1
export REDIS_PORT=$(port_of redis)
export REDIS_TLS_PORT=$(port_of redis-tls)
export CHATP_TEST_CA=$dir/tls/ca.crt
ENV
}

case "$cmd" in
    start)
        case "$which" in pg) start_pg ;; redis) start_redis ;; all) start_pg; start_redis ;; esac
        write_env ;;
    stop)
        case "$which" in pg) stop_pg ;; redis) stop_redis ;; all) stop_redis; stop_pg ;; esac ;;
    env) write_env; cat "$dir/env" ;;
    *) echo "usage: services.sh start|stop|env DIR [pg|redis|all]" >&2; exit 2 ;;
esac
