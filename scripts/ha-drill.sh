#!/usr/bin/env bash
# High-availability drills (docs/high-availability.md): builds the release
# binaries, then runs scripts/ha_drill.py with the same arguments:
#   scripts/ha-drill.sh sentinel | restarts [N] | postgres | postgres-async
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server postgresql >&2
fi
cargo build --release --locked --bin chat_server --bin chat_bench
exec python3 scripts/ha_drill.py "$@"
