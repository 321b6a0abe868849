"""Push fan-out through Redis: two workers holding a group's members, a third process publishing
through the RedisBroker; against raw redis-py pub/sub and python-socketio's AsyncRedisManager.

    python bench/push/redis_fanout.py [--members 1000] [--duration 5] [--window 256] [--inflight 32]
                                      [--pipeline 100] [--rounds 3] [--procs 2] [--only raw,cyserve,socketio]
                                      [--json out.json]
    python bench/push/redis_fanout.py --report out.json

Each run starts its own ``redis-server`` (no persistence, a free 127.0.0.1 port) and, for cyserve
and Socket.IO, two worker processes, all pinned to the first CPU; the clients (receivers and the
publisher, processes of this script run with ``--child``) are pinned to the other.

- ``cyserve``: two bench/push/apps/hub_app.py processes, each a ``Hub`` on
  ``RedisBroker(url)`` with its own TCP push port: the two workers of one deployment.  The
  publisher process runs a third ``Hub`` on the same Redis with no listener and calls
  ``hub.publish("bench", message)`` (one broker publish per message, never per member).
- ``socketio``: two bench/push/apps/socketio_app.py processes (``socketio.AsyncServer`` with
  ``AsyncRedisManager(url)`` under aiohttp); the publisher emits to the room through
  ``AsyncRedisManager(url, write_only=True)``, the library's way to emit from another process.
- ``raw``: the baseline: redis-py's asyncio client PUBLISHing in pipelines of ``--pipeline``
  messages to two raw subscribers (the two "nodes"; no worker processes).

Members: ``--members`` split evenly over the two workers (member i on worker i % 2), opened by
``--procs`` receiver processes that read in bulk (bench/push/pushwire.py's push members over TCP
with the ``bytes`` codec; peerwire.py's Socket.IO clients over a raw WebSocket).  The publisher
process also holds one member on each worker (raw: the two subscribers), its sentinels: it keeps
at most ``--window`` messages published and not yet received by both, with at most
``--inflight`` publish calls outstanding (raw: one pipeline at a time), for ``--duration`` s,
then waits until the sentinels have every message.  Every message is 100 bytes carrying its send
time; latency is taken at every member.

Rows per round: ``raw-nodes`` (the two subscribers alone), ``cyserve-nodes`` and
``socketio-nodes`` (the sentinels alone: one member per worker), ``cyserve-<members>`` and
``socketio-<members>``.  ``msgs/s`` = messages published / time until the sentinels had them
all; ``delivered/s`` = pushes received by every member (sentinels included) / the same time.

Targets (issue 11 §6): cyserve-nodes msgs/s >= 50 % of raw-nodes (the RedisBroker's overhead over
redis-py's own pipelined PUBLISH, same run), and cyserve-<members> delivered/s >= 5x
socketio-<members>.  ``other%``, ``--max-other``, ``--retries`` and the medians over clean rounds
are as in fanout.py.  Bounded: every client has a deadline, a SIGALRM bound covers the whole run,
and redis-server, the workers and the clients are killed however it ends.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peerwire import RAW_CHANNEL, close_sio, open_resp, open_sio, sio_text  # noqa: E402
from pushprocs import BenchError, CpuWindow, PushServer, clean_median, pinned_redis, procs, wsprocs  # noqa: E402
from pushwire import (  # noqa: E402
    GROUP, HOST, Tally, check_report, goodbye, keep_alive, merge_reports, message, open_members, percentile_ms,
)

SYSTEMS = ("raw", "cyserve", "socketio")
APPS = {"cyserve": "push-cyserve", "socketio": "push-socketio"}
RATIO_TO_RAW_TARGET = 0.5      # cyserve-nodes msgs/s over raw-nodes msgs/s
RATIO_TO_SOCKETIO_TARGET = 5.0  # cyserve delivered/s over socketio's, same members
NODES = 2                       # workers (raw: subscribers)


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# ----------------------------------------------------------------- the clients (--child)
def receiver(args: argparse.Namespace) -> None:
    """``--connections`` members on ``--ports`` (member i on port i % 2), reading in bulk."""
    import uvloop

    async def main() -> None:
        commands = wsprocs.stdin_commands()
        tally = Tally()
        ports = [int(p) for p in args.ports.split(",")]
        if args.system == "cyserve":
            members = await open_members("tcp", ports, args.connections, tally)
            beat = keep_alive(members)
            await serve(len(members), commands, tally)
            beat.cancel()
            await goodbye(members)
        else:
            sio = await open_sio(ports, args.connections, tally)
            await serve(len(sio), commands, tally)
            await close_sio(sio)

    async def serve(ready: int, commands: asyncio.Queue[str], tally: Tally) -> None:
        _say(ready=ready)
        while (command := await commands.get()) != "quit":
            if command == "reset":
                tally.reset()
                _say(reset=True)
            elif command == "report":
                _say(**tally.report())

    uvloop.run(main())


async def flood(publish: Callable[[int, int], Coroutine[Any, Any, None]], batch: int, seen: Callable[[], int],
                wake: asyncio.Event, window: int, inflight: int, duration_s: float) -> tuple[int, float]:
    """Publish for ``duration_s`` with at most ``window`` messages not yet seen by the sentinels
    and ``inflight`` calls outstanding (``publish(first, count)`` publishes messages first..
    first+count-1); then wait until the sentinels have them all.  (messages, seconds)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())  # type: ignore[arg-type]
        wake.set()

    async def progress() -> None:
        """Until something changes: a sentinel counted, a call ended (30 s without: stuck)."""
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), 30)
        except TimeoutError:
            raise BenchError(f"no progress for 30 s: {seen()} of {sent} messages at the sentinels") from None
        if failures:
            raise BenchError(f"a publish failed: {failures[0]!r}")

    sent = 0
    start = time.monotonic()
    stop_at = start + duration_s
    while time.monotonic() < stop_at:
        while sent + batch - seen() > window or len(tasks) >= inflight:
            await progress()
        task = loop.create_task(publish(sent + 1, batch))
        task.add_done_callback(finished)
        tasks.add(task)
        sent += batch
    while tasks or seen() < sent:
        await progress()
    return sent, time.monotonic() - start


