"""``--gc-freeze`` (the default) and ``--no-gc-freeze``, through the command as a user runs it:
once the app has started, every object alive is in the collector's permanent generation, in the
single process and in each worker; objects made while serving are still collected."""
from __future__ import annotations

import json
import pathlib
import time

import pytest

from tests.cli.test_cli_process import (READY_TIMEOUT_S, environment, free_port, get, serving,
                                        stop)

APP = """\
import gc
import json
import os
import weakref

from cyserve import App, Response

app = App()
STARTUP = {}


@app.on_startup
async def build():
    # Long-lived state made at startup, with a cycle in it: frozen, not walked by full collections.
    node = {"name": "catalogue"}
    node["self"] = node
    STARTUP["catalogue"] = node


class Cycle:
    def __init__(self):
        self.me = self


@app.get("/")
async def index(request):
    # Garbage in a cycle, made while serving: the collector still finds it.
    gone = weakref.ref(Cycle())
    gc.collect()
    body = {"pid": os.getpid(), "frozen": gc.get_freeze_count(), "collected": gone() is None}
    return Response(json.dumps(body).encode(), content_type="application/json")
"""


def ask(port: int, deadline: float) -> dict[str, int | bool]:
    status, body = get(port, deadline)
    assert status == 200, body
    answer: dict[str, int | bool] = json.loads(body)
    return answer


@pytest.fixture
def app_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "frozen_app.py").write_text(APP)
    return tmp_path


@pytest.mark.parametrize("flags, frozen", [([], True), (["--no-gc-freeze"], False)],
                         ids=["default", "no-gc-freeze"])
def test_one_process(app_dir: pathlib.Path, flags: list[str], frozen: bool) -> None:
    port = free_port()
    with serving(["frozen_app:app", "--port", str(port), *flags], app_dir,
                 env=environment()) as proc:
        answer = ask(port, time.monotonic() + READY_TIMEOUT_S)
        code, err = stop(proc)
    assert code == 0, err
    if frozen:
        # The interpreter's own objects, the modules and the app: tens of thousands.
        assert answer["frozen"] > 10_000, answer
    else:
        assert answer["frozen"] == 0, answer
    assert answer["collected"] is True, answer


def test_each_worker_freezes_its_own_heap(app_dir: pathlib.Path) -> None:
    port = free_port()
    with serving(["frozen_app:app", "--port", str(port), "--workers", "2"], app_dir,
                 env=environment()) as proc:
        deadline = time.monotonic() + READY_TIMEOUT_S
        seen: dict[int | bool, dict[str, int | bool]] = {}
        # New connections until both workers answered (the second may still be starting).
        while len(seen) < 2 and time.monotonic() < deadline:
            answer = ask(port, deadline)
            seen[answer["pid"]] = answer
            time.sleep(0.02)
        code, err = stop(proc)
    assert code == 0, err
    assert len(seen) == 2, f"only {list(seen)} answered within {READY_TIMEOUT_S} s"
    for pid, answer in seen.items():
        assert answer["frozen"] > 10_000, (pid, answer)
        assert answer["collected"] is True, (pid, answer)
