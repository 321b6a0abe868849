"""The command as a user runs it: the console script and ``python -m cyserve`` in real processes,
on 127.0.0.1, each bounded in time.  Exit statuses: 0 after SIGTERM, 2 for a usage error, 3
with one line naming the cause (never a traceback) when the server cannot start."""
from __future__ import annotations

import contextlib
import http.client
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import pathlib
from typing import Iterator

import click
import pytest

from cyserve import cli

RUN_TIMEOUT_S = 60.0    # one command that must end by itself (importing cyserve on a busy machine)
READY_TIMEOUT_S = 30.0  # from start to a served response
STOP_TIMEOUT_S = 20.0   # from SIGTERM to exit

HELLO = """\
import os
from cyserve import App, Response

app = App()


@app.get("/")
async def index(request):
    return Response(os.environ.get("GREETING", "hello").encode(), content_type="text/plain")


def create():
    return app
"""

@pytest.fixture
def app_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "hello.py").write_text(HELLO)
    (tmp_path / "boom.py").write_text('raise RuntimeError("kaput at import")\n')
    (tmp_path / "asgi.py").write_text("async def app(scope, receive, send):\n    pass\n")
    (tmp_path / "asgi2.py").write_text("class app:\n    def __init__(self, scope):\n"
                                       "        self.scope = scope\n")
    (tmp_path / "wsgi.py").write_text("def app(environ, start_response):\n    return []\n")
    (tmp_path / "hook.py").write_text(
        "from cyserve import App\napp = App()\n\n@app.on_startup\n"
        "async def connect():\n    raise RuntimeError('database unreachable')\n")
    return tmp_path


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without the variables the command reads, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CYSERVE_", "UVICORN_"))
           and k not in ("WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS")}
    env.update(extra)
    return env


def command(*args: str, script: bool = False) -> list[str]:
    if script:
        path = shutil.which("cyserve")
        assert path, ("the cyserve console script is not installed: pip install -e . --no-deps "
                      "--no-build-isolation --config-settings editable_mode=compat")
        return [path, *args]
    return [sys.executable, "-m", "cyserve", *args]


def run(*args: str, cwd: pathlib.Path | None = None, script: bool = False,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args, script=script), cwd=cwd, env=env or environment(),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(port: int, deadline: float) -> tuple[int, bytes]:
    """GET / once the server answers, retrying refused connections until ``deadline``."""
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            return response.status, response.read()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            conn.close()


@contextlib.contextmanager
def serving(args: list[str], cwd: pathlib.Path, script: bool = False,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """The command running for the block; killed if it is still running after it."""
    proc = subprocess.Popen(command(*args, script=script), cwd=cwd, env=env or environment(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=STOP_TIMEOUT_S)


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then the exit status and stderr."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=STOP_TIMEOUT_S)
    return proc.returncode, err


def one_line_failure(result: subprocess.CompletedProcess[str], cause: str) -> None:
    """Status 3, exactly one stderr line naming the cause, no traceback."""
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    naming = [line for line in result.stderr.splitlines() if cause in line]
    assert len(naming) == 1, result.stderr


# ---------------------------------------------------------------------- no server
def test_console_script_prints_the_version() -> None:
    result = run("--version", script=True)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"cyserve \d+\.\d+\.\d+\S* with CPython 3\.\d+\.\d+\S* on Linux\n",
                        result.stdout), result.stdout


def test_python_m_help_mentions_every_option() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    uvicorn = importlib.import_module("uvicorn.main").main
    assert isinstance(uvicorn, click.Command)
    theirs = {s for p in uvicorn.params for s in p.opts if s.startswith("--")}
    ours = {o.flag for o in cli._OPTIONS}
    for flag in theirs | ours:
        assert re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=]|$)", result.stdout, re.M), flag
    assert "CYSERVE_" in result.stdout and "UVICORN_" in result.stdout


def test_usage_error_exits_2_with_argparse_message() -> None:
    result = run("--workers", "many", "hello:app")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: cyserve [OPTIONS] APP\n")
    assert "cyserve: error: argument --workers: invalid int value: 'many'" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_value_exits_2_naming_it() -> None:
    result = run("hello:app", env=environment(CYSERVE_PORT="http"))
    assert result.returncode == 2
    assert "cyserve: error: CYSERVE_PORT: invalid int value: 'http'" in result.stderr


def test_missing_app_exits_2() -> None:
    result = run()
    assert result.returncode == 2 and "missing APP" in result.stderr


def test_missing_env_file_exits_3_naming_it(app_dir: pathlib.Path) -> None:
    result = run("--env-file", "absent.env", "hello:app", cwd=app_dir)
    one_line_failure(result, "absent.env")


