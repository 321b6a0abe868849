"""The spellings of the frameworks cyserve replaces, as thin aliases over cyserve's own API.

docs/migrating.md has one table per seed (its spelling, cyserve's, what differs and why); each
name here is one of its rows.  Nothing here has behaviour of its own beyond translating
arguments: where a seed's behaviour was a bug (SEEDS.md), the alias does what cyserve does.

Blazeio
  - ``Deliver``: ``return Deliver.json(data)``, ``Deliver.text("hi", 201)``, and any other
    attribute names a content type with ``_`` for ``/`` and then for ``-`` (``Deliver.text_html``,
    ``Deliver.application_octet_stream`` is ``application/octet-stream``); a known structured
    suffix becomes ``+`` (``Deliver.image_svg_xml`` is ``image/svg+xml``) and a ``vnd``/``prs``
    tree a ``.`` (``Deliver.application_vnd_api_json`` is ``application/vnd.api+json``).  Other
    names take ``content_type=``.  Blazeio also takes the request first (``Deliver.text(r,
    "hi")``); that form works too.  Its ``path=`` meant a redirect but sent 200 (SEEDS §1.4);
    here it redirects.
  - ``Prepared``: the response behind ``await r.prepare(headers, status)``, ``await
    r.write(chunk)`` and ``await r.eof()`` (``Request`` methods), written by the handler itself
    through the connection, with backpressure.  ``r.pull()`` is ``Request.stream()``.

Areion
  - ``create_json_response``, ``create_text_response``, ``create_html_response``,
    ``create_xml_response``, ``create_redirect_response(location, 301)``,
    ``create_empty_response(204, headers)``, ``create_error_response(status, message)`` and
    ``create_file_response(path)``;
  - ``HttpError(message, status_code)`` and ``BadRequestError``, ``UnauthorizedError``,
    ``ForbiddenError``, ``NotFoundError``, ``MethodNotAllowedError``, ``InternalServerError``:
    ``HTTPError`` subclasses, so ``except HttpError`` catches them and the App answers them like
    any ``HTTPError``.  (The cron dict form is ``app.schedule({"minute": "*/5"}, fn)``.)

AstraAPI (FastAPI's names)
  - ``http_middleware(fn)``: a ``fn(request, call_next)`` function as a cyserve middleware (what
    ``@app.middleware("http")`` registers).  ``request.state`` takes attributes.

PyLiteFlux
  - ``BackgroundAdder``: ``request.bg``, whose ``add(fn, *args, **kwargs)`` is
    ``request.background``.

Builders return a response for the handler to return; nothing is written behind its back, except
by ``r.prepare()``/``r.write()``, whose whole point is writing.
"""
from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from cyserve import errors
from cyserve._json import dumps
from cyserve.errors import HTTPError
from cyserve.files import FileResponse
from cyserve.response import (
    BaseResponse,
    Fields,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    to_response,
)
from cyserve.sse import ServerSentEvent

if TYPE_CHECKING:
    from cyserve._core.http.server import ServerRole
    from cyserve.codecs import Codec, Encoder
    from cyserve.middleware import Handler, Middleware
    from cyserve.request import Request

__all__ = [
    "BackgroundAdder",
    "BadRequestError",
    "Deliver",
    "ForbiddenError",
    "HttpError",
    "InternalServerError",
    "MethodNotAllowedError",
    "NotFoundError",
    "Prepared",
    "UnauthorizedError",
    "create_empty_response",
    "create_error_response",
    "create_file_response",
    "create_html_response",
    "create_json_response",
    "create_redirect_response",
    "create_text_response",
    "create_xml_response",
    "http_middleware",
]

_TEXT = "text/plain; charset=utf-8"
# Suffixes a content-type attribute may end with: ``image_svg_xml`` is image/svg+xml.
_STRUCTURED = ("xml", "json", "zip", "gzip")
# Registration trees whose facet ends with "." (RFC 6838 §3.2, §3.3): vnd.api+json.
_TREES = ("vnd", "prs")


def _strip_request(args: tuple[Any, ...]) -> tuple[Any, ...]:
    from cyserve.request import Request

    return args[1:] if args and isinstance(args[0], Request) else args


