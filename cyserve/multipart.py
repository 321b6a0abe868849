"""Form bodies for ``Request.form()``: urlencoded, and multipart/form-data parsed as it streams in.

multipart/form-data (RFC 7578) goes through python-multipart's streaming ``MultipartParser``: a
small, fuzzed, maintained parser (Starlette's), where a home-grown one is exactly what broke in
Blazeio (boundary prefix hard-coded) and Areion (missing), SEEDS §1.3 and §6.  This module only
adapts it: the parser's callbacks become fields and files, file parts are written to a
``SpooledTemporaryFile`` that moves to disk past ``FormLimits.spool_max_bytes`` (disk writes go
to a thread), and every limit answers with an ``HTTPError`` that says which limit it was.
Memory stays bounded by one body chunk plus the spool threshold per file in flight.
"""
from __future__ import annotations

import asyncio
import inspect
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from cyserve.datastructures import FormData, Headers
from cyserve.errors import HTTPError

__all__ = ["FormLimits", "UploadFile", "parse_form"]

_MB = 1024 * 1024

# python-multipart 0.0.2x and later bound a part's header lines and each line's size
# themselves (8 lines, 4224 bytes by default), checked while scanning, before our callbacks
# see the bytes: it is handed our limits so they are the ones that hold, and its two limit
# errors (told apart only by their messages) answer 413 as ours do.  Older versions have no
# such limits: the callbacks below count on their own either way.
_PARSER_TAKES_LIMITS = "max_header_count" in inspect.signature(MultipartParser).parameters
_PARSER_COUNT_ERROR = "Maximum header count exceeded"
_PARSER_SIZE_ERROR = "Maximum header size exceeded"


@dataclass(frozen=True)
class FormLimits:
    """What ``Request.form()`` accepts; past each limit (a size or a count) it answers 413
    Content Too Large (RFC 9110 §15.5.14) with the limit's name.  A body that is malformed
    rather than too large (no boundary, a part without Content-Disposition, a truncated body,
    bytes the multipart grammar refuses) answers 400.

    The server's ``Limits.max_body_bytes`` still caps the body first (the core answers 413).
    """

    max_parts: int = 1000  # fields plus files (urlencoded: fields)
    max_field_bytes: int = 1 * _MB  # one plain field's value
    max_file_bytes: int = 100 * _MB  # one file part
    max_total_bytes: int = 128 * _MB  # the whole form body as sent
    spool_max_bytes: int = 1 * _MB  # a file stays in memory up to this, then moves to disk
    max_part_headers: int = 8  # header lines in one part
    max_part_header_bytes: int = 4096  # all header bytes of one part

    def __post_init__(self) -> None:
        for name in ("max_parts", "max_field_bytes", "max_file_bytes", "max_total_bytes",
                     "spool_max_bytes", "max_part_headers", "max_part_header_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FormLimits.{name} must be positive, got {getattr(self, name)}")


class UploadFile:
    """A file part of a multipart form: ``filename`` (as sent: untrusted, may hold path
    separators), ``content_type``, the part's ``headers``, ``size`` and ``file``, a
    ``SpooledTemporaryFile`` positioned at its start.  The async methods never block the loop:
    once the file is on disk they run in the default executor."""

    __slots__ = ("filename", "content_type", "headers", "size", "file", "_spool_max_bytes")

    def __init__(self, filename: str | None, content_type: str | None, headers: Headers,
                 spool_max_bytes: int = FormLimits.spool_max_bytes) -> None:
        self.filename = filename
        self.content_type = content_type
        self.headers = headers
        self.size = 0
        self.file = tempfile.SpooledTemporaryFile(max_size=spool_max_bytes)
        self._spool_max_bytes = spool_max_bytes

    @property
    def in_memory(self) -> bool:
        """False once the content passed the spool threshold and lives in a temporary file."""
        return not self.file._rolled  # type: ignore[attr-defined]  # the stdlib's own flag, untyped

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.in_memory:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size <= self._spool_max_bytes:
            self.file.write(data)
        else:  # on disk, or this write moves it there
            await asyncio.get_running_loop().run_in_executor(None, self.file.write, data)

    async def read(self, size: int = -1) -> bytes:
        data: bytes = await self._run(self.file.read, size)
        return data

    async def seek(self, offset: int, whence: int = 0) -> int:
        position: int = await self._run(self.file.seek, offset, whence)
        return position

    async def save(self, path: str) -> int:
        """Copy the whole content to ``path`` (created or truncated); returns the bytes copied."""
        def copy() -> int:
            self.file.seek(0)
            with open(path, "wb") as out:
                shutil.copyfileobj(self.file, out, 256 * 1024)
            return self.size
        return await asyncio.get_running_loop().run_in_executor(None, copy)

    def close(self) -> None:
        """Close and delete the temporary file.  The App does it for a request's files once its
        response is done; a file dropped before that closes as its last reference goes
        (``__del__``, by reference counting: the form parser keeps it in no reference cycle, so
        it does not wait for the cyclic GC)."""
        self.file.close()

    def __del__(self) -> None:
        # A request's files live as long as the request: close them with it, without the
        # ResourceWarning an unclosed temporary file would give.
        file = getattr(self, "file", None)
        if file is not None:
            file.close()

    def __repr__(self) -> str:
        return f"UploadFile(filename={self.filename!r}, content_type={self.content_type!r}, size={self.size})"


