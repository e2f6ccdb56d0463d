#!/usr/bin/env bash
# The standard benchmark set (BENCHMARKS.md): starts a fresh PostgreSQL and
# Redis (scripts/services.sh: fsync, synchronous_commit and full_page_writes
# off), two release chat_server pods on 127.0.0.1, runs chat_bench scenarios
# against them, and prints the table that goes into BENCHMARKS.md with the
# commit, the machine, the PostgreSQL settings and two ceilings measured in
# the same run. Each row says whether it met its target ("met", "below
# target" with the figures and ratios, "LOST" if anything was lost).
#
#   scripts/bench.sh            every run (about 6 minutes on 2 cores)
#   scripts/bench.sh quick      smaller runs, for a quick look
#   scripts/bench.sh release    every run; exits 1 if a row misses its target
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-}
case "$mode" in
"" | quick | release) ;;
*)
    echo "usage: scripts/bench.sh [quick|release]" >&2
    exit 2
    ;;
esac
dir=$(mktemp -d /tmp/chatp-bench.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    bash scripts/services.sh stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

bash scripts/services.sh start "$dir" >&2
# shellcheck disable=SC1091
source "$dir/env"
cargo build --release --locked --bin chat_server --bin chat_bench >&2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_pod NAME: a chat_server on a free port; sets $port and $pid.
start_pod() {
    port=$(free_port)
    # RATE_LIMITS=off: chat_bench's users send as fast as the server answers.
    # DB_SSLMODE=disable, as pgbench below (PGSSLMODE): the test services
    # speak TLS, which costs both about a fifth of their commit rate.
    HOSTNAME=$1 BIND_ADDR=127.0.0.1 LOG_LEVEL=warn MAX_CONNECTIONS=10100 RATE_LIMITS=off METRICS_PORT=0 DB_SSLMODE=disable \
        ./target/release/chat_server "$port" 2>"$dir/$1.log" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: $1 did not start:" >&2
    cat "$dir/$1.log" >&2
    exit 1
}

start_pod pod-a
a_port=$port a_pid=$pid
start_pod pod-b
b_port=$port b_pid=$pid

results="$dir/results"
run=0
# bench LABEL TARGET ARGS...: one chat_bench run, its line kept for the
# table. TARGET is what the row is judged by: comma-separated conditions on
# its figures, against numbers or the ceilings measured above
# (msgs_per_s>=0.6*pg_commits_per_s); "-" for a row that only measures.
bench() {
    local label=$1 target=$2
    shift 2
    run=$((run + 1))
    echo "bench: $label: chat_bench $*" >&2
    local line
    if ! line=$(./target/release/chat_bench "$@" --prefix "r${run}x" --timeout 900); then
        echo "bench: $label lost something: $line" >&2
    fi
    printf '%s\t%s\t%s\n' "$label" "$target" "$line" >>"$results"
}

A="127.0.0.1:$a_port"
B="127.0.0.1:$b_port"
if [ "$mode" = quick ]; then
    m=500 n=100 idle=1000 wide=200
else
    m=2000 n=500 idle=10000 wide=1000
fi

# Ceilings, measured here and now, that chat figures are judged against:
# how fast 10 clients can each insert and commit one message row in this
# PostgreSQL (pgbench), and how many round trips 10 loopback pairs make
# (chat_bench pingpong). Machines of one kind differ threefold; a ratio to
# a ceiling of the same run travels.
#
# The message row is a row of chatp's own `messages` table, with its five
# indexes and two foreign keys, each pgbench client in its own conversation
# (as each chat_bench pair): the work every stored message costs the
# database. The same row in a table without indexes or foreign keys (the
# ceiling of tables before 2026-11-26) is measured too and shown beside it.
psql_bench() { PGPASSWORD=$DB_PASS psql -q -v ON_ERROR_STOP=1 -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d "$DB_NAME" "$@"; }
psql_bench -c "CREATE TABLE IF NOT EXISTS bench_ceiling (id SERIAL PRIMARY KEY, conversation_id INT, sender_id INT,
     sender_username VARCHAR(50), message_text TEXT, timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP)" >&2
# Ten conversations between ten pairs of users, ids consecutive: client i
# writes in conversation conv0 + i as user user0 + i (checked below).
read -r conv0 user0 pairs <<<"$(psql_bench -At -F ' ' <<'SQL'
INSERT INTO users (username, password_hash) SELECT 'ceiling_a' || i, '-' FROM generate_series(0, 9) i ORDER BY i
    ON CONFLICT DO NOTHING;
