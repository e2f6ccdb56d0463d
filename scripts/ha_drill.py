#!/usr/bin/env python3
"""High-availability drills on this machine (docs/high-availability.md).

    scripts/ha-drill.sh sentinel          Redis master, replica, 3 sentinels; kill -9 the master
    scripts/ha-drill.sh restarts [N]      one Redis, restarted N times (10), 10 s down each
    scripts/ha-drill.sh postgres          primary + synchronous standby; primary stopped -m immediate, standby promoted
    scripts/ha-drill.sh postgres-async    the same with an asynchronous standby

Each starts its own PostgreSQL and Redis processes (free ports on 127.0.0.1,
data under a temporary directory), two release chat_server pods, and
`chat_bench drill` (10 pairs, 500 msgs/s, senders on one pod, receivers on
the other), injects the fault, then prints what users saw: messages
acknowledged and lost, refused and stored anyway, duplicated, the longest
wait for an answer, when live delivery came back, and "offline" answers for
online recipients. Needs the release binaries (ha-drill.sh builds them).
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
PAIRS, RATE = 10, 500
LIVE = 2000  # ms: a delivery later than this is not live
PREFIX = f"d{os.getpid()}x"  # the drill's usernames
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def now_ms():
    return int(time.time() * 1000)


def wait_port(port, what, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"ha-drill: {what} did not listen on {port}")


def start(args, log, env=None):
    p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)
    procs.append(p)
    return p


def as_pg(args, **kw):
    if os.getuid() == 0:
        args = ["runuser", "-u", "postgres", "--"] + args
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"ha-drill: {' '.join(args)} failed:\n{r.stdout}")
    return r


def pg_bin():
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    if not dirs:
        sys.exit("ha-drill: PostgreSQL missing (scripts/services.sh installs it)")
    return dirs[-1]


class Postgres:
    def __init__(self, work, name, port):
        self.data, self.port, self.bin = os.path.join(work, name), port, pg_bin()

    def make_dir(self):
        os.makedirs(self.data)
        if os.getuid() == 0:
            shutil.chown(self.data, "postgres")
        os.chmod(self.data, 0o700)

    def init_primary(self):
        self.make_dir()
        as_pg([f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
               "--locale=C.UTF-8"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{self.data}'\n"
                    "max_connections = 200\nwal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n")
        self.start()
        self.psql("CREATE ROLE chatuser LOGIN PASSWORD 'chatpass'")
        self.psql("CREATE DATABASE chatdb OWNER chatuser")

    def init_standby(self, primary):
        self.make_dir()
        as_pg([f"{self.bin}/pg_basebackup", "-D", self.data, "-h", "127.0.0.1", "-p", str(primary.port),
               "-U", "postgres", "-R", "-X", "stream"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"unix_socket_directories = '{self.data}'\n")
        self.start()

    def start(self):
        as_pg([f"{self.bin}/pg_ctl", "-D", self.data, "-o", f"-p {self.port}", "-l",
               os.path.join(self.data, "server.log"), "-w", "start"])

    def stop(self, mode="fast"):
        as_pg([f"{self.bin}/pg_ctl", "-D", self.data, "-m", mode, "stop"])

    def promote(self):
        as_pg([f"{self.bin}/pg_ctl", "-D", self.data, "-w", "promote"])

    def psql(self, sql, db="postgres"):
        return as_pg([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", db,
                      "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql]).stdout


def redis_server(work, name, port, *extra):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    p = start(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", d, *extra], os.path.join(d, "log"))
    wait_port(port, name)
    return p


def sentinels(work, master_port, n=3):
    ports = [free_port() for _ in range(n)]
    for i, port in enumerate(ports):
        conf = os.path.join(work, f"sentinel{i}.conf")
        with open(conf, "w") as f:
            f.write(f"port {port}\nbind 127.0.0.1\ndir {work}\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master_port} 2\n"
                    "sentinel down-after-milliseconds mymaster 1000\n"
                    "sentinel failover-timeout mymaster 5000\n")
        start(["redis-server", conf, "--sentinel"], os.path.join(work, f"sentinel{i}.log"))
        wait_port(port, f"sentinel {i}")
    return ports


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=5).stdout


def pods(work, env):
    ports = []
    for name in ("pod-a", "pod-b"):
        port = free_port()
        e = dict(os.environ, HOSTNAME=name, RATE_LIMITS="off", METRICS_PORT="off", LOG_LEVEL="info",
                 DB_NAME="chatdb", DB_USER="chatuser", DB_PASS="chatpass", **env)
        start([f"{BIN}/chat_server", str(port)], os.path.join(work, f"{name}.log"), e)
        wait_port(port, name)
        ports.append(port)
    return ports


def load(work, ports, seconds):
    events = os.path.join(work, "events")
    p = subprocess.Popen([f"{BIN}/chat_bench", "drill", "--hosts", f"127.0.0.1:{ports[0]}", "--recv-hosts",
                          f"127.0.0.1:{ports[1]}", "-p", str(PAIRS), "--rate", str(RATE), "-s", str(seconds),
                          "--events", events, "--timeout", str(seconds + 120), "--prefix", PREFIX],
                         stdout=subprocess.PIPE, text=True)
    procs.append(p)
    return p, events


def started(events):
    """Waits until the load's first message is out (its users logged in)."""
    end = time.time() + 60
    while time.time() < end:
        if os.path.exists(events) and os.path.getsize(events) > 0:
            return
        time.sleep(0.1)
    sys.exit("ha-drill: the load never started")


