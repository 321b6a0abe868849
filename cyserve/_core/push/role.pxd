# cython: language_level=3
"""Contract of ``PushRole``: one cyserve-push/1 TCP connection (docs/push-protocol.md) on a
``Stream``, and ``PushListener``, the protocol factory that makes them.

The role is the TCP ``Link`` of ``cyserve/push/link.py``: it owns the bytes (framing detection,
the frame decoder, writes through the outbox, the input-idle watch, closing the transport) and
reports to a ``LinkHandler`` (the hub's ``Connection``), which owns the session rules (§16).

Input: ``FrameDecoder`` (framing detected from the client's first byte, §2) works straight on
the stream's receive buffer; the frames of one read pass go to ``handler.link_frames`` in one
call.  A ``Violation`` goes to ``handler.link_violation`` once; nothing more is decoded (reading
is held, what is buffered is dropped; the handler's lingering ``close`` reads and discards).
Before ``start`` the first frame is kept and reading is held, so what waits for the handler is
one frame plus at most one buffer of bytes.  The decoder keeps a frame split across reads itself
(at most ``max_frame_bytes``), so the receive buffer never has to hold a whole frame: it grows
(fourfold, to ``recv_max``) while reads fill it, and is given back after a pass that did not
fill it, so an idle connection holds no receive buffer at all.  (uvloop holds a view of the
buffer while the pass runs, so a resize then happens a loop turn later, in the listener's turn
callback.)

Output: writes outside a read pass (the hub's fan-out, its timers, a reply computed later) cork
the outbox and leave together two loop turns later (``PushListener`` flushes every corked
connection of a turn in one callback), so a burst of pushes reaches a client in one write;
inside a pass the stream corks and flushes at the pass's end.  ``send_push`` writes a push's
small head (its sequence number) and its template's shared body as two pieces, never joined.

States: open -> closing (``close``, ``abort``, the peer's FIN, a stalled write: nothing more is
written) -> lost (``connection_lost``: ``handler.link_lost`` once, the handler is let go).
Invariants: the handler is set once (``start``) and dropped at lost; ``_violation`` is set once;
``PAUSE_QUEUE`` is held while frames wait for ``start`` and for ever after a violation,
``PAUSE_APP`` while the handler paused reading.
"""
from cyserve._core.io.stream cimport Stream
from cyserve._core.push.frames cimport FrameDecoder, PushTemplate, Violation

# The stream's input watch kind while the handler expects bytes (``expect_idle``).
cdef enum:
    K_IDLE = 1

cdef class PushRole


cdef class PushListener:
    """One listening socket's connections: their settings, and the writes they corked."""
    cdef object _loop
    cdef object _on_link                # on_link(role), from connection_made
    cdef object _registry               # the server's join/leave registry, or None
    cdef object _proxy_trusted          # trusted(host) -> bool: PROXY header first; or None
    cdef double _proxy_timeout_s
    cdef readonly Py_ssize_t max_frame_bytes
    cdef readonly Py_ssize_t write_high, write_low
    cdef readonly Py_ssize_t recv_initial, recv_max
    cdef readonly double write_timeout_s
    cdef list _corked                   # PushRoles whose outbox this listener corked this turn
    cdef list _refits                   # PushRoles whose receive buffer wants another size
    cdef bint _scheduled                # the next turn's callback is scheduled

    # Cork ``role``'s outbox until the listener's flush two turns on.
    cdef int cork(self, PushRole role) except -1
    # ``role._refit()`` on the next turn.
    cdef int refit(self, PushRole role) except -1
    cdef int _refit_all(self, list roles) except -1
    cdef int _flush(self, list roles) except -1


cdef class PushRole:
    cdef readonly Stream stream
    cdef PushListener _listener
    cdef FrameDecoder _decoder
    cdef object _handler                # the LinkHandler from start(); None before and after lost
    cdef list _pending                  # frames decoded before start (None when none)
    cdef Violation _violation           # why the decoder died, or None
    cdef bint _started
    cdef bint _lost
    cdef bint _sent                     # anything sent since take_sent()
    cdef bint _drain_watch              # a callback waits on the outbox's drain (link_drained)
    cdef bint _fit_pending              # in the listener's refits
    cdef int _fit                       # what the receive buffer needs (FIT_* in role.pyx)

    # The group fan-out's send (``cyserve._core.push.fanout``): push ``seq`` of ``template``
    # when the queue bound is kept, ``buffered + size <= bound`` (docs §8.6); 1 when it went
    # (or was dropped because the link is closing, as ``send_push`` drops it), 0 when it would
    # pass the bound (nothing done: the caller applies the slow-consumer policy).  The
    # transport is asked for its buffer only when the outbox cannot prove the bound alone.
    cdef int offer(self, PushTemplate template, unsigned long long seq, Py_ssize_t size,
                   Py_ssize_t bound) except -1
    # ``send_push`` and ``buffered`` without the Python call (the def methods call these).
    cdef int push(self, PushTemplate template, unsigned long long seq) except -1
    cdef Py_ssize_t queued(self) except -1

    # The data hook: decode what the buffer holds, report it.
    cdef int _process(self) except -1
    # Grow the receive buffer after a read that filled it; give it back after one that did not.
    # uvloop exports the buffer to the read during the pass: a resize waits for ``_refit``.
    cdef int _fit_buffer(self, bint filled) except -1
    cdef int _refit(self) except -1
    # One piece of output through the outbox (corked until the next flush outside a pass).
    cdef int _write(self, bytes data) except -1
    # Watch for resume_writing (the drain future) while the outbox is paused.
    cdef int _watch_drain(self) except -1
    cdef int _lose(self) except -1