async def parse_form(content_type: str | None, chunks: AsyncIterator[bytes],
                     limits: FormLimits) -> FormData:
    """Parse a form body from its Content-Type and its chunks; 415 for other media types."""
    media, params = parse_options_header(content_type or "")
    if media == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise HTTPError(400, "multipart/form-data without a boundary parameter (RFC 7578 §4.1)")
        return await _MultipartReader(boundary, limits).read(chunks)
    if media == b"application/x-www-form-urlencoded":
        return await _read_urlencoded(chunks, limits)
    raise HTTPError(415, "form() needs Content-Type application/x-www-form-urlencoded or "
                         f"multipart/form-data, not {content_type!r}")


def _too_large(what: str, limit: int) -> HTTPError:
    return HTTPError(413, f"{what} is over the limit of {limit} bytes")


def _too_many_part_headers(limit: int) -> HTTPError:
    return HTTPError(413, f"a part has more than {limit} header lines (FormLimits.max_part_headers)")


def _part_headers_too_large(limit: int) -> HTTPError:
    return _too_large("a part's headers (FormLimits.max_part_header_bytes)", limit)


async def _read_urlencoded(chunks: AsyncIterator[bytes], limits: FormLimits) -> FormData:
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limits.max_total_bytes:
            raise _too_large("the form body (FormLimits.max_total_bytes)", limits.max_total_bytes)
        parts.append(chunk)
    # Browsers percent-encode everything but ASCII (WHATWG URL §5.2); UTF-8 throughout, with
    # invalid sequences replaced rather than refused.
    text = _text(b"".join(parts))
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="replace",
                          max_num_fields=limits.max_parts)
    except ValueError:
        raise HTTPError(413, f"the form has more than {limits.max_parts} fields "
                             "(FormLimits.max_parts)") from None
    for name, value in pairs:
        if len(value.encode("utf-8")) > limits.max_field_bytes:
            raise _too_large(f"form field {name!r} (FormLimits.max_field_bytes)", limits.max_field_bytes)
    return FormData(pairs)


def _text(raw: bytes) -> str:
    """Form text is UTF-8 (WHATWG URL §5.1, RFC 7578 §5.1); invalid sequences are replaced."""
    return raw.decode("utf-8", "replace")


# Events the parser's callbacks queue for the async side, one body chunk at a time.
_HEADERS, _DATA, _PART_END = 0, 1, 2


