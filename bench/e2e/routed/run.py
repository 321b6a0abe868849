"""Routed end-to-end benchmark: a 50-route app with a global middleware and JSON answers, in
cyserve and in Starlette on uvicorn (httptools + uvloop), wrk against both in the same run.

    python bench/e2e/routed/run.py [--duration 10] [--rounds 3] [--connections 64] [--against TREE]

Reuses bench/e2e's harness (procs.Server for start/stop/pinning/CPU readings, wrk.run, run.measure
and its medians; see bench/e2e/README.md for how to read the numbers).  Before measuring, both
servers must give the same status, content type, body and middleware header on every scenario
path, a 404 for an unknown one, and pass bench/e2e's verify.check_server.  Scenarios:
``plaintext`` (a static route), ``param-json`` (the middle parametrised route, JSON),
``static-json`` (the last static page).  Prints req/s and CPU-per-response medians and the
cyserve/Starlette ratios; exits 1 unless cyserve needs at most 1/``--min-ratio`` (half) the
server CPU per response of Starlette on every scenario.  The gate uses CPU per response because
on a shared 2-core machine it is the steady number (bench/e2e/README.md); req/s ratios are
printed beside it.  Needs Starlette: ``pip install -e .[bench]``.

``--against TREE`` also runs the same routed app on the cyserve of another checkout (built in
place, e.g. the commit before a change) as ``before``, in every round, and prints the
cyserve/before ratios: what a change costs routes that do not use it.
"""
from __future__ import annotations

import argparse
import http.client
import shutil
import signal
import sys
from contextlib import ExitStack
from pathlib import Path

ROUTED_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(ROUTED_DIR.parent))  # bench/e2e: the shared harness

import procs  # noqa: E402
import run as harness  # noqa: E402
import verify  # noqa: E402
from procs import HOST, BenchError, Server  # noqa: E402

procs.APPS["cyserve-routed"] = ROUTED_DIR / "cyserve_routed.py"
procs.APPS["starlette-routed"] = ROUTED_DIR / "starlette_routed.py"
SERVERS = ("cyserve-routed", "starlette-routed")
SCENARIOS = [harness.Scenario("plaintext", "/plaintext", 1),
             harness.Scenario("param-json", "/api/v1/res12/42", 1),
             harness.Scenario("static-json", "/static/page22", 1)]


def fetch(port: int, path: str) -> tuple[int, str, bytes, str | None]:
    conn = http.client.HTTPConnection(HOST, port, timeout=5.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return (response.status, response.getheader("content-type", "").split(";")[0],
                response.read(), response.getheader("x-served-by"))
    finally:
        conn.close()


def check_same_answers(running: dict[str, Server]) -> None:
    for server in running.values():
        verify.check_server(server.app, server.port)
    for path in [s.path for s in SCENARIOS] + ["/json", "/api/v1/res0/7", "/api/v1/res24/1"]:
        answers = {name: fetch(server.port, path) for name, server in running.items()}
        first = next(iter(answers.values()))
        if first[0] != 200 or first[3] != "bench" or any(a != first for a in answers.values()):
            raise BenchError(f"GET {path}: answers differ or are wrong: {answers}")
    for name, server in running.items():
        if fetch(server.port, "/api/v1/res3/not-an-int")[0] != 404:
            raise BenchError(f"{name}: a converter mismatch must be 404")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk per server and scenario first")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (one wrk thread)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--min-ratio", type=float, default=2.0,
                        help="required Starlette/cyserve CPU-per-response ratio")
    parser.add_argument("--against", metavar="TREE",
                        help="also run the routed app on this checkout's cyserve (built in place) as 'before'")
    args = parser.parse_args()
    servers = list(SERVERS) + (["before"] if args.against else [])
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found (apt-get install -y wrk)")
    server_core, wrk_core = procs.cores()
    bound_s = int(1.5 * len(servers) * len(SCENARIOS) * (args.warmup + args.rounds * args.duration + 2)) + 60
    print(f"{len(servers)} servers x {len(SCENARIOS)} scenarios, {args.rounds} x {args.duration} s, "
          f"-c{args.connections}; server on CPU {server_core}, wrk on CPU {wrk_core}; bound {bound_s} s")
    procs.arm_time_bound(bound_s, "bench/e2e/routed")

    results: dict[str, dict[str, list[harness.Sample]]] = {
        s.name: {n: [] for n in servers} for s in SCENARIOS}
    with ExitStack() as stack:
        running = {name: stack.enter_context(
                       Server(name, server_core, app="cyserve-routed", tree=args.against) if name == "before"
                       else Server(name, server_core))
                   for name in servers}
        check_same_answers(running)
        for scenario in SCENARIOS:
            for server in running.values():
                harness.measure(server, scenario, args, wrk_core, args.warmup)
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else servers[::-1]
            for scenario in SCENARIOS:
                for name in order:
                    sample = harness.measure(running[name], scenario, args, wrk_core, args.duration)
                    results[scenario.name][name].append(sample)
                    print(f"round {round_no + 1}/{args.rounds} {scenario.name:<13}{name:<18}"
                          f"{sample.rps:>10,.0f} req/s  {sample.cpu_us_per_response:6.1f} us/resp  "
                          f"srv CPU {sample.server_cpu_pct:.0f}%", flush=True)
    signal.alarm(0)

    print(f"\n{'scenario':<13}{'server':<18}{'req/s':>10}{'CPU us/resp':>13}{'srv CPU%':>10}")
    ok = True
    for scenario, by_server in results.items():
        med = {name: harness.Median.of(samples) for name, samples in by_server.items()}
        for name, m in med.items():
            print(f"{scenario:<13}{name:<18}{m.rps:>10,.0f}{m.cpu_us_per_response:>13.1f}"
                  f"{m.server_cpu_pct:>10.0f}")
        cy, st = med["cyserve-routed"], med["starlette-routed"]
        cpu_ratio = cy.cpu_us_per_response / st.cpu_us_per_response
        ok = ok and cpu_ratio * args.min_ratio <= 1.0
        print(f"{scenario:<13}{'cyserve/Starlette':<18}{cy.rps / st.rps:>9.2f}x{cpu_ratio:>12.2f}x"
              f"   (req/s ratio, CPU-per-response ratio)")
        if "before" in med:
            before = med["before"]
            print(f"{scenario:<13}{'cyserve/before':<18}{cy.rps / before.rps:>9.2f}x"
                  f"{cy.cpu_us_per_response / before.cpu_us_per_response:>12.2f}x")
    print(f"\n{'PASS' if ok else 'FAIL'}: cyserve uses <= 1/{args.min_ratio:g} of Starlette's CPU "
          "per response on every scenario")
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/e2e/routed FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/e2e/routed: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
