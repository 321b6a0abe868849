"""ASGI end-to-end benchmark (issue 12 §3): the same ASGI apps on cyserve's adapter, uvicorn and
granian, in the same run, each server on one core and the load generator on the other.

    python bench/e2e/asgi/run.py [--duration 10] [--warmup 2] [--rounds 3] [--connections 64]
                                 [--only cyserve,uvicorn,granian] [--scenarios plaintext,...]
                                 [--ws-modes 1conn,64conn] [--ws-sizes 256] [--json out.json]
    python bench/e2e/asgi/run.py --report out.json        # print a saved run again

Scenarios (README.md says what each measures):
- ``plaintext``, ``json``: ``raw_app.app`` on cyserve (``--interface asgi3``), uvicorn (httptools
  + uvloop) and granian (ASGI interface, one worker, one runtime thread, uvloop); targets
  cyserve/uvicorn >= 2x and cyserve/granian >= 1.2x in req/s;
- ``fastapi-json``: ``GET /products/3`` of examples/fastapi_app.py (a pydantic response model
  behind a dependency) on cyserve and uvicorn; target >= 1.3x;
- ``fastapi-async-json``: the same route with its dependency an ``async def`` (fastapi_async.py,
  through FastAPI's ``dependency_overrides``): no worker-thread hand-off per request; no target,
  it shows what the route gets from the server when FastAPI stays on the loop;
- ``noop-json``: ``raw_app.noop`` answering the same bytes with no framework: each server's own
  CPU per response for that answer, so the FastAPI figure splits into server and framework;
- ``ws-echo``: bench/ws/echo.py's load generator and measurement against ``raw_app.app``'s
  WebSocket echo on cyserve and on uvicorn (``--ws websockets``); target >= 2x.

Every server is started through its command line (what a Dockerfile runs), pinned with taskset,
before anything is measured; answers are checked first (bench/e2e's verify for plaintext/json
and pipelining, the same bytes from FastAPI and the no-op app, a WebSocket handshake); then
``--rounds`` rounds each run every scenario on every server, alternating the order.  The HTTP
scenarios reuse bench/e2e's wrk runs, CPU readings, medians and table (``run.measure``,
``run.report``); the WebSocket one bench/ws/echo.py's (``echo.measure``, ``echo.report``).  Each
run also records ``other%``, the CPU the rest of the machine took meanwhile; a run above
``--max-other`` is run again (``--retries``) and medians use the clean rounds when there are
any.  Exits 1 when a target is missed.
"""
from __future__ import annotations

import argparse
import json
import resource
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

ASGI_DIR = Path(__file__).resolve().parent
E2E_DIR = ASGI_DIR.parent
REPO_DIR = E2E_DIR.parents[1]
sys.path.insert(0, str(E2E_DIR.parent / "ws"))  # bench/ws: the echo load generator
sys.path.insert(0, str(E2E_DIR))  # bench/e2e: the shared harness (ahead of this run.py)

import echo as ws_echo  # noqa: E402
import procs  # noqa: E402
import run as harness  # noqa: E402
import verify  # noqa: E402
import wsprocs  # noqa: E402
from procs import HOST, BenchError, Server  # noqa: E402

procs.APPS["asgi-raw"] = ASGI_DIR / "raw_app.py"
procs.APPS["asgi-fastapi"] = REPO_DIR / "examples" / "fastapi_app.py"
procs.APPS["asgi-fastapi-async"] = ASGI_DIR / "fastapi_async.py"
ws_echo.TARGETS["uvicorn"] = 2.0  # issue 12 §3: the adapter's echo over uvicorn's

SERVERS = ("cyserve", "uvicorn", "granian")
PRODUCT_PATH = "/products/3"


@dataclass(frozen=True)
class Scenario:
    """One HTTP scenario: which app (``procs.APPS`` key and attribute), which path, which servers,
    and its targets (peer -> minimum cyserve/peer req/s ratio)."""

    name: str
    app: str
    attr: str
    path: str
    servers: tuple[str, ...]
    targets: dict[str, float]

    @property
    def wrk(self) -> harness.Scenario:
        return harness.Scenario(self.name, self.path, 1)


