# cython: language_level=3
"""The handler trampoline (see eager.pxd)."""
cimport cython

import collections.abc


@cython.final
cdef class Resumed:
    """Awaitable and drivable like a coroutine (``send``, ``throw``, ``close``, ``__await__``)."""

    def __init__(self):
        raise TypeError("Resumed is made by first_step()")

    def send(self, value):
        if not self._taken:
            # The Task's first step: what the coroutine is already waiting on.  Not kept after:
            # a future it awaited may later hold an exception whose traceback would point back.
            self._taken = True
            first = self._first
            self._first = None
            return first
        return self._coro.send(value)

    def throw(self, typ, val=None, tb=None):
        self._taken = True
        self._first = None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self):
        self._taken = True
        self._first = None
        self._coro.close()

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self.send(None)

    def __repr__(self):
        return f"<Resumed {self._coro!r}>"


# asyncio.create_task() takes collections.abc.Coroutine instances.
collections.abc.Coroutine.register(Resumed)
