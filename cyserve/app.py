"""App: routes and configuration, frozen into one entry coroutine the core calls per request."""
from __future__ import annotations

import logging
from typing import Any, Callable

from cyserve._json import dumps
from cyserve.config import Limits, ServerConfig, Timeouts, WaterMarks
from cyserve.errors import Disconnected, HTTPError, ProtocolError
from cyserve.request import Request
from cyserve.response import Response, to_response
from cyserve.routing import Handler, Router

__all__ = ["App"]

_log = logging.getLogger("cyserve.app")
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"


class App:
    """A cyserve application.

    ``App(limits=Limits(...), timeouts=Timeouts(...), water_marks=WaterMarks(...), debug=False)``;
    routes with ``@app.get(path)``, ``@app.post(path)``, ``@app.route(path, methods=[...])``;
    serve with ``app.run(host, port)``.
    """

    def __init__(self, *, limits: Limits | None = None, timeouts: Timeouts | None = None,
                 water_marks: WaterMarks | None = None, server_header: str | None = "cyserve",
                 debug: bool = False) -> None:
        self.config = ServerConfig(
            limits=limits or Limits(),
            timeouts=timeouts or Timeouts(),
            water_marks=water_marks or WaterMarks(),
            server_header=server_header,
        )
        self.debug = debug
        self.router = Router()

    # -------------------------------------------------------------- registration
    def route(self, path: str, methods: list[str] | tuple[str, ...] = ("GET",),
              name: str | None = None) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.router.add(path, handler, methods, name)
            return handler
        return register

    def get(self, path: str, name: str | None = None) -> Callable[[Handler], Handler]:
        return self.route(path, ("GET",), name)

    def post(self, path: str, name: str | None = None) -> Callable[[Handler], Handler]:
        return self.route(path, ("POST",), name)

    def put(self, path: str, name: str | None = None) -> Callable[[Handler], Handler]:
        return self.route(path, ("PUT",), name)

    def patch(self, path: str, name: str | None = None) -> Callable[[Handler], Handler]:
        return self.route(path, ("PATCH",), name)

    def delete(self, path: str, name: str | None = None) -> Callable[[Handler], Handler]:
        return self.route(path, ("DELETE",), name)

    def url_for(self, name: str, **params: Any) -> str:
        return self.router.url_for(name, **params)

    # -------------------------------------------------------------- the core's entry point
    async def handle(self, conn: Any, head: Any, body: Any) -> None:
        """Called by the core once per request: route, run the handler, send the response."""
        request = Request(conn, head, body)
        try:
            route, request.path_params = self.router.resolve(head.method, request.path)
            result = await route.handler(request)
            # The common results go straight to the writer, with no Response object.
            kind = type(result)
            if kind is Response:
                conn.respond(result.status, result.headers, result.body, result.content_type)
                return
            if kind is dict or kind is list:
                conn.respond(200, None, dumps(result), _JSON)
                return
            if kind is str:
                conn.respond(200, None, result.encode("utf-8"), _TEXT)
                return
            response = to_response(result)
        except HTTPError as exc:
            response = self._error_response(exc)
        except (ProtocolError, Disconnected):
            raise  # the core answers these with their status and closes
        except Exception as exc:  # noqa: BLE001 - answered with 500 and logged, never swallowed
            if conn.response_started:
                raise  # the core closes: framing of a half-sent response can't be trusted
            _log.exception("unhandled error in %s %s", head.method, head.target)
            response = self._crash_response(exc)
        await response.send(conn)

    def _error_response(self, exc: HTTPError) -> Response:
        from http import HTTPStatus
        detail = exc.detail or HTTPStatus(exc.status).phrase
        return Response(detail + "\n", exc.status, exc.headers)

    def _crash_response(self, exc: Exception) -> Response:
        if self.debug:
            import traceback
            text = "".join(traceback.format_exception(exc))
            return Response("500 Internal Server Error\n\n" + text, 500)
        return Response("500 Internal Server Error\n", 500)

    # -------------------------------------------------------------- running
    def run(self, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
        """Serve on uvloop (stdlib asyncio when uvloop is missing) until SIGINT/SIGTERM."""
        from cyserve.server import run
        run(self, host, port, **kwargs)
