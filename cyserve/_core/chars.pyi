"""Byte classes of the head grammar (``cyserve._core.chars``).

No Python API: the tables and the ``cdef inline`` helpers that read them are the C contract in
``chars.pxd``, used by ``scanner``, ``startline``, ``fields`` and ``head``.
"""
