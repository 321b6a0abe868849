"""Responses: each hands status, fields and body to the core's writer."""
from __future__ import annotations

import asyncio
from typing import Any, AsyncIterable, Iterable, Iterator, Union

from cyserve._json import dumps

__all__ = ["BaseResponse", "Response", "JSONResponse", "StreamResponse", "to_response"]

Fields = Union[dict, Iterable, None]
_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"


def _fields(headers: Fields) -> list[tuple[str, str]]:
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


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


class Response(BaseResponse):
    """A whole response: ``Response(body, status=200, headers=None, content_type=None)``.

    ``str`` bodies are UTF-8 encoded and default to ``text/plain; charset=utf-8``.
    """

    __slots__ = ("body", "status", "headers", "content_type")

    def __init__(self, body: bytes | str = b"", status: int = 200, headers: Fields = None,
                 content_type: str | None = None) -> None:
        if isinstance(body, str):
            body = body.encode("utf-8")
            if content_type is None:
                content_type = _TEXT
        elif not isinstance(body, (bytes, bytearray, memoryview)):
            raise TypeError(f"Response body must be bytes or str, not {type(body).__name__}")
        self.body = body
        self.status = status
        self.headers = _fields(headers)
        self.content_type = content_type

    async def send(self, conn: Any) -> None:
        conn.respond(self.status, self.headers, self.body, self.content_type)


class JSONResponse(Response):
    """``data`` serialised as compact UTF-8 JSON; ``default`` handles types json can't."""

    __slots__ = ()

    def __init__(self, data: Any, status: int = 200, headers: Fields = None,
                 default: Any = None) -> None:
        super().__init__(dumps(data, default), status, headers, _JSON)


_END = object()


def _next_or_end(iterator: Iterator[Any]) -> Any:
    return next(iterator, _END)


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
            loop = asyncio.get_running_loop()
            iterator = iter(content)
            try:
                while True:
                    chunk = await loop.run_in_executor(None, _next_or_end, iterator)
                    if chunk is _END:
                        break
                    await conn.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        conn.end_stream()


def to_response(result: Any) -> BaseResponse:
    """Turn what a handler returned into a response.

    ``str`` -> text/plain; ``bytes`` -> application/octet-stream; ``dict``/``list`` -> JSON;
    ``None`` -> 204; ``(body, status)`` and ``(body, status, headers)`` tuples.
    """
    if isinstance(result, BaseResponse):
        return result
    if isinstance(result, str):
        return Response(result.encode("utf-8"), 200, None, _TEXT)
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(result, 200, None, "application/octet-stream")
    if isinstance(result, (dict, list)):
        return JSONResponse(result)
    if result is None:
        return Response(b"", 204)
    if isinstance(result, tuple) and 2 <= len(result) <= 3:
        body, status, *rest = result
        response = to_response(body)
        response.status = status
        if rest:
            response.headers = response.headers + _fields(rest[0])
        return response
    raise TypeError(f"a handler returned {type(result).__name__}, which is not a response")