INSERT INTO users (username, password_hash) SELECT 'ceiling_b' || i, '-' FROM generate_series(0, 9) i ORDER BY i
    ON CONFLICT DO NOTHING;
INSERT INTO conversations (participant1_id, participant2_id)
    SELECT a.user_id, b.user_id FROM users a JOIN users b ON b.username = 'ceiling_b' || substr(a.username, 10)
    WHERE a.username LIKE 'ceiling_a%' ORDER BY a.user_id ON CONFLICT DO NOTHING;
WITH c AS (SELECT conversation_id, participant1_id FROM conversations
           JOIN users ON user_id = participant1_id WHERE username LIKE 'ceiling_a%')
SELECT MIN(conversation_id), MIN(participant1_id),
       COUNT(*) FILTER (WHERE conversation_id - (SELECT MIN(conversation_id) FROM c)
                            = participant1_id - (SELECT MIN(participant1_id) FROM c)) FROM c;
SQL
)"
if [ "$pairs" != 10 ]; then
    echo "bench: the ceiling's ten conversations did not get consecutive ids ($conv0 $user0 $pairs)" >&2
    exit 1
fi
msg="'a message of an ordinary length, like most typed lines'"
printf '%s\n' '\set conv :conv0 + :client_id' '\set sender :user0 + :client_id' \
    "INSERT INTO messages (conversation_id, sender_id, sender_username, message_text) VALUES (:conv, :sender, 'ceiling', $msg);" \
    >"$dir/ceiling.sql"
echo "INSERT INTO bench_ceiling (conversation_id, sender_id, sender_username, message_text) VALUES (1, 1, 'sender', $msg);" \
    >"$dir/ceiling-bare.sql"
