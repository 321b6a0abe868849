"""pytest plugin pointing Starlette's own test suite at a real server.

Starlette's ``test_client_factory`` fixture (its ``tests/conftest.py``) is a partial of
``starlette.testclient.TestClient``, imported when that conftest loads; this plugin loads first
(``-p``) and puts ``RealSocketTestClient`` under that name, so the fixture, and the few tests that
build a ``TestClient`` themselves, get a client whose app is served by the server under test
over 127.0.0.1.  Nothing in Starlette's sources or tests is edited.

Starlette's tests (and its TestClient) import ``httpx2``: see ``realsocket.httpx2``.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import httpx2

httpx2.alias()

import starlette.testclient  # noqa: E402  (after the httpx2 name exists)

from .client import RealSocketTestClient, close_all  # noqa: E402

starlette.testclient.TestClient = RealSocketTestClient  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _stop_servers_after_test() -> Iterator[None]:
    """A client made without ``with`` and never closed leaves its server running; stop it."""
    yield
    close_all()
