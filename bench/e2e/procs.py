"""The servers under test: pinning, free ports, start/stop, and CPU time and RSS read from /proc.

A server runs its app script (``app.run`` / ``uvicorn.run``) or, given a ``Cli``, its command
line (``cyserve cyserve_app:app --workers 2 ...``, ``uvicorn uvicorn_app:app ...``).
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

HOST = "127.0.0.1"  # the only address the harness ever listens on or connects to
E2E_DIR = Path(__file__).resolve().parent
REPO_DIR = E2E_DIR.parents[1]
APPS: dict[str, Path] = {
    "cyserve": E2E_DIR / "apps" / "cyserve_app.py",
    "uvicorn": E2E_DIR / "apps" / "uvicorn_app.py",
}
_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The client a proxy reports in ``--proxy-headers`` runs: TEST-NET-3 (RFC 5737), never a real peer.
FORWARDED_CLIENT = "203.0.113.7"
#: What wrk sends in those runs, as nginx in front of the server would (one hop, over https).
FORWARDED_HEADERS = (f"X-Forwarded-For: {FORWARDED_CLIENT}", "X-Forwarded-Proto: https")


class BenchError(RuntimeError):
    """A run that must not be reported: wrong answers, errors under load, a dead server."""


def arm_time_bound(seconds: int, what: str = "the run") -> None:
    """Bound a harness run: past ``seconds`` SIGALRM raises ``BenchError``; SIGINT (even when
    started with ``&``) and SIGTERM end it too.  Each unwinds every with-block, so the servers
    stop in order.  ``signal.alarm(0)`` disarms the bound."""
    def expired(signum: int, frame: FrameType | None) -> None:
        raise BenchError(f"{what} exceeded its {seconds} s bound")

    def terminated(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGALRM, expired)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminated)
    signal.alarm(seconds)


def cores() -> tuple[int | None, int | None]:
    """(server core, load-generator core); (None, None) below two usable cores: no pinning then."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 or shutil.which("taskset") is None:
        return None, None
    return allowed[0], allowed[1]


def pinned(cmd: list[str], core: int | None) -> list[str]:
    """cmd run on one core; taskset execs, so the pid we get is the command's own."""
    return cmd if core is None else ["taskset", "-c", str(core), *cmd]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of pid and its live descendants, plus children they reaped."""
    return sum(tree_cpu_by_pid(pid).values())


def tree_cpu_by_pid(pid: int) -> dict[int, float]:
    """CPU seconds of pid and of each live descendant, each counting the children it reaped:
    a supervisor and its workers, one entry per process."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))  # fields[1]: ppid
    seconds: dict[int, float] = {}
    todo = [pid]
    while todo:
        current = todo.pop()
        fields = _stat_fields(current)
        if fields:  # utime, stime, cutime, cstime (proc(5) fields 14-17)
            seconds[current] = sum(int(f) for f in fields[11:15]) / _CLK_TCK
        todo.extend(children.get(current, ()))
    return seconds


def is_helper(pid: int) -> bool:
    """A process of a server's tree that serves nothing: multiprocessing's resource tracker,
    which uvicorn's spawned workers start beside themselves."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"multiprocessing.resource_tracker" in f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 (state) on; the command name may contain spaces and parens."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise BenchError(f"no VmRSS for pid {pid}")


def _child_env(first: str | None = None) -> dict[str, str]:
    # The repo root goes last, so a PYTHONPATH the caller set (e.g. an installed build) wins;
    # ``first`` (another checkout, built in place) goes before everything.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (first, env.get("PYTHONPATH"), str(REPO_DIR)) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def child_python(code: str) -> str:
    """Run a Python snippet with the servers' environment and sys.path; its stdout, stripped."""
    # cwd: `-c` puts the cwd first on sys.path, where a server script has its own directory.
    done = subprocess.run([sys.executable, "-c", code], env=_child_env(), cwd=APPS["cyserve"].parent,
                          capture_output=True, text=True, timeout=30)
    if done.returncode == 0:
        return done.stdout.strip()
    last_line = (done.stderr.strip().splitlines() or ["?"])[-1]
    return f"unavailable ({last_line[:80]})"


