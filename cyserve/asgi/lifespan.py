"""The ASGI lifespan protocol as an async context manager the App's ``Lifecycle`` enters at
startup and exits at shutdown.

Modes (uvicorn's ``--lifespan``):

- ``on``: the app must take part.  ``lifespan.startup.failed`` or an exception before the
  startup completed stops the server: ``StartupError`` with the app's message (the command line
  exits with status 3).
- ``auto``: as ``on``, except that an app raising before it answered the startup (one written
  without lifespan support, which raises on an unknown scope type) is served without a lifespan;
  one line at info level says so.  ``lifespan.startup.failed`` still stops the server.
- ``off``: the app is never called with a lifespan scope.

The app runs in a task of its own for the server's life, receiving ``lifespan.startup`` then,
at shutdown, ``lifespan.shutdown``; the scope's ``state`` is the dict every request scope gets a
copy of.  The shutdown is bounded by ``shutdown_s``: an app that never answers is cancelled
with a warning, so a stuck lifespan cannot hold the process forever.
"""
from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import Any, Awaitable, Callable

from cyserve.asgi.scope import LIFESPAN_VERSION
from cyserve.errors import StartupError
from cyserve.server.target import describe_failure

__all__ = ["Lifespan", "LIFESPAN_MODES"]

_log = logging.getLogger("cyserve.error")

LIFESPAN_MODES = ("auto", "on", "off")
_ENDED = {"type": "cyserve.lifespan.ended"}  # the app's call returned or raised


def _one_line(message: Any) -> str:
    """The app's failure message as one line: frameworks send a whole traceback (Starlette's
    is ``traceback.format_exc()``), whose last line names the error; all of it at debug level."""
    text = str(message or "").strip()
    if not text:
        return "no message"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        _log.debug("ASGI lifespan failure message:\n%s", text)
    return lines[-1]


class _Channel:
    """The app's ``receive`` and ``send`` of the lifespan: one queue each way."""

    __slots__ = ("to_app", "from_app")

    def __init__(self) -> None:
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def receive(self) -> dict[str, Any]:
        return await self.to_app.get()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in ("lifespan.startup.complete", "lifespan.startup.failed",
                        "lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")
        await self.from_app.put(message)


class Lifespan:
    """``async with Lifespan(app, mode, state, shutdown_s):`` runs the app's startup on entry and
    its shutdown on exit (see the module docstring)."""

    __slots__ = ("app", "mode", "state", "shutdown_s", "_channel", "_task", "_error")

    def __init__(self, app: Callable[..., Awaitable[None]], mode: str, state: dict[str, Any],
                 shutdown_s: float) -> None:
        if mode not in LIFESPAN_MODES:
            raise ValueError(f"lifespan must be one of {LIFESPAN_MODES}, got {mode!r}")
        self.app = app
        self.mode = mode
        self.state = state
        self.shutdown_s = shutdown_s
        self._channel: _Channel | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    async def _main(self, channel: _Channel) -> None:
        scope = {"type": "lifespan", "asgi": LIFESPAN_VERSION, "state": self.state}
        try:
            await self.app(scope, channel.receive, channel.send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - reported by whoever waits for the answer
            self._error = exc
        finally:
            channel.from_app.put_nowait(_ENDED)

    async def __aenter__(self) -> None:
        if self.mode == "off":
            return
        channel = self._channel = _Channel()
        self._task = asyncio.get_running_loop().create_task(self._main(channel),
                                                            name="cyserve-asgi-lifespan")
        channel.to_app.put_nowait({"type": "lifespan.startup"})
        answer = await channel.from_app.get()
        kind = answer["type"]
        if kind == "lifespan.startup.complete":
            return
        if kind == "lifespan.startup.failed":
            await self._end_task()
            raise StartupError(f"ASGI lifespan startup failed: {_one_line(answer.get('message'))}")
        # The app's call ended before it answered the startup.
        await self._end_task()
        error = self._error
        self._channel = None
        if error is None:
            return  # it returned without a word: an app that ignores the lifespan
        if self.mode == "auto":
            _log.info("ASGI 'lifespan' protocol appears unsupported (%s): serving without it",
                      describe_failure(error))
            return
        raise StartupError(f"ASGI lifespan startup failed: {describe_failure(error)}") from error

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        channel = self._channel
        task = self._task
        if channel is None or task is None:
            return
        if task.done():
            # The app's lifespan call ended while the server ran: nobody to tell of the shutdown.
            if self._error is not None:
                _log.error("ASGI lifespan ended with an error: %s", describe_failure(self._error),
                           exc_info=self._error)
            self._task = None
            return
        channel.to_app.put_nowait({"type": "lifespan.shutdown"})
        try:
            answer = await asyncio.wait_for(channel.from_app.get(), self.shutdown_s)
        except asyncio.TimeoutError:
            _log.warning("ASGI lifespan shutdown not complete after %.1fs: cancelling it",
                         self.shutdown_s)
            task.cancel()
            await self._end_task()
            return
        if answer["type"] == "lifespan.shutdown.failed":
            _log.error("ASGI lifespan shutdown failed: %s", _one_line(answer.get("message")))
        elif answer is _ENDED and self._error is not None:
            _log.error("ASGI lifespan shutdown failed: %s", describe_failure(self._error),
                       exc_info=self._error)
        await self._end_task()

    async def _end_task(self) -> None:
        """Wait for the app's lifespan call to return (it should, once answered); cancel it
        when it does not within ``shutdown_s``."""
        task = self._task
        if task is None:
            return
        if not task.done():
            done, _ = await asyncio.wait({task}, timeout=self.shutdown_s)
            if not done:
                task.cancel()
                await asyncio.wait({task})
        self._task = None
