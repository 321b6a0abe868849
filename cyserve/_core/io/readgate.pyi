"""Named reasons to stop reading, one pause/resume decision (``cyserve._core.io.readgate``)."""
from typing import Final

PY_PAUSE_BACKLOG: Final[int]
"""Delivered input its consumer has not taken yet (a body above its high water mark)."""
PY_PAUSE_QUEUE: Final[int]
"""Whole inputs wait behind the one being handled (pipelined requests)."""
PY_PAUSE_APP: Final[int]
"""The application asked."""

class ReadGate:
    reasons: int
    paused: bool
    def py_hold(self, reason: int) -> bool:
        """Hold ``reason``; True when the transport was told to pause."""
    def py_release(self, reason: int) -> bool:
        """Release ``reason``; True when the transport was told to resume."""
