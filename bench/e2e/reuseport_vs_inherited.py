"""What happens to connections already queued for a worker that stops listening: one listening
socket shared by every worker (what cyserve's supervisor does: bound once, inherited across
fork) against a socket per worker bound with SO_REUSEPORT.

    python bench/e2e/reuseport_vs_inherited.py [--clients 200]

Two listeners, A and B, on one port of 127.0.0.1.  ``--clients`` connections are opened and each
sends a request before anyone accepts, so they all sit in accept queues.  Then A closes (a worker
drains, recycles or dies) and B accepts and answers everything it can.  Each client then reports
an answer, a reset or nothing.

- inherited: A and B are two descriptors of one socket (``os.dup`` here; ``fork`` duplicates a
  descriptor the same way, so both name one socket with one accept queue).  Closing A closes a
  descriptor, not the socket: every queued connection is still there for B.
- reuseport: A and B are two sockets; the kernel hashes each new connection to one of them.
  Closing A closes its queue, and the connections in it are reset — unless the kernel migrates
  them (``net.ipv4.tcp_migrate_req=1``, Linux 5.14+; off by default), which the run reports.

Loopback only; bounded (a time bound, every socket with a timeout).
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import platform
import select
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import HOST, arm_time_bound  # noqa: E402


def _listeners(mode: str) -> tuple[socket.socket, socket.socket]:
    if mode == "inherited":
        a = socket.socket()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        a.bind((HOST, 0))
        a.listen(4096)
        return a, socket.socket(fileno=os.dup(a.fileno()))
    a = socket.socket()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    a.bind((HOST, 0))
    a.listen(4096)
    b = socket.socket()
    b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    b.bind((HOST, a.getsockname()[1]))
    b.listen(4096)
    return a, b


def scenario(mode: str, clients: int) -> dict[str, int | str]:
    a, b = _listeners(mode)
    port = a.getsockname()[1]
    conns = []
    for _ in range(clients):
        client = socket.create_connection((HOST, port), timeout=5)
        client.sendall(b"ping\n")
        conns.append(client)
    time.sleep(0.2)  # every handshake is complete: all are queued, none accepted
    a.close()        # worker A stops listening
    accepted = 0
    b.setblocking(False)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < 0.5:
        ready, _, _ = select.select([b], [], [], 0.05)
        if not ready:
            continue
        try:
            server_side, _ = b.accept()
        except BlockingIOError:
            continue
        quiet_since = time.monotonic()
        accepted += 1
        server_side.setblocking(True)
        server_side.settimeout(2)
        try:
            if server_side.recv(16) == b"ping\n":
                server_side.sendall(b"pong\n")
        except OSError:
            pass
        server_side.close()
    b.close()
    answered = reset = silent = 0
    for client in conns:
        client.settimeout(1)
        try:
            reply = client.recv(16)
            if reply == b"pong\n":
                answered += 1
            else:
                silent += 1
        except ConnectionResetError:
            reset += 1
        except OSError as exc:
            if exc.errno == errno.ECONNRESET:
                reset += 1
            else:
                silent += 1
        client.close()
    return {"mode": mode, "clients": clients, "accepted_by_B": accepted, "answered": answered,
            "reset": reset, "no_answer": silent}


def _migrate_req() -> str:
    try:
        return Path("/proc/sys/net/ipv4/tcp_migrate_req").read_text().strip()
    except OSError:
        return "absent"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="one JSON object per scenario")
    args = parser.parse_args()
    arm_time_bound(60, "reuseport_vs_inherited")
    print(f"kernel {platform.release()}, net.ipv4.tcp_migrate_req={_migrate_req()}")
    for mode in ("inherited", "reuseport"):
        result = scenario(mode, args.clients)
        if args.json:
            print(json.dumps(result))
        else:
            print(f"{mode:10s} {result['clients']} queued, listener A closed: B accepted "
                  f"{result['accepted_by_B']}, answered {result['answered']}, "
                  f"reset {result['reset']}, no answer {result['no_answer']}")


if __name__ == "__main__":
    main()
