"""The suites' tests import ``httpx2`` (the successor their projects moved to); where only httpx
is installed, the name is given to httpx, whose API the tests use (``Client``, ``AsyncClient``,
``ASGITransport``, ``Response``, ``URL``) is the same.  Installing httpx2 makes this a no-op."""
from __future__ import annotations

import importlib.util
import sys

__all__ = ["alias"]


def alias() -> None:
    if "httpx2" not in sys.modules and importlib.util.find_spec("httpx2") is None:
        import httpx

        sys.modules["httpx2"] = httpx
