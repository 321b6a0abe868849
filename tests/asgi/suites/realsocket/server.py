"""An ASGI app served on 127.0.0.1 by a real server running in a background thread's loop.

The suites' tests are synchronous (Starlette's) or run their own loop (uvicorn's), so the server
gets a thread and a loop of its own, as it would in its own process, and the tests reach it only
through sockets.  ``CYSERVE_SUITE_SERVER`` picks the server: ``cyserve`` (the adapter under test,
the default) or ``uvicorn`` (the reference: a test that fails the same way under uvicorn fails
because of the harness, not the adapter; docs/asgi-differences.md says how the list was reviewed).
``CYSERVE_SUITE_LOOP`` picks the loop: ``uvloop`` (the default) or ``asyncio``.
"""
from __future__ import annotations

import ast
import asyncio
import functools
import inspect
import os
import socket
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from concurrent.futures import Future
from typing import Any

__all__ = ["AppUnderTest", "ServedApp", "server_name", "loop_name"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Starting and stopping are local and quick; these bound a server that hangs rather than pace it.
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 15.0


def _serialise_ast_parse() -> None:
    """CPython 3.11 keeps ``ast.parse``'s recursion-depth check in per-interpreter state, so two
    threads parsing at once can fail with "AST constructor recursion depth mismatch"
    (python/cpython#106905, fixed in 3.12).  Here they do: the server thread formats the app's
    traceback (3.11's caret anchors parse the line) while pytest formats a failure in the main
    thread.  One lock around ``ast.parse`` keeps the two apart."""
    if sys.version_info >= (3, 12) or getattr(ast.parse, "_suite_serialised", False):
        return
    parse = ast.parse
    lock = threading.RLock()

    @functools.wraps(parse)
    def serialised(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    serialised._suite_serialised = True  # type: ignore[attr-defined]
    ast.parse = serialised  # type: ignore[assignment]


_serialise_ast_parse()


def server_name() -> str:
    name = os.environ.get("CYSERVE_SUITE_SERVER", "cyserve")
    if name not in ("cyserve", "uvicorn"):
        raise ValueError(f"CYSERVE_SUITE_SERVER must be cyserve or uvicorn, not {name!r}")
    return name


def loop_name() -> str:
    name = os.environ.get("CYSERVE_SUITE_LOOP", "uvloop")
    if name not in ("uvloop", "asyncio"):
        raise ValueError(f"CYSERVE_SUITE_LOOP must be uvloop or asyncio, not {name!r}")
    return name


def _is_asgi3(app: Any) -> bool:
    # Starlette's TestClient's rule: a class is ASGI 3 when its instances are awaitable, anything
    # else when calling it gives a coroutine.
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", app)
    while hasattr(call, "func") and not inspect.iscoroutinefunction(call):  # functools.partial
        call = call.func
    return inspect.iscoroutinefunction(call)


class AppUnderTest:
    """The app as the server sees it, wrapped to see what escapes it.

    Starlette's in-process TestClient re-raises in the test whatever the app raised
    (``raise_server_exceptions``); over a socket the client only sees the server's 500 or 1011.
    The wrapper records each exception and re-raises it, so the server still handles it as it
    would (the answer on the wire is the server's), and the client raises it in the test once
    the exchange is over.  ASGI 2 apps are called the way TestClient calls them (one instance
    per scope), since the suites hand some to the client and cyserve serves ASGI 3.
    """

    __slots__ = ("app", "errors", "lifespan_errors", "_lock", "_idle", "_in_flight")

    def __init__(self, app: Any) -> None:
        self.app = app if _is_asgi3(app) else self._asgi2(app)
        self.errors: list[BaseException] = []
        self.lifespan_errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0

    @staticmethod
    def _asgi2(app: Any) -> Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]:
        async def asgi3(scope: Scope, receive: Receive, send: Send) -> None:
            await app(scope)(receive, send)
        return asgi3

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        lifespan = scope["type"] == "lifespan"
        if not lifespan:
            with self._lock:
                self._in_flight += 1
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            with self._lock:
                (self.lifespan_errors if lifespan else self.errors).append(exc)
            raise
        finally:
            if not lifespan:
                with self._lock:
                    self._in_flight -= 1
                    self._idle.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no HTTP or WebSocket call of the app is running; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout_s)

    def take_error(self) -> BaseException | None:
        """The first exception the app raised since the last call (the rest are consequences
        of it or of the same exchange, and are dropped)."""
        with self._lock:
            errors, self.errors = self.errors, []
        return errors[0] if errors else None

    def take_lifespan_error(self) -> BaseException | None:
        with self._lock:
            return self.lifespan_errors.pop(0) if self.lifespan_errors else None


