"""Responses: each hands status, fields and body to the core's writer."""
from __future__ import annotations

import asyncio
import contextvars
import datetime
import email.utils
import re
import threading
import time
from typing import Any, AsyncIterable, Iterable, Iterator, Union
from urllib.parse import quote

from cyserve._json import dumps

__all__ = ["BaseResponse", "Response", "JSONResponse", "HTMLResponse", "RedirectResponse",
           "StreamResponse", "to_response"]

Fields = Union[dict[str, str], Iterable[tuple[str, str]], None]
_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"


def _fields(headers: Fields) -> list[tuple[str, str]]:
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


# RFC 6265 §4.1.1: cookie-name is a token (RFC 9110 §5.6.2); cookie-octet excludes CTLs,
# whitespace, DQUOTE, comma, semicolon and backslash.  Octets outside it are percent-encoded
# (UTF-8), and so is "%" itself, so every str round-trips through Request.cookies.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_COOKIE_SAFE = "!#$&'()*+-./:<=>?@[]^_`{|}~"  # cookie-octet punctuation, less "%"
_COOKIE_DOMAIN = re.compile(r"\.?[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9])?")
_COOKIE_PATH = re.compile(r"[\x20-\x3a\x3c-\x7e]+")  # §4.1.1 path-value: no CTLs, no ";"
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)  # delete_cookie's Expires


def http_date(timestamp: float) -> str:
    """IMF-fixdate (RFC 9110 §5.6.7) for seconds since the epoch."""
    return email.utils.formatdate(timestamp, usegmt=True)


def _expires_date(expires: datetime.datetime | float) -> str:
    """A cookie's Expires: a number is seconds from now, a naive datetime is UTC."""
    if isinstance(expires, datetime.datetime):
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=datetime.timezone.utc)
        return email.utils.format_datetime(expires.astimezone(datetime.timezone.utc), usegmt=True)
    return http_date(time.time() + expires)