def _media_type(attribute: str) -> str:
    kind, _, rest = attribute.partition("_")
    if not kind or not rest:
        raise AttributeError(f"Deliver.{attribute} does not name a content type (type_subtype)")
    parts = rest.split("_")
    suffix = ""
    if len(parts) > 1 and parts[-1] in _STRUCTURED:
        suffix = "+" + parts.pop()
    tree = ""
    if len(parts) > 1 and parts[0] in _TREES:
        tree = parts.pop(0) + "."
    # Subtype words are joined by "-", the usual separator of registered names (octet-stream,
    # x-www-form-urlencoded); "." only after a tree facet.
    return f"{kind}/{tree}{'-'.join(parts)}{suffix}"


def _body(data: Any, indent: int | None) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if indent:
        import json

        return json.dumps(data, indent=indent, ensure_ascii=False).encode("utf-8")
    return dumps(data)


class _Deliver:
    """``Deliver.<kind>([request,] data, status=200, headers=None, *, path=None, content_type=None,
    indent=None)`` builds a response; see the module docstring."""

    def text(self, *args: Any, **kwargs: Any) -> Response:
        return self._build(_TEXT, args, kwargs)

    def json(self, *args: Any, **kwargs: Any) -> Response:
        return self._build("application/json", args, kwargs)

    def html(self, *args: Any, **kwargs: Any) -> Response:
        return self._build("text/html; charset=utf-8", args, kwargs)

    def redirect(self, *args: Any, status: int = 302, headers: Fields = None) -> Response:
        (location,) = _strip_request(args)
        return RedirectResponse(location, status, headers)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        media_type = _media_type(attribute)
        if media_type.startswith("text/"):
            media_type += "; charset=utf-8"
        return lambda *args, **kwargs: self._build(media_type, args, kwargs)

    def _build(self, media_type: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Response:
        args = _strip_request(args)
        if not 1 <= len(args) <= 3:
            raise TypeError("Deliver takes data, and optionally status and headers")
        data = args[0]
        status = args[1] if len(args) > 1 else 200
        headers = args[2] if len(args) > 2 else None
        path = kwargs.pop("path", None)
        content_type = kwargs.pop("content_type", None) or media_type
        indent = kwargs.pop("indent", None)
        if kwargs:
            raise TypeError(f"unexpected Deliver arguments: {sorted(kwargs)}")
        if path is not None:
            # A redirect with a body; 302 unless the caller chose another 3xx (Blazeio sent 200).
            code = status if status in (301, 302, 303, 307, 308) else 302
            redirect = RedirectResponse(path, code, headers)
            redirect.body = _body(data, indent)
            redirect.content_type = content_type
            return redirect
        return Response(_body(data, indent), status, headers, content_type)


Deliver = _Deliver()


# ---------------------------------------------------------------- Blazeio: r.prepare / r.write
# Blazeio compressed each write on its own (SEEDS §1.4); one encoder per response instead.
_COMPRESSED = ("br", "gzip", "deflate")


@functools.lru_cache(maxsize=1)
def _codecs() -> dict[str, Codec]:
    from cyserve.codecs import _builtin_codecs  # zlib level 6, brotli 4: Compression's defaults
    return {name: codec for name, codec in _builtin_codecs(6, 4).items() if name in _COMPRESSED}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)  # Blazeio headers often carry ints: {"Content-length": 12}


