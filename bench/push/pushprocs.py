"""bench/push's use of the shared harness (bench/e2e's ``procs`` through bench/ws's ``wsprocs``):
the servers under test registered with ``procs.APPS``, a ``PushServer`` that also learns where
its hub listens, a pinned ``redis-server``, the CPU accounting of a measured window (the servers',
the clients', and what the rest of the machine took: ``other%``), and medians over the rounds
nobody else disturbed."""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PUSH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(PUSH_DIR.parent / "ws"))    # bench/ws: wsprocs (and through it bench/e2e's procs)
sys.path.append(str(PUSH_DIR.parents[1]))          # the checkout, last: tests.push.redis_support

import wsprocs  # noqa: E402
from wsprocs import HOST, BenchError, procs  # noqa: E402

__all__ = ["HOST", "BenchError", "CpuWindow", "PushServer", "clean_median", "pinned_redis", "procs", "wsprocs"]

procs.APPS["push-cyserve"] = PUSH_DIR / "apps" / "hub_app.py"
procs.APPS["push-socketio"] = PUSH_DIR / "apps" / "socketio_app.py"


class PushServer(procs.Server):
    """A bench/push server process (``procs.Server``: pinned, own session, stopped with its
    group) started with extra environment variables (the push port, the Redis URL).  Once it
    answers ``/plaintext``, a cyserve one is asked for its hub's TCP port (``push_port``)."""

    def __init__(self, name: str, app: str, core: int | None, env: dict[str, str] | None = None,
                 tree: str | None = None) -> None:
        super().__init__(name, core, stop_grace_s=10.0, app=app, tree=tree)
        self.env = env or {}
        self.push_port: int | None = None

    def __enter__(self) -> PushServer:
        # procs.Server copies os.environ when it starts the process: set ours just for that.
        saved = {key: os.environ.get(key) for key in self.env}
        os.environ.update(self.env)
        try:
            super().__enter__()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        if self.app == "push-cyserve":
            try:
                self.push_port = self._ask_push_port(timeout_s=20.0)
            except BaseException:
                self.__exit__(*sys.exc_info())
                raise
        return self

    def _ask_push_port(self, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.assert_alive()
            conn = http.client.HTTPConnection(HOST, self.port, timeout=2.0)
            try:
                conn.request("GET", "/push-port")
                answer = json.loads(conn.getresponse().read())
            finally:
                conn.close()
            if answer.get("port"):
                return int(answer["port"])
            time.sleep(0.1)
        raise BenchError(f"{self.name}: no push listener after {timeout_s:.0f} s:\n{self.log_tail()}")


@contextlib.contextmanager
def pinned_redis(core: int | None) -> Iterator[Any]:
    """A ``redis-server`` on a free 127.0.0.1 port (tests/push/redis_support.py's, no
    persistence), pinned to ``core`` like the servers, killed when the block ends."""
    from tests.push.redis_support import REDIS_SERVER, RedisServer
    if REDIS_SERVER is None:
        raise BenchError("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="bench-push-redis-") as workdir:
        server = RedisServer(workdir)
        try:
            server.start()
            if core is not None and server.pid is not None:
                os.sched_setaffinity(server.pid, {core})
            yield server
        finally:
            server.kill()


@dataclass
class CpuWindow:
    """CPU seconds over one measured window: the server processes' (user, system), the client
    processes' (each with its descendants), and ``other_pct``: what every other process of the
    machine took meanwhile, in % of one CPU (bench/ws/echo.py's ``other%``)."""

    servers: list[int]
    clients: list[int]
    server_user_s: float = 0.0
    server_sys_s: float = 0.0
    client_s: float = 0.0
    seconds: float = 0.0
    other_pct: float = 0.0

    def __enter__(self) -> CpuWindow:
        self._start, self._start_by_pid = self._read()
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:
            return
        end, self._end_by_pid = self._read()
        self.server_user_s, self.server_sys_s, self.client_s, busy, self.seconds = (
            b - a for a, b in zip(self._start, end))
        others = busy - self.server_user_s - self.server_sys_s - self.client_s
        self.other_pct = max(0.0, 100 * others / self.seconds) if self.seconds > 0 else 0.0

    @property
    def server_s(self) -> float:
        return self.server_user_s + self.server_sys_s

    def server_pct(self, pid: int) -> float:
        """One server process's CPU over the window, in % of one CPU."""
        if self.seconds <= 0:
            return 0.0
        return 100 * (sum(self._end_by_pid[pid]) - sum(self._start_by_pid[pid])) / self.seconds

    def _read(self) -> tuple[tuple[float, float, float, float, float], dict[int, tuple[float, float]]]:
        by_pid = {pid: wsprocs.cpu_split_s(pid) for pid in self.servers}
        user = sum(u for u, _ in by_pid.values())
        system = sum(s for _, s in by_pid.values())
        clients = sum(procs.tree_cpu_s(pid) for pid in self.clients)
        return (user, system, clients, wsprocs.machine_busy_s(), time.monotonic()), by_pid


def clean_median(rounds: list[dict[str, Any]], max_other: float) -> tuple[dict[str, float], int]:
    """Medians of every numeric field over the rounds whose ``other_pct`` was at most
    ``max_other`` (over every round when none was), and how many rounds were clean."""
    clean = [r for r in rounds if r.get("other_pct", 0.0) <= max_other]
    used = clean or rounds
    fields = [k for k, v in used[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return {k: statistics.median(r[k] for r in used) for k in fields}, len(clean)
