"""What an App does around serving: startup and shutdown, tracked tasks, scheduled jobs.

Startup (``serve()`` calls it before listening): lifespan context managers are entered in order,
then ``on_startup`` hooks run in order, then scheduled jobs start.  Any failure is logged, what was
started is undone, and the error propagates: ``serve()`` raises it, ``app.run`` exits with status 1.

Draining (``Server.shutdown()`` starts it when it stops accepting): ``lifecycle.draining`` is set,
so the app's own producers of long-lived responses can end early, and each connection the server
still holds is told (``drain_notices``), so an ``SSEResponse`` ends its stream cleanly instead of
running into the grace period.  The fact itself has one owner, the core's ``ServerState``
(``Server.draining`` reads it); these are the two ways it is announced.

Shutdown (``Server.shutdown()`` calls it after the last connection closed): background tasks of
requests get what is left of the grace period (the drain's deadline), tracked tasks and jobs are
cancelled, ``on_shutdown`` hooks run in order, lifespans exit in reverse.  Failures there are
logged and do not stop the rest.

Every task made here is tracked and awaited or cancelled at shutdown; a failing task, job or
background function is logged, never fatal and never silent.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime
import functools
import inspect
import logging
from typing import Any, AsyncContextManager, Callable, Coroutine, Iterable

__all__ = ["DrainNotices", "Job", "Lifecycle", "cron_from_fields", "drain_notices"]

_log = logging.getLogger("cyserve.lifecycle")

Hook = Callable[[], Any]
Lifespan = Callable[[Any], AsyncContextManager[Any]]
BackgroundCall = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


async def call_maybe_sync(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await ``fn(...)`` if it is async; otherwise run it in the default thread pool, in a copy of
    the current context, so it cannot block the loop."""
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
        return await fn(*args, **kwargs)
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(None, functools.partial(ctx.run, fn, *args, **kwargs))
    if inspect.isawaitable(result):
        result = await result
    return result


class Job:
    """A function run on the loop every ``interval_s`` seconds or on a cron schedule.

    Runs never overlap: the next time is computed after a run ends.  Cron expressions use
    croniter's syntax (five fields, or six with seconds last) in the local time zone.  ``every``
    may also be Areion's dict form, ``{"minute": "*/5"}`` (``cron_from_fields`` says how it
    reads); ``cron`` is then the expression it stands for.
    """

    __slots__ = ("name", "fn", "args", "kwargs", "interval_s", "cron")

    def __init__(self, every: float | str | datetime.timedelta, fn: Callable[..., Any],
                 args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None,
                 name: str | None = None) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or {}
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        self.interval_s: float | None = None
        self.cron: str | None = None
        if isinstance(every, datetime.timedelta):
            every = every.total_seconds()
        elif isinstance(every, dict):
            every = cron_from_fields(every)
        if isinstance(every, str):
            croniter = _croniter()
            if not croniter.is_valid(every):
                raise ValueError(f"not a cron expression: {every!r}")
            self.cron = every
        elif isinstance(every, (int, float)) and not isinstance(every, bool):
            if every <= 0:
                raise ValueError(f"a schedule interval must be positive, got {every}")
            self.interval_s = float(every)
        else:
            raise TypeError("schedule() takes seconds, a timedelta, a cron string or a dict of "
                            f"cron fields, not {every!r}")

    def next_delay_s(self, now: datetime.datetime | None = None) -> float:
        """Seconds from ``now`` (default: the local time) to the next run."""
        if self.interval_s is not None:
            return self.interval_s
        now = now or datetime.datetime.now().astimezone()
        upcoming: datetime.datetime = _croniter()(self.cron, now).get_next(datetime.datetime)
        return max(0.0, (upcoming - now).total_seconds())

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self.next_delay_s())
            try:
                await call_maybe_sync(self.fn, *self.args, **self.kwargs)
            except Exception:  # noqa: BLE001 - logged; the schedule goes on
                _log.exception("scheduled job %s failed", self.name)

    def __repr__(self) -> str:
        return f"<Job {self.name} every {self.cron or f'{self.interval_s}s'}>"


# Areion's cron dict (``Orchestrator.schedule_cron_task(fn, {...})``) holds APScheduler's
# CronTrigger fields, most significant first here.  Areion allowed these six.
_FIELDS = ("year", "month", "day", "hour", "minute", "second")
# What APScheduler puts in a field less significant than the least significant one given.
_FIELD_MINIMUM = {"month": "1", "day": "1", "hour": "0", "minute": "0", "second": "0"}


