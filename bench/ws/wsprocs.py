"""bench/ws's use of bench/e2e's harness: the four servers registered with ``procs.APPS``, a
``Server`` whose readiness check is a WebSocket handshake, the file-descriptor limit, and the
client processes (pinned, bounded in time, killed with their group on the way out)."""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

WS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(WS_DIR.parent / "e2e"))  # bench/e2e: the shared harness

import procs  # noqa: E402
from procs import HOST, BenchError  # noqa: E402

SERVERS = ("cyserve", "picows", "aiohttp", "websockets")
for _name in SERVERS:
    procs.APPS[f"ws-{_name}"] = WS_DIR / "servers" / f"{_name}_server.py"

__all__ = ["HOST", "SERVERS", "BenchError", "WsServer", "procs", "cpu_split_s", "machine_busy_s", "raise_nofile",
           "Client", "stdin_commands", "versions"]


class WsServer(procs.Server):
    """One bench/ws server process: ``procs.Server`` (pinning, stop, CPU and RSS readings) with a
    WebSocket opening handshake on ``/`` as the readiness check (none of them serves /plaintext)."""

    def __init__(self, name: str, core: int | None, tree: str | None = None) -> None:
        """``tree``: a checkout (built in place) whose cyserve the server imports instead."""
        super().__init__(name, core, stop_grace_s=10.0, app=f"ws-{name}", tree=tree)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                if handshake_ok(self.port):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BenchError(f"{self.name} did not complete a WebSocket handshake within {timeout_s:.0f} s:\n"
                         f"{self.log_tail()}")


def handshake_ok(port: int, path: str = "/") -> bool:
    """An RFC 6455 §4.1 opening handshake over a plain socket; True on ``101``.  Closes with 1000."""
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((HOST, port), timeout=2.0) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return False
            head += chunk
        # A masked close frame, code 1000 (§5.5.1): each server sees an orderly goodbye.
        mask = os.urandom(4)
        sock.sendall(bytes([0x88, 0x82]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(b"\x03\xe8")))
        return head.startswith(b"HTTP/1.1 101")


def cpu_split_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process (proc(5) stat fields 14 and 15): the system part
    is the kernel's work for the process (sockets, epoll, the loopback TCP path its sends run),
    which a faster library cannot remove."""
    fields = procs._stat_fields(pid)
    if fields is None:
        raise BenchError(f"process {pid} is gone")
    return int(fields[11]) / procs._CLK_TCK, int(fields[12]) / procs._CLK_TCK


def machine_busy_s() -> float:
    """CPU seconds every process of the machine has used (all CPUs, /proc/stat): over a window,
    minus the benchmark's own processes, what others took from it."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / procs._CLK_TCK   # up to steal; guest time is inside user


def raise_nofile(needed: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one (children inherit it); fail if that is
    below ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < needed:
        raise BenchError(f"RLIMIT_NOFILE's hard limit is {hard}; this run needs {needed} "
                         "(raise it, e.g. ulimit -Hn, or run fewer connections)")
    return hard


class Client:
    """One client process (a bench/ws script run with ``--child``), pinned to ``core``.  It reads
    commands from stdin (``send``) and writes JSON lines to stdout (``read``); its stderr goes to a
    temporary file shown when it fails.  Everything it does is bounded by ``timeout_s``, and its
    process group is killed when the block ends, whatever happened."""

    def __init__(self, script: Path, args: list[str], core: int | None, timeout_s: float) -> None:
        self.cmd = procs.pinned([sys.executable, str(script), "--child", *args], core)
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self._err = tempfile.TemporaryFile(mode="w+")
        self._selector = selectors.DefaultSelector()

    def __enter__(self) -> Client:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, start_new_session=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)
        self._deadline = time.monotonic() + self.timeout_s
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._selector.close()
        self._err.close()

    def send(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout_s: float = 30.0) -> int | None:
        """Wait for the process to exit on its own (after ``quit``); its status, or None if it
        did not within ``timeout_s`` (the block's end kills it then)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def read(self) -> dict[str, Any]:
        """The next JSON line; a BenchError if the process ends first or the time is up."""
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"client {' '.join(self.cmd[-6:])} took over {self.timeout_s:.0f} s")
            if self._selector.select(timeout=min(left, 1.0)):
                line = self.proc.stdout.readline()
                if line:
                    return dict(json.loads(line))
                self.proc.wait(timeout=5)
                self._err.seek(0)
                raise BenchError(f"client exited with {self.proc.returncode} before answering:\n"
                                 f"{self._err.read()[-2000:]}")


def stdin_commands() -> asyncio.Queue[str]:
    """In a client process: the driver's lines on stdin, as a queue on the running loop
    (``quit`` once stdin ends, so a driver that died ends its clients too)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(sys.stdin.fileno())
        queue.put_nowait(line.strip() if line else "quit")
    loop.add_reader(sys.stdin.fileno(), readable)
    return queue


def versions() -> dict[str, str]:
    from importlib import metadata
    import platform
    found = {"python": platform.python_version(), "kernel": platform.release()}
    for name in ("cyserve", "picows", "aiohttp", "websockets", "uvloop", "aiofastnet"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    git = subprocess.run(["git", "-C", str(procs.REPO_DIR), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=10)
    found["git"] = git.stdout.strip() or "no commit"
    found["date"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return found
