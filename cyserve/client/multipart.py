"""multipart/form-data encoder (RFC 7578), streamed: file parts are read from disk as they are
sent, never loaded whole.  The total length is computed up front when every part's size is known
(bytes, paths, regular files), so the body goes out with Content-Length."""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Mapping

from cyserve.client.content import RequestContent, _fileobj_stream, _path_stream

__all__ = ["encode_multipart"]


def _quote(value: str) -> str:
    # HTML's form-data encoding (what browsers send, RFC 7578 §4.2 defers to it): escape the
    # three characters that would end the quoted-string or the field line.
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


# RFC 9110 §5.1, §5.5 (which part headers follow, RFC 7578 §4.8): a name is a token; a value
# carries no control but HTAB, and no DEL.  CR, LF and NUL would also inject lines into the head.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _field(name: str, value: str) -> str:
    """One part-header line; ValueError for a name that is not a token or a control in the
    value (naming the header and the byte)."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"multipart part header name {name!r} is not a token (RFC 9110 §5.1)")
    bad = _VALUE_CONTROL.search(value)
    if bad is not None:
        raise ValueError(f"value of multipart part header {name!r} contains the control byte "
                         f"0x{ord(bad.group()):02x} (RFC 9110 §5.5: only VCHAR, SP, HTAB and "
                         "obs-text)")
    return f"{name}: {value}\r\n"


def _disposition(name: str, filename: str | None = None) -> str:
    """The Content-Disposition line of a part (RFC 7578 §4.2): quoted as browsers do, and
    checked as every other part header (a control in a name or file name is refused)."""
    value = f'form-data; name="{_quote(name)}"'
    if filename is not None:
        value += f'; filename="{_quote(filename)}"'
    return _field("Content-Disposition", value)


def _items(obj: Any) -> list[tuple[str, Any]]:
    if obj is None:
        return []
    items: Iterable[tuple[Any, Any]] = obj.items() if isinstance(obj, Mapping) else obj
    out = []
    for key, value in items:
        for v in value if isinstance(value, list) else [value]:
            out.append((str(key), v))
    return out


class _Part:
    __slots__ = ("head", "body", "factory", "length", "replayable")

    def __init__(self, head: bytes, body: bytes | None, factory: Any, length: int | None,
                 replayable: bool) -> None:
        self.head = head
        self.body = body
        self.factory = factory
        self.length = length
        self.replayable = replayable


def _file_part(boundary: str, name: str, value: Any) -> _Part:
    # value: a file object, a Path, bytes, or (filename, source[, content_type[, headers]])
    filename: str | None
    content_type: str | None = None
    extra: Mapping[str, str] = {}
    if isinstance(value, tuple):
        filename, source, *rest = value
        if rest:
            content_type = rest[0]
        if len(rest) > 1:
            extra = rest[1]
    else:
        source = value
        filename = None
        if isinstance(source, Path):
            filename = source.name
        elif hasattr(source, "name") and isinstance(source.name, str):
            filename = os.path.basename(source.name)
    if filename is None:
        filename = name
    if content_type is None:
        import mimetypes
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    head = (f"--{boundary}\r\n" + _disposition(name, filename)
            + _field("Content-Type", content_type))
    for key, val in extra.items():
        head += _field(key, val)
    head_bytes = (head + "\r\n").encode("utf-8")
    if isinstance(source, str):
        source = source.encode("utf-8")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _Part(head_bytes, bytes(source), None, len(source), True)
    if isinstance(source, Path):
        factory, size = _path_stream(source)
        return _Part(head_bytes, None, factory, size, True)
    if hasattr(source, "read"):
        factory, length, seekable = _fileobj_stream(source)
        return _Part(head_bytes, None, factory, length, seekable)
    raise TypeError(f"files[{name!r}] must be bytes, a Path or a binary file, not "
                    f"{type(source).__name__}")


def encode_multipart(data: Any, files: Any, boundary: str | None = None) -> RequestContent:
    """Form fields from ``data`` then file parts from ``files``."""
    boundary = boundary or secrets.token_hex(16)
    parts: list[_Part] = []
    for name, value in _items(data):
        text = value if isinstance(value, (bytes, bytearray)) else str(value).encode("utf-8")
        head = f"--{boundary}\r\n{_disposition(name)}\r\n".encode("utf-8")
        parts.append(_Part(head, bytes(text), None, len(text), True))
    for name, value in _items(files):
        parts.append(_file_part(boundary, name, value))
    tail = f"--{boundary}--\r\n".encode("ascii")
    content_type = f"multipart/form-data; boundary={boundary}"
    if all(p.body is not None for p in parts):
        body = b"".join(p.head + p.body + b"\r\n" for p in parts) + tail  # type: ignore[operator]
        return RequestContent(body, content_type=content_type)
    length: int | None = len(tail)
    for p in parts:
        if p.length is None or length is None:
            length = None
        else:
            length += len(p.head) + p.length + 2

    async def stream() -> AsyncIterator[bytes]:
        for p in parts:
            if p.body is not None:
                yield p.head + p.body + b"\r\n"
            else:
                yield p.head
                async for chunk in p.factory():
                    yield chunk
                yield b"\r\n"
        yield tail
    return RequestContent(stream=stream, length=length, content_type=content_type,
                          replayable=all(p.replayable for p in parts))
