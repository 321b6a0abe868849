"""Exceptions turned into responses, in one place (``App.failures``).

- ``handled(request, exc)``: a handler registered with ``@app.exception_handler(ExcClass or
  status)`` first (for an ``HTTPError`` a handler for its status wins, then the nearest class up
  to ``HTTPError``; for other exceptions the nearest class in the MRO), then ``HTTPError`` (and
  the named ones) as its status with ``detail`` -- JSON ``{"detail": ..., "status": ...}`` when
  the request's ``Accept`` mentions json, text otherwise.  ``None`` when nothing maps it.
- ``response_for(request, exc)``: the same, and what is left (or a handler that itself failed) is
  logged and answered 500: a page that says nothing of the error, or the traceback when
  ``debug`` is on (never in production).

``ProtocolError`` and ``Disconnected`` are never mapped: the core answers the first with its status
and closes, and there is nobody to answer for the second.
"""
from __future__ import annotations

import html
import logging
import traceback
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable

from cyserve._json import dumps
from cyserve.errors import Disconnected, HTTPError, ProtocolError
from cyserve.response import BaseResponse, Response, to_response

if TYPE_CHECKING:
    from cyserve.request import Request

__all__ = ["ExceptionHandler", "Failures"]

ExceptionHandler = Callable[["Request", Exception], Any]

_log = logging.getLogger("cyserve.app")
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"


class Failures:
    """The exception handlers of one App and the pages for what they leave."""

    __slots__ = ("handlers", "debug")

    def __init__(self, debug: bool = False) -> None:
        self.handlers: dict[type[BaseException] | int, ExceptionHandler] = {}
        self.debug = debug

    def handler(self, key: type[BaseException] | int) -> Callable[[ExceptionHandler], ExceptionHandler]:
        """A decorator registering ``handler(request, exc)`` for an exception class or a status."""
        if not (isinstance(key, int) or isinstance(key, type) and issubclass(key, BaseException)):
            raise TypeError(f"exception_handler() takes an exception class or a status, not {key!r}")

        def register(handler: ExceptionHandler) -> ExceptionHandler:
            self.handlers[key] = handler
            return handler
        return register

    async def handled(self, request: Request, exc: Exception) -> BaseResponse | None:
        """The response for ``exc`` from a registered handler or the HTTPError page; ``None`` when
        nothing maps it."""
        if isinstance(exc, (ProtocolError, Disconnected)):
            return None
        handler = self._handler_for(exc)
        if handler is not None:
            result = handler(request, exc)
            if hasattr(result, "__await__"):
                result = await result
            return to_response(result)
        if isinstance(exc, HTTPError):
            return self._error_page(request, exc)
        return None

    async def response_for(self, request: Request, exc: Exception) -> BaseResponse:
        """``handled``, else (or when the handler itself failed) the 500 page, logged."""
        try:
            response = await self.handled(request, exc)
        except Exception as inner:  # noqa: BLE001 - the handler itself failed: logged, 500
            _log.exception("exception handler for %r failed", exc)
            return self._crash_page(request, inner)
        if response is None:
            _log.error("unhandled error in %s %s", request.method, request.raw_path, exc_info=exc)
            response = self._crash_page(request, exc)
        return response

    def _handler_for(self, exc: Exception) -> ExceptionHandler | None:
        handlers = self.handlers
        if not handlers:
            return None
        is_http = isinstance(exc, HTTPError)
        if is_http:
            handler = handlers.get(exc.status)  # type: ignore[attr-defined]
            if handler is not None:
                return handler
        for cls in type(exc).__mro__:
            handler = handlers.get(cls)
            if handler is not None:
                return handler
            if is_http and cls is HTTPError:
                break  # an Exception handler is for crashes, not for 404s
        return None

    def _error_page(self, request: Request, exc: HTTPError) -> Response:
        detail = exc.detail or _phrase(exc.status)
        if _wants_json(request):
            return Response(dumps({"detail": detail, "status": exc.status}), exc.status, exc.headers, _JSON)
        return Response(detail + "\n", exc.status, exc.headers)

    def _crash_page(self, request: Request, exc: BaseException) -> Response:
        """500.  In production it says nothing about the error; with ``debug`` the traceback."""
        wants_json = _wants_json(request)
        if not self.debug:
            if wants_json:
                return Response(b'{"detail":"Internal Server Error","status":500}', 500, None, _JSON)
            return Response(b"Internal Server Error\n", 500, None, _TEXT)
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if wants_json:
            return Response(dumps({"detail": "Internal Server Error", "status": 500,
                                   "traceback": text.splitlines()}), 500, None, _JSON)
        title = html.escape(f"{type(exc).__name__}: {exc}")
        page = (f"<!doctype html><html><head><meta charset=utf-8><title>500 {title}</title>"
                "<style>body{font-family:sans-serif;margin:2em}pre{background:#f4f4f4;padding:1em;"
                "overflow:auto}</style></head><body><h1>500 Internal Server Error</h1>"
                f"<h2>{title}</h2><p>{html.escape(request.method)} {html.escape(request.raw_path)}"
                f"</p><pre>{html.escape(text)}</pre><p>debug mode: never run this in production."
                "</p></body></html>")
        return Response(page.encode("utf-8"), 500, None, _HTML)


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept")
    return accept is not None and "json" in accept


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
