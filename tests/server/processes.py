"""Helpers for the process tests: a server started as a real process (``launch`` through
tests/server/apps/launcher.py), plain HTTP requests to it over TCP or a Unix socket, its worker
processes read from /proc, and a bounded load loop.  Every wait has a deadline."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = Path(__file__).resolve().parent / "apps" / "launcher.py"
BASIC = "tests.server.apps.basic:app"
LOOPS = ("uvloop", "asyncio")

_LISTENING = re.compile(r"listening on (http|https)://(\[[^\]]+\]|[^:\s]+):(\d+)|listening on (unix:\S+)")


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket path."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


@dataclass
class Server:
    """A launched server process; its output goes to files (a pipe nobody reads could fill)."""

    proc: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path
    port: int | None = None
    uds: str | None = None
    closed: bool = field(default=False)

    # ------------------------------------------------------------------ output
    def output(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_listening(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = _LISTENING.search(self.output())
            if found:
                if found.group(4):
                    self.uds = found.group(4)[len("unix:"):]
                else:
                    self.port = int(found.group(3))
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            time.sleep(0.02)
        raise AssertionError(f"server not listening after {timeout_s}s:\n{self.output()}")

    # ------------------------------------------------------------------ requests
    def connection(self, timeout_s: float = 5.0) -> http.client.HTTPConnection:
        if self.uds is not None:
            return UnixHTTPConnection(self.uds, timeout_s)
        assert self.port is not None
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
        """One request on a new connection (closed after)."""
        conn = self.connection(timeout_s)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def pid_of_answer(self) -> int:
        status, body = self.get("/pid")
        assert status == 200, (status, body)
        return int(body)

    def answering_pids(self, count: int, timeout_s: float = 15.0,
                       among: Callable[[int], bool] = lambda pid: True) -> set[int]:
        """Ask /pid on new connections until ``count`` distinct pids (passing ``among``)
        answered; connection failures while workers start are retried until the deadline."""
        deadline = time.monotonic() + timeout_s
        seen: set[int] = set()
        while time.monotonic() < deadline:
            try:
                pid = self.pid_of_answer()
            except OSError:
                time.sleep(0.05)
                continue
            if among(pid):
                seen.add(pid)
                if len(seen) >= count:
                    return seen
        raise AssertionError(f"only {seen} answered within {timeout_s}s:\n{self.output()}")

    # ------------------------------------------------------------------ processes
    def workers(self) -> set[int]:
        """The supervisor's live child processes."""
        return children(self.proc.pid)

    def wait_workers(self, predicate: Callable[[set[int]], bool], timeout_s: float = 10.0) -> set[int]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            current = self.workers()
            if predicate(current):
                return current
            time.sleep(0.05)
        raise AssertionError(f"workers {self.workers()} after {timeout_s}s:\n{self.output()}")

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self, timeout_s: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running after {timeout_s}s:\n{self.output()}")

    def close(self) -> None:
        """End the server and every process it started, whatever state the test left."""
        if self.closed:
            return
        self.closed = True
        family = {self.proc.pid} | descendants(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in family - {self.proc.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def launch(tmp_path: Path, options: dict[str, Any], *, env: dict[str, str] | None = None,
           pass_fds: Sequence[int] = (), prefix: Sequence[str] = (), wait: bool = True,
           timeout_s: float = 20.0) -> Server:
    """Start ``launch(RunConfig(**options))`` in a new process (port 0 unless given)."""
    options = {"port": 0, **options}
    out_path = tmp_path / f"server-{time.monotonic_ns()}.out"
    err_path = out_path.with_suffix(".err")
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    environ.pop("WEB_CONCURRENCY", None)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([*prefix, sys.executable, str(LAUNCHER), json.dumps(options)],
                                cwd=ROOT, stdout=out, stderr=err, env=environ,
                                pass_fds=tuple(pass_fds))
    server = Server(proc, out_path, err_path)
    if wait:
        try:
            server.wait_listening(timeout_s)
        except BaseException:
            server.close()
            raise
    return server


def children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is ``pid``, from /proc."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            found.add(int(entry))
    return found


def descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children(todo.pop()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def process_state(pid: int) -> str | None:
    """The state letter from /proc (R, S, T, Z...), None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


class Load:
    """A bounded load loop in a thread: requests on a keep-alive connection, and on a new
    connection every few requests, until stopped; records each outcome.

    A request on a *reused* keep-alive connection that the server closed before answering
    (it was idle when its worker began to drain) is retried once on a new connection: RFC 9112
    §9.3.1 lets a client retry an idempotent request on a connection that closed before any of
    the response arrived, and every HTTP client does.  Such retries are counted apart; a
    failure on a new connection, or a status other than 200, is a failed request."""

    def __init__(self, server: Server, path: str = "/pid", new_connection_every: int = 3) -> None:
        self.server = server
        self.path = path
        self.every = new_connection_every
        self.ok = 0
        self.retried = 0
        self.failures: list[str] = []
        self.pids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        assert not self._thread.is_alive(), "the load loop did not stop"

    def _run(self) -> None:
        conn: http.client.HTTPConnection | None = None
        sent_on_conn = 0
        deadline = time.monotonic() + 60  # a bound even if the test forgets to stop it
        while not self._stop.is_set() and time.monotonic() < deadline:
            if conn is None or sent_on_conn >= self.every:
                if conn is not None:
                    conn.close()
                conn, sent_on_conn = self.server.connection(), 0
            reused = sent_on_conn > 0
            try:
                keep = self._one(conn)
                sent_on_conn = sent_on_conn + 1 if keep else self.every
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                conn.close()
                conn, sent_on_conn = None, 0
                if not reused:
                    self.failures.append(f"new connection: {exc!r}")
                    continue
                self.retried += 1
                fresh = self.server.connection()
                try:
                    self._one(fresh)
                except Exception as again:  # noqa: BLE001 - recorded as a failed request
                    self.failures.append(f"retry: {again!r}")
                finally:
                    fresh.close()
            except Exception as exc:  # noqa: BLE001 - recorded as a failed request
                self.failures.append(repr(exc))
                conn.close()
                conn, sent_on_conn = None, 0
        if conn is not None:
            conn.close()

    def _one(self, conn: http.client.HTTPConnection) -> bool:
        """One request; whether the connection may be used again (not ``Connection: close``)."""
        conn.request("GET", self.path)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            self.failures.append(f"status {response.status}: {body[:80]!r}")
        else:
            self.ok += 1
            if self.path == "/pid":
                self.pids.append(int(body))
        return response.getheader("connection", "").lower() != "close"
