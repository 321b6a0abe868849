# cython: language_level=3
"""``PushRole``: a cyserve-push/1 TCP connection on a ``Stream`` (see role.pxd)."""
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize

from cyserve._core.http.proxyproto cimport V2_HEADER_BYTES, proxy_first
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.deadline cimport SLOT_INPUT, SLOT_OUTPUT, SLOT_ROLE
from cyserve._core.io.outbox cimport Outbox
from cyserve._core.io.readgate cimport PAUSE_APP, PAUSE_QUEUE
from cyserve._core.io.stream cimport RoleHooks, SHUTDOWN_GRACEFUL, Stream, new_stream
from cyserve._core.push.frames cimport (
    EV_ERROR, EV_FRAME, MAX_FRAME_LIMIT, MIN_FRAME_LIMIT, PUSH_HEAD_MAX, FrameDecoder,
    PushTemplate, Violation,
)

from cyserve.errors import Disconnected

# A lingering close reads and drops at most this much more than one frame: a client caught in
# the middle of its largest frame when our CLOSE goes still gets to read that CLOSE (its kernel
# is not made to reset the connection by unread bytes, RFC 9112 §9.6's reasoning).
cdef enum:
    _LINGER_SLACK = 65536

# What a pass asks of the receive buffer, a turn later when uvloop held it during the pass.
cdef enum:
    FIT_NONE = 0
    FIT_GROW = 1
    FIT_RELEASE = 2

# recv_initial: a HELLO, a CALL or a PING fits; 10,000 idle connections hold none (the block is
# given back after each pass that did not fill it).  recv_max: reads of big frames or bursts of
# calls grow to this; a frame larger than it is assembled by the decoder (max_frame_bytes).
DEFAULT_RECV_INITIAL = 1024
DEFAULT_RECV_MAX = 262144


# ---------------------------------------------------------------- the stream's calls (RoleHooks)
cdef int _made(object role) except -1:
    cdef PushRole self = <PushRole>role
    self._listener._on_link(self)
    return 0


cdef int _data(object role) except -1:
    return (<PushRole>role)._process()


cdef int _eof(object role) except -1:
    # The peer sent FIN.  A push client that half-closes is gone (it crashed, or closed after
    # its CLOSE): close now, flushing what is queued (a CLOSE answered to its CLOSE still goes),
    # rather than keep a session "online" that no byte will ever reach again; the handler hears
    # link_lost when the transport is done.
    (<PushRole>role).stream.close()
    return 0


cdef int _lost(object role, object exc) except -1:
    return (<PushRole>role)._lose()


cdef int _expired(object role, int slot, int kind) except -1:
    cdef PushRole self = <PushRole>role
    if self._lost:
        return 0
    if slot == SLOT_INPUT:
        if kind == K_IDLE and self._handler is not None and not self.stream.closing:
            self._handler.link_idle()
    elif slot == SLOT_OUTPUT:
        # The peer took none of what we wrote for write_timeout_s while the transport was paused:
        # it is not reading.  Drop it; link_lost follows from connection_lost.
        self.stream.abort()
    elif slot == SLOT_ROLE:
        # close(timeout_s) ran out: what was queued did not leave in time.
        self.stream.abort()
    return 0


cdef int _shutdown(object role, int mode) except -1:
    cdef PushRole self = <PushRole>role
    handler = self._handler
    if handler is not None:
        # The handler says CLOSE going_away (graceful) and closes, or lets the connection drop.
        handler.link_shutdown(mode != SHUTDOWN_GRACEFUL)
    elif mode == SHUTDOWN_GRACEFUL:
        # Never started: no session to tell anything.
        self.stream.close()
    return 0


cdef RoleHooks _HOOKS
_HOOKS.made = _made
_HOOKS.data = _data
_HOOKS.eof = _eof
_HOOKS.lost = _lost
_HOOKS.expired = _expired
_HOOKS.shutdown = _shutdown


