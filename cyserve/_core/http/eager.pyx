# cython: language_level=3
"""The handler trampoline (see eager.pxd)."""
cimport cython
from cpython.dict cimport PyDict_GetItem
from cpython.ref cimport PyObject, Py_XDECREF
from cpython.version cimport PY_VERSION_HEX

import asyncio
import asyncio.tasks
import collections.abc

cdef extern from "Python.h":
    # PEP 590-era C API (3.10+): resume a coroutine without raising StopIteration on return.
    int PyIter_Send(object iterator, object arg, PyObject** presult) except? -1
    int PYGEN_RETURN
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    Py_ssize_t Py_REFCNT(object o)
    ctypedef struct PyTypeObject
    # asyncio.Task's tp_new (3.11): allocate, zeroed, GC-tracked; no __init__.
    object PyType_GenericNew(PyTypeObject* type, PyObject* args, PyObject* kwds)

cdef object _Task = asyncio.Task
cdef object _task_init = asyncio.Task.__init__
cdef object _CancelledError = asyncio.CancelledError
cdef object _isfuture = asyncio.isfuture
# 3.11: the dict asyncio.current_task() reads, keyed by loop (the C accelerator's when it is
# built, the pure-Python module's otherwise: asyncio.tasks names whichever is in use).  From 3.12
# the Task's eager start sets the current task itself (and 3.14 keeps it elsewhere).
cdef dict _current_tasks = asyncio.tasks._current_tasks if PY_VERSION_HEX < 0x030C0000 else None
cdef object _HandlerTask        # HandlerTask, once the class below exists


cdef object start_handler(object loop, object coro, object ctx):
    if PY_VERSION_HEX >= 0x030C0000:
        return _start_eager(loop, coro, ctx)
    return _start_stepped(loop, coro, ctx)


# ---------------------------------------------------------------- 3.12+
cdef object _start_eager(object loop, object coro, object ctx):
    try:
        if loop.get_task_factory() is None:
            task = _Task(coro, loop=loop, context=ctx, eager_start=True)
        else:
            # The app's factory (tracing, monitoring) makes every Task; it decides whether the
            # first step runs now (asyncio.eager_task_factory) or at the loop's next turn.
            task = loop.create_task(coro, context=ctx)
    except BaseException:
        # No Task took it (a closed loop, a failing factory): no "never awaited" warning for a
        # coroutine that never ran (closing one that ended already does nothing).
        coro.close()
        raise
    if task.done():
        # Ended in its first step: re-raise what it raised, which also marks the Task's
        # exception retrieved (nothing is logged for it when the Task is collected).
        task.result()
        return None
    return task


# ---------------------------------------------------------------- 3.11
cdef object _start_stepped(object loop, object coro, object ctx):
    cdef Resumed rest = Resumed.__new__(Resumed)
    cdef PyObject* raw = NULL
    cdef int status
    rest._coro = coro
    if loop.get_task_factory() is None:
        task = PyType_GenericNew(<PyTypeObject*>_HandlerTask, NULL, NULL)
        rest._loop = loop
        rest._ctx = ctx
        task._cyserve_rest = rest
    else:
        # The app's factory makes every Task (and may not make a HandlerTask): a full one now.
        try:
            task = loop.create_task(rest, context=ctx)
        except BaseException:
            coro.close()
            raise
    try:
        status = _step_as(task, loop, coro, ctx, &raw)
    except BaseException as exc:
        if _seen(task):
            rest._phase = R_RAISED
            rest._outcome = exc
            _make_full(task)
            if isinstance(exc, Exception):
                # The Task ends with it too, one turn later; the caller deals with it now, so
                # the Task's copy must not be logged as never retrieved.
                task.add_done_callback(_retrieve)
        raise
    if status == PYGEN_RETURN:
        value = <object>raw
        Py_XDECREF(raw)
        if _seen(task):
            rest._phase = R_RETURNED
            rest._outcome = value
            _make_full(task)
        return None
    rest._phase = R_FIRST
    rest._first = <object>raw
    Py_XDECREF(raw)
    _make_full(task)
    return task


