"""The supervisor and the single serving process, as real processes on 127.0.0.1: workers
sharing one socket, crashes, hangs, signals, recycling, startup failures.  Short health-check
timeouts keep the file fast; every wait is bounded."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cyserve import App
from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve.server.workers import EXIT_FORCED, EXIT_STARTUP_FAILURE, worker_count

from tests.server.processes import BASIC, LOOPS, ROOT, Load, Server, launch, process_state


def in_flight(server, path: str) -> tuple[threading.Thread, dict]:
    """GET ``path`` from a thread; the outcome lands in the returned dict."""
    outcome: dict = {}

    def go() -> None:
        try:
            outcome["reply"] = server.get(path, timeout_s=30)
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            outcome["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, outcome


def refused(server) -> bool:
    try:
        server.get("/pid", timeout_s=2)
    except OSError:
        return True
    return False


# ---------------------------------------------------------------------- serving
@pytest.mark.parametrize("loop", LOOPS)
def test_two_workers_serve_one_socket_from_distinct_pids(started, loop):
    server = started({"app": BASIC, "workers": 2, "loop": loop})
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    assert server.answering_pids(2) == workers
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert refused(server)
    assert not server.workers()


def test_app_run_with_workers_forks_the_app_object(tmp_path):
    script = ROOT / "tests" / "server" / "apps" / "run_script.py"
    out = tmp_path / "out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen([sys.executable, str(script), json.dumps({"workers": 2})],
                                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    server = Server(proc, out, out)
    try:
        server.wait_listening()
        assert len(server.answering_pids(2)) == 2
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    finally:
        server.close()


def test_app_run_refuses_reload_and_the_cli_only_options():
    app = App()
    with pytest.raises(ValueError, match="cyserve module:app --reload"):
        app.run(reload=True)
    with pytest.raises(TypeError, match="factory"):
        app.run(factory=True)
    with pytest.raises(TypeError, match="no_such_option"):
        app.run(no_such_option=1)


def test_worker_count_reads_web_concurrency_when_workers_is_not_given():
    assert worker_count(RunConfig(workers=3), {"WEB_CONCURRENCY": "5"}) == 3
    assert worker_count(RunConfig(), {"WEB_CONCURRENCY": "5"}) == 5
    assert worker_count(RunConfig(), {}) == 1
    with pytest.raises(StartupError, match="WEB_CONCURRENCY='many'"):
        worker_count(RunConfig(), {"WEB_CONCURRENCY": "many"})
    with pytest.raises(StartupError, match="at least one"):
        worker_count(RunConfig(), {"WEB_CONCURRENCY": "0"})


# ---------------------------------------------------------------------- faults
def test_a_killed_worker_is_replaced_and_serving_within_a_second_or_so(started):
    server = started({"app": BASIC, "workers": 2})
    before = server.wait_workers(lambda pids: len(pids) == 2)
    server.answering_pids(2)
    victim = min(before)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    survivor = before - {victim}
    new = server.answering_pids(1, among=lambda pid: pid not in before, timeout_s=10)
    elapsed = time.monotonic() - killed_at
    assert elapsed < 2.0, f"replacement served after {elapsed:.2f}s"
    assert server.workers() == survivor | new
    assert "died (signal SIGKILL)" in server.output()


def test_a_stopped_worker_is_killed_and_replaced_after_the_health_check(started):
    server = started({"app": BASIC, "workers": 2, "timeout_worker_healthcheck": 1.0})
    before = server.wait_workers(lambda pids: len(pids) == 2)
    server.answering_pids(2)
    victim = min(before)
    stopped_at = time.monotonic()
    os.kill(victim, signal.SIGSTOP)
    try:
        deadline = stopped_at + 8
        while process_state(victim) not in (None, "Z") and time.monotonic() < deadline:
            time.sleep(0.05)
        gone_after = time.monotonic() - stopped_at
        assert process_state(victim) in (None, "Z"), "the stopped worker was never killed"
    finally:
        if process_state(victim) not in (None, "Z"):
            os.kill(victim, signal.SIGKILL)
    # Not before its silence passed the health check (1 s), and not long after (4 beats late).
    assert 0.9 <= gone_after < 4.0, gone_after
    server.answering_pids(1, among=lambda pid: pid not in before, timeout_s=10)
    assert "health check" in server.output()


def test_a_worker_startup_failure_stops_the_supervisor_with_status_3_without_respawning(started):
    server = started({"app": "tests.server.apps.failing_startup:app", "workers": 2}, wait=False)
    assert server.wait(30) == EXIT_STARTUP_FAILURE
    output = server.output()
    assert "startup failed: ConnectionRefusedError: database down" in output
    assert output.count("started worker") == 2, output  # the two first ones, no respawn


def test_an_app_that_does_not_import_exits_3_with_one_line_per_worker(started):
    server = started({"app": "tests.server.apps.broken_import:app", "workers": 2}, wait=False)
    assert server.wait(30) == EXIT_STARTUP_FAILURE
    err = server.stderr()
    assert "RuntimeError: missing SECRET_KEY" in err
    assert "Traceback" not in err
    assert err.count("started worker") == 2


def test_one_process_import_failure_exits_3_with_one_line(started):
    server = started({"app": "tests.server.apps.no_such_module:app"}, wait=False)
    assert server.wait(30) == EXIT_STARTUP_FAILURE
    err = server.stderr()
    assert 'could not import module "tests.server.apps.no_such_module"' in err
    assert "Traceback" not in err


@pytest.mark.parametrize("workers", [1, 2])
def test_an_address_in_use_exits_3_naming_it_and_the_reason(started, workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = started({"app": BASIC, "workers": workers, "port": port}, wait=False)
        assert server.wait(30) == EXIT_STARTUP_FAILURE
    err = server.stderr()
    assert f"could not bind 127.0.0.1:{port}: [Errno 98] Address already in use" in err
    assert "started worker" not in err


@pytest.mark.parametrize("workers", [1, 2])
def test_a_missing_tls_file_exits_3_naming_it(started, tmp_path, workers):
    missing = str(tmp_path / "missing-cert.pem")
    server = started({"app": BASIC, "workers": workers, "ssl_certfile": missing}, wait=False)
    assert server.wait(30) == EXIT_STARTUP_FAILURE
    assert "missing-cert.pem" in server.stderr()
    assert "Traceback" not in server.stderr()


def test_workers_serve_https_from_the_ssl_options(started, tmp_path):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    server = started({"app": BASIC, "workers": 2, "ssl_certfile": str(cert_path),
                      "ssl_keyfile": str(key_path)})
    assert "listening on https://" in server.output()
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    pids = set()
    deadline = time.monotonic() + 15
    while len(pids) < 2 and time.monotonic() < deadline:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5,
                                           context=client_context)
        try:
            conn.request("GET", "/pid")
            pids.add(int(conn.getresponse().read()))
        finally:
            conn.close()
    assert len(pids) == 2


def _issue(authority, directory: Path, name: str) -> tuple[str, str]:
    cert = authority.issue_cert("127.0.0.1")
    cert_path, key_path = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


def test_sighup_reloads_one_process_certificate_and_keeps_open_connections(started, tmp_path):
    trustme = pytest.importorskip("trustme")
    old_ca, new_ca = trustme.CA(), trustme.CA()
    cert_path, key_path = _issue(old_ca, tmp_path, "live")
    server = started({"app": BASIC, "ssl_certfile": cert_path, "ssl_keyfile": key_path})
    trusts_old, trusts_new = ssl.create_default_context(), ssl.create_default_context()
    old_ca.configure_trust(trusts_old)
    new_ca.configure_trust(trusts_new)
    kept = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5, context=trusts_old)
    with contextlib.closing(kept):
        kept.request("GET", "/pid")
        pid = int(kept.getresponse().read())
        new_cert, new_key = _issue(new_ca, tmp_path, "next")
        os.replace(new_cert, cert_path)
        os.replace(new_key, key_path)
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "TLS certificate reloaded" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        fresh = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=5,
                                            context=trusts_new)
        with contextlib.closing(fresh):
            fresh.request("GET", "/pid")
            assert int(fresh.getresponse().read()) == pid  # the same process, a new chain
        kept.request("GET", "/pid")  # the connection made before the reload still serves
        assert int(kept.getresponse().read()) == pid


def test_workers_drain_and_exit_when_the_supervisor_is_killed(started):
    server = started({"app": BASIC, "workers": 2, "timeout_worker_healthcheck": 1.0})
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    server.answering_pids(2)
    server.proc.kill()
    server.wait(5)
    deadline = time.monotonic() + 10
    while any(process_state(pid) not in (None, "Z") for pid in workers):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.05)


# ---------------------------------------------------------------------- signals
@pytest.mark.parametrize("loop", LOOPS)
def test_sigterm_lets_an_in_flight_request_finish_then_exits_0(started, loop):
    server = started({"app": BASIC, "workers": 2, "loop": loop})
    server.answering_pids(2)
    thread, outcome = in_flight(server, "/slow?s=1.5")
    time.sleep(0.5)
    server.signal(signal.SIGTERM)
    thread.join(20)
    assert outcome.get("reply", (None, b""))[0] == 200, outcome
    assert outcome["reply"][1].startswith(b"done")
    assert server.wait() == 0
    assert not server.workers()


@pytest.mark.parametrize("loop", LOOPS)
def test_sigterm_ends_sse_streams_and_closes_websockets_with_1001_promptly(started, loop):
    websockets_sync = pytest.importorskip("websockets.sync.client")
    from websockets.exceptions import ConnectionClosed
    server = started({"app": BASIC, "workers": 2, "loop": loop, "timeout_graceful_shutdown": 20})
    server.answering_pids(2)
    stream = server.connection(timeout_s=10)
    with contextlib.closing(stream), \
            websockets_sync.connect(f"ws://127.0.0.1:{server.port}/echo", open_timeout=5) as ws:
        stream.request("GET", "/events")
        events = stream.getresponse()
        assert events.status == 200
        assert events.readline().startswith(b"data: tick 0")
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        events.read()  # to the end of the chunked body: http.client raises if it is cut short
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert server.wait() == 0
    # Nothing waited out the 20 s grace period: the streams ended as the drain began.
    assert time.monotonic() - sent < 8


@pytest.mark.parametrize("loop", LOOPS)
def test_one_process_drains_on_sigterm(started, loop):
    server = started({"app": BASIC, "loop": loop})
    pid = server.pid_of_answer()
    assert pid == server.proc.pid  # no supervisor: this process serves
    thread, outcome = in_flight(server, "/slow?s=1")
    time.sleep(0.4)
    server.signal(signal.SIGTERM)
    thread.join(20)
    assert outcome.get("reply", (None,))[0] == 200, outcome
    assert server.wait() == 0


@pytest.mark.parametrize("loop", LOOPS)
def test_a_second_sigint_stops_one_process_at_once(started, loop):
    server = started({"app": BASIC, "loop": loop, "timeout_graceful_shutdown": 30})
    server.pid_of_answer()
    thread, outcome = in_flight(server, "/slow?s=30")
    time.sleep(0.4)
    server.signal(signal.SIGINT)
    time.sleep(0.3)
    assert server.proc.poll() is None  # draining: the slow request holds it
    sent = time.monotonic()
    server.signal(signal.SIGINT)
    assert server.wait(5) == EXIT_FORCED
    assert time.monotonic() - sent < 3
    thread.join(10)
    assert "error" in outcome  # its connection was dropped
    assert "Traceback" not in server.output()


def test_two_sigints_end_a_startup_hook_that_hangs(started):
    server = started({"app": "tests.server.apps.hanging_startup:app"}, wait=False)
    deadline = time.monotonic() + 20
    while "startup hook waiting" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    server.signal(signal.SIGINT)
    time.sleep(0.3)
    server.signal(signal.SIGINT)
    assert server.wait(5) == EXIT_FORCED
    assert "Traceback" not in server.output()


def test_a_second_sigint_kills_the_workers_at_once(started):
    server = started({"app": BASIC, "workers": 2, "timeout_graceful_shutdown": 30})
    workers = server.wait_workers(lambda pids: len(pids) == 2)
    server.answering_pids(2)
    in_flight(server, "/slow?s=30")
    time.sleep(0.4)
    server.signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    server.signal(signal.SIGINT)
    assert server.wait(5) == EXIT_FORCED
    assert time.monotonic() - sent < 3
    assert all(process_state(pid) in (None, "Z") for pid in workers)
    assert "Traceback" not in server.output()


def test_sighup_restarts_every_worker_with_zero_failed_requests(started):
    server = started({"app": BASIC, "workers": 2})
    before = server.wait_workers(lambda pids: len(pids) == 2)
    server.answering_pids(2)
    with Load(server) as load:
        time.sleep(0.5)
        server.signal(signal.SIGHUP)
        after = server.wait_workers(lambda pids: len(pids) == 2 and not pids & before,
                                    timeout_s=20)
        served_before = len(load.pids)
        time.sleep(0.5)
    assert load.failures == [], load.failures
    assert load.ok > 20
    assert set(load.pids[served_before:]) <= after  # only the new workers answer now
    assert set(load.pids) & before and set(load.pids) & after
    assert server.output().count("ready; draining") == 2


def test_sigttin_adds_a_worker_and_sigttou_removes_one_never_below_one(started):
    server = started({"app": BASIC, "workers": 2})
    server.wait_workers(lambda pids: len(pids) == 2)
    server.signal(signal.SIGTTIN)
    three = server.wait_workers(lambda pids: len(pids) == 3)
    assert len(server.answering_pids(3)) == 3
    for count in (2, 1):
        server.signal(signal.SIGTTOU)
        server.wait_workers(lambda pids, count=count: len(pids) == count)
    server.signal(signal.SIGTTOU)  # the last worker stays
    time.sleep(0.6)
    last = server.workers()
    assert len(last) == 1 and last <= three
    assert server.pid_of_answer() in last


def test_limit_max_requests_recycles_workers_with_zero_failed_requests(started):
    server = started({"app": BASIC, "workers": 1, "limit_max_requests": 25,
                      "timeout_worker_healthcheck": 1.0})
    first = server.wait_workers(lambda pids: len(pids) == 1)
    with Load(server) as load:
        deadline = time.monotonic() + 20
        while len(set(load.pids)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert load.failures == [], load.failures
    assert len(set(load.pids)) >= 3, (set(load.pids), server.output())
    assert first <= set(load.pids)
    assert "recycling worker" in server.output()
    assert "served" in server.output() and "limit 25" in server.output()


def test_workers_lifetime_recycles_by_replacing_first(started):
    server = started({"app": BASIC, "workers": 1, "workers_lifetime": 1.0,
                      "timeout_worker_healthcheck": 1.0})
    first = server.wait_workers(lambda pids: len(pids) == 1)
    with Load(server) as load:
        deadline = time.monotonic() + 15
        while not (set(load.pids) - first) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    assert load.failures == [], load.failures
    assert set(load.pids) - first
    assert "lived" in server.output()


def test_workers_max_rss_recycles_a_worker_above_it(started):
    # 1 MiB: every Python process is above it, so the first sample asks for a replacement.
    server = started({"app": BASIC, "workers": 1, "workers_max_rss": 1,
                      "timeout_worker_healthcheck": 1.0})
    first = server.wait_workers(lambda pids: len(pids) == 1)
    server.answering_pids(1, among=lambda pid: pid not in first, timeout_s=15)
    assert "MiB above 1 MiB" in server.output()


def test_sighup_to_one_process_keeps_it_serving_and_says_how_to_restart(started):
    server = started({"app": BASIC})
    pid = server.pid_of_answer()
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "SIGHUP" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)
    assert "--workers" in server.output()
    assert server.pid_of_answer() == pid


def test_the_restart_counter_counts_each_replacement_by_reason(started):
    parser = pytest.importorskip("prometheus_client.parser")
    server = started({"app": BASIC, "workers": 2, "metrics": "/metrics"})
    before = server.wait_workers(lambda pids: len(pids) == 2)
    server.answering_pids(2)
    os.kill(min(before), signal.SIGKILL)
    rolled = server.wait_workers(lambda pids: len(pids) == 2 and pids != before)
    server.signal(signal.SIGHUP)
    server.wait_workers(lambda pids: len(pids) == 2 and not pids & rolled)

    def restarts() -> dict[str, float]:
        status, body = server.get("/metrics")
        assert status == 200
        return {sample.labels["reason"]: sample.value
                for family in parser.text_string_to_metric_families(body.decode())
                if family.name == "cyserve_worker_restarts"
                for sample in family.samples if sample.name.endswith("_total")}

    deadline = time.monotonic() + 10
    while restarts().get("hup") != 2.0:
        assert time.monotonic() < deadline, restarts()
        time.sleep(0.1)
    counted = restarts()
    assert counted["died"] == 1.0 and counted["hup"] == 2.0
    assert counted["unhealthy"] == counted["max_requests"] == counted["reload"] == 0.0
