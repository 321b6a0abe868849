"""A role written in Python driving a ``Stream`` (tests, prototypes): ``attach_python_role``."""
from typing import Any, Awaitable, Protocol

from cyserve._core.io.stream import Stream

class PythonRoleHandler(Protocol):
    """What the Python object may define; only ``data_received`` is required."""

    def data_received(self, channel: "PythonRole") -> None: ...
    # Optional: connection_made(channel), eof_received(channel) -> bool (True keeps writing),
    # connection_lost(channel, exc), timed_out(channel, slot), shutdown(channel, abort: bool).

class PythonRole:
    """The channel a Python role reads and writes through."""

    stream: Stream
    role: Any
    @property
    def unread(self) -> int: ...
    def read(self, n: int = ...) -> bytes:
        """Take up to ``n`` unread bytes (all by default) out of the receive buffer."""
    def write(self, data: bytes) -> None: ...
    def drain(self) -> Awaitable[None]: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def expect_input(self, seconds: float, idle: bool = ...) -> None:
        """``timed_out(channel, slot)`` after ``seconds`` without input (0: never)."""
    def close(self) -> None: ...
    def abort(self) -> None: ...
    @property
    def closing(self) -> bool: ...

def attach_python_role(stream: Stream, role: PythonRoleHandler) -> PythonRole:
    """Hand ``stream`` to ``role``; unread bytes reach ``data_received`` first."""
