"""One cyserve-push/1 TCP connection on a ``Stream`` (``cyserve._core.push.role``), and the
listener's protocol factory that makes them.

``PushRole`` is the TCP ``cyserve.push.link.Link``: the hub's ``Connection`` drives it and hears
from it as its ``LinkHandler``.  ``push_listener(loop, on_link, ...)`` is what
``loop.create_server`` takes; every accepted connection becomes a ``PushRole`` handed to
``on_link`` from ``connection_made`` (the hub then calls ``role.start(handler)``).
"""
import asyncio
from typing import Any, Callable, Final

from cyserve._core.io.stream import Stream, StreamProtocol
from cyserve._core.push.frames import PushTemplate
from cyserve.push.link import LinkHandler

PY_K_IDLE: Final[int]
"""The stream's ``input_kind`` while ``expect_idle`` watches the peer."""
DEFAULT_RECV_INITIAL: Final[int]
"""1024: the receive buffer a read starts with (given back after a pass that did not fill it)."""
DEFAULT_RECV_MAX: Final[int]
"""262144: the largest the receive buffer grows to while reads fill it."""


class PushRole:
    """One push connection (the ``Link`` protocol).

    Input: frames are decoded in place from the receive buffer; the frames of one read pass go
    to ``handler.link_frames`` in one call, a ``Violation`` to ``handler.link_violation`` once
    (then nothing more is read).  Frames that arrive before ``start`` wait for it (the first
    frame is kept and reading holds until then).

    Output: ``send``/``send_push`` outside a read pass cork the connection's outbox; what a loop
    turn sends leaves in one write two turns later (inside a read pass, at the pass's end).
    ``link_drained`` follows a ``resume_writing`` after the transport passed ``write_high``.
    """

    @property
    def stream(self) -> Stream:
        """The connection's plumbing (the server's shutdown calls ``begin_shutdown`` /
        ``abort_now`` on it, which reach ``link_shutdown``)."""
    @property
    def framing(self) -> int:
        """``FRAMING_AUTO`` until the client's first byte, then ``FRAMING_BINARY`` or
        ``FRAMING_JSON_LINES`` (docs §2)."""
    @property
    def peer(self) -> Any:
        """``stream.peername``: the client's address (a PROXY header's, behind a trusted proxy)."""
    @property
    def closing(self) -> bool:
        """``close``/``abort`` was called, the peer hung up (FIN), or the connection is gone."""
    @property
    def started(self) -> bool:
        """``start`` was called."""

    def start(self, handler: LinkHandler) -> None:
        """Report to ``handler`` from now on: first the frames (and violation) that arrived
        before, then reading resumes.  Once: RuntimeError on a second call.  A connection lost
        before ``start`` gets ``link_lost`` at once and nothing else."""
    def send(self, frame: bytes) -> None:
        """One whole frame in this link's framing (``frames.encode``'s output).  Never waits;
        dropped once ``closing``."""
    def send_push(self, template: PushTemplate, seq: int) -> None:
        """``template.frame(seq)`` as two writes into the outbox: a head of at most
        ``PUSH_HEAD_MAX`` bytes and ``template.body`` (shared by every member, never copied).
        ValueError when ``template.framing`` is not this link's or ``seq`` is 0; dropped once
        ``closing``."""
    def buffered(self) -> int:
        """Bytes sent and not yet on the wire: corked in the outbox plus the transport's
        buffer (0 once the connection is gone)."""
    def take_sent(self) -> bool:
        """Whether ``send``/``send_push`` wrote anything since the last call (then cleared)."""
    def expect_idle(self, seconds: float) -> None:
        """``handler.link_idle()`` after ``seconds`` without a byte from the peer (every read
        re-arms it; while reading is paused the watch is suspended and re-armed in full on
        resume).  Fires once; 0 switches it off."""
    def pause_reading(self) -> None:
        """Stop reading (the read gate's ``PAUSE_APP``): no frame is decoded until
        ``resume_reading``, and the kernel's buffers push back on the client."""
    def resume_reading(self) -> None:
        """Read again; bytes that waited in the buffer are decoded now."""
    def close(self, timeout_s: float) -> None:
        """Write nothing more after what is queued; once it is flushed, half-close and drop what
        the client still sends until its FIN; abort if that takes longer than ``timeout_s``
        (<= 0: abort now).  Idempotent; ``link_lost`` follows."""
    def abort(self) -> None:
        """Drop the connection now, unsent bytes with it; ``link_lost`` follows."""


class PushListener:
    """The protocol factory ``push_listener`` returns: call it for a new connection."""

    @property
    def max_frame_bytes(self) -> int: ...
    @property
    def write_high(self) -> int: ...
    @property
    def write_low(self) -> int: ...
    @property
    def recv_initial(self) -> int: ...
    @property
    def recv_max(self) -> int: ...
    @property
    def write_timeout_s(self) -> float: ...
    def __call__(self) -> StreamProtocol:
        """A ``StreamProtocol`` whose role is a new ``PushRole``."""


def push_listener(loop: asyncio.AbstractEventLoop, on_link: Callable[[PushRole], object], *,
                  max_frame_bytes: int, write_high: int = ..., write_low: int = ...,
                  registry: Any = ..., recv_initial: int = ..., recv_max: int = ...,
                  write_timeout_s: float = ...,
                  proxy_trusted: Callable[[str], bool] | None = ...,
                  proxy_timeout_s: float = ...) -> PushListener:
    """The protocol factory of a push listener (``loop.create_server(push_listener(...), ...)``).

    ``on_link(role)`` runs from each connection's ``connection_made`` (after a PROXY header,
    when ``proxy_trusted`` is given and says the peer is a trusted proxy).
    ``max_frame_bytes`` (``MIN_FRAME_LIMIT``..``MAX_FRAME_LIMIT``) bounds what a client sends
    (``PushLimits.max_frame_bytes``).  ``write_high``/``write_low`` (default 64 KiB / 16 KiB):
    the transport's write water marks (``link_drained`` at ``write_low`` after ``write_high``
    was passed).  ``registry``: ``.join(stream)``/``.leave(stream)`` when a connection starts
    and ends (the server's, whose shutdown calls ``begin_shutdown``/``abort_now``).
    ``recv_initial`` (1 KiB) and ``recv_max`` (256 KiB): the receive buffer's first and largest
    sizes (a frame larger than ``recv_max`` is assembled by the decoder, up to
    ``max_frame_bytes``).  ``write_timeout_s`` (60): a transport paused that long with no byte
    taken by the client aborts the connection (0: never).  ``proxy_timeout_s``: the PROXY
    header's deadline.  ValueError for limits out of range."""
