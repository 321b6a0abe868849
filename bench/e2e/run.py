"""End-to-end benchmark: wrk against cyserve and uvicorn in the same run. See README.md.

python bench/e2e/run.py [--duration 10] [--connections 64] [--rounds 3] [--only cyserve|uvicorn]
                        [--scenarios plaintext,json,...] [--json out.json] [--against TREE]
                        [--workers 1,2] [--access-log on,off] [--proxy-headers on,off]

``--against TREE`` also runs the cyserve of another checkout (built in place, e.g. the commit
before a change) as a third server, interleaved in every round, and prints this cyserve over
that one: a before/after comparison measured in one run.

``--workers``, ``--access-log`` and ``--proxy-headers`` (the CLI modes) start each server through
its command line (``cyserve cyserve_app:app ...``, ``uvicorn uvicorn_app:app ...``) instead of
``app.run``, once per combination of the values given (unnamed settings: one worker, access log
off, proxy headers off), all interleaved in the same rounds; the ratios printed compare the
variants that differ in one setting only.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import procs
import verify
import wrk
from procs import BenchError, Cli, Server

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
    # With workers: each worker's CPU time / wrk duration, in pid order (the supervisor's and
    # any helper's share is in the total only).  How evenly the kernel spread the connections.
    worker_cpu_pct: tuple[float, ...] = field(default=())


def measure(server: Server, scenario: Scenario, args: argparse.Namespace, wrk_core: int | None,
            duration_s: int) -> Sample:
    cpu_before = server.cpu_by_pid()  # the server and every process of its tree
    result = wrk.run(server.base_url + scenario.path, connections=args.connections, duration_s=duration_s,
                     depth=scenario.depth, core=wrk_core, headers=server.wrk_headers)
    cpu_after = server.cpu_by_pid()
    server.truncate_output()  # the access log of the run: checked once by the gate, then discarded
    cpu_s = sum(cpu_after.values()) - sum(cpu_before.values())
    server.assert_alive()
    if result.requests == 0 or result.errors > MAX_ERROR_FRACTION * result.requests:
        raise BenchError(f"{server.name} {scenario.name}: {result.non_2xx} non-2xx and "
                         f"{result.socket_errors} socket errors in {result.requests} responses")
    workers = [pid for pid in server.worker_pids() if pid in cpu_before and pid in cpu_after]
    worker_pct = tuple(100 * (cpu_after[pid] - cpu_before[pid]) / result.duration_s for pid in workers)
    return Sample(rps=result.rps, p99_ms=result.p99_ms, cpu_us_per_response=cpu_s * 1e6 / result.requests,
                  server_cpu_pct=100 * cpu_s / result.duration_s, requests=result.requests, errors=result.errors,
                  worker_cpu_pct=worker_pct if len(worker_pct) > 1 else ())


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


def _split(sample: Sample) -> str:
    return f"  workers CPU {'+'.join(f'{pct:.0f}' for pct in sample.worker_cpu_pct)}%" if sample.worker_cpu_pct else ""


@dataclass(frozen=True)
class Variant:
    """One server started through its command line (the CLI modes), named after its settings:
    ``cyserve-w2``, ``uvicorn-w1+log``, ``cyserve-w1+xff``."""

    server: str  # "cyserve" or "uvicorn"
    workers: int
    access_log: bool
    proxy_headers: bool
    forwarded: bool  # wrk sends X-Forwarded-For/-Proto (on both sides of a proxy-headers comparison)

    @property
    def cli(self) -> Cli:
        return Cli(workers=self.workers, access_log=self.access_log, proxy_headers=self.proxy_headers,
                   forwarded=self.forwarded)

    @property
    def name(self) -> str:
        return self.server + self.cli.label


# (setting, what its ratios are called, the value the others are divided by); see cli_ratios.
AXES: tuple[tuple[str, str, Any], ...] = (
    ("server", "cyserve/uvicorn", "uvicorn"),
    ("workers", "N workers / fewest", None),  # None: the smallest count in the run
    ("access_log", "access log on/off", False),
    ("proxy_headers", "proxy headers on/off", False),
)


def variants(servers: list[str], workers: list[int] | None, access_log: list[bool] | None,
             proxy_headers: list[bool] | None) -> list[Variant]:
    """Every combination of the values given; a setting not given keeps its plain value."""
    forwarded = proxy_headers is not None
    return [Variant(server, count, log, proxy, forwarded)
            for server, count, log, proxy in itertools.product(
                servers, workers or [1], access_log or [False], proxy_headers or [False])]


def cli_ratios(medians: dict[tuple[str, str], Median], scenarios: list[str],
               run_variants: list[Variant]) -> dict[str, list[dict[str, Any]]]:
    """For each setting the run varies, each variant over the one that differs from it in that
    setting alone (taking the reference value): printed, and returned per scenario."""
    out: dict[str, list[dict[str, Any]]] = {scenario: [] for scenario in scenarios}
    by_key = set(run_variants)
    for axis, title, reference in AXES:
        values = {getattr(variant, axis) for variant in run_variants}
        if len(values) < 2:
            continue
        ref = min(values) if reference is None else reference
        pairs = [(variant, dataclasses.replace(variant, **{axis: ref})) for variant in run_variants
                 if getattr(variant, axis) != ref]
        pairs = [(over, under) for over, under in pairs if under in by_key]
        width = max(len(f"{over.name} / {under.name}") for over, under in pairs) + 2
        print(f"\n{title:<{18 + width}}req/s ratio   CPU-per-response ratio")
        for scenario in scenarios:
            for over, under in pairs:
                a, b = medians[scenario, over.name], medians[scenario, under.name]
                ratio = {"setting": axis, "over": over.name, "under": under.name, "rps": a.rps / b.rps,
                         "cpu_per_response": a.cpu_us_per_response / b.cpu_us_per_response}
                out[scenario].append(ratio)
                print(f"{scenario:<18}{over.name + ' / ' + under.name:<{width}}{ratio['rps']:>10.2f}x"
                      f"{ratio['cpu_per_response']:>24.2f}x")
    return out


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


def report(results: dict[str, dict[str, list[Sample]]], found: dict[str, str],
           run_variants: list[Variant] | None = None) -> dict[str, Any]:
    """Print the table; return the same data for --json."""
    print("\n" + "  ".join(f"{k} {v}" for k, v in found.items()))
    width = max([9] + [len(name) + 1 for by_server in results.values() for name in by_server])
    print(f"\n{'scenario':<18}{'server':<{width}}{'req/s':>10}{'p99 ms':>9}{'CPU us/resp':>13}"
          f"{'srv CPU%':>10}   req/s by round")
    out: dict[str, Any] = {}
    medians: dict[tuple[str, str], Median] = {}
    for scenario, by_server in results.items():
        out[scenario] = {}
        for name, samples in by_server.items():
            med = medians[scenario, name] = Median.of(samples)
            out[scenario][name] = {"median": asdict(med), "rounds": [asdict(s) for s in samples]}
            rounds = " ".join(f"{s.rps:,.0f}" for s in samples)
            print(f"{scenario:<18}{name:<{width}}{med.rps:>10,.0f}{_ms(med.p99_ms):>9}"
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
    if run_variants:
        for scenario, ratios_of in cli_ratios(medians, list(results), run_variants).items():
            out[scenario]["ratios"] = ratios_of
    return out


def _values(kind: str, convert: Any) -> Any:
    """An argparse type for a comma list of ``convert``-ed values, duplicates dropped."""
    def parse(text: str) -> list[Any]:
        values: list[Any] = []
        for part in text.split(","):
            value = convert(part.strip())
            if value not in values:
                values.append(value)
        return values
    parse.__name__ = kind  # argparse names the type in its error message
    return parse


def _count(text: str) -> int:
    count = int(text)
    if count < 1:
        raise ValueError(text)
    return count


def _on_off(text: str) -> bool:
    if text not in ("on", "off"):
        raise ValueError(text)
    return text == "on"


def main() -> int:
    parser = argparse.ArgumentParser(description="wrk against cyserve and uvicorn, same run")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk per server and scenario first")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (one wrk thread)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--only", choices=SERVERS, help="benchmark one server")
    parser.add_argument("--scenarios", help=f"comma list of {', '.join(SCENARIOS)} (default: all; "
                        "plaintext,json in the CLI modes)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--against", metavar="TREE",
                        help="also run the cyserve of this checkout (built in place) as 'before'")
    cli = parser.add_argument_group("CLI modes: servers started by their command line, one per combination")
    cli.add_argument("--workers", type=_values("worker counts", _count), metavar="N,...",
                     help="--workers N for each N (e.g. 1,2); nothing is pinned then")
    cli.add_argument("--access-log", type=_values("on/off", _on_off), metavar="on,off",
                     help="--access-log / --no-access-log (lines to a file, emptied after each run)")
    cli.add_argument("--proxy-headers", type=_values("on/off", _on_off), metavar="on,off",
                     help="--proxy-headers --forwarded-allow-ips 127.0.0.1 / --no-proxy-headers; "
                          "wrk sends X-Forwarded-For and -Proto to both")
    args = parser.parse_args()
    cli_mode = any(v is not None for v in (args.workers, args.access_log, args.proxy_headers))
    if cli_mode and args.against:
        parser.error("--against runs app.run servers; it does not combine with the CLI modes")
    servers = [args.only] if args.only else list(SERVERS)
    run_variants: list[Variant] = []
    if cli_mode:
        run_variants = variants(servers, args.workers, args.access_log, args.proxy_headers)
        servers = [variant.name for variant in run_variants]
    if args.against:
        servers.append("before")
    if args.scenarios is None:
        args.scenarios = "plaintext,json" if cli_mode else ",".join(SCENARIOS)
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    scenarios = [SCENARIOS[name] for name in args.scenarios.split(",")]
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found (apt-get install -y wrk)")

    server_core, wrk_core = procs.cores()
    if any(variant.workers > 1 for variant in run_variants):
        # Several workers on a 2-core machine need both cores, and so does wrk: nothing is pinned
        # (every variant of the run, one worker too, so they compare under the same scheduling).
        server_core = wrk_core = None
    runs = len(servers) * len(scenarios)
    # + each server's start (up to 20 s for an answer, 20 s for its workers) and stop (10 s).
    bound_s = int(1.5 * runs * (args.warmup + args.rounds * args.duration + 2)) + 60 + 50 * len(run_variants)
    pinning = (f"server on CPU {server_core}, wrk on CPU {wrk_core}" if server_core is not None
               else "nothing pinned (the workers and wrk share the CPUs)" if run_variants
               else "nothing pinned (fewer than 2 CPUs)")
    print(f"servers {servers}, scenarios {[s.name for s in scenarios]}, {args.rounds} x {args.duration} s, "
          f"-c{args.connections}; {pinning}; bound {bound_s} s")
    procs.arm_time_bound(bound_s, "bench/e2e")

    results: dict[str, dict[str, list[Sample]]] = {s.name: {n: [] for n in servers} for s in scenarios}
    width = max([9] + [len(name) + 1 for name in servers])
    with ExitStack() as stack:
        if run_variants:
            running = {v.name: stack.enter_context(Server(v.name, server_core, app=v.server, cli=v.cli))
                       for v in run_variants}
        else:
            running = {name: stack.enter_context(
                           Server(name, server_core, app="cyserve", tree=args.against) if name == "before"
                           else Server(name, server_core))
                       for name in servers}
        commands = {name: " ".join(server.command) for name, server in running.items()}
        for server in running.values():
            verify.check_server(server.app, server.port)
        for variant in run_variants:
            server = running[variant.name]
            verify.check_access_log(variant.name, server.output_text(), access_log=variant.access_log)
            if variant.forwarded:
                verify.check_client(variant.name, server.port, proxy_headers=variant.proxy_headers)
        for scenario in scenarios:
            for server in running.values():
                measure(server, scenario, args, wrk_core, args.warmup)
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else servers[::-1]  # A,B then B,A: drift hits both
            for scenario in scenarios:
                for name in order:
                    sample = measure(running[name], scenario, args, wrk_core, args.duration)
                    results[scenario.name][name].append(sample)
                    print(f"round {round_no + 1}/{args.rounds} {scenario.name:<18}{name:<{width}}"
                          f"{sample.rps:>10,.0f} req/s  p99 ms {_ms(sample.p99_ms)}  "
                          f"{sample.cpu_us_per_response:.1f} us/resp  srv CPU {sample.server_cpu_pct:.0f}%"
                          f"{_split(sample)}", flush=True)
    signal.alarm(0)

    found = versions()
    out = report(results, found, run_variants)
    if args.json:
        config = {"command": " ".join(sys.argv), "duration_s": args.duration, "warmup_s": args.warmup,
                  "connections": args.connections, "rounds": args.rounds, "wrk_threads": 1,
                  "server_cpu": server_core, "wrk_cpu": wrk_core, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "commands": commands,
                  "wrk_headers": list(procs.FORWARDED_HEADERS) if any(v.forwarded for v in run_variants) else []}
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
