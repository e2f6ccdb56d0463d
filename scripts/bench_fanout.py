#!/usr/bin/env python3
"""A message to a big group: acknowledgement and delivery, across two pods.

    scripts/bench_fanout.py HOST:PORT,HOST:PORT USERS [ONLINE] [MESSAGES]

USERS is the `chat_bench seed -n` of the database (group 1's members follow
from it). ONLINE members of group 1 (200) log in, alternately on the two
pods; group 1's admin, on the first pod, sends MESSAGES (50) to the group
from inside its chat, one every 100 ms. Prints the acknowledgement's median
and p99, how many deliveries arrived of those expected, and the delivery
latency's median and p99 (send to arrival, one clock). Used for
BENCHMARKS.md, "A big team's database".
"""
import socket
import sys
import threading
import time

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_screens import Conn  # noqa: E402


def member(users, k):
    """Member k of group 1 (chat_bench seed): member 0 is its admin."""
    return f"u{(7919 + k * 4729) % users + 1:06d}"


def main():
    pods = sys.argv[1].split(",")
    users = int(sys.argv[2])
    online = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    messages = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    receivers = []
    lock = threading.Lock()

    def log_in(k):
        c = Conn(pods[k % 2])
        c.login(member(users, k), False)
        with lock:
            receivers.append(c)

    threads = [threading.Thread(target=log_in, args=(k,)) for k in range(1, online + 1)]
    for i in range(0, len(threads), 8):
        for t in threads[i:i + 8]:
            t.start()
        for t in threads[i:i + 8]:
            t.join()
    arrivals = []

    def receive(c):
        c.s.settimeout(5)
        seen = 0
        try:
            while seen < messages:
                line = c.line()
                if "fanout " in line:
                    sent = float(line.rsplit(" ", 1)[1])
                    with lock:
                        arrivals.append(time.time() - sent)
                    seen += 1
        except (socket.timeout, EOFError):
            pass

    readers = [threading.Thread(target=receive, args=(c,)) for c in receivers]
    for t in readers:
        t.start()
    admin = Conn(pods[0])
    admin.login(member(users, 0), False)
    admin.send("3")
    admin.until("MY_GROUPS_END")
    admin.send("1")
    admin.until("GROUP_CHAT_READY")
    acks = []
    for i in range(messages):
        t = time.time()
        admin.send(f"fanout {i} {t:.6f}")
        admin.until("GROUP_SENT")
        acks.append(time.time() - t)
        time.sleep(max(0.0, 0.1 - (time.time() - t)))
    for t in readers:
        t.join()
    acks.sort()
    arrivals.sort()
    p = lambda xs, q: xs[min(len(xs) - 1, int(len(xs) * q))] * 1000
    print(f"{online} online on {len(pods)} pods, {messages} messages: ack median {p(acks, 0.5):.1f} ms, "
          f"p99 {p(acks, 0.99):.1f} ms; delivered {len(arrivals)} of {online * messages}, "
          f"median {p(arrivals, 0.5):.1f} ms, p99 {p(arrivals, 0.99):.1f} ms")


if __name__ == "__main__":
    main()