def read_events(path):
    sent, answer, recv = {}, {}, {}
    for line in open(path):
        f = line.split()
        if f[0] == "sent":
            sent[(int(f[1]), int(f[2]))] = int(f[3])
        elif f[0] == "ack":
            answer[(int(f[1]), int(f[2]))] = (f[3], int(f[4]))
        elif f[0] == "refused":
            answer[(int(f[1]), int(f[2]))] = ("refused", int(f[4]))
        elif f[0] == "recv":
            recv.setdefault((int(f[1]), int(f[2])), []).append(int(f[3]))
    return sent, answer, recv


def stored(pg, prefix):
    """(pair, seq) -> how many rows PostgreSQL holds."""
    out = pg.psql(f"SELECT sender_username, split_part(message_text, ' ', 1) FROM messages "
                  f"WHERE sender_username LIKE '{prefix}s%'", db="chatdb")
    rows = {}
    for line in out.splitlines():
        user, seq = line.split("|")
        key = (int(user[len(prefix) + 1:]), int(seq))
        rows[key] = rows.get(key, 0) + 1
    return rows


def report(title, events, faults, pg=None, prefix=None):
    """faults: [(down_ms, back_ms)]: when the service went away and came back."""
    sent, answer, recv = read_events(events)
    waits = [answer[k][1] - t for k, t in sent.items() if k in answer]
    acked = [k for k, a in answer.items() if a[0] != "refused"]
    refused = [k for k, a in answer.items() if a[0] == "refused"]
    print(f"\n== {title}")
    print(f"sent {len(sent)}, acknowledged {len(acked)}, refused {len(refused)}, "
          f"unanswered {len(sent) - len(answer)}")
    if waits:
        waits.sort()
        print(f"answer wait: median {waits[len(waits) // 2]} ms, p99 {waits[int(len(waits) * 0.99)]} ms, "
              f"longest {waits[-1]} ms; over 1 s: {sum(w > 1000 for w in waits)}")
    if pg is not None:
        rows = stored(pg, prefix)
        lost = [k for k in acked if rows.get(k, 0) == 0]
        ghost = [k for k in refused if rows.get(k, 0) > 0]
        dup = [k for k, n in rows.items() if n > 1]
        print(f"acknowledged but not stored (lost): {len(lost)}; refused but stored: {len(ghost)}; "
              f"stored twice: {len(dup)}")
    for i, (down, back) in enumerate(faults, 1):
        # Up to the next fault (or the end).
        until = faults[i][0] if i < len(faults) else float("inf")
        after = sorted((t, k) for k, t in sent.items() if back <= t < until)
        live = [t for t, k in after if any(r - t <= LIVE for r in recv.get(k, []))]
        first_live = (live[0] - back) if live else None
        # From when on every message was delivered live.
        steady = None
        for t, k in reversed(after):
            if not any(r - t <= LIVE for r in recv.get(k, [])):
                steady = t - back
                break
        offline_late = sum(1 for t, k in after if t > back + LIVE and answer.get(k, ("",))[0] == "offline")
        writes = sorted(answer[k][1] for t, k in after if answer.get(k, ("",))[0] in ("delivered", "offline"))
        print(f"fault {i}: down {down - faults[0][0]} ms into the drill, back after {back - down} ms; "
              f"first live delivery of a message sent after: +{first_live} ms; "
              f"every later message live from +{steady if steady is not None else 0} ms; "
              f"'offline' for an online recipient later than 2 s: {offline_late}; "
              f"first acknowledgement after: +{(writes[0] - back) if writes else None} ms")


