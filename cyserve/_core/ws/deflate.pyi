"""Typed face of permessage-deflate (RFC 7692), ``cyserve._core.ws.deflate``.

Negotiation runs once per handshake: ``server_negotiate`` (server) answers the client's
``Sec-WebSocket-Extensions`` offer; ``client_offer`` and ``client_accept`` (client) make the offer
and check the server's answer.  Each returns the connection's two codecs: an ``Inflater`` for the
receive direction (the frame decoder calls it, fragment by fragment, within the message limit)
and a ``Deflater`` for the send direction (the WebSocket role compresses whole messages with it).
All parameters come from ``cyserve.config.WebSocketLimits`` (``compression``,
``compression_window_bits``, ``compression_level``).

Memory per compressed connection at the default window of 12 bits: ~38 KiB of zlib deflate state
(``(1 << (wbits + 2)) + (1 << (memlevel + 9))`` with memlevel 5, plus ~6 KiB fixed) and ~11 KiB
of inflate state (``1 << wbits`` plus ~7 KiB): ~49 KiB.  Without context takeover a direction
holds none between messages.
"""
from cyserve.config import WebSocketLimits

class Inflater:
    """The receive direction: inflates one message at a time, fed fragment by fragment, within a
    byte budget, so a deflate bomb costs at most the message limit (RFC 7692 §8)."""

    def __init__(self, wbits: int, no_context_takeover: bool) -> None:
        """``wbits``: the peer's negotiated LZ77 window (8..15; 8 is inflated with 9, which covers
        it).  ``no_context_takeover``: the peer starts every message with an empty window, so the
        window is dropped after each message (RFC 7692 §7.1.1).  ValueError outside 8..15."""
    @property
    def wbits(self) -> int:
        """The window zlib inflates with: the negotiated one, 9 where 8 was negotiated."""
    @property
    def no_context_takeover(self) -> bool:
        """True when the window is reset after every message."""
    @property
    def in_message(self) -> bool:
        """True from the current message's first compressed byte fed until its ``end_message``."""
    def feed(self, data: bytes | bytearray | memoryview, max_out: int) -> bytes:
        """Inflate the next piece of the current message's payload (RSV1 was set on its first frame).

        ``max_out`` is the budget left for this message's inflated bytes.  Returns at most
        ``max_out + 1`` bytes and never allocates for more (a transient at most twice that while
        CPython joins zlib's output); a result longer than ``max_out`` means the message passed
        its limit (close with 1009) and leaves the rest of ``data`` unread, for the next call to
        resume from.  Raises ``ValueError`` on corrupt data, on bytes after a final (BFINAL)
        DEFLATE block, and for a negative ``max_out``.
        """
    def end_message(self, max_out: int) -> bytes:
        """The message's final frame was fed: inflate the ``00 00 ff ff`` its sender removed
        (RFC 7692 §7.2.2), within ``max_out`` like ``feed`` (normally ``b""``), then drop the
        window when there is no context takeover.  A message of which no compressed byte was fed
        (RSV1 on an empty payload) is empty and leaves the window as it was.  After a result over
        the limit the Inflater must not be used for another message."""

class Deflater:
    """The send direction: compresses one whole message for a frame with RSV1 set."""

    def __init__(self, wbits: int, no_context_takeover: bool, level: int = 6,
                 memlevel: int | None = None) -> None:
        """``wbits``: our LZ77 window, 9..15 (zlib cannot compress raw DEFLATE with 8: ValueError).
        ``no_context_takeover``: every message starts from an empty window (RFC 7692 §7.1.1) and
        no zlib state is kept between messages.  ``level``: zlib's, -1..9.  ``memlevel``: zlib's
        1..9; by default ``wbits - 7`` (5 at window 12), a hash table as large as the window."""
    @property
    def wbits(self) -> int:
        """The window zlib compresses with."""
    @property
    def no_context_takeover(self) -> bool:
        """True when every message is compressed from an empty window."""
    @property
    def level(self) -> int:
        """zlib's compression level."""
    @property
    def memlevel(self) -> int:
        """zlib's memLevel."""
    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """The payload of one compressed message: the DEFLATE data flushed with Z_SYNC_FLUSH
        without its trailing ``00 00 ff ff`` (RFC 7692 §7.2.1); ``b"\\x00"`` for an empty
        message (the same rule applied to no data)."""

def parse_extensions(value: str) -> list[tuple[str, dict[str, str | None]]]:
    """Parse a ``Sec-WebSocket-Extensions`` value (RFC 6455 §9.1): ``[(name, {param: value})]``
    in order, a parameter without ``=`` mapping to ``None`` and a quoted-string value unescaped.

    Empty list elements are skipped (RFC 9110 §5.6.1), so ``""`` is ``[]``.  Raises
    ``ValueError`` on anything else outside the grammar, on a quoted value that is not a token
    once unescaped (§9.1), and on a parameter given twice in one extension.
    """

def server_negotiate(
    offer_header: str | None, limits: WebSocketLimits,
) -> tuple[str, Inflater, Deflater] | tuple[None, None, None]:
    """The server's side (RFC 7692 §5, §7.1): accept the first ``permessage-deflate`` offer in
    ``offer_header`` (the request's ``Sec-WebSocket-Extensions``, lists from several lines joined
    with ``", "``) that can be honoured.

    Returns the response's ``Sec-WebSocket-Extensions`` value with the receive and send codecs, or
    ``(None, None, None)``: compression is off, nothing was offered, the header does not parse,
    or every offer has an unknown, duplicate or invalid parameter or asks us to compress with an
    8-bit window (``server_max_window_bits=8``: zlib cannot).  Our send window is the smaller of
    ``limits.compression_window_bits`` and the offer's ``server_max_window_bits`` (always
    answered when below 15); the client's is limited the same way, and only when it offered
    ``client_max_window_bits`` (otherwise it may use 15).  No-context-takeover parameters offered
    are echoed and honoured.
    """

def client_offer(limits: WebSocketLimits) -> str:
    """The client's ``Sec-WebSocket-Extensions`` offer: ``permessage-deflate;
    client_max_window_bits`` (the server may pick our window) and, below 15,
    ``server_max_window_bits=<limits.compression_window_bits>``.  ValueError when
    ``limits.compression`` is off (offer nothing then)."""

def client_accept(response_header: str, limits: WebSocketLimits) -> tuple[Inflater, Deflater]:
    """The client's side: check the server's ``Sec-WebSocket-Extensions`` answer to
    ``client_offer(limits)`` and return the receive and send codecs.

    Raises ``ValueError`` (fail the WebSocket connection, RFC 7692 §7) when the answer does not
    parse, is not exactly one ``permessage-deflate``, has an unknown or repeated parameter, a
    value where none belongs or a bad window, a ``server_max_window_bits`` above the one offered
    or missing although offered, or ``client_max_window_bits=8`` (zlib cannot compress with it);
    and when ``limits.compression`` is off (nothing was offered).
    """
