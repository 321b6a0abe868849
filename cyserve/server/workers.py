"""Running server processes: ``launch(config, app)`` — what ``cyserve module:app`` and
``App.run`` call — serves in this process (``cyserve.server.process``), or supervises workers.

One worker, no reload and no recycling: the server runs in this process.  Otherwise (recycling
a single worker needs a replacement process too) this process becomes a supervisor.  It binds
the listening socket once (``cyserve.server.listen``: one accept queue that outlives any worker,
where a ``SO_REUSEPORT`` socket per worker would reset the connections queued on a worker that
stops — ``bench/e2e/reuseport_vs_inherited.py``), never runs an event loop itself (a
``selectors`` loop over its workers' pipes and ``signal.set_wakeup_fd``), and forks the workers,
which inherit the socket, make a fresh event loop, load the app (after the fork, so a restart
picks up new code) and serve.  Each worker talks to the supervisor over a pipe, one line per
message:

    boot                  its event loop runs (the app is imported); heartbeats start
    ready <s>             it listens; ``s`` is its graceful-shutdown budget in seconds
    beat                  every ``timeout_worker_healthcheck / 4`` (at most 1 s), from its loop
    recycle <kind> <why>  it passed ``limit_max_requests`` (kind ``max_requests``) or
                          ``workers_max_rss`` (``max_rss``): replace it

The supervisor's side of the contract:
- a worker silent for ``timeout_worker_healthcheck`` (a blocked loop, SIGSTOP) is killed
  (SIGKILL) and replaced; before ``boot`` it has ``_STARTUP_S`` to import the app;
- a worker that dies is replaced at once, and after further deaths with a doubling delay up to
  ``_BACKOFF_MAX_S`` (reset once a worker has served ``_STABLE_S``);
- a worker that exits with status 3 before ``ready`` (a ``StartupError``: the app does not import,
  a startup hook raised, a TLS file is bad) would fail the same way again: the supervisor stops
  and exits 3, never a respawn loop.  Under ``--reload`` it waits for the next change instead;
- a replacement is always started before the worker it replaces is told to drain, and the old
  one drains only once the new one reports ``ready``: SIGHUP (a rolling restart, one worker at a
  time), a reload, recycling (``limit_max_requests`` + jitter, ``workers_max_rss``,
  ``workers_lifetime``).  A replacement that fails to start leaves the old worker serving;
- SIGTERM / SIGINT: every worker drains (SIGTERM), each within its budget plus ``_KILL_MARGIN_S``
  (then SIGKILL); exit 0.  A second SIGINT kills the workers and exits 130 at once;
- SIGTTIN / SIGTTOU: one worker more / one fewer (never below one).

Exit statuses: 0 after a graceful stop, 3 (``EXIT_STARTUP_FAILURE``) when the server could not
start, 130 (``EXIT_FORCED``, 128 + SIGINT as shells report it) after a second SIGINT.
"""
from __future__ import annotations

import collections
import logging
import os
import random
import selectors
import signal
import ssl as ssl_module
import sys
import time
from typing import Any, Callable

from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve.logs import configure as configure_logging
from cyserve.server.listen import Listener, bind
from cyserve.server.process import (EXIT_FORCED, EXIT_STARTUP_FAILURE, exit_now, loop_factory,
                                    new_event_loop, report_startup_failure, say, serve_here,
                                    worker_main)

__all__ = ["launch", "run", "worker_count", "Supervisor", "new_event_loop", "loop_factory",
           "EXIT_STARTUP_FAILURE", "EXIT_FORCED"]

_STARTUP_S = 60.0        # from fork to ``boot``: importing a large app can take a while
_STABLE_S = 10.0         # a worker that served this long resets the respawn backoff
_BACKOFF_MAX_S = 5.0     # the longest wait before respawning a worker that keeps dying
_KILL_MARGIN_S = 5.0     # past a worker's shutdown budget, before SIGKILL
_RECYCLE_RETRY_S = 10.0  # after a replacement failed to start, before trying again
_TICK_S = 0.25           # the supervisor's longest sleep (deadlines are checked this often)
_WATCHER_START_S = 10.0  # --reload: the longest wait for the watcher before the first worker
_DEFAULT_GRACE_S = 10.0  # a worker that never said ``ready`` (Timeouts.shutdown_s's default)

