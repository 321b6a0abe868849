"""--reload: which changes count (ChangeFilter), and a real server that picks up an edited
module, keeps serving through a syntax error, and restarts once it is fixed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve.server.reload import ChangeFilter, watched_dirs

from tests.server.processes import ROOT
from tests.server.processes import launch, process_state

pytest.importorskip("watchfiles", reason="--reload needs the reload extra (in the test extra)")

PROJECT = Path("/srv/app")  # the filter only compares paths: it need not exist


# ---------------------------------------------------------------------- the filter
@pytest.mark.parametrize(("path", "expected"), [
    ("main.py", True),
    ("pkg/sub/models.py", True),
    ("main.pyc", False),
    ("pkg/__pycache__/main.cpython-311.pyc", False),
    ("pkg/__pycache__/notes.py", False),
    ("main.py~", False),
    (".main.py.swp", False),
    (".hidden.py", False),
    (".venv/lib/site.py", False),
    ("static/app.js", False),
    ("README.md", False),
], ids=lambda value: str(value))
def test_python_sources_count_and_by_products_do_not(path, expected):
    assert ChangeFilter([PROJECT]).matches(str(PROJECT / path)) is expected


def test_includes_add_patterns_and_may_name_a_hidden_file():
    accept = ChangeFilter([PROJECT], includes=["*.html", ".env"])
    assert accept.matches(str(PROJECT / "templates/index.html"))
    assert accept.matches(str(PROJECT / ".env"))
    assert accept.matches(str(PROJECT / "main.py"))
    assert not accept.matches(str(PROJECT / ".secret.html"))  # hidden and not named
    assert not accept.matches(str(PROJECT / "app.js"))


def test_excludes_beat_includes_by_name_path_or_directory():
    accept = ChangeFilter([PROJECT], includes=["*.html"],
                          excludes=["test_*.py", "migrations", "build/*"])
    assert not accept.matches(str(PROJECT / "tests/test_api.py"))
    assert not accept.matches(str(PROJECT / "db/migrations/0001.py"))
    assert not accept.matches(str(PROJECT / "build/page.html"))
    assert accept.matches(str(PROJECT / "tests/conftest.py"))
    assert accept.matches(str(PROJECT / "db/models.py"))


def test_the_filter_takes_watchfiles_arguments():
    import watchfiles
    accept = ChangeFilter([PROJECT])
    assert accept(watchfiles.Change.modified, str(PROJECT / "main.py"))
    assert not accept(watchfiles.Change.added, str(PROJECT / "main.pyc"))


def test_a_missing_reload_dir_is_a_startup_error(tmp_path):
    missing = str(tmp_path / "missing")
    with pytest.raises(StartupError, match="--reload-dir .*missing: not a directory"):
        watched_dirs(RunConfig(reload_dirs=(missing,)))
    server = launch(tmp_path, {"app": "x:app", "reload": True, "reload_dirs": [missing]},
                    wait=False)
    assert server.wait(20) == 3
    assert "missing: not a directory" in server.stderr()


def test_reload_without_watchfiles_exits_3_naming_the_extra(tmp_path):
    # A None entry in sys.modules is how Python marks a module as unavailable: find_spec then
    # answers as it does when watchfiles is not installed.
    code = ("import sys; sys.modules['watchfiles'] = None\n"
            "from cyserve.config import RunConfig\n"
            "from cyserve.server.workers import launch\n"
            "sys.exit(launch(RunConfig(app='x:app', reload=True)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 3, done.stderr
    assert "pip install 'cyserve[reload]'" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------------- a reloading server
_APP = '''
import os
from cyserve import App, Response

app = App()
VERSION = {version!r}


@app.get("/version")
async def version(request):
    return Response(VERSION.encode(), headers={{"x-pid": str(os.getpid())}})
'''


def write_app(directory: Path, version: str) -> None:
    # Write then rename: the server never imports a half-written file.
    source = directory / "reloading_app.py"
    partial = directory / ".reloading_app.py.partial"
    partial.write_text(_APP.format(version=version))
    os.replace(partial, source)


def version_of(server) -> tuple[str, str]:
    conn = server.connection()
    try:
        conn.request("GET", "/version", headers={"Connection": "close"})
        response = conn.getresponse()
        return response.read().decode(), response.getheader("x-pid", "")
    finally:
        conn.close()


def wait_version(server, expected: str, timeout_s: float = 10.0) -> float:
    """Seconds until /version answers ``expected``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        try:
            if version_of(server)[0] == expected:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"never served {expected!r} within {timeout_s}s:\n{server.output()}")


def wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    """Until process ``pid`` has exited (the old worker answers until its replacement is
    ready and it has drained: the overlap is the point)."""
    deadline = time.monotonic() + timeout_s
    while process_state(pid) not in (None, "Z"):
        assert time.monotonic() < deadline, f"worker {pid} still running"
        time.sleep(0.05)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    write_app(directory, "one")
    return directory


@pytest.fixture
def reloading(tmp_path: Path, app_dir: Path):
    server = launch(tmp_path, {"app": "reloading_app:app", "app_dir": str(app_dir),
                               "reload": True, "reload_dirs": [str(app_dir)],
                               "reload_delay": 0.1})
    try:
        wait_version(server, "one")  # the first worker starts once the watcher watches
        yield server
    finally:
        server.close()


def test_an_edited_module_is_served_within_about_a_second(reloading, app_dir):
    old_pid = version_of(reloading)[1]
    write_app(app_dir, "two")
    took = wait_version(reloading, "two")
    assert took < 2.5, f"reloaded after {took:.2f}s"
    wait_gone(int(old_pid))  # drained once its replacement was ready
    assert version_of(reloading)[0] == "two"
    assert "reloading_app.py: reloading" in reloading.output()


def test_a_syntax_error_keeps_the_old_worker_serving_and_a_fix_restarts(reloading, app_dir):
    serving_pid = version_of(reloading)[1]
    (app_dir / "reloading_app.py").write_text("def broken(:\n")
    deadline = time.monotonic() + 10
    while "did not start" not in reloading.output():
        assert time.monotonic() < deadline, reloading.output()
        time.sleep(0.05)
    assert "SyntaxError" in reloading.output()
    assert version_of(reloading) == ("one", serving_pid)  # the old code, the old worker
    write_app(app_dir, "three")
    wait_version(reloading, "three")
    wait_gone(int(serving_pid))
    assert version_of(reloading)[0] == "three"


def test_changes_to_ignored_files_do_not_restart(reloading, app_dir):
    pid = version_of(reloading)[1]
    (app_dir / "notes.txt").write_text("x")
    (app_dir / "reloading_app.pyc").write_bytes(b"x")
    (app_dir / ".hidden.py").write_text("x = 1\n")
    (app_dir / "reloading_app.py~").write_text("x")
    time.sleep(1.0)  # ten times the reload delay
    assert version_of(reloading) == ("one", pid)
    assert "reloading" not in reloading.output().replace("reloading_app", "")


def test_a_module_that_fails_at_start_waits_for_a_fix_then_serves(tmp_path, app_dir):
    (app_dir / "reloading_app.py").write_text("raise RuntimeError('not yet')\n")
    server = launch(tmp_path, {"app": "reloading_app:app", "app_dir": str(app_dir),
                               "reload": True, "reload_dirs": [str(app_dir)],
                               "reload_delay": 0.1})
    try:
        deadline = time.monotonic() + 10
        while "waiting for a change" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        assert server.proc.poll() is None  # no exit 3, no respawn loop: it waits
        assert server.output().count("started worker") == 1
        write_app(app_dir, "fixed")
        wait_version(server, "fixed")
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    finally:
        server.close()
