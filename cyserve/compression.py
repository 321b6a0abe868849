"""Content codings (RFC 9110 §8.4): negotiation, response compression, request decoding.

``Compression(...)`` is a middleware (``handler -> handler``).  Responses: the coding is chosen
from ``Accept-Encoding`` by q-value (``negotiate``); a whole ``Response`` body is compressed in
one go, any other response (streams, files) through one compressor for the whole body that is
flushed after every write, so each chunk can be decoded as it arrives (server-sent events keep
working).  Request bodies sent with ``Content-Encoding`` are decoded as the handler reads them,
with the decoded size bounded (a small compressed body can expand a thousandfold).

Codings are plug points typed by ``Codec``: ``"br"``, ``"gzip"`` and ``"deflate"`` are built
in, and ``"zstd"`` with the ``zstd`` extra installed; any object with ``name``, ``encoder()`` and
``decoder()`` can be passed too.  The codecs themselves and the bounded body decoder live in
``codecs``; this module picks and applies them.
"""
from __future__ import annotations

import asyncio
import functools
import re
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Sequence

from cyserve.codecs import (
    MAX_CODINGS, Codec, Decoder, Encoder, _builtin_codecs, _compress_whole, _DecodedBody,
    require_zstd,
)
from cyserve.config import Limits
from cyserve.errors import HTTPError
from cyserve.response import BaseResponse, Response, to_response

if TYPE_CHECKING:
    from cyserve._core.http.server import ServerRole

__all__ = ["Compression", "Codec", "Encoder", "Decoder", "negotiate", "parse_accept_encoding",
           "DEFAULT_TYPES"]
# _DecodedBody is imported from here by the codec tests.

Handler = Callable[[Any], Awaitable[BaseResponse]]

#: Media types worth compressing: entries ending in "/" are prefixes, entries starting with "+"
#: structured-syntax suffixes (RFC 6839), the rest exact types.  Images, audio, video and archives
#: are compressed already.
DEFAULT_TYPES = ("text/", "+json", "+xml", "application/json", "application/javascript",
                 "application/xml", "application/wasm", "font/ttf", "font/otf")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")  # RFC 9110 §12.4.2
_ALIASES = {"x-gzip": "gzip"}  # RFC 9110 §8.4.1.3
_OFFLOAD_BYTES = 1024 * 1024  # whole bodies above this are compressed off the loop
_VARY = ("Vary", "Accept-Encoding")


# ---------------------------------------------------------------------- negotiation
def parse_accept_encoding(value: str) -> dict[str, float]:
    """``{coding: q}`` from an ``Accept-Encoding`` value; malformed members are skipped."""
    prefs: dict[str, float] = {}
    for member in value.split(","):
        name, _, params = member.partition(";")
        name = name.strip().lower()
        if not name:
            continue  # empty list elements are allowed (RFC 9110 §5.6.1)
        q: float | None = 1.0
        for param in params.split(";") if params else ():
            key, _, raw = param.partition("=")
            if key.strip().lower() == "q":
                raw = raw.strip()
                q = float(raw) if _QVALUE.fullmatch(raw) else None
        if q is not None:
            prefs.setdefault(_ALIASES.get(name, name), q)
    return prefs


def negotiate(accept_encoding: str | None, available: Sequence[str]) -> str | None:
    """The coding of ``available`` (in server preference order) to send, None for identity.

    RFC 9110 §12.5.3: ``q=0`` forbids a coding; ``*`` stands for every coding not listed; the
    highest q wins and ties go to the earlier entry of ``available``.  Identity is always
    acceptable and wins only when listed explicitly with a higher q than the best coding.  No
    ``Accept-Encoding`` at all means identity: the RFC allows any coding then, but clients that
    send nothing are mostly ones that cannot decode.
    """
    if accept_encoding is None:
        return None
    prefs = parse_accept_encoding(accept_encoding)
    star = prefs.get("*", 0.0)
    best, best_q = None, 0.0
    for name in available:
        q = prefs.get(name, star)
        if q > best_q:
            best, best_q = name, q
    if best is None or best_q < prefs.get("identity", 0.0):
        return None
    return best


# ---------------------------------------------------------------------- the middleware
def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


