#!/usr/bin/env bash
# Builds and runs chat_server on port 30080 (or $1) with its own PostgreSQL
# and Redis (data in $CHATP_DATA_DIR, default /tmp/chatp-dev, kept between
# runs). Ctrl-C stops the server and the services.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-30080}
data=${CHATP_DATA_DIR:-/tmp/chatp-dev}

bash scripts/services.sh start "$data"
stop_services() { bash scripts/services.sh stop "$data" >/dev/null 2>&1 || true; }
trap stop_services EXIT
# shellcheck disable=SC1091
source "$data/env"

cargo build --release --locked --bin chat_server
cat <<MSG

chatp is starting on port $port (PostgreSQL 127.0.0.1:$DB_PORT, Redis 127.0.0.1:$REDIS_PORT).
Connect from another terminal:   nc 127.0.0.1 $port
(or, once the client is built:   chat_client localhost $port)

MSG
HOSTNAME=${HOSTNAME:-$(hostname)} ./target/release/chat_server "$port"
