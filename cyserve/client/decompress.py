"""Response Content-Encoding decoders (RFC 9110 §8.4): gzip, deflate, br and zstd, bounded.

The decoding itself is the server's (``cyserve.codecs``, which also undoes request bodies): one
implementation of the zlib/brotli/zstd details (raw-deflate detection, gzip members, zstd frames
and window, bounded output).  zstd is decoded, and offered in ``Accept-Encoding``, only when its
binding is installed (the ``zstd`` extra); otherwise a zstd body is left as received, like any
coding not known here.
Each input piece is decoded in steps of at most ``STEP_BYTES`` of output, so a small compressed
piece can never expand into one huge allocation, and the decoded total is checked against
``max_decoded_bytes`` (a bomb raises ``DecodingError``).
"""
from __future__ import annotations

from typing import Callable, Iterator

from cyserve.errors import DecodingError
from cyserve.codecs import Decoder as _StepDecoder
from cyserve.codecs import MAX_CODINGS, _BrotliDecoder, _ZlibDecoder, _ZstdDecoder, zstd_module

__all__ = ["accept_encoding", "Decoder", "make_decoder", "STEP_BYTES"]

STEP_BYTES = 256 * 1024

# coding -> (its name in errors, a new step decoder); x-gzip is gzip (RFC 9110 §8.4.1.3).
_FACTORIES: dict[str, Callable[[], tuple[str, _StepDecoder]]] = {
    "gzip": lambda: ("gzip", _ZlibDecoder(31)),
    "x-gzip": lambda: ("gzip", _ZlibDecoder(31)),
    "deflate": lambda: ("deflate", _ZlibDecoder(None)),
    "br": lambda: ("br", _BrotliDecoder()),
    "zstd": lambda: ("zstd", _ZstdDecoder()),
}


def _known(name: str) -> bool:
    return name in _FACTORIES and (name != "zstd" or zstd_module() is not None)


def accept_encoding() -> str:
    """The ``Accept-Encoding`` value for the codings this client can decode (all at q=1: the
    server picks)."""
    return "gzip, deflate, br, zstd" if zstd_module() is not None else "gzip, deflate, br"


class _Codec:
    """One content coding of a response body: ``decode`` yields pieces of at most
    ``STEP_BYTES``; ``flush`` checks that the coded stream ended."""

    __slots__ = ("_name", "_decoder")

    def __init__(self, name: str, decoder: _StepDecoder) -> None:
        self._name = name
        self._decoder = decoder

    def decode(self, data: bytes) -> Iterator[bytes]:
        decoder = self._decoder
        try:
            out = decoder.decompress(data, STEP_BYTES)
            while True:
                if out:
                    yield out
                if decoder.needs_input:
                    return
                # A full step may leave output pending with no input left: ask again.
                out = decoder.decompress(b"", STEP_BYTES)
                if not out and not decoder.needs_input:
                    raise ValueError("the decoder stalled")
        except ValueError as exc:
            raise DecodingError(f"undecodable {self._name} body: {exc}") from None

    def flush(self) -> Iterator[bytes]:
        if not self._decoder.eof:
            raise DecodingError(f"truncated {self._name} body")
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
    an unknown coding leaves the body as received rather than guessing.  More than
    ``MAX_CODINGS`` codings stacked raise ``DecodingError``."""
    if not content_encoding:
        return None
    names = [n.strip().lower() for n in content_encoding.split(",") if n.strip()]
    if any(not _known(name) and name != "identity" for name in names):
        return None
    stacked = [name for name in reversed(names) if name != "identity"]
    if len(stacked) > MAX_CODINGS:
        # Each coding chains one more decoder behind the last, and thousands exhaust the stack
        # (RFC 9110 §8.4 sets no bound; codecs.MAX_CODINGS says why ours is where it is).
        raise DecodingError(f"the response has {len(stacked)} content codings stacked; at most "
                            f"{MAX_CODINGS} are decoded")
    codecs = [_Codec(*_FACTORIES[name]()) for name in stacked]
    return Decoder(codecs, max_decoded_bytes) if codecs else None
