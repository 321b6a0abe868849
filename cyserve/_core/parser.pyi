"""Typed face of the HTTP/1.1 head parser (``cyserve._core.parser``).

Two steps, both strict per RFC 9112/9110 (every rejection is a ``ProtocolError`` carrying the status
a server answers with; see ``tests/vectors/parser_differences.py`` for where this is stricter or
laxer than httptools and h11):

1. ``HeadScanner.feed`` (``find_end`` from Cython) finds the end of a head in a growing buffer,
   resuming where it stopped, and refuses a bare LF (400), a too-long request line (414) or head
   (431) as soon as the bytes seen prove it.
2. ``parse_request_head`` / ``parse_response_head`` parse a whole head in one C pass into a
   ``Head`` that keeps the bytes and offsets and builds ``str`` objects only when asked.
"""
from cyserve.config import Limits

FRAMING_NONE: int
"""No body follows the head (also a request with ``Content-Length: 0``)."""
FRAMING_LENGTH: int
"""``Head.content_length`` bytes of body follow (always more than 0)."""
FRAMING_CHUNKED: int
"""The body uses the chunked transfer coding (RFC 9112 §7.1)."""
FRAMING_CLOSE: int
"""Response mode only: the body runs until the server closes the connection (RFC 9112 §6.3)."""

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
        max_request_line_bytes: int = 8192,
        max_head_bytes: int = 65536,
        max_header_count: int = 100,
    ) -> None:
        """Raise ``ValueError`` unless all are positive, the line limit is at most the head limit
        and the head limit is below 2 GiB (offsets are 32-bit)."""
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

class Head:
    """One parsed message head.  Made only by ``parse_request_head``/``parse_response_head``."""

    @property
    def raw(self) -> bytes:
        """The whole head as received, through its final CRLF CRLF."""
    @property
    def version(self) -> int:
        """10 for HTTP/1.0, 11 for HTTP/1.1 (and for HTTP/1.2-1.9, RFC 9110 §6.2)."""
    @property
    def method(self) -> str:
        """The request method (case-sensitive; GET, POST, ... are interned); ``""`` for responses."""
    @property
    def status(self) -> int:
        """The response status code (100-599); 0 for requests."""
    @property
    def reason(self) -> str:
        """The response reason phrase, latin-1 decoded (may be empty); ``""`` for requests."""
    @property
    def framing(self) -> int:
        """How the body is delimited: one of the ``FRAMING_*`` constants."""
    @property
    def content_length(self) -> int:
        """The body length when ``framing == FRAMING_LENGTH``, else -1."""
    @property
    def keep_alive(self) -> bool:
        """The connection persists after this message (RFC 9112 §9.3): HTTP/1.1 unless
        ``Connection: close``; HTTP/1.0 only with ``Connection: keep-alive``; never for a response
        delimited by closing the connection."""
    @property
    def expect_continue(self) -> bool:
        """An HTTP/1.1 request carrying ``Expect: 100-continue`` (RFC 9110 §10.1.1)."""
    @property
    def upgrade(self) -> bool:
        """``Connection`` lists ``upgrade`` and an ``Upgrade`` field is present (RFC 9110 §7.8);
        always false for an HTTP/1.0 request."""
    @property
    def header_count(self) -> int:
        """Number of field lines."""
    @property
    def target(self) -> str:
        """The request-target as sent (ASCII); ``""`` for responses."""
    @property
    def raw_target(self) -> bytes:
        """The request-target bytes."""
    @property
    def path(self) -> str:
        """The target before ``?``; for an absolute-form target (``http://host/p?q``) the path
        component after the authority (``/p``, or ``/`` when empty), RFC 9112 §3.2.2.  Not
        percent-decoded."""
    @property
    def query_string(self) -> str:
        """The target after the first ``?``; ``""`` when there is none."""
    def header_items(self) -> list[tuple[str, str]]:
        """Every field as ``(lower-case name, value)``, values latin-1 decoded with surrounding
        whitespace removed, in received order.  Built on first call, then cached: do not mutate."""
    def raw_header_items(self) -> list[tuple[bytes, bytes]]:
        """Every field as ``(name as sent, value)`` bytes, in received order (a new list each call)."""
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of field ``name`` (compared case-insensitively, without building the
        list), or ``default``."""
    def get_all(self, name: str) -> list[str]:
        """Every value of field ``name``, in received order (``[]`` when absent)."""

def parse_request_head(raw: bytes, limits: ParserLimits | None = None) -> Head:
    """Parse one complete request head (``raw`` ends with its CRLF CRLF, as ``HeadScanner`` cuts it).

    Raises ``ProtocolError`` with the status to answer: 400 for malformed syntax, ambiguous framing
    or a missing/duplicate/invalid Host; 414, 431 for limits; 501 for a transfer coding other than
    chunked; 505 for an HTTP major version other than 1.  Raises ``ValueError`` when ``raw`` is not
    exactly one head ending with CRLF CRLF (a caller's mistake, not the peer's).
    """

def parse_response_head(
    raw: bytes, limits: ParserLimits | None = None, head_request: bool = False
) -> Head:
    """Parse one complete response head.  ``head_request``: it answers a HEAD request, so no body
    follows whatever its fields say (RFC 9112 §6.3).  Same errors as ``parse_request_head`` except
    414 and the Host rules; framing is NONE for HEAD, 1xx, 204 and 304, else CHUNKED, LENGTH or
    CLOSE.  Content-Length together with Transfer-Encoding is refused (stricter than RFC 9112 §6.3).
    """