def redis_drill(work, mode, restarts):
    pg = Postgres(work, "pg", free_port())
    pg.init_primary()
    db = dict(DB_HOST="127.0.0.1", DB_PORT=str(pg.port))
    master = free_port()
    proc = redis_server(work, "redis-a", master)
    faults = []
    if mode == "sentinel":
        replica = free_port()
        redis_server(work, "redis-b", replica, "--replicaof", "127.0.0.1", str(master))
        sports = sentinels(work, master)
        env = dict(db, REDIS_SENTINELS=",".join(f"127.0.0.1:{p}" for p in sports), REDIS_MASTER_NAME="mymaster")
        ports = pods(work, env)
        bench, events = load(work, ports, 30)
        started(events)
        time.sleep(10)
        down = now_ms()
        proc.kill()
        while True:
            addr = redis_cli(sports[0], "SENTINEL", "get-master-addr-by-name", "mymaster").split()
            if addr and addr[-1] != str(master):
                break
            time.sleep(0.05)
        faults.append((down, now_ms()))
        print(f"sentinels promoted 127.0.0.1:{addr[-1]} {faults[0][1] - down} ms after the kill")
    else:
        ports = pods(work, dict(db, REDIS_HOST="127.0.0.1", REDIS_PORT=str(master)))
        bench, events = load(work, ports, 12 + restarts * 14)
        started(events)
        time.sleep(6)
        for _ in range(restarts):
            down = now_ms()
            proc.kill()
            proc.wait()
            time.sleep(10)
            proc = redis_server(work, "redis-a", master)
            faults.append((down, now_ms()))
            time.sleep(4)
    print(bench.communicate()[0].strip())
    report(f"Redis {mode}", events, faults, pg, PREFIX)


def pg_drill(work, synchronous):
    primary, standby = Postgres(work, "pg-primary", free_port()), Postgres(work, "pg-standby", free_port())
    primary.init_primary()
    standby.init_standby(primary)
    if synchronous:
        # Only now: with no standby yet, every commit would wait for one.
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        primary.psql("SELECT pg_reload_conf()")
    want = "sync" if synchronous else "async"
    end = time.time() + 30
    while primary.psql("SELECT sync_state FROM pg_stat_replication").strip() != want:
        if time.time() > end:
            sys.exit(f"ha-drill: the standby never became {want}")
        time.sleep(0.2)
    print(f"standby streaming, {want}")
    redis = free_port()
    redis_server(work, "redis", redis)
    env = dict(DB_HOST=f"127.0.0.1:{primary.port},127.0.0.1:{standby.port}", REDIS_HOST="127.0.0.1",
               REDIS_PORT=str(redis))
    ports = pods(work, env)
    bench, events = load(work, ports, 30)
    started(events)
    time.sleep(10)
    down = now_ms()
    primary.stop("immediate")
    time.sleep(1)
    standby.promote()
    back = now_ms()
    print(f"primary stopped (-m immediate), standby promoted {back - down} ms later")
    print(bench.communicate()[0].strip())
    kind = "synchronous" if synchronous else "asynchronous"
    report(f"PostgreSQL failover, {kind} standby", events, [(down, back)], standby, PREFIX)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("sentinel", "restarts", "postgres", "postgres-async"):
        sys.exit(__doc__)
    work = tempfile.mkdtemp(prefix="chatp-drill.", dir="/var/tmp")
    os.chmod(work, 0o755)
    try:
        if mode in ("sentinel", "restarts"):
            redis_drill(work, mode, int(sys.argv[2]) if len(sys.argv) > 2 else 10)
        else:
            pg_drill(work, mode == "postgres")
        print(f"(logs in {work})")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except OSError:
                pass
        for d in glob.glob(os.path.join(work, "pg*")):
            if os.path.exists(os.path.join(d, "postmaster.pid")):
                subprocess.run(["runuser", "-u", "postgres", "--", f"{pg_bin()}/pg_ctl", "-D", d, "-m", "fast",
                                "stop"] if os.getuid() == 0 else [f"{pg_bin()}/pg_ctl", "-D", d, "stop"],
                               capture_output=True)


if __name__ == "__main__":
    main()