class Prepared(BaseResponse):
    """A response the handler writes itself (Blazeio's ``r.prepare``/``r.write``/``r.eof``).

    ``Prepared(conn, headers, status, encode_resp, encode_event_stream)`` sends the head at once
    (``conn.start_stream``).  ``headers`` (a dict or pairs, names in any case) choose the framing
    as Blazeio's did, the way RFC 9112 §6 allows: ``Content-Length`` sends exactly that many
    bytes; otherwise the body is chunked (HTTP/1.1) or ends with the connection (HTTP/1.0).  A
    ``Transfer-Encoding`` given is dropped (chunked is the server's choice, and it wins over a
    Content-Length given with it, as Blazeio's ``prepare`` chose).  ``write(data)`` returns the
    connection's awaitable: awaiting it waits while the client reads slowly, and it raises
    ``Disconnected`` once the client left.

    With ``encode_resp`` (Blazeio's default), a ``Content-Encoding`` of br, gzip or deflate is
    honoured by one compressor for the whole body, flushed at every write, so the client can
    decode each piece as it arrives (Blazeio compressed each write on its own and kept the
    uncompressed Content-Length); the Content-Length is dropped.  With ``encode_event_stream``
    and ``Content-Type: text/event-stream``, each write is one event's data, JSON for values
    that are not text, split into one ``data:`` line per line (WHATWG HTML §9.2.5; Blazeio
    wrote multi-line data as one line, ending the event early).

    The handler returns None; the App then sends this object, which ends the body if the handler
    did not (``finish``).  Middleware outside the route see it as the response, with the status
    and headers that were sent: what they change cannot reach the client any more.
    """

    __slots__ = ("status", "headers", "content_type", "_conn", "_encoder", "_events", "_open")

    def __init__(self, conn: Any, headers: Any = None, status: int = 200, encode_resp: bool = True,
                 encode_event_stream: bool = True) -> None:
        pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
        fields: list[tuple[str, str]] = []
        content_type: str | None = None
        length = -1
        chunked = False
        coding: str | None = None
        for raw_name, raw_value in pairs:
            name, value = _text(raw_name), _text(raw_value)
            lower = name.lower()
            if lower == "content-type":
                content_type = value
            elif lower == "content-length":
                # RFC 9110 §8.6: 1*DIGIT (Blazeio's int() took "+5", " 5" and "1_0").
                if not (value.isascii() and value.isdigit()):
                    raise ValueError(f"Content-Length must be digits, not {value!r}")
                length = int(value)
            elif lower == "transfer-encoding":
                chunked = True
            else:
                if lower == "content-encoding":
                    coding = value.strip().lower()
                fields.append((name, value))
        encoder: Encoder | None = None
        if encode_resp and coding is not None:
            codec = _codecs().get(coding)
            if codec is not None:
                encoder = codec.encoder()
        if chunked or encoder is not None:
            length = -1
        conn.start_stream(status, fields, content_type, length)
        self._conn: ServerRole = conn
        self.status = status
        self.headers = fields
        self.content_type = content_type
        self._encoder = encoder
        self._events = bool(encode_event_stream and content_type is not None and
                            content_type.partition(";")[0].strip().lower() == "text/event-stream")
        self._open = True

    def write(self, data: Any) -> Awaitable[None]:
        """Send ``data`` (bytes or str; an event's data on an event stream); await the result."""
        if not self._open:
            raise RuntimeError("write() after eof(): the prepared body has ended")
        if self._events:
            data = ServerSentEvent(data).encode()
        elif isinstance(data, str):
            data = data.encode("utf-8")
        encoder = self._encoder
        if encoder is not None:
            if not data:
                return self._conn.drain()
            data = encoder.compress(bytes(data)) + encoder.flush()
        return self._conn.write(data)

    async def finish(self) -> None:
        """End the body (the compressor's tail first); later calls do nothing."""
        if not self._open:
            return
        self._open = False
        encoder, self._encoder = self._encoder, None
        if encoder is not None:
            tail = encoder.finish()
            if tail:
                await self._conn.write(tail)
        self._conn.end_stream()

    async def send(self, conn: Any) -> None:
        # The head went out in prepare() and the body through write(): what is left is its end.
        await self.finish()


# ---------------------------------------------------------------- Areion

def create_json_response(data: Any, status_code: int = 200, headers: Fields = None) -> Response:
    """Areion's JSON response helper."""
    return JSONResponse(data, status_code, headers)


def create_text_response(text: str, status_code: int = 200, headers: Fields = None) -> Response:
    """Areion's text response helper (UTF-8, text/plain)."""
    return Response(text, status_code, headers, _TEXT)


def create_html_response(html: str, status_code: int = 200, headers: Fields = None) -> Response:
    """Areion's HTML response helper."""
    return HTMLResponse(html, status_code, headers)


def create_xml_response(xml: str | bytes, status_code: int = 200, headers: Fields = None) -> Response:
    """Areion's XML response helper (application/xml)."""
    return Response(xml, status_code, headers, "application/xml; charset=utf-8")


