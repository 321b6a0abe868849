"""A connection's deadlines: named slots behind one lazy loop timer (``cyserve._core.io.deadline``).

Made by the stream that owns it; Cython code uses the C face in ``deadline.pxd``.
"""
from typing import Final

PY_SLOT_INPUT: Final[int]
"""Bytes are expected from the peer (the stream's input watch)."""
PY_SLOT_OUTPUT: Final[int]
"""Written bytes must make progress (the stream's stall watch)."""
PY_SLOT_ROLE: Final[int]
"""The current role's own deadline (a handler's run time, a client's total)."""
PY_SLOT_LINGER: Final[int]
"""A lingering close ends by then."""

def py_monotonic() -> float:
    """CLOCK_MONOTONIC seconds, the clock every deadline is kept in."""

class Deadline:
    """Slots of absolute deadlines; one loop timer for the earliest."""

    def py_set(self, slot: int, seconds: float) -> None:
        """Arm ``slot`` for ``seconds`` from now (<= 0 clears it)."""
    def py_armed(self, slot: int) -> bool: ...
    def py_cancel(self) -> None:
        """Clear every slot and drop the timer and the owner."""
