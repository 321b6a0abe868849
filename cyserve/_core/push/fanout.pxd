# cython: language_level=3
"""Contract of the group fan-out (``fanout``): a group publish or broadcast delivered to each of
this node's sessions (docs/push-protocol.md §12), the loop ``cyserve.push.groups`` ran in Python.

Per member, in order: skip the excluded; the session's next sequence number and one reference in
its bounded history (§8.1, §8.4; ``Session.record`` inlined); nothing more for a detached session
(the history keeps it for the resume); the template of the member's framing and codec, looked up
once per run of members of one kind; then ``Connection.push``'s common case inlined: nothing held
back, a template this member can receive, room under ``queue_bytes`` (§8.6) -- through
``PushRole.offer`` (a C call) on TCP, ``link.buffered``/``link.send_push`` on other links -- and
``Connection.push`` itself otherwise (held pushes, GAPs, the slow-consumer policy).

Sessions and connections are Python objects with ``__slots__`` (the hub's); this module reads
and writes their slots and owns none of their state.  It reads and writes them in place, at the
offsets their member descriptors give (``_Layout``), not by name: the by-name lookups were about
half of the loop's instructions (callgrind, 100 members x 20 publishes: 2,699 instructions per
delivery with getattr/setattr, 1,355 in place).
"""

from cpython.object cimport PyTypeObject

cdef enum:
    _MAX_SLOTS = 8


# Where the instances of one type keep the slots the loop reads and writes: the offset of each
# name's value in the instance, taken from its __slots__ member descriptor (CPython's
# PyMemberDef), or -1 for a name that is not a plain writable slot of that exact type (a
# property, a class with its own __getattribute__ or __setattr__), which goes through
# getattr/setattr.  Per member the loop compares the type only; a new type is fitted again.
cdef class _Layout:
    cdef PyTypeObject* cls      # the type the offsets are for (borrowed: ``_keep`` holds it)
    cdef object _keep
    cdef tuple names
    cdef Py_ssize_t offsets[_MAX_SLOTS]

    # The offsets for ``type(obj)``.
    cdef int fit(self, object obj) except -1
