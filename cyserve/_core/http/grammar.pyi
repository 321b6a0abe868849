"""The HTTP/1.1 grammar (``cyserve._core.http.grammar``).

No Python API: the byte tables, the ``cdef inline`` helpers that read them, the ``ParseError``
codes the C loops return and ``raise_error`` (which turns one into the
``cyserve.errors.ProtocolError`` carrying the status to answer) are the C contract in
``grammar.pxd``, used by ``scanner``, ``startline``, ``fields``, ``head``, ``chunked`` and
``serialise``.
"""