# Signals the supervisor handles; blocked around fork so none reaches the child before it has
# put its own dispositions in place.
_SUPERVISOR_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN,
                       signal.SIGTTOU, signal.SIGCHLD)


# ---------------------------------------------------------------------- entry points
def launch(config: RunConfig, app: Any = None, *, ssl: ssl_module.SSLContext | None = None,
           reuse_port: bool = False) -> int:
    """Serve ``app`` (or the ``config.app`` target when ``app`` is None) as ``config`` says and
    return the process exit status (0, 3 or 130; see the module docstring).

    ``ssl``: a server ``SSLContext`` built by the caller (``App.run(ssl=...)``), used when the
    config's ``--ssl-*`` options build none.  ``reuse_port``: ``SO_REUSEPORT`` on the TCP socket.
    A ``StartupError`` anywhere in startup is one line on stderr (``cyserve: ...``, or through
    the ``cyserve.error`` logger once logging is configured) and status 3."""
    try:
        configure_logging(config)
        workers = worker_count(config)
        supervised = workers > 1 or config.reload or _recycles(config)
        if config.reload:
            if app is not None:
                raise StartupError("--reload needs an import string (cyserve module:app --reload)"
                                   ", not an App object: reloading re-imports the module")
            from cyserve.server.reload import require_watchfiles, watched_dirs
            require_watchfiles()
            watched_dirs(config)
        if not supervised:
            return serve_here(config, app, ssl, reuse_port)
        listener = bind(config, reuse_port=reuse_port)
    except StartupError as exc:
        report_startup_failure(exc)
        return EXIT_STARTUP_FAILURE
    except KeyboardInterrupt:
        return EXIT_FORCED
    try:
        _announce(listener, config, ssl)
        return Supervisor(config, app, listener, ssl, workers).run()
    except StartupError as exc:  # from the supervisor's own setup (metrics), before any fork
        report_startup_failure(exc)
        return EXIT_STARTUP_FAILURE
    except KeyboardInterrupt:  # before the supervisor's own SIGINT handling is in place
        return EXIT_FORCED
    finally:
        listener.close()


def run(app: Any, host: str = "127.0.0.1", port: int = 8000, *, reuse_port: bool = False,
        ssl: ssl_module.SSLContext | None = None) -> None:
    """Serve ``app`` in this process until SIGINT or SIGTERM, then shut down gracefully.

    The library form of ``launch``: a failure to start raises (``StartupError``) instead of
    becoming an exit status; a second SIGINT still ends the process at once."""
    config = RunConfig(host=host, port=port)
    code = serve_here(config, app, ssl, reuse_port, raise_startup=True)
    if code == EXIT_FORCED:
        exit_now(code)


def worker_count(config: RunConfig, environ: dict[str, str] | None = None) -> int:
    """``config.workers``, else ``WEB_CONCURRENCY`` (as uvicorn reads it), else 1."""
    if config.workers is not None:
        return config.workers
    raw = (os.environ if environ is None else environ).get("WEB_CONCURRENCY", "")
    if not raw.strip():
        return 1
    try:
        count = int(raw)
    except ValueError as exc:
        raise StartupError(f"WEB_CONCURRENCY={raw!r}: not a number of workers") from exc
    if count < 1:
        raise StartupError(f"WEB_CONCURRENCY={raw!r}: at least one worker is needed")
    return count


