#!/usr/bin/env bash
# Builds chat_server, chat_client and chat_admin and runs chat_server on port 30080 (or
# $1) with the web client on http://127.0.0.1:8081/ (WEB_PORT; off: none),
# and chat_dashboard on http://127.0.0.1:8088/ (DASHBOARD_PORT), all
# listening on 127.0.0.1 (BIND_ADDR=0.0.0.0 to accept other machines; over
# plain http the web client then logs in from this machine only),
# with its own PostgreSQL and Redis. Their data is kept between runs, and
# across reboots, in $CHATP_DATA_DIR (default: ~/.local/share/chatp-dev, or
# /var/lib/chatp-dev when run as root, since PostgreSQL runs as the postgres
# user and cannot enter /root). fsync is off there: a development instance.
# Ctrl-C stops the server and the services.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-30080}
# shellcheck source=scripts/dev-data.sh
source scripts/dev-data.sh

bash scripts/services.sh start "$data"
stop_services() { bash scripts/services.sh stop "$data" >/dev/null 2>&1 || true; }
trap stop_services EXIT
# shellcheck disable=SC1091
source "$data/env"

cargo build --release --locked --bin chat_server --bin chat_client --bin chat_dashboard --bin chat_admin
dashboard_port=${DASHBOARD_PORT:-8088}
web_port=${WEB_PORT:-8081}
web_url=""
if [ "$web_port" != off ]; then
    web_url="http://127.0.0.1:$web_port/"
    # With a certificate (TLS_CERT_FILE, TLS_KEY_FILE) the web port is https.
    [ -z "${TLS_CERT_FILE:-}" ] || web_url="https://127.0.0.1:$web_port/"
fi
cat <<MSG

chatp is starting on 127.0.0.1:$port (PostgreSQL 127.0.0.1:$DB_PORT, Redis 127.0.0.1:$REDIS_PORT,
data in $data). Connect from another terminal:

    ./target/release/chat_client localhost $port

${web_url:+The web client, in a browser: $web_url
}The dashboard: http://127.0.0.1:$dashboard_port/
Accounts, invite codes: scripts/admin.sh list (see docs/users.md)

MSG
BIND_ADDR=${BIND_ADDR:-127.0.0.1} DASHBOARD_PORT=$dashboard_port LOG_LEVEL=warn ./target/release/chat_dashboard &
dashboard_pid=$!
stop_all() { kill "$dashboard_pid" 2>/dev/null || true; stop_services; }
trap stop_all EXIT
BIND_ADDR=${BIND_ADDR:-127.0.0.1} HOSTNAME=${HOSTNAME:-$(hostname)} WEB_PORT=$web_port ./target/release/chat_server "$port"
