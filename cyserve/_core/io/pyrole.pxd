# cython: language_level=3
"""Contract of ``PythonRole``: a role written in Python, driving a ``Stream``.

The adapter registers ``RoleHooks`` that call the Python object's methods, and is itself what
that object reads and writes through (``read``, ``write``, ``drain``, ``close``).  One Python
call per loop event: for tests (a role that takes over after a 101) and prototypes, not for the
hot protocols, which are Cython roles.
"""
from cyserve._core.io.stream cimport Stream


cdef class PythonRole:
    cdef readonly Stream stream
    cdef readonly object role          # the Python object the events go to
