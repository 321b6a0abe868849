"""End-to-end benchmark: wrk against cyserve and uvicorn in the same run. See README.md.

python bench/e2e/run.py [--duration 10] [--connections 64] [--rounds 3] [--only cyserve|uvicorn]
                        [--scenarios plaintext,json,...] [--json out.json] [--against TREE]

``--against TREE`` also runs the cyserve of another checkout (built in place, e.g. the commit
before a change) as a third server, interleaved in every round, and prints this cyserve over
that one: a before/after comparison measured in one run.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import procs
import verify
import wrk
from procs import BenchError, Server

SERVERS = ("cyserve", "uvicorn")
MAX_ERROR_FRACTION = 0.001  # non-2xx + socket errors tolerated per completed request


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    depth: int  # requests per write; 1 is plain keep-alive


SCENARIOS = {s.name: s for s in (
    Scenario("plaintext", "/plaintext", 1),
    Scenario("json", "/json", 1),
    Scenario("plaintext-pipe16", "/plaintext", 16),
    Scenario("json-pipe16", "/json", 16),
)}


@dataclass(frozen=True)
class Sample:
    rps: float
    p99_ms: float | None  # None for pipelined runs: see wrk._trusted_p99_ms
    cpu_us_per_response: float  # server CPU time (user + system) / completed responses
    server_cpu_pct: float  # server CPU time / wrk duration; ~100 means the server's core was saturated
    requests: int
    errors: int


def measure(server: Server, scenario: Scenario, args: argparse.Namespace, wrk_core: int | None,
            duration_s: int) -> Sample:
    cpu_before = server.cpu_s()
    result = wrk.run(server.base_url + scenario.path, connections=args.connections, duration_s=duration_s,
                     depth=scenario.depth, core=wrk_core)
    cpu_s = server.cpu_s() - cpu_before
    server.assert_alive()
    if result.requests == 0 or result.errors > MAX_ERROR_FRACTION * result.requests:
        raise BenchError(f"{server.name} {scenario.name}: {result.non_2xx} non-2xx and "
                         f"{result.socket_errors} socket errors in {result.requests} responses")
    return Sample(rps=result.rps, p99_ms=result.p99_ms, cpu_us_per_response=cpu_s * 1e6 / result.requests,
                  server_cpu_pct=100 * cpu_s / result.duration_s, requests=result.requests, errors=result.errors)


@dataclass(frozen=True)
class Median:
    """Per-field medians over the rounds of one server and scenario."""

    rps: float
    p99_ms: float | None
    cpu_us_per_response: float
    server_cpu_pct: float

    @classmethod
    def of(cls, samples: list[Sample]) -> Median:
        p99s = [s.p99_ms for s in samples if s.p99_ms is not None]
        return cls(rps=statistics.median(s.rps for s in samples),
                   p99_ms=statistics.median(p99s) if p99s else None,
                   cpu_us_per_response=statistics.median(s.cpu_us_per_response for s in samples),
                   server_cpu_pct=statistics.median(s.server_cpu_pct for s in samples))


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "kernel": platform.release()}
    found["cyserve"] = procs.child_python(
        "import cyserve, importlib.metadata as m\n"
        "print(getattr(cyserve, '__version__', None) or m.version('cyserve'), cyserve.__file__)")
    for name in ("uvicorn", "httptools", "uvloop"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    found["wrk"] = (wrk_v.stdout or wrk_v.stderr).split("Copyright")[0].strip().removeprefix("wrk ")
    git = subprocess.run(["git", "-C", str(procs.REPO_DIR), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=10)
    found["git"] = git.stdout.strip() or "no commit"
    return found


def report(results: dict[str, dict[str, list[Sample]]], found: dict[str, str]) -> dict[str, Any]:
    """Print the table; return the same data for --json."""
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    print(f"\n{'scenario':<18}{'server':<9}{'req/s':>10}{'p99 ms':>9}{'CPU us/resp':>13}"
          f"{'srv CPU%':>10}   req/s by round")
    out: dict[str, Any] = {}
    medians: dict[tuple[str, str], Median] = {}
    for scenario, by_server in results.items():
        out[scenario] = {}
        for name, samples in by_server.items():
            med = medians[scenario, name] = Median.of(samples)
            out[scenario][name] = {"median": asdict(med), "rounds": [asdict(s) for s in samples]}
            rounds = " ".join(f"{s.rps:,.0f}" for s in samples)
            print(f"{scenario:<18}{name:<9}{med.rps:>10,.0f}{_ms(med.p99_ms):>9}"
                  f"{med.cpu_us_per_response:>13.1f}{med.server_cpu_pct:>10.0f}   {rounds}")
    if all("before" in by_server and "cyserve" in by_server for by_server in results.values()):
        print("\ncyserve/before     req/s ratio (>1: faster now)       CPU-per-response ratio (<1: cheaper now)")
        for scenario in results:
            cy, old = medians[scenario, "cyserve"], medians[scenario, "before"]
            ratios = {"rps": cy.rps / old.rps, "cpu_per_response": cy.cpu_us_per_response / old.cpu_us_per_response}
            out[scenario]["ratio_cyserve_over_before"] = ratios
            print(f"{scenario:<18}{ratios['rps']:>10.2f}x{ratios['cpu_per_response']:>42.2f}x")
    if all("cyserve" in by_server and "uvicorn" in by_server for by_server in results.values()):
        print("\ncyserve/uvicorn    req/s ratio (>1: cyserve faster)   CPU-per-response ratio (<1: cheaper)")
        for scenario in results:
            cy, uv = medians[scenario, "cyserve"], medians[scenario, "uvicorn"]
            ratios = {"rps": cy.rps / uv.rps, "cpu_per_response": cy.cpu_us_per_response / uv.cpu_us_per_response}
            out[scenario]["ratio_cyserve_over_uvicorn"] = ratios
            print(f"{scenario:<18}{ratios['rps']:>10.2f}x{ratios['cpu_per_response']:>42.2f}x")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="wrk against cyserve and uvicorn, same run")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk per server and scenario first")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (one wrk thread)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--only", choices=SERVERS, help="benchmark one server")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma list of {', '.join(SCENARIOS)}")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--against", metavar="TREE",
                        help="also run the cyserve of this checkout (built in place) as 'before'")
    args = parser.parse_args()
    servers = [args.only] if args.only else list(SERVERS)
    if args.against:
        servers.append("before")
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    scenarios = [SCENARIOS[name] for name in args.scenarios.split(",")]
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found (apt-get install -y wrk)")

    server_core, wrk_core = procs.cores()
    runs = len(servers) * len(scenarios)
    bound_s = int(1.5 * runs * (args.warmup + args.rounds * args.duration + 2)) + 60
    print(f"servers {servers}, scenarios {[s.name for s in scenarios]}, {args.rounds} x {args.duration} s, "
          f"-c{args.connections}; server on CPU {server_core}, wrk on CPU {wrk_core}; bound {bound_s} s")
    procs.arm_time_bound(bound_s, "bench/e2e")

    results: dict[str, dict[str, list[Sample]]] = {s.name: {n: [] for n in servers} for s in scenarios}
    with ExitStack() as stack:
        running = {name: stack.enter_context(
                       Server(name, server_core, app="cyserve", tree=args.against) if name == "before"
                       else Server(name, server_core))
                   for name in servers}
        for server in running.values():
            verify.check_server(server.app, server.port)
        for scenario in scenarios:
            for server in running.values():
                measure(server, scenario, args, wrk_core, args.warmup)
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else servers[::-1]  # A,B then B,A: drift hits both
            for scenario in scenarios:
                for name in order:
                    sample = measure(running[name], scenario, args, wrk_core, args.duration)
                    results[scenario.name][name].append(sample)
                    print(f"round {round_no + 1}/{args.rounds} {scenario.name:<18}{name:<9}"
                          f"{sample.rps:>10,.0f} req/s  p99 ms {_ms(sample.p99_ms)}  "
                          f"{sample.cpu_us_per_response:.1f} us/resp  srv CPU {sample.server_cpu_pct:.0f}%",
                          flush=True)
    signal.alarm(0)

    found = versions()
    out = report(results, found)
    if args.json:
        config = {"command": " ".join(sys.argv), "duration_s": args.duration, "warmup_s": args.warmup,
                  "connections": args.connections, "rounds": args.rounds, "wrk_threads": 1,
                  "server_cpu": server_core, "wrk_cpu": wrk_core, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(args.json, "w") as f:
            json.dump({"versions": found, "config": config, "results": out}, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/e2e FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/e2e: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