# ---------------------------------------------------------------- the listener
@cython.final
cdef class PushListener:
    """The protocol factory of one push listener (see role.pxd); ``push_listener`` makes it."""

    def __init__(self):
        raise TypeError("PushListener is made by push_listener()")

    def __call__(self):
        """A new connection for the loop: a ``StreamProtocol`` driven by a ``PushRole``."""
        cdef Stream stream = new_stream(self._loop, self.recv_initial, self.recv_max,
                                        self.recv_initial, self.write_high, self.write_low,
                                        self._registry)
        cdef PushRole role = PushRole.__new__(PushRole)
        role.stream = stream
        role._listener = self
        role._decoder = FrameDecoder(self.max_frame_bytes)
        stream.set_write_timeout(self.write_timeout_s)
        if self._proxy_trusted is not None:
            # The PROXY header first (from trusted peers, within its deadline); the role takes
            # the stream over after it, with the bytes that followed as its first input.
            proxy_first(stream, self._proxy_trusted, self._proxy_timeout_s,
                        min(V2_HEADER_BYTES + 65535, self.recv_max - self.recv_initial),
                        role, &_HOOKS)
        else:
            stream.attach(role, &_HOOKS)
        return stream

    cdef int cork(self, PushRole role) except -1:
        role.stream.outbox.cork()
        self._corked.append(role)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(_turn, self)
        return 0

    cdef int refit(self, PushRole role) except -1:
        self._refits.append(role)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(_turn, self)
        return 0

    cdef int _refit_all(self, list roles) except -1:
        cdef PushRole role
        for role in roles:
            role._refit()
        return 0

    cdef int _flush(self, list roles) except -1:
        cdef PushRole role
        cdef Outbox outbox
        for role in roles:
            outbox = role.stream.outbox
            # One write of what this turn queued (nothing for a connection that closed
            # meanwhile: its outbox flushed or dropped its queue then).
            outbox.uncork()
            if outbox.paused and not role._drain_watch:
                role._watch_drain()
        return 0


def _turn(PushListener listener):
    """A turn after connections corked or read: resize the receive buffers that asked for it
    (none is exported to the loop now), and hand the corked outboxes to ``_flush`` one more
    turn later: a callback scheduled now runs after the handlers the last poll woke, so a
    publisher that was sent its next message meanwhile pushes it into the same writes (as
    ``cyserve._core.ws.role``'s broadcast)."""
    corked = listener._corked
    refits = listener._refits
    listener._scheduled = False
    if refits:
        listener._refits = []
        listener._refit_all(refits)
    if corked:
        listener._corked = []
        listener._loop.call_soon(_flush, listener, corked)


def _flush(PushListener listener, list roles):
    listener._flush(roles)


def push_listener(loop, on_link, *, Py_ssize_t max_frame_bytes, Py_ssize_t write_high=65536,
                  Py_ssize_t write_low=16384, registry=None,
                  Py_ssize_t recv_initial=DEFAULT_RECV_INITIAL,
                  Py_ssize_t recv_max=DEFAULT_RECV_MAX, double write_timeout_s=60.0,
                  proxy_trusted=None, double proxy_timeout_s=10.0):
    """The protocol factory for ``loop.create_server``; see role.pyi."""
    cdef PushListener self
    if not MIN_FRAME_LIMIT <= max_frame_bytes <= MAX_FRAME_LIMIT:
        raise ValueError(f"max_frame_bytes must be {MIN_FRAME_LIMIT}..{MAX_FRAME_LIMIT}, "
                         f"got {max_frame_bytes}")
    if not 0 <= write_low <= write_high:
        raise ValueError(f"push_listener needs 0 <= write_low <= write_high, got {write_low}, "
                         f"{write_high}")
    if recv_initial <= 0 or recv_max < recv_initial:
        raise ValueError(f"push_listener needs 0 < recv_initial <= recv_max, got {recv_initial}, "
                         f"{recv_max}")
    if proxy_trusted is not None and recv_max - recv_initial < 512:
        raise ValueError("a PROXY header needs recv_max at least 512 bytes above recv_initial")
    if not callable(on_link):
        raise TypeError("on_link must be callable")
    self = PushListener.__new__(PushListener)
    self._loop = loop
    self._on_link = on_link
    self._registry = registry
    self._proxy_trusted = proxy_trusted
    self._proxy_timeout_s = proxy_timeout_s
    self.max_frame_bytes = max_frame_bytes
    self.write_high = write_high
    self.write_low = write_low
    self.recv_initial = recv_initial
    self.recv_max = recv_max
    self.write_timeout_s = write_timeout_s
    self._corked = []
    self._refits = []
    self._scheduled = False
    return self


