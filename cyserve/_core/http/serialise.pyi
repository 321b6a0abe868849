"""Head serialisation for both roles: status lines (a precomputed table, a per-second Date
cache) and request lines over one validated field writer (no header injection)."""

PY_BODY_NONE: int
PY_BODY_LENGTH: int
PY_BODY_CHUNKED: int
PY_BODY_CLOSE: int
PY_CONN_NONE: int
PY_CONN_CLOSE: int
PY_CONN_KEEP_ALIVE: int
PY_CONN_UPGRADE: int

def date_line() -> bytes:
    """The current ``Date: <IMF-fixdate>\\r\\n`` field line (cached per second)."""

def py_body_framing(status: int, length_known: bool, http10: bool) -> int:
    """How a response body is delimited: one of the ``PY_BODY_*`` values (RFC 9112 §6.3)."""

class HeadWriter:
    """Per-connection head serialiser; ``HeadWriter(server_name=None, date=True)``: no Server
    field when ``server_name`` is None, no Date field when ``date`` is false."""

    user_close: bool
    def __init__(self, server_name: str | None = ..., date: bool = ...) -> None: ...
    def serialise(
        self,
        status: int,
        fields: list[tuple[str | bytes, str | bytes]] | None = ...,
        content_type: str | None = ...,
        content_length: int = ...,
        http10: bool = ...,
        conn: int = ...,
        body: bytes | None = ...,
    ) -> bytes:
        """Serialise a response head as the server would; a small ``body`` is appended.

        Raises ``ValueError`` for a control byte but HTAB (CR, LF and NUL included) or DEL in a
        value or in ``content_type`` (RFC 9110 §5.5; obs-text is allowed), a non-token name or a
        non-latin-1 value.  Content-Length, Transfer-Encoding and Connection fields given by the caller are
        replaced by the framing cyserve decides (``Connection: close`` is honoured).
        """

def serialise_request(method: str, target: str, fields: list[tuple[str | bytes, str | bytes]] | None = ...,
                      content_length: int = ..., chunked: bool = ..., close: bool = ...,
                      body: bytes | None = ..., upgrade: bool = ...) -> bytes:
    """Serialise a request head as the client role would (a small ``body`` is appended).
    ``upgrade``: the request asks to switch protocols, so ``Connection: Upgrade`` is written (RFC
    9110 §7.8) instead of any ``Connection: close``.

    ``ValueError`` for a non-token method, a request target with whitespace, a control or a
    non-ASCII byte, or a bad field; ``TypeError`` when method or target is None.
    """
