"""cyserve.metrics: the core's observer and the scrape, read back with prometheus-client's own
parser; in one process on each loop, and across three forked workers (a supervisor script of
the tests' own) whose scrapes each show the sum over all of them."""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import pathlib
import select
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cyserve import App, Response
from cyserve._core.http.parser import parse_request_head
from cyserve.errors import StartupError
from cyserve.metrics import DEFAULT_BUCKETS, METHODS, Metrics, setup_multiprocess, worker_exited
from tests.support import RawClient, exchange, fetch, serving

ROOT = pathlib.Path(__file__).resolve().parents[2]
SUPERVISOR = pathlib.Path(__file__).resolve().parent / "metrics_workers.py"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and sorted labels."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def cells(samples: Samples) -> dict[tuple[str, str], float]:
    """cyserve_requests_total as {(status_class, method): count}."""
    found = {}
    for (name, labels), count in samples.items():
        if name == "cyserve_requests_total":
            found[(dict(labels)["status_class"], dict(labels)["method"])] = count
    return found


def make_app(metrics: Metrics) -> App:
    app = App()

    @app.get("/ok")
    async def ok(request: Any) -> Response:
        return Response(b"hello")

    @app.get("/slow")
    async def slow(request: Any) -> Response:
        await asyncio.sleep(0.08)
        return Response(b"late")

    @app.get("/fail")
    async def fail(request: Any) -> Response:
        return Response(b"unavailable", 503)

    app.use(metrics)
    return app


