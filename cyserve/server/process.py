"""One server process: serve an app on a fresh event loop until a stop signal, then drain.

``serve_here`` is the whole server in one process; ``worker_main`` is the same life inside a
worker forked by the supervisor (``cyserve.server.workers``), plus its end of the pipe to it
(``_ParentLink``: ``boot``, ``ready``, heartbeats from the event loop, recycle requests).

Stop signals, on the event loop: SIGTERM or a first SIGINT drain (``Server.shutdown``: stop
accepting, finish in-flight requests, end streams, then cancel what is left after the grace
period); a second SIGINT drops every connection and ends the process at once, with status
``EXIT_FORCED``.  A single process reloads its TLS certificate on SIGHUP; a worker ignores SIGHUP
(its supervisor restarts it).  Every way startup can fail becomes a ``StartupError``: one line,
status ``EXIT_STARTUP_FAILURE``.  Once the app has started, what it built is frozen out of the
garbage collector's full collections (``freeze_startup_heap``; ``--no-gc-freeze`` keeps it in).
"""
from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import os
import random
import signal
import ssl as ssl_module
import sys
import time
from typing import Any, Callable, Coroutine, NoReturn

from cyserve.config import RunConfig
from cyserve.errors import StartupError
from cyserve.server.listen import Listener, bind
from cyserve.server.serve import Server, serve

__all__ = ["serve_here", "worker_main", "in_worker", "new_event_loop", "loop_factory",
           "report_startup_failure", "say", "exit_now", "EXIT_STARTUP_FAILURE", "EXIT_FORCED"]

EXIT_STARTUP_FAILURE = 3
EXIT_FORCED = 128 + signal.SIGINT  # as a shell reports a process ended by Ctrl-C

_log = logging.getLogger("cyserve.error")

_RECYCLE_RETRY_S = 10.0  # a worker repeats its recycle request this often until replaced
_RSS_EVERY_S = 1.0       # workers_max_rss: how often a worker samples its RSS


# ---------------------------------------------------------------------- the event loop
def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when it is installed, else stdlib asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """``--loop``: ``auto`` (uvloop when installed), ``uvloop``, ``asyncio``, ``none`` (the
    policy's loop), or ``module:attr`` naming a loop factory (uvicorn's custom loop)."""
    if name == "auto":
        return new_event_loop
    if name == "uvloop":
        try:
            import uvloop
        except ImportError as exc:
            raise StartupError("--loop uvloop: uvloop is not installed") from exc
        return uvloop.new_event_loop
    if name in ("asyncio", "none"):
        return asyncio.new_event_loop
    if ":" in name:
        from cyserve.server.target import import_from_string
        factory = import_from_string(name)
        if not callable(factory):
            raise StartupError(f"--loop {name}: not a callable loop factory")
        return factory  # type: ignore[no-any-return]
    raise StartupError(f"--loop {name}: expected auto, uvloop, asyncio, none or module:factory")


_in_worker = False  # set in a process the supervisor forked (worker_main)


def in_worker() -> bool:
    """True in a worker process of the ``cyserve`` supervisor: its siblings serve the same
    ports (an App's own extra listener, such as a push port, needs ``SO_REUSEPORT`` there)."""
    return _in_worker


# ---------------------------------------------------------------------- one process
def report_startup_failure(exc: StartupError) -> None:
    """One line naming the cause: through ``cyserve.error`` when logging is configured, else
    ``cyserve: <message>`` on stderr.  Never a traceback."""
    say(logging.ERROR, str(exc), always=True)


def serve_here(config: RunConfig, app: Any, ssl: ssl_module.SSLContext | None,
               reuse_port: bool, raise_startup: bool = False) -> int:
    """Load, bind and serve in this process; the exit status."""
    try:
        served = _prepare(config, app, ssl)
        factory = loop_factory(config.loop)
        listener = bind(config, reuse_port=reuse_port)
    except StartupError as exc:
        if raise_startup:
            raise
        report_startup_failure(exc)
        return EXIT_STARTUP_FAILURE
    try:
        scheme = "https" if served.tls is not None else "http"
        main = _serve_until_stopped(served, listener, config, None,
                                    lambda: say(logging.INFO, f"listening on "
                                                f"{listener.url(scheme)}", always=True))
        code = _run_on_loop(factory, main, raise_startup)
    finally:
        listener.close()
    if code == EXIT_FORCED and not raise_startup:
        exit_now(code)
    return code