def console_script(name: str) -> list[str]:
    """The command for an installed console script (``cyserve``, ``uvicorn``) of this interpreter:
    the script beside it (what a Dockerfile runs), else ``python -m name``."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.is_file() else [sys.executable, "-m", name]


@dataclass(frozen=True)
class Cli:
    """A server started through its command line, with the settings run.py's CLI modes vary.

    Both servers get the same options: ``--workers N``, the access log on or off at log level
    info (uvicorn and cyserve both drop access lines below info), proxy headers trusted from
    127.0.0.1 or off.  uvicorn also gets ``--loop uvloop --http httptools --lifespan off`` (its
    fastest parts; the raw ASGI app answers no lifespan scope).  ``forwarded``: wrk sends
    ``FORWARDED_HEADERS``, set on both sides of a proxy-headers comparison so both parse the
    same bytes."""

    workers: int = 1
    access_log: bool = False
    proxy_headers: bool = False
    forwarded: bool = False

    @property
    def label(self) -> str:
        """What the name of the server adds: ``-w2``, ``+log``, ``+xff``."""
        return f"-w{self.workers}" + ("+log" if self.access_log else "") + ("+xff" if self.proxy_headers else "")

    def command(self, server: str, script: Path, port: int) -> list[str]:
        """``server``'s command line serving ``script``'s ``app`` on ``HOST:port``."""
        common = [f"{script.stem}:app", "--app-dir", str(script.parent), "--host", HOST, "--port", str(port),
                  "--workers", str(self.workers), "--log-level", "info",
                  "--access-log" if self.access_log else "--no-access-log"]
        common += (["--proxy-headers", "--forwarded-allow-ips", HOST] if self.proxy_headers
                   else ["--no-proxy-headers"])
        if server == "cyserve":
            return [*console_script("cyserve"), *common, "--loop", "uvloop"]
        if server == "uvicorn":
            return [*console_script("uvicorn"), *common, "--loop", "uvloop", "--http", "httptools",
                    "--lifespan", "off"]
        raise ValueError(f"no command line for {server!r}")


class Server:
    """One server process; a context manager, so it is stopped however the harness ends."""

    def __init__(self, name: str, core: int | None, stop_grace_s: float = 10.0,
                 app: str | None = None, tree: str | None = None, cli: Cli | None = None) -> None:
        """``app``: which of APPS to run (default: ``name``); ``tree``: a checkout whose cyserve
        (built in place) the server imports instead of this one's; ``cli``: start it through its
        command line (``app`` then names the server: ``cyserve`` or ``uvicorn``), with stdout (the
        access log) in a file of its own and stderr in the log."""
        self.name = name
        self.app = app or name
        self.tree = tree
        self.core = core
        self.stop_grace_s = stop_grace_s
        self.cli = cli
        self.port = free_port()
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-e2e-{name}-", suffix=".log", delete=False)
        self._out_path: str | None = None
        self.command: list[str] = []  # as started
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def wrk_headers(self) -> tuple[str, ...]:
        """Header lines wrk adds to every request to this server."""
        return FORWARDED_HEADERS if self.cli is not None and self.cli.forwarded else ()

    @property
    def pid(self) -> int:
        assert self._proc is not None, "server not started"
        return self._proc.pid

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def __enter__(self) -> Server:
        stdout: int | IO[bytes] = self._log
        if self.cli is None:
            cmd = [sys.executable, str(APPS[self.app]), "--host", HOST, "--port", str(self.port)]
        else:
            cmd = self.cli.command(self.app, APPS[self.app], self.port)
            # O_APPEND, so truncating between runs (truncate_output) leaves no hole at the
            # writer's old offset.
            fd, self._out_path = tempfile.mkstemp(prefix=f"bench-e2e-{self.name}-", suffix=".out")
            os.close(fd)
            stdout = os.open(self._out_path, os.O_WRONLY | os.O_APPEND)
        self.command = pinned(cmd, self.core)
        try:
            try:
                # Own session: a Ctrl-C at the terminal reaches only the harness, which then stops
                # us in order.
                self._proc = subprocess.Popen(self.command, stdout=stdout,
                                              stderr=subprocess.STDOUT if self.cli is None else self._log,
                                              env=_child_env(self.tree), start_new_session=True)
            finally:
                if isinstance(stdout, int):
                    os.close(stdout)  # the child has its copy
            self._wait_ready(timeout_s=20.0)
            if self.cli is not None:
                self._wait_workers(self.cli.workers, timeout_s=20.0)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
        self._log.close()
        if exc_type is None:
            os.unlink(self._log.name)
        else:
            print(f"[{self.name}] server log kept at {self._log.name}", file=sys.stderr)
        if self._out_path is not None:
            os.unlink(self._out_path)  # the access log: only read by the correctness gate

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL to the whole process group after a grace period."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=self.stop_grace_s)
            except subprocess.TimeoutExpired:
                print(f"[{self.name}] still running {self.stop_grace_s:.0f} s after SIGTERM; killing",
                      file=sys.stderr)
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)  # our session: the server and any forks
        except ProcessLookupError:
            pass
        self._proc.wait()

    def assert_alive(self) -> None:
        assert self._proc is not None, "server not started"
        code = self._proc.poll()
        if code is not None:
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
            raise BenchError(f"{self.name} (pid {self.pid}) {how} during the run:\n{self.log_tail()}")

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def output_text(self) -> str:
        """What a command-line server wrote to stdout (its access log) since the last truncation."""
        if self._out_path is None:
            return ""
        return Path(self._out_path).read_text(errors="replace")

    def truncate_output(self) -> None:
        """Empty the access-log file, so it stays small however long the run."""
        if self._out_path is not None:
            os.truncate(self._out_path, 0)

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid)

    def cpu_by_pid(self) -> dict[int, float]:
        """CPU seconds of the server process and of each of its workers."""
        return tree_cpu_by_pid(self.pid)

    def worker_pids(self) -> list[int]:
        """The processes under the server's that serve requests (its workers), in pid order."""
        return sorted(pid for pid in tree_cpu_by_pid(self.pid) if pid != self.pid and not is_helper(pid))

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.assert_alive()
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=1.0)
                conn.request("GET", "/plaintext")
                conn.getresponse().read()
                conn.close()
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
        raise BenchError(f"{self.name} did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def _wait_workers(self, workers: int, timeout_s: float) -> None:
        """With workers, the first answer came from one of them: wait until all are started (one
        still importing the app is then ready by the end of the warm-up)."""
        if workers < 2:
            return
        deadline = time.monotonic() + timeout_s
        while len(self.worker_pids()) < workers:
            self.assert_alive()
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: fewer than {workers} worker processes after "
                                 f"{timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.1)
