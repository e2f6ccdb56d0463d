#!/usr/bin/env bash
# chat_admin on the development set-up: the PostgreSQL and Redis that
# scripts/run.sh started (same CHATP_DATA_DIR). Arguments go to chat_admin:
#
#   scripts/admin.sh add-user alice
#   scripts/admin.sh invite --count 3
#   scripts/admin.sh list
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/dev-data.sh
source scripts/dev-data.sh
if [ ! -f "$data/env" ]; then
    echo "admin.sh: no development services in $data: start scripts/run.sh first (same CHATP_DATA_DIR)" >&2
    exit 1
fi
# shellcheck disable=SC1091
source "$data/env"
cargo build --release --locked --quiet --bin chat_admin
exec ./target/release/chat_admin "$@"
