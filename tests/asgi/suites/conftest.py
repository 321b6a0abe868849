"""The suites' marker: ``asgi_suite`` tests download a project's sdist and run its test suite in
a subprocess (minutes, network on first use), so the default run can leave them out
(``-m "not asgi_suite"``) and CI runs them as a step of their own."""
from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "asgi_suite: runs a third-party test suite (Starlette's, uvicorn's) against the ASGI adapter")