# ---------------------------------------------------------------------- the supervisor
class _Worker:
    """The supervisor's record of one worker process."""

    __slots__ = ("pid", "fd", "inbox", "started_at", "seen_at", "booted", "ready_at", "grace_s",
                 "draining", "kill_at", "killed", "replaces", "replacement", "recycle_after",
                 "lifetime_s", "reason")

    def __init__(self, pid: int, fd: int, now: float, replaces: _Worker | None,
                 lifetime_s: float | None) -> None:
        self.pid = pid
        self.fd = fd
        self.inbox = b""
        self.started_at = now
        self.seen_at = now
        self.booted = False
        self.ready_at: float | None = None
        self.grace_s = _DEFAULT_GRACE_S
        self.draining = False
        self.kill_at = 0.0
        self.killed = False
        #: The worker this one will replace once ready (None: it fills a slot of its own).
        self.replaces = replaces
        #: The worker starting to replace this one.
        self.replacement: _Worker | None = None
        self.recycle_after = 0.0
        self.lifetime_s = lifetime_s
        #: Why it will have exited, for the restart counter (``cyserve.metrics.RESTART_REASONS``;
        #: None when it is not replaced: a stop, one worker fewer).
        self.reason: str | None = "died"

    @property
    def serving_slot(self) -> bool:
        """Counts towards the worker count: not draining, not a replacement still starting."""
        return not self.draining and self.replaces is None