class Compression:
    """``Compression(minimum_size=500, level=6, brotli_quality=4, zstd_level=3,
    allowed_types=DEFAULT_TYPES, encodings=("br", "gzip", "deflate"), decode_requests=True,
    max_decoded_bytes=None)``.

    ``encodings`` lists the codings in the server's order of preference, the order that breaks
    ties between codings a client accepts at the same q.  ``"zstd"`` (RFC 8878; level 3 is its
    command line's default) joins them when listed, ``encodings=("br", "zstd", "gzip",
    "deflate")``, and needs the ``zstd`` extra (``ImportError`` here without it).  It is not in
    the default list: what a server sends should not change with the packages that happen to be
    importable, and a zstd stream holds more memory per response (a window of up to 2 MiB at
    level 3) than a zlib one.

    Responses are left alone when: the status is 1xx, 204, 206 or 304; the media type is not in
    ``allowed_types``; they already have a ``Content-Encoding`` or a ``Content-Range``; they carry
    ``Cache-Control: no-transform`` (the per-response opt-out, e.g. for pages that reflect input
    next to secrets, the BREACH pattern); the request is HEAD; a whole body or a declared length
    is below ``minimum_size``.  Every response of an allowed type and status gets ``Vary:
    Accept-Encoding``.  A compressed response loses ``Content-Length`` (streams) and
    ``Accept-Ranges``, and a strong ``ETag`` becomes weak (RFC 9110 §8.8.3: the bytes differ).

    Request bodies with ``Content-Encoding`` (a list is decoded in reverse order) are swapped for
    a decoding stream: more than ``max_decoded_bytes`` decoded (default: the App's
    ``Limits.max_body_bytes``, bound at startup through ``bind_limits``) answers 413, corrupt
    data 400; a coding not in ``encodings``, or more than ``codecs.MAX_CODINGS`` codings stacked,
    415 with ``Accept-Encoding``.
    """

    def __init__(self, *, minimum_size: int = 500, level: int = 6, brotli_quality: int = 4,
                 zstd_level: int = 3, allowed_types: Iterable[str] = DEFAULT_TYPES,
                 encodings: Sequence[str | Codec] = ("br", "gzip", "deflate"),
                 decode_requests: bool = True, max_decoded_bytes: int | None = None) -> None:
        builtin = _builtin_codecs(level, brotli_quality, zstd_level)
        codecs: dict[str, Codec] = {}
        for item in encodings:
            if isinstance(item, str):
                if item not in builtin:
                    raise ValueError(f"unknown encoding {item!r}: pass a Codec for it")
                if item == "zstd":
                    require_zstd()  # missing the extra is a startup error, not a 500 later
                codec: Codec = builtin[item]
            else:
                codec = item
            codecs[codec.name.lower()] = codec
        if not codecs:
            raise ValueError("Compression needs at least one encoding")
        self.minimum_size = minimum_size
        self.allowed_types = tuple(t.lower() for t in allowed_types)
        self.codecs = codecs
        self.decode_requests = decode_requests
        self._decoded_from_app = max_decoded_bytes is None
        self.max_decoded_bytes = (Limits().max_body_bytes if max_decoded_bytes is None
                                  else max_decoded_bytes)
        self._names = tuple(codecs)
        self._accept_header = ", ".join(self._names)

    def bind_limits(self, limits: Limits) -> None:
        """Called by the App at startup: an unset ``max_decoded_bytes`` follows the App's body
        limit, so a compressed body can't decode past what an uncompressed one may send."""
        if self._decoded_from_app:
            self.max_decoded_bytes = limits.max_body_bytes

    def __call__(self, handler: Handler) -> Handler:
        async def compressing(request: Any) -> BaseResponse:
            if self.decode_requests and request.headers.get("content-encoding") is not None:
                self._decode_body(request)
            response = to_response(await handler(request))
            codec = None if request.method == "HEAD" else self._choose(
                request.headers.get("accept-encoding"))
            if isinstance(response, Response) and type(response).send is Response.send:
                return await self._whole(response, codec)
            return _Encoded(response, codec, self)
        return functools.update_wrapper(compressing, handler)

    def _choose(self, accept_encoding: str | None) -> Codec | None:
        name = negotiate(accept_encoding, self._names)
        return None if name is None else self.codecs[name]

    def eligible(self, status: int, fields: list[tuple[Any, Any]], content_type: Any) -> bool:
        """Could a response with this head be compressed (for some client)?"""
        if status < 200 or status in (204, 206, 304):
            return False
        for name, value in fields:
            key = _text(name).lower()
            if key == "content-encoding" and _text(value).strip().lower() not in ("", "identity"):
                return False
            if key == "content-range":
                return False
            if key == "cache-control" and "no-transform" in _text(value).lower():
                return False
            if key == "content-type" and content_type is None:
                content_type = value
        if content_type is None:
            return False
        media = _text(content_type).partition(";")[0].strip().lower()
        return any(media.startswith(t) if t.endswith("/") else media.endswith(t) if t[0] == "+"
                   else media == t for t in self.allowed_types)

    def _encoded_fields(self, fields: list[tuple[Any, Any]], coding: str | None) -> list[Any]:
        """``fields`` plus Vary; with a coding, plus Content-Encoding, minus Accept-Ranges, with a
        weak ETag."""
        out: list[Any] = []
        vary = False
        for name, value in fields:
            key = _text(name).lower()
            if key == "vary":
                lowered = _text(value).lower()
                vary = vary or "accept-encoding" in lowered or lowered.strip() == "*"
            elif coding is not None:
                if key == "accept-ranges":
                    continue
                if key == "etag" and not _text(value).startswith("W/"):
                    value = "W/" + _text(value)
            out.append((name, value))
        if not vary:
            out.append(_VARY)
        if coding is not None:
            out.append(("Content-Encoding", coding))
        return out

    async def _whole(self, response: Response, codec: Codec | None) -> Response:
        if not self.eligible(response.status, response.headers, response.content_type):
            return response
        body = response.body
        encoded = None
        if codec is not None and len(body) >= self.minimum_size:
            if len(body) > _OFFLOAD_BYTES:
                loop = asyncio.get_running_loop()
                encoded = await loop.run_in_executor(None, _compress_whole, codec, bytes(body))
            else:
                encoded = _compress_whole(codec, bytes(body))
            if len(encoded) >= len(body):
                encoded = None  # no gain: send it as it is
        if encoded is None:
            return Response(body, response.status, self._encoded_fields(response.headers, None),
                            response.content_type)
        assert codec is not None  # only a codec encodes
        fields = self._encoded_fields(response.headers, codec.name)
        return Response(encoded, response.status, fields, response.content_type)

    def _decode_body(self, request: Any) -> None:
        codings = [c.strip().lower() for line in request.headers.getlist("content-encoding")
                   for c in line.split(",")]
        codecs = []
        for coding in codings:
            if coding in ("", "identity"):
                continue
            codec = self.codecs.get(_ALIASES.get(coding, coding))
            if codec is None:
                # RFC 9110 §15.5.16 and §12.5.3: 415, saying which codings are accepted.
                raise HTTPError(415, f"unsupported request Content-Encoding {coding!r}",
                                [("Accept-Encoding", self._accept_header)])
            codecs.append(codec)
            if len(codecs) > MAX_CODINGS:
                # Each coding chains one more decoder (a stack of thousands overflows the
                # stack): a content coding this server does not accept, so 415 as above.
                raise HTTPError(415, f"the request body has more than {MAX_CODINGS} content "
                                     "codings stacked", [("Accept-Encoding", self._accept_header)])
        source = request.raw_body
        # RFC 9110 §8.4: codings are listed in the order applied, so decode from the last.
        for codec in reversed(codecs):
            source = _DecodedBody(source, codec.decoder(), self.max_decoded_bytes)
        if codecs:
            request.replace_body(source)



