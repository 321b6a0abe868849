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
and writes their slots and owns none of their state.
"""
