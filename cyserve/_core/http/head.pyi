"""Typed face of a parsed head (``cyserve._core.http.head``): the lazy ``Head`` view and the
``FRAMING_*`` codes.  All of them are re-exported by ``cyserve._core.http.parser``, whose
``parse_request_head`` / ``parse_response_head`` make ``Head`` objects.
"""

FRAMING_NONE: int
"""No body follows the head (also a request with ``Content-Length: 0``)."""
FRAMING_LENGTH: int
"""``Head.content_length`` bytes of body follow (always more than 0)."""
FRAMING_CHUNKED: int
"""The body uses the chunked transfer coding (RFC 9112 §7.1)."""
FRAMING_CLOSE: int
"""Response mode only: the body runs until the server closes the connection (RFC 9112 §6.3)."""

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
        """``Connection`` lists ``upgrade`` and an ``Upgrade`` field names at least one protocol
        (RFC 9110 §7.8); always false for an HTTP/1.0 request."""
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
    def raw_items(self) -> list[tuple[bytes, bytes]]:
        """Every field as ``(name as sent, value)`` bytes, in received order (a new list each call)."""
    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of field ``name`` (compared case-insensitively, without building the
        list), or ``default``."""
    def get_all(self, name: str) -> list[str]:
        """Every value of field ``name``, in received order (``[]`` when absent)."""