cdef int _step_as(object task, object loop, object coro, object ctx, PyObject** raw) except? -1:
    """One step of ``coro`` in ``ctx`` with ``task`` current; the PyIter_Send status."""
    cdef PyObject* held
    # Whatever was current is current again after the step (a loop callback has none; a
    # protocol fed from a coroutine, as the tests and bench/micro do, has the feeding Task).
    held = PyDict_GetItem(_current_tasks, loop)
    outer = <object>held if held != NULL else None
    _current_tasks[loop] = task
    PyContext_Enter(ctx)
    try:
        return PyIter_Send(coro, None, raw)
    finally:
        PyContext_Exit(ctx)
        if outer is None:
            _current_tasks.pop(loop, None)
        else:
            _current_tasks[loop] = outer


cdef bint _seen(object task) except -1:
    """Whether the Task of a first step that ended must end as a Task too (one turn later):
    it is a full Task already, or something kept it (our ``task`` is the only reference
    otherwise).  An unseen HandlerTask is dropped: nobody can tell it never ran as a Task."""
    if type(task) is not _HandlerTask:
        return True
    return task._cyserve_rest is None or Py_REFCNT(task) > 1


cdef int _make_full(object task) except -1:
    """Initialise a HandlerTask as the Task it stands for (idempotent): ``Task.__init__`` on the
    same object (identity kept), driving its Resumed; cancellation asked for so far carried
    over (``__init__`` resets it)."""
    cdef Resumed rest
    if type(task) is not _HandlerTask:
        return 0
    held = task._cyserve_rest
    if held is None:
        return 0
    rest = <Resumed>held
    task._cyserve_rest = None
    loop = rest._loop
    ctx = rest._ctx
    rest._loop = None
    rest._ctx = None
    requests = _Task.cancelling(task)
    pending = task._must_cancel
    message = task._cancel_message
    _task_init(task, rest, loop=loop, context=ctx, name=_Task.get_name(task))
    if pending:
        # cancel() counts each request and sets the pending flag; uncancel() only counts down.
        _Task.cancel(task, message)
        if requests == 0:
            _Task.uncancel(task)
        for _ in range(requests - 1):
            _Task.cancel(task, message)
    return 0


def _retrieve(task):
    if not task.cancelled():
        task.exception()


class HandlerTask(asyncio.Task):
    """The Task a handler runs in on Python 3.11 (see eager.pxd): allocated before its first
    step, initialised as a Task only when it has to be.  What works on an uninitialised Task is
    inherited; everything else makes it a full Task first."""

    __slots__ = ("_cyserve_rest",)

    def get_coro(self):
        _make_full(self)
        return _Task.get_coro(self)

    def get_loop(self):
        _make_full(self)
        return _Task.get_loop(self)

    def get_name(self):
        _make_full(self)
        return _Task.get_name(self)

    def get_stack(self, *, limit=None):
        _make_full(self)
        return _Task.get_stack(self, limit=limit)

    def print_stack(self, *, limit=None, file=None):
        _make_full(self)
        return _Task.print_stack(self, limit=limit, file=file)

    def add_done_callback(self, fn, *, context=None):
        _make_full(self)
        return _Task.add_done_callback(self, fn, context=context)

    def remove_done_callback(self, fn):
        _make_full(self)
        return _Task.remove_done_callback(self, fn)

    def result(self):
        _make_full(self)
        return _Task.result(self)

    def exception(self):
        _make_full(self)
        return _Task.exception(self)

    def __await__(self):
        _make_full(self)
        return _Task.__await__(self)

    __iter__ = __await__

    def __repr__(self):
        _make_full(self)
        return _Task.__repr__(self)

    # Attributes asyncio's own Python code reads (reprs, stacks, future chaining).
    @property
    def _loop(self):
        return self.get_loop()

    @property
    def _coro(self):
        return self.get_coro()

    @property
    def _state(self):
        _make_full(self)
        return _Task._state.__get__(self)

    @property
    def _callbacks(self):
        _make_full(self)
        return _Task._callbacks.__get__(self)

    @property
    def _result(self):
        _make_full(self)
        return _Task._result.__get__(self)

    @property
    def _exception(self):
        _make_full(self)
        return _Task._exception.__get__(self)

    @property
    def _log_traceback(self):
        _make_full(self)
        return _Task._log_traceback.__get__(self)

    @_log_traceback.setter
    def _log_traceback(self, value):
        _make_full(self)
        _Task._log_traceback.__set__(self, value)


