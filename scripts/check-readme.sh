#!/usr/bin/env bash
# The README's first command, as a newcomer runs it (after its links): scripts/run.sh (which
# builds the release server and client and starts its own PostgreSQL and
# Redis), then the client from the README connecting, signing up and
# logging out. Called by scripts/test.sh; fails loudly.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every link of README.md and docs/, and every README or docs citation in
# the code, leads somewhere.
python3 scripts/check_docs.py

data=$(mktemp -d /var/tmp/chatp-readme.XXXXXX)
# PostgreSQL runs as the postgres user when this runs as root.
chmod 755 "$data"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
dashboard_port=$(free_port)
web_port=$(free_port)
log="$data/run.log"
CHATP_DATA_DIR="$data/data" DASHBOARD_PORT="$dashboard_port" WEB_PORT="$web_port" setsid bash scripts/run.sh "$port" >"$log" 2>&1 &
run_pid=$!
cleanup() {
    kill -INT -- "-$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

for _ in $(seq 600); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
    kill -0 "$run_pid" 2>/dev/null || { echo "check-readme: scripts/run.sh exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.5
done
grep -q "./target/release/chat_client localhost $port" "$log" || { echo "check-readme: run.sh did not say how to connect" >&2; cat "$log" >&2; exit 1; }
name="readme$$"
out=$(printf '2\n%s\npw\npw\nbye\n' "$name" | ./target/release/chat_client localhost "$port") || {
    echo "check-readme: the client failed:" >&2
    echo "$out" >&2
    exit 1
}
echo "$out" | grep -q "Registration successful. Welcome $name!" || { echo "check-readme: no signup:" >&2; echo "$out" >&2; exit 1; }
echo "$out" | grep -q "Goodbye!" || { echo "check-readme: no logout:" >&2; echo "$out" >&2; exit 1; }
# The dashboard run.sh started counts the new user within a sample or two.
status=""
for _ in $(seq 30); do
    status=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$dashboard_port/api/status', timeout=5).read().decode())" 2>/dev/null) || true
    echo "$status" | grep -q '"registered_users":[1-9]' && break
    sleep 0.5
done
echo "$status" | grep -q '"registered_users":[1-9]' || { echo "check-readme: the dashboard did not count the user: $status" >&2; cat "$log" >&2; exit 1; }
# The web client's page at the address run.sh printed.
grep -q "The web client, in a browser: http://127.0.0.1:$web_port/" "$log" || { echo "check-readme: run.sh did not print the web client's address" >&2; cat "$log" >&2; exit 1; }
python3 -c "
import urllib.request
r = urllib.request.urlopen('http://127.0.0.1:$web_port/', timeout=5)
assert r.status == 200 and r.headers['Content-Type'].startswith('text/html'), (r.status, r.headers['Content-Type'])
" || { echo "check-readme: no web client page on $web_port" >&2; cat "$log" >&2; exit 1; }
# docs/users.md: chat_admin on the same set-up, one command.
CHATP_DATA_DIR="$data/data" bash scripts/admin.sh list | grep -q "\"user\":\"$name\"" || {
    echo "check-readme: scripts/admin.sh list did not show $name" >&2
    exit 1
}
echo "check-readme: scripts/run.sh served ./target/release/chat_client on port $port, the web client on $web_port and the dashboard on $dashboard_port"