def create_redirect_response(location: str, status_code: int = 301, headers: Fields = None) -> Response:
    """Areion's redirect helper: a 3xx (301, 302, 303, 307, 308) with Location; anything else is a
    ``ValueError``, as is CR/LF in the location."""
    return RedirectResponse(location, status_code, headers)


def create_empty_response(status_code: int = 204, headers: Fields = None) -> Response:
    """Areion's empty response helper: no body and no Content-Type (Areion's text/plain label
    on a 204 described nothing)."""
    return Response(b"", status_code, headers)


def create_error_response(status_code: int, message: str | None = None, headers: Fields = None
                          ) -> Response:
    """Areion's error response helper: a 4xx or 5xx (``ValueError`` otherwise) whose text/plain
    body is ``message``, or the status's reason phrase.  Raising ``HTTPError`` (or one of the
    ``*Error`` classes) instead goes through the App's error handlers and JSON negotiation."""
    if not 400 <= status_code <= 599:
        raise ValueError(f"an error response is 4xx or 5xx, not {status_code}")
    return Response(message or HTTPStatus(status_code).phrase, status_code, headers, _TEXT)


def create_file_response(file_path: str | os.PathLike[str], status_code: int = 200) -> FileResponse:
    """Areion's file download helper: the file as an attachment under its own name, its type
    guessed from the name.  Streamed from disk in chunks with ETag and Last-Modified (Areion read
    the whole file into memory per request); a missing file is 404, as in Areion."""
    return FileResponse(file_path, status=status_code, filename=os.path.basename(file_path))


class HttpError(HTTPError):
    """Areion's ``HttpError(message=None, status_code=None)``: ``raise HttpError("no", 409)``.

    An ``HTTPError``, answered by the App as any other (its handlers, then the error page).
    ``message`` defaults to the status's reason phrase and ``status_code`` to the class's;
    ``headers`` is cyserve's addition (``Allow`` for a 405, ``WWW-Authenticate`` for a 401)."""

    status_code = 500

    def __init__(self, message: str | None = None, status_code: int | None = None,
                 headers: errors.Headers = None) -> None:
        # HTTPError's own __init__: the named bases (BadRequest, ...) take other arguments.
        HTTPError.__init__(self, status_code or type(self).status_code, message, headers)
        self.status_code = self.status

    @property
    def message(self) -> str:
        return self.detail or HTTPStatus(self.status).phrase


# Each is also the cyserve class of its status, so handlers for either catch it.
class BadRequestError(HttpError, errors.BadRequest):
    status_code = 400


class UnauthorizedError(HttpError, errors.Unauthorized):
    status_code = 401


class ForbiddenError(HttpError, errors.Forbidden):
    status_code = 403


class NotFoundError(HttpError, errors.NotFound):
    status_code = 404


class MethodNotAllowedError(HttpError, errors.MethodNotAllowed):
    status_code = 405


class InternalServerError(HttpError, errors.InternalServerError):
    """Areion's: a subclass of ``cyserve.InternalServerError`` that is also an ``HttpError``."""

    status_code = 500


# ---------------------------------------------------------------- AstraAPI (FastAPI's names)
def http_middleware(fn: Callable[[Request, Callable[[Request], Awaitable[BaseResponse]]], Any]
                    ) -> Middleware:
    """``async def fn(request, call_next)`` (what ``@app.middleware("http")`` decorates in
    FastAPI) as a cyserve middleware: ``await call_next(request)`` is the response of everything
    inside it, errors already turned into responses.  ``response.headers`` is a list of pairs:
    ``response.headers.append(("X-Time", "3"))``."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"an http middleware is an async function (request, call_next), not {fn!r}")

    def middleware(handler: Handler) -> Handler:
        async def call(request: Request) -> BaseResponse:
            return to_response(await fn(request, handler))
        return call
    return middleware


# ---------------------------------------------------------------- PyLiteFlux
class BackgroundAdder:
    """``request.bg``: PyLiteFlux's ``request.bg.add(fn, *args, **kwargs)`` is
    ``request.background(fn, *args, **kwargs)`` (run after the response, on the loop or in the
    thread pool, failures logged; PyLiteFlux's five-thread queue lost them silently)."""

    __slots__ = ("add",)

    def __init__(self, request: Request) -> None:
        self.add = request.background
