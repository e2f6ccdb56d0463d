#!/usr/bin/env python3
"""How long each screen takes on a chat_server, from the client's side.

    scripts/bench_screens.py HOST:PORT USERS [RUNS]

USERS is the number of users `chat_bench seed -n USERS` made (their names
and the admin of group 1 follow from it). Each screen is timed RUNS times
(20) on a fresh login, from the line that asks for it to the line that ends
it; prints one line per screen: median, p99 (the slowest of RUNS), lines
and bytes received. Used for BENCHMARKS.md, "A big team's database", on a
seeded and an empty database in the same run.
"""
import socket
import sys
import time


class Conn:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), 10)
        self.buf = b""
        self.bytes = 0

    def send(self, line):
        self.s.sendall(line.encode() + b"\n")

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("server closed")
            self.buf += chunk
            self.bytes += len(chunk)
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def until(self, end):
        n = 0
        while True:
            line = self.line()
            n += 1
            if line == end or line.startswith(end):
                return n

    def login(self, user, protocol2):
        self.until("AUTH_REQUEST")
        if protocol2:
            self.send("HELLO:2")
            self.until("REGISTRATION:")
        self.send("LOGIN")
        self.until("LOGIN_PROMPT")
        self.send(user)
        self.send("pw")
        line = self.line()
        if not line.startswith("AUTH_SUCCESS"):
            sys.exit(f"bench_screens: login of {user} failed: {line}")
        self.until("MAIN_MENU_END")


def timed(addr, user, protocol2, prepare, ask, end):
    c = Conn(addr)
    c.login(user, protocol2)
    prepare(c)
    before = c.bytes - len(c.buf)
    t = time.perf_counter()
    c.send(ask)
    lines = c.until(end)
    took = time.perf_counter() - t
    size = c.bytes - len(c.buf) - before
    c.s.close()
    return took, lines, size


def login(addr, user, protocol2):
    c = Conn(addr)
    c.until("AUTH_REQUEST")
    if protocol2:
        c.send("HELLO:2")
        c.until("REGISTRATION:")
    t = time.perf_counter()
    c.send("LOGIN")
    c.until("LOGIN_PROMPT")
    c.send(user)
    c.send("pw")
    lines = c.until("MAIN_MENU_END")
    took = time.perf_counter() - t
    c.s.close()
    return took, lines, c.bytes


def main():
    addr, users = sys.argv[1], int(sys.argv[2])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    name = lambda i: f"u{i:06d}"
    me = name(1)
    admin = name(7919 % users + 1)  # member 0 of group 1 (chat_bench seed)
    nothing = lambda c: None

    def into_group(c):
        c.send("3")
        c.until("MY_GROUPS_END")
        c.send("1")
        c.until("GROUP_CHAT_READY")

    def partner_of(c):
        c.send("1")
        rows = []
        while True:
            line = c.line()
            if line == "CONTACT_LIST_END":
                break
            rows.append(line)
        return rows[1].split("|")[0]

    c = Conn(addr)
    c.login(me, False)
    partner = partner_of(c)
    c.s.close()

    screens = [
        ("login, protocol 1", lambda: login(addr, me, False)),
        ("login with the unread summary (protocol 2)", lambda: login(addr, me, True)),
        ("contact list (1), protocol 1", lambda: timed(addr, me, False, nothing, "1", "CONTACT_LIST_END")),
        ("contact list (1), protocol 2", lambda: timed(addr, me, True, nothing, "1", "CONTACT_LIST_END")),
        ("browse groups (4)", lambda: timed(addr, me, False, nothing, "4", "BROWSE_GROUPS_END")),
        ("/members of group 1", lambda: timed(addr, admin, False, into_group, "/members", "GROUP_MEMBERS_END")),
        ("contact search (protocol 2, 'u0123')",
         lambda: timed(addr, me, True, lambda c: (c.send("1"), c.until("CONTACT_LIST_END")), "u0123", "CONTACT_LIST_END")),
        ("browse search (protocol 2, 'group 12')",
         lambda: timed(addr, me, True, lambda c: (c.send("4"), c.until("BROWSE_GROUPS_END")), "group 12", "BROWSE_GROUPS_END")),
        ("conversation with its history",
         lambda: timed(addr, me, False, lambda c: (c.send("1"), c.until("CONTACT_LIST_END")), partner, "CONVERSATION_READY")),
    ]
    for title, run in screens:
        results = [run() for _ in range(runs)]
        times = sorted(r[0] * 1000 for r in results)
        print(f"{title}: median {times[len(times) // 2]:.2f} ms, p99 {times[-1]:.2f} ms, "
              f"{results[-1][1]} lines, {results[-1][2]} bytes")


if __name__ == "__main__":
    main()
