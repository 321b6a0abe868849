# cython: language_level=3
"""Contract of ``Stream``: one connection's plumbing, driven by one role at a time.

A ``Stream`` is what the loop sees (through ``StreamProtocol``, which mixes in
``asyncio.BufferedProtocol``; see DESIGN, "Loop gotcha").  It composes the receive ``buffer``,
the ``outbox`` (coalesced writes, write backpressure), the read ``gate`` (named pause reasons) and
the ``deadline`` (one lazy loop timer for every timeout), and knows nothing of HTTP.  The loop's
callbacks go to the current *role* (HTTP server, HTTP client, WebSocket, push...) through one C
call each, from the ``RoleHooks`` table the role registers with ``attach``/``switch``: no
inheritance, no Python call.

``switch(role, hooks)`` hands the connection to the next protocol: the bytes still unread in the
buffer are the new role's first input, uncopied; the transport (TLS included), outbox, deadline
and membership in the server's registry stay.  The old role's input watch and pause reasons go
with it.

What the stream owns itself, for every role:
- the input watch (``expect_input``): a deadline on bytes the role expects, total or idle
  (bumped by each read), suspended while reading is paused — a slow consumer is not a slow peer;
- the output stall watch: while the transport is paused, no write progress for ``write_s`` is
  reported to the role (``expired(SLOT_OUTPUT)``); progress re-arms it;
- the lingering close (RFC 9112 §9.6): stop writing, half-close, keep reading and discarding
  within a byte and time bound, then close — so an answer sent while the peer is still sending
  is not wiped by the peer's kernel resetting the connection.

A role consumes what ``data`` brings or holds reading (``hold_reading``) before the buffer is full:
the buffer grows only to its maximum, and the loop cannot read into a buffer with no room.

States: open -> closing (``close``, ``close_lingering`` or ``abort`` called: nothing more is
written) -> lost (``connection_lost`` ran: the role was told, the stream lets go of it).
"""
from cyserve._core.io.buffer cimport ReceiveBuffer
from cyserve._core.io.deadline cimport Deadline
from cyserve._core.io.outbox cimport Outbox
from cyserve._core.io.readgate cimport ReadGate

ctypedef int (*role_fn)(object role) except -1
ctypedef int (*role_obj_fn)(object role, object arg) except -1
ctypedef int (*role_expiry_fn)(object role, int slot, int kind) except -1
ctypedef int (*role_int_fn)(object role, int arg) except -1

cdef struct RoleHooks:
    role_fn made              # the transport is connected (or the role took over a live stream)
    role_fn data              # unread bytes are in the buffer; consume what the role can
    role_fn eof               # the peer half-closed; return 1 to keep writing, 0 to close
    role_obj_fn lost          # the connection is gone (the loop's exception, or None)
    role_expiry_fn expired    # a slot passed: SLOT_INPUT (with the watch's kind), SLOT_OUTPUT
                              # (a write stall), SLOT_ROLE
    role_int_fn shutdown      # the server stops: 0 graceful (finish, then close), 1 abort

cdef enum:
    SHUTDOWN_GRACEFUL = 0
    SHUTDOWN_ABORT = 1


cimport cython


cdef class Stream:
    cdef readonly object transport
    cdef readonly ReceiveBuffer buffer
    cdef readonly Outbox outbox
    cdef readonly ReadGate gate
    cdef readonly Deadline deadline
    cdef readonly object peername         # the client: the socket's peer, or what a PROXY
                                          # header said (set_peer)
    cdef readonly object socket_peername  # the socket's own peer, whatever a header said
    cdef readonly object sockname
    cdef readonly object role
    cdef const RoleHooks* _hooks
    cdef object _loop
    cdef object _disconnect_waiter    # wait_disconnected()'s future, made on first ask
    cdef object _registry             # .join(stream) / .leave(stream) (the server's), or None
    cdef Py_ssize_t _read_chunk       # free bytes reserved before each read
    cdef Py_ssize_t _write_high, _write_low
    cdef bint _in_pass                # the role's data hook is running: writes are corked
    cdef readonly bint peer_eof       # the peer sent FIN (or TLS close_notify)
    cdef readonly bint closing        # close / close_lingering / abort was called
    cdef readonly bint lost           # connection_lost ran
    # input watch
    cdef readonly int input_kind      # the role's label for what is expected; 0 for none
    cdef double _input_s
    cdef bint _input_idle             # each read moves the deadline (idle) or not (total)
    # output stall watch
    cdef double _write_s
    cdef Py_ssize_t _write_mark       # buffered() when the watch last saw progress
    # lingering close
    cdef readonly bint lingering
    cdef long long _linger_left

    @cython.final
    cdef int attach(self, object role, const RoleHooks* hooks) except -1
    @cython.final
    cdef int switch(self, object role, const RoleHooks* hooks) except -1
    # Run the role's data hook over the buffer, writes corked into one write; a role that
    # switched during the pass hands the rest to the next role.  No-op inside a pass.
    @cython.final
    cdef int process(self) except -1
    @cython.final
    cdef int expect_input(self, int kind, double seconds, bint idle) except -1
    @cython.final
    cdef int hold_reading(self, unsigned int reason) except -1
    @cython.final
    cdef int release_reading(self, unsigned int reason) except -1
    @cython.final
    cdef int set_write_timeout(self, double seconds) except -1
    # The write water marks, for the transport now and any later one (set_transport): a role
    # whose backpressure has limits of its own (WebSocket) sets them when it takes over.
    @cython.final
    cdef int set_write_limits(self, Py_ssize_t high, Py_ssize_t low) except -1
    # The connection's client is ``peer`` (an address tuple as the loop gives), not the socket's
    # peer: a trusted proxy told us who connected to it (PROXY protocol).
    @cython.final
    cdef int set_peer(self, object peer) except -1
    @cython.final
    cdef int close(self) except -1
    @cython.final
    cdef int close_lingering(self, long long max_bytes, double max_s) except -1
    @cython.final
    cdef int abort(self) except -1
    @cython.final
    cdef int _end_linger(self) except -1
    cdef int _wake_disconnect(self) except -1
    @cython.final
    cdef int _discard(self) except -1


# A stream whose ``hooks`` call ``role`` (an attached, not yet connected stream).  ``registry``
# (or None) hears ``join``/``leave`` when the connection starts and ends.
cdef object new_stream(object loop, Py_ssize_t recv_initial, Py_ssize_t recv_max,
                       Py_ssize_t read_chunk, Py_ssize_t write_high, Py_ssize_t write_low,
                       object registry)
