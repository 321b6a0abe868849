"""Lifecycle pieces without sockets: schedules, hook order, startup failure and cleanup."""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging

import pytest

from cyserve import App
from cyserve.lifecycle import Job


def noop():
    pass


def test_interval_and_cron_delays():
    assert Job(2.5, noop).next_delay_s() == 2.5
    assert Job(datetime.timedelta(minutes=1), noop).next_delay_s() == 60.0
    now = datetime.datetime(2026, 1, 1, 10, 7, 30, tzinfo=datetime.timezone.utc)
    assert Job("*/5 * * * *", noop).next_delay_s(now) == 150.0  # 10:10:00
    assert Job("0 12 * * *", noop).next_delay_s(now) == (1 * 3600 + 52 * 60 + 30)
    assert Job("* * * * * */10", noop).next_delay_s(now) == 10.0  # croniter: seconds last


@pytest.mark.parametrize("bad", [0, -1, "not cron", "61 * * * *", True, None, [1]])
def test_bad_schedules_are_refused_at_registration(bad):
    with pytest.raises((ValueError, TypeError)):
        Job(bad, noop)


def test_startup_runs_lifespans_then_hooks_and_shutdown_reverses(run):
    events = []

    async def main():
        app = App()

        @app.lifespan
        async def resources(app):
            events.append("enter")
            yield {"db": "connected"}
            events.append("exit")

        @app.on_startup
        async def first():
            events.append("startup 1")

        @app.on_startup
        def second():
            events.append("startup 2")

        @app.on_shutdown
        async def bye():
            events.append("shutdown")

        await app.startup()
        assert app.state == {"db": "connected"}
        await app.shutdown()
    run(main)
    assert events == ["enter", "startup 1", "startup 2", "shutdown", "exit"]


def test_a_failed_startup_undoes_what_it_started_and_raises(run, caplog):
    events = []

    async def main():
        @contextlib.asynccontextmanager
        async def resources(app):
            events.append("enter")
            try:
                yield
            finally:
                events.append("exit")

        app = App(lifespan=resources)

        @app.on_startup
        async def starts_a_task():
            app.create_task(asyncio.sleep(3600), name="poller")

        @app.on_startup
        async def broken():
            raise ConnectionRefusedError("database down")

        with pytest.raises(ConnectionRefusedError):
            await app.startup()
        assert not app.lifecycle.started  # and the poller was cancelled: the run fixture checks
    with caplog.at_level(logging.DEBUG, logger="cyserve.lifecycle"):
        run(main)
    assert events == ["enter", "exit"]
    assert any("startup failed" in r.getMessage() for r in caplog.records)


def test_tracked_tasks_are_cancelled_at_shutdown_and_failures_logged(run, caplog):
    cancelled = []

    async def main():
        app = App()
        await app.startup()

        async def forever():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        async def fails():
            raise RuntimeError("task bug")

        app.create_task(forever(), name="forever")
        app.create_task(fails(), name="fails")
        await asyncio.sleep(0.01)
        await app.shutdown()
    with caplog.at_level(logging.ERROR, logger="cyserve.lifecycle"):
        run(main)
    assert cancelled == [True]
    assert any("fails" in r.getMessage() for r in caplog.records)


def test_shutdown_hook_failures_are_logged_and_the_rest_still_run(run, caplog):
    events = []

    async def main():
        app = App()
        app.on_shutdown(lambda: 1 / 0)
        app.on_shutdown(lambda: events.append("second"))
        await app.startup()
        await app.shutdown()
    with caplog.at_level(logging.ERROR, logger="cyserve.lifecycle"):
        run(main)
    assert events == ["second"]
    assert any("shutdown hook" in r.getMessage() for r in caplog.records)
