"""WebSocket echo round trips per second: cyserve, picows, aiohttp and websockets in the same run.

    python bench/ws/echo.py [--duration 5] [--warmup 1] [--rounds 3] [--sizes 256,8192]
                            [--only cyserve,picows] [--modes 1conn,64conn] [--json out.json]

One load generator for every server: picows' client (Cython, callback per frame, no coroutine or
future per message), so the client costs as little as a Python-driven client can and the same for
each server.  It offers no permessage-deflate, so every server runs its uncompressed path.  Each
connection keeps one binary message in flight: send, wait for the echo (its size checked, its bytes
compared on the first echo and every 1000th), send again.

Modes (bench/ws/README.md):
- ``1conn``: one connection, server and client pinned to the same core.  Across cores, one
  connection measures the wake-up latency between cores rather than the server.
- ``64conn``: 64 connections, server on one core, client on the other.

Servers are started once, pinned to the first CPU, and stay up for the whole run; each round runs
every mode and size on every server, alternating the server order.  The server's CPU time is read
from /proc when the client starts and ends its measured window.  Prints req/s medians, server CPU
per round trip, and cyserve's ratio to each peer against the issue's targets.
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


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ----------------------------------------------------------------- the driver
@dataclass(frozen=True)
class Sample:
    rps: float  # round trips per second, all connections together
    server_cpu_us: float  # server CPU time per round trip
    server_cpu_pct: float
    client_cpu_pct: float


def measure(server: WsServer, mode: str, size: int, args: argparse.Namespace,
            client_core: int | None) -> Sample:
    cmd = ["--port", str(server.port), "--connections", str(MODES[mode]), "--size", str(size),
           "--warmup", str(args.warmup), "--duration", str(args.duration)]
    with wsprocs.Client(Path(__file__), cmd, client_core, timeout_s=args.warmup + args.duration + 30) as client:
        first = client.read()
        assert first["phase"] == "start", first
        cpu_before = server.cpu_s()
        result = client.read()
        cpu_s = server.cpu_s() - cpu_before
    server.assert_alive()
    if result["errors"] or result["dropped"] or not result["round_trips"]:
        raise BenchError(f"{server.name} {mode} {size} B: {result['errors']} wrong echoes, "
                         f"{result['dropped']} connections closed, {result['round_trips']} round trips")
    seconds = result["seconds"]
    return Sample(rps=result["round_trips"] / seconds,
                  server_cpu_us=cpu_s * 1e6 / result["round_trips"],
                  server_cpu_pct=100 * cpu_s / seconds,
                  client_cpu_pct=100 * result["client_cpu_s"] / seconds)


def report(results: dict[str, dict[str, list[Sample]]], found: dict[str, str]) -> dict[str, Any]:
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    print(f"\n{'scenario':<14}{'server':<12}{'req/s':>10}{'srv us/rt':>11}{'srv CPU%':>10}{'cli CPU%':>10}"
          "   req/s by round")
    out: dict[str, Any] = {}
    for scenario, by_server in results.items():
        out[scenario] = {}
        for name, samples in by_server.items():
            med = {field: statistics.median(getattr(s, field) for s in samples) for field in Sample.__dataclass_fields__}
            out[scenario][name] = {"median": med, "rounds": [asdict(s) for s in samples]}
            rounds = " ".join(f"{s.rps:,.0f}" for s in samples)
            print(f"{scenario:<14}{name:<12}{med['rps']:>10,.0f}{med['server_cpu_us']:>11.1f}"
                  f"{med['server_cpu_pct']:>10.0f}{med['client_cpu_pct']:>10.0f}   {rounds}")
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
    # The load generator itself (run by the driver, pinned):
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    servers = args.only.split(",")
    modes = args.modes.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    if set(servers) - set(SERVERS) or set(modes) - set(MODES):
        parser.error(f"servers from {SERVERS}, modes from {tuple(MODES)}")
    server_core, other_core = procs.cores()
    runs = len(servers) * len(modes) * len(sizes) * args.rounds
    bound_s = int(runs * (args.warmup + args.duration + 5) * 1.5) + 60
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
                    sample = measure(running[name], mode, size, args, client_core)
                    results[f"{mode}-{size}B"][name].append(sample)
                    print(f"round {round_no + 1}/{args.rounds} {mode}-{size}B {name:<11}{sample.rps:>10,.0f} rt/s  "
                          f"srv {sample.server_cpu_us:.1f} us/rt, CPU {sample.server_cpu_pct:.0f}%  "
                          f"client CPU {sample.client_cpu_pct:.0f}%", flush=True)
    signal.alarm(0)
    found = wsprocs.versions()
    out = report(results, found)
    if args.json:
        config = {"command": " ".join(sys.argv), "duration_s": args.duration, "warmup_s": args.warmup,
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
