#!/usr/bin/env bash
# The standard benchmark set (BENCHMARKS.md): starts a fresh PostgreSQL and
# Redis (scripts/services.sh: fsync, synchronous_commit and full_page_writes
# off), two release chat_server pods on 127.0.0.1, runs chat_bench scenarios
# against them, and prints the table that goes into BENCHMARKS.md with the
# commit, the machine and the PostgreSQL settings.
#
#   scripts/bench.sh            every run (about 5 minutes on 2 cores)
#   scripts/bench.sh quick      smaller runs, for a quick look
set -euo pipefail
cd "$(dirname "$0")/.."

quick=${1:-}
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
    HOSTNAME=$1 BIND_ADDR=127.0.0.1 LOG_LEVEL=warn MAX_CONNECTIONS=10100 RATE_LIMITS=off \
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
# bench LABEL TARGET ARGS...: one chat_bench run, its line kept for the table.
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
if [ "$quick" = quick ]; then
    m=500 n=100 idle=1000 wide=200
else
    m=2000 n=500 idle=10000 wide=1000
fi
bench "dm -p 10 -m $m, closed loop, one pod" ">= 9,000 msgs/s, 0 lost, 0 duplicated" dm -p 10 -m "$m" --hosts "$A"
bench "same, receivers on a second pod" ">= 7,000 msgs/s, 0 lost" dm -p 10 -m "$m" --hosts "$A" --recv-hosts "$B"
bench "dm -p 10 --rate 500, one pod" "p99 <= 2 ms" dm -p 10 -m 500 --rate 500 --hosts "$A"
bench "dm -p 10 --rate 500, cross-pod" "p99 <= 3 ms" dm -p 10 -m 500 --rate 500 --hosts "$A" --recv-hosts "$B"
bench "broadcast -r 50 -m 200" ">= 50,000 deliveries/s, p99 <= 5 ms" broadcast -r 50 -m 200 --hosts "$A"
bench "broadcast -r $wide -m 20" "every delivery made, p99 reported" broadcast -r "$wide" -m 20 --hosts "$A"
bench "login -n $n" "rate, CPU of Argon2id per login" login -n "$n" --hosts "$A" --pid "$a_pid"
bench "resume -n $n, sessions of pod A resumed on pod B" "rate, CPU per resume (no Argon2)" resume -n "$n" --hosts "$A" --recv-hosts "$B" --pid "$b_pid"
bench "idle -c $idle" "all up on one pod, <= 16 KiB RSS per connection" idle -c "$idle" -s 10 --hosts "$A" --pid "$a_pid"

pg_setting() { PGPASSWORD=$DB_PASS psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d "$DB_NAME" -Atc "SHOW $1"; }
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo "+dirty")
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
pg="PostgreSQL $(pg_setting server_version): fsync=$(pg_setting fsync), synchronous_commit=$(pg_setting synchronous_commit), full_page_writes=$(pg_setting full_page_writes), shared_buffers=$(pg_setting shared_buffers)"

python3 - "$results" "$commit" "$(nproc) cores ($cpu), $mem" "$pg" <<'EOF'
import sys
results, commit, machine, pg = sys.argv[1:5]
print(f"Commit {commit}; {machine}; {pg}; server, PostgreSQL, Redis and chat_bench on the same machine.\n")
print("| run | target | result | figures |")
print("|---|---|---|---|")
keys = ["msgs_per_s", "deliveries_per_s", "per_s", "latency_p50_ms", "latency_p99_ms", "latency_max_ms",
        "lost", "duplicated", "out_of_order", "server_cpu_ms_each", "up", "rss_per_conn_kib", "threads_during"]
for row in open(results):
    label, target, line = row.rstrip("\n").split("\t")
    f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    shown = ", ".join(f"{k}={f[k]}" for k in keys if k in f)
    failed = any(f.get(k, "0") != "0" for k in ("lost", "duplicated", "failed"))
    print(f"| {label} | {target} | {'LOST' if failed else 'ok'} | {shown} |")
print("\nEvery figure, as chat_bench printed it:\n")
for row in open(results):
    print(f"    {row.rstrip().split(chr(9))[2]}")
EOF