def publisher(args: argparse.Namespace) -> None:
    """The publisher and its sentinels: ``probe`` (publish until every sentinel got one),
    ``flood``; answers with what was published and what the sentinels received."""
    import uvloop

    async def main() -> None:
        commands = wsprocs.stdin_commands()
        url = f"redis://{HOST}:{args.redis_port}/0"
        ports = [int(p) for p in args.ports.split(",")] if args.ports else []
        tallies = [Tally() for _ in range(NODES)]
        wake = asyncio.Event()
        for tally in tallies:
            tally.on_count = wake.set
        batch = 1
        publish: Callable[[int, int], Coroutine[Any, Any, None]]
        if args.system == "cyserve":
            from cyserve.push import Hub, RedisBroker
            hub = Hub(broker=RedisBroker(url))
            await hub.start()
            sentinels = [(await open_members("tcp", [port], 1, tally))[0] for port, tally in zip(ports, tallies)]
            beat = keep_alive(sentinels)

            async def publish(first: int, count: int) -> None:
                await hub.publish(GROUP, message(first))

            async def close() -> None:
                beat.cancel()
                await goodbye(sentinels)
                await hub.stop(1.0)
        elif args.system == "socketio":
            import socketio
            manager = socketio.AsyncRedisManager(url, write_only=True)
            sio = [(await open_sio([port], 1, tally))[0] for port, tally in zip(ports, tallies)]

            async def publish(first: int, count: int) -> None:
                await manager.emit("m", sio_text(first), room=GROUP, namespace="/")

            async def close() -> None:
                await close_sio(sio)
        else:
            import redis.asyncio as aioredis
            client = aioredis.Redis(host=HOST, port=args.redis_port)
            subs = await open_resp(args.redis_port, tallies)
            batch = args.pipeline

            async def publish(first: int, count: int) -> None:
                pipe = client.pipeline(transaction=False)
                for number in range(first, first + count):
                    pipe.publish(RAW_CHANNEL, message(number))
                await pipe.execute()

            async def close() -> None:
                await client.aclose()
                for sub in subs:
                    sub.transport.close()

        def seen() -> int:
            return min(t.received for t in tallies)

        _say(ready=True)
        while (command := await commands.get()) != "quit":
            if command == "probe":          # until every worker is subscribed and delivering
                for _ in range(30):
                    await publish(0, 1)
                    deadline = asyncio.get_running_loop().time() + 1.0
                    while not seen() and asyncio.get_running_loop().time() < deadline:
                        await asyncio.sleep(0.01)
                    if seen():
                        break
                else:
                    raise BenchError(f"no probe reached every sentinel in 30 s: {[t.received for t in tallies]}")
                await asyncio.sleep(0.2)
                for tally in tallies:
                    tally.reset()
                _say(probe=True)
            elif command == "flood":
                published, seconds = await flood(publish, batch, seen, wake, args.window,
                                                 max(1, args.inflight // batch), args.duration)
                _say(published=published, seconds=seconds, sentinels=merge_reports([t.report() for t in tallies]))
        await close()

    uvloop.run(main())


# ----------------------------------------------------------------- the driver
def scenario(system: str, members: int, args: argparse.Namespace, server_core: int | None,
             client_core: int | None) -> dict[str, Any]:
    """One row: a fresh redis-server and workers, ``members`` members, one flood."""
    timeout_s = args.duration + members / 50 + 150
    with ExitStack() as stack:
        redis = stack.enter_context(pinned_redis(server_core))
        workers = [stack.enter_context(PushServer(f"{system}-w{i}", APPS[system], server_core,
                                                  env={"BENCH_PUSH_REDIS": redis.url}))
                   for i in range(NODES)] if system != "raw" else []
        ports = [str(w.push_port if system == "cyserve" else w.port) for w in workers]
        nprocs = max(1, min(args.procs, members)) if members else 0
        shares = [members // nprocs + (1 if i < members % nprocs else 0) for i in range(nprocs)]
        receivers = [stack.enter_context(wsprocs.Client(Path(__file__), [
            "--role", "receiver", "--system", system, "--ports", ",".join(ports), "--connections", str(n)],
            client_core, timeout_s)) for n in shares]
        for client in receivers:
            client.read()                                     # {"ready": n}
        pub = stack.enter_context(wsprocs.Client(Path(__file__), [
            "--role", "publisher", "--system", system, "--ports", ",".join(ports), "--redis-port", str(redis.port),
            "--window", str(args.window), "--inflight", str(args.inflight), "--pipeline", str(args.pipeline),
            "--duration", str(args.duration)], client_core, timeout_s))
        pub.read()
        pub.send("probe")
        pub.read()
        for client in receivers:
            client.send("reset")
            client.read()
        servers = [w.pid for w in workers] + ([redis.pid] if redis.pid else [])
        clients = [c.proc.pid for c in [*receivers, pub] if c.proc is not None]
        with CpuWindow(servers, clients) as cpu:
            pub.send("flood")
            done = pub.read()
        time.sleep(args.drain)
        for client in receivers:
            client.send("report")
        got = merge_reports([client.read() for client in receivers] + [done["sentinels"]])
        for client in [*receivers, pub]:
            client.send("quit")
        for client in [*receivers, pub]:
            client.wait()
        for worker in workers:
            worker.assert_alive()
    check_report(f"{system} {members} members", got)
    published, seconds = done["published"], done["seconds"]
    delivered = got["received"]
    everyone = members + NODES
    return {"members": members, "published": published, "msgs_per_s": published / seconds,
            "delivered": delivered, "delivered_per_s": delivered / seconds, "lost": published * everyone - delivered,
            "p50_ms": percentile_ms(got["hist"], 0.50), "p99_ms": percentile_ms(got["hist"], 0.99),
            "max_ms": percentile_ms(got["hist"], 1.0), "server_cpu_pct": 100 * cpu.server_s / cpu.seconds,
            "server_us_per_delivery": cpu.server_s * 1e6 / max(1, delivered),
            "client_us_per_delivery": cpu.client_s * 1e6 / max(1, delivered),
            "redis_cpu_pct": cpu.server_pct(redis.pid) if redis.pid else 0.0, "other_pct": cpu.other_pct}


def versions() -> dict[str, str]:
    """bench/ws's list, the Redis side's packages and the redis-server run."""
    import subprocess
    from importlib import metadata
    found: dict[str, str] = wsprocs.versions()
    for name in ("python-socketio", "python-engineio", "redis"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    server = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=10)
    found["redis-server"] = next((w[2:] for w in server.stdout.split() if w.startswith("v=")), "unknown")
    return found


def report(results: dict[str, list[dict[str, Any]]], found: dict[str, str], max_other: float) -> dict[str, Any]:
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    print(f"\n{'row':<18}{'msgs/s':>10}{'delivered/s':>13}{'lost':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'srv CPU%':>10}{'redis%':>8}{'srv us/msg':>11}{'cli us/msg':>11}{'other%':>8}   msgs/s by round "
          f"([...]: others took > {max_other:g}%)")
    out: dict[str, Any] = {}
    for name, rounds in results.items():
        if not rounds:
            continue
        med, clean = clean_median(rounds, max_other)
        out[name] = {"median": med, "clean_rounds": clean, "rounds": rounds}
        by_round = " ".join(f"{r['msgs_per_s']:,.0f}" if r["other_pct"] <= max_other else f"[{r['msgs_per_s']:,.0f}]"
                            for r in rounds)
        print(f"{name:<18}{med['msgs_per_s']:>10,.0f}{med['delivered_per_s']:>13,.0f}{med['lost']:>7.0f}"
              f"{med['p50_ms']:>9.2f}{med['p99_ms']:>9.2f}{med['max_ms']:>9.2f}{med['server_cpu_pct']:>10.0f}"
              f"{med['redis_cpu_pct']:>8.0f}{med['server_us_per_delivery']:>11.2f}{med['client_us_per_delivery']:>11.2f}{med['other_pct']:>8.0f}"
              f"{'' if clean else '*':1}  {by_round}")
    ratios: dict[str, Any] = {}
    if "cyserve-nodes" in out and "raw-nodes" in out:
        ratio = out["cyserve-nodes"]["median"]["msgs_per_s"] / out["raw-nodes"]["median"]["msgs_per_s"]
        ratios["cyserve_nodes_over_raw"] = ratio
        print(f"\ncyserve-nodes / raw-nodes msgs/s: {ratio:.2f} (target >= {RATIO_TO_RAW_TARGET:.2f}: "
              f"{'meets' if ratio >= RATIO_TO_RAW_TARGET else 'MISSES'})")
    for name in out:
        peer = name.replace("cyserve-", "socketio-")
        if name.startswith("cyserve-") and name != "cyserve-nodes" and peer in out:
            ratio = out[name]["median"]["delivered_per_s"] / out[peer]["median"]["delivered_per_s"]
            ratios[f"{name}_over_{peer}"] = ratio
            print(f"{name} / {peer} delivered/s: {ratio:.2f}x (target >= {RATIO_TO_SOCKETIO_TARGET:.0f}x: "
                  f"{'meets' if ratio >= RATIO_TO_SOCKETIO_TARGET else 'MISSES'})")
    out["ratios"] = ratios
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Push fan-out through Redis: cyserve, raw redis-py, python-socketio")
    parser.add_argument("--members", type=int, default=1000, help="members of the group, split over the two workers")
    parser.add_argument("--duration", type=float, default=5.0, help="publishing seconds per run")
    parser.add_argument("--window", type=int, default=256, help="messages published and not yet at both sentinels")
    parser.add_argument("--inflight", type=int, default=32, help="publish calls outstanding (raw: messages)")
    parser.add_argument("--pipeline", type=int, default=100, help="PUBLISHes per raw redis-py pipeline")
    parser.add_argument("--drain", type=float, default=1.0, help="seconds after the flood before reading receivers")
    parser.add_argument("--procs", type=int, default=2, help="receiver processes sharing the members")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--only", default=",".join(SYSTEMS), help=f"comma list of {', '.join(SYSTEMS)}")
    parser.add_argument("--max-other", type=float, default=10.0, metavar="PCT",
                        help="run again when other processes took more than PCT %% of the machine")
    parser.add_argument("--retries", type=int, default=3, help="times a disturbed run is run again")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--report", metavar="JSON", help="print the report of a run saved with --json, and exit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("receiver", "publisher"), help=argparse.SUPPRESS)
    parser.add_argument("--system", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    parser.add_argument("--redis-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        report({name: data["rounds"] for name, data in saved["results"].items() if name != "ratios"},
               saved["versions"], saved["config"]["max_other"])
        return 0
    if args.child:
        (receiver if args.role == "receiver" else publisher)(args)
        return 0

    systems = args.only.split(",")
    if set(systems) - set(SYSTEMS):
        parser.error(f"systems from {SYSTEMS}")
    if args.window < args.pipeline and "raw" in systems:
        parser.error("--window must be at least --pipeline")
    rows = [(system, size) for system in systems for size in ([0] if system == "raw" else [0, args.members])]
    wsprocs.raise_nofile(args.members + 256)
    server_core, client_core = procs.cores()
    per_round = sum(args.duration + args.drain + n / 50 + 40 for _, n in rows)
    bound_s = int(args.rounds * per_round * (1 + args.retries) * 1.5) + 60
    print(f"rows {rows} x {args.duration:g} s (window {args.window}, {args.inflight} in flight, raw pipelines of "
          f"{args.pipeline}); {args.rounds} rounds; redis-server and workers on CPU {server_core}, clients on CPU "
          f"{client_core}; bound {bound_s} s", flush=True)
    procs.arm_time_bound(bound_s, "bench/push/redis_fanout")

    def label(system: str, members: int) -> str:
        return f"{system}-{members if members else 'nodes'}"

    results: dict[str, list[dict[str, Any]]] = {label(s, n): [] for s, n in rows}
    for round_no in range(args.rounds):
        order = rows if round_no % 2 == 0 else rows[::-1]
        for system, members in order:
            for attempt in range(args.retries + 1):
                sample = scenario(system, members, args, server_core, client_core)
                print(f"round {round_no + 1}/{args.rounds} {label(system, members):<16}{sample['msgs_per_s']:>9,.0f} "
                      f"msgs/s {sample['delivered_per_s']:>11,.0f} delivered/s  lost {sample['lost']}  p99 "
                      f"{sample['p99_ms']:.2f} ms  srv CPU {sample['server_cpu_pct']:.0f}%  others "
                      f"{sample['other_pct']:.0f}%", flush=True)
                if sample["other_pct"] <= args.max_other:
                    break
                if attempt < args.retries:
                    print(f"  other processes took {sample['other_pct']:.0f}% of the machine "
                          f"(> {args.max_other:g}%): run again", flush=True)
            results[label(system, members)].append(sample)
    signal.alarm(0)
    found = versions()
    out = report(results, found, args.max_other)
    if args.json:
        config = {k: v for k, v in vars(args).items()
                  if k not in ("child", "role", "system", "ports", "redis_port", "connections", "report")}
        config |= {"command": " ".join(sys.argv), "server_cpu": server_core, "client_cpu": client_core}
        Path(args.json).write_text(json.dumps({"versions": found, "config": config, "results": out}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/push/redis_fanout FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/push/redis_fanout: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
