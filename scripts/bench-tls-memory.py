#!/usr/bin/env python3
"""Memory of a logged-in TLS connection against a plaintext one, in one run.

usage: scripts/bench-tls-memory.py [N]   (500 of each by default)

Needs a release chat_server (cargo build --release --bin chat_server) and
the DB_* / REDIS_* of running services (source DIR/env of
scripts/services.sh). Makes a throw-away certificate with openssl, starts
chat_server with both ports, signs up N users on each, and prints the
server's RSS growth per connection (VmRSS).
"""
import os, socket, ssl, subprocess, sys, tempfile, threading, time
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
tmp = tempfile.mkdtemp()
cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", key, "-out", cert], check=True, capture_output=True)
env = dict(os.environ)
env.update(TLS_CERT_FILE=cert, TLS_KEY_FILE=key, TLS_PORT="0", BIND_ADDR="127.0.0.1", METRICS_PORT="off",
           RATE_LIMITS="off", HOSTNAME=f"memprobe{os.getpid()}", REDIS_KEY_PREFIX=f"memprobe{os.getpid()}:", LOG_LEVEL="info", AUTH_TIMEOUT_SECS="300")
p = subprocess.Popen([os.path.join(root, "target/release/chat_server"), "0"], env=env, stderr=subprocess.PIPE, text=True)
plain = tls = None
while plain is None or tls is None:
    line = p.stderr.readline()
    if "as pod" in line:
        port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        if "(TLS)" in line: tls = port
        else: plain = port
threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
def rss():
    for l in open(f"/proc/{p.pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
N = int(sys.argv[1]) if len(sys.argv) > 1 else 500
ctx = ssl.create_default_context(cafile=cert)
def run(kind):
    socks = []
    for i in range(N):
        s = socket.create_connection(("127.0.0.1", tls if kind == "tls" else plain))
        if kind == "tls": s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        f = s.makefile("rwb", buffering=0)
        assert f.readline().strip() == b"AUTH_REQUEST"
        name = f"m{kind}{os.getpid()}x{i}".encode()
        f.write(b"SIGNUP\n" + name + b"\npw\n")
        assert f.readline().strip() == b"SIGNUP_PROMPT"
        l = f.readline()
        assert l.startswith(b"AUTH_SUCCESS"), l
        socks.append((s, f))
    time.sleep(1.0)
    return socks
base = rss(); a = run("plain"); after_plain = rss()
b = run("tls"); after_tls = rss()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"{cpu}, {os.cpu_count()} cores: baseline {base} KiB; +{N} plaintext logged-in: {(after_plain-base)/N:.1f} KiB/conn; +{N} TLS logged-in: {(after_tls-after_plain)/N:.1f} KiB/conn")
p.kill()
