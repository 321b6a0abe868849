"""Incremental UTF-8 validation (RFC 3629 §4) for WebSocket text."""

ACCEPT: int
REJECT: int

def scan(data: bytes | bytearray | memoryview, state: int = ...) -> int:
    """The validator's state after ``data`` from ``state``: ``ACCEPT`` between characters,
    ``REJECT`` once invalid (absorbing), another value inside a character."""