# ---------------------------------------------------------------------- startup failures
@pytest.mark.parametrize("args, cause", [
    (["nosuchmodule_for_cli_test:app"], 'could not import module "nosuchmodule_for_cli_test"'),
    (["boom:app"], "kaput at import"),
    (["hello:nothing"], '"nothing"'),
    (["hello:create"], "--factory"),  # a factory served without --factory
    (["asgi2:app"], "looks like an ASGI 2 application"),
    (["wsgi:app"], "looks like a WSGI application"),
    (["--interface", "asgi2", "asgi:app"], "not ASGI 2 ones"),
    (["--interface", "asgi3", "hello:app"], "is a cyserve App"),
    (["--ssl-certfile", "absent-cert.pem", "--ssl-keyfile", "absent-key.pem", "hello:app"],
     "absent-cert.pem"),
    (["hook:app"], "RuntimeError: database unreachable"),
], ids=["missing-module", "module-raises", "missing-attribute", "factory-without-flag",
        "asgi2-callable", "wsgi-callable", "interface-asgi2", "interface-asgi3-for-an-app",
        "missing-certificate", "startup-hook-raises"])
def test_startup_failure_exits_3_with_one_line(args: list[str], cause: str,
                                               app_dir: pathlib.Path) -> None:
    result = run("--app-dir", str(app_dir), "--port", str(free_port()), *args)
    one_line_failure(result, cause)


def test_startup_hook_failing_in_workers_exits_3_without_traceback(app_dir: pathlib.Path) -> None:
    """Each worker that fails says so in one line (no traceback); the supervisor stops with 3
    and respawns nothing."""
    result = run("--app-dir", str(app_dir), "--port", str(free_port()), "--workers", "2", "hook:app")
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    naming = [line for line in result.stderr.splitlines() if "RuntimeError: database unreachable" in line]
    assert 1 <= len(naming) <= 2, result.stderr
    assert result.stderr.count("started worker") == 2, result.stderr


def test_port_already_bound_exits_3(app_dir: pathlib.Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("--app-dir", str(app_dir), "--port", str(port), "hello:app")
    one_line_failure(result, f"127.0.0.1:{port}")


def test_warning_printed_once_even_with_workers(app_dir: pathlib.Path) -> None:
    """The parent prints the warnings before forking: two workers do not print them again."""
    result = run("--http", "h11", "--workers", "2", "--port", str(free_port()),
                 "nosuchmodule_for_cli_test:app", cwd=app_dir)
    assert result.returncode == 3, result.stderr
    line = "cyserve: --http h11 has no effect: cyserve has its own HTTP/1.1 core"
    assert result.stderr.splitlines().count(line) == 1, result.stderr


# ---------------------------------------------------------------------- serving
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_serves_then_exits_0_on_sigterm(loop: str, app_dir: pathlib.Path,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    port = free_port()
    elsewhere = tmp_path_factory.mktemp("cwd")  # --app-dir, not the working directory, finds it
    args = ["hello:app", "--app-dir", str(app_dir), "--port", str(port), "--loop", loop]
    with serving(args, cwd=elsewhere, script=True) as proc:
        assert get(port, time.monotonic() + READY_TIMEOUT_S) == (200, b"hello")
        code, err = stop(proc)
    assert code == 0, err
    assert "Traceback" not in err


def test_factory_is_called(app_dir: pathlib.Path) -> None:
    port = free_port()
    with serving(["--factory", "hello:create", "--port", str(port)], cwd=app_dir) as proc:
        assert get(port, time.monotonic() + READY_TIMEOUT_S) == (200, b"hello")
        code, err = stop(proc)
    assert code == 0, err


def test_env_file_is_loaded_before_options_are_read(app_dir: pathlib.Path) -> None:
    """The file's CYSERVE_PORT sets the port and its GREETING reaches the app."""
    port = free_port()
    (app_dir / "prod.env").write_text(f"CYSERVE_PORT={port}\nGREETING=from the env file\n")
    with serving(["--env-file", "prod.env", "hello:app"], cwd=app_dir) as proc:
        assert get(port, time.monotonic() + READY_TIMEOUT_S) == (200, b"from the env file")
        code, err = stop(proc)
    assert code == 0, err


def test_environment_beats_env_file(app_dir: pathlib.Path) -> None:
    """python-dotenv's override=False, as in uvicorn: a variable already set is kept."""
    port = free_port()
    (app_dir / "prod.env").write_text("GREETING=from the file\n")
    env = environment(CYSERVE_ENV_FILE="prod.env", CYSERVE_APP="hello:app",
                      CYSERVE_PORT=str(port), GREETING="from the environment")
    with serving([], cwd=app_dir, env=env) as proc:
        assert get(port, time.monotonic() + READY_TIMEOUT_S) == (200, b"from the environment")
        code, err = stop(proc)
    assert code == 0, err
