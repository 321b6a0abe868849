# cython: language_level=3
"""The group fan-out's per-member loop (see fanout.pxd)."""
from collections import deque
from types import MemberDescriptorType

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF

from cyserve._core.push.frames cimport PushTemplate
from cyserve._core.push.role cimport PushRole


cdef extern from "Python.h":
    # A __slots__ entry's descriptor and where its value lives in an instance (CPython's
    # structmember API; a slot is a T_OBJECT_EX member, writable).
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    PyTypeObject* Py_TYPE(object o)

cdef extern from "structmember.h":
    enum:
        T_OBJECT_EX
        READONLY

# Looked up once: the history is made at a session's first push (an idle session holds none),
# and a deque's append is called without looking the method up per member.
cdef object _deque = deque
cdef object _deque_append = deque.append
cdef object _object_getattribute = object.__getattribute__
cdef object _object_setattr = object.__setattr__


# ---------------------------------------------------------------- slot access
# Sessions and connections are Python classes with __slots__.  Reading a slot by name costs a
# type lookup and a descriptor call: callgrind put that at about half of this loop's
# instructions (about ten per member).  A ``_Layout`` finds each slot's offset in the instance
# once per type, from the slot's own member descriptor, and reads and writes it there; a name
# that is not a plain writable slot of that exact type (a property, a subclass's override, a
# class with its own __getattribute__/__setattr__) goes through getattr/setattr as before.
cdef class _Layout:
    """Where a type's instances keep the slots the loop uses (see fanout.pxd)."""

    def __cinit__(self, tuple names):
        if len(names) > _MAX_SLOTS:
            raise ValueError(f"a _Layout holds at most {_MAX_SLOTS} names")
        self.names = names
        self.cls = NULL

    cdef int fit(self, object obj) except -1:
        cdef Py_ssize_t i
        cdef PyMemberDef* member
        cls = type(obj)
        plain = (cls.__getattribute__ is _object_getattribute
                 and cls.__setattr__ is _object_setattr)
        for i, name in enumerate(self.names):
            self.offsets[i] = -1
            if not plain:
                continue
            descr = None
            for base in cls.__mro__:    # where attribute lookup finds it (_PyType_Lookup)
                descr = base.__dict__.get(name)
                if descr is not None:
                    break
            if type(descr) is MemberDescriptorType:
                member = (<PyMemberDescrObject*><PyObject*>descr).d_member
                if member.type == T_OBJECT_EX and not (member.flags & READONLY):
                    self.offsets[i] = member.offset
        self._keep = cls
        self.cls = Py_TYPE(obj)
        return 0


cdef inline object _get(_Layout layout, object obj, int i):
    cdef Py_ssize_t offset = layout.offsets[i]
    cdef PyObject* value
    if offset >= 0:
        value = (<PyObject**>((<char*><PyObject*>obj) + offset))[0]
        if value != NULL:
            return <object>value
    return getattr(obj, layout.names[i])    # (an unset slot: its AttributeError)


cdef inline int _put(_Layout layout, object obj, int i, object value) except -1:
    cdef Py_ssize_t offset = layout.offsets[i]
    cdef PyObject** slot
    cdef PyObject* old
    if offset < 0:
        setattr(obj, layout.names[i], value)
        return 0
    # As PyMember_SetOne: the new value in place before the old one is let go.
    slot = <PyObject**>((<char*><PyObject*>obj) + offset)
    old = slot[0]
    Py_INCREF(value)
    slot[0] = <PyObject*>value
    Py_XDECREF(old)
    return 0


# Session's slots the loop uses, and Connection's.
cdef enum:
    S_CLIENT_ID = 0
    S_NEXT_SEQ = 1
    S_HISTORY = 2
    S_HIST_BYTES = 3
    S_HIST_FIRST = 4
    S_CONN = 5
cdef _Layout _SESSION = _Layout(("client_id", "next_seq", "history", "hist_bytes", "hist_first",
                                 "conn"))
cdef enum:
    C_TKEY = 0
    C_CODEC = 1
    C_FRAMING = 2
    C_HELD = 3
    C_LINK = 4
cdef _Layout _CONN = _Layout(("tkey", "codec_obj", "framing", "held", "link"))


# ---------------------------------------------------------------- the loop
def fanout(sessions, message, frozenset exclude, limits):
    """``message`` to each session of ``sessions`` but those whose ``client_id`` is in
    ``exclude`` (§12); see fanout.pxd for the steps and fanout.pyi for the types."""
    cdef Py_ssize_t max_count = limits.resume_history_count
    cdef Py_ssize_t max_bytes = limits.resume_history_bytes
    cdef object max_frame = limits.max_frame_bytes
    cdef Py_ssize_t queue_bytes = limits.queue_bytes
    cdef Py_ssize_t size = message.size
    cdef object size_obj = message.size
    cdef Py_ssize_t hist_bytes
    cdef long key, last_key = -1
    cdef object template = None
    cdef object seq, following, history, conn, link
    cdef _Layout s = _SESSION
    cdef _Layout c = _CONN
    # A copy: a push can close a slow member, which may end its session and change the set.
    for session in tuple(sessions):
        if Py_TYPE(session) != s.cls:
            s.fit(session)
        if exclude is not None and _get(s, session, S_CLIENT_ID) in exclude:
            continue
        # Session.record, inlined: the next number and the history (§8.1, §8.4).
        seq = _get(s, session, S_NEXT_SEQ)
        following = seq + 1
        _put(s, session, S_NEXT_SEQ, following)
        if max_count:
            history = _get(s, session, S_HISTORY)
            if history is None:
                history = _deque()
                _put(s, session, S_HISTORY, history)
            if type(history) is _deque:
                _deque_append(history, message)
            else:
                history.append(message)
            hist_bytes = _get(s, session, S_HIST_BYTES)
            hist_bytes += size
            _put(s, session, S_HIST_BYTES, hist_bytes)
            if len(history) > max_count or hist_bytes > max_bytes:
                session.trim(max_count, max_bytes)
        else:
            _put(s, session, S_HIST_FIRST, following)
        conn = _get(s, session, S_CONN)
        if conn is None:
            continue  # detached: the history keeps it for the resume
        if Py_TYPE(conn) != c.cls:
            c.fit(conn)
        key = _get(c, conn, C_TKEY)
        if key != last_key:
            template = message.template(key, _get(c, conn, C_CODEC), _get(c, conn, C_FRAMING),
                                        max_frame)
            last_key = key
        # Connection.push, inlined for its common case: nothing held back, room in the queue
        # (§8.6, measured at the outbox), a template this member can receive.
        if template is not None and _get(c, conn, C_HELD) is None:
            link = _get(c, conn, C_LINK)
            if type(link) is PushRole:
                if (<PushRole>link).offer(<PushTemplate>template, seq, size, queue_bytes):
                    continue
            elif link.buffered() + size <= queue_bytes:
                link.send_push(template, seq)
                continue
        conn.push(template, seq, size_obj)