def cron_from_fields(fields: dict[str, Any]) -> str:
    """The croniter expression for Areion's dict form of a cron job, read as APScheduler read it.

    ``{"minute": "*/5"}`` runs every five minutes at second 0: fields more significant than the
    least significant one given are ``*``, less significant ones their minimum (``{"hour": 3}``
    is 03:00:00 daily).  Values are ints or cron field strings (``"*/5"``, ``"1-5"``,
    ``"1,15"``).  Areion's keys only (``second minute hour day month year``): anything else, an
    empty dict (APScheduler ran that every second) or a value croniter rejects is a
    ``ValueError``.  Weekdays need the string form (``"0 3 * * mon-fri"``).
    """
    unknown = sorted(set(fields) - set(_FIELDS))
    if unknown:
        raise ValueError(f"unknown cron fields {unknown}: Areion's are {', '.join(_FIELDS)}")
    if not fields:
        raise ValueError("a cron dict needs at least one field")
    values: dict[str, str] = {}
    given = False
    for name in reversed(_FIELDS):  # least significant first: minimums until the first given
        value = fields.get(name)
        if value is not None:
            text = str(value).strip()
            if not text or any(c.isspace() for c in text):
                raise ValueError(f"cron field {name}={value!r} is empty or holds whitespace")
            values[name] = text
            given = True
        else:
            values[name] = "*" if given else _FIELD_MINIMUM.get(name, "*")
    # croniter: minute hour day month day-of-week second [year].
    parts = [values["minute"], values["hour"], values["day"], values["month"], "*", values["second"]]
    if "year" in fields:
        parts.append(values["year"])
    expression = " ".join(parts)
    if not _croniter().is_valid(expression):
        raise ValueError(f"cron fields {fields!r} make no valid schedule ({expression!r})")
    return expression


def _croniter() -> Any:
    try:
        from croniter import croniter
    except ImportError:
        raise ImportError("cron schedules need croniter: pip install croniter") from None
    return croniter


