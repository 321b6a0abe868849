"""The handler trampoline: each handler runs in an asyncio Task of its own, whose first step runs
inline, with that Task current (``asyncio.current_task()`` is it from the handler's first line).
C face only (``start_handler`` in ``eager.pxd``); the classes here are what Python code can meet:
``HandlerTask`` is the type of a handler's Task on Python 3.11, ``Resumed`` what a 3.11 Task
drives."""
import asyncio
from types import CodeType, FrameType
from typing import Any

class HandlerTask(asyncio.Task[Any]):
    """A handler's Task on Python 3.11: an ``asyncio.Task`` initialised only once it has to be
    (its coroutine suspends, or something needs more than ``cancel``/``cancelling``/
    ``uncancel``/``done``); until then ``asyncio.all_tasks()`` does not list it."""

class Resumed:
    """The rest of a coroutine whose first step already ran (Python 3.11)."""

    def send(self, value: Any) -> Any: ...
    def throw(self, typ: Any, val: Any = ..., tb: Any = ...) -> Any: ...
    def close(self) -> None: ...
    @property
    def cr_frame(self) -> FrameType | None: ...
    @property
    def cr_running(self) -> bool: ...
    @property
    def cr_suspended(self) -> bool: ...
    @property
    def cr_await(self) -> Any: ...
    @property
    def cr_code(self) -> CodeType: ...