SCENARIOS = {s.name: s for s in (
    Scenario("plaintext", "asgi-raw", "app", "/plaintext", SERVERS, {"uvicorn": 2.0, "granian": 1.2}),
    Scenario("json", "asgi-raw", "app", "/json", SERVERS, {"uvicorn": 2.0, "granian": 1.2}),
    Scenario("fastapi-json", "asgi-fastapi", "app", PRODUCT_PATH, ("cyserve", "uvicorn"),
             {"uvicorn": 1.3}),
    Scenario("fastapi-async-json", "asgi-fastapi-async", "app", PRODUCT_PATH, ("cyserve", "uvicorn"),
             {}),
    Scenario("noop-json", "asgi-raw", "noop", PRODUCT_PATH, ("cyserve", "uvicorn"), {}),
)}
WS_SCENARIO = "ws-echo"
WS_SERVERS = ("cyserve", "uvicorn")


@dataclass(frozen=True)
class Launch:
    """How ``procs.Server`` starts one of these servers (its ``cli`` seam): the server's own
    command line serving ``<script stem>:<attr>`` from the script's directory.  One worker, so
    the process procs.Server starts is the one serving (cyserve and uvicorn serve in it; granian
    always forks its worker, whose CPU the process-tree readings include); no proxy headers, no
    access log, log level warning on all three."""

    server: str
    attr: str
    uvicorn_ws: str = "websockets"
    workers: int = 1  # procs.Server waits for this many worker processes (one: none)
    forwarded: bool = False  # wrk sends no proxy headers

    @property
    def label(self) -> str:
        return ""

    def command(self, _app: str, script: Path, port: int) -> list[str]:
        target, app_dir = f"{script.stem}:{self.attr}", str(script.parent)
        where = ["--host", HOST, "--port", str(port)]
        if self.server == "cyserve":
            return [*procs.console_script("cyserve"), target, "--app-dir", app_dir, *where,
                    "--interface", "asgi3", "--workers", "1", "--loop", "uvloop",
                    "--log-level", "warning", "--no-access-log", "--no-proxy-headers"]
        if self.server == "uvicorn":
            return [*procs.console_script("uvicorn"), target, "--app-dir", app_dir, *where,
                    "--workers", "1", "--loop", "uvloop", "--http", "httptools",
                    "--ws", self.uvicorn_ws, "--log-level", "warning", "--no-access-log",
                    "--no-proxy-headers"]
        if self.server == "granian":
            return [*procs.console_script("granian"), "--interface", "asgi", *where,
                    "--workers", "1", "--runtime-threads", "1", "--loop", "uvloop",
                    "--http", "1", "--log-level", "warning", "--no-access-log",
                    "--working-dir", app_dir, target]
        raise ValueError(f"no command line for {self.server!r}")


@dataclass(frozen=True)
class Served:
    """One server process of the run: ``server`` serving ``app`` (a ``procs.APPS`` key)'s
    ``attr``."""

    server: str
    app: str
    attr: str

    @property
    def name(self) -> str:
        return f"{self.server}-{self.app}:{self.attr}"


RAW_ECHO = {server: Served(server, "asgi-raw", "app") for server in SERVERS}


# ----------------------------------------------------------------- measuring
@dataclass(frozen=True)
class HttpSample:
    """bench/e2e's sample of one wrk run, and what the rest of the machine took meanwhile."""

    sample: harness.Sample
    other_cpu_pct: float