class ServedApp:
    """``app`` served on a free port of 127.0.0.1 (TLS when ``tls`` is given) until ``stop()``.

    ``lifespan``: ``"on"``, ``"off"`` or ``"auto"``, as the server's option of that name.
    ``options``: the server's other settings, in uvicorn's ``Config`` names (``root_path``,
    ``ws_max_size``, ``ws_per_message_deflate``, ``ws_ping_interval``, ``ws_ping_timeout``,
    ``server_header``, ``date_header``), mapped onto each server's own.
    """

    def __init__(self, app: Any, *, lifespan: str = "off", tls: ssl.SSLContext | None = None,
                 tls_files: tuple[str, str] | None = None, options: dict[str, Any] | None = None) -> None:
        self.app = app
        self.lifespan = lifespan
        self.tls = tls
        self.tls_files = tls_files  # (certfile, keyfile): uvicorn takes files, not a context
        self.options = dict(options or {})
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: Callable[[], Awaitable[None]] | None = None

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the server; raises what its startup raised (a failed lifespan, a bad option)."""
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="suite-server", daemon=True)
        self._thread.start()
        try:
            ready.result(_START_TIMEOUT_S)
        except BaseException:
            self._thread.join(_STOP_TIMEOUT_S)
            self._thread = None
            raise

    def stop(self) -> None:
        """Shut the server down gracefully (lifespan shutdown included) and end its thread."""
        loop, thread, stop = self._loop, self._thread, self._stop
        self._thread = None
        if loop is None or thread is None or stop is None:
            return
        done = asyncio.run_coroutine_threadsafe(_call(stop), loop)
        try:
            done.result(_STOP_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_STOP_TIMEOUT_S)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _run(self, ready: Future[None]) -> None:
        if loop_name() == "uvloop":
            import uvloop
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            try:
                self._stop = loop.run_until_complete(self._start())
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(None)
            loop.run_forever()
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            # Transports closed by the shutdown finish closing on the loop's next turns; uvloop
            # refuses to close a loop whose handles are still open.
            loop.run_until_complete(asyncio.sleep(0.01))
            loop.close()
            asyncio.set_event_loop(None)

    async def _start(self) -> Callable[[], Awaitable[None]]:
        if server_name() == "uvicorn":
            return await self._start_uvicorn()
        return await self._start_cyserve()

    # -- cyserve ---------------------------------------------------------------------------

    async def _start_cyserve(self) -> Callable[[], Awaitable[None]]:
        from cyserve import asgi

        server = await asgi.serve(self.app, host="127.0.0.1", port=0, lifespan=self.lifespan, ssl=self.tls,
                                  **self.options)
        self.port = server.port

        async def stop() -> None:
            await server.shutdown()
        return stop

    # -- uvicorn (the reference) -----------------------------------------------------------

    async def _start_uvicorn(self) -> Callable[[], Awaitable[None]]:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        tls: dict[str, Any] = {}
        if self.tls_files is not None:
            tls = {"ssl_certfile": self.tls_files[0], "ssl_keyfile": self.tls_files[1]}
        config = uvicorn.Config(self.app, lifespan=self.lifespan, log_level="warning", **tls, **self.options)
        server = uvicorn.Server(config)
        # uvicorn's own signal handlers belong to its main-thread runs, not to a test's thread.
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # the startup's own exception, if it raised one
                raise RuntimeError("uvicorn did not start (its lifespan startup failed)")
            await asyncio.sleep(0.01)

        async def stop() -> None:
            server.should_exit = True
            await task
            sock.close()
        return stop


async def _call(fn: Callable[[], Awaitable[None]]) -> None:
    await fn()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
