"""Content-coding codecs (RFC 9110 §8.4.1): the ``Codec`` plug point, the built-in ``br``,
``gzip``, ``deflate`` and ``zstd`` encoders and decoders, and bounded decoding of a request body.

A ``Codec`` is any object with ``name``, ``encoder()`` and ``decoder()``; encoders are streaming
(``compress``, a sync ``flush``, ``finish``), decoders bound their output per call so a small
compressed body cannot expand a thousandfold in one step.  Choosing a coding and wiring codecs
into requests and responses is the ``Compression`` middleware's job (``compression``).

``zstd`` (RFC 8878) is the standard library's ``compression.zstd`` from Python 3.14, and its
backport ``backports.zstd`` before (the ``zstd`` extra): one API on every version, the one
urllib3 and aiohttp use too.  It is imported on first use; without it the coding is unknown.
"""
from __future__ import annotations

import functools
import zlib
from types import ModuleType
from typing import Any, Callable, Protocol

import brotli

from cyserve.errors import HTTPError

__all__ = ["Codec", "Encoder", "Decoder", "MAX_CODINGS", "zstd_module", "require_zstd"]

_STEP_BYTES = 64 * 1024  # decoded bytes produced per step of a request body

#: The most content codings one message may stack, for request bodies (past it: 415) and
#: response bodies (past it: DecodingError).  RFC 9110 §8.4 sets no bound on the list, but each
#: coding is one more decoder (zlib's 32 KiB window, brotli's up to 16 MiB) chained behind the
#: previous one, and a list of thousands exhausts the stack.  Stacking a second compression
#: gains nothing, so real senders apply one coding, two at most; curl refuses past five
#: chained codings for the same reason (CVE-2022-32206), and so do we.
MAX_CODINGS = 5


