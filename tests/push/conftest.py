"""Fixtures of the push tests: a real redis-server (tests/push/redis_support.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.push.redis_support import REDIS_SERVER, RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` on a free 127.0.0.1 port for this test (about 10-20 ms to
    start): ``.url``, ``.port``, ``.stop()``, ``.start()`` (same port), ``.restart()``,
    ``.freeze()``/``.thaw()``, ``.cli(*args)``.  Killed at teardown whatever state it is in.
    Skips when redis-server is not installed (CI installs it)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.kill()
