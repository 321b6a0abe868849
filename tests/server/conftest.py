"""Fixtures of the process tests (workers, listeners)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.processes import launch


@pytest.fixture
def started(tmp_path: Path):
    """``started(options)`` launches a server; every one is ended after the test."""
    servers = []

    def start(options: dict, **kwargs):
        server = launch(tmp_path, options, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
