"""A module that raises while it is imported."""
from __future__ import annotations

raise RuntimeError("missing SECRET_KEY")
