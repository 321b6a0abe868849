"""The ASGI lifespan under ``serve()``, both loops: startup before the first request and
shutdown after the last, ``state`` handed to requests, a failed startup as ``StartupError`` with
the app's message (exit 3 on the command line: tests/cli/test_asgi_cli.py), apps without
lifespan support under ``auto``, ``on`` and ``off``, and a shutdown that never answers."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import cyserve.asgi
from cyserve.asgi import ASGIHost
from cyserve.config import Timeouts
from cyserve.errors import StartupError
from tests.asgi.asgi_support import respond, serving
from tests.support import fetch


def lifespan_app(events: list[str], startup: str = "complete", shutdown: str = "complete") -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            assert scope["asgi"]["version"] == "3.0"
            message = await receive()
            events.append(message["type"])
            if startup == "failed":
                await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
                return
            if startup == "raise":
                raise ConnectionError("cache down")
            scope["state"]["connection"] = "db-1"
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            events.append(message["type"])
            if shutdown == "hang":
                await asyncio.sleep(3600)
            await send({"type": f"lifespan.shutdown.{shutdown}", "message": "flush failed"})
            return
        events.append(f"request {scope['state'].get('connection')}")
        await respond(send, body=b"served")
    return app


def test_startup_before_requests_state_reaches_them_shutdown_after(run):
    events: list[str] = []

    async def main() -> None:
        async with serving(lifespan_app(events)) as server:
            assert events == ["lifespan.startup"]
            assert (await fetch(server.port)).body == b"served"
        assert events == ["lifespan.startup", "request db-1", "lifespan.shutdown"]
    run(main)


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_is_a_startup_error_with_the_apps_message(run, mode):
    events: list[str] = []

    async def main() -> None:
        with pytest.raises(StartupError, match="ASGI lifespan startup failed: database unreachable"):
            await cyserve.asgi.serve(lifespan_app(events, startup="failed"), "127.0.0.1", 0,
                                     lifespan=mode)
    run(main)
    assert events == ["lifespan.startup"]


def test_an_exception_in_startup_fails_under_on_and_is_served_without_under_auto(run, caplog):
    events: list[str] = []

    async def main() -> None:
        with pytest.raises(StartupError, match="ConnectionError: cache down"):
            await cyserve.asgi.serve(lifespan_app(events, startup="raise"), "127.0.0.1", 0,
                                     lifespan="on")
        async with serving(lifespan_app(events, startup="raise")) as server:
            reply = await fetch(server.port)
            assert reply.body == b"served"
    with caplog.at_level(logging.INFO, logger="cyserve.error"):
        run(main)
    assert any("lifespan' protocol appears unsupported" in r.getMessage() for r in caplog.records)
    # Under auto, nothing is sent to an app that failed its startup: no shutdown either.
    assert events == ["lifespan.startup", "lifespan.startup", "request None"]


def test_an_app_without_lifespan_support_works_under_auto(run):
    calls: list[str] = []

    async def http_only(scope: dict[str, Any], receive: Any, send: Any) -> None:
        calls.append(scope["type"])
        if scope["type"] != "http":
            raise ValueError(f"unsupported scope type {scope['type']}")
        await respond(send, body=b"plain")

    async def main() -> None:
        async with serving(http_only) as server:
            assert (await fetch(server.port)).body == b"plain"
    run(main)
    assert calls == ["lifespan", "http"]


def test_off_never_calls_the_app_with_a_lifespan_scope(run):
    events: list[str] = []

    async def main() -> None:
        async with serving(lifespan_app(events), lifespan="off") as server:
            await fetch(server.port)
    run(main)
    assert events == ["request None"]


def test_a_failed_shutdown_is_logged_and_a_hung_one_is_bounded(run, caplog):
    events: list[str] = []

    async def main() -> None:
        async with serving(lifespan_app(events, shutdown="failed")):
            pass
        host = ASGIHost(lifespan_app(events, shutdown="hang"), timeouts=Timeouts(shutdown_s=0.5))
        server = await cyserve.asgi.serve(host, "127.0.0.1", 0)
        started = asyncio.get_running_loop().time()
        await server.shutdown()
        assert asyncio.get_running_loop().time() - started < 3.0
    with caplog.at_level(logging.WARNING, logger="cyserve.error"):
        run(main)
    messages = [r.getMessage() for r in caplog.records]
    assert any("ASGI lifespan shutdown failed: flush failed" in m for m in messages)
    assert any("not complete after 0.5s" in m for m in messages)
