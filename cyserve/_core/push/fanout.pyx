# cython: language_level=3
"""The group fan-out's per-member loop (see fanout.pxd)."""
from collections import deque

from cyserve._core.push.frames cimport PushTemplate
from cyserve._core.push.role cimport PushRole

# Looked up once: the history is made at a session's first push (an idle session holds none).
cdef object _deque = deque


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
    cdef PushRole role
    # A copy: a push can close a slow member, which may end its session and change the set.
    for session in tuple(sessions):
        if exclude is not None and session.client_id in exclude:
            continue
        # Session.record, inlined: the next number and the history (§8.1, §8.4).
        seq = session.next_seq
        following = seq + 1
        session.next_seq = following
        if max_count:
            history = session.history
            if history is None:
                history = session.history = _deque()
            history.append(message)
            hist_bytes = session.hist_bytes
            hist_bytes += size
            session.hist_bytes = hist_bytes
            if len(history) > max_count or hist_bytes > max_bytes:
                session.trim(max_count, max_bytes)
        else:
            session.hist_first = following
        conn = session.conn
        if conn is None:
            continue  # detached: the history keeps it for the resume
        key = conn.tkey
        if key != last_key:
            template = message.template(key, conn.codec_obj, conn.framing, max_frame)
            last_key = key
        # Connection.push, inlined for its common case: nothing held back, room in the queue
        # (§8.6, measured at the outbox), a template this member can receive.
        if conn.held is None and template is not None:
            link = conn.link
            if type(link) is PushRole:
                role = <PushRole>link
                if role.offer(<PushTemplate>template, seq, size, queue_bytes):
                    continue
            elif link.buffered() + size <= queue_bytes:
                link.send_push(template, seq)
                continue
        conn.push(template, seq, size_obj)
