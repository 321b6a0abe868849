"""FileResponse: a file streamed through the writer, with validators, preconditions and ranges;
``OpenFile``, the file it reads, for anything else that sends one (the ASGI adapter's
``http.response.pathsend``).

uvloop has no ``sendfile``, so a file goes out in ``chunk_bytes`` pieces: each is read with
``os.pread`` in the default executor (the loop never blocks on the disk) and handed to
``await conn.write``, which waits while the transport is above its high water mark.  The next
chunk is read only after the previous one was accepted, so one response holds at most one chunk.

Conditional and range requests are evaluated in ``send`` against the ``fstat`` of the file
descriptor actually being read, so validators, ``Content-Length`` and the bytes sent always
describe the same file even if it is replaced meanwhile.
"""
from __future__ import annotations

import asyncio
import datetime
import email.utils
import mimetypes
import os
import re
import secrets
import stat as stat_module
import time
from typing import Any, Awaitable, Callable, Iterable, Union
from urllib.parse import quote

from cyserve.datastructures import Headers, field_value
from cyserve.response import BaseResponse, http_date

__all__ = ["FileResponse", "OpenFile", "guess_type", "content_disposition", "make_etag",
           "http_date", "parse_http_date", "parse_range", "evaluate_preconditions", "MAX_RANGES"]

#: More ranges than this in one Range header are ignored and the whole file is sent (RFC 9110
#: §14.2 lets a server ignore a Range field; many small ranges are a known amplification trick).
MAX_RANGES = 16

# A private table: the stdlib's built-in map plus modern types, never the host's /etc/mime.types,
# so a file gets the same type on every machine.
_TYPES = mimetypes.MimeTypes()
for _ext, _type in ((".js", "text/javascript"), (".mjs", "text/javascript"),  # RFC 9239
                    (".wasm", "application/wasm"), (".webp", "image/webp"), (".avif", "image/avif"),
                    (".woff", "font/woff"), (".woff2", "font/woff2"), (".ttf", "font/ttf"),
                    (".otf", "font/otf"), (".md", "text/markdown"), (".webmanifest",
                    "application/manifest+json"), (".json", "application/json")):
    _TYPES.add_type(_type, _ext)
Fields = Union[dict[str, str], Iterable[tuple[str, str]]]
_UTF8_TYPES = ("application/json", "application/javascript", "application/xml",
               "image/svg+xml", "application/manifest+json")
_OCTET = "application/octet-stream"
# A name like ``x.tar.gz`` is a gzip file to the client, not a tar sent with a content coding.
_ARCHIVE_TYPES = {"gzip": "application/gzip", "br": "application/x-brotli",
                  "bzip2": "application/x-bzip2", "xz": "application/x-xz",
                  "compress": "application/x-compress"}
# RFC 9110 §15.4.5: a 304 carries the fields a 200 would have sent that guide caches.
_NOT_MODIFIED_FIELDS = frozenset(("cache-control", "content-location", "date", "etag", "expires",
                                  "vary", "last-modified"))
_ETAG = re.compile(r'(W/)?"([^"]*)"')
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_QUOTED_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\%]')
_ATTR_CHARS = "!#$&+-.^_`|~"  # RFC 5987 §3.2.1 attr-char, besides ALPHA and DIGIT


def guess_type(path: str) -> str:
    """The media type for ``path``'s extension; text types get ``; charset=utf-8``."""
    kind, encoding = _TYPES.guess_type(path, strict=False)
    if encoding is not None:
        return _ARCHIVE_TYPES.get(encoding, _OCTET)
    if kind is None:
        return _OCTET
    if kind.startswith("text/") or kind in _UTF8_TYPES:
        return kind + "; charset=utf-8"
    return kind