def cookie_header_value(name: str, value: str = "", *, max_age: int | None = None,
                        expires: datetime.datetime | float | None = None, path: str | None = "/",
                        domain: str | None = None, secure: bool = False, httponly: bool = False,
                        samesite: str | None = "lax", partitioned: bool = False) -> str:
    """One Set-Cookie field value (RFC 6265 §4.1); ``ValueError`` for anything unsafe."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"cookie name {name!r} is not an RFC 6265 token")
    if not isinstance(value, str):
        raise TypeError(f"cookie value must be str, not {type(value).__name__}")
    parts = [f"{name}={quote(value, safe=_COOKIE_SAFE)}"]
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, (datetime.datetime, int, float)):
            raise TypeError("cookie expires must be a datetime or seconds from now")
        parts.append(f"Expires={_expires_date(expires)}")
    if max_age is not None:
        if isinstance(max_age, bool) or not isinstance(max_age, int):
            raise TypeError("cookie max_age must be an int (seconds)")
        parts.append(f"Max-Age={max_age}")
    if domain is not None:
        if not _COOKIE_DOMAIN.fullmatch(domain) or ".." in domain:
            raise ValueError(f"cookie domain {domain!r} is not a domain name")
        parts.append(f"Domain={domain}")
    if path is not None:
        if not _COOKIE_PATH.fullmatch(path):
            raise ValueError(f"cookie path {path!r} holds a control character or ';'")
        parts.append(f"Path={path}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        same = _SAMESITE.get(samesite.lower()) if isinstance(samesite, str) else None
        if same is None:
            raise ValueError(f"cookie samesite must be 'lax', 'strict', 'none' or None, not {samesite!r}")
        if same == "None" and not secure:
            raise ValueError("samesite='none' needs secure=True (browsers drop it otherwise)")
        parts.append(f"SameSite={same}")
    if partitioned:
        if not secure:
            raise ValueError("partitioned=True needs secure=True (CHIPS)")
        parts.append("Partitioned")
    # Cookie name prefixes (RFC 6265bis §4.1.3): browsers reject these cookies otherwise.
    if name.startswith("__Secure-") and not secure:
        raise ValueError("a __Secure- cookie needs secure=True")
    if name.startswith("__Host-") and (not secure or path != "/" or domain is not None):
        raise ValueError("a __Host- cookie needs secure=True, path='/' and no domain")
    return "; ".join(parts)


class BaseResponse:
    """What every response is to the App and to middleware.

    ``status``; ``headers``, a mutable list of ``(name, value)`` pairs that middleware may append
    to; ``content_type``; and ``send(conn)``, which hands the response to the core's writer
    (``conn.respond`` for a whole body, ``conn.start_stream``/``write``/``end_stream`` otherwise).
    """

    __slots__ = ()
    status: int
    headers: list[tuple[str, str]]
    content_type: str | None

    async def send(self, conn: Any) -> None:
        raise NotImplementedError

    def set_cookie(self, name: str, value: str = "", *, max_age: int | None = None,
                   expires: datetime.datetime | float | None = None, path: str | None = "/",
                   domain: str | None = None, secure: bool = False, httponly: bool = False,
                   samesite: str | None = "lax", partitioned: bool = False) -> None:
        """Add a Set-Cookie field (RFC 6265 §4.1).

        ``name`` must be a token; ``value`` is percent-encoded where RFC 6265 forbids an octet
        (``Request.cookies`` decodes it).  ``expires`` is a datetime (naive means UTC) or seconds
        from now; ``samesite`` is ``"lax"`` (default), ``"strict"``, ``"none"`` (needs
        ``secure``) or None to omit it; ``partitioned`` (CHIPS) needs ``secure``.  Anything
        that would make an unsafe or silently ignored cookie raises ``ValueError``.
        """
        self.headers.append(("Set-Cookie", cookie_header_value(
            name, value, max_age=max_age, expires=expires, path=path, domain=domain,
            secure=secure, httponly=httponly, samesite=samesite, partitioned=partitioned)))

    def delete_cookie(self, name: str, *, path: str | None = "/", domain: str | None = None,
                      secure: bool = False, httponly: bool = False, samesite: str | None = "lax",
                      partitioned: bool = False) -> None:
        """Expire cookie ``name`` now; ``path`` and ``domain`` must match the ones it was set with."""
        self.headers.append(("Set-Cookie", cookie_header_value(
            name, "", max_age=0, expires=_EPOCH, path=path, domain=domain, secure=secure,
            httponly=httponly, samesite=samesite, partitioned=partitioned)))


class Response(BaseResponse):
    """A whole response: ``Response(body, status=200, headers=None, content_type=None)``.

    ``str`` bodies are UTF-8 encoded and default to ``text/plain; charset=utf-8``.
    """

    __slots__ = ("body", "status", "headers", "content_type")

    def __init__(self, body: bytes | bytearray | memoryview | str = b"", status: int = 200, headers: Fields = None,
                 content_type: str | None = None) -> None:
        if type(body) is not bytes:  # bytes, the common case, needs no check
            if isinstance(body, str):
                body = body.encode("utf-8")
                if content_type is None:
                    content_type = _TEXT
            elif not isinstance(body, (bytes, bytearray, memoryview)):
                raise TypeError(f"Response body must be bytes or str, not {type(body).__name__}")
        self.body = body
        self.status = status
        self.headers = _fields(headers) if headers else []
        self.content_type = content_type

    async def send(self, conn: Any) -> None:
        conn.respond(self.status, self.headers, self.body, self.content_type)


class JSONResponse(Response):
    """``data`` serialised as compact UTF-8 JSON; ``default`` handles types json can't."""

    __slots__ = ()

    def __init__(self, data: Any, status: int = 200, headers: Fields = None,
                 default: Any = None) -> None:
        # Set here, not through Response.__init__ (the body is bytes by construction): one call
        # less for every dict a handler behind middleware returns (to_response makes one).
        self.body = dumps(data, default)
        self.status = status
        self.headers = _fields(headers) if headers else []
        self.content_type = _JSON


class HTMLResponse(Response):
    """``content`` (str or UTF-8 bytes) as ``text/html; charset=utf-8``."""

    __slots__ = ()

    def __init__(self, content: str | bytes, status: int = 200, headers: Fields = None) -> None:
        super().__init__(content, status, headers, _HTML)


_REDIRECTS = frozenset((301, 302, 303, 307, 308))
# Characters a URI may carry as they are (RFC 3986 §2.2 reserved, §2.3 unreserved, and "%" of
# existing escapes); anything else (spaces, non-ASCII) is percent-encoded as UTF-8.
_URI_SAFE = ":/?#[]@!$&'()*+,;=%~"