def _run_on_loop(factory: Callable[[], asyncio.AbstractEventLoop],
                 main: Coroutine[Any, Any, int], raise_startup: bool = False) -> int:
    """Run ``main`` on a fresh loop; its status.  After a forced stop the loop is left as it
    is: closing it would wait for cancelled handlers and executor threads, and the caller
    exits the process at once."""
    runner = asyncio.Runner(loop_factory=factory)
    forced = False
    try:
        code = runner.run(main)
        forced = code == EXIT_FORCED
        return code
    except StartupError as exc:
        if raise_startup:
            raise
        report_startup_failure(exc)
        return EXIT_STARTUP_FAILURE
    finally:
        if not forced:
            runner.close()


class _Served:
    """The app ready to serve: the config applied (``cyserve.server.wiring``), its TLS context,
    what to attach to the listening server, how to reload the certificate."""

    __slots__ = ("app", "tls", "configure", "attach", "reload_tls")

    def __init__(self, app: Any, tls: ssl_module.SSLContext | None,
                 configure: Callable[[Any], Any] | None,
                 attach: Callable[[Server], Any] | None,
                 reload_tls: Callable[[], Any] | None) -> None:
        self.app = app
        self.tls = tls
        self.configure = configure   # on the core's ServerState, before anything listens
        self.attach = attach
        self.reload_tls = reload_tls


def _prepare(config: RunConfig, app: Any, ssl: ssl_module.SSLContext | None) -> _Served:
    """The app to serve (imported when ``app`` is None) with the config applied."""
    from cyserve.server.target import describe_failure, load
    from cyserve.server.wiring import prepare
    if app is None:
        app = load(config)
    try:
        prepared = prepare(app, config)
    except StartupError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback or a respawn loop
        raise StartupError(f"could not apply the configuration: {describe_failure(exc)}") from exc
    tls = prepared.ssl
    if ssl is not None:
        if tls is not None:
            raise StartupError("TLS given twice: both ssl= and the --ssl-* options")
        tls = ssl
    # A single process reloads its certificate on SIGHUP (``--ssl-*``); a context given as
    # ``ssl=`` is the caller's to reload.
    return _Served(prepared.app, tls, prepared.configure, prepared.attach, prepared.reload_tls)


