"""examples/fastapi_app.py with one change, made through FastAPI's own ``dependency_overrides``:
the ``catalogue`` dependency of ``GET /products/{id}`` is an ``async def``.

The example declares it a plain ``def`` (as FastAPI's tutorial often does), so FastAPI runs it in
anyio's worker thread on every request: a hand-off to a thread and back that costs far more CPU
than the server does, and on one pinned core its cost swings with the scheduler. Served
unchanged otherwise, this variant shows what the same route gets from the server when the
framework stays on the event loop (``run.py``'s ``fastapi-async-json`` scenario; README.md).
"""
from __future__ import annotations

import sys
from pathlib import Path

from fastapi import Request

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))

from fastapi_app import Catalogue, app, catalogue  # noqa: E402


async def catalogue_on_loop(request: Request) -> Catalogue:
    found: Catalogue = request.state.catalogue
    return found


app.dependency_overrides[catalogue] = catalogue_on_loop

__all__ = ["app"]