async def wait_for_connections(server: Any, count: int, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while len(server.state.connections) != count:
        assert time.monotonic() < deadline, f"{len(server.state.connections)} connections open"
        await asyncio.sleep(0.01)


def test_scrape_counts_responses_by_status_class_method_bytes_and_latency(run: Any) -> None:
    metrics = Metrics(default_registry=False)
    app = make_app(metrics)

    async def body() -> None:
        async with serving(app) as server:
            server.state.observer = metrics
            metrics.bind(server)
            content = 0
            for method, target, status in ([("GET", "/ok", 200)] * 3 + [("GET", "/slow", 200)]
                                           + [("GET", "/missing", 404)] * 2
                                           + [("POST", "/ok", 405), ("get", "/ok", None),
                                              ("GET", "/fail", 503)]):
                reply = await fetch(server.port, method, target)
                if status is not None:
                    assert reply.status == status
                assert reply.status >= 400 or status == 200
                content += len(reply.body)
            # No head to count it under: a request line the core refuses (RFC 9112 §3).
            raw = await exchange(server.port, b"\x01 nonsense\r\n\r\n")
            assert raw.startswith(b"HTTP/1.1 400 ")
            content += len(raw.partition(b"\r\n\r\n")[2])
            held = [await RawClient.open(server.port) for _ in range(2)]
            for client in held:
                assert (await client.request("GET", "/ok")).status == 200
                content += len(b"hello")
            await wait_for_connections(server, 2)

            reply = await fetch(server.port, "GET", "/metrics")
            assert reply.status == 200
            assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert reply.headers["cache-control"] == "no-store"
            samples = parse(reply.body.decode())
            assert cells(samples) == {("2xx", "GET"): 6, ("4xx", "GET"): 2, ("4xx", "POST"): 1,
                                      ("4xx", "OTHER"): 2, ("5xx", "GET"): 1}
            assert value(samples, "cyserve_response_bytes_total") == content
            total = 12
            assert value(samples, "cyserve_request_duration_seconds_count") == total
            assert value(samples, "cyserve_request_duration_seconds_bucket", le="+Inf") == total
            # The slow response (80 ms asleep) is above the 50 ms bound, the others below.
            below = value(samples, "cyserve_request_duration_seconds_bucket", le="0.05")
            assert below is not None and below <= total - 1
            latency_sum = value(samples, "cyserve_request_duration_seconds_sum")
            assert latency_sum is not None and latency_sum >= 0.05
            # Both held connections and the scraping one.
            assert value(samples, "cyserve_open_connections") == 3
            assert not any(name.startswith(("python_", "process_")) for name, _ in samples)

            for client in held:
                await client.close()
            await wait_for_connections(server, 0)
            again = parse((await fetch(server.port, "GET", "/metrics")).body.decode())
            assert value(again, "cyserve_open_connections") == 1
            # The first scrape is a response too.
            assert cells(again)[("2xx", "GET")] == 7
        metrics.unbind()
    run(body)


def test_scrape_formats_methods_and_path(run: Any) -> None:
    metrics = Metrics("/internal/metrics")
    app = make_app(metrics)

    async def body() -> None:
        async with serving(app) as server:
            server.state.observer = metrics
            metrics.bind(server)
            assert (await fetch(server.port, "GET", "/metrics")).status == 404
            # Other methods at the path go on to the app, which has no such route.
            assert (await fetch(server.port, "POST", "/internal/metrics")).status == 404
            reply = await fetch(server.port, "GET", "/internal/metrics", headers=[
                ("Accept", "application/openmetrics-text; version=1.0.0; charset=utf-8")])
            assert reply.status == 200
            assert reply.headers["content-type"].startswith("application/openmetrics-text")
            assert reply.body.endswith(b"# EOF\n")
            # The default registry comes along in one process (its platform collector).
            assert b"python_info" in reply.body
            head = await fetch(server.port, "HEAD", "/internal/metrics")
            assert head.status == 200 and head.body == b""
            assert head.headers["content-type"].startswith("text/plain; version=0.0.4")
        metrics.unbind()
    run(body)


def request_head(method: str) -> Any:
    target = "x:443" if method == "CONNECT" else "/"     # authority-form only (RFC 9112 §3.2.3)
    return parse_request_head(f"{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())


def test_histogram_and_cells_agree_with_prometheus_client_observing_each_response() -> None:
    """The local sums flushed at scrape time equal what prometheus-client's own Histogram gives
    for the same durations, bounds included (Prometheus buckets are "less or equal")."""
    metrics = Metrics(default_registry=False)
    reference = CollectorRegistry()
    histogram = Histogram("cyserve_request_duration_seconds", "reference",
                          buckets=DEFAULT_BUCKETS, registry=reference)
    durations = [0.0, 0.0004, *DEFAULT_BUCKETS, 0.0051, 0.3, 9.99, 10.0, 11.0, 3600.0]
    heads = [request_head(m) for m in (*METHODS, "PURGE", "get")] + [None]
    statuses = [101, 200, 204, 299, 301, 404, 451, 500, 599]
    expected: dict[tuple[str, str], int] = {}
    for i, duration in enumerate(durations):
        head = heads[i % len(heads)]
        status = statuses[i % len(statuses)]
        metrics.response_done(None, head, status, i, duration)
        histogram.observe(duration)
        method = head.method if head is not None and head.method in METHODS else "OTHER"
        key = (f"{status // 100}xx", method)
        expected[key] = expected.get(key, 0) + 1
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    ours = parse(body.decode())
    theirs = parse(generate_latest(reference).decode())
    for (name, labels), count in theirs.items():
        if name.startswith("cyserve_request_duration_seconds_") and not name.endswith("_created"):
            assert ours[(name, labels)] == pytest.approx(count), (name, labels)
    assert cells(ours) == expected
    assert value(ours, "cyserve_response_bytes_total") == sum(range(len(durations)))
    # Flushed figures are not counted twice.
    assert parse(metrics.render()[0].decode()) == ours


def test_missing_prometheus_client_is_a_startup_error_naming_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("prometheus_client", "prometheus_client.multiprocess", "prometheus_client.values"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(StartupError, match=r"pip install 'cyserve\[metrics\]'"):
        Metrics()
    with pytest.raises(StartupError, match=r"pip install 'cyserve\[metrics\]'"):
        setup_multiprocess(None)


@pytest.mark.parametrize("kwargs", [{"path": "metrics"}, {"buckets": ()}, {"buckets": (1.0, 0.5)},
                                    {"buckets": (0.5, 0.5)}, {"flush_interval_s": 0}],
                         ids=["relative-path", "no-buckets", "descending", "repeated", "zero-interval"])
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Metrics(**kwargs)


def test_worker_exited_needs_setup_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(RuntimeError, match="setup_multiprocess"):
        worker_exited(12345, "died")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_setup_multiprocess_clears_stale_files_of_a_given_directory(tmp_path: pathlib.Path) -> None:
    """In a process of its own: multiprocess mode changes prometheus-client's globals."""
    directory = tmp_path / "mp"
    directory.mkdir()
    (directory / "counter_999.db").write_bytes(b"\0" * 16)
    (directory / "notes.txt").write_text("kept")
    code = ("import json, os, sys\n"
            "from cyserve.metrics import setup_multiprocess, teardown_multiprocess\n"
            "given = setup_multiprocess(sys.argv[1])\n"
            "listing = sorted(os.listdir(given))\n"
            "env = os.environ['PROMETHEUS_MULTIPROC_DIR']\n"
            "teardown_multiprocess()\n"
            "print(json.dumps([given, env, listing, os.path.isdir(given), os.getpid()]))\n")
    done = subprocess.run([sys.executable, "-c", code, str(directory)], capture_output=True,
                          text=True, timeout=30, env=clean_env(), cwd=ROOT)
    assert done.returncode == 0, done.stderr
    given, env, listing, kept, pid = json.loads(done.stdout)
    assert given == env == str(directory)
    # The restart counter's zeros are written at once, in the caller's own file.
    assert listing == [f"counter_{pid}.db", "notes.txt"]
    assert kept


class Supervisor:
    """tests/server/metrics_workers.py in a session of its own, read line by line."""

    def __init__(self, loop_name: str) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SUPERVISOR), loop_name],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=clean_env(), cwd=ROOT, start_new_session=True)
        self._buffer = b""

    def line(self, timeout_s: float = 15.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line from the supervisor; so far {self._buffer!r}"
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"supervisor ended: {self.stop()}"
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        found: dict[str, Any] = json.loads(line)
        assert "error" not in found, found
        return found

    def stop(self) -> str:
        """End the session it runs (its workers too) if it is still there; its stderr."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        errors = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        return errors


def call(port: int, method: str, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def scrape(port: int) -> Samples:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        return parse(response.read().decode())
    finally:
        conn.close()


def scrape_until(port: int, check: Callable[[Samples], bool], timeout_s: float = 5.0) -> Samples:
    deadline = time.monotonic() + timeout_s
    while True:
        samples = scrape(port)
        if check(samples):
            return samples
        assert time.monotonic() < deadline, f"never true; last scrape {samples}"
        time.sleep(0.05)


def counted(samples: Samples) -> dict[tuple[str, str], float]:
    """The cells the test's requests fill (the scrapes themselves are 2xx GET)."""
    return {key: n for key, n in cells(samples).items() if key != ("2xx", "GET")}


@pytest.mark.parametrize("loop_name", ["uvloop", "asyncio"])
def test_every_workers_scrape_shows_the_sum_over_workers(loop_name: str) -> None:
    supervisor = Supervisor(loop_name)
    directory: pathlib.Path | None = None
    try:
        directory = pathlib.Path(supervisor.line()["directory"])
        ports: dict[str, int] = {}
        pids: dict[str, int] = {}
        for _ in range(3):
            ready = supervisor.line()
            ports[ready["worker"]] = ready["port"]
            pids[ready["worker"]] = ready["pid"]
        for method, path, status, times in [("POST", "/ok", 200, 3), ("GET", "/missing", 404, 1)]:
            for _ in range(times):
                assert call(ports["A"], method, path) == status
        for method, path, status, times in [("POST", "/ok", 200, 2), ("GET", "/missing", 404, 2),
                                            ("GET", "/fail", 503, 1)]:
            for _ in range(times):
                assert call(ports["C"], method, path) == status
        expected = {("2xx", "POST"): 5, ("4xx", "GET"): 3, ("5xx", "GET"): 1}
        # C's figures reach the files on its 0.2 s flush; A flushes its own as it answers.
        samples = scrape_until(ports["A"], lambda s: counted(s) == expected)
        # What the parent observed before forking stays the parent's (2xx with no method).
        assert ("2xx", "OTHER") not in cells(samples)
        assert value(samples, "cyserve_request_duration_seconds_count") == sum(cells(samples).values())
        # Each worker writes files of its own pid; B has not flushed yet.
        names = set(os.listdir(directory))
        assert {f"counter_{pids['A']}.db", f"counter_{pids['C']}.db",
                f"gauge_livesum_{pids['C']}.db"} <= names
        assert f"counter_{pids['B']}.db" not in names
        assert value(samples, "cyserve_worker_restarts_total", reason="died") == 0

        held = http.client.HTTPConnection("127.0.0.1", ports["C"], timeout=5)
        held.request("GET", "/missing")
        held.getresponse().read()
        expected[("4xx", "GET")] = 4
        # The scraping connection on A and the one held on C.
        scrape_until(ports["A"], lambda s: counted(s) == expected
                     and value(s, "cyserve_open_connections") == 2)

        os.kill(pids["C"], signal.SIGKILL)
        assert supervisor.line() == {"exited": "C", "pid": pids["C"], "reason": "died",
                                     "code": -signal.SIGKILL}
        samples = scrape(ports["A"])
        assert counted(samples) == expected            # a dead worker's requests still count
        assert value(samples, "cyserve_open_connections") == 1   # its connections do not
        assert value(samples, "cyserve_worker_restarts_total", reason="died") == 1
        assert value(samples, "cyserve_worker_restarts_total", reason="hup") == 0
        names = set(os.listdir(directory))
        assert f"counter_{pids['C']}.db" not in names and f"gauge_livesum_{pids['C']}.db" not in names
        assert {"counter_archive.db", "histogram_archive.db"} <= names
        held.close()

        # B flushes only when it stops: its last figures are written by unbind at shutdown.
        for method, path, status, times in [("POST", "/ok", 200, 2), ("GET", "/missing", 404, 1)]:
            for _ in range(times):
                assert call(ports["B"], method, path) == status
        assert counted(scrape(ports["A"])) == expected
        os.kill(pids["B"], signal.SIGTERM)
        assert supervisor.line() == {"exited": "B", "pid": pids["B"], "reason": None, "code": 0}
        samples = scrape(ports["A"])
        assert counted(samples) == {("2xx", "POST"): 7, ("4xx", "GET"): 5, ("5xx", "GET"): 1}
        restarts = sum(n for (name, _), n in samples.items()
                       if name == "cyserve_worker_restarts_total")
        assert restarts == 1                         # a worker that stopped cleanly is no restart

        supervisor.proc.send_signal(signal.SIGTERM)
        assert supervisor.line() == {"exited": "A", "pid": pids["A"], "reason": None, "code": 0}
        assert supervisor.line() == {"done": True, "stopping": True}
        assert supervisor.proc.wait(timeout=10) == 0
        assert not directory.exists()                # the private directory is removed
    finally:
        errors = supervisor.stop()
        if directory is not None:    # left behind when the supervisor had to be killed
            shutil.rmtree(directory, ignore_errors=True)
    assert "Traceback" not in errors, errors