class Supervisor:
    """Runs ``workers`` worker processes on ``listener`` until stopped (module docstring)."""

    def __init__(self, config: RunConfig, app: Any, listener: Listener,
                 ssl: ssl_module.SSLContext | None, workers: int) -> None:
        self._config = config
        self._app = app
        self._listener = listener
        self._ssl = ssl
        self._target = workers
        self._workers: dict[int, _Worker] = {}
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._forced = False
        self._exit_code = 0
        self._interrupts = 0
        self._crashes = 0
        self._respawn_at = 0.0
        self._roll: collections.deque[_Worker] = collections.deque()
        self._rolling: _Worker | None = None
        self._roll_reason = "hup"
        self._blocked = False  # --reload: a worker failed to start; wait for the next change
        self._watcher_pid: int | None = None
        self._watcher_fd: int | None = None
        self._watcher_inbox = b""
        self._watcher_ready_by: float | None = None  # until its first (empty) batch
        self._metrics_exit: Callable[[int, str | None], None] | None = None
        self._metrics_teardown: Callable[[], None] | None = None

    # ------------------------------------------------------------------ main loop
    def run(self) -> int:
        """Supervise until stopped; the exit status."""
        for fd in (self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        previous = {sig: signal.signal(sig, _note_signal) for sig in _SUPERVISOR_SIGNALS}
        previous_wakeup = signal.set_wakeup_fd(self._wake_w)
        try:
            self._setup_metrics()
            if self._config.reload:
                self._start_watcher()
            say(logging.INFO, f"supervisor [{os.getpid()}] starting {self._target} worker(s)")
            while not (self._stopping and not self._workers) and not self._forced:
                self._reconcile(time.monotonic())
                for key, _ in self._selector.select(self._timeout()):
                    if key.data is None:
                        self._on_signals()
                    elif key.data == "watcher":
                        self._on_watcher()
                    else:
                        self._on_message(key.data)
                self._reap()
                self._check_deadlines(time.monotonic())
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_all()
            self._stop_watcher()
            if self._metrics_teardown is not None:
                self._metrics_teardown()
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)
        if self._forced:
            return EXIT_FORCED
        say(logging.INFO, f"supervisor [{os.getpid()}] stopped")
        return self._exit_code

    def _timeout(self) -> float:
        if self._respawn_at > time.monotonic() and not self._stopping:
            return max(0.0, min(_TICK_S, self._respawn_at - time.monotonic()))
        return _TICK_S

    # ------------------------------------------------------------------ signals
    def _on_signals(self) -> None:
        try:
            received = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        for signum in received:
            if signum == signal.SIGCHLD:
                continue  # reaped after every select
            if signum == signal.SIGTERM:
                self._stop("SIGTERM")
            elif signum == signal.SIGINT:
                self._interrupts += 1
                if self._interrupts > 1:
                    self._force()
                    return
                self._stop("SIGINT")
            elif signum == signal.SIGHUP:
                if not self._stopping:
                    say(logging.INFO, "SIGHUP: rolling restart")
                    self._begin_roll("hup")
            elif signum == signal.SIGTTIN:
                if not self._stopping:
                    self._target += 1
                    say(logging.INFO, f"SIGTTIN: {self._target} worker(s)")
            elif signum == signal.SIGTTOU:
                if not self._stopping and self._target > 1:
                    self._target -= 1
                    say(logging.INFO, f"SIGTTOU: {self._target} worker(s)")
                    self._shed()

    def _stop(self, why: str) -> None:
        if self._stopping:
            return
        say(logging.INFO, f"{why}: stopping the workers gracefully")
        self._stopping = True
        self._roll.clear()
        self._stop_watcher()
        for worker in list(self._workers.values()):
            self._retire(worker, None)

    def _force(self) -> None:
        say(logging.WARNING, "second SIGINT: killing the workers now")
        self._forced = True
        self._kill_all()

    def _shed(self) -> None:
        """SIGTTOU: drain the newest serving worker (one with no replacement under way)."""
        candidates = [w for w in self._workers.values()
                      if w.serving_slot and w.replacement is None]
        if candidates:
            self._retire(max(candidates, key=lambda w: w.started_at), None)

    # ------------------------------------------------------------------ workers
    def _spawn(self, replaces: _Worker | None = None) -> _Worker | None:
        """Fork a worker; None when fork itself failed (retried with the crash backoff)."""
        read_fd, write_fd = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would print the parent's buffered output again
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
        try:
            pid = os.fork()
        except OSError as exc:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(read_fd)
            os.close(write_fd)
            say(logging.ERROR, f"could not start a worker: {exc}")
            self._after_crash(None, time.monotonic())
            return None
        if pid == 0:
            code = 1
            try:
                os.close(read_fd)
                self._become_worker(mask)
                code = worker_main(self._config, self._app, self._listener, self._ssl,
                                    write_fd, os.getppid())
            except BaseException as exc:  # noqa: BLE001 - a forked child must never return
                say(logging.ERROR, f"worker [{os.getpid()}] failed: {exc!r}")
            finally:
                exit_now(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        now = time.monotonic()
        lifetime = self._config.workers_lifetime
        if lifetime is not None:
            # Spread the recycles of workers started together, as limit_max_requests' jitter.
            lifetime *= 1.0 + random.uniform(0.0, 0.1)
        worker = _Worker(pid, read_fd, now, replaces, lifetime)
        if replaces is not None:
            replaces.replacement = worker
        self._workers[pid] = worker
        self._selector.register(read_fd, selectors.EVENT_READ, worker)
        say(logging.INFO, f"started worker [{pid}]" +
             (f" to replace [{replaces.pid}]" if replaces is not None else ""))
        return worker

    def _become_worker(self, mask: set[int | signal.Signals]) -> None:
        """In the forked child: drop the supervisor's signal handling and descriptors."""
        signal.set_wakeup_fd(-1)
        for sig in _SUPERVISOR_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        # Meant for the supervisor (a terminal sends them to the whole process group); the
        # default action would stop (TTIN/TTOU) or end (HUP) a worker mid-request.
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        self._selector.close()
        private = [self._wake_r, self._wake_w] + [w.fd for w in self._workers.values()]
        if self._watcher_fd is not None:
            private.append(self._watcher_fd)
        for fd in private:
            try:
                os.close(fd)
            except OSError:
                pass

    def _replace(self, old: _Worker, reason: str) -> _Worker | None:
        """Start the worker that takes ``old``'s place once it is ready."""
        new = self._spawn(replaces=old)
        if new is not None:
            old.reason = reason
        return new

    def _retire(self, worker: _Worker, reason: str | None) -> None:
        """Tell a worker to drain (SIGTERM); SIGKILL if it is still there past its budget."""
        if worker.draining:
            return
        worker.reason = reason
        worker.draining = True
        worker.kill_at = time.monotonic() + worker.grace_s + _KILL_MARGIN_S
        if worker.replaces is not None:  # a replacement called off: its old worker stays
            worker.replaces.replacement = None
            worker.replaces = None
        if worker.replacement is not None:
            worker.replacement.replaces = None  # it now fills a slot of its own
            worker.replacement = None
        _signal(worker.pid, signal.SIGTERM)

    def _reconcile(self, now: float) -> None:
        """Start workers until ``target`` slots are filled (after any respawn delay; under
        ``--reload``, once the watcher watches)."""
        if self._stopping or self._blocked or now < self._respawn_at:
            return
        if self._watcher_ready_by is not None:
            if now < self._watcher_ready_by:
                return
            say(logging.WARNING, "the reload watcher is not watching yet; starting anyway")
            self._watcher_ready_by = None
        slots = sum(1 for w in self._workers.values() if w.serving_slot)
        for _ in range(self._target - slots):
            if self._spawn() is None:
                return

    def _on_message(self, worker: _Worker) -> None:
        try:
            data = os.read(worker.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker closed its end: it is exiting; _reap collects it
            self._selector.unregister(worker.fd)
            os.close(worker.fd)
            worker.fd = -1
            return
        worker.seen_at = time.monotonic()
        *lines, worker.inbox = (worker.inbox + data).split(b"\n")
        for line in lines:
            kind, _, rest = line.decode("ascii", "replace").partition(" ")
            if kind == "boot":
                worker.booted = True
            elif kind == "ready":
                try:
                    grace_s = float(rest)
                except ValueError:
                    grace_s = _DEFAULT_GRACE_S
                self._on_ready(worker, grace_s)
            elif kind == "recycle":
                reason, _, why = rest.partition(" ")
                self._on_recycle(worker, reason, why)

    def _on_ready(self, worker: _Worker, grace_s: float) -> None:
        now = time.monotonic()
        worker.ready_at = now
        worker.booted = True
        worker.grace_s = grace_s
        if worker.draining:
            return
        self._blocked = False
        old = worker.replaces
        if old is not None:
            worker.replaces = None
            old.replacement = None
            say(logging.INFO, f"worker [{worker.pid}] ready; draining [{old.pid}]")
            self._retire(old, old.reason)
        if worker is self._rolling:
            self._rolling = None
            self._advance_roll()

    def _on_recycle(self, worker: _Worker, reason: str, why: str) -> None:
        now = time.monotonic()
        if (self._stopping or worker.draining or worker.replacement is not None
                or worker.replaces is not None or now < worker.recycle_after):
            return
        say(logging.INFO, f"recycling worker [{worker.pid}]: {why}")
        self._replace(worker, reason)

    def _reap(self) -> None:
        for worker in list(self._workers.values()):
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid:
                self._on_exit(worker, os.waitstatus_to_exitcode(status))
        self._reap_watcher()

    def _on_exit(self, worker: _Worker, code: int) -> None:
        now = time.monotonic()
        del self._workers[worker.pid]
        if worker.fd >= 0:
            self._selector.unregister(worker.fd)
            os.close(worker.fd)
            worker.fd = -1
        how = f"exit status {code}" if code >= 0 else f"signal {signal.Signals(-code).name}"
        if self._metrics_exit is not None:
            self._metrics_exit(worker.pid, self._restart_reason(worker, code))
        if worker is self._rolling:
            self._rolling = None
            if not worker.draining:
                self._roll.clear()  # the new code does not start: keep the old workers
        if worker.draining or self._stopping:
            say(logging.INFO, f"worker [{worker.pid}] stopped ({how})")
            return
        old = worker.replaces
        if old is not None:  # a replacement that died before it was ready
            old.replacement = None
            old.reason = "died"
            old.recycle_after = now + _RECYCLE_RETRY_S
            say(logging.ERROR, f"new worker [{worker.pid}] did not start ({how}); "
                                f"worker [{old.pid}] keeps serving")
            return
        if worker.replacement is not None:  # its replacement now fills the slot
            worker.replacement.replaces = None
            worker.replacement = None
        if code == EXIT_STARTUP_FAILURE and worker.ready_at is None:
            if self._config.reload:
                say(logging.ERROR, f"worker [{worker.pid}] failed to start; waiting for a "
                                    "change to reload")
                self._blocked = True
                return
            say(logging.ERROR, f"worker [{worker.pid}] failed to start; stopping")
            self._exit_code = EXIT_STARTUP_FAILURE
            self._stop("startup failure")
            return
        if worker.killed:
            say(logging.WARNING, f"worker [{worker.pid}] killed ({how}); replacing it")
        else:
            say(logging.WARNING, f"worker [{worker.pid}] died ({how}); replacing it")
        self._after_crash(worker, now)

    def _restart_reason(self, worker: _Worker, code: int) -> str | None:
        """What ``cyserve.metrics`` counts this exit as: a restart reason, or None when the
        worker is not replaced (a stop, one worker fewer, a start that failed)."""
        if self._stopping:
            return None
        if worker.draining:
            return worker.reason
        if worker.killed:
            return "unhealthy"
        if worker.ready_at is None and (code == EXIT_STARTUP_FAILURE or worker.replaces is not None):
            return None
        return "died"

    def _after_crash(self, worker: _Worker | None, now: float) -> None:
        """The next respawn's delay: none after a worker that served a while; doubling after
        repeated deaths, up to ``_BACKOFF_MAX_S``."""
        if worker is not None and worker.ready_at is not None and now - worker.ready_at >= _STABLE_S:
            self._crashes = 0
        delay = 0.0 if self._crashes == 0 else min(_BACKOFF_MAX_S, 0.1 * 2 ** (self._crashes - 1))
        self._crashes += 1
        self._respawn_at = max(self._respawn_at, now + delay)

    def _check_deadlines(self, now: float) -> None:
        silence_s = self._config.timeout_worker_healthcheck
        for worker in list(self._workers.values()):
            if worker.killed:
                continue
            if worker.draining:
                if now >= worker.kill_at:
                    say(logging.WARNING, f"worker [{worker.pid}] still running "
                                          f"{worker.grace_s + _KILL_MARGIN_S:.1f}s after SIGTERM: "
                                          "killing it")
                    worker.killed = True
                    _signal(worker.pid, signal.SIGKILL)
                continue
            allowed = silence_s if worker.booted else _STARTUP_S
            if now - worker.seen_at > allowed:
                say(logging.WARNING, f"worker [{worker.pid}] silent for {now - worker.seen_at:.1f}s "
                                      f"(health check {allowed:.1f}s): killing it")
                worker.killed = True
                _signal(worker.pid, signal.SIGKILL)
                continue
            if (worker.lifetime_s is not None and worker.ready_at is not None
                    and worker.replacement is None and worker.replaces is None
                    and now - worker.ready_at >= worker.lifetime_s
                    and now >= worker.recycle_after and not self._stopping):
                self._on_recycle(worker, "lifetime", f"lived {now - worker.ready_at:.0f}s")

    def _kill_all(self) -> None:
        """SIGKILL and reap every worker still running (a forced stop, or leaving run())."""
        for worker in list(self._workers.values()):
            _signal(worker.pid, signal.SIGKILL)
        for worker in list(self._workers.values()):
            try:
                os.waitpid(worker.pid, 0)
            except ChildProcessError:
                pass
            if worker.fd >= 0:
                self._selector.unregister(worker.fd)
                os.close(worker.fd)
                worker.fd = -1
            del self._workers[worker.pid]
            if self._metrics_exit is not None:
                self._metrics_exit(worker.pid, None)

    # ------------------------------------------------------------------ rolling restarts
    def _begin_roll(self, reason: str) -> None:
        """Replace every serving worker, one at a time, each drained only once its replacement
        is ready.  A roll under way starts over (a reload: its replacement may hold old code)."""
        starting = self._rolling
        if starting is not None and starting.ready_at is None:
            self._rolling = None
            self._retire(starting, None)
        self._roll = collections.deque(w for w in self._workers.values() if w.serving_slot)
        self._roll_reason = reason
        self._advance_roll()

    def _advance_roll(self) -> None:
        while self._rolling is None and self._roll:
            old = self._roll.popleft()
            if old.pid in self._workers and old.serving_slot and old.replacement is None:
                self._rolling = self._replace(old, self._roll_reason)

    # ------------------------------------------------------------------ --reload
    def _start_watcher(self) -> None:
        from cyserve.server.reload import watch
        read_fd, write_fd = os.pipe()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS)
        pid = os.fork()
        if pid == 0:
            try:
                os.close(read_fd)
                self._become_worker(mask)
                # Ctrl-C reaches the whole process group: the supervisor ends the watcher.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                parent = os.getppid()
                watch(self._config, write_fd, lambda: os.getppid() == parent)
            except BaseException as exc:  # noqa: BLE001 - a forked child must never return
                say(logging.ERROR, f"reload watcher failed: {exc!r}")
            finally:
                exit_now(0)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._watcher_pid, self._watcher_fd = pid, read_fd
        self._selector.register(read_fd, selectors.EVENT_READ, "watcher")
        self._watcher_ready_by = time.monotonic() + _WATCHER_START_S

    def _on_watcher(self) -> None:
        from cyserve.server.reload import parse_batch
        assert self._watcher_fd is not None
        try:
            data = os.read(self._watcher_fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the watcher is gone (its exit is logged when reaped)
            self._selector.unregister(self._watcher_fd)
            os.close(self._watcher_fd)
            self._watcher_fd = None
            self._watcher_ready_by = None
            return
        *lines, self._watcher_inbox = (self._watcher_inbox + data).split(b"\n")
        if lines and self._watcher_ready_by is not None:
            self._watcher_ready_by = None
            dirs = ", ".join(self._config.reload_dirs) or os.getcwd()
            say(logging.INFO, f"watching {dirs} for changes")
        changed = [path for line in lines if line for path in parse_batch(line)]
        if not changed or self._stopping:
            return
        shown = ", ".join(_shown_path(p) for p in changed[:3])
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        say(logging.WARNING, f"changes in {shown}{more}: reloading")
        self._blocked = False
        self._begin_roll("reload")

    def _stop_watcher(self) -> None:
        if self._watcher_pid is not None:
            _signal(self._watcher_pid, signal.SIGTERM)
            self._reap_watcher(wait=True)
        if self._watcher_fd is not None:
            self._selector.unregister(self._watcher_fd)
            os.close(self._watcher_fd)
            self._watcher_fd = None

    def _reap_watcher(self, wait: bool = False) -> None:
        if self._watcher_pid is None:
            return
        try:
            pid, _ = os.waitpid(self._watcher_pid, 0 if wait else os.WNOHANG)
        except ChildProcessError:
            pid = self._watcher_pid
        if pid:
            self._watcher_pid = None
            if not self._stopping and not wait:
                say(logging.ERROR, "the reload watcher exited; changes are no longer watched")

    # ------------------------------------------------------------------ metrics
    def _setup_metrics(self) -> None:
        """Prometheus' multiprocess mode spans the workers: its directory is made before the
        first fork, and each worker that exits is marked dead (``cyserve.metrics``)."""
        if not self._config.metrics:
            return
        from cyserve import metrics
        metrics.setup_multiprocess(None)
        self._metrics_exit = metrics.worker_exited
        self._metrics_teardown = metrics.teardown_multiprocess


# ---------------------------------------------------------------------- shared helpers
def _note_signal(signum: int, frame: object) -> None:
    """The supervisor's handler: nothing; ``set_wakeup_fd`` has written the signal number to
    the pipe its select loop reads, where it is handled."""


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # it exited already; waitpid will tell


def _shown_path(path: str) -> str:
    """A changed file as the user knows it: relative to the current directory when under it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _recycles(config: RunConfig) -> bool:
    """Recycling means a replacement process, hence a supervisor even for one worker."""
    return (config.limit_max_requests is not None or config.workers_max_rss is not None
            or config.workers_lifetime is not None)


def _announce(listener: Listener, config: RunConfig, ssl: ssl_module.SSLContext | None) -> None:
    scheme = "https" if ssl is not None or config.ssl_certfile else "http"
    say(logging.INFO, f"listening on {listener.url(scheme)}", always=True)


