"""pytest fixtures for testing a cyserve App (the ``pytest11`` entry point ``cyserve`` loads them).

Tell them which app by defining a ``cyserve_app`` fixture: in ``conftest.py`` for the whole
project, or in one test module to use another app there (the nearest definition wins)::

    @pytest.fixture
    def cyserve_app():
        from myproject.main import app
        return app

Then request any of:

``cyserve_client``
    a ``cyserve.testing.TestClient`` of that app, synchronous (``cyserve_client.get("/").json()``);
    the first request starts it, lifespan included; it is closed after the test.
``cyserve_url``
    the base URL (``http://127.0.0.1:<port>``) of that app, served for the test: for any HTTP
    client, a browser driver, a subprocess.  The same server as ``cyserve_client``'s.
``cyserve_async_client``
    a ``cyserve.Client`` with ``base_url=cyserve_url``, to ``await`` in an async test
    (pytest-asyncio, anyio's ``@pytest.mark.anyio``, ``asyncio.run``, uvloop).  It sends
    ``Connection: close``, so no connection outlives the test's loop, whichever plugin owns that
    loop and whenever it closes it (keep-alive is exercised by ``cyserve_client``, or by a Client
    of your own on ``cyserve_url`` that you close in the test).

The server runs on its own loop in a background thread, so the fixtures work under any async
plugin, or none.  Each is function-scoped: every test gets a fresh server and lifespan.  For one
server per module or session, override ``cyserve_client`` (and ``cyserve_app``) with that scope.

Nothing is autouse, and this module imports only pytest: cyserve is imported when a fixture is
first used, so a project that does not use the fixtures does not pay for it (and coverage of
cyserve itself starts before cyserve is imported).  That is why it is a package of its own rather
than ``cyserve.pytest_plugin``: importing any ``cyserve.*`` module first runs ``cyserve/__init__``,
which imports every public module.  ``-p no:cyserve`` turns the plugin off.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

import pytest

if TYPE_CHECKING:
    from cyserve.client import Client
    from cyserve.testing import TestClient

__all__ = ["cyserve_app", "cyserve_client", "cyserve_url", "cyserve_async_client"]


@pytest.fixture
def cyserve_app() -> Any:
    """The App under test: define your own ``cyserve_app`` fixture that returns it."""
    pytest.fail("the cyserve fixtures need an app: define a `cyserve_app` fixture that returns it "
                "(in conftest.py, or in the test module)", pytrace=False)


@pytest.fixture
def cyserve_client(cyserve_app: Any) -> Iterator[TestClient]:
    """A synchronous ``TestClient`` of ``cyserve_app``, started on first use, closed after it."""
    from cyserve.testing import TestClient
    client = TestClient(cyserve_app)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cyserve_url(cyserve_client: TestClient) -> str:
    """The base URL of ``cyserve_app`` served for this test (``http://127.0.0.1:<port>``)."""
    return cyserve_client.base_url


@pytest.fixture
def cyserve_async_client(cyserve_url: str) -> Client:
    """A ``cyserve.Client`` bound to ``cyserve_url``, for async tests."""
    from cyserve.client import Client
    # A pooled keep-alive connection belongs to the test's loop, which the async plugins close
    # right after the test, before any sync fixture's teardown could close it (anyio does):
    # with RFC 9112 §9.6 "close" every exchange ends with its connection, inside the test.
    return Client(base_url=cyserve_url, headers={"Connection": "close"})
