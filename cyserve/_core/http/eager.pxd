# cython: language_level=3
"""Contract of the handler trampoline: every handler runs in an asyncio Task of its own, and
that Task's first step runs now, in the caller's pass over the request.

``start_handler(loop, coro, ctx)`` runs the first step of ``coro`` in ``ctx`` (the request's own
copy of the context) at once, with the handler's Task current: from the first line of a handler
``asyncio.current_task()`` is the Task that drives the rest, so ``asyncio.timeout``,
``asyncio.wait_for`` (built on it from 3.12), anyio cancel scopes (Starlette, httpx) and redis-py
work there as in any Task, and a scope entered before the first suspension is left in the same
Task after it.  It returns None when the coroutine finished in that step, the Task when it
suspended (the caller tracks it and hears of its end through a done callback).  An exception the
step raised propagates to the caller.

How, per Python version (instructions per request from bench/micro/callgrind_per_request.py are
in the commit that brought this):

- 3.12+: ``asyncio.Task(eager_start=True)``, asyncio's own eager start.  A handler that finishes
  in its first step leaves a finished Task and nothing scheduled.
- 3.11 (no eager start: a Task schedules its first step when it is made, and a Task costs as much
  as the rest of a plain request together): the current task during the first step is a
  ``HandlerTask`` (an ``asyncio.Task`` subclass) that is allocated but not yet initialised:
  ``cancel``, ``cancelling``, ``uncancel``, ``done`` and ``set_name`` (all ``asyncio.timeout``
  and anyio's cancel scopes use) work on it as on a fresh Task, and every other method first makes
  it a full Task (``Task.__init__`` on the same object, its cancellation state carried over).  It
  becomes one too when the coroutine suspends, or when it finished but something kept a
  reference to its Task; otherwise it is dropped unseen.  The full Task drives a ``Resumed``
  wrapper: its first step hands the Task what the coroutine waits on (or ends the Task as the
  coroutine ended).  The Task is current through ``asyncio.tasks._current_tasks``, the dict
  ``_enter_task`` writes and ``current_task`` reads.  With a task factory installed, the factory
  makes a full Task before the step (it must see every Task).  What differs from a Task: until it
  is made full, ``asyncio.all_tasks()`` does not list it.

Why not a stand-in object as the current task until a Task exists: anyio's
``CancelScope.__exit__`` requires ``current_task()`` to be the very object ``__enter__`` saw, so a
scope opened before the first suspension and closed after it would fail.  Why a subclass: a bare
uninitialised ``asyncio.Task`` crashes the interpreter on ``get_coro()`` (a NULL coroutine).
"""

# Where a Resumed is (``_phase``), 3.11 only.
cdef enum:
    R_FIRST = 0        # the coroutine waits on ``_first``; the Task has not taken it yet
    R_RUNNING = 1      # the Task drives the coroutine: everything passes through
    R_RETURNED = 2     # the coroutine returned ``_outcome`` in the first step
    R_RAISED = 3       # the coroutine raised ``_outcome`` in the first step


cdef class Resumed:
    """The rest of a coroutine whose first step ran outside its Task's own stepping (3.11): the
    Task's first ``send`` gets what that step yielded (or the coroutine's end); every later
    ``send``/``throw``/``close`` goes to the coroutine.  Until its HandlerTask is made full it
    also holds what that needs (``_loop``, ``_ctx``)."""
    cdef object _coro
    cdef object _first          # what the first step yielded, until the Task took it
    cdef object _outcome        # the return value or the exception of a first step that ended
    cdef int _phase
    cdef object _loop           # for HandlerTask: until it is made a full Task, else None
    cdef object _ctx

    cdef object _send(self, object value)
    cdef object _end(self)


cdef object start_handler(object loop, object coro, object ctx)
