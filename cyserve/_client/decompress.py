"""Response Content-Encoding decoders (RFC 9110 §8.4): gzip, deflate and br, bounded.

Each input piece is decoded in steps of at most ``STEP_BYTES`` of output, so a small compressed
piece can never expand into one huge allocation, and the decoded total is checked against
``max_decoded_bytes`` (a bomb raises ``DecodingError``).  ``br`` needs the ``brotli`` package;
without it ``br`` is not offered in Accept-Encoding.
"""
from __future__ import annotations

import zlib
from typing import Iterator, Protocol

from cyserve._client.errors import DecodingError

try:
    import brotli as _brotli
except ImportError:  # optional: br is simply not offered
    _brotli = None

__all__ = ["ACCEPT_ENCODING", "Decoder", "make_decoder", "STEP_BYTES"]

STEP_BYTES = 256 * 1024
ACCEPT_ENCODING = "gzip, deflate, br" if _brotli is not None else "gzip, deflate"


class _Codec(Protocol):
    def decode(self, data: bytes) -> Iterator[bytes]: ...
    def flush(self) -> Iterator[bytes]: ...


class _Zlib:
    """gzip (``wbits=16+15``) or deflate.  "deflate" should be zlib-wrapped (RFC 9110 §8.4.1.2)
    but some servers send raw deflate: the first bytes decide, as browsers do."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        self._probe = b""

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self._obj is None:
            self._probe += data
            if len(self._probe) < 2:
                return
            first = self._probe[0]
            zlib_wrapped = (first & 0x0F) == 8 and ((first << 8) | self._probe[1]) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
            data, self._probe = self._probe, b""
        obj = self._obj
        try:
            out = obj.decompress(data, STEP_BYTES)
            while True:
                if out:
                    yield out
                # A full step may leave output pending inside zlib even with no input left.
                if not obj.unconsumed_tail and len(out) < STEP_BYTES:
                    break
                out = obj.decompress(obj.unconsumed_tail, STEP_BYTES)
        except zlib.error as exc:
            raise DecodingError(f"corrupt {'gzip' if self._gzip else 'deflate'} body: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        if self._obj is None:
            if self._probe:
                raise DecodingError("truncated deflate body")
            return
        try:
            rest = self._obj.flush()
        except zlib.error as exc:
            raise DecodingError(f"corrupt compressed body: {exc}") from None
        if rest:
            yield rest
        if self._gzip and not self._obj.eof:
            raise DecodingError("truncated gzip body")


class _Brotli:
    def __init__(self) -> None:
        self._obj = _brotli.Decompressor()

    def decode(self, data: bytes) -> Iterator[bytes]:
        obj = self._obj
        try:
            out = obj.process(data, output_buffer_limit=STEP_BYTES)
            # Output held back by the limit comes out of further calls with empty input.
            while out:
                yield out
                if obj.is_finished():
                    return
                out = obj.process(b"", output_buffer_limit=STEP_BYTES)
        except _brotli.error as exc:
            raise DecodingError(f"corrupt br body: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        if not self._obj.is_finished():
            raise DecodingError("truncated br body")
        return iter(())


class Decoder:
    """Applies a chain of content codings in reverse order of listing (RFC 9110 §8.4)."""

    __slots__ = ("_codecs", "_max", "_total", "_fed")

    def __init__(self, codecs: list[_Codec], max_decoded_bytes: int) -> None:
        self._codecs = codecs
        self._max = max_decoded_bytes
        self._total = 0
        self._fed = False

    def _run(self, data: bytes, index: int, final: bool) -> Iterator[bytes]:
        if index == len(self._codecs):
            if data:
                self._total += len(data)
                if self._total > self._max:
                    raise DecodingError(
                        f"decoded body passes max_decoded_bytes ({self._max}): a compression bomb?")
                yield data
            return
        codec = self._codecs[index]
        for piece in codec.decode(data) if data else ():
            yield from self._run(piece, index + 1, False)
        if final:
            for piece in codec.flush():
                yield from self._run(piece, index + 1, False)
            yield from self._run(b"", index + 1, True)

    def decode(self, data: bytes) -> Iterator[bytes]:
        if data:
            self._fed = True
        return self._run(data, 0, False)

    def flush(self) -> Iterator[bytes]:
        # An empty body (HEAD, 204, 304, or just empty) is not a truncated stream: the coding
        # field then describes what a GET would have sent (RFC 9110 §9.3.2).
        if not self._fed:
            return iter(())
        return self._run(b"", 0, True)


def make_decoder(content_encoding: str | None, max_decoded_bytes: int) -> Decoder | None:
    """A decoder for the listed codings, or None when there is nothing (or nothing known) to undo:
    an unknown coding leaves the body as received rather than guessing."""
    if not content_encoding:
        return None
    names = [n.strip().lower() for n in content_encoding.split(",") if n.strip()]
    codecs: list[_Codec] = []
    for name in reversed(names):
        if name in ("gzip", "x-gzip"):
            codecs.append(_Zlib(True))
        elif name == "deflate":
            codecs.append(_Zlib(False))
        elif name == "br" and _brotli is not None:
            codecs.append(_Brotli())
        elif name == "identity":
            continue
        else:
            return None
    return Decoder(codecs, max_decoded_bytes) if codecs else None