pgbench=$(ls -d /usr/lib/postgresql/*/bin/pgbench | sort -V | tail -n 1)
# commits_per_s SCRIPT: 10 pgbench clients for 10 s.
commits_per_s() {
    PGSSLMODE=disable PGPASSWORD=$DB_PASS "$pgbench" -n -c 10 -j 2 -T 10 -f "$1" -D "conv0=$conv0" -D "user0=$user0" \
        -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" "$DB_NAME" 2>/dev/null |
        sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -n 1
}
echo "bench: ceiling: pgbench -c 10 -T 10, one message row per commit" >&2
pg_commits=$(commits_per_s "$dir/ceiling.sql")
echo "bench: ceiling: pgbench -c 10 -T 10, one row per commit in a table without indexes" >&2
pg_bare=$(commits_per_s "$dir/ceiling-bare.sql")
echo "bench: ceiling: chat_bench pingpong -p 10 -m 20000" >&2
loopback=$(./target/release/chat_bench pingpong -p 10 -m 20000 | tr ' ' '\n' | sed -n 's/^round_trips_per_s=//p')
printf 'pg_commits_per_s=%s\npg_bare_commits_per_s=%s\nloopback_round_trips_per_s=%s\n' \
    "${pg_commits%.*}" "${pg_bare%.*}" "$loopback" >"$dir/ceilings"

bench "dm -p 10 -m $m, closed loop, one pod" "msgs_per_s>=0.6*pg_commits_per_s,lost==0,duplicated==0" \
    dm -p 10 -m "$m" --hosts "$A"
bench "same, receivers on a second pod" "msgs_per_s>=0.85*one_pod_msgs_per_s,lost==0" \
    dm -p 10 -m "$m" --hosts "$A" --recv-hosts "$B"
bench "dm -p 10 --rate 500, one pod" "latency_p99_ms<=2,lost==0" dm -p 10 -m 500 --rate 500 --hosts "$A"
bench "dm -p 10 --rate 500, cross-pod" "latency_p99_ms<=3,lost==0" \
    dm -p 10 -m 500 --rate 500 --hosts "$A" --recv-hosts "$B"
bench "broadcast -r 50 -m 200" "deliveries_per_s>=50000,latency_p99_ms<=5,lost==0" broadcast -r 50 -m 200 --hosts "$A"
bench "broadcast -r $wide -m 20" "lost==0" broadcast -r "$wide" -m 20 --hosts "$A"
bench "login -n $n" "-" login -n "$n" --hosts "$A" --pid "$a_pid"
bench "resume -n $n, sessions of pod A resumed on pod B" "server_cpu_ms_each<=2,failed==0" \
    resume -n "$n" --hosts "$A" --recv-hosts "$B" --pid "$b_pid"
bench "idle -c $idle" "up==$idle,rss_per_conn_kib<=16" idle -c "$idle" -s 10 --hosts "$A" --pid "$a_pid"

pg_setting() { PGPASSWORD=$DB_PASS psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d "$DB_NAME" -Atc "SHOW $1"; }
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo "+dirty")
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
pg="PostgreSQL $(pg_setting server_version): fsync=$(pg_setting fsync), synchronous_commit=$(pg_setting synchronous_commit), full_page_writes=$(pg_setting full_page_writes), shared_buffers=$(pg_setting shared_buffers)"

python3 - "$results" "$commit" "$(nproc) cores ($cpu), $mem" "$pg" "$dir/ceilings" "$mode" <<'EOF'
import re, sys
results, commit, machine, pg, ceilings_file, mode = sys.argv[1:7]
ceilings = dict(l.strip().split("=", 1) for l in open(ceilings_file) if "=" in l)
rows = []
for row in open(results):
    label, target, line = row.rstrip("\n").split("\t")
    rows.append((label, target, line, dict(kv.split("=", 1) for kv in line.split() if "=" in kv)))
# The cross-pod row is judged against the first (one-pod) closed-loop row.
ceilings["one_pod_msgs_per_s"] = rows[0][3].get("msgs_per_s", "0")


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def judge(target, f):
    """(verdict, details): met, below target, LOST (something lost), or measured (no target)."""
    if any(num(f.get(k)) for k in ("lost", "duplicated")):
        return "LOST", f"lost={f.get('lost')} duplicated={f.get('duplicated')}"
    if target == "-":
        return "measured", ""
    misses, ratios = [], []
    for cond in target.split(","):
        key, op, rhs = re.fullmatch(r"(\w+)(>=|<=|==)(.+)", cond).groups()
        value = num(f.get(key))
        factor, _, ceiling = rhs.partition("*")
        if ceiling:
            base = float(ceilings[ceiling])
            bound = float(factor) * base
            ratios.append(f"{(value or 0) / base:.2f}x {ceiling}, target {factor}x")
            if ceiling == "pg_commits_per_s":
                ratios.append(f"{(value or 0) / float(ceilings['pg_bare_commits_per_s']):.2f}x pg_bare_commits_per_s")
        else:
            bound = float(rhs)
        ok = value is not None and {">=": value >= bound, "<=": value <= bound, "==": value == bound}[op]
        if not ok:
            misses.append(f"{key}={f.get(key)} needs {op} {bound:g}")
    details = "; ".join(misses + ratios)
    return ("below target" if misses else "met"), details


print(f"Commit {commit}; {machine}; {pg}, no TLS to it (DB_SSLMODE=disable, and for pgbench); "
      "server, PostgreSQL, Redis and chat_bench on the same machine.")
print(f"Ceilings measured in this run: {float(ceilings['pg_commits_per_s']):,.0f} commits/s of one row in `messages` "
      f"(pg_commits_per_s: its indexes and foreign keys, each of 10 pgbench clients in its own conversation); "
      f"{float(ceilings['pg_bare_commits_per_s']):,.0f} commits/s of the same row in a table without indexes or "
      f"foreign keys (pg_bare_commits_per_s, for comparison); "
      f"{float(ceilings['loopback_round_trips_per_s']):,.0f} loopback round trips/s by 10 pairs.\n")
print("| run | target | result | figures |")
print("|---|---|---|---|")
keys = ["msgs_per_s", "deliveries_per_s", "per_s", "latency_p50_ms", "latency_p99_ms", "latency_max_ms",
        "lost", "duplicated", "out_of_order", "server_cpu_ms_each", "up", "rss_per_conn_kib", "threads_during"]
missed = 0
for label, target, line, f in rows:
    verdict, details = judge(target, f)
    missed += verdict in ("below target", "LOST")
    shown = ", ".join(f"{k}={f[k]}" for k in keys if k in f)
    print(f"| {label} | `{target}` | {verdict}{f' ({details})' if details else ''} | {shown} |")
print("\nEvery figure, as chat_bench printed it:\n")
for label, target, line, f in rows:
    print(f"    {line}")
if mode == "release" and missed:
    print(f"bench: {missed} rows missed their target", file=sys.stderr)
    sys.exit(1)
EOF
