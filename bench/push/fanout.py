"""In-process push fan-out: delivered messages per second and delivery latency of a group publish
to 1,000 and 10,000 members, over TCP and WebSocket, and push-to-one round trips.

    python bench/push/fanout.py [--members 1000,10000] [--ws-members 1000] [--duration 5] [--window 2]
                                [--one-duration 2] [--rounds 3] [--procs 2] [--json out.json]
    python bench/push/fanout.py --report out.json

The server is bench/push/apps/hub_app.py (one process, pinned to the first CPU): a cyserve App
serving a ``Hub`` with the in-process broker on a TCP push port and at ``/push`` (WebSocket).  The
clients are processes of this script (``--child``), pinned to the other CPU, speaking
cyserve-push/1 with the ``bytes`` codec (bench/push/pushwire.py):

- ``room`` (TCP, binary framing) and ``ws-room`` (WebSocket binary messages): ``--procs``
  receiver processes open the members (HELLO, then the ``bench.join`` command) and read pushes
  in bulk; one publisher connection (TCP) keeps ``--window`` ``bench.publish`` calls in flight,
  each publishing a 100-byte message carrying its send time to the group (``hub.publish``: the
  frame built once per framing, written to every member), sending the next call when a REPLY
  comes, for ``--duration`` s.  ``delivered/s`` = pushes received by all members / publishing
  time; ``lost`` = published x members - delivered, read ``--drain`` s after the last reply;
  p50/p99 from every delivery's latency (log histogram, 2 % buckets).  Target: >= 300,000
  delivered/s with one server core (issue 11 §6, like the WebSocket broadcast).
- ``one``: push-to-one, one call at a time for ``--one-duration`` s per variant: a caller's
  ``bench.send`` makes the server ``hub.send`` a 100-byte message to a target client (another
  connection of the same process) and answer; ``bench.send_ack`` the same with ``ack=True``, so
  the answer waits for the target's ACK.  Call->reply round trip (p50/p99, calls/s) and
  call->push latency at the target.

Members that are closed, pushes out of order (each member's sequence numbers are checked), gaps or
errors fail the run.  ``other%`` is what the rest of the machine took during a measured window; a
run above ``--max-other`` (10 %) is run again, at most ``--retries`` (3) times, and the report's
medians are over the clean rounds.  Bounded: the file-descriptor limit is raised to its hard limit
(children inherit it), every client has a deadline, a SIGALRM bound covers the whole run, and
servers and clients are killed with their process groups however it ends.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from pushprocs import BenchError, CpuWindow, PushServer, clean_median, procs, wsprocs  # noqa: E402
from pushwire import Member, Tally, check_report, connect_one, merge_reports, goodbye, keep_alive, message, open_members, percentile_ms  # noqa: E402

DELIVERED_TARGET = 300_000   # issue 11 §6: delivered/s on one server core
ONE_VARIANTS = ("bench.send", "bench.send_ack")


# ----------------------------------------------------------------- the clients (--child)
def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def receiver(args: argparse.Namespace) -> None:
    """``--connections`` members of the group on ``--ports``; reports what they received."""
    import uvloop

    async def main() -> None:
        commands = wsprocs.stdin_commands()
        tally = Tally()
        ports = [int(p) for p in args.ports.split(",")]
        members = await open_members(args.transport, ports, args.connections, tally)
        beat = keep_alive(members)
        _say(ready=len(members))
        while (command := await commands.get()) != "quit":
            if command == "reset":
                tally.reset()
                _say(reset=True)
            elif command == "report":
                _say(**tally.report())
        beat.cancel()
        await goodbye(members)

    uvloop.run(main())


def publisher(args: argparse.Namespace) -> None:
    """One TCP connection calling ``bench.publish``: ``probe`` (one message), ``flood``
    (``--window`` calls in flight for ``--duration`` s)."""
    import uvloop

    async def flood(pub: Member, window: int, duration_s: float) -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        sent = acked = 0
        start = time.monotonic()
        stop_at = start + duration_s

        def send_one() -> None:
            nonlocal sent
            sent += 1
            pub.call("bench.publish", message(sent)).add_done_callback(answered)

        def answered(future: asyncio.Future[Any]) -> None:
            nonlocal acked
            if done.done():
                return
            if future.exception() is not None:
                done.set_exception(future.exception())  # type: ignore[arg-type]
                return
            acked += 1
            if time.monotonic() < stop_at:
                send_one()
            elif acked == sent:
                done.set_result(None)

        for _ in range(window):
            send_one()
        await asyncio.wait_for(done, duration_s + 60)
        return sent, time.monotonic() - start

    async def main() -> None:
        commands = wsprocs.stdin_commands()
        pub = await connect_one("tcp", args.port, Tally())
        beat = keep_alive([pub])
        _say(ready=1)
        while (command := await commands.get()) != "quit":
            if command == "probe":
                await asyncio.wait_for(pub.call("bench.publish", message(0)), 30)
                _say(probe=True)
            elif command == "flood":
                published, seconds = await flood(pub, args.window, args.duration)
                _say(published=published, seconds=seconds)
        beat.cancel()
        await goodbye([pub])

    uvloop.run(main())


def one(args: argparse.Namespace) -> None:
    """Push-to-one: a caller and a target connection; each variant of ``ONE_VARIANTS`` for
    ``--duration`` s, one call at a time."""
    import uvloop

    async def main() -> None:
        commands = wsprocs.stdin_commands()
        target = await connect_one("tcp", args.port, Tally())
        caller = await connect_one("tcp", args.port, Tally())
        target_id = str(target.welcome.result()["client_id"]).encode()
        beat = keep_alive([target, caller])
        _say(ready=2)
        while (command := await commands.get()) != "quit":
            if command != "run":
                continue
            results: dict[str, Any] = {}
            for variant in ONE_VARIANTS:
                rtt, pushes = Tally(), Tally()
                target.tally = pushes
                calls = undelivered = 0
                start = time.monotonic()
                stop_at = start + args.duration
                while time.monotonic() < stop_at:
                    calls += 1
                    sent = time.monotonic_ns()
                    answer = await asyncio.wait_for(caller.call(variant, message(calls) + target_id), 30)
                    rtt.stamps((sent,))
                    undelivered += answer != b"\x01"
                seconds = time.monotonic() - start
                await asyncio.sleep(0.05)   # the last push may follow its reply (no ack)
                results[variant] = {"calls": calls, "seconds": seconds, "undelivered": undelivered,
                                    "rtt": rtt.report(), "push": pushes.report()}
            _say(**results)
        beat.cancel()
        await goodbye([target, caller])

    uvloop.run(main())


# ----------------------------------------------------------------- the driver
def room(server: PushServer, args: argparse.Namespace, transport: str, members: int,
         client_core: int | None) -> dict[str, Any]:
    """One ``room`` run: ``members`` members over ``transport``, the publisher over TCP."""
    nprocs = max(1, min(args.procs, members))
    shares = [members // nprocs + (1 if i < members % nprocs else 0) for i in range(nprocs)]
    port = server.push_port if transport == "tcp" else server.port
    timeout_s = args.duration + members / 50 + 120   # opening 10,000 members takes a while
    with ExitStack() as stack:
        receivers = [stack.enter_context(wsprocs.Client(Path(__file__), [
            "--role", "receiver", "--transport", transport, "--ports", str(port), "--connections", str(n)],
            client_core, timeout_s)) for n in shares]
        for client in receivers:
            client.read()                                    # {"ready": n}
        pub = stack.enter_context(wsprocs.Client(Path(__file__), [
            "--role", "publisher", "--port", str(server.push_port), "--window", str(args.window),
            "--duration", str(args.duration)], client_core, timeout_s))
        pub.read()
        pub.send("probe")                                    # a first publish, not counted
        pub.read()
        time.sleep(0.2)
        for client in receivers:
            client.send("reset")
            client.read()
        assert pub.proc is not None
        with CpuWindow([server.pid], [c.proc.pid for c in receivers if c.proc] + [pub.proc.pid]) as cpu:
            pub.send("flood")
            done = pub.read()
        rss = server.rss_bytes()
        time.sleep(args.drain)
        for client in receivers:
            client.send("report")
        got = merge_reports([client.read() for client in receivers])
        for client in [*receivers, pub]:
            client.send("quit")
        for client in [*receivers, pub]:
            client.wait()
    server.assert_alive()
    check_report(f"{transport} {members} members", got)
    published, seconds = done["published"], done["seconds"]
    delivered = got["received"]
    return {"members": members, "published": published, "delivered": delivered,
            "lost": published * members - delivered, "delivered_per_s": delivered / seconds,
            "p50_ms": percentile_ms(got["hist"], 0.50), "p99_ms": percentile_ms(got["hist"], 0.99),
            "max_ms": percentile_ms(got["hist"], 1.0), "server_cpu_pct": 100 * cpu.server_s / cpu.seconds,
            "server_us_per_delivery": cpu.server_s * 1e6 / max(1, delivered),
            "server_sys_us_per_delivery": cpu.server_sys_s * 1e6 / max(1, delivered),
            "client_us_per_delivery": cpu.client_s * 1e6 / max(1, delivered),
            "other_pct": cpu.other_pct, "server_rss_mib": rss / 2**20}


def one_to_one(server: PushServer, args: argparse.Namespace, client_core: int | None) -> dict[str, dict[str, Any]]:
    """The ``one`` runs: a row per variant."""
    with wsprocs.Client(Path(__file__), ["--role", "one", "--port", str(server.push_port),
                                         "--duration", str(args.one_duration)],
                        client_core, len(ONE_VARIANTS) * (args.one_duration + 40)) as client:
        client.read()
        assert client.proc is not None
        with CpuWindow([server.pid], [client.proc.pid]) as cpu:
            client.send("run")
            got = client.read()
        client.send("quit")
        client.wait()
    server.assert_alive()
    rows = {}
    for variant, data in got.items():
        rtt, push = merge_reports([data["rtt"]]), merge_reports([data["push"]])   # JSON's keys back to ints
        check_report(f"one {variant}", push)
        if data["undelivered"] or push["received"] < data["calls"]:
            raise BenchError(f"one {variant}: {data['undelivered']} sends not delivered, "
                             f"{push['received']} of {data['calls']} pushes received")
        rows[variant] = {"calls": data["calls"], "calls_per_s": data["calls"] / data["seconds"],
                         "rtt_p50_ms": percentile_ms(rtt["hist"], 0.50), "rtt_p99_ms": percentile_ms(rtt["hist"], 0.99),
                         "push_p50_ms": percentile_ms(push["hist"], 0.50),
                         "push_p99_ms": percentile_ms(push["hist"], 0.99),
                         "server_cpu_pct": 100 * cpu.server_s / cpu.seconds,
                         "other_pct": cpu.other_pct}
    return rows


def report(results: dict[str, list[dict[str, Any]]], found: dict[str, str], max_other: float) -> dict[str, Any]:
    """Medians over the clean rounds (``*``: none was clean, all were used); ``[...]``: a round
    others disturbed."""
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    out: dict[str, Any] = {}
    rooms = {k: v for k, v in results.items() if not k.startswith("one:") and v}
    ones = {k: v for k, v in results.items() if k.startswith("one:") and v}
    if rooms:
        print(f"\n{'scenario':<18}{'delivered/s':>13}{'lost':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'srv CPU%':>10}"
              f"{'srv us/msg':>11}{'sys us/msg':>11}{'cli us/msg':>11}{'other%':>8}{'RSS MiB':>9}"
              f"   delivered/s by round ([...]: others took > {max_other:g}%)")
    for name, rounds in rooms.items():
        med, clean = clean_median(rounds, max_other)
        out[name] = {"median": med, "clean_rounds": clean, "rounds": rounds}
        by_round = " ".join(f"{r['delivered_per_s']:,.0f}" if r["other_pct"] <= max_other
                            else f"[{r['delivered_per_s']:,.0f}]" for r in rounds)
        print(f"{name:<18}{med['delivered_per_s']:>13,.0f}{med['lost']:>8.0f}{med['p50_ms']:>9.2f}{med['p99_ms']:>9.2f}"
              f"{med['max_ms']:>9.2f}{med['server_cpu_pct']:>10.0f}{med['server_us_per_delivery']:>11.2f}"
              f"{med['server_sys_us_per_delivery']:>11.2f}{med['client_us_per_delivery']:>11.2f}"
              f"{med['other_pct']:>8.0f}{'' if clean else '*':1}{med['server_rss_mib']:>8.1f}   {by_round}")
    if ones:
        print(f"\n{'push-to-one':<18}{'calls/s':>10}{'rtt p50 ms':>12}{'rtt p99 ms':>12}{'push p50 ms':>13}"
              f"{'push p99 ms':>13}{'srv CPU%':>10}{'other%':>8}")
    for name, rounds in ones.items():
        med, clean = clean_median(rounds, max_other)
        out[name] = {"median": med, "clean_rounds": clean, "rounds": rounds}
        print(f"{name[4:]:<18}{med['calls_per_s']:>10,.0f}{med['rtt_p50_ms']:>12.3f}{med['rtt_p99_ms']:>12.3f}"
              f"{med['push_p50_ms']:>13.3f}{med['push_p99_ms']:>13.3f}{med['server_cpu_pct']:>10.0f}"
              f"{med['other_pct']:>8.0f}{'' if clean else '*'}")
    for name, data in out.items():
        if name.startswith("tcp-"):
            rate = data["median"]["delivered_per_s"]
            print(f"\n{name}: {rate:,.0f} delivered/s (target >= {DELIVERED_TARGET:,} on one server core: "
                  f"{'meets' if rate >= DELIVERED_TARGET else 'MISSES'})", end="")
    print()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="In-process push fan-out and push-to-one")
    parser.add_argument("--members", default="1000,10000", help="TCP room sizes, comma list ('' to skip)")
    parser.add_argument("--ws-members", default="1000", help="WebSocket room sizes, comma list ('' to skip)")
    parser.add_argument("--duration", type=float, default=5.0, help="publishing seconds per room run")
    parser.add_argument("--window", type=int, default=2, help="bench.publish calls the publisher keeps in flight")
    parser.add_argument("--drain", type=float, default=1.0, help="seconds after the last reply before reading receivers")
    parser.add_argument("--one-duration", type=float, default=2.0, help="seconds per push-to-one variant (0: skip)")
    parser.add_argument("--procs", type=int, default=2, help="receiver processes sharing the members")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--max-other", type=float, default=10.0, metavar="PCT",
                        help="run again when other processes took more than PCT %% of the machine")
    parser.add_argument("--retries", type=int, default=3, help="times a disturbed run is run again")
    parser.add_argument("--tree", help="a checkout (built in place) whose cyserve the server imports")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--report", metavar="JSON", help="print the report of a run saved with --json, and exit")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("receiver", "publisher", "one"), help=argparse.SUPPRESS)
    parser.add_argument("--transport", choices=("tcp", "ws"), default="tcp", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--connections", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        report({name: data["rounds"] for name, data in saved["results"].items()}, saved["versions"],
               saved["config"]["max_other"])
        return 0
    if args.child:
        {"receiver": receiver, "publisher": publisher, "one": one}[args.role](args)
        return 0

    tcp_sizes = [int(n) for n in args.members.split(",") if n]
    ws_sizes = [int(n) for n in args.ws_members.split(",") if n]
    runs = [("tcp", n) for n in tcp_sizes] + [("ws", n) for n in ws_sizes]
    wsprocs.raise_nofile(max([n for _, n in runs] + [0]) + 256)
    server_core, client_core = procs.cores()
    per_round = sum(args.duration + args.drain + n / 50 + 30 for _, n in runs) + (
        len(ONE_VARIANTS) * (args.one_duration + 10) if args.one_duration else 0)
    bound_s = int(args.rounds * per_round * (1 + args.retries) * 1.5) + 60
    print(f"rooms {runs} x {args.duration:g} s (window {args.window}), push-to-one {args.one_duration:g} s per "
          f"variant; {args.rounds} rounds; {args.procs} receiver processes; server on CPU {server_core}, clients on "
          f"CPU {client_core}; bound {bound_s} s", flush=True)
    procs.arm_time_bound(bound_s, "bench/push/fanout")

    results: dict[str, list[dict[str, Any]]] = {f"{t}-{n}": [] for t, n in runs}
    if args.one_duration:
        results |= {f"one:{v}": [] for v in ONE_VARIANTS}

    def measured(label: str, run: Any) -> Any:
        for attempt in range(args.retries + 1):
            sample = run()
            others = max(s["other_pct"] for s in (sample.values() if label == "one" else [sample]))
            if others <= args.max_other or attempt == args.retries:
                return sample
            print(f"  {label}: other processes took {others:.0f}% of the machine (> {args.max_other:g}%): "
                  "run again", flush=True)
        raise AssertionError("unreachable")

    for round_no in range(args.rounds):
        with PushServer("push-cyserve", "push-cyserve", server_core, tree=args.tree) as server:
            for transport, members in runs:
                label = f"{transport}-{members}"
                sample = measured(label, lambda: room(server, args, transport, members, client_core))
                results[label].append(sample)
                print(f"round {round_no + 1}/{args.rounds} {label:<12}{sample['delivered_per_s']:>11,.0f} delivered/s  "
                      f"lost {sample['lost']}  p50 {sample['p50_ms']:.2f} ms  p99 {sample['p99_ms']:.2f} ms  "
                      f"srv CPU {sample['server_cpu_pct']:.0f}%  others {sample['other_pct']:.0f}%", flush=True)
            if args.one_duration:
                rows = measured("one", lambda: one_to_one(server, args, client_core))
                for variant, row in rows.items():
                    results[f"one:{variant}"].append(row)
                    print(f"round {round_no + 1}/{args.rounds} one {variant:<15}{row['calls_per_s']:>8,.0f} calls/s  "
                          f"rtt p99 {row['rtt_p99_ms']:.3f} ms  push p99 {row['push_p99_ms']:.3f} ms", flush=True)
    signal.alarm(0)
    found = wsprocs.versions()
    out = report(results, found, args.max_other)
    if args.json:
        config = {k: v for k, v in vars(args).items()
                  if k not in ("child", "role", "transport", "port", "ports", "connections", "report")}
        config |= {"command": " ".join(sys.argv), "server_cpu": server_core, "client_cpu": client_core}
        Path(args.json).write_text(json.dumps({"versions": found, "config": config, "results": out}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/push/fanout FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/push/fanout: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