def content_disposition(filename: str, kind: str = "attachment") -> str:
    """``Content-Disposition`` for ``filename``: an ASCII ``filename=`` fallback, plus RFC 5987
    ``filename*=UTF-8''…`` when the name is not plain ASCII (RFC 6266 §4.3)."""
    fallback = _QUOTED_UNSAFE.sub("_", filename)
    value = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        value += "; filename*=UTF-8''" + quote(filename, safe=_ATTR_CHARS, errors="surrogateescape")
    return value


def make_etag(st: os.stat_result, coding: str | None = None) -> str:
    """A strong ETag from size and mtime in nanoseconds, per content coding (RFC 9110 §8.8.3).

    The inode is left out: replicas of one file behind a load balancer must agree."""
    tag = f"{st.st_size:x}-{st.st_mtime_ns:x}"
    return f'"{tag}-{coding}"' if coding else f'"{tag}"'


def parse_http_date(value: str | None) -> int | None:
    """Seconds since the epoch, or None for anything that is not a valid HTTP-date."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        if parsed[9] is None:  # asctime-date has no zone: it is GMT (RFC 9110 §5.6.7)
            parsed = parsed[:9] + (0,)
        datetime.datetime(*parsed[:6])  # rejects "31 Feb" and "99 Nov"
        return int(email.utils.mktime_tz(parsed))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _entity_tags(value: str) -> list[tuple[bool, str]] | None:
    """``[(weak, opaque), ...]`` of a list of entity-tags, or None for ``*``."""
    if value.strip() == "*":
        return None
    return [(bool(m.group(1)), m.group(2)) for m in _ETAG.finditer(value)]


def _field(headers: Headers, name: str) -> str | None:
    """A list-valued field with all its lines joined (RFC 9110 §5.3)."""
    if headers.get(name) is None:
        return None
    return ", ".join(headers.getlist(name))


def evaluate_preconditions(headers: Headers, method: str, etag: str, mtime_s: int,
                           now_s: float | None = None) -> int:
    """RFC 9110 §13.2.2, in its order: 0 to go on, 304 Not Modified or 412 Precondition Failed."""
    ours = _entity_tags(etag)
    weak, opaque = ours[0] if ours else (True, etag)
    if_match = _field(headers, "if-match")
    if if_match is not None:
        tags = _entity_tags(if_match)
        # §13.1.1: If-Match uses the strong comparison.
        if tags is not None and not any(not w and not weak and o == opaque for w, o in tags):
            return 412
    else:
        since = parse_http_date(headers.get("if-unmodified-since"))
        if since is not None and mtime_s > since:
            return 412
    if_none_match = _field(headers, "if-none-match")
    if if_none_match is not None:
        tags = _entity_tags(if_none_match)
        # §13.1.2: If-None-Match uses the weak comparison; "*" matches any current representation.
        if tags is None or any(o == opaque for _, o in tags):
            return 304 if method in ("GET", "HEAD") else 412
    elif method in ("GET", "HEAD"):
        # §13.1.3: ignored when If-None-Match is present, when invalid, or when in the future.
        since = parse_http_date(headers.get("if-modified-since"))
        if since is not None and mtime_s <= since <= (now_s if now_s is not None else time.time()):
            return 304
    return 0


def parse_range(value: str, size: int) -> list[tuple[int, int]] | None:
    """Byte ranges of ``Range: value`` for a ``size``-byte file, as inclusive ``(first, last)``.

    None: ignore the field and send the whole file (another unit, bad syntax, more than
    ``MAX_RANGES`` ranges, or an empty file).  ``[]``: nothing satisfiable, answer 416.
    Ranges that overlap are sorted and merged (RFC 9110 §14.6 lets a server coalesce them);
    otherwise the client's order is kept.
    """
    unit, sep, specs = value.partition("=")
    if not sep or unit.strip().lower() != "bytes" or size <= 0:
        return None
    ranges: list[tuple[int, int]] = []
    count = 0
    for spec in specs.split(","):
        spec = spec.strip()
        if not spec:
            continue  # empty list elements are allowed (RFC 9110 §5.6.1)
        count += 1
        if count > MAX_RANGES:
            return None
        m = _RANGE_SPEC.fullmatch(spec)
        if m is None or not (m.group(1) or m.group(2)):
            return None
        first_s, last_s = m.group(1).lstrip("0") or "0", m.group(2).lstrip("0") or "0"
        if not m.group(1):  # suffix-range: the last N bytes (§14.1.1)
            length = _position(last_s, size)
            if length > 0:
                ranges.append((max(size - length, 0), size - 1))
            continue
        if m.group(2) and (len(last_s), last_s) < (len(first_s), first_s):
            return None  # an invalid range-spec makes the whole field invalid (§14.1.1)
        first = _position(first_s, size)
        last = _position(last_s, size) if m.group(2) else size - 1
        if first < size:
            ranges.append((first, min(last, size - 1)))
    if len(ranges) > 1:
        ordered = sorted(ranges)
        if any(b[0] <= a[1] for a, b in zip(ordered, ordered[1:])):
            merged = [ordered[0]]
            for first, last in ordered[1:]:
                if first <= merged[-1][1] + 1:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], last))
                else:
                    merged.append((first, last))
            ranges = merged
    return ranges


def _position(digits: str, size: int) -> int:
    """A range position or suffix length (``1*DIGIT`` without leading zeros) as an int, capped
    at ``size``.

    RFC 9110 §14.1.1 bounds no position, and every value >= ``size`` means the same: a first-pos
    past the end is unsatisfiable (416 when no other range is, §15.5.17), a last-pos or suffix
    length past it reaches the end.  So a 5000-digit number is answered as any other large one
    (206 or 416, never "ignored" for its length), and is never converted: ``int()`` refuses
    more than 4300 digits (``sys.int_info``) and is quadratic below that.
    """
    if len(digits) > len(str(size)):
        return size
    return min(int(digits), size)


def _if_range_holds(value: str | None, etag: str, mtime_s: int, now_s: float) -> bool:
    """RFC 9110 §13.1.5: apply Range only if the validator still matches, strongly."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return not etag.startswith("W/") and value == etag
    since = parse_http_date(value)
    # A date is a strong validator only when the file was last changed at least a second ago.
    return since is not None and since == mtime_s and now_s - mtime_s >= 1


