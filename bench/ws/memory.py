"""Server memory per idle WebSocket connection (RSS delta over 10,000), without and with
permessage-deflate negotiated, every server in one run.

    python bench/ws/memory.py [--connections 10000] [--procs 2] [--settle 2] [--only cyserve,aiohttp]
                              [--json out.json]

For each server and each offer (none; ``permessage-deflate; client_max_window_bits``, what browsers
send), a fresh server process (bench/ws/servers/*, pinned to the first CPU) gets ``--connections``
WebSocket connections from ``--procs`` client processes of this script (``--child``, pinned to the
other CPU: a raw asyncio protocol that writes the handshake and then only answers pings).  VmRSS is
read from /proc:
- ``before``: the server after startup and one handshake, ``--settle`` s after it;
- ``open``: every connection open and idle (``--settle`` s after the last handshake);
- ``used``: after each connection sent one 256-byte binary message (uncompressed: RSV1 clear,
  RFC 7692 §6) and read its echo, so buffers and compression state allocated on first use count.
KiB per connection = (RSS - before) / connections.  ``deflate`` says on how many connections the
server's 101 accepted the offer (picows has no permessage-deflate: 0).  The issue's target:
<= 14 KiB per idle connection without deflate (``open``, cyserve).
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
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

OFFERS = {"plain": None, "deflate": "permessage-deflate; client_max_window_bits"}
TARGET_KIB = 14.0
MESSAGE = bytes(range(256))


# ----------------------------------------------------------------- the client (--child)
def _masked(opcode: int, payload: bytes) -> bytes:
    """One client frame (RFC 6455 §5.2, masked as §5.3 requires), payload under 126 bytes or 16-bit."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Idle(asyncio.Protocol):
    """Handshake, then idle: answers pings, counts data messages, replies to a close."""

    def __init__(self, host: str, offer: str | None, opened: asyncio.Future[bool]) -> None:
        self.request = (f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        + (f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else "") + "\r\n").encode()
        self.opened = opened
        self.buffer = b""
        self.head_done = False
        self.messages = 0
        self.echoed: asyncio.Future[None] | None = None
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:  # uvloop's transports are not asyncio.Transport
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_done:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            self.head_done, self.buffer = True, rest
            lines = head.decode("latin-1").lower().split("\r\n")
            ok = lines[0].startswith("http/1.1 101")
            deflate = any(line.startswith("sec-websocket-extensions:") and "permessage-deflate" in line
                          for line in lines)
            if not self.opened.done():
                self.opened.set_result(deflate) if ok else self.opened.set_exception(BenchError(lines[0]))
        while len(self.buffer) >= 2:
            opcode, n = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            start = 2
            if n == 126:
                n, start = int.from_bytes(self.buffer[2:4], "big"), 4
            elif n == 127:
                n, start = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < start + n:
                return
            payload, self.buffer = self.buffer[start:start + n], self.buffer[start + n:]
            assert self.transport is not None
            if opcode == 0x9:
                self.transport.write(_masked(0xA, payload))
            elif opcode == 0x8:
                self.transport.write(_masked(0x8, payload[:2]))
            elif opcode in (0x1, 0x2):
                self.messages += 1
                if self.echoed is not None and not self.echoed.done():
                    self.echoed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(BenchError(f"connection lost before the 101: {exc}"))
        if self.echoed is not None and not self.echoed.done():
            self.echoed.set_exception(BenchError("connection lost before the echo"))


def child(args: argparse.Namespace) -> None:
    import uvloop

    offer = OFFERS[args.offer]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        commands = wsprocs.stdin_commands()
        host = f"{wsprocs.HOST}:{args.port}"
        conns: list[Idle] = []
        negotiated = 0
        for start in range(0, args.connections, 100):
            batch = []
            for _ in range(min(100, args.connections - start)):
                opened: asyncio.Future[bool] = loop.create_future()
                _, proto = await loop.create_connection(lambda: Idle(host, offer, opened), wsprocs.HOST, args.port)
                conns.append(proto)
                batch.append(opened)
            negotiated += sum(await asyncio.wait_for(asyncio.gather(*batch), 60))
        print(json.dumps({"open": len(conns), "deflate": negotiated}), flush=True)
        while (command := await commands.get()) != "quit":
            if command == "exchange":
                for start in range(0, len(conns), 100):
                    waits = []
                    for proto in conns[start:start + 100]:
                        proto.echoed = loop.create_future()
                        assert proto.transport is not None
                        proto.transport.write(_masked(0x2, MESSAGE))
                        waits.append(proto.echoed)
                    await asyncio.wait_for(asyncio.gather(*waits), 60)
                print(json.dumps({"echoed": len(conns)}), flush=True)
        for proto in conns:
            assert proto.transport is not None
            proto.transport.write(_masked(0x8, (1000).to_bytes(2, "big")))
        await asyncio.sleep(1.0)  # the servers answer and close their side first (RFC 6455 §7.1.1)
        for proto in conns:
            assert proto.transport is not None
            proto.transport.close()

    uvloop.run(main())


