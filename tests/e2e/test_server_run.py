"""``run()`` and ``serve()`` as a newcomer meets them: a bad port is refused with a clear message,
and the "listening" line is written once, to the log when logging shows it, else to stdout."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cyserve import App, serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("port", [80000, -1, 65536, "8000", True])
def test_serve_refuses_a_port_outside_0_to_65535(run, port):
    async def main():
        with pytest.raises(ValueError, match="0..65535"):
            await serve(App(), "127.0.0.1", port)
    run(main)


def run_app(setup: str) -> str:
    """Start ``app.run()`` in a subprocess with ``setup`` first, stop it with SIGINT once it
    listens; return everything it wrote (stdout and stderr)."""
    code = textwrap.dedent(f"""
        import logging, sys
        {setup}
        from cyserve import App
        App().run("127.0.0.1", 0)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + 15
        seen = ""
        assert proc.stdout is not None
        while "listening on" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=15)
        return seen + rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("setup", [
    "",                                                            # no logging set up: stdout
    "logging.basicConfig(level=logging.INFO)",                    # logging shows INFO: the log
    "logging.basicConfig(level=logging.WARNING)",                 # logging hides INFO: stdout
], ids=["no-logging", "logging-info", "logging-warning"])
def test_the_listening_line_is_written_once(setup):
    out = run_app(setup)
    assert out.count("listening on http://127.0.0.1:") == 1, out
