"""WebSocket masking (RFC 6455 §5.3)."""

def mask(data: bytes | bytearray | memoryview, key: bytes, offset: int = ...) -> bytes:
    """``data`` XORed with the 4-byte ``key`` from key byte ``offset`` (masking and unmasking are
    the same operation)."""
def new_key() -> bytes:
    """A fresh 4-byte masking key from the os.urandom pool."""
def _forget_keys() -> None:
    """Drop the pooled keys (run in a forked child)."""
