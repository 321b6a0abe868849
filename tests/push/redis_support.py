"""A real ``redis-server`` for the push tests: started on a free 127.0.0.1 port in a directory
of its own, stopped, restarted on the same port, frozen and thawed, always killed at the end.

Used by the ``redis_server`` fixture (tests/push/conftest.py) and importable from any test
module or helper process (``from tests.push.redis_support import RedisServer``): the server
is an ordinary child process, and the only thing another process needs is its ``url``.
"""
from __future__ import annotations

import asyncio
import collections
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable

import redis

from cyserve.push.redis import RedisBroker

__all__ = ["REDIS_SERVER", "Node", "RedisServer", "blocking_publish", "free_port", "peer",
           "stop_peer", "until"]

# None when redis-server is not installed: the fixture then skips (CI installs it, so CI never
# does).
REDIS_SERVER: str | None = shutil.which("redis-server")

_READY_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    """A port of 127.0.0.1 nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` child process on 127.0.0.1, without persistence.

    ``start()`` (again after ``stop()``: the same port, an empty data set, as after a crash
    without persistence), ``stop()``, ``freeze()``/``thaw()`` (SIGSTOP/SIGCONT: a server that
    accepts nothing and answers nothing, its sockets still open), ``cli(*args)`` (one command
    through a fresh synchronous redis-py connection) and ``kill()`` (the teardown: never leaves
    the process behind, frozen or not).
    """

    def __init__(self, workdir: str | os.PathLike[str], port: int | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.dir = pathlib.Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._frozen = False
        self._log_path = self.dir / "redis-server.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and return once it answers PING (bounded: RuntimeError after
        10 s, with the server's log).  A first start whose port was taken meanwhile retries on
        another free port; a restart keeps its port (that is what it tests)."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        first = self._proc is None
        for _attempt in range(3 if first else 1):
            self._spawn()
            if self._wait_ready():
                return
            self._reap()
            if not first:
                break
            self.port = free_port()
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}: "
                           f"{self.log()[-2000:]}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); connections to it break."""
        if self._proc is None or self._proc.poll() is not None:
            return
        if self._frozen:
            self.thaw()
        self._proc.terminate()
        try:
            self._proc.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(_STOP_TIMEOUT_S)

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing until ``thaw``."""
        assert self._proc is not None and self.running, "redis-server is not running"
        os.kill(self._proc.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        assert self._proc is not None, "redis-server was never started"
        os.kill(self._proc.pid, signal.SIGCONT)
        self._frozen = False

    def cli(self, *args: Any) -> Any:
        """One command on a fresh connection (e.g. ``cli("CLIENT", "KILL", "TYPE", "pubsub")``);
        bounded by a 5 s socket timeout."""
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0,
                             socket_connect_timeout=5.0)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL (a frozen process dies too) and reap; safe to call any number of times."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(_STOP_TIMEOUT_S)

    def log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _spawn(self) -> None:
        assert REDIS_SERVER is not None
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir),
                "--daemonize", "no", "--protected-mode", "yes",
                "--logfile", str(self._log_path)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        self._frozen = False

    def _wait_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                    sock.settimeout(1.0)
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

    def _reap(self) -> None:
        self.kill()

    def __enter__(self) -> "RedisServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


# ------------------------------------------------------------------------- brokers in tests
# Short timers, so that faults are found out and mended within a second or two.
FAST = {"health_check_s": 0.2, "reconnect_max_s": 0.3}


class Node:
    """A started ``RedisBroker`` and what it was given: ``messages[channel]`` in order,
    ``lost`` as ``(channel, count)`` calls."""

    def __init__(self, url: str, **options: Any) -> None:
        self.broker = RedisBroker(url, **{**FAST, **options})
        self.messages: dict[str, list[bytes]] = collections.defaultdict(list)
        self.lost: list[tuple[str, int]] = []

    @property
    def node_id(self) -> str:
        return self.broker.node_id

    def _on_message(self, channel: str, data: bytes) -> None:
        self.messages[channel].append(data)

    def _on_lost(self, channel: str, count: int) -> None:
        self.lost.append((channel, count))

    async def __aenter__(self) -> "Node":
        await self.broker.start(self._on_message, self._on_lost)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.broker.close()


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> float:
    """Poll ``predicate`` every 10 ms; its seconds to come true, or AssertionError after
    ``timeout_s``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > timeout_s:
            raise AssertionError(f"not within {timeout_s} s: {what or predicate}")
        await asyncio.sleep(0.01)
    return loop.time() - start


def peer(loop_name: str, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    """``python -m tests.push.redis_peer LOOP ARGS...`` from the checkout's root."""
    root = pathlib.Path(__file__).resolve().parent.parent.parent
    return subprocess.Popen([sys.executable, "-m", "tests.push.redis_peer", loop_name, *args],
                            cwd=root, stdout=subprocess.PIPE, text=True,
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)


def stop_peer(child: subprocess.Popen[str]) -> None:
    """Kill the peer if still running, reap it, close its pipes."""
    child.kill()
    child.wait(10)
    for pipe in (child.stdin, child.stdout):
        if pipe is not None:
            pipe.close()


def blocking_publish(loop_name: str, url: str, channel: str, first: int, count: int,
                     size: int = 0, history: int = 10_000) -> None:
    """Publish from another process and wait for it *without* letting the caller's event
    loop run: the brokers of this process cannot notice or mend anything meanwhile, so the
    messages are surely published while they are cut off (what a fault test needs)."""
    child = peer(loop_name, "publish", url, channel, str(first), str(count), str(size),
                 str(history))
    try:
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 0 and out.strip() == "done", (child.returncode, out)
    finally:
        stop_peer(child)
