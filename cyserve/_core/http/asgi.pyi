"""C helpers of the ASGI adapter (``cyserve.asgi``): the byte walks of an ASGI request and
response, one C pass each."""
from typing import Any, Iterable

from cyserve._core.http.head import Head
from cyserve._core.http.server import ServerRole

def scope_headers(head: Head) -> list[tuple[bytes, bytes]]:
    """The fields of ``head`` as an ASGI scope's ``headers``: ``(name, value)`` bytes pairs in
    received order, names lower-cased, values without surrounding whitespace."""
def target_bytes(head: Head) -> tuple[bytes, bytes]:
    """``(raw_path, query_string)`` of the request-target; the path of an absolute-form target
    is what follows its authority (``b"/"`` when empty)."""
def declared_length(fields: Iterable[Any]) -> int:
    """The Content-Length among ``(name, value)`` pairs (bytes or str), -1 when none;
    ``ValueError`` for a malformed value or two different ones."""
def offers_trailers(head: Head) -> bool:
    """The request's ``TE`` lists ``trailers`` (RFC 9110 §10.1.4)."""
def end_with_trailers(conn: ServerRole, fields: Iterable[Any]) -> None:
    """End ``conn``'s chunked streamed response with ``fields`` as its trailer section (RFC 9112
    §7.1.2); a response without a body (HEAD, 204, 304) or not chunked just ends."""