class _Encoded(BaseResponse):
    """A response whose head and body reach the writer only in ``send``: it sends through a
    connection wrapper that compresses on the way."""

    __slots__ = ("inner", "_codec", "_policy")

    def __init__(self, inner: BaseResponse, codec: Codec | None, policy: Compression) -> None:
        self.inner = inner
        self._codec = codec
        self._policy = policy

    status = property(lambda self: self.inner.status,
                      lambda self, value: setattr(self.inner, "status", value))
    headers = property(lambda self: self.inner.headers,
                       lambda self, value: setattr(self.inner, "headers", value))
    content_type = property(lambda self: self.inner.content_type,
                            lambda self, value: setattr(self.inner, "content_type", value))

    async def send(self, conn: Any) -> None:
        wrapper = _EncodingConn(conn, self._codec, self._policy)
        await self.inner.send(wrapper)
        await wrapper.finish()


class _EncodingConn:
    """The connection API (``respond``, ``start_stream``, ``write``, ``end_stream``) with the
    body compressed; anything else is the real connection's."""

    __slots__ = ("_conn", "_codec", "_policy", "_encoder", "_ended")

    def __init__(self, conn: Any, codec: Codec | None, policy: Compression) -> None:
        self._conn: ServerRole = conn
        self._codec = codec
        self._policy = policy
        self._encoder: Encoder | None = None
        self._ended = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def respond(self, status: int, fields: Any, body: Any, content_type: Any = None) -> None:
        fields = list(fields or ())
        policy = self._policy
        if policy.eligible(status, fields, content_type):
            codec = self._codec
            if codec is not None and len(body) >= policy.minimum_size:
                encoded = _compress_whole(codec, bytes(body))
                if len(encoded) < len(body):
                    self._conn.respond(status, policy._encoded_fields(fields, codec.name), encoded,
                                       content_type)
                    return
            fields = policy._encoded_fields(fields, None)
        self._conn.respond(status, fields, body, content_type)

    def start_stream(self, status: int, fields: Any = None, content_type: Any = None,
                     content_length: int = -1) -> None:
        fields = list(fields or ())
        policy = self._policy
        if policy.eligible(status, fields, content_type):
            codec = self._codec
            if codec is not None and (content_length < 0 or content_length >= policy.minimum_size):
                self._encoder = codec.encoder()
                fields = policy._encoded_fields(fields, codec.name)
                content_length = -1  # the encoded length is not known up front
            else:
                fields = policy._encoded_fields(fields, None)
        self._conn.start_stream(status, fields, content_type, content_length)

    def write(self, data: bytes) -> Awaitable[None]:
        encoder = self._encoder
        if encoder is None:
            return self._conn.write(data)
        if not data:
            return self._conn.drain()
        # One compressor for the whole body, flushed per write: the client can decode each
        # chunk as soon as it arrives (server-sent events), at a small cost in ratio.
        return self._conn.write(encoder.compress(bytes(data)) + encoder.flush())

    def end_stream(self) -> None:
        if self._encoder is None:
            self._conn.end_stream()
        else:
            self._ended = True  # the encoder's tail must be written first: see finish()

    async def finish(self) -> None:
        if self._ended and self._encoder is not None:
            tail = self._encoder.finish()
            self._encoder = None
            if tail:
                await self._conn.write(tail)
            self._conn.end_stream()
