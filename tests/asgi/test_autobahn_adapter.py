"""The Autobahn gate through the ASGI adapter (issue 12 §2): kosoku's fuzzingclient (Autobahn's own
case files, the runner tests/ws/test_autobahn.py pins) drives a **Starlette** WebSocket echo
endpoint served by ``cyserve.asgi``, on uvloop and on stdlib asyncio.

The same gate as the native one, by the same code (``tests.ws.test_autobahn``: the case
selection, the verdict table ``tests/ws/autobahn_expected.md`` for the server side, the check):
no case FAILED, and every case that is not OK/OK listed there with the verdicts it may get.  The
adapter adds no table of its own: a Starlette app on the WebSocket role must behave as a native
handler does (the same frames, limits, close handshake and compression), so a verdict the native
echo does not get is a failure here too.

The app echoes each ``websocket.receive`` message as it came (``text`` as text, ``bytes`` as
binary) through Starlette's ``WebSocket``; the host gets the native echo's limits (16 MiB
messages and frames, no keepalive pings, every message compressed once permessage-deflate is
negotiated: ``tests.ws.test_autobahn.LIMITS`` says why each).

Selection: what tests/ws runs on asyncio in CI, on both loops here (cases 1-7, 10, the 9.x cases
up to 1 MiB, the unfragmented deflate cases up to 16 KiB and x.y.11): the adapter only carries
messages between the app and the WebSocket role, whose frames, fragmentation and compression the
native gate already runs in full on uvloop (all of 12/13 there took 3.5 of CI's minutes again
here); the full suite on both loops with ``CYSERVE_AUTOBAHN_FULL=1``.  Reports (JSON and HTML) go to the test's ``tmp_path``.

The server process is this module run as a script:
``python -m tests.asgi.test_autobahn_adapter --port 0 --loop uvloop|asyncio`` prints
``listening on PORT`` and drains on SIGTERM.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

import cyserve.asgi
from cyserve.asgi import ASGIHost
from tests.ws.echo_app import script
from tests.ws.test_autobahn import (CI_CASES, FULL, FULL_CASES, LIMITS, REPO, RUN_TIMEOUT_S,
                                    check_gate, kosoku_command, process, read_index,
                                    wait_for_line)

SERVER_AGENT = "cyserve"  # kosoku names the server side after its Server header
# The same selection on both loops (see the module docstring).
CASES = FULL_CASES if FULL else CI_CASES


# ----------------------------------------------------------------- the served app
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await websocket.send_text(text)
        else:
            await websocket.send_bytes(message["bytes"])


app = Starlette(routes=[WebSocketRoute("/", echo)])


# ----------------------------------------------------------------- the gate
def fuzz(loop: str, workdir: Path) -> tuple[dict[str, tuple[str, str]], Path]:
    """One fuzzingclient run against the adapter's echo on ``loop``: (verdicts, report dir)."""
    outdir = workdir / "reports"
    server_log, runner_log = workdir / "asgi_echo.log", workdir / "kosoku.log"
    server_cmd = [sys.executable, "-m", "tests.asgi.test_autobahn_adapter", "--port", "0",
                  "--loop", loop]
    with process(server_cmd, server_log, cwd=REPO) as server:
        port = int(wait_for_line(server, server_log, r"listening on (\d+)").group(1))
        cmd = [*kosoku_command(), "-m", "fuzzingclient", "-p", "2", "-o", str(outdir)]
        for pattern in CASES:
            cmd += ["-i", pattern]
        started = time.monotonic()
        with process([*cmd, f"127.0.0.1:{port}"], runner_log) as runner:
            try:
                runner.wait(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the fuzzingclient run took over {RUN_TIMEOUT_S:.0f} s "
                            f"(reports in {outdir})")
        assert server.poll() is None, (
            f"the adapter's echo server died after {time.monotonic() - started:.0f} s:\n"
            f"{server_log.read_text(errors='replace')[-2000:]}")
    assert (outdir / "index.json").exists(), runner_log.read_text(errors="replace")[-2000:]
    return read_index(outdir, agent=SERVER_AGENT), outdir


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_starlette_echo_through_the_adapter_passes_autobahn(loop: str, tmp_path: Path) -> None:
    observed, outdir = fuzz(loop, tmp_path)
    check_gate("server", observed, outdir, CASES)


def main(argv: list[str] | None = None) -> None:
    script(__doc__.split("\n\n")[0] if __doc__ else None,
           lambda host, port: cyserve.asgi.serve(ASGIHost(app, websocket=LIMITS), host, port), argv)


if __name__ == "__main__":
    main()