class Lifecycle:
    """The startup/shutdown machinery of one App (``app.lifecycle``)."""

    def __init__(self) -> None:
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.lifespans: list[Lifespan] = []
        self.jobs: list[Job] = []
        self.started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._stack: contextlib.AsyncExitStack | None = None
        # Made again at each start: an asyncio.Event is bound to the first loop that waits on
        # it, and an App may be served on one loop after another (tests do).
        self._draining = asyncio.Event()
        self._drain_deadline: float | None = None  # loop time the drain must be over by

    @property
    def draining(self) -> asyncio.Event:
        """Set when a server serving this app begins its graceful shutdown (it no longer
        accepts; requests in flight may finish).  A producer that would otherwise run until its
        client leaves (a loop feeding a stream, a long poll) waits on it to end early and
        cleanly.  A new event each time the app starts: read it after startup."""
        return self._draining

    @property
    def drain_deadline(self) -> float | None:
        """The loop time a drain in progress must be over by; None when not draining."""
        return self._drain_deadline

    def begin_drain(self, deadline: float) -> None:
        """The serving server stopped accepting and must be done by ``deadline`` (loop time):
        set ``draining``; background tasks get no later than the deadline (``stop``)."""
        if self._drain_deadline is None or deadline < self._drain_deadline:
            self._drain_deadline = deadline
        self._draining.set()

    def add_lifespan(self, fn: Callable[[Any], Any]) -> None:
        if inspect.isasyncgenfunction(fn):
            fn = contextlib.asynccontextmanager(fn)
        self.lifespans.append(fn)

    # -------------------------------------------------------------- start / stop
    async def start(self, app: Any) -> None:
        if self.started:
            return
        self._draining = asyncio.Event()
        self._drain_deadline = None
        self._stack = contextlib.AsyncExitStack()
        try:
            for lifespan in self.lifespans:
                state = await self._stack.enter_async_context(lifespan(app))
                if isinstance(state, dict):
                    app.state.update(state)
            for hook in self.startup_hooks:
                await _call_hook(hook)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                # Raised to the caller, who reports it (the command line in one line, exit 3):
                # the traceback is for debugging, not for every failed start.
                _log.debug("startup failed: %r", exc, exc_info=exc)
            await _cancel(set(self._tasks))  # tasks a hook created before the failure
            await self._close_stack()
            raise
        self.started = True
        for job in self.jobs:
            self._start_job(job)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Wait up to ``grace_s`` (never past a drain's deadline) for background tasks, then
        cancel what is left; then the hooks and the lifespans."""
        if self._drain_deadline is not None:
            left = self._drain_deadline - asyncio.get_running_loop().time()
            grace_s = min(grace_s, max(0.0, left))
        if self._background:
            _, late = await asyncio.wait(set(self._background), timeout=grace_s)
            if late:
                _log.warning("%d background task(s) still running after %.1fs: cancelling",
                             len(late), grace_s)
                await _cancel(late)
        await _cancel(set(self._tasks))
        if self.started:
            self.started = False
            for hook in self.shutdown_hooks:
                try:
                    await _call_hook(hook)
                except Exception:  # noqa: BLE001 - logged; the other hooks still run
                    _log.exception("shutdown hook %r failed", hook)
            await self._close_stack()

    async def _close_stack(self) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception:  # noqa: BLE001 - logged; shutdown goes on
                _log.exception("lifespan exit failed")

    # -------------------------------------------------------------- tasks
    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None) -> asyncio.Task[Any]:
        """Run ``coro`` as a task that is cancelled at shutdown; a failure is logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._track(task, self._tasks)
        return task

    def schedule(self, job: Job) -> Job:
        self.jobs.append(job)
        if self.started:
            self._start_job(job)
        return job

    def _start_job(self, job: Job) -> None:
        self.create_task(job.run_forever(), name=f"cyserve-job:{job.name}")

    def run_background(self, calls: list[BackgroundCall],
                       then: Callable[[], None] | None = None) -> None:
        """Run a request's background calls in order, after its response, in a tracked task
        (created in the request's context: each call gets its own copy of it).  ``then()``
        runs after the last call, also when the task is cancelled at shutdown: it releases
        what the calls may use (the request's form files)."""
        task = asyncio.get_running_loop().create_task(_run_calls(list(calls), then))
        self._track(task, self._background)

    def _track(self, task: asyncio.Task[Any], into: set[asyncio.Task[Any]]) -> None:
        into.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            into.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                _log.error("task %s failed", finished.get_name(), exc_info=finished.exception())
        task.add_done_callback(done)


class DrainNotices:
    """Which connections have been told that their server is draining (``drain_notices``, the
    one instance).

    A response that would run until its client leaves asks ``watch(conn.stream)`` for a future
    resolved when the server serving that connection begins its graceful shutdown, and
    ``unwatch``es it when done; ``Server.shutdown`` calls ``tell(streams)`` with the connections
    it holds, and ``forget(streams)`` once they are gone.  Kept per connection, not per
    process: two servers on one loop (a test suite's) drain independently.  The core knows
    the fact first (``ServerState.shutting_down``) but offers no future for it; this registry
    carries it to Python until one does.
    """

    __slots__ = ("_waiting", "_told")

    def __init__(self) -> None:
        self._waiting: dict[Any, asyncio.Future[None]] = {}
        # Streams already told: a response that starts watching after the notice (its handler
        # was still awaiting something) gets a resolved future, not a wait into the grace period.
        self._told: set[Any] = set()

    def watch(self, stream: Any) -> asyncio.Future[None]:
        """A future resolved once ``stream``'s server drains (at once if it already does)."""
        future = self._waiting.get(stream)
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            if stream in self._told:
                future.set_result(None)
            else:
                self._waiting[stream] = future
        return future

    def unwatch(self, stream: Any) -> None:
        future = self._waiting.pop(stream, None)
        if future is not None and not future.done():
            future.cancel()

    def tell(self, streams: Iterable[Any]) -> None:
        for stream in streams:
            self._told.add(stream)
            future = self._waiting.pop(stream, None)
            if future is not None and not future.done():
                future.set_result(None)

    def forget(self, streams: Iterable[Any]) -> None:
        """The server is done with these connections: let go of them."""
        self._told.difference_update(streams)

    def __len__(self) -> int:
        return len(self._waiting) + len(self._told)


drain_notices = DrainNotices()


async def _call_hook(hook: Hook) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


async def _run_calls(calls: list[BackgroundCall], then: Callable[[], None] | None) -> None:
    loop = asyncio.get_running_loop()
    try:
        for fn, args, kwargs in calls:
            ctx = contextvars.copy_context()
            try:
                if inspect.iscoroutinefunction(fn):
                    # A task made inside ctx.run runs in a copy of ctx.
                    await ctx.run(loop.create_task, fn(*args, **kwargs))
                else:
                    await loop.run_in_executor(None, functools.partial(ctx.run, fn, *args, **kwargs))
            except Exception:  # noqa: BLE001 - logged; the next call still runs
                _log.exception("background task %r failed", fn)
    finally:
        if then is not None:
            then()


async def _cancel(tasks: set[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