class Encoder(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes:
        """Everything given so far, decodable now (a sync flush); the stream goes on."""
    def finish(self) -> bytes:
        """The end of the stream."""


class Decoder(Protocol):
    """Bounded decoding: ``decompress`` returns at most about ``max_bytes``; while
    ``needs_input`` is False it is called again with ``b""`` for the rest.  Corrupt input raises
    ``ValueError``."""

    needs_input: bool
    eof: bool
    def decompress(self, data: bytes, max_bytes: int) -> bytes: ...


class Codec(Protocol):
    name: str  # the content-coding token, lower case
    def encoder(self) -> Encoder: ...
    def decoder(self) -> Decoder: ...


class _Encoder:
    """An ``Encoder`` over zlib's or brotli's streaming compressor."""

    __slots__ = ("compress", "flush", "finish")

    def __init__(self, compress: Callable[[bytes], bytes], flush: Callable[[], bytes],
                 finish: Callable[[], bytes]) -> None:
        self.compress = compress
        self.flush = flush
        self.finish = finish


def _zlib_encoder(level: int, wbits: int) -> Encoder:
    c = zlib.compressobj(level, zlib.DEFLATED, wbits)
    return _Encoder(c.compress, functools.partial(c.flush, zlib.Z_SYNC_FLUSH), c.flush)


def _brotli_encoder(quality: int) -> Encoder:
    c = brotli.Compressor(quality=quality)
    return _Encoder(c.process, c.flush, c.finish)


class _ZlibDecoder:
    """gzip (``wbits=31``, several members allowed: RFC 1952 §2.2) or deflate (``wbits=None``:
    the zlib format RFC 9110 §8.4.1.2 names, or the raw deflate some clients send instead)."""

    __slots__ = ("_wbits", "_d", "_tail", "needs_input", "eof")

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits
        self._d: Any = None if wbits is None else zlib.decompressobj(wbits)
        self._tail = b""
        self.needs_input = True
        self.eof = False

    def decompress(self, data: bytes, max_bytes: int) -> bytes:
        if self._d is None:
            if not data:
                return b""
            # A zlib stream starts with CM=8 and a window of at most 2^15 (RFC 1950 §2.2).
            zlib_format = (data[0] & 0x0F) == 8 and (data[0] >> 4) <= 7
            self._d = zlib.decompressobj(15 if zlib_format else -15)
        d = self._d
        if d.eof and data:
            if self._wbits != 31:
                raise ValueError("data after the end of the compressed body")
            d = self._d = zlib.decompressobj(31)  # the next gzip member
        try:
            out: bytes = d.decompress(self._tail + data, max_bytes)
        except zlib.error as exc:
            raise ValueError(f"corrupt compressed body: {exc}") from None
        self._tail = d.unconsumed_tail
        if d.eof and d.unused_data:
            if self._wbits != 31:
                raise ValueError("data after the end of the compressed body")
            self._tail = d.unused_data
            self._d = d = zlib.decompressobj(31)
        self.needs_input = not self._tail
        self.eof = d.eof and not self._tail
        return out


class _BrotliDecoder:
    __slots__ = ("_d", "needs_input", "eof")

    def __init__(self) -> None:
        self._d = brotli.Decompressor()
        self.needs_input = True
        self.eof = False

    def decompress(self, data: bytes, max_bytes: int) -> bytes:
        if data and self._d.is_finished():
            raise ValueError("data after the end of the compressed body")
        try:
            out: bytes = self._d.process(data, output_buffer_limit=max_bytes)
        except brotli.error as exc:
            raise ValueError(f"corrupt compressed body: {exc}") from None
        # Output may still be pending once the input is consumed: ask again while the limit
        # was reached or the decoder refuses input.
        self.needs_input = not out or (len(out) < max_bytes and self._d.can_accept_more_data())
        self.eof = self._d.is_finished()
        return out


# RFC 9659 §3: for the "zstd" content coding, encoders must not need a window past 8 MiB and
# decoders need not accept one: a frame asking more is refused rather than allocated for.
_ZSTD_WINDOW_LOG = 23
# zstd's levels past 19 ("ultra") choose windows past that by default: theirs is capped.
_ZSTD_LAST_PLAIN_LEVEL = 19
_ZSTD_FEED_BYTES = 4 * 1024
_ZSTD_FREE_FRAMES = 64
_ZSTD_BYTES_PER_FRAME = 16 * 1024
_ZSTD_MISSING = "the zstd content coding needs the zstd extra: pip install 'cyserve[zstd]'"


@functools.lru_cache(maxsize=None)
def zstd_module() -> ModuleType | None:
    """``compression.zstd`` (Python 3.14+) or ``backports.zstd``, or None when neither is
    installed."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        try:
            from backports import zstd
        except ImportError:
            return None
    module: ModuleType = zstd
    return module


def require_zstd() -> ModuleType:
    zstd = zstd_module()
    if zstd is None:
        raise ImportError(_ZSTD_MISSING)
    return zstd


def _zstd_encoder(level: int) -> Encoder:
    zstd = require_zstd()
    params = zstd.CompressionParameter
    options = {params.compression_level: level}
    if level > _ZSTD_LAST_PLAIN_LEVEL:
        options[params.window_log] = _ZSTD_WINDOW_LOG
    c = zstd.ZstdCompressor(options=options)
    return _Encoder(c.compress, functools.partial(c.flush, c.FLUSH_BLOCK), c.flush)


class _ZstdDecoder:
    """zstd, one frame after another (RFC 8878 §3.1: a body may hold several, skippable ones
    too), each with its window bounded (RFC 9659).

    Each frame costs a new frame decoder (some 20 µs), so a megabyte of empty or one-byte
    frames would hold the loop for seconds: past ``_ZSTD_FREE_FRAMES`` frames, a body must
    have decoded ``_ZSTD_BYTES_PER_FRAME`` for each further one.  Encoders write one frame per
    body, or a few large ones (pzstd, the seekable format).  Input is fed to the frame decoder in
    pieces of at most ``_ZSTD_FEED_BYTES``: where a frame ends, the decoder copies the rest of
    what it was fed into ``unused_data``, so a whole chunk fed at once would be copied once per
    frame."""

    __slots__ = ("_zstd", "_d", "_input", "_pos", "_frames", "_decoded", "needs_input", "eof")

    def __init__(self) -> None:
        self._zstd = require_zstd()
        self._frames = 0
        self._decoded = 0
        self._d = self._frame()
        self._input = memoryview(b"")
        self._pos = 0  # the next byte of ``_input`` to feed
        self.needs_input = True
        self.eof = False

    def _frame(self) -> Any:
        self._frames += 1
        if self._frames > _ZSTD_FREE_FRAMES + self._decoded // _ZSTD_BYTES_PER_FRAME:
            raise ValueError(f"{self._frames} zstd frames for {self._decoded} decoded bytes")
        zstd = self._zstd
        return zstd.ZstdDecompressor(
            options={zstd.DecompressionParameter.window_log_max: _ZSTD_WINDOW_LOG})

    def decompress(self, data: bytes, max_bytes: int) -> bytes:
        if data:
            # Called with data only once needs_input said the last was used up.
            self._input = memoryview(data)
            self._pos = 0
        source = self._input
        d = self._d
        out = b""
        while not out:
            if d.eof:
                if self._pos >= len(source):
                    break
                d = self._d = self._frame()   # the next frame
            if d.needs_input:
                piece: bytes | memoryview = source[self._pos:self._pos + _ZSTD_FEED_BYTES]
                if not piece:
                    break
                self._pos += len(piece)
            else:
                piece = b""   # output still pending from what it holds
            try:
                out = d.decompress(piece, max_bytes)
            except self._zstd.ZstdError as exc:
                raise ValueError(f"corrupt compressed body: {exc}") from None
            if d.eof and d.unused_data:
                self._pos -= len(d.unused_data)   # fed past the frame's end: feed it again
        self._decoded += len(out)
        # What was fed and not decoded yet stays in ``_input``: the frame decoder may still
        # hand its tail back as ``unused_data`` when the frame ends on a later call.
        pending = self._pos < len(source)
        self.eof = d.eof and not pending
        self.needs_input = not pending and (d.eof or d.needs_input)
        return out


class _Builtin:
    """A built-in ``Codec``: its name and its encoder and decoder factories."""

    __slots__ = ("name", "encoder", "decoder")

    def __init__(self, name: str, encoder: Callable[[], Encoder],
                 decoder: Callable[[], Decoder]) -> None:
        self.name = name
        self.encoder = encoder
        self.decoder = decoder


def _compress_whole(codec: Codec, data: bytes) -> bytes:
    encoder = codec.encoder()
    return encoder.compress(data) + encoder.finish()


def _builtin_codecs(level: int, brotli_quality: int, zstd_level: int = 3) -> dict[str, Codec]:
    """The built-in codecs by name: zlib ``level`` for gzip and deflate, brotli's ``quality``,
    zstd's level (``zstd`` fails with ``ImportError`` when used without its binding)."""
    return {
        "br": _Builtin("br", functools.partial(_brotli_encoder, brotli_quality),
                       _BrotliDecoder),
        "gzip": _Builtin("gzip", functools.partial(_zlib_encoder, level, 31),
                         functools.partial(_ZlibDecoder, 31)),
        "deflate": _Builtin("deflate", functools.partial(_zlib_encoder, level, 15),
                            functools.partial(_ZlibDecoder, None)),
        "zstd": _Builtin("zstd", functools.partial(_zstd_encoder, zstd_level), _ZstdDecoder),
    }


class _DecodedBody:
    """A request body decoded on the fly: ``async read() -> bytes`` (``b""`` at the end)."""

    __slots__ = ("_source", "_decoder", "_limit", "_total", "_started", "_done")

    def __init__(self, source: Any, decoder: Decoder, limit: int) -> None:
        self._source = source
        self._decoder = decoder
        self._limit = limit
        self._total = 0
        self._started = False
        self._done = False

    async def _next_raw(self) -> bytes:
        source = self._source
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._source = b""
            return bytes(source)
        data: bytes = await source.read()
        return data

    async def read(self) -> bytes:
        decoder = self._decoder
        while not self._done:
            try:
                if not decoder.needs_input:
                    out = decoder.decompress(b"", _STEP_BYTES)
                    if not out and not decoder.needs_input:
                        raise ValueError("the decoder stalled")
                else:
                    raw = await self._next_raw()
                    if not raw:
                        self._done = True
                        if self._started and not decoder.eof:
                            raise HTTPError(400, "the compressed request body is truncated")
                        return b""
                    self._started = True
                    out = decoder.decompress(raw, _STEP_BYTES)
            except ValueError as exc:
                self._done = True
                raise HTTPError(400, f"undecodable request body: {exc}") from None
            if out:
                self._total += len(out)
                if self._total > self._limit:
                    self._done = True
                    raise HTTPError(413, f"the decoded request body exceeds {self._limit} bytes")
                return out
        return b""
