"""The per-connection lazy deadline: one loop timer, moved freely, re-armed only to fire earlier."""
import asyncio
from typing import Callable

def py_monotonic() -> float:
    """CLOCK_MONOTONIC seconds, the clock deadlines are kept in."""

class Deadline:
    """``Deadline(loop, on_expiry)``: calls ``on_expiry(kind)`` once the deadline passes."""

    at: float
    kind: int
    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[int], None]) -> None: ...
    def py_set(self, kind: int, seconds: float) -> None:
        """Guard ``kind`` for ``seconds`` from now (kind 0 or seconds <= 0 clears)."""
    def py_cancel(self) -> None:
        """Clear the deadline and its loop timer."""
