"""Chunked transfer coding (RFC 9112 §7.1): an incremental strict decoder and the encoder.

Shared by both roles (DESIGN principle 3): the server decodes request bodies and encodes streamed
responses; the client does the reverse.  Cython code uses the C face declared in ``chunked.pxd``
(``ChunkedDecoder.feed``, ``chunk_header``, ``encode_chunk``); this is the Python face.
"""
from typing import Final

LAST_CHUNK: Final[bytes]
"""``b"0\\r\\n\\r\\n"``: the last chunk with an empty trailer section; ends every chunked body."""

MAX_SIZE_LINE_BYTES: Final[int]
"""4096: the most bytes a chunk-size line (size and extensions) may hold before its CRLF (400)."""

MAX_CHUNK_SIZE: Final[int]
"""``2**62 - 1``: the largest chunk size the decoder accepts (400 above; leading zeros are free)."""

class ChunkedDecoder:
    """Incremental strict decoder of one chunked body; one instance per body.

    Accepts exactly RFC 9112 §7.1: ``1*HEXDIG`` sizes (no sign, ``0x`` or surrounding
    whitespace), chunk extensions that match the §7.1.1 grammar (BWS only around ``;`` and ``=``,
    token names, token or quoted-string values; validated, then ignored), CRLF line ends only,
    CRLF after each chunk's data, and a trailer section validated like header fields (token name,
    no whitespace before the colon, no CTL but HTAB in a value, no obs-fold).

    Any violation raises ``ProtocolError`` with status 400; trailer field lines longer in total than
    ``max_trailer_bytes`` raise ``ProtocolError`` with status 431.  The outcome never depends on how
    the body is split across calls.  After ``done`` or after a ``ProtocolError`` the decoder is
    spent: feeding it again raises ``RuntimeError`` (a programmer error, not a peer's).
    """

    def __init__(self, max_trailer_bytes: int = 8192) -> None:
        """``max_trailer_bytes``: bound on the trailer field lines, CRLFs included (the final
        empty line is not counted); 0 refuses any trailer field.  ValueError when negative."""

    @property
    def done(self) -> bool:
        """True once the last chunk and the trailer section (its final CRLF included) were read."""

    @property
    def trailers(self) -> list[tuple[bytes, bytes]] | None:
        """Trailer fields as ``(lower-case name, value without surrounding OWS)`` in arrival order,
        once ``done`` (an empty list when there were none); ``None`` before.  Never merged into the
        header section by the decoder (RFC 9110 §6.5.1): framing fields here mean nothing."""

    def decode(self, data: bytes | bytearray | memoryview) -> tuple[list[bytes], int]:
        """Decode the next piece of the body.

        Returns ``(pieces, consumed)``: ``pieces`` are the chunk data found in ``data``, one
        ``bytes`` per contiguous run; ``consumed`` is ``len(data)`` unless the body ended inside
        ``data``, then the index just past the final CRLF (the next message starts there).
        Raises ``ProtocolError`` (400 or 431) on malformed input and ``RuntimeError`` when the
        decoder is already done or failed.
        """

def chunk_header(n: int) -> bytes:
    """``b"%x\\r\\n" % n`` (lower-case hex, no leading zeros) for a chunk of ``n > 0`` bytes;
    ValueError for ``n <= 0`` (a zero size is ``LAST_CHUNK``, never a data chunk)."""

def encode_chunk(data: bytes) -> bytes:
    """One whole chunk: ``chunk_header(len(data)) + data + b"\\r\\n"``; ``b""`` for empty data,
    because an empty chunk would end the body."""