_HandlerTask = HandlerTask


@cython.final
@cython.freelist(8)
cdef class Resumed:
    """Awaitable and drivable like a coroutine (``send``, ``throw``, ``close``, ``__await__``),
    and readable like one (``cr_frame``, ``cr_running``, ...: ``Task.get_stack``, the Task's repr
    and anyio's started-task check read them)."""

    def __init__(self):
        raise TypeError("Resumed is made by start_handler()")

    cdef object _send(self, object value):
        cdef int phase = self._phase
        if phase == R_RUNNING:
            return self._coro.send(value)
        if phase == R_FIRST:
            # The Task's first step: what the coroutine is already waiting on.  Not kept after:
            # a future it awaited may later hold an exception whose traceback would point back.
            self._phase = R_RUNNING
            first = self._first
            self._first = None
            return first
        return self._end()

    cdef object _end(self):
        """The Task's first step, for a coroutine that ended in ours: end the Task the same way."""
        outcome = self._outcome
        self._outcome = None
        returned = self._phase == R_RETURNED
        self._phase = R_RUNNING   # the coroutine is done: any further use is the coroutine's error
        if returned:
            raise StopIteration(outcome)
        if isinstance(outcome, (Exception, _CancelledError)):
            raise outcome
        # KeyboardInterrupt, SystemExit: the server had them once already; a Task would raise
        # them into the loop again, so this one ends cancelled instead.
        raise _CancelledError()

    def send(self, value):
        return self._send(value)

    def throw(self, typ, val=None, tb=None):
        cdef int phase = self._phase
        if phase == R_RETURNED or phase == R_RAISED:
            # Cancelled after the coroutine had ended: the Task ends as the coroutine did.
            return self._end()
        if phase == R_FIRST:
            self._phase = R_RUNNING
            first = self._first
            self._first = None
            thrown = typ if val is None else val
            if (first is not None and _isfuture(first)
                    and (isinstance(thrown, _CancelledError)
                         or (isinstance(thrown, type) and issubclass(thrown, _CancelledError)))):
                # Cancelled before the Task took the future the coroutine waits on: a Task that
                # had taken it (its _fut_waiter) would cancel that future, and so it is here (an
                # awaited Task is cancelled with its awaiter, as in asyncio).
                first.cancel()
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self):
        self._first = None
        self._outcome = None
        if self._phase == R_FIRST or self._phase == R_RUNNING:
            self._phase = R_RUNNING
            self._coro.close()

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self._send(None)

    @property
    def cr_frame(self):
        return self._coro.cr_frame

    @property
    def cr_running(self):
        return self._coro.cr_running

    @property
    def cr_suspended(self):
        return self._coro.cr_suspended

    @property
    def cr_await(self):
        return self._coro.cr_await

    @property
    def cr_code(self):
        return self._coro.cr_code

    @property
    def __name__(self):
        return self._coro.__name__

    @property
    def __qualname__(self):
        return self._coro.__qualname__

    def __repr__(self):
        return f"<Resumed {self._coro!r}>"


# asyncio.Task and asyncio.create_task() take collections.abc.Coroutine instances.
collections.abc.Coroutine.register(Resumed)
