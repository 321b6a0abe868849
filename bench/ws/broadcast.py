"""WebSocket broadcast: delivered messages per second and delivery latency, every server in one run.

    python bench/ws/broadcast.py [--members 1000] [--duration 5] [--window 2] [--rounds 3]
                                 [--wave-members 10000] [--waves 20] [--wave-interval 0.25]
                                 [--procs 2] [--client raw] [--only cyserve,picows] [--json out.json]

Each server (bench/ws/servers/*, pinned to the first CPU) keeps a room: ``/room`` joins it,
``/publish`` sends each message it receives to every member and then answers ``b"ack"``.  cyserve
broadcasts with ``cyserve.websocket.broadcast(sockets, message)`` (one frame built once, slow
members skipped), websockets with its ``broadcast()``, picows with ``transport.send`` per member,
aiohttp by awaiting ``send_bytes`` per member (it has no broadcast helper).

The clients are processes of this script (``--child``), pinned to the other CPU: ``--procs``
receiver processes share the members, and one publisher (picows' client) keeps ``--window``
messages awaiting their ack.  The members are plain asyncio protocols that take each read in bulk
(``--client raw``, the default: a read of whole 102-byte frames is counted by its length and its
timestamps unpacked in C, so the receivers' cost per message is a fraction of a server's and
cannot be what limits the count), or picows clients with a callback per message
(``--client picows``).  A 100-byte binary message carries the
publisher's CLOCK_MONOTONIC time (the same clock in every process); a receiver takes the
delivery latency as its own clock minus that, into a log histogram (2 % buckets) merged over the
receivers for the percentiles.

Two scenarios per server and round:
- ``room``: ``--members`` members, the publisher sends for ``--duration`` s.  Delivered/s is
  every member's messages over the publishing time; ``lost`` is published x members - delivered
  (skipped as slow, or not there when the receivers were read, ``--drain`` s after the last ack).
- ``wave``: ``--wave-members`` members, ``--waves`` single messages ``--wave-interval`` s apart;
  p99 over every delivery, against the issue's 50 ms.

Bounded: the file-descriptor limit is raised to its hard limit (children inherit it), every
client has a deadline, and a SIGALRM bound covers the whole run; servers and clients are killed
with their process groups however it ends.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
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

MESSAGE_BYTES = 100
BUCKETS_PER_E = 50  # log histogram: bucket i holds latencies in [e^(i/50), e^((i+1)/50)) us
WAVE_P99_TARGET_MS = 50.0
DELIVERED_TARGET = 300_000  # issue 9 §5, one server core


# ----------------------------------------------------------------- the clients (--child)
def _connect_all(url: str, count: int, factory: Any) -> Any:
    """``count`` picows connections to ``url``, 100 handshakes at a time."""
    from picows import ws_connect

    async def connect() -> list[Any]:
        pairs: list[Any] = []
        for start in range(0, count, 100):
            batch = min(100, count - start)
            pairs += await asyncio.gather(*(ws_connect(factory, url, websocket_handshake_timeout=30)
                                            for _ in range(batch)))
        return pairs
    return connect()


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def receiver(args: argparse.Namespace) -> None:
    import uvloop
    from picows import WSFrame, WSListener, WSMsgType, WSTransport

    hist = [0] * (BUCKETS_PER_E * 20)  # up to e^20 us: far beyond any deadline here
    top = len(hist) - 1
    state = {"received": 0, "closed": 0}
    clock, log = time.monotonic_ns, math.log

    class Member(WSListener):
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type == WSMsgType.BINARY:
                latency_us = (clock() - int.from_bytes(frame.get_payload_as_memoryview()[:8], "little")) / 1000
                hist[min(top, int(log(latency_us) * BUCKETS_PER_E)) if latency_us > 1 else 0] += 1
                state["received"] += 1
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.disconnect()

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            state["closed"] += 1

    async def main() -> None:
        commands = wsprocs.stdin_commands()
        pairs = await _connect_all(f"ws://{wsprocs.HOST}:{args.port}/room", args.connections, Member)
        _say(ready=len(pairs), cpu_s=_own_cpu_s())
        while (command := await commands.get()) != "quit":
            if command == "report":
                _say(received=state["received"], closed=state["closed"], cpu_s=_own_cpu_s(),
                     hist={i: n for i, n in enumerate(hist) if n})
        for transport, _ in pairs:
            transport.send_close()
        await asyncio.wait_for(asyncio.gather(*(t.wait_disconnected() for t, _ in pairs)), 30)

    uvloop.run(main())


def raw_receiver(args: argparse.Namespace) -> None:
    """The members as plain asyncio protocols (on uvloop): each read is handled in bulk, with no
    object or callback per message.  Every message is the same 102 bytes on the wire (an
    unmasked binary frame, RFC 6455 §5.2: 2 header bytes, then the 100-byte payload whose first
    8 bytes are the publisher's clock), so a read of whole such frames is checked with two
    strided slices, counted by its length, and its timestamps unpacked by ``struct`` in C; only
    a read holding anything else (a ping to answer, a close, a frame split across reads) is
    walked frame by frame."""
    import struct

    import uvloop

    hist = [0] * (BUCKETS_PER_E * 20)
    top = len(hist) - 1
    state = {"received": 0, "closed": 0}
    clock, log = time.monotonic_ns, math.log
    frame_bytes = 2 + MESSAGE_BYTES
    head = bytes([0x82, MESSAGE_BYTES])
    stamps = struct.Struct(f"<2xQ{MESSAGE_BYTES - 8}x")   # a frame's timestamp, frame after frame
    key = b"\x00\x00\x00\x00"  # a client masks (§5.3); the key's value is the client's choice
    request = (f"GET /room HTTP/1.1\r\nHost: {wsprocs.HOST}:{args.port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def count(data: bytes, k: int) -> None:
        now = clock()
        for (sent,) in stamps.iter_unpack(data[:k * frame_bytes]):
            latency_us = (now - sent) / 1000
            hist[min(top, int(log(latency_us) * BUCKETS_PER_E)) if latency_us > 1 else 0] += 1
        state["received"] += k

    class Member(asyncio.Protocol):
        def __init__(self) -> None:
            self.transport: Any = None
            self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.pending = b""   # the handshake's head, then a frame split across reads

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            transport.write(request)

        def data_received(self, data: bytes) -> None:
            if not self.opened.done():
                self.pending += data
                end = self.pending.find(b"\r\n\r\n")
                if end < 0:
                    return
                if not self.pending.startswith(b"HTTP/1.1 101"):
                    self.opened.set_exception(BenchError(f"refused: {self.pending[:40]!r}"))
                    return
                data, self.pending = self.pending[end + 4:], b""
                self.opened.set_result(None)
            if self.pending:
                data, self.pending = self.pending + data, b""
            k = len(data) // frame_bytes
            if k and data[0:k * frame_bytes:frame_bytes] == head[:1] * k \
                    and data[1:k * frame_bytes:frame_bytes] == head[1:] * k:
                count(data, k)            # whole data frames only: the common read
                data = data[k * frame_bytes:]
            self.walk(data)

        def walk(self, data: bytes) -> None:
            at = 0
            while len(data) - at >= 2:
                b0, b1 = data[at], data[at + 1]
                n, start = b1 & 0x7F, at + 2
                if n == 126:
                    if len(data) - at < 4:
                        break
                    n, start = int.from_bytes(data[at + 2:at + 4], "big"), at + 4
                elif n == 127:
                    if len(data) - at < 10:
                        break
                    n, start = int.from_bytes(data[at + 2:at + 10], "big"), at + 10
                if len(data) - start < n:
                    break
                opcode, payload = b0 & 0x0F, data[start:start + n]
                if opcode == 0x2 and data[at:start] == head:
                    count(data[at:start + n], 1)
                elif opcode == 0x9 and self.transport is not None:   # §5.5.2: pong the ping
                    self.transport.write(bytes([0x8A, 0x80 | n]) + key + payload)
                elif opcode == 0x8 and self.transport is not None:   # the server closes
                    self.transport.close()
                at = start + n
            self.pending = data[at:]

        def connection_lost(self, exc: BaseException | None) -> None:
            if not self.opened.done():
                self.opened.set_exception(BenchError(f"closed during the handshake: {exc}"))
            state["closed"] += 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        commands = wsprocs.stdin_commands()
        members: list[Member] = []
        for start in range(0, args.connections, 100):
            batch = min(100, args.connections - start)
            pairs = await asyncio.gather(*(loop.create_connection(Member, wsprocs.HOST, args.port)
                                           for _ in range(batch)))
            await asyncio.wait_for(asyncio.gather(*(member.opened for _, member in pairs)), 60)
            members += [member for _, member in pairs]
        _say(ready=len(members), cpu_s=_own_cpu_s())
        while (command := await commands.get()) != "quit":
            if command == "report":
                _say(received=state["received"], closed=state["closed"], cpu_s=_own_cpu_s(),
                     hist={i: n for i, n in enumerate(hist) if n})
        close = bytes([0x88, 0x82]) + key + (1000).to_bytes(2, "big")   # masked with zeros
        for member in members:
            if member.transport is not None and not member.transport.is_closing():
                member.transport.write(close)
        deadline = loop.time() + 30
        while state["closed"] < len(members) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for member in members:
            if member.transport is not None:
                member.transport.abort()

    uvloop.run(main())


def publisher(args: argparse.Namespace) -> None:
    import uvloop
    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    padding = bytes(MESSAGE_BYTES - 16)

    class Publisher(WSListener):
        def __init__(self) -> None:
            self.sent = 0
            self.acked = 0
            self.stop_at = 0.0
            self.limit = 0  # messages to send in all (waves), 0: until stop_at
            self.done: asyncio.Future[None] | None = None

        def send_one(self, transport: WSTransport) -> None:
            self.sent += 1
            transport.send(WSMsgType.BINARY, time.monotonic_ns().to_bytes(8, "little")
                           + self.sent.to_bytes(8, "little") + padding)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type != WSMsgType.BINARY:
                return
            self.acked += 1
            more = self.sent < self.limit if self.limit else time.monotonic() < self.stop_at
            if more and not self.limit:
                self.send_one(transport)
            elif self.acked == self.sent and self.done is not None and not self.done.done():
                self.done.set_result(None)

    async def main() -> None:
        commands = wsprocs.stdin_commands()
        transport, pub = await ws_connect(Publisher, f"ws://{wsprocs.HOST}:{args.port}/publish")
        assert isinstance(pub, Publisher)
        _say(ready=1)
        while (command := await commands.get()) != "quit":
            if command == "flood":  # --window messages in flight for --duration seconds
                pub.sent = pub.acked = 0
                pub.done = asyncio.get_running_loop().create_future()
                start = time.monotonic()
                pub.stop_at = start + args.duration
                for _ in range(args.window):
                    pub.send_one(transport)
                await pub.done
                _say(published=pub.sent, seconds=time.monotonic() - start)
            elif command == "waves":  # one message at a time, --wave-interval apart
                start = time.monotonic()
                for wave in range(args.waves):
                    pub.sent, pub.acked, pub.limit = wave, wave, wave + 1
                    pub.done = asyncio.get_running_loop().create_future()
                    pub.send_one(transport)
                    await pub.done
                    await asyncio.sleep(args.wave_interval)
                _say(published=args.waves, seconds=time.monotonic() - start)
        transport.send_close()
        await asyncio.wait_for(transport.wait_disconnected(), 10)

    uvloop.run(main())


# ----------------------------------------------------------------- the driver
@dataclass(frozen=True)
class Sample:
    members: int
    published: int
    delivered: int
    lost: int
    delivered_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    server_cpu_pct: float
    server_cpu_us_per_delivery: float  # server CPU time / delivered messages
    server_sys_us_per_delivery: float  # its kernel part (system time)
    client_cpu_us_per_delivery: float  # the receivers' CPU time / delivered messages
    server_rss_mib: float


def percentile_ms(hist: dict[int, int], fraction: float) -> float:
    """The upper edge of the bucket holding the given fraction of deliveries, in ms."""
    total = sum(hist.values())
    if not total:
        return math.nan
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= fraction * total:
            return math.exp((bucket + 1) / BUCKETS_PER_E) / 1000
    return math.exp((max(hist) + 1) / BUCKETS_PER_E) / 1000


def scenario(server: WsServer, stack_args: argparse.Namespace, members: int, command: str,
             client_core: int | None) -> Sample:
    args = stack_args
    nprocs = max(1, min(args.procs, members))
    shares = [members // nprocs + (1 if i < members % nprocs else 0) for i in range(nprocs)]
    timeout_s = args.duration + args.waves * (args.wave_interval + 1) + 120
    common = ["--port", str(server.port)]
    with ExitStack() as stack:
        receivers = [stack.enter_context(wsprocs.Client(Path(__file__), [*common, "--role", "receiver",
                                                                          "--client", args.client,
                                                                          "--connections", str(n)],
                                                        client_core, timeout_s)) for n in shares]
        client_cpu_s = -sum(client.read()["cpu_s"] for client in receivers)  # {"ready": n, "cpu_s": s}
        pub = stack.enter_context(wsprocs.Client(Path(__file__), [
            *common, "--role", "publisher", "--window", str(args.window), "--duration", str(args.duration),
            "--waves", str(args.waves), "--wave-interval", str(args.wave_interval)], client_core, timeout_s))
        pub.read()
        user_before, sys_before = wsprocs.cpu_split_s(server.pid)
        pub.send(command)
        done = pub.read()
        user_after, sys_after = wsprocs.cpu_split_s(server.pid)
        cpu_s = user_after + sys_after - user_before - sys_before
        rss = server.rss_bytes()
        time.sleep(args.drain)
        hist: dict[int, int] = {}
        delivered = closed = 0
        for client in receivers:
            client.send("report")
            got = client.read()
            delivered += got["received"]
            closed += got["closed"]
            client_cpu_s += got["cpu_s"]
            for bucket, n in got["hist"].items():
                hist[int(bucket)] = hist.get(int(bucket), 0) + n
        for client in [*receivers, pub]:
            client.send("quit")  # each closes its connections with 1000 and exits
        for client in [*receivers, pub]:
            client.wait()
    server.assert_alive()
    if closed:
        raise BenchError(f"{server.name}: {closed} members were disconnected during the run")
    published = done["published"]
    return Sample(members=members, published=published, delivered=delivered,
                  lost=published * members - delivered, delivered_per_s=delivered / done["seconds"],
                  p50_ms=percentile_ms(hist, 0.50), p99_ms=percentile_ms(hist, 0.99),
                  max_ms=percentile_ms(hist, 1.0), server_cpu_pct=100 * cpu_s / done["seconds"],
                  server_cpu_us_per_delivery=cpu_s * 1e6 / max(1, delivered),
                  server_sys_us_per_delivery=(sys_after - sys_before) * 1e6 / max(1, delivered),
                  client_cpu_us_per_delivery=client_cpu_s * 1e6 / max(1, delivered), server_rss_mib=rss / 2**20)


def report(results: dict[str, dict[str, list[Sample]]], found: dict[str, str]) -> dict[str, Any]:
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    print(f"\n{'scenario':<12}{'server':<12}{'members':>8}{'delivered/s':>13}{'lost':>9}{'p50 ms':>9}"
          f"{'p99 ms':>9}{'max ms':>9}{'srv CPU%':>10}{'srv us/msg':>11}{'sys us/msg':>11}{'cli us/msg':>11}"
          f"{'RSS MiB':>9}"
          "   delivered/s by round")
    out: dict[str, Any] = {}
    for name_s, by_server in results.items():
        out[name_s] = {}
        for name, samples in by_server.items():
            if not samples:
                continue
            med = {f: statistics.median(getattr(s, f) for s in samples) for f in Sample.__dataclass_fields__}
            out[name_s][name] = {"median": med, "rounds": [asdict(s) for s in samples]}
            rounds = " ".join(f"{s.delivered_per_s:,.0f}" for s in samples)
            print(f"{name_s:<12}{name:<12}{med['members']:>8.0f}{med['delivered_per_s']:>13,.0f}{med['lost']:>9.0f}"
                  f"{med['p50_ms']:>9.2f}{med['p99_ms']:>9.2f}{med['max_ms']:>9.2f}{med['server_cpu_pct']:>10.0f}"
                  f"{med['server_cpu_us_per_delivery']:>11.2f}{med['server_sys_us_per_delivery']:>11.2f}"
                  f"{med['client_cpu_us_per_delivery']:>11.2f}"
                  f"{med['server_rss_mib']:>9.1f}   {rounds}")
    room, wave = out.get("room", {}), out.get("wave", {})
    if "cyserve" in room:
        cy = room["cyserve"]["median"]
        print(f"\ncyserve room: {cy['delivered_per_s']:,.0f} delivered/s (target >= {DELIVERED_TARGET:,}: "
              f"{'meets' if cy['delivered_per_s'] >= DELIVERED_TARGET else 'MISSES'})")
        for peer, data in list(room.items()):
            if peer != "cyserve":
                ratio = cy["delivered_per_s"] / data["median"]["delivered_per_s"]
                out["room"][f"ratio_cyserve_over_{peer}"] = ratio
                print(f"  cyserve/{peer}: {ratio:.2f}x delivered/s")
    if "cyserve" in wave:
        p99 = wave["cyserve"]["median"]["p99_ms"]
        print(f"cyserve wave: p99 {p99:.1f} ms (target < {WAVE_P99_TARGET_MS:.0f} ms: "
              f"{'meets' if p99 < WAVE_P99_TARGET_MS else 'MISSES'})")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="WebSocket broadcast, every server in one run")
    parser.add_argument("--members", type=int, default=1000, help="room members of the 'room' scenario")
    parser.add_argument("--duration", type=float, default=5.0, help="publishing seconds of 'room'")
    parser.add_argument("--window", type=int, default=2, help="messages the publisher keeps awaiting an ack")
    parser.add_argument("--wave-members", type=int, default=10_000, help="members of the 'wave' scenario (0: skip)")
    parser.add_argument("--waves", type=int, default=20, help="messages of the 'wave' scenario")
    parser.add_argument("--wave-interval", type=float, default=0.25, help="seconds between waves")
    parser.add_argument("--drain", type=float, default=1.0, help="seconds after the last ack before reading receivers")
    parser.add_argument("--procs", type=int, default=2, help="receiver processes sharing the members")
    parser.add_argument("--client", choices=("raw", "picows"), default="raw",
                        help="the members: asyncio protocols reading in bulk (raw) or picows' client")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--only", default=",".join(SERVERS), help=f"comma list of {', '.join(SERVERS)}")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("receiver", "publisher"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.role == "publisher":
            publisher(args)
        else:
            (raw_receiver if args.client == "raw" else receiver)(args)
        return 0

    servers = args.only.split(",")
    if set(servers) - set(SERVERS):
        parser.error(f"servers from {SERVERS}")
    most = max(args.members, args.wave_members)
    wsprocs.raise_nofile(most + 256)
    server_core, other_core = procs.cores()
    per_round = args.duration + args.drain + 30 + (args.waves * (args.wave_interval + 0.2) + 60 if args.wave_members else 0)
    bound_s = int(len(servers) * args.rounds * per_round * 1.5) + 60
    print(f"servers {servers}; room {args.members} members x {args.duration:g} s (window {args.window}), "
          f"wave {args.wave_members} members x {args.waves}; {args.rounds} rounds; {args.procs} receiver processes; "
          f"server on CPU {server_core}, clients on CPU {other_core}; bound {bound_s} s", flush=True)
    procs.arm_time_bound(bound_s, "bench/ws/broadcast")

    results: dict[str, dict[str, list[Sample]]] = {"room": {n: [] for n in servers}, "wave": {n: [] for n in servers}}
    for round_no in range(args.rounds):
        order = servers if round_no % 2 == 0 else servers[::-1]
        for name in order:
            with WsServer(name, server_core) as server:
                todo = [("room", args.members, "flood")]
                if args.wave_members:
                    todo.append(("wave", args.wave_members, "waves"))
                for label, members, command in todo:
                    sample = scenario(server, args, members, command, other_core)
                    results[label][name].append(sample)
                    print(f"round {round_no + 1}/{args.rounds} {label:<5}{name:<11}{sample.delivered_per_s:>11,.0f} "
                          f"delivered/s  lost {sample.lost}  p50 {sample.p50_ms:.2f} ms  p99 {sample.p99_ms:.2f} ms  "
                          f"max {sample.max_ms:.2f} ms  srv CPU {sample.server_cpu_pct:.0f}%", flush=True)
    signal.alarm(0)
    found = wsprocs.versions()
    out = report(results, found)
    if args.json:
        config = {k: v for k, v in vars(args).items() if k not in ("child", "role", "port", "connections")}
        config |= {"command": " ".join(sys.argv), "server_cpu": server_core, "client_cpu": other_core}
        Path(args.json).write_text(json.dumps({"versions": found, "config": config, "results": out}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/ws/broadcast FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/ws/broadcast: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