class OpenFile:
    """A regular file open for sending, read off the loop.

    ``file = await OpenFile.open(path)`` opens it in the default executor (a missing file is
    ``FileNotFoundError``, anything but a regular file ``IsADirectoryError``, as well as the
    ``OSError`` of the open itself); ``file.stat`` is the ``fstat`` of the descriptor that is read,
    so whatever a response says about the file (length, validators) describes the bytes sent even
    if the path is replaced meanwhile.  ``await file.read(n, offset)`` is one ``os.pread`` in the
    executor; ``await file.copy_to(write, offset, length, chunk_bytes)`` sends a range through
    ``await write(chunk)``, one chunk at a time.  ``close()`` (or ``async with``) closes it.

    Cancellation: a read still running in its thread when the task is cancelled must not race
    ``close`` (the descriptor number could be reused and the thread would read another file), so
    closing waits for it; a cancelled ``open`` closes what it opened.
    """

    __slots__ = ("fd", "stat", "_busy")

    def __init__(self, fd: int, st: os.stat_result) -> None:
        self.fd = fd
        self.stat = st
        self._busy: asyncio.Future[bytes] | None = None

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> OpenFile:
        job = asyncio.get_running_loop().run_in_executor(None, _open_regular, os.fspath(path))
        try:
            fd, st = await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(_close_opened)
            raise
        return cls(fd, st)

    async def read(self, n: int, offset: int) -> bytes:
        """Up to ``n`` bytes from ``offset`` (fewer at the end of the file, ``b""`` past it)."""
        job = self._busy = asyncio.get_running_loop().run_in_executor(
            None, os.pread, self.fd, n, offset)
        return await asyncio.shield(job)

    async def copy_to(self, write: Callable[[bytes], Awaitable[Any]], offset: int = 0,
                      length: int | None = None, chunk_bytes: int = 65536) -> int:
        """Send ``length`` bytes from ``offset`` (None: to the end of the file as ``stat`` saw
        it) through ``await write(chunk)``, each chunk at most ``chunk_bytes``; the next is read
        only once ``write`` returned, so backpressure holds one chunk.  Returns the bytes sent:
        fewer than asked when the file shrank, which the caller's framing must treat as a body
        cut short (the core closes a Content-Length response that ends short, RFC 9112 §6.3)."""
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        if offset < 0 or (length is not None and length < 0):
            raise ValueError(f"offset and length are not negative, got {offset}, {length}")
        if length is None:
            length = max(self.stat.st_size - offset, 0)
        sent = 0
        while sent < length:
            data = await self.read(min(chunk_bytes, length - sent), offset + sent)
            if not data:
                break
            await write(data)
            sent += len(data)
        return sent

    async def __aenter__(self) -> OpenFile:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the descriptor, once any read still in its thread has finished."""
        busy = self._busy
        if busy is not None and not busy.done():
            busy.add_done_callback(self._close_after)
        else:
            os.close(self.fd)

    def _close_after(self, job: asyncio.Future[Any]) -> None:
        if not job.cancelled():
            job.exception()  # retrieved: the read's outcome no longer matters
        os.close(self.fd)


def _open_regular(path: str) -> tuple[int, os.stat_result]:
    # O_NONBLOCK: a FIFO swapped in for the file must not block this thread in open().
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat_module.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{path!r} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _close_opened(job: asyncio.Future[tuple[int, os.stat_result]]) -> None:
    if not job.cancelled() and job.exception() is None:
        os.close(job.result()[0])


class FileResponse(BaseResponse):
    """A file sent in chunks: ``FileResponse(path, status=200, headers=None, content_type=None,
    filename=None, chunk_bytes=65536, stat_result=None, request=None)``.

    - ``content_type``: guessed from ``filename`` or ``path`` when None (see ``guess_type``).
    - ``filename``: adds ``Content-Disposition`` (``content_disposition_type``, default
      ``attachment``) with RFC 6266/5987 encoding.
    - ``ETag`` (see ``make_etag``; a ``Content-Encoding`` in ``headers`` makes it distinct per
      coding) and ``Last-Modified`` are added unless ``headers`` has them; ``Accept-Ranges: bytes``
      on 200.
    - ``request``: when given, a 2xx response evaluates ``If-Match``, ``If-Unmodified-Since``,
      ``If-None-Match`` and ``If-Modified-Since`` (answering 304 or 412), and a 200 to a GET
      honours ``Range``/``If-Range`` (206, multipart/byteranges, or 416); a HEAD is answered
      without reading the file.  Without it the whole file is sent, as to a plain GET.
    - ``stat_result``: the ``os.stat`` the caller already checked (``StaticFiles`` does); if the
      file opened is no longer that one (device and inode differ) the answer is 404, so a path
      swapped for a symlink after the check is never followed.

    Status and fields are final only in ``send``; middleware that must see them wraps ``conn``.
    A missing or unreadable file answers 404; a file that shrinks while being sent cuts the body
    short and the core closes the connection (RFC 9112 §6.3).
    """

    __slots__ = ("path", "status", "headers", "content_type", "filename", "chunk_bytes",
                 "stat_result", "request", "content_disposition_type")

    def __init__(self, path: str | os.PathLike[str], *, status: int = 200,
                 headers: Fields | None = None,
                 content_type: str | None = None, filename: str | None = None,
                 chunk_bytes: int = 65536, stat_result: os.stat_result | None = None,
                 request: Any = None, content_disposition_type: str = "attachment") -> None:
        if chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.path = os.fspath(path)
        self.status = status
        self.headers = list(headers.items()) if isinstance(headers, dict) else list(headers or ())
        self.content_type = content_type or guess_type(filename or self.path)
        self.filename = filename
        self.chunk_bytes = chunk_bytes
        self.stat_result = stat_result
        self.request = request
        self.content_disposition_type = content_disposition_type

    async def send(self, conn: Any) -> None:
        try:
            file = await OpenFile.open(self.path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError):
            conn.respond(404, None, b"404 Not Found\n", "text/plain; charset=utf-8")
            return
        try:
            expected = self.stat_result
            if expected is not None and (file.stat.st_dev, file.stat.st_ino) != (
                    expected.st_dev, expected.st_ino):
                conn.respond(404, None, b"404 Not Found\n", "text/plain; charset=utf-8")
                return
            await self._send_open(conn, file)
        finally:
            file.close()

    async def _send_open(self, conn: Any, file: OpenFile) -> None:
        st = file.stat
        size = st.st_size
        mtime_s = int(st.st_mtime)
        fields = list(self.headers)
        etag = field_value(fields, "etag")
        if etag is None:
            etag = make_etag(st, field_value(fields, "content-encoding"))
            fields.append(("ETag", etag))
        if field_value(fields, "last-modified") is None:
            fields.append(("Last-Modified", http_date(mtime_s)))
        if self.filename is not None:
            fields.append(("Content-Disposition",
                           content_disposition(self.filename, self.content_disposition_type)))
        status = self.status
        request = self.request
        method = "GET" if request is None else request.method
        ranges = None
        if request is not None and 200 <= status < 300:
            headers = request.headers
            now_s = time.time()
            verdict = evaluate_preconditions(headers, method, etag, mtime_s, now_s)
            if verdict == 304:
                kept = [(k, v) for k, v in fields if k.lower() in _NOT_MODIFIED_FIELDS]
                conn.respond(304, kept, b"", None)
                return
            if verdict == 412:
                conn.respond(412, None, b"", None)
                return
            raw_range = headers.get("range")
            # RFC 9110 §14.2: range handling is defined for GET only.
            if (raw_range is not None and status == 200 and method == "GET"
                    and _if_range_holds(headers.get("if-range"), etag, mtime_s, now_s)):
                ranges = parse_range(raw_range, size)
                if ranges == []:
                    conn.respond(416, [("Content-Range", f"bytes */{size}")], b"", None)
                    return
        if status == 200:
            fields.append(("Accept-Ranges", "bytes"))
        if not ranges:
            conn.start_stream(status, fields, self.content_type, size)
            if method != "HEAD":
                await file.copy_to(conn.write, 0, size, self.chunk_bytes)
        elif len(ranges) == 1:
            first, last = ranges[0]
            fields.append(("Content-Range", f"bytes {first}-{last}/{size}"))
            conn.start_stream(206, fields, self.content_type, last - first + 1)
            await file.copy_to(conn.write, first, last - first + 1, self.chunk_bytes)
        else:
            await self._send_multipart(conn, file, fields, ranges, size)
        conn.end_stream()

    async def _send_multipart(self, conn: Any, file: OpenFile, fields: list[tuple[str, str]],
                              ranges: list[tuple[int, int]], size: int) -> None:
        # RFC 9110 §14.6: each part carries Content-Type and Content-Range; the CRLF before a
        # delimiter belongs to the delimiter, so part bodies are exact.
        boundary = secrets.token_hex(16)
        part_type = self.content_type
        heads = [(b"\r\n" if i else b"") + (
            f"--{boundary}\r\nContent-Type: {part_type}\r\n"
            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n").encode("latin-1")
            for i, (first, last) in enumerate(ranges)]
        tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
        total = sum(map(len, heads)) + sum(last - first + 1 for first, last in ranges) + len(tail)
        conn.start_stream(206, fields, f"multipart/byteranges; boundary={boundary}", total)
        for head, (first, last) in zip(heads, ranges):
            await conn.write(head)
            if await file.copy_to(conn.write, first, last - first + 1,
                                  self.chunk_bytes) < last - first + 1:
                return  # the file shrank: end_stream sees the short body and closes
        await conn.write(tail)
