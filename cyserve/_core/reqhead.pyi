"""Request-head serialisation: the client role of the writer (``cyserve._core.reqhead``)."""
from typing import Iterable

Fields = Iterable[tuple[str | bytes, str | bytes]] | None

def serialise_request(method: str, target: str, fields: Fields = ..., content_length: int = ...,
                      chunked: bool = ..., close: bool = ..., body: bytes | None = ...) -> bytes:
    """``METHOD SP target SP HTTP/1.1``, the fields, then the framing field (Content-Length when
    ``content_length >= 0``, Transfer-Encoding: chunked when ``chunked``) and, when ``close`` or a
    caller's ``Connection: close``, Connection: close.  The caller's own Content-Length,
    Transfer-Encoding and Connection fields are dropped (framing is decided in one place).
    ``body`` is appended when at most 16 KiB.  ValueError for a non-token method, a target with
    whitespace, controls or non-ASCII (RFC 9112 §3.2), and any field the writer refuses; TypeError
    when ``method`` or ``target`` is None."""
