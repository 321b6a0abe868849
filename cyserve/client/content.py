"""Request bodies: ``content=``, ``json=``, ``data=`` and ``files=`` turned into what is sent.

A ``RequestContent`` is either ``body`` (bytes, sent with the head when small) or ``stream`` (a
factory of async iterators of bytes).  ``length`` is known for bytes, files and multipart bodies
made of them (sent with Content-Length) and unknown for async iterators (sent chunked, RFC 9112
§7.1, unless the caller gave Content-Length).  ``replayable`` says whether the same body can be
sent again (a 307/308 redirect, a retry on a stale pooled connection).
"""
from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable, Mapping
from urllib.parse import urlencode

from cyserve._json import dumps

__all__ = ["RequestContent", "encode_request", "file_chunks", "FILE_CHUNK_BYTES"]

FILE_CHUNK_BYTES = 256 * 1024


class RequestContent:
    __slots__ = ("body", "stream", "length", "content_type", "replayable")

    def __init__(self, body: bytes | None = None,
                 stream: Callable[[], AsyncIterator[bytes]] | None = None,
                 length: int | None = None, content_type: str | None = None,
                 replayable: bool = True) -> None:
        self.body = body
        self.stream = stream
        self.length = len(body) if body is not None else length
        self.content_type = content_type
        self.replayable = replayable


async def file_chunks(fileobj: Any, start: int | None, length: int | None,
                      chunk_bytes: int = FILE_CHUNK_BYTES) -> AsyncIterator[bytes]:
    """Read a binary file object from ``start`` in chunks, off the loop (the default executor),
    so a disk read never blocks other connections.  Stops after ``length`` bytes when given."""
    loop = asyncio.get_running_loop()
    if start is not None:
        await loop.run_in_executor(None, fileobj.seek, start)
    left = length
    while left is None or left > 0:
        want = chunk_bytes if left is None else min(chunk_bytes, left)
        chunk = await loop.run_in_executor(None, fileobj.read, want)
        if not chunk:
            if left:
                raise ValueError(f"file ended {left} bytes before its expected size")
            return
        if left is not None:
            left -= len(chunk)
        yield chunk


def _file_length(fileobj: Any) -> tuple[int | None, int | None]:
    """(start position, bytes from there to the end) for a regular seekable file, else Nones."""
    try:
        start = fileobj.tell()
        size = os.fstat(fileobj.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None, None
    return start, max(size - start, 0)


def _path_stream(path: Path) -> tuple[Callable[[], AsyncIterator[bytes]], int]:
    size = path.stat().st_size

    async def gen() -> AsyncIterator[bytes]:
        fileobj = await asyncio.get_running_loop().run_in_executor(None, path.open, "rb")
        try:
            async for chunk in file_chunks(fileobj, None, size):
                yield chunk
        finally:
            fileobj.close()
    return gen, size


def _fileobj_stream(fileobj: Any) -> tuple[Callable[[], AsyncIterator[bytes]], int | None, bool]:
    start, length = _file_length(fileobj)

    def factory() -> AsyncIterator[bytes]:
        return file_chunks(fileobj, start, length)
    return factory, length, start is not None


def _iter_stream(content: Any) -> Callable[[], AsyncIterator[bytes]]:
    used = False

    async def gen() -> AsyncIterator[bytes]:
        nonlocal used
        if used:
            raise RuntimeError("a streamed request body can only be sent once")
        used = True
        if hasattr(content, "__aiter__"):
            async for chunk in content:
                yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
        else:
            for chunk in content:
                yield chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
    return gen


def encode_content(content: Any) -> RequestContent:
    if isinstance(content, (bytes, bytearray, memoryview)):
        return RequestContent(bytes(content))
    if isinstance(content, str):
        return RequestContent(content.encode("utf-8"), content_type="text/plain; charset=utf-8")
    if isinstance(content, Path):
        factory, size = _path_stream(content)
        return RequestContent(stream=factory, length=size)
    if hasattr(content, "read"):
        factory, length, seekable = _fileobj_stream(content)
        return RequestContent(stream=factory, length=length, replayable=seekable)
    if hasattr(content, "__aiter__") or hasattr(content, "__iter__"):
        return RequestContent(stream=_iter_stream(content), replayable=False)
    raise TypeError(f"content= must be bytes, str, a file, a Path or an (async) iterable of bytes, "
                    f"not {type(content).__name__}")


def encode_request(content: Any = None, data: Any = None, files: Any = None,
                   json: Any = None) -> RequestContent | None:
    """Exactly one of the body arguments (``data`` may go with ``files``: form fields)."""
    if content is None and data is None and files is None and json is None:
        return None
    given = sum(x is not None for x in (content, json)) + (data is not None and files is None) \
        + (files is not None)
    if given > 1:
        raise TypeError("give only one of content=, json=, data= (with files=) or files=")
    if content is not None:
        return encode_content(content)
    if json is not None:
        return RequestContent(dumps(json), content_type="application/json")
    if files is not None:
        from cyserve.client.multipart import encode_multipart
        return encode_multipart(data, files)
    if data is not None:
        if isinstance(data, (bytes, bytearray, memoryview, str)):
            return encode_content(data)
        items: Iterable[tuple[Any, Any]] = data.items() if isinstance(data, Mapping) else data
        pairs: list[tuple[str, str]] = []
        for key, value in items:
            values = value if isinstance(value, (list, tuple)) else [value]
            pairs.extend((str(key), "" if v is None else str(v)) for v in values)
        return RequestContent(urlencode(pairs).encode("ascii"),
                              content_type="application/x-www-form-urlencoded")
    return None
