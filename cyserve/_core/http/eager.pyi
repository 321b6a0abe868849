"""The handler trampoline: a handler's first step runs inline, a Task drives the rest only when
it suspends.  C face only (``first_step`` in ``eager.pxd``); ``Resumed`` is what the Task drives."""
from typing import Any

class Resumed:
    """The rest of a coroutine whose first step already ran."""

    def send(self, value: Any) -> Any: ...
    def throw(self, typ: Any, val: Any = ..., tb: Any = ...) -> Any: ...
    def close(self) -> None: ...
