"""Server memory per idle push connection: RSS delta over 10,000 connections, TCP and WebSocket.

    python bench/push/memory.py [--connections 10000] [--transports tcp,ws] [--procs 2] [--settle 2]
                                [--tree ../other-checkout] [--json out.json]

For each transport a fresh server (bench/push/apps/hub_app.py, pinned to the first CPU: a cyserve
App serving a ``Hub`` with the in-process broker, every limit ``PushLimits``' default but the
connection count) gets ``--connections`` push connections from ``--procs`` client processes of
this script (``--child``, pinned to the other CPU; bench/push/pushwire.py's members: binary
framing on TCP, binary messages on WebSocket, the ``bytes`` codec).  VmRSS is read from /proc,
each time ``--settle`` s after the step:

- ``before``: the server started, one connection opened, said HELLO and closed (what is made on
  first use once per process counts here, not per connection);
- ``open``: every connection has had its WELCOME and is idle (it answers PINGs and pings when it
  has sent nothing for most of a heartbeat, as a live client does);
- ``used``: every connection then joined the group ``bench`` (``bench.join``) and received one
  100-byte push published to it: a session's group membership, its resume history (one push)
  and the buffers a write makes count there.

KiB per connection = (RSS - before) / connections.  Target (issue 11 §6): <= 8 KiB per idle
push connection (``open``, TCP).  The WebSocket row is for comparison (an HTTP upgrade and a
WebSocket role under the push connection; bench/ws/memory.py measures the WebSocket alone).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pushprocs import BenchError, PushServer, procs, wsprocs  # noqa: E402
from pushwire import TRANSPORTS, Tally, connect_one, goodbye, keep_alive, message, open_members  # noqa: E402

TARGET_KIB = 8.0


# ----------------------------------------------------------------- the client (--child)
def child(args: argparse.Namespace) -> None:
    import uvloop

    async def main() -> None:
        commands = wsprocs.stdin_commands()
        tally = Tally()
        members = await open_members(args.transport, [args.port], args.connections, tally, join=False)
        beat = keep_alive(members)
        print(json.dumps({"open": len(members)}), flush=True)
        while (command := await commands.get()) != "quit":
            if command == "join":
                for first in range(0, len(members), 100):
                    await asyncio.wait_for(asyncio.gather(*(m.call("bench.join") for m in members[first:first + 100])),
                                           60)
                print(json.dumps({"joined": len(members)}), flush=True)
            elif command == "report":
                print(json.dumps(tally.report()), flush=True)
        beat.cancel()
        await goodbye(members)

    uvloop.run(main())


def publish_once(port: int) -> None:
    """One 100-byte publish to the group, from a connection of its own (the driver's process)."""
    async def main() -> None:
        tally = Tally()
        pub = await connect_one("tcp", port, tally)
        await asyncio.wait_for(pub.call("bench.publish", message(1)), 30)
        await goodbye([pub])
        if tally.errors:
            raise BenchError(f"publisher: {tally.errors}")
    asyncio.run(main())


# ----------------------------------------------------------------- the driver
@dataclass(frozen=True)
class Sample:
    transport: str
    connections: int
    before_mib: float
    open_mib: float
    used_mib: float
    open_kib_per_conn: float
    used_kib_per_conn: float


def _probe(transport: str, port: int) -> None:
    """One connection's HELLO and goodbye: what the first connection makes once is in ``before``."""
    async def main() -> None:
        member = await connect_one(transport, port, Tally())
        await goodbye([member])
    asyncio.run(main())


def measure(transport: str, args: argparse.Namespace, server_core: int | None, client_core: int | None) -> Sample:
    n = args.connections
    shares = [n // args.procs + (1 if i < n % args.procs else 0) for i in range(args.procs)]
    with PushServer("push-cyserve", "push-cyserve", server_core, tree=args.tree) as server, ExitStack() as stack:
        assert server.push_port is not None
        port = server.push_port if transport == "tcp" else server.port
        _probe(transport, port)
        time.sleep(args.settle)
        before = server.rss_bytes()
        clients = [stack.enter_context(wsprocs.Client(Path(__file__), [
            "--transport", transport, "--port", str(port), "--connections", str(share)], client_core, 600))
            for share in shares]
        for client in clients:
            client.read()                               # {"open": n}
        time.sleep(args.settle)
        opened = server.rss_bytes()
        for client in clients:
            client.send("join")
        for client in clients:
            client.read()
        publish_once(server.push_port)
        time.sleep(args.settle)
        used = server.rss_bytes()
        for client in clients:
            client.send("report")
        got = [client.read() for client in clients]
        server.assert_alive()
        received = sum(g["received"] for g in got)
        problems = [g for g in got if g["closed"] or g["errors"] or g["disorder"] or g["gaps"]]
        if received != n or problems:
            raise BenchError(f"{transport}: {received} of {n} connections received the push; {problems[:1]}")
        for client in clients:
            client.send("quit")
        for client in clients:
            client.wait()
    return Sample(transport=transport, connections=n, before_mib=before / 2**20, open_mib=opened / 2**20,
                  used_mib=used / 2**20, open_kib_per_conn=(opened - before) / 1024 / n,
                  used_kib_per_conn=(used - before) / 1024 / n)


def main() -> int:
    parser = argparse.ArgumentParser(description="RSS per idle push connection, TCP and WebSocket")
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="comma list of tcp, ws")
    parser.add_argument("--procs", type=int, default=2, help="client processes sharing the connections")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds before each RSS reading")
    parser.add_argument("--tree", help="a checkout (built in place) whose cyserve the server imports")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--transport", choices=TRANSPORTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    transports = args.transports.split(",")
    if set(transports) - set(TRANSPORTS):
        parser.error(f"transports from {TRANSPORTS}")
    wsprocs.raise_nofile(args.connections + 256)
    server_core, client_core = procs.cores()
    bound_s = int(len(transports) * (3 * args.settle + args.connections / 50 + 120)) + 60
    print(f"transports {transports}, {args.connections} connections from {args.procs} processes; server on CPU "
          f"{server_core}, clients on CPU {client_core}; bound {bound_s} s", flush=True)
    procs.arm_time_bound(bound_s, "bench/push/memory")
    samples: list[Sample] = []
    for transport in transports:
        sample = measure(transport, args, server_core, client_core)
        samples.append(sample)
        print(f"{transport:<5} open {sample.open_kib_per_conn:6.1f} KiB/conn  joined + one push "
              f"{sample.used_kib_per_conn:6.1f} KiB/conn", flush=True)
    signal.alarm(0)
    found = wsprocs.versions()
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    print(f"\n{'transport':<11}{'RSS before':>12}{'open':>9}{'used':>9}{'KiB/conn open':>15}{'KiB/conn used':>15}")
    for s in samples:
        print(f"{s.transport:<11}{s.before_mib:>10.1f}Mi{s.open_mib:>7.1f}Mi{s.used_mib:>7.1f}Mi"
              f"{s.open_kib_per_conn:>15.1f}{s.used_kib_per_conn:>15.1f}")
    tcp = next((s for s in samples if s.transport == "tcp"), None)
    if tcp is not None:
        print(f"\nTCP: {tcp.open_kib_per_conn:.1f} KiB per idle push connection (target <= {TARGET_KIB:.0f}: "
              f"{'meets' if tcp.open_kib_per_conn <= TARGET_KIB else 'MISSES'})")
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
        sys.exit(f"bench/push/memory FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/push/memory: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
