"""Continue a coroutine that was started eagerly, inside an asyncio Task.

The core runs each handler coroutine's first step synchronously (``coro.send(None)``): most
handlers finish there and never need a Task (a Task costs several microseconds per request).  A
handler that suspends is handed to ``drive``, which passes the awaitable it stopped on up to the
Task and then forwards every later send and throw (cancellation included) — what ``await`` would
do had the Task started the coroutine itself.  Python 3.12's eager task factory does the same; this
works on 3.10+ and on uvloop.
"""
from __future__ import annotations

import types
from typing import Any, Coroutine


@types.coroutine
def _forward(coro: Coroutine[Any, Any, Any], yielded: Any):
    # ``yielded`` is dropped before the coroutine resumes: a future it awaited may hold the
    # exception the coroutine raises next, whose traceback holds this frame (a cycle otherwise).
    while True:
        try:
            sent = yield yielded
        except BaseException as exc:  # noqa: BLE001 - forwarded, not swallowed
            yielded = None
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
            continue
        yielded = None
        try:
            yielded = coro.send(sent)
        except StopIteration as stop:
            return stop.value


async def drive(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Await ``coro``, which already ran up to its first suspension and yielded ``yielded``."""
    forward = _forward(coro, yielded)
    del coro, yielded  # this frame must not keep the first awaitable either (see _forward)
    return await forward
