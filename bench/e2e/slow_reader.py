"""Backpressure proof: a client that stops reading a 600 MB stream must not grow server memory.

python bench/e2e/slow_reader.py [--only cyserve|uvicorn] [--stall 5]

Per server: GET /stream, read the head and a few KB, stop reading for --stall seconds while
sampling the server's RSS and CPU, close the socket, then check that the producer stopped (the
app logs `stream-end ... complete=False`, and the server's CPU goes idle) and that a fresh
GET /plaintext still answers 200. Exit status 1 if any server fails. Bounded: < 60 s in all.
"""
from __future__ import annotations

import argparse
import http.client
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass

import procs
from procs import HOST, BenchError, Server

RSS_GROWTH_LIMIT_BYTES = 32 * 1024 * 1024
READ_BEFORE_STALL_BYTES = 8 * 1024
IDLE_WINDOW_S = 1.0
IDLE_CPU_LIMIT_PCT = 5.0  # of one core, over IDLE_WINDOW_S after the producer stopped
STREAM_END_WAIT_S = 5.0
TIME_BOUND_S = 58
_MB = 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    server: str
    rss_before_bytes: int
    rss_peak_bytes: int  # highest VmRSS sampled while the client was not reading
    stall_cpu_pct: float  # server CPU while stalled: ~0 when the producer is parked on drain
    read_bytes: int  # what the client read (head included) before it stopped
    produced_bytes: int | None  # what the app yielded in all; None: it never reported stopping
    produced_all: bool  # the app yielded the whole 600 MB: nothing stopped it
    idle_cpu_pct: float  # server CPU once the producer should have stopped
    alive: bool  # a fresh GET /plaintext answered 200 afterwards

    @property
    def growth_bytes(self) -> int:
        return self.rss_peak_bytes - self.rss_before_bytes

    @property
    def stopped(self) -> bool:
        reported = self.produced_bytes is not None and not self.produced_all
        return reported and self.idle_cpu_pct < IDLE_CPU_LIMIT_PCT

    @property
    def passed(self) -> bool:
        return self.growth_bytes < RSS_GROWTH_LIMIT_BYTES and self.stopped and self.alive


def probe(server: Server, stall_s: float) -> Outcome:
    rss_before = server.rss_bytes()
    sock = socket.create_connection((HOST, server.port), timeout=5.0)
    try:
        sock.sendall(f"GET /stream HTTP/1.1\r\nHost: {HOST}:{server.port}\r\n\r\n".encode())
        received = _read_head_and_some(sock)
        cpu_before, rss_peak, stall_end = server.cpu_s(), rss_before, time.monotonic() + stall_s
        while time.monotonic() < stall_end:
            rss_peak = max(rss_peak, server.rss_bytes())
            time.sleep(0.05)
        stall_cpu_s = server.cpu_s() - cpu_before
    finally:
        sock.close()  # with unread data queued, Linux answers the close with a RST
    produced, produced_all = _wait_stream_end(server)
    cpu_before = server.cpu_s()
    time.sleep(IDLE_WINDOW_S)
    idle_cpu_s = server.cpu_s() - cpu_before
    return Outcome(server.name, rss_before, rss_peak, 100 * stall_cpu_s / stall_s, received, produced,
                   produced_all, 100 * idle_cpu_s / IDLE_WINDOW_S, _plaintext_ok(server.port))


def _read_head_and_some(sock: socket.socket) -> int:
    data = b""
    while b"\r\n\r\n" not in data or len(data) - data.index(b"\r\n\r\n") - 4 < READ_BEFORE_STALL_BYTES:
        chunk = sock.recv(4096)
        if not chunk:
            raise BenchError(f"stream closed after {len(data)} bytes: {data[:200]!r}")
        data += chunk
    if not data.startswith(b"HTTP/1.1 200 "):
        status_line = data.split(b"\r\n", 1)[0]
        raise BenchError(f"GET /stream answered {status_line!r}")
    return len(data)


def _wait_stream_end(server: Server) -> tuple[int | None, bool]:
    """(bytes the app yielded, whether that was all of them) from its stream-end log line."""
    deadline = time.monotonic() + STREAM_END_WAIT_S
    while time.monotonic() < deadline:
        found = re.search(r"stream-end produced_bytes=(\d+) complete=(\w+)", server.log_text())
        if found:
            return int(found[1]), found[2] == "True"
        time.sleep(0.05)
    return None, False


def _plaintext_ok(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=5.0)
    try:
        conn.request("GET", "/plaintext")
        response = conn.getresponse()
        return response.status == 200 and response.read() == b"Hello, World!"
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _print(outcomes: list[Outcome], stall_s: float) -> None:
    print(f"slow reader: GET /stream (600 MB in 64 KiB chunks), read {READ_BEFORE_STALL_BYTES // 1024} KB, "
          f"stop reading {stall_s:.0f} s, close; PASS needs RSS growth < {RSS_GROWTH_LIMIT_BYTES // _MB} MB, "
          f"producer stopped, server still serving")
    print(f"{'server':<9}{'RSS before':>11}{'peak':>8}{'growth':>8}{'stall CPU':>10}{'client read':>12}"
          f"{'produced':>10}{'idle CPU':>9}{'alive':>6}  verdict")
    for o in outcomes:
        produced = "running?" if o.produced_bytes is None else f"{o.produced_bytes / _MB:.1f} MB"
        print(f"{o.server:<9}{o.rss_before_bytes / _MB:>8.1f} MB{o.rss_peak_bytes / _MB:>8.1f}"
              f"{o.growth_bytes / _MB:>8.1f}{o.stall_cpu_pct:>9.0f}%{o.read_bytes / 1024:>9.1f} KB"
              f"{produced:>10}{o.idle_cpu_pct:>8.0f}%{'yes' if o.alive else 'NO':>6}  "
              f"{'PASS' if o.passed else 'FAIL'}")


def main() -> int:
    parser = argparse.ArgumentParser(description="slow-reader backpressure check")
    parser.add_argument("--only", choices=("cyserve", "uvicorn"))
    parser.add_argument("--stall", type=float, default=5.0, help="seconds the client stops reading")
    args = parser.parse_args()
    procs.arm_time_bound(TIME_BOUND_S, "slow_reader")
    server_core, _ = procs.cores()
    outcomes = []
    for name in [args.only] if args.only else ["cyserve", "uvicorn"]:
        with Server(name, server_core, stop_grace_s=3.0) as server:
            outcomes.append(probe(server, args.stall))
    signal.alarm(0)
    _print(outcomes, args.stall)
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"slow_reader FAILED: {exc}")
    except KeyboardInterrupt:
        print("slow_reader: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
