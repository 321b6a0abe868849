"""WebSocket echo round trips per second: cyserve, picows, aiohttp and websockets in the same run.

    python bench/ws/echo.py [--duration 5] [--warmup 1] [--rounds 3] [--sizes 256,8192]
                            [--only cyserve,picows] [--modes 1conn,64conn] [--client auto]
                            [--json out.json]

One load generator for every server, the cheapest there is, since its cost is in every server's
figure alike: blocking sockets (``--client raw``: one send and one ``recv_into(MSG_WAITALL)`` per
round trip, no event loop; 64 connections run as two halves in turn, so the server works on one
while the client answers the other).  ``--client picows`` runs picows' client instead (Cython, a
callback per frame), the load generator of the 2026-12-06 figures.  Neither offers
permessage-deflate, so every server runs its uncompressed path.  Each connection keeps one binary message in flight: send, wait for the
echo (its size checked, its bytes compared on the first echo and every 1000th), send again.

Modes (bench/ws/README.md):
- ``1conn``: one connection, server and client pinned to the same core.  Across cores, one
  connection measures the wake-up latency between cores rather than the server.
- ``64conn``: 64 connections, server on one core, client on the other.

Servers are started once, pinned to the first CPU, and stay up for the whole run; each round runs
every mode and size on every server, alternating the server order.  The server's CPU time is read
from /proc when the client starts and ends its measured window.  Prints req/s medians, server CPU
per round trip (and its system part: the kernel's socket work, which no library removes), the
client's CPU per round trip, ``other%`` (the CPU the rest of the machine took during the run: a
run above ``--max-other`` is run again, at most ``--retries`` times, and the last one is kept),
and cyserve's ratio to each peer against the issue's targets.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import wsprocs  # noqa: E402
from wsprocs import SERVERS, BenchError, WsServer, procs  # noqa: E402

MODES = {"1conn": 1, "64conn": 64}
# Issue 9 §5: cyserve's req/s over the peer's must reach these.
TARGETS = {"aiohttp": 1.3, "websockets": 2.0, "picows": 0.9}
CHECK_EVERY = 1000  # compare the echoed bytes on the first echo and every CHECK_EVERY-th


# ----------------------------------------------------------------- the client (--child)
def child(args: argparse.Namespace) -> None:
    import uvloop
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    payload = bytes(i % 251 for i in range(args.size))

    class Echo(WSListener):
        def __init__(self) -> None:
            self.count = 0
            self.errors = 0
            self.pending = 0  # bytes of a message echoed in fragments
            self.running = True
            self.closed = False

        def on_ws_connected(self, transport: WSTransport) -> None:
            transport.send(WSMsgType.BINARY, payload)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if kind == WSMsgType.BINARY or kind == WSMsgType.CONTINUATION:
                self.pending += frame.payload_size
                if not frame.fin:
                    return
                if self.pending != args.size:
                    self.errors += 1
                elif self.count % CHECK_EVERY == 0 and kind == WSMsgType.BINARY:
                    if frame.get_payload_as_bytes() != payload:
                        self.errors += 1
                self.pending = 0
                self.count += 1
                if self.running:
                    transport.send(WSMsgType.BINARY, payload)
            elif kind == WSMsgType.CLOSE:
                self.closed = True
                transport.disconnect()
            elif kind == WSMsgType.TEXT:
                self.errors += 1

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.closed = True

    async def main() -> None:
        url = f"ws://{wsprocs.HOST}:{args.port}/"
        pairs = [await ws_connect(Echo, url, max_frame_size=4 * 1024 * 1024) for _ in range(args.connections)]
        listeners = [listener for _, listener in pairs if isinstance(listener, Echo)]

        def total() -> int:
            return sum(listener.count for listener in listeners)

        await asyncio.sleep(args.warmup)
        start_count, start_t, start_cpu = total(), time.perf_counter(), _own_cpu_s()
        print(json.dumps({"phase": "start"}), flush=True)
        await asyncio.sleep(args.duration)
        count, seconds, cpu = total() - start_count, time.perf_counter() - start_t, _own_cpu_s() - start_cpu
        print(json.dumps({"phase": "end", "round_trips": count, "seconds": seconds, "client_cpu_s": cpu,
                          "errors": sum(x.errors for x in listeners),
                          "dropped": sum(x.closed for x in listeners)}), flush=True)
        for listener in listeners:
            listener.running = False
        for transport, _ in pairs:
            transport.send_close()
        await asyncio.wait_for(asyncio.gather(*(t.wait_disconnected() for t, _ in pairs)), 10)

    uvloop.run(main())


def raw_child(args: argparse.Namespace) -> None:
    """The same load with no event loop: blocking sockets, each message framed and masked once
    (RFC 6455 §5.3's key is fixed here: the servers unmask every frame alike, whatever the key),
    each echo read whole with one ``recv_into(MSG_WAITALL)``.  Per round trip the client makes one
    send and one receive system call and runs a few lines of Python: no epoll, no callback, no
    frame parser."""
    import socket

    payload = bytes(i % 251 for i in range(args.size))
    key = b"\x37\xfa\x21\x3d"
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else (bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 1 << 16
                                                 else bytes([0x80 | 127]) + n.to_bytes(8, "big"))
    frame = bytes([0x82]) + length + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    head = bytes([0x82]) + (bytes([n]) if n < 126 else (bytes([126]) + n.to_bytes(2, "big") if n < 1 << 16
                                                        else bytes([127]) + n.to_bytes(8, "big")))
    size = len(head) + n
    buf = bytearray(size)
    view = memoryview(buf)
    expected = head + payload
    errors = dropped = 0
    count = 0

    def open_ws() -> socket.socket:
        sock = socket.create_connection((wsprocs.HOST, args.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {wsprocs.HOST}:{args.port}\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(1)  # byte by byte: nothing past the 101's head is taken
            if not chunk:
                raise SystemExit("the server closed the connection during the handshake")
            got += chunk
        if not got.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"handshake refused: {got.splitlines()[0]!r}")
        return sock

    socks = [open_ws() for _ in range(args.connections)]
    for sock in socks:
        # Plain blocking calls: with a timeout set, Python polls before every send and receive
        # (one more system call each).  The driver's deadline kills a client that hangs.
        sock.settimeout(None)
    sends = [sock.sendall for sock in socks]
    recvs = [sock.recv_into for sock in socks]
    waitall = socket.MSG_WAITALL

    def take(group: list[Any]) -> bool:
        """Read one echo on each connection of ``group``; False once one was dropped."""
        nonlocal count, errors, dropped
        for recv_into in group:
            if recv_into(view, size, waitall) != size:
                dropped += 1
                return False
            if not buf.startswith(head):
                errors += 1
            elif count % CHECK_EVERY == 0 and buf != expected:
                errors += 1
            count += 1
        return True

    # Several connections run as two halves in turn, so the server works on one half while this
    # process reads and answers the other: send B, read A, send A, read B, ... (each connection
    # still has one message in flight).  One connection: send, read.
    half = len(socks) // 2
    sends_a, recvs_a, sends_b, recvs_b = sends[:half], recvs[:half], sends[half:], recvs[half:]
    for send in sends_a:
        send(frame)

    def run_for(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for _ in range(100):  # the clock is read once per 100 rounds
                for send in sends_b:
                    send(frame)
                if not take(recvs_a):
                    return
                for send in sends_a:
                    send(frame)
                if not take(recvs_b):
                    return

    run_for(args.warmup)
    start_count, start_t, start_cpu = count, time.perf_counter(), _own_cpu_s()
    print(json.dumps({"phase": "start"}), flush=True)
    run_for(args.duration)
    measured, seconds, cpu = count - start_count, time.perf_counter() - start_t, _own_cpu_s() - start_cpu
    print(json.dumps({"phase": "end", "round_trips": measured, "seconds": seconds, "client_cpu_s": cpu,
                      "errors": errors, "dropped": dropped}), flush=True)
    close = bytes([0x88, 0x82]) + key + bytes(b ^ key[i] for i, b in enumerate((1000).to_bytes(2, "big")))
    for sock in socks:
        sock.sendall(close)
        sock.settimeout(10)
        try:
            while sock.recv(4096):  # the server's close frame, then its FIN (RFC 6455 §7.1.1)
                pass
        except OSError:
            pass
        sock.close()


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ----------------------------------------------------------------- the driver
@dataclass(frozen=True)
class Sample:
    rps: float  # round trips per second, all connections together
    server_cpu_us: float  # server CPU time per round trip
    server_sys_us: float  # the kernel's part of it (system time)
    server_cpu_pct: float
    client_cpu_pct: float
    client_cpu_us: float  # the client's CPU time per round trip
    other_cpu_pct: float  # CPU the rest of the machine used meanwhile (of 100 per CPU)


def measure(server: WsServer, mode: str, size: int, args: argparse.Namespace,
            client_core: int | None) -> Sample:
    cmd = ["--port", str(server.port), "--client", args.client, "--connections", str(MODES[mode]),
           "--size", str(size),
           "--warmup", str(args.warmup), "--duration", str(args.duration)]
    with wsprocs.Client(Path(__file__), cmd, client_core, timeout_s=args.warmup + args.duration + 30) as client:
        first = client.read()
        assert first["phase"] == "start", first
        user_before, sys_before = wsprocs.cpu_split_s(server.pid)
        busy_before = wsprocs.machine_busy_s()
        result = client.read()
        user_after, sys_after = wsprocs.cpu_split_s(server.pid)
        busy = wsprocs.machine_busy_s() - busy_before
    cpu_s = user_after + sys_after - user_before - sys_before
    server.assert_alive()
    if result["errors"] or result["dropped"] or not result["round_trips"]:
        raise BenchError(f"{server.name} {mode} {size} B: {result['errors']} wrong echoes, "
                         f"{result['dropped']} connections closed, {result['round_trips']} round trips")
    seconds = result["seconds"]
    return Sample(rps=result["round_trips"] / seconds,
                  server_cpu_us=cpu_s * 1e6 / result["round_trips"],
                  server_sys_us=(sys_after - sys_before) * 1e6 / result["round_trips"],
                  server_cpu_pct=100 * cpu_s / seconds,
                  client_cpu_pct=100 * result["client_cpu_s"] / seconds,
                  client_cpu_us=result["client_cpu_s"] * 1e6 / result["round_trips"],
                  other_cpu_pct=max(0.0, 100 * (busy - cpu_s - result["client_cpu_s"]) / seconds))


def report(results: dict[str, dict[str, list[Sample]]], found: dict[str, str], max_other: float) -> dict[str, Any]:
    """Medians over the rounds no other process disturbed (``other%`` at most ``max_other``);
    over every round, marked ``*``, where none was clean.  Contaminated rounds show in brackets."""
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    print(f"\n{'scenario':<14}{'server':<12}{'req/s':>10}{'srv us/rt':>11}{'sys us/rt':>11}{'srv CPU%':>10}"
          f"{'cli CPU%':>10}{'cli us/rt':>11}{'other%':>8}   req/s by round ([...]: others took > {max_other:g}%)")
    out: dict[str, Any] = {}
    for scenario, by_server in results.items():
        out[scenario] = {}
        for name, samples in by_server.items():
            clean = [s for s in samples if s.other_cpu_pct <= max_other]
            used = clean or samples
            med = {field: statistics.median(getattr(s, field) for s in used) for field in Sample.__dataclass_fields__}
            out[scenario][name] = {"median": med, "clean_rounds": len(clean), "rounds": [asdict(s) for s in samples]}
            rounds = " ".join(f"{s.rps:,.0f}" if s.other_cpu_pct <= max_other else f"[{s.rps:,.0f}]"
                              for s in samples)
            mark = "" if clean else "*"
            print(f"{scenario:<14}{name:<12}{med['rps']:>10,.0f}{med['server_cpu_us']:>11.1f}"
                  f"{med['server_sys_us']:>11.1f}{med['server_cpu_pct']:>10.0f}{med['client_cpu_pct']:>10.0f}"
                  f"{med['client_cpu_us']:>11.1f}{med['other_cpu_pct']:>8.0f}{mark:1}  {rounds}")
    if any("cyserve" in by_server and len(by_server) > 1 for by_server in results.values()):
        print("\ncyserve/peer   req/s ratio (target)           server-CPU-per-round-trip ratio (<1: cheaper)")
        for scenario, by_server in results.items():
            cy = out[scenario].get("cyserve")
            if cy is None:
                continue
            for peer in by_server:
                if peer == "cyserve":
                    continue
                other = out[scenario][peer]["median"]
                ratio = cy["median"]["rps"] / other["rps"]
                cpu_ratio = cy["median"]["server_cpu_us"] / other["server_cpu_us"]
                target = TARGETS[peer]
                verdict = "meets" if ratio >= target else "MISSES"
                out[scenario][f"ratio_cyserve_over_{peer}"] = {"rps": ratio, "server_cpu_per_round_trip": cpu_ratio,
                                                               "target": target, "meets": ratio >= target}
                print(f"{scenario:<14}{peer:<12}{ratio:>6.2f}x (>= {target:.1f}x: {verdict:<6})"
                      f"{cpu_ratio:>24.2f}x")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="WebSocket echo round trips, every server in one run")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds per run before measuring")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--sizes", default="256,8192", help="message sizes in bytes, comma list")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    parser.add_argument("--only", default=",".join(SERVERS), help=f"comma list of {', '.join(SERVERS)}")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--max-other", type=float, default=10.0, metavar="PCT",
                        help="run again when other processes took more than PCT %% of the machine")
    parser.add_argument("--retries", type=int, default=3, help="times a contaminated run is run again")
    parser.add_argument("--client", choices=("raw", "picows"), default="raw",
                        help="the load generator: blocking sockets (raw) or picows' client (README.md)")
    # The load generator itself (run by the driver, pinned):
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report", metavar="JSON", help="print the report of a run saved with --json, and exit")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        again = {scenario: {name: [Sample(**r) for r in data["rounds"]] for name, data in by_server.items()
                            if not name.startswith("ratio_")}
                 for scenario, by_server in saved["results"].items()}
        report(again, saved["versions"], saved["config"].get("max_other", args.max_other))
        return 0
    if args.child:
        (raw_child if args.client == "raw" else child)(args)
        return 0

    servers = args.only.split(",")
    modes = args.modes.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    if set(servers) - set(SERVERS) or set(modes) - set(MODES):
        parser.error(f"servers from {SERVERS}, modes from {tuple(MODES)}")
    server_core, other_core = procs.cores()
    runs = len(servers) * len(modes) * len(sizes) * args.rounds
    bound_s = int(runs * (args.warmup + args.duration + 5) * 1.5 * (1 + args.retries)) + 60
    print(f"servers {servers}, modes {modes}, sizes {sizes}, {args.rounds} x {args.duration:g} s; "
          f"server on CPU {server_core}, 64conn client on CPU {other_core}; bound {bound_s} s", flush=True)
    procs.arm_time_bound(bound_s, "bench/ws/echo")

    scenarios = [(mode, size) for mode in modes for size in sizes]
    results: dict[str, dict[str, list[Sample]]] = {f"{m}-{s}B": {n: [] for n in servers} for m, s in scenarios}
    with ExitStack() as stack:
        running = {name: stack.enter_context(WsServer(name, server_core)) for name in servers}
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else servers[::-1]
            for mode, size in scenarios:
                client_core = server_core if mode == "1conn" else other_core
                for name in order:
                    for attempt in range(args.retries + 1):
                        sample = measure(running[name], mode, size, args, client_core)
                        print(f"round {round_no + 1}/{args.rounds} {mode}-{size}B {name:<11}{sample.rps:>10,.0f} rt/s  "
                              f"srv {sample.server_cpu_us:.1f} us/rt ({sample.server_sys_us:.1f} system), "
                              f"CPU {sample.server_cpu_pct:.0f}%  client {sample.client_cpu_us:.1f} us/rt, "
                              f"CPU {sample.client_cpu_pct:.0f}%  others {sample.other_cpu_pct:.0f}%", flush=True)
                        if sample.other_cpu_pct <= args.max_other:
                            break
                        if attempt < args.retries:
                            print(f"  other processes took {sample.other_cpu_pct:.0f}% of the machine "
                                  f"(> {args.max_other:g}%): run again", flush=True)
                    results[f"{mode}-{size}B"][name].append(sample)
    signal.alarm(0)
    found = wsprocs.versions()
    out = report(results, found, args.max_other)
    if args.json:
        config = {"command": " ".join(sys.argv), "client": args.client, "max_other": args.max_other,
                  "duration_s": args.duration, "warmup_s": args.warmup,
                  "rounds": args.rounds, "server_cpu": server_core, "client_cpu_64conn": other_core}
        Path(args.json).write_text(json.dumps({"versions": found, "config": config, "results": out}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/ws/echo FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/ws/echo: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