class _MultipartReader:
    """Feeds python-multipart chunk by chunk and turns its callbacks into fields and files.

    The callbacks are synchronous and may not await, so they only queue events; after each
    chunk the queue is played back, awaiting disk writes.  Part data is a memoryview into the
    chunk (no copy); nothing outlives the chunk except field values and the files.
    """

    def __init__(self, boundary: bytes, limits: FormLimits) -> None:
        self.limits = limits
        self.events: list[tuple[int, Any]] = []
        self.items: list[tuple[str, Any]] = []
        self.files: list[UploadFile] = []
        self.ended = False
        self.parts = 0
        self._header_lines: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._name = bytearray()
        self._value = bytearray()
        # Its per-line size bound gets our whole-part one: a line that passes it passes ours.
        parser_limits = ({"max_header_count": limits.max_part_headers,
                          "max_header_size": limits.max_part_header_bytes}
                         if _PARSER_TAKES_LIMITS else {})
        try:
            self.parser: MultipartParser | None = MultipartParser(boundary, {
                "on_part_begin": self._on_part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_end": self._on_end,
            }, **parser_limits)
        except FormParserError as exc:
            raise HTTPError(400, f"bad multipart boundary: {exc}") from None

    # ------------------------------------------------------------ parser callbacks (sync)
    def _on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise HTTPError(413, f"the form has more than {self.limits.max_parts} parts "
                                 "(FormLimits.max_parts)")
        self._header_lines = []
        self._header_bytes = 0

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_part_header_bytes:
            raise _part_headers_too_large(self.limits.max_part_header_bytes)

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._header_lines.append((bytes(self._name), bytes(self._value)))
        self._name.clear()
        self._value.clear()
        if len(self._header_lines) > self.limits.max_part_headers:
            raise _too_many_part_headers(self.limits.max_part_headers)

    def _on_headers_finished(self) -> None:
        self.events.append((_HEADERS, self._header_lines))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self.events.append((_DATA, memoryview(data)[start:end]))

    def _on_part_end(self) -> None:
        self.events.append((_PART_END, None))

    def _on_end(self) -> None:
        self.ended = True

    # ------------------------------------------------------------ async side
    async def read(self, chunks: AsyncIterator[bytes]) -> FormData:
        parser = self.parser
        if parser is None:
            raise RuntimeError("a _MultipartReader reads one body")
        limits, total = self.limits, 0
        field: bytearray | None = None
        upload: UploadFile | None = None
        name = ""
        try:
            async for chunk in chunks:
                total += len(chunk)
                if total > limits.max_total_bytes:
                    raise _too_large("the form body (FormLimits.max_total_bytes)",
                                     limits.max_total_bytes)
                try:
                    parser.write(bytes(chunk))
                except FormParserError as exc:
                    raise self._parser_error(exc) from None
                for kind, payload in self.events:
                    if kind == _DATA:
                        if upload is not None:
                            if upload.size + len(payload) > limits.max_file_bytes:
                                raise _too_large(f"file {upload.filename!r} in field {name!r} "
                                                 "(FormLimits.max_file_bytes)", limits.max_file_bytes)
                            await upload.write(payload)
                        elif field is not None:
                            if len(field) + len(payload) > limits.max_field_bytes:
                                raise _too_large(f"form field {name!r} (FormLimits.max_field_bytes)",
                                                 limits.max_field_bytes)
                            field += payload
                    elif kind == _HEADERS:
                        name, upload = self._start_part(payload)
                        field = None if upload is not None else bytearray()
                    else:  # _PART_END
                        if upload is not None:
                            await upload.seek(0)
                            self.items.append((name, upload))
                        elif field is not None:
                            self.items.append((name, _text(bytes(field))))
                        field = upload = None
                self.events.clear()
            parser.finalize()
            if not self.ended:
                raise HTTPError(400, "the multipart body ended before its closing boundary "
                                     "(RFC 2046 §5.1.1)")
        except BaseException:
            for file in self.files:
                file.close()
            raise
        finally:
            # The parser holds this reader's bound methods as its callbacks and the reader holds
            # the parser: a reference cycle, which would keep the reader, and through ``files``
            # every upload with its temporary file, until the cyclic GC ran.  The reader's edge
            # is dropped once reading is over, however it ended, so reference counting frees
            # both as soon as the caller lets go of the reader.  (``files`` stays: it is only a
            # list of the uploads, closed on failure, and in the form on success.)
            self.parser = None
            self.events.clear()
        return FormData(self.items)

    def _parser_error(self, exc: FormParserError) -> HTTPError:
        """413 for the parser's own header limits (they are ours, see _PARSER_TAKES_LIMITS),
        400 for everything else it refuses: malformed input."""
        if isinstance(exc, MultipartParseError):
            message = str(exc)
            if message == _PARSER_COUNT_ERROR:
                return _too_many_part_headers(self.limits.max_part_headers)
            if message == _PARSER_SIZE_ERROR:
                return _part_headers_too_large(self.limits.max_part_header_bytes)
        return HTTPError(400, f"malformed multipart body: {exc}")

    def _start_part(self, lines: list[tuple[bytes, bytes]]) -> tuple[str, UploadFile | None]:
        headers = Headers(items=[(_header_text(k).lower(), _header_text(v).strip()) for k, v in lines])
        disposition = headers.get("content-disposition")
        if disposition is None:
            raise HTTPError(400, "a multipart part has no Content-Disposition (RFC 7578 §4.2)")
        kind, params = parse_options_header(disposition.encode("utf-8", "surrogateescape"))
        if kind != b"form-data" or b"name" not in params:
            raise HTTPError(400, "a multipart part's Content-Disposition is not "
                                 "'form-data' with a name (RFC 7578 §4.2)")
        name = _header_text(params[b"name"])
        filename = params.get(b"filename")
        if filename is None:
            return name, None
        upload = UploadFile(_header_text(filename), headers.get("content-type"), headers,
                            self.limits.spool_max_bytes)
        self.files.append(upload)
        return name, upload


def _header_text(raw: bytes) -> str:
    """Part headers: browsers send UTF-8 file names raw (RFC 7578 §4.2, §5.1); else latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