# ---------------------------------------------------------------- the role
@cython.final
cdef class PushRole:
    """One push connection: the TCP ``Link`` (see role.pxd and cyserve/push/link.py)."""

    def __init__(self):
        raise TypeError("PushRole is made by a push_listener()'s factory")

    # ---------------------------------------------------------------- input
    cdef int _process(self) except -1:
        cdef Stream stream = self.stream
        cdef ReceiveBuffer buf = stream.buffer
        cdef FrameDecoder decoder = self._decoder
        cdef Py_ssize_t n, used
        cdef bint filled
        cdef int ev
        cdef list frames = None
        cdef Violation violation = None
        n = buf.size()
        if n == 0:
            return 0
        if self._violation is not None or stream.closing:
            # docs §11: after a violation the stream position means nothing; after our close,
            # nothing more is read.
            buf.consume(n)
            return 0
        if stream.gate.holds(PAUSE_APP | PAUSE_QUEUE):
            # The handler paused, or the first frame waits for start: the bytes wait too (at
            # most one buffer; the transport reads no more meanwhile).
            return 0
        # The kernel filled the whole free tail: it probably holds more (a big frame, a burst).
        filled = buf.free() == 0
        while True:
            ev = decoder.next(buf.head(), n, &used)
            buf.consume(used)
            if ev == EV_FRAME:
                if frames is None:
                    frames = [decoder.frame]
                else:
                    frames.append(decoder.frame)
                if not self._started:
                    # One frame waits for the handler; reading stops until start.
                    stream.hold_reading(PAUSE_QUEUE)
                    break
            elif ev == EV_ERROR:
                violation = decoder.violation
                self._violation = violation
                buf.consume(buf.size())
                stream.hold_reading(PAUSE_QUEUE)
                break
            else:
                break   # EV_NONE: every byte was taken; a partial frame is the decoder's
            n = buf.size()
            if n == 0:
                break
        self._fit_buffer(filled)
        if not self._started:
            if frames is not None:
                self._pending = frames
            return 0
        handler = self._handler
        if handler is None:
            return 0    # lost while the pass ran
        if frames is not None:
            handler.link_frames(frames)
        if violation is not None and self._handler is not None:
            handler.link_violation(violation)
        return 0

    cdef int _fit_buffer(self, bint filled) except -1:
        cdef ReceiveBuffer buf = self.stream.buffer
        cdef int fit = FIT_NONE
        if buf.size():
            return 0    # held bytes stay where they are
        if filled:
            if buf.capacity < buf.max_capacity:
                fit = FIT_GROW
        elif buf.capacity:
            # Nothing waits: give the block back (the next read allocates recv_initial bytes
            # afresh), so an idle connection keeps no receive buffer.  uvloop still holds the
            # read's view of it during the pass: then a turn later.
            buf.release()
            if buf.capacity:
                fit = FIT_RELEASE
        if fit != FIT_NONE:
            self._fit = fit
            if not self._fit_pending:
                self._fit_pending = True
                self._listener.refit(self)
        return 0

    cdef int _refit(self) except -1:
        cdef ReceiveBuffer buf = self.stream.buffer
        cdef int fit = self._fit
        self._fit_pending = False
        self._fit = FIT_NONE
        if self.stream.lost or buf.size():
            return 0
        if fit == FIT_GROW:
            # Reads filled it: the next one gets four times the room (at most recv_max).
            try:
                buf.reserve(max(buf.capacity, self._listener.recv_initial) * 4)
            except BufferError:
                pass    # a TLS read holds a view of it still: it stays the size it is
        elif fit == FIT_RELEASE:
            buf.release()   # (a no-op while a view is held)
        return 0

    # ---------------------------------------------------------------- output
    cdef int _write(self, bytes data) except -1:
        cdef Outbox outbox = self.stream.outbox
        if not outbox.corked:
            # Outside a read pass: one write per connection for whatever this turn sends.
            self._listener.cork(self)
        outbox.send(data)
        if outbox.paused and not self._drain_watch:
            self._watch_drain()
        return 0

    cdef int _watch_drain(self) except -1:
        cdef Stream stream = self.stream
        if self._drain_watch or stream.closing or self._handler is None:
            return 0
        try:
            waiter = stream.outbox.drain()
        except Disconnected:
            return 0    # the transport failed a send: connection_lost is on its way
        if waiter.done():
            return 0    # not paused after all (drain hands out the done awaitable)
        self._drain_watch = True
        waiter.add_done_callback(self._on_drained)
        return 0

    def _on_drained(self, waiter):
        self._drain_watch = False
        if waiter.cancelled() or waiter.exception() is not None:
            return      # the connection is gone: link_lost says so
        if self.stream.closing or self._handler is None:
            return
        if self.stream.outbox.paused:
            self._watch_drain()     # woken without a resume
            return
        self._handler.link_drained()

    # ---------------------------------------------------------------- the end
    cdef int _lose(self) except -1:
        if self._lost:
            return 0
        self._lost = True
        self._pending = None
        handler = self._handler
        # Let go of the handler: the role and the hub's connection refer to each other.
        self._handler = None
        if handler is not None:
            handler.link_lost()
        return 0

    # ---------------------------------------------------------------- the Link (Python face)
    @property
    def framing(self):
        return self._decoder.framing

    @property
    def peer(self):
        return self.stream.peername

    @property
    def closing(self):
        return self.stream.closing or self.stream.outbox.closed

    @property
    def started(self):
        return self._started

    def start(self, handler):
        if self._started:
            raise RuntimeError("a push link starts once")
        if handler is None:
            raise TypeError("start() needs a LinkHandler")
        self._started = True
        if self._lost:
            handler.link_lost()     # gone before its handler came: nothing else to tell
            return
        self._handler = handler
        pending = self._pending
        self._pending = None
        if pending is not None:
            handler.link_frames(pending)
        if self._violation is not None:
            if self._handler is not None:
                handler.link_violation(self._violation)
            return
        stream = self.stream
        if not stream.closing:
            stream.release_reading(PAUSE_QUEUE)
            # What came behind the first frame is decoded now (no-op inside a pass: its loop
            # takes it).
            if stream.buffer.size() and not stream.gate.holds(PAUSE_APP):
                stream.process()

    def send(self, bytes frame not None):
        if self.stream.closing or self.stream.outbox.closed:
            return
        self._sent = True
        self._write(frame)

    def send_push(self, PushTemplate template not None, unsigned long long seq):
        self.push(template, seq)

    def buffered(self):
        return self.queued()

    cdef int push(self, PushTemplate template, unsigned long long seq) except -1:
        cdef unsigned char head[PUSH_HEAD_MAX]
        cdef Py_ssize_t k
        cdef Stream stream = self.stream
        cdef Outbox outbox = stream.outbox
        # (The outbox closes without the stream when a drain finds the transport failed: the
        # peer reset, and connection_lost is on its way.)
        if stream.closing or outbox.closed:
            return 0
        if template.framing != self._decoder.framing:
            raise ValueError(f"a push template of framing {template.framing} on a link of "
                             f"framing {self._decoder.framing}")
        if seq == 0:
            raise ValueError("a push's sequence number is at least 1")
        k = template.write_head(head, seq)
        self._sent = True
        if not outbox.corked:
            self._listener.cork(self)
        # Two pieces, the body shared by every member: the outbox's one write per flush joins
        # them with the rest of the turn's output.
        outbox.send(PyBytes_FromStringAndSize(<const char*>head, k))
        outbox.send(template.body)
        if outbox.paused and not self._drain_watch:
            self._watch_drain()
        return 0

    cdef Py_ssize_t queued(self) except -1:
        cdef Stream stream = self.stream
        if stream.lost:
            return 0
        if stream.outbox.paused and not self._drain_watch:
            self._watch_drain()
        return stream.outbox.buffered()

    cdef int offer(self, PushTemplate template, unsigned long long seq, Py_ssize_t size,
                   Py_ssize_t bound) except -1:
        cdef Outbox outbox = self.stream.outbox
        # While the outbox is not paused the transport holds at most the stream's write_high
        # (asyncio's and uvloop's transports call pause_writing from the write that passes
        # it), so what is corked here plus write_high bounds buffered() without the transport's
        # get_write_buffer_size, a Python call per member (the fan-out's common case: a queue
        # bound far above the water mark).  Otherwise ask, exactly as queued() does.
        if outbox.paused or outbox._queued + self.stream._write_high + size > bound:
            if self.queued() + size > bound:
                return 0
        self.push(template, seq)
        return 1

    def take_sent(self):
        sent = self._sent
        self._sent = False
        return sent

    def expect_idle(self, double seconds):
        if self.stream.closing:
            return
        if seconds > 0:
            self.stream.expect_input(K_IDLE, seconds, True)
        else:
            self.stream.expect_input(0, 0, False)

    def pause_reading(self):
        if not self.stream.closing:
            self.stream.hold_reading(PAUSE_APP)

    def resume_reading(self):
        stream = self.stream
        if stream.closing:
            return
        stream.release_reading(PAUSE_APP)
        if self._started and stream.buffer.size() and not stream.gate.holds(PAUSE_QUEUE):
            stream.process()

    def close(self, double timeout_s):
        cdef Stream stream = self.stream
        if stream.closing:
            return
        if timeout_s <= 0:
            stream.abort()
            return
        # Flush (the CLOSE the handler sent last), half-close, read and drop what the client
        # still sends, close on its FIN; the whole of it bounded by timeout_s (SLOT_ROLE, set
        # after close_lingering, which clears it).
        stream.close_lingering(self._listener.max_frame_bytes + _LINGER_SLACK, timeout_s)
        if not stream.lost:
            stream.deadline.set(SLOT_ROLE, timeout_s)

    def abort(self):
        self.stream.abort()

    def __repr__(self):
        return (f"<PushRole framing={self._decoder.framing} peer={self.stream.peername!r} "
                f"started={self._started} closing={self.stream.closing} lost={self._lost}>")


PY_K_IDLE = K_IDLE
