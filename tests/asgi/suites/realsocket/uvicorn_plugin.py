"""pytest plugin running uvicorn's WebSocket and lifespan tests against the cyserve adapter.

uvicorn's tests reach the server through two seams, and this plugin maps both onto cyserve:

- ``tests.utils.run_server(config)`` (every real-socket test): serves ``config.app`` with
  ``cyserve.asgi.serve`` on the test's own loop, on ``config.port``, with uvicorn's settings
  translated to cyserve's (``_host_for``); it yields a ``ServerFacade`` with the
  ``shutdown()`` the tests call.
- ``uvicorn.lifespan.on.LifespanOn`` / ``LifespanOff`` (tests/test_lifespan.py): the same
  interface (``startup()``, ``shutdown()``, the ``startup_failed`` / ``shutdown_failed`` /
  ``error_occurred`` / ``should_exit`` flags, ``state``) over ``cyserve.asgi.lifespan.Lifespan``.

The suite is parametrised over uvicorn's HTTP parsers and WebSocket implementations; the HTTP
parser means nothing to cyserve, so only the httptools items run (one per WebSocket
implementation, since some tests expect per-implementation answers).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from . import httpx2

httpx2.alias()

import uvicorn.lifespan.off  # noqa: E402
import uvicorn.lifespan.on
from uvicorn.config import Config

from cyserve.asgi import ASGIHost, serve
from cyserve.asgi.lifespan import Lifespan
from cyserve.config import Timeouts, WebSocketLimits
from cyserve.errors import StartupError

from .report import deselect_param
from .server import AppUnderTest, loop_name

__all__ = ["ServerFacade", "run_server", "CyserveLifespanOn", "CyserveLifespanOff"]

_HTTP_PARSER_KEPT = "uvicorn.protocols.http.httptools_impl:HttpToolsProtocol"


def _host_for(config: Config) -> ASGIHost:
    """The app of a uvicorn ``Config`` as cyserve serves it, with uvicorn's settings in
    cyserve's terms (the values the test gave, or uvicorn's defaults, so both servers run with
    the same limits)."""
    max_size = int(config.ws_max_size)
    # uvicorn treats a zero interval or timeout as "off" (its checks are truthiness checks).
    ping_interval = config.ws_ping_interval or None
    ping_timeout = config.ws_ping_timeout or None
    websocket = WebSocketLimits(
        max_message_bytes=max_size, max_frame_bytes=max_size,
        max_receive_queue=int(config.ws_max_queue),
        ping_interval_s=ping_interval, ping_timeout_s=ping_timeout,
        compression=bool(config.ws_per_message_deflate))
    timeouts = Timeouts()
    if config.timeout_graceful_shutdown is not None:
        timeouts = dataclasses.replace(timeouts, shutdown_s=float(config.timeout_graceful_shutdown))
    host = ASGIHost(config.app, lifespan=config.lifespan, root_path=config.root_path.rstrip("/"),
                    websocket=websocket, timeouts=timeouts,
                    server_header="cyserve" if config.server_header else None)
    if not config.date_header:
        host.config = dataclasses.replace(host.config, date_header=False)
    if config.headers:
        host.default_headers = [(str(k), str(v)) for k, v in config.headers]
    return host


class ServerFacade:
    """What uvicorn's tests use of its ``Server``: ``shutdown()`` (idempotent here, since the
    test may call it inside the block and ``run_server`` calls it again on the way out)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.started = True
        self._shutdown: asyncio.Task[None] | None = None

    async def shutdown(self, sockets: Any = None) -> None:
        if self._shutdown is None:
            self._shutdown = asyncio.ensure_future(self.server.shutdown())
        await asyncio.shield(self._shutdown)


@asynccontextmanager
async def run_server(config: Config, sockets: list[socket.socket] | None = None) -> AsyncIterator[ServerFacade]:
    """uvicorn's ``tests.utils.run_server``, serving with cyserve on the test's loop."""
    host = _host_for(config)
    if sockets:
        server = await serve(host, sock=sockets[0])
    else:
        server = await serve(host, host=config.host, port=config.port)
    facade = ServerFacade(server)
    try:
        yield facade
    finally:
        await facade.shutdown()


class _FailureLog(logging.Handler):
    """The ``cyserve.error`` records of one lifespan: cyserve reports a failed shutdown by
    logging it (the server goes on stopping), where uvicorn sets ``shutdown_failed``."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class CyserveLifespanOn:
    """uvicorn's ``LifespanOn(config)`` over cyserve's ``Lifespan``."""

    def __init__(self, config: Config) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.state: dict[str, Any] = {}
        self.startup_failed = False
        self.shutdown_failed = False
        self.error_occurred = False
        self.should_exit = False
        # config.loaded_app: uvicorn's load() wraps an ASGI 2 app into ASGI 3 and applies its
        # middleware; what cyserve would be handed is the app the test wrote.
        self._app = AppUnderTest(config.app)
        mode = config.lifespan if config.lifespan != "off" else "on"
        self._lifespan = Lifespan(self._app, mode, self.state, Timeouts().shutdown_s)

    def _note_errors(self) -> None:
        if self._app.take_lifespan_error() is not None:
            self.error_occurred = True

    async def startup(self) -> None:
        try:
            await self._lifespan.__aenter__()
        except StartupError:
            self.startup_failed = True
            self.should_exit = True
        self._note_errors()

    async def shutdown(self) -> None:
        if self.startup_failed:
            return
        log = _FailureLog()
        logger = logging.getLogger("cyserve.error")
        logger.addHandler(log)
        try:
            await self._lifespan.__aexit__(None, None, None)
        finally:
            logger.removeHandler(log)
        self._note_errors()
        if any("shutdown failed" in message for message in log.messages):
            self.shutdown_failed = True
            self.should_exit = True


class CyserveLifespanOff:
    """uvicorn's ``LifespanOff(config)``: no lifespan at all."""

    def __init__(self, config: Config) -> None:
        self.state: dict[str, Any] = {}
        self.should_exit = False

    async def startup(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None


# The seams are replaced before the test modules import them (this plugin loads first, -p).
uvicorn.lifespan.on.LifespanOn = CyserveLifespanOn  # type: ignore[misc,assignment]
uvicorn.lifespan.off.LifespanOff = CyserveLifespanOff  # type: ignore[misc,assignment]


def pytest_configure(config: pytest.Config) -> None:
    import tests.utils  # uvicorn's, from the unpacked sdist (the subprocess's working directory)

    tests.utils.run_server = run_server  # type: ignore[assignment]
    # The tests (and so the server) run on anyio's asyncio backend, whose runner takes its loop
    # from the policy: uvloop's when the suite runs on uvloop (their conftest fixes the backend
    # to plain "asyncio", leaving no option to ask for it).
    if loop_name() == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    deselect_param(config, items, "http_protocol_cls", lambda parser: parser == _HTTP_PARSER_KEPT)
