"""Typed face of the head scanner (``cyserve._core.http.scanner``), the first stage of the head parser.

``HeadScanner.feed`` (``find_end`` from Cython) finds the end of a head in a growing buffer,
resuming where it stopped, and refuses a bare LF (400), a too-long request line (414) or head (431)
as soon as the bytes seen prove it.  Both names are re-exported by ``cyserve._core.http.parser``.
"""
from cyserve.config import Limits

class ParserLimits:
    """Size limits the parser enforces, copied into C fields."""

    @property
    def max_request_line_bytes(self) -> int:
        """A request line (without CRLF) longer than this is answered 414 (server mode only)."""
    @property
    def max_head_bytes(self) -> int:
        """A head (through its final CRLF CRLF) longer than this is answered 431."""
    @property
    def max_header_count(self) -> int:
        """More field lines than this are answered 431."""
    def __init__(
        self,
        max_request_line_bytes: int | None = None,
        max_head_bytes: int | None = None,
        max_header_count: int | None = None,
    ) -> None:
        """A value not given is ``cyserve.config.Limits``' default.  Raise ``ValueError`` unless
        all are positive, the line limit is at most the head limit and the head limit is below
        2 GiB (offsets are 32-bit)."""
    @staticmethod
    def from_config(limits: Limits) -> ParserLimits:
        """The parser's share of a ``cyserve.config.Limits``."""

class HeadScanner:
    """Incremental search for the end of one head (RFC 9112 §2.1: the head ends at CRLF CRLF).

    Feed it the whole head-so-far each time; it never re-reads what it already examined, so a head
    arriving one byte at a time costs linear time.  Call ``reset()`` before the next head.
    """

    def __init__(self, limits: ParserLimits | None = None, response_mode: bool = False) -> None:
        """``response_mode``: the first line is a status line, so there is no 414 check."""
    def feed(self, data: bytes) -> int:
        """Return the head's length within ``data`` (which starts at the head's first byte and has
        grown since the last call), or -1 when more bytes are needed.

        Raises ``ProtocolError``: 400 on a bare LF (RFC 9112 §2.2), 414 once the request line passes
        ``max_request_line_bytes`` without its end, 431 once ``data`` passes ``max_head_bytes``
        without a head end.  Any split of the same bytes gives the same result.
        """
    def reset(self) -> None:
        """Forget the current head: the next ``feed`` starts a new one."""
