"""``Stream``: one connection's plumbing (buffer, outbox, read gate, deadline) under one role.

The loop sees a ``StreamProtocol``.  Roles attach from Cython (``RoleHooks`` in ``stream.pxd``);
a role written in Python attaches with ``cyserve._core.io.pyrole.attach_python_role``.
"""
import asyncio
from typing import Any

from cyserve._core.io.buffer import ReceiveBuffer
from cyserve._core.io.deadline import Deadline
from cyserve._core.io.outbox import Outbox
from cyserve._core.io.readgate import ReadGate

class Stream:
    transport: asyncio.Transport | None
    buffer: ReceiveBuffer
    outbox: Outbox
    gate: ReadGate
    deadline: Deadline
    peername: Any
    """The client's address as the loop gives it (``(host, port)``, a 4-tuple for IPv6, ``""``
    for a Unix socket): the socket's peer, or the source a trusted proxy's PROXY header named."""
    socket_peername: Any
    """The socket's own peer, whatever a PROXY header said."""
    sockname: Any
    role: Any
    """The role driving the stream; None once the connection is lost."""
    peer_eof: bool
    closing: bool
    lost: bool
    lingering: bool
    input_kind: int
    # the loop's callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None: ...
    def get_buffer(self, sizehint: int) -> ReceiveBuffer: ...
    def buffer_updated(self, nbytes: int) -> None: ...
    def eof_received(self) -> bool: ...
    def connection_lost(self, exc: BaseException | None) -> None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    # the server's shutdown
    def begin_shutdown(self) -> None:
        """The role finishes what it is doing, then closes."""
    def abort_now(self) -> None:
        """The role gives up and the connection drops."""
    def is_disconnected(self) -> bool:
        """True once the peer closed (or half-closed) the connection, or it is closing."""
    def wait_disconnected(self) -> asyncio.Future[None]:
        """Resolved when the peer closes (or half-closes) the connection, or it is lost."""
    def set_transport(self, transport: asyncio.BaseTransport) -> None:
        """A new transport over the same socket (TLS started inside a proxy tunnel)."""
    @property
    def reading_paused(self) -> bool: ...
    @property
    def pause_reasons(self) -> int: ...

class StreamProtocol(Stream, asyncio.BufferedProtocol):
    """What the loop sees."""