# ----------------------------------------------------------------- the driver
@dataclass(frozen=True)
class Sample:
    server: str
    offer: str
    connections: int
    deflate: int  # connections whose 101 accepted permessage-deflate
    before_mib: float
    open_mib: float
    used_mib: float
    open_kib_per_conn: float
    used_kib_per_conn: float


def measure(name: str, offer: str, args: argparse.Namespace, server_core: int | None,
            client_core: int | None) -> Sample:
    n = args.connections
    shares = [n // args.procs + (1 if i < n % args.procs else 0) for i in range(args.procs)]
    with WsServer(name, server_core, args.tree) as server, ExitStack() as stack:
        time.sleep(args.settle)
        before = server.rss_bytes()
        clients = [stack.enter_context(wsprocs.Client(Path(__file__), [
            "--port", str(server.port), "--connections", str(share), "--offer", offer], client_core, 300))
            for share in shares]
        deflate = sum(client.read()["deflate"] for client in clients)
        time.sleep(args.settle)
        opened = server.rss_bytes()
        for client in clients:
            client.send("exchange")
        for client in clients:
            client.read()
        time.sleep(args.settle)
        used = server.rss_bytes()
        server.assert_alive()
        for client in clients:
            client.send("quit")
        for client in clients:
            client.wait()
    return Sample(server=name, offer=offer, connections=n, deflate=deflate, before_mib=before / 2**20,
                  open_mib=opened / 2**20, used_mib=used / 2**20, open_kib_per_conn=(opened - before) / 1024 / n,
                  used_kib_per_conn=(used - before) / 1024 / n)


def main() -> int:
    parser = argparse.ArgumentParser(description="RSS per idle WebSocket connection, every server in one run")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=2, help="client processes sharing the connections")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before each RSS reading")
    parser.add_argument("--only", default=",".join(SERVERS), help=f"comma list of {', '.join(SERVERS)}")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--tree", help="a checkout (built in place) whose cyserve the server imports")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--offer", choices=tuple(OFFERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    servers = args.only.split(",")
    if set(servers) - set(SERVERS):
        parser.error(f"servers from {SERVERS}")
    wsprocs.raise_nofile(args.connections + 256)
    server_core, client_core = procs.cores()
    bound_s = int(len(servers) * len(OFFERS) * (3 * args.settle + 120)) + 60
    print(f"servers {servers}, {args.connections} connections from {args.procs} processes; server on CPU "
          f"{server_core}, clients on CPU {client_core}; bound {bound_s} s", flush=True)
    procs.arm_time_bound(bound_s, "bench/ws/memory")
    samples: list[Sample] = []
    for name in servers:
        for offer in OFFERS:
            sample = measure(name, offer, args, server_core, client_core)
            samples.append(sample)
            print(f"{name:<11}{offer:<8} deflate on {sample.deflate:>6}  open {sample.open_kib_per_conn:6.1f} KiB/conn  "
                  f"after one echo {sample.used_kib_per_conn:6.1f} KiB/conn", flush=True)
    signal.alarm(0)
    found = wsprocs.versions()
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    print(f"\n{'server':<12}{'offer':<9}{'deflate':>8}{'RSS before':>12}{'open':>9}{'used':>9}"
          f"{'KiB/conn open':>15}{'KiB/conn used':>15}")
    for s in samples:
        print(f"{s.server:<12}{s.offer:<9}{s.deflate:>8}{s.before_mib:>10.1f}Mi{s.open_mib:>7.1f}Mi{s.used_mib:>7.1f}Mi"
              f"{s.open_kib_per_conn:>15.1f}{s.used_kib_per_conn:>15.1f}")
    cy = next((s for s in samples if s.server == "cyserve" and s.offer == "plain"), None)
    if cy is not None:
        print(f"\ncyserve, no deflate: {cy.open_kib_per_conn:.1f} KiB per idle connection (target <= {TARGET_KIB:.0f}: "
              f"{'meets' if cy.open_kib_per_conn <= TARGET_KIB else 'MISSES'})")
    if args.json:
        config = {"command": " ".join(sys.argv), "connections": args.connections, "procs": args.procs,
                  "settle_s": args.settle, "server_cpu": server_core, "client_cpu": client_core}
        Path(args.json).write_text(json.dumps({"versions": found, "config": config,
                                               "results": [asdict(s) for s in samples]}, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/ws/memory FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/ws/memory: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
