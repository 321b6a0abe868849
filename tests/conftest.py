"""Shared fixtures: every loop-touching test runs on uvloop and on stdlib asyncio."""
from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator

import pytest
import uvloop

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``run(coroutine_function, timeout_s=20)`` on a fresh loop of each kind.

    Fails the test on anything the loop's exception handler saw and on tasks left pending.
    """
    errors: list[dict[str, Any]] = []
    runner = asyncio.Runner(loop_factory=LOOPS[request.param])

    def go(fn: Callable[[], Awaitable[Any]], timeout_s: float = 20.0) -> Any:
        async def main() -> Any:
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(lambda _loop, context: errors.append(context))
            result = await asyncio.wait_for(fn(), timeout_s)
            await asyncio.sleep(0)
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert not pending, f"tasks left pending: {pending}"
            return result
        return runner.run(main())

    yield go
    runner.close()
    # Collect what this test left (a pending task destroyed, an unclosed transport: their
    # warnings reach the loop's handler), then freeze the survivors: the next test's collection
    # walks only what was made since, not the whole session's heap (a full collection of it took
    # up to a second per test late in the suite).
    gc.collect()
    gc.freeze()
    assert not errors, f"loop exception handler saw: {errors}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    """A fresh ``redis-server`` on a free 127.0.0.1 port for this test (about 10-20 ms to
    start; tests/push/redis_support.py's ``RedisServer``): ``.url``, ``.port``, ``.stop()``,
    ``.start()`` (same port), ``.restart()``, ``.freeze()``/``.thaw()``, ``.cli(*args)``.
    Killed at teardown whatever state it is in.  Skips when redis-server is not installed (CI
    installs it)."""
    from tests.push.redis_support import REDIS_SERVER, RedisServer
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
        yield server
    finally:
        server.kill()
