# cython: language_level=3
"""Contract of request-head serialisation: the client role of the writer (DESIGN §3).

One function, over the server's ``HeadWriter`` and its field validation (``_put_field``: no
CR/LF/NUL, token names), so both roles refuse header injection in exactly one place.  The head is
built in the writer's scratch block and copied out as one ``bytes``; nothing outlives the call.
"""
from cyserve._core.writer cimport HeadWriter


# Serialise a request head with the writer's field validation: "METHOD SP target SP HTTP/1.1",
# the caller's fields (CR/LF/NUL and non-token names refused; Content-Length, Transfer-Encoding
# and Connection dropped: framing is decided here), then the framing field (``framing`` is a
# writer BODY_* value) and, when asked or when the caller's own fields asked (``w.user_close``),
# Connection: close.  ``body`` (bytes or None) is appended when at most COALESCE_BODY_BYTES, so a
# small request is one write.  ValueError for a non-token method or a bad request target;
# TypeError when either is None.
cdef bytes request_head(HeadWriter w, str method, str target, object fields, int framing,
                        long long content_length, bint close, object body)