class _StopRequest:
    """The process's stop signals, on its event loop: SIGTERM or a first SIGINT ask for a drain
    (``requested``); a second SIGINT forces the stop (``forced``).  SIGHUP reloads the TLS
    certificate when a reload function was given, else says how to restart."""

    __slots__ = ("requested", "forced", "_interrupts", "_loop", "_reload_tls", "_supervised")

    def __init__(self, reload_tls: Callable[[], Any] | None, supervised: bool) -> None:
        self.requested = asyncio.Event()
        self.forced = asyncio.Event()
        self._interrupts = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reload_tls = reload_tls
        self._supervised = supervised

    def install(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT)
        if not self._supervised:  # a worker ignores SIGHUP: its supervisor restarts it
            loop.add_signal_handler(signal.SIGHUP, self._on_hangup)

    def uninstall(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return
        for sig in (signal.SIGTERM, signal.SIGINT) + (() if self._supervised else (signal.SIGHUP,)):
            loop.remove_signal_handler(sig)
        if self._supervised:
            # The worker is exiting: a late Ctrl-C (sent to the whole process group) must not
            # raise KeyboardInterrupt into its teardown.
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def stop(self) -> None:
        self.requested.set()

    def _on_signal(self, sig: int) -> None:
        if sig == signal.SIGINT:
            self._interrupts += 1
            if self._interrupts > 1:
                self.forced.set()
        self.requested.set()

    def _on_hangup(self) -> None:
        if self._reload_tls is not None:
            say(logging.INFO, "SIGHUP: reloading the TLS certificate")
            self._reload_tls()  # logs the outcome; a failure keeps the current certificate
        else:
            say(logging.WARNING, "SIGHUP: one process cannot restart itself; run with "
                                  "--workers (a supervisor) for rolling restarts")


async def _serve_until_stopped(served: _Served, listener: Listener, config: RunConfig,
                               link: _ParentLink | None,
                               on_ready: Callable[[], None] | None = None) -> int:
    """Serve on the running loop until a stop signal (or the supervisor's death); drain; the
    exit status.  Used by a single process (``link`` None) and by each worker."""
    from cyserve.server.target import describe_failure

    stop = _StopRequest(served.reload_tls, supervised=link is not None)
    stop.install()
    try:
        if link is not None:
            link.start(stop)
        configure = served.configure
        if config.gc_freeze:
            configure = _freezing_after(configure)
        starting = asyncio.ensure_future(serve(served.app, sock=listener.sock, ssl=served.tls,
                                               configure=configure))
        if not await _unless_forced(starting, stop):
            return EXIT_FORCED  # a startup hook that hangs: two Ctrl-C still end it
        try:
            server = starting.result()
        except StartupError:
            raise
        except Exception as exc:  # noqa: BLE001 - the app's startup hook, or listening, failed
            raise StartupError(f"startup failed: {describe_failure(exc)}") from exc
        if served.attach is not None:
            try:
                served.attach(server)  # observers, health, metrics: they need the server
            except Exception as exc:  # noqa: BLE001
                await server.shutdown(0)
                raise StartupError(f"startup failed: {describe_failure(exc)}") from exc
        grace = _grace_s(served.app, config)
        if link is not None:
            link.ready(server, grace)
        if on_ready is not None:
            on_ready()
        await stop.requested.wait()
        return await _drain(server, config.timeout_graceful_shutdown, stop)
    finally:
        if link is not None:
            link.close()
        stop.uninstall()


def _freezing_after(configure: Callable[[Any], Any] | None) -> Callable[[Any], Any]:
    """``configure`` (``serve()``'s hook between the app's startup and listening), then
    ``freeze_startup_heap``: no request is served before the freeze, so none of its objects is
    frozen, and every one finds the app's state already out of the full walks."""
    def configure_then_freeze(state: Any) -> None:
        if configure is not None:
            configure(state)
        freeze_startup_heap()
    return configure_then_freeze


def freeze_startup_heap() -> None:
    """Collect the garbage startup left, then move every object still alive (modules, the app,
    its routes, models and pools: state that lives as long as the process) to the collector's
    permanent generation (``gc.freeze``), once, just before the server listens.

    A full collection walks every tracked object, and an app that keeps requests' objects alive
    across an await (a thread hand-off, a database call) promotes enough of them to trigger one
    about every thousand requests: with FastAPI's ~60,000 startup objects each walk took tens of
    milliseconds, over a tenth of the process's CPU (bench/e2e/asgi/README.md).  Frozen objects
    are still freed when their reference count drops to zero; only cyclic garbage made of them
    is never collected, hence ``--no-gc-freeze`` for an app that replaces large cyclic startup
    structures while it runs.  Frozen pages are also no longer written by the collector, which
    keeps them shared between forked workers (the use the gc module's documentation gives)."""
    gc.collect()
    gc.freeze()


async def _drain(server: Server, timeout_s: float | None, stop: _StopRequest) -> int:
    """``server.shutdown`` (stop accepting, finish in-flight work, end streams, then cancel); a
    second SIGINT during it drops every connection at once."""
    # Server.shutdown stops accepting and lets just-accepted connections read what their client
    # already sent before it closes idle ones (a request on such a connection is answered).
    draining = asyncio.ensure_future(server.shutdown(timeout_s))
    forced = asyncio.ensure_future(stop.forced.wait())
    try:
        await asyncio.wait({draining, forced}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if draining.done():
        draining.result()
        return 0
    # A second SIGINT: drop every connection now; the shutdown in progress then goes straight
    # on to the app's shutdown, so the lifespan still exits.
    server.abort()
    await draining
    return EXIT_FORCED


async def _unless_forced(task: asyncio.Future[Any], stop: _StopRequest,
                         before_cancel: Callable[[], Any] | None = None) -> bool:
    """Wait for ``task``; True when it finished, False when a forced stop came first (then
    ``before_cancel`` runs, and the task is cancelled and awaited)."""
    forced = asyncio.ensure_future(stop.forced.wait())
    try:
        await asyncio.wait({task, forced}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        forced.cancel()
    if task.done():
        return True
    if before_cancel is not None:
        before_cancel()
    task.cancel()
    await asyncio.wait({task})
    return False


def _grace_s(app: Any, config: RunConfig) -> float:
    if config.timeout_graceful_shutdown is not None:
        return float(config.timeout_graceful_shutdown)
    return float(app.config.timeouts.shutdown_s)


# ---------------------------------------------------------------------- a worker
def worker_main(config: RunConfig, app: Any, listener: Listener,
                 ssl: ssl_module.SSLContext | None, fd: int, parent: int) -> int:
    """A forked worker's life; its exit status."""
    global _in_worker
    _in_worker = True
    if config.reload:
        # Import the edited files, not bytecode cached from them: a .pyc is trusted when the
        # source's mtime (whole seconds) and size match, which an edit within the same second
        # that keeps the size defeats.  And forget the parent's directory listings.
        sys.dont_write_bytecode = True
        importlib.invalidate_caches()
    try:
        served = _prepare(config, app, ssl)
        factory = loop_factory(config.loop)
    except StartupError as exc:
        report_startup_failure(exc)
        return EXIT_STARTUP_FAILURE
    link = _ParentLink(fd, parent, config)
    return _run_on_loop(factory, _serve_until_stopped(served, listener, config, link))


class _ParentLink:
    """A worker's end of its pipe to the supervisor: ``boot``, ``ready``, heartbeats from the
    event loop (a blocked loop stops them: that is the point), and recycle requests.  The
    supervisor's death (the pipe breaks, or this process is re-parented) drains the worker."""

    __slots__ = ("_fd", "_parent", "_config", "_interval_s", "_handle", "_stop", "_server",
                 "_request_limit", "_rss_limit", "_rss_at", "_asked_at", "_page_bytes")

    def __init__(self, fd: int, parent: int, config: RunConfig) -> None:
        self._fd = fd
        self._parent = parent
        self._config = config
        self._interval_s = min(1.0, max(0.05, config.timeout_worker_healthcheck / 4))
        self._handle: asyncio.TimerHandle | None = None
        self._stop: _StopRequest | None = None
        self._server: Server | None = None
        limit = config.limit_max_requests
        # Jitter spreads the recycles of workers started together (gunicorn's and uvicorn's
        # reason): without it they all restart at once.
        self._request_limit = (None if limit is None else
                               limit + random.randint(0, max(0, config.limit_max_requests_jitter)))
        mib = config.workers_max_rss
        self._rss_limit = None if mib is None else mib * 1024 * 1024
        self._rss_at = 0.0
        self._asked_at: float | None = None
        self._page_bytes = os.sysconf("SC_PAGE_SIZE")
        os.set_blocking(fd, False)

    def start(self, stop: _StopRequest) -> None:
        self._stop = stop
        self._send("boot")
        self._handle = asyncio.get_running_loop().call_later(self._interval_s, self._tick)

    def ready(self, server: Server, grace_s: float) -> None:
        self._server = server
        self._send(f"ready {grace_s:.3f}")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        if os.getppid() != self._parent:
            self._parent_gone()
            return
        self._send("beat")
        reason = self._recycle_reason()
        if reason is not None:
            now = time.monotonic()
            if self._asked_at is None or now - self._asked_at >= _RECYCLE_RETRY_S:
                self._asked_at = now
                self._send(f"recycle {reason}")
        if self._stop is not None and not self._stop.requested.is_set():
            self._handle = asyncio.get_running_loop().call_later(self._interval_s, self._tick)

    def _recycle_reason(self) -> str | None:
        """``<kind> <why>`` when this worker should be replaced (kind: the restart reason
        ``cyserve.metrics`` counts), else None."""
        if self._server is None:
            return None
        if self._request_limit is not None:
            served = self._server.state.requests_total  # requests started since it listens
            if served >= self._request_limit:
                return f"max_requests served {served} requests (limit {self._request_limit})"
        if self._rss_limit is not None:
            now = time.monotonic()
            if now - self._rss_at >= _RSS_EVERY_S:
                self._rss_at = now
                rss = self._rss_bytes()
                if rss > self._rss_limit:
                    return (f"max_rss RSS {rss // (1024 * 1024)} MiB above "
                            f"{self._config.workers_max_rss} MiB")
        return None

    def _rss_bytes(self) -> int:
        with open("/proc/self/statm", "rb") as statm:  # size resident shared ... (pages)
            return int(statm.read().split()[1]) * self._page_bytes

    def _send(self, line: str) -> None:
        try:
            os.write(self._fd, line.encode() + b"\n")
        except BlockingIOError:
            pass  # the supervisor is not reading (stopped?): the next beat will do
        except OSError:
            self._parent_gone()

    def _parent_gone(self) -> None:
        """Nobody supervises this worker any more: drain and exit rather than serve orphaned."""
        if self._stop is not None and not self._stop.requested.is_set():
            say(logging.WARNING, f"worker [{os.getpid()}]: supervisor gone; stopping")
            self._stop.stop()


# ---------------------------------------------------------------------- output
def say(level: int, message: str, always: bool = False) -> None:
    """Through ``cyserve.error`` once logging is configured (at the level it shows); without
    logging, warnings and errors as ``cyserve: ...`` on stderr.  An ``always`` line (where the
    server listens, why it could not start) is printed when the log would not show it: it
    must be seen once, even under ``--log-level critical``."""
    configured = _log.hasHandlers()
    if configured and _log.isEnabledFor(level):
        _log.log(level, "%s", message)
    elif always or (not configured and level >= logging.WARNING):
        if level >= logging.WARNING:
            print(f"cyserve: {message}", file=sys.stderr, flush=True)
        else:
            print(f"cyserve {message}", flush=True)


def exit_now(code: int) -> NoReturn:
    """Leave the process without unwinding: a forked child must never return into its
    parent's stack, and a forced stop must not wait for executor threads at exit."""
    # cyserve.access too: its handler batches a loop turn's lines (cyserve.logs).
    for handler in (logging.getLogger().handlers + logging.getLogger("cyserve").handlers
                    + logging.getLogger("cyserve.access").handlers):
        try:
            handler.flush()
        except Exception:  # noqa: BLE001 - a broken handler must not keep the process alive
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)