def _own_and_children_cpu_s() -> float:
    """CPU seconds of this driver and of its reaped children (every wrk run: taskset execs it)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_http(server: Server, scenario: Scenario, args: argparse.Namespace, wrk_core: int | None,
                 duration_s: int) -> HttpSample:
    busy_before, ours_before = wsprocs.machine_busy_s(), _own_and_children_cpu_s()
    sample = harness.measure(server, scenario.wrk, args, wrk_core, duration_s)
    busy, ours = wsprocs.machine_busy_s() - busy_before, _own_and_children_cpu_s() - ours_before
    seconds = sample.requests / sample.rps
    server_cpu_s = sample.server_cpu_pct * seconds / 100
    return HttpSample(sample, max(0.0, 100 * (busy - server_cpu_s - ours) / seconds))


def with_retries(what: str, args: argparse.Namespace, run_once: Any) -> Any:
    """``run_once()`` again while others took more than ``--max-other`` of the machine."""
    for attempt in range(args.retries + 1):
        result = run_once()
        other = result.other_cpu_pct
        if other <= args.max_other:
            break
        if attempt < args.retries:
            print(f"  {what}: other processes took {other:.0f}% (> {args.max_other:g}%): run again",
                  flush=True)
    return result


# ----------------------------------------------------------------- checks before measuring
def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    import http.client
    conn = http.client.HTTPConnection(HOST, port, timeout=5.0)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        conn.close()


def check_answers(running: dict[Served, Server], ws_servers: list[str]) -> None:
    """Right answers before any measurement (the module docstring)."""
    import raw_app
    for served, server in running.items():
        if served.attr == "app" and served.app == "asgi-raw":
            verify.check_server(served.name, server.port)
        else:  # FastAPI's route and the no-op app: the same answer, byte for byte
            got = fetch(server.port, PRODUCT_PATH)
            if got != (200, "application/json", raw_app.PRODUCT_3):
                raise BenchError(f"{served.name} GET {PRODUCT_PATH}: {got!r}, expected FastAPI's answer")
        if served.app.startswith("asgi-fastapi") and fetch(server.port, "/products/0")[0] != 404:
            raise BenchError(f"{served.name}: GET /products/0 must be FastAPI's 404")
    for name in ws_servers:
        if not wsprocs.handshake_ok(running[RAW_ECHO[name]].port):
            raise BenchError(f"{RAW_ECHO[name].name}: the WebSocket handshake on / failed")


# ----------------------------------------------------------------- the report
def print_report(http: dict[str, dict[str, list[dict[str, Any]]]], ws: dict[str, dict[str, list[dict[str, Any]]]],
                 found: dict[str, str], max_other: float) -> dict[str, Any]:
    """The tables (bench/e2e's and bench/ws's), the targets, and the FastAPI split; returns the
    verdicts.  ``http``/``ws``: scenario -> server -> rounds as saved in the JSON."""
    verdicts: dict[str, Any] = {}
    if http:
        used: dict[str, dict[str, list[harness.Sample]]] = {}
        for scenario, by_server in http.items():
            used[scenario] = {}
            for name, rounds in by_server.items():
                clean = [r for r in rounds if r["other_cpu_pct"] <= max_other] or rounds
                used[scenario][name] = [_sample(r) for r in clean]
        out = harness.report(used, found)
        print(f"\nother% by round (CPU the rest of the machine took; medians use rounds <= {max_other:g}%"
              " when there are any)")
        for scenario, by_server in http.items():
            for name, rounds in by_server.items():
                print(f"{scenario:<20}{name:<10}" + " ".join(f"{r['other_cpu_pct']:.0f}" for r in rounds))
        print(f"\n{'targets':<20}{'cyserve / peer':<18}{'req/s ratio':>12}{'target':>8}   verdict"
              f"{'CPU-per-response ratio':>26}")
        for scenario, by_server in out.items():
            for peer, target in SCENARIOS[scenario].targets.items():
                if "cyserve" not in by_server or peer not in by_server:
                    continue
                cy, other = by_server["cyserve"]["median"], by_server[peer]["median"]
                ratio = cy["rps"] / other["rps"]
                cpu = cy["cpu_us_per_response"] / other["cpu_us_per_response"]
                verdicts[f"{scenario} cyserve/{peer}"] = {"rps": ratio, "cpu_per_response": cpu,
                                                         "target": target, "meets": ratio >= target}
                print(f"{scenario:<20}{'cyserve / ' + peer:<18}{ratio:>11.2f}x{target:>7.1f}x   "
                      f"{'meets' if ratio >= target else 'MISSES':<7}{cpu:>25.2f}x")
        for route in ("fastapi-json", "fastapi-async-json"):
            if route in out and "noop-json" in out:
                verdicts.update(_server_share(route, out))
    if ws:
        again = {scenario: {name: [ws_echo.Sample(**r) for r in rounds] for name, rounds in by_server.items()}
                 for scenario, by_server in ws.items()}
        ws_out = ws_echo.report(again, found, max_other)
        for scenario, by_server in ws_out.items():
            ratio = by_server.get("ratio_cyserve_over_uvicorn")
            if ratio is not None:
                verdicts[f"{scenario} cyserve/uvicorn"] = ratio
    return verdicts


def _server_share(route: str, out: dict[str, Any]) -> dict[str, Any]:
    """Print and return how much of ``route``'s CPU per response is the server's: the no-op app's
    CPU per response (the same bytes, no framework) against the route's, per server, and the
    ceiling a server costing nothing would reach over uvicorn there."""
    verdicts: dict[str, Any] = {}
    print(f"\n{route}: the server's share of the CPU per response (no-op app's CPU per response / "
          "the route's, same bytes)")
    for name in ("cyserve", "uvicorn"):
        if name in out[route] and name in out["noop-json"]:
            fa = out[route][name]["median"]["cpu_us_per_response"]
            noop = out["noop-json"][name]["median"]["cpu_us_per_response"]
            verdicts[f"{route} server share {name}"] = {"route_us": fa, "noop_us": noop,
                                                        "framework_us": fa - noop, "share": noop / fa}
            print(f"  {name:<9} server {noop:6.1f} us of {fa:6.1f} us ({100 * noop / fa:.0f}%), "
                  f"framework and app {fa - noop:6.1f} us")
    if "uvicorn" in out[route] and "uvicorn" in out["noop-json"]:
        # Amdahl: with the framework's own cost as measured under uvicorn, a server costing
        # nothing would make this route at most this much cheaper than uvicorn does.
        fa = out[route]["uvicorn"]["median"]["cpu_us_per_response"]
        noop = out["noop-json"]["uvicorn"]["median"]["cpu_us_per_response"]
        ceiling = fa / (fa - noop) if fa > noop else float("inf")
        verdicts[f"{route} ceiling over uvicorn"] = {"cpu_ratio": ceiling}
        print(f"  a server costing nothing: at most {ceiling:.2f}x uvicorn's responses per CPU "
              "second on this route")
    return verdicts


def _sample(saved: dict[str, Any]) -> harness.Sample:
    fields = {k: v for k, v in saved.items() if k in harness.Sample.__dataclass_fields__}
    fields["worker_cpu_pct"] = tuple(fields.get("worker_cpu_pct", ()))
    return harness.Sample(**fields)


def versions() -> dict[str, str]:
    found = harness.versions()
    for name in ("granian", "fastapi", "starlette", "pydantic", "websockets"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


# ----------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk per server and scenario first")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (one wrk thread)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds; medians are reported")
    parser.add_argument("--only", default=",".join(SERVERS), help=f"comma list of {', '.join(SERVERS)}")
    parser.add_argument("--scenarios", default=",".join([*SCENARIOS, WS_SCENARIO]),
                        help=f"comma list of {', '.join([*SCENARIOS, WS_SCENARIO])}")
    parser.add_argument("--ws-duration", type=float, default=5.0, help="measured seconds per echo run")
    parser.add_argument("--ws-warmup", type=float, default=1.0, help="seconds per echo run before measuring")
    parser.add_argument("--ws-modes", default=",".join(ws_echo.MODES), help="bench/ws/echo.py's modes")
    parser.add_argument("--ws-sizes", default="256", help="echo message sizes in bytes, comma list")
    parser.add_argument("--uvicorn-ws", default="websockets",
                        choices=("websockets", "websockets-sansio", "wsproto"), help="uvicorn's --ws")
    parser.add_argument("--max-other", type=float, default=10.0, metavar="PCT",
                        help="run again when other processes took more than PCT %% of the machine")
    parser.add_argument("--retries", type=int, default=2, help="times a contaminated run is run again")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--report", metavar="JSON", help="print the report of a run saved with --json, and exit")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(Path(args.report).read_text())
        verdicts = print_report(saved["http"], saved["ws"], saved["versions"], saved["config"]["max_other"])
        return 0 if all(v["meets"] for v in verdicts.values() if "meets" in v) else 1

    servers = [s for s in args.only.split(",") if s]
    names = args.scenarios.split(",")
    if set(servers) - set(SERVERS) or set(names) - {*SCENARIOS, WS_SCENARIO}:
        parser.error(f"servers from {SERVERS}, scenarios from {(*SCENARIOS, WS_SCENARIO)}")
    scenarios = [SCENARIOS[n] for n in names if n in SCENARIOS]
    ws_servers = [s for s in WS_SERVERS if s in servers] if WS_SCENARIO in names else []
    ws_cases = [(mode, int(size)) for mode in args.ws_modes.split(",") for size in args.ws_sizes.split(",")]
    if set(m for m, _ in ws_cases) - set(ws_echo.MODES):
        parser.error(f"--ws-modes from {tuple(ws_echo.MODES)}")
    ws_args = argparse.Namespace(client="raw", warmup=args.ws_warmup, duration=args.ws_duration)

    # One process per (server, app): the HTTP scenarios' apps and the echo's (the raw app).
    wanted = list(dict.fromkeys(
        [Served(server, sc.app, sc.attr) for sc in scenarios for server in sc.servers if server in servers]
        + [RAW_ECHO[server] for server in ws_servers]))
    server_core, other_core = procs.cores()
    http_runs = sum(len([s for s in sc.servers if s in servers]) for sc in scenarios)
    ws_runs = len(ws_servers) * len(ws_cases)
    bound_s = int(1.5 * (1 + args.retries) * (
        http_runs * (args.warmup + args.rounds * (args.duration + 2))
        + ws_runs * args.rounds * (args.ws_warmup + args.ws_duration + 5))) + 60 + 30 * len(wanted)
    print(f"servers {servers}, scenarios {names}, {args.rounds} x {args.duration} s (echo {args.ws_duration:g} s), "
          f"-c{args.connections}; server on CPU {server_core}, load on CPU {other_core}; bound {bound_s} s",
          flush=True)
    procs.arm_time_bound(bound_s, "bench/e2e/asgi")

    http: dict[str, dict[str, list[dict[str, Any]]]] = {
        sc.name: {s: [] for s in sc.servers if s in servers} for sc in scenarios}
    ws: dict[str, dict[str, list[dict[str, Any]]]] = {f"{m}-{size}B": {s: [] for s in ws_servers}
                                                       for m, size in ws_cases} if ws_servers else {}
    commands: dict[str, str] = {}
    with ExitStack() as stack:
        running: dict[Served, Server] = {}
        for served in wanted:
            launch = Launch(served.server, served.attr, uvicorn_ws=args.uvicorn_ws)
            # procs.Server calls cli.command(), reads cli.workers and cli.forwarded: Launch's seam.
            running[served] = stack.enter_context(
                Server(served.name, server_core, app=served.app, cli=cast(Any, launch)))
            commands[served.name] = " ".join(running[served].command)
        check_answers(running, ws_servers)
        for scenario in scenarios:  # warm-up, not counted
            for server in http[scenario.name]:
                harness.measure(running[Served(server, scenario.app, scenario.attr)], scenario.wrk,
                                args, other_core, args.warmup)
        for round_no in range(args.rounds):
            for scenario in scenarios:
                order = list(http[scenario.name])
                order = order if round_no % 2 == 0 else order[::-1]  # drift hits every server
                for name in order:
                    proc = running[Served(name, scenario.app, scenario.attr)]
                    got = with_retries(f"{scenario.name} {name}", args,
                                       lambda: measure_http(proc, scenario, args, other_core, args.duration))
                    http[scenario.name][name].append({**asdict(got.sample), "other_cpu_pct": got.other_cpu_pct})
                    s = got.sample
                    print(f"round {round_no + 1}/{args.rounds} {scenario.name:<13}{name:<9}{s.rps:>10,.0f} req/s  "
                          f"{s.cpu_us_per_response:6.1f} us/resp  srv CPU {s.server_cpu_pct:.0f}%  "
                          f"others {got.other_cpu_pct:.0f}%", flush=True)
            for mode, size in ws_cases if ws_servers else []:
                client_core = server_core if mode == "1conn" else other_core
                order = ws_servers if round_no % 2 == 0 else ws_servers[::-1]
                for name in order:
                    # echo.measure reads the server's port, pid, name and assert_alive(): any
                    # procs.Server has them (bench/ws's WsServer only adds a handshake readiness).
                    proc = cast(Any, running[RAW_ECHO[name]])
                    sample = with_retries(f"{mode}-{size}B {name}", args,
                                          lambda: ws_echo.measure(proc, mode, size, ws_args, client_core))
                    ws[f"{mode}-{size}B"][name].append(asdict(sample))
                    print(f"round {round_no + 1}/{args.rounds} echo {mode}-{size}B {name:<9}"
                          f"{sample.rps:>10,.0f} rt/s  srv {sample.server_cpu_us:.1f} us/rt  "
                          f"others {sample.other_cpu_pct:.0f}%", flush=True)
    signal.alarm(0)

    found = versions()
    verdicts = print_report(http, ws, found, args.max_other)
    if args.json:
        config = {"command": " ".join(sys.argv), "duration_s": args.duration, "warmup_s": args.warmup,
                  "connections": args.connections, "rounds": args.rounds, "wrk_threads": 1,
                  "ws_duration_s": args.ws_duration, "ws_warmup_s": args.ws_warmup, "ws_client": "raw",
                  "max_other": args.max_other, "server_cpu": server_core, "load_cpu": other_core,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commands": commands}
        Path(args.json).write_text(json.dumps({"versions": found, "config": config, "http": http, "ws": ws,
                                               "verdicts": verdicts}, indent=2))
        print(f"\nwrote {args.json}")
    missed = [name for name, v in verdicts.items() if "meets" in v and not v["meets"]]
    if missed:
        print(f"\ntargets missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        sys.exit(f"bench/e2e/asgi FAILED: {exc}")
    except KeyboardInterrupt:
        print("bench/e2e/asgi: interrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
