"""Lifecycle over real servers: startup before listening, exit status 1 on a failed start,
scheduled jobs, background calls after the response, everything stopped at shutdown."""
from __future__ import annotations

import asyncio
import contextvars
import logging
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from cyserve import App, serve
from tests.support import RawClient, serving

ROOT = Path(__file__).resolve().parents[2]
who = contextvars.ContextVar("who", default="nobody")


def test_serve_runs_startup_before_listening_and_shutdown_after(run):
    events = []

    async def main():
        app = App()

        @app.lifespan
        async def resources(app):
            events.append("lifespan enter")
            yield {"greeting": "hello"}
            events.append("lifespan exit")

        @app.on_startup
        async def started():
            events.append("startup")

        @app.on_shutdown
        async def stopped():
            events.append("shutdown")

        @app.get("/")
        async def index(request):
            events.append("request")
            return app.state["greeting"]

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/")).body == b"hello"
            await client.close()
    run(main)
    assert events == ["lifespan enter", "startup", "request", "shutdown", "lifespan exit"]


def test_a_failing_startup_makes_serve_raise_before_listening(run, caplog):
    async def main():
        app = App()
        app.on_startup(lambda: (_ for _ in ()).throw(RuntimeError("config missing")))
        with pytest.raises(RuntimeError, match="config missing"):
            await serve(app, "127.0.0.1", 0)
    with caplog.at_level(logging.CRITICAL):
        run(main)


def test_app_run_exits_with_status_3_when_startup_fails(tmp_path):
    script = tmp_path / "failing_app.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from cyserve import App
        app = App()

        @app.on_startup
        async def connect():
            raise ConnectionRefusedError("database down")

        app.run(port=0)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3  # a startup failure (issue 10): the supervisor never respawns it
    assert "ConnectionRefusedError: database down" in done.stderr
    assert "listening" not in done.stdout


def test_scheduled_jobs_run_on_the_loop_and_in_threads_and_survive_failures(run, caplog):
    ticks, threads = [], []

    async def main():
        app = App()

        @app.schedule(0.02)
        async def tick():
            ticks.append("tick")
            if len(ticks) == 2:
                raise RuntimeError("one bad run")

        @app.schedule(0.02, name="sync-job")
        def sync_job():
            threads.append(threading.current_thread() is threading.main_thread())

        async with serving(app):
            await asyncio.sleep(0.3)
        count = len(ticks)
        await asyncio.sleep(0.1)
        assert len(ticks) == count, "jobs must stop at shutdown"
    with caplog.at_level(logging.ERROR, logger="cyserve.lifecycle"):
        run(main)
    assert len(ticks) >= 4  # it went on after the failing run
    assert threads and not any(threads)
    assert any("one bad run" in str(r.exc_info) for r in caplog.records)


def test_a_cron_schedule_fires(run):
    fired = []

    async def main():
        app = App()
        app.schedule("* * * * * *", fired.append, "second")  # croniter: every second
        async with serving(app):
            for _ in range(30):
                if fired:
                    break
                await asyncio.sleep(0.1)
    run(main)
    assert fired[:1] == ["second"]


def test_background_calls_run_after_the_response_in_the_request_context(run, caplog):
    done = []

    async def main():
        gate = asyncio.Event()
        app = App()

        async def notify(name):
            await gate.wait()
            done.append(("async", name, who.get()))

        def audit(name, *, level):
            on_loop_thread = threading.current_thread() is threading.main_thread()
            done.append(("sync", name, level, who.get(), on_loop_thread))

        def broken():
            raise RuntimeError("background bug")

        @app.post("/signup/{name}")
        async def signup(request, name):
            who.set(name)
            request.background(notify, name)
            request.background(broken)
            request.background(audit, name, level="info")
            return "welcome"

        @app.post("/fail")
        async def fail(request):
            request.background(done.append, "must not run")
            raise RuntimeError("handler failed")

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("POST", "/signup/ann")
            assert reply.body == b"welcome" and done == []  # the response did not wait
            gate.set()
            for _ in range(50):
                if len(done) == 2:
                    break
                await asyncio.sleep(0.02)
            assert (await client.request("POST", "/fail")).status == 500
            await client.close()
    with caplog.at_level(logging.ERROR):
        run(main)
    assert done == [("async", "ann", "ann"), ("sync", "ann", "info", "ann", False)]
    assert any("background task" in r.getMessage() for r in caplog.records)


def test_shutdown_waits_for_background_calls(run):
    finished = []

    async def main():
        app = App()

        async def slow():
            await asyncio.sleep(0.2)
            finished.append(True)

        @app.get("/")
        async def index(request):
            request.background(slow)
            return "ok"

        async with serving(app) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/")).body == b"ok"
            await client.close()
        assert finished == [True]
    run(main)
