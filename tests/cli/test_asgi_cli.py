"""``cyserve main:app`` for an ASGI 3 app, as a user runs it: a Starlette app in real processes
(one worker and two), ``--interface asgi3``, ``cyserve.asgi.run`` from a script, the options
that only an ASGI app has (``--lifespan``, ``--root-path``) and those applied on its own path
(``--header``, ``--proxy-headers``, ``--health-path``); a failed lifespan startup is exit 3 with
the app's message.  Every process is bounded in time and killed if a test leaves it."""
from __future__ import annotations

import http.client
import os
import pathlib
import sys
import time

import pytest

from tests.cli.test_cli_process import (READY_TIMEOUT_S, environment, free_port, one_line_failure,
                                        run, serving, stop)

STARLETTE_APP = """\
import contextlib
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app):
    if os.environ.get("FAIL_STARTUP"):
        raise RuntimeError("the database is unreachable")
    yield {"worker": os.getpid()}


async def pid(request):
    return PlainTextResponse(str(request.state.worker))


async def where(request):
    return JSONResponse({"root_path": request.scope["root_path"], "path": request.url.path,
                         "url": str(request.url_for("where")),
                         "client": request.client.host, "scheme": request.url.scheme})


app = Starlette(routes=[Route("/pid", pid), Route("/where", where, name="where")],
                lifespan=lifespan)
"""

BARE_APP = """\
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"bare"})
"""

SCRIPT = """\
import sys
import cyserve.asgi
from starlette_app import app

cyserve.asgi.run(app, host="127.0.0.1", port=int(sys.argv[1]), workers=int(sys.argv[2]))
"""


@pytest.fixture
def app_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "starlette_app.py").write_text(STARLETTE_APP)
    (tmp_path / "bare.py").write_text(BARE_APP)
    (tmp_path / "script.py").write_text(SCRIPT)
    return tmp_path


def request(port: int, path: str, deadline: float,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    """One request once the server answers, retrying refused connections until ``deadline``."""
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
            response = conn.getresponse()
            return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
        except (ConnectionRefusedError, ConnectionResetError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            conn.close()


def pids(port: int, count: int) -> set[int]:
    """The worker pids answering /pid (from each worker's lifespan state) until ``count``."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen: set[int] = set()
    while len(seen) < count:
        status, body, _ = request(port, "/pid", deadline)
        assert status == 200, body
        seen.add(int(body))
        assert time.monotonic() < deadline, f"only {seen} answered"
    return seen


@pytest.mark.parametrize("workers", [1, 2])
def test_a_starlette_app_is_served_by_the_command_line(app_dir: pathlib.Path, workers: int) -> None:
    port = free_port()
    args = ["starlette_app:app", "--port", str(port), "--workers", str(workers)]
    with serving(args, cwd=app_dir, script=True) as proc:
        found = pids(port, workers)
        # Each worker ran the app's lifespan: the pid in its state is the worker's own.
        assert proc.pid not in found or workers == 1
        code, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err


def test_interface_asgi3_and_the_asgi_options(app_dir: pathlib.Path) -> None:
    port = free_port()
    args = ["--interface", "asgi3", "starlette_app:app", "--port", str(port),
            "--root-path", "/api", "--header", "X-Edge:cyserve", "--proxy-headers",
            "--forwarded-allow-ips", "127.0.0.1", "--health-path", "/healthz"]
    with serving(args, cwd=app_dir) as proc:
        deadline = time.monotonic() + READY_TIMEOUT_S
        status, body, headers = request(port, "/where", deadline, {
            "X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"})
        assert status == 200, body
        assert headers["x-edge"] == "cyserve"
        assert body == (b'{"root_path":"/api","path":"/api/where","url":"https://127.0.0.1:%d'
                        b'/api/where","client":"198.51.100.4","scheme":"https"}' % port)
        status, body, _ = request(port, "/healthz", deadline)
        assert (status, body) == (200, b"ok\n") or (status, body.strip()) == (200, b"ok")
        code, err = stop(proc)
    assert code == 0, err


def test_lifespan_off_and_an_app_without_lifespan_support(app_dir: pathlib.Path) -> None:
    port = free_port()
    with serving(["bare:app", "--port", str(port)], cwd=app_dir) as proc:
        status, body, _ = request(port, "/", time.monotonic() + READY_TIMEOUT_S)
        assert (status, body) == (200, b"bare")
        code, err = stop(proc)
    assert code == 0, err
    port = free_port()
    env = environment(FAIL_STARTUP="1")
    with serving(["starlette_app:app", "--port", str(port), "--lifespan", "off"], cwd=app_dir,
                 env=env) as proc:
        # Its lifespan would fail: off never runs it (and /where needs no lifespan state).
        status, _, _ = request(port, "/where", time.monotonic() + READY_TIMEOUT_S)
        assert status == 200
        code, err = stop(proc)
    assert code == 0, err


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_failed_lifespan_startup_exits_3_with_the_apps_message(app_dir: pathlib.Path,
                                                                 workers: str) -> None:
    result = run("starlette_app:app", "--port", str(free_port()), "--workers", workers,
                 "--lifespan", "on", cwd=app_dir, env=environment(FAIL_STARTUP="1"))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    naming = [line for line in result.stderr.splitlines() if "the database is unreachable" in line]
    assert 1 <= len(naming) <= int(workers), result.stderr


def test_cyserve_asgi_run_from_a_script(app_dir: pathlib.Path) -> None:
    import subprocess
    port = free_port()
    proc = subprocess.Popen([sys.executable, "script.py", str(port), "2"], cwd=app_dir,
                            env={**environment(), "PYTHONPATH": os.pathsep.join(sys.path)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert len(pids(port, 2)) == 2
        code, err = stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=20)
    assert code == 0, err
