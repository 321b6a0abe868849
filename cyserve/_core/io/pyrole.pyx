# cython: language_level=3
"""A role written in Python, driving a ``Stream`` (see pyrole.pxd)."""
cimport cython

from cyserve._core.io.deadline cimport SLOT_INPUT
from cyserve._core.io.readgate cimport PAUSE_APP, PAUSE_BACKLOG
from cyserve._core.io.stream cimport RoleHooks, SHUTDOWN_ABORT, Stream


cdef int _made(object adapter) except -1:
    cdef PythonRole self = <PythonRole>adapter
    method = getattr(self.role, "connection_made", None)
    if method is not None:
        method(self)
    return 0


# Unread bytes past which reading is held until the role reads: a role that leaves input in the
# buffer must not fill it (the loop cannot read into a full one).
cdef Py_ssize_t _BACKLOG_BYTES = 65536


cdef int _data(object adapter) except -1:
    cdef PythonRole self = <PythonRole>adapter
    self.role.data_received(self)
    if self.stream.buffer.size() >= _BACKLOG_BYTES:
        self.stream.hold_reading(PAUSE_BACKLOG)
    return 0


cdef int _eof(object adapter) except -1:
    cdef PythonRole self = <PythonRole>adapter
    method = getattr(self.role, "eof_received", None)
    return 1 if method is not None and method(self) else 0


cdef int _lost(object adapter, object exc) except -1:
    cdef PythonRole self = <PythonRole>adapter
    method = getattr(self.role, "connection_lost", None)
    if method is not None:
        method(self, exc)
    return 0


cdef int _expired(object adapter, int slot, int kind) except -1:
    cdef PythonRole self = <PythonRole>adapter
    method = getattr(self.role, "timed_out", None)
    if method is not None:
        method(self, slot)
    else:
        self.stream.abort()
    return 0


cdef int _shutdown(object adapter, int mode) except -1:
    cdef PythonRole self = <PythonRole>adapter
    method = getattr(self.role, "shutdown", None)
    if method is not None:
        method(self, mode == SHUTDOWN_ABORT)
    else:
        self.stream.close()
    return 0


cdef RoleHooks _HOOKS
_HOOKS.made = _made
_HOOKS.data = _data
_HOOKS.eof = _eof
_HOOKS.lost = _lost
_HOOKS.expired = _expired
_HOOKS.shutdown = _shutdown


@cython.final
cdef class PythonRole:
    """What a Python role reads and writes through; see ``attach_python_role``."""

    def __init__(self):
        raise TypeError("made by attach_python_role()")

    @property
    def unread(self) -> int:
        """Bytes received and not yet read."""
        return self.stream.buffer.size()

    def read(self, Py_ssize_t n=-1) -> bytes:
        """Take up to ``n`` unread bytes (all when ``n`` < 0) out of the buffer."""
        cdef Py_ssize_t size = self.stream.buffer.size()
        if n < 0 or n > size:
            n = size
        data = self.stream.buffer.take(n)
        self.stream.buffer.consume(n)
        if self.stream.buffer.size() < _BACKLOG_BYTES:
            self.stream.release_reading(PAUSE_BACKLOG)
        return data

    def write(self, data) -> None:
        self.stream.outbox.send(bytes(data))

    def drain(self):
        """Await while the transport is above its high water mark."""
        return self.stream.outbox.drain()

    def pause_reading(self) -> None:
        self.stream.hold_reading(PAUSE_APP)

    def resume_reading(self) -> None:
        self.stream.release_reading(PAUSE_APP)

    def expect_input(self, double seconds, bint idle=True) -> None:
        """Call ``timed_out`` when no byte arrives for ``seconds`` (0: never)."""
        self.stream.expect_input(1 if seconds > 0 else 0, seconds, idle)

    def close(self) -> None:
        self.stream.close()

    def abort(self) -> None:
        self.stream.abort()

    @property
    def closing(self) -> bool:
        return self.stream.closing


def attach_python_role(Stream stream not None, role) -> PythonRole:
    """Hand ``stream`` to ``role``, a Python object with ``data_received(channel)`` and optionally
    ``connection_made``, ``eof_received`` (return True to keep writing), ``connection_lost(channel,
    exc)``, ``timed_out(channel, slot)`` and ``shutdown(channel, abort)``; ``channel`` is the
    returned ``PythonRole``.  Bytes already unread in the buffer reach ``data_received`` first."""
    cdef PythonRole adapter = PythonRole.__new__(PythonRole)
    adapter.stream = stream
    adapter.role = role
    if stream.role is None:
        stream.attach(adapter, &_HOOKS)
    else:
        stream.switch(adapter, &_HOOKS)
    return adapter
