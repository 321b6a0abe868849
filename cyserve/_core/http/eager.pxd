# cython: language_level=3
"""Contract of the handler trampoline: run a handler's first step now, a Task only if it waits.

Most handlers finish without ever suspending, and a Task costs several microseconds per request.
``first_step(coro, ctx)`` runs the coroutine up to its first suspension inside ``ctx`` (the
request's own copy of the context): it returns None when the coroutine already finished, and a
``Resumed`` — a coroutine object an asyncio Task can drive — when it suspended.  An exception the
first step raises propagates to the caller.  Python 3.12's eager task factory does the same; this
works on 3.10+ and on uvloop, with no Python frame per step.
"""
from cpython.ref cimport PyObject, Py_XDECREF

cdef extern from "Python.h":
    # PEP 590-era C API (3.10+): resume a coroutine without raising StopIteration on return.
    int PyIter_Send(object iterator, object arg, PyObject** presult) except? -1
    int PYGEN_RETURN
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1


cdef class Resumed:
    """The rest of a coroutine whose first step already ran: the first ``send`` hands the Task what
    that step yielded; every later ``send``/``throw``/``close`` goes to the coroutine."""
    cdef object _coro
    cdef object _first          # what the first step yielded, until the Task took it
    cdef bint _taken


# Inline: it runs once per request, in the caller's C code.
cdef inline object first_step(object coro, object ctx):
    cdef PyObject* raw = NULL
    cdef int status
    cdef Resumed rest
    PyContext_Enter(ctx)
    try:
        status = PyIter_Send(coro, None, &raw)
    finally:
        PyContext_Exit(ctx)
    if status == PYGEN_RETURN:
        Py_XDECREF(raw)
        return None
    rest = Resumed.__new__(Resumed)
    rest._coro = coro
    rest._first = <object>raw
    rest._taken = False
    Py_XDECREF(raw)
    return rest
