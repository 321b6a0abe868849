"""Socket-free doubles for driving a connection's ``Stream`` the way the loop does.

``FakeTransport`` records every call a stream makes on its transport (writes, half-close, close,
abort, read pauses) and never calls the protocol back by itself, except where asyncio's own
transports do so synchronously: ``eof()`` closes the transport when the protocol's
``eof_received`` returns a false value (asyncio's ``_SelectorSocketTransport`` does exactly that).
``connection_lost`` is delivered only when a test asks (``lose``), so every intermediate state
can be observed.

``responses`` parses what a server wrote with h11 (an independent parser: the server is never
checked by its own codec), ``feed`` delivers bytes through ``get_buffer``/``buffer_updated``.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Sequence

import h11

__all__ = ["FakeTransport", "feed", "eof", "lose", "Reply", "Parsed", "responses", "settle"]


class FakeTransport(asyncio.Transport):
    """A transport with no socket: it records what the stream does to it.

    ``buffered`` is what ``get_write_buffer_size`` reports (the stream's stall watch compares
    it over time); set it to stage a peer that reads nothing.
    """

    def __init__(self, *, can_write_eof: bool = True,
                 peername: Any = ("127.0.0.1", 50000), sockname: Any = ("127.0.0.1", 8000)) -> None:
        super().__init__()
        self.calls: list[str] = []            # every call, in order (writes as "write")
        self.chunks: list[bytes] = []         # each write()/writelines() call's bytes
        self.late_writes: list[bytes] = []    # bytes written after close/abort/write_eof
        self.closed = False                   # close() was called (by the stream or by eof())
        self.closed_itself = False            # the transport closed after an EOF (asyncio's rule)
        self.aborted = False
        self.eof_written = False
        self.reading = True
        self.held = bytearray()               # bytes sent while reading was paused
        self.protocol: Any = None             # who gets them on resume_reading()
        self.buffered = 0
        self.limits: tuple[int | None, int | None] | None = None
        self._can_write_eof = can_write_eof
        self._extra = {"peername": peername, "sockname": sockname}

    # ---------------------------------------------------------------- writing
    def _record(self, data: bytes) -> None:
        if self.eof_written and not (self.closed or self.aborted):
            # asyncio raises here too: nothing may follow a half-close.
            raise RuntimeError("Cannot call write() after write_eof()")
        if self.aborted or self.eof_written or (self.closed and not self.closed_itself):
            # The stream closed, aborted or half-closed, then wrote.  (After the transport
            # closed itself on an EOF the stream can't know until connection_lost: asyncio
            # drops such writes, so they are no fault of the stream's.)
            self.late_writes.append(data)
        self.chunks.append(data)

    def write(self, data: Any) -> None:
        self.calls.append("write")
        self._record(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.calls.append("writelines")
        self._record(b"".join(bytes(d) for d in list_of_data))

    def write_eof(self) -> None:
        self.calls.append("write_eof")
        self.eof_written = True

    def can_write_eof(self) -> bool:
        return self._can_write_eof

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        high, low = self.limits or (0, 0)
        return (low or 0, high or 0)

    # ---------------------------------------------------------------- reading
    def pause_reading(self) -> None:
        self.calls.append("pause_reading")
        self.reading = False

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")
        self.reading = True
        # What the kernel held while reading was paused is read now, as a loop would.
        held, self.held = bytes(self.held), bytearray()
        if held and self.protocol is not None:
            feed(self.protocol, held)

    def is_reading(self) -> bool:
        return self.reading

    # ---------------------------------------------------------------- closing
    def close(self) -> None:
        self.calls.append("close")
        self.closed = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    # ---------------------------------------------------------------- what the tests read
    @property
    def written(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def state(self) -> str:
        """"aborted", "lingering" (half-closed, still reading), "closed" or "open"."""
        if self.aborted:
            return "aborted"
        if self.closed:
            return "closed"
        if self.eof_written:
            return "lingering"
        return "open"


def feed(stream: Any, data: bytes) -> None:
    """Deliver ``data`` like a BufferedProtocol read loop: into ``get_buffer``, then
    ``buffer_updated`` (several reads when the buffer offers less than ``data``).  While the
    transport is paused for reading, the rest waits "in the kernel" (``transport.held``) until it
    resumes, as a real loop never reads a paused transport."""
    transport = stream.transport
    view = memoryview(data)
    while view:
        if transport is not None and not transport.reading:
            transport.protocol = stream
            transport.held += view
            return
        buf = memoryview(stream.get_buffer(-1))
        try:
            n = min(len(buf), len(view))
            if n == 0:
                # What asyncio's and uvloop's read loops raise (a fatal error for the connection).
                raise RuntimeError("get_buffer() returned an empty buffer")
            buf[:n] = view[:n]
        finally:
            buf.release()
        stream.buffer_updated(n)
        view = view[n:]


def eof(stream: Any, transport: FakeTransport) -> bool:
    """The peer half-closed: ``eof_received``; a false answer closes the transport, as asyncio's
    transports do.  Returns what the protocol answered."""
    keep = bool(stream.eof_received())
    if not keep and not transport.is_closing():
        transport.closed_itself = True
        transport.close()
    return keep


def lose(stream: Any, exc: BaseException | None = None) -> None:
    """The loop reports the connection gone (once)."""
    if not stream.lost:
        stream.connection_lost(exc)


# ---------------------------------------------------------------- parsing what a server wrote
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool          # h11's verdict: the server may read another request after this


@dataclass
class Parsed:
    informational: list[int] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    partial: bool = False     # a response was started and not finished
    switched: bytes | None = None   # after a 101 the bytes that followed it

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.replies]


def responses(data: bytes, requests: Sequence[tuple[str, bool]] = ()) -> Parsed:
    """Parse a server's output with h11.  ``requests``: (method, asked_to_upgrade) per request, in
    order; requests beyond the list are taken as plain GETs."""
    conn = h11.Connection(h11.CLIENT)
    parsed = Parsed()
    queue = list(requests)
    index = 0

    def send_request() -> None:
        nonlocal index
        method, upgrade = queue[index] if index < len(queue) else ("GET", False)
        index += 1
        headers = [("Host", "x")]
        if upgrade:
            headers += [("Connection", "upgrade"), ("Upgrade", "echo")]
        conn.send(h11.Request(method=method, target="/", headers=headers))
        conn.send(h11.EndOfMessage())

    if not data:
        return parsed
    conn.receive_data(data)
    send_request()
    current: Reply | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            # What was written so far is all there is: a response may still be under way.
            parsed.partial = current is not None or bool(conn.trailing_data[0])
            return parsed
        if event is h11.PAUSED:
            if conn.their_state is h11.SWITCHED_PROTOCOL:
                parsed.switched = conn.trailing_data[0]
                return parsed
            raise AssertionError(f"h11 paused in state {conn.states}")
        if isinstance(event, h11.InformationalResponse):
            parsed.informational.append(event.status_code)
        elif isinstance(event, h11.Response):
            headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
            current = Reply(event.status_code, headers, b"", True)
            body = bytearray()
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert current is not None
            current.body = bytes(body)
            current.keep_alive = conn.their_state is h11.DONE
            parsed.replies.append(current)
            current = None
            rest = conn.trailing_data[0]
            if conn.their_state is not h11.DONE:
                # MUST_CLOSE: nothing may follow a response that ends the connection.
                if rest:
                    raise AssertionError(f"bytes after a closing response: {rest!r}")
                return parsed
            if not rest:
                return parsed
            conn.start_next_cycle()
            send_request()


# ---------------------------------------------------------------- loop helpers
async def settle(rounds: int = 5) -> None:
    """A few loop iterations: callbacks and woken tasks run."""
    for _ in range(rounds):
        await asyncio.sleep(0)