class RedirectResponse(Response):
    """``RedirectResponse(url, status=307, headers=None)``: an empty response with Location.

    ``status`` is one of 301, 302, 303, 307, 308 (RFC 9110 §15.4); 307 and 308 keep the method
    and body, 303 turns the follow-up into a GET.  ``url`` with CR, LF or NUL is a
    ``ValueError``, never a header injection; other characters a URI can't hold are encoded.
    """

    __slots__ = ()

    def __init__(self, url: str, status: int = 307, headers: Fields = None) -> None:
        if status not in _REDIRECTS:
            raise ValueError(f"redirect status must be one of 301, 302, 303, 307, 308, not {status}")
        if not isinstance(url, str):
            raise TypeError(f"redirect url must be str, not {type(url).__name__}")
        if "\r" in url or "\n" in url or "\0" in url:
            raise ValueError(f"redirect url holds CR, LF or NUL: {url!r}")
        super().__init__(b"", status, headers)
        self.headers.append(("Location", quote(url, safe=_URI_SAFE)))


_END = object()


class _SyncPump:
    """Steps a sync iterator in the default executor, one ``next`` at a time, in the request's
    context (so ``g`` works there too).  ``close()`` never blocks the loop: when a step is still
    running in its thread, the thread closes the iterator as soon as that step returns."""

    __slots__ = ("_iterator", "_context", "_lock", "_running", "_close_requested")

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterator: Iterator[Any] = iter(iterable)
        self._context = contextvars.copy_context()
        self._lock = threading.Lock()  # guards the two flags only, never held across a step
        self._running = False
        self._close_requested = False

    async def next(self) -> Any:
        self._running = True
        return await asyncio.get_running_loop().run_in_executor(None, self._step)

    def _step(self) -> Any:
        try:
            return self._context.run(next, self._iterator, _END)
        finally:
            with self._lock:
                self._running = False
                close = self._close_requested
            if close:
                self._close_now()

    def close(self) -> None:
        with self._lock:
            if self._running:
                self._close_requested = True
                return
        self._close_now()

    def _close_now(self) -> None:
        close = getattr(self._iterator, "close", None)
        if close is not None:
            self._context.run(close)


class StreamResponse(BaseResponse):
    """A streamed body from an async or sync iterable of ``bytes``/``str``.

    Chunked on HTTP/1.1 unless ``content_length`` is given; sync iterators run in the default
    executor so they never block the loop.  The producer stops when the client leaves.
    """

    __slots__ = ("content", "status", "headers", "content_type", "content_length")

    def __init__(self, content: AsyncIterable[Any] | Iterable[Any], status: int = 200,
                 headers: Fields = None, content_type: str | None = None,
                 content_length: int | None = None) -> None:
        self.content = content
        self.status = status
        self.headers = _fields(headers)
        self.content_type = content_type
        self.content_length = content_length

    async def send(self, conn: Any) -> None:
        conn.start_stream(self.status, self.headers, self.content_type,
                          -1 if self.content_length is None else self.content_length)
        content = self.content
        if hasattr(content, "__aiter__"):
            iterator = content.__aiter__()
            try:
                async for chunk in iterator:
                    await conn.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            finally:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
        else:
            pump = _SyncPump(content)
            try:
                while True:
                    chunk = await pump.next()
                    if chunk is _END:
                        break
                    await conn.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            finally:
                pump.close()
        conn.end_stream()


def to_response(result: Any) -> BaseResponse:
    """Turn what a handler returned into a response.

    ``str`` -> text/plain; ``bytes`` -> application/octet-stream; ``dict``/``list`` -> JSON;
    ``None`` -> 204; ``(body, status)`` and ``(body, status, headers)`` tuples.
    """
    if isinstance(result, BaseResponse):
        return result
    if isinstance(result, (dict, list)):  # before str and bytes: the usual API answer
        return JSONResponse(result)
    if isinstance(result, str):
        return Response(result.encode("utf-8"), 200, None, _TEXT)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(result, 200, None, "application/octet-stream")
    if result is None:
        return Response(b"", 204)
    if isinstance(result, tuple) and 2 <= len(result) <= 3:
        body, status, *rest = result
        response = to_response(body)
        response.status = status  # type: ignore[misc]  # every concrete response has the slot
        if rest:
            response.headers = response.headers + _fields(rest[0])  # type: ignore[misc]  # as status
        return response
    raise TypeError(f"a handler returned {type(result).__name__}, which is not a response")
