"""TestClient without ``with``: started by its first use, stopped by close(), the GC or exit.

Each stop is checked the same way: the lifespan's exit ran, the port refuses connections and
the loop thread has ended.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from cyserve import App, Client
from cyserve.testing import TestClient


def make_app(log: list[str]) -> App:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        log.append("startup")
        yield
        log.append("shutdown")

    app = App(lifespan=lifespan)

    @app.get("/")
    async def index(request):
        return {"hello": "world"}

    @app.get("/teapot")
    async def teapot(request):
        return "short and stout", 418

    return app


def loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("cyserve-testclient")]


def assert_stopped(port: int) -> None:
    for thread in loop_threads():
        thread.join(10)
    assert not loop_threads()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_test_client_never_used_starts_nothing():
    log: list[str] = []
    client = TestClient(make_app(log))
    assert not loop_threads() and log == []
    del client
    gc.collect()
    assert not loop_threads() and log == []


def test_first_request_starts_the_server_and_lifespan():
    log: list[str] = []
    client = TestClient(make_app(log))
    assert log == [] and not loop_threads()        # construction starts nothing
    resp = client.get("/")
    assert log == ["startup"] and len(loop_threads()) == 1
    assert resp.status_code == resp.status == 200 and resp.json() == {"hello": "world"}
    port = client.server.port
    client.close()
    assert log == ["startup", "shutdown"]
    assert_stopped(port)


def test_status_code_equals_status_on_both_responses(run):
    with TestClient(make_app([])) as client:
        sync_resp = client.get("/teapot")
        assert sync_resp.status_code == sync_resp.status == 418

        async def main():
            async with Client(base_url=client.base_url) as http:
                resp = await http.get("/teapot")
                assert resp.status_code == resp.status == 418
        run(main)


def test_dropped_test_client_is_stopped_by_the_gc():
    log: list[str] = []
    client = TestClient(make_app(log))
    port = client.server.port                      # `server`, like a request, starts it
    assert log == ["startup"]
    del client                                     # the last reference: finalized at once
    gc.collect()
    assert log == ["startup", "shutdown"]
    assert_stopped(port)


def test_one_line_request_keeps_its_test_client_alive_through_the_response():
    log: list[str] = []
    resp = TestClient(make_app(log)).get("/")
    assert resp.json() == {"hello": "world"}       # the response holds the client
    assert resp.text() == '{"hello":"world"}'
    del resp
    gc.collect()
    assert log == ["startup", "shutdown"] and not loop_threads()


def test_test_client_dropped_on_its_own_loop_thread_is_stopped_by_a_helper_thread():
    log: list[str] = []
    app = make_app(log)
    holder: list[TestClient] = []
    release = threading.Event()

    @app.get("/drop-later")
    async def drop_later(request):
        async def drop() -> None:
            while not release.is_set():
                await asyncio.sleep(0.005)
            holder.clear()                         # the last reference goes on the loop thread
        app.create_task(drop())
        return "ok"

    holder.append(TestClient(app))
    port = holder[0].server.port
    holder[0].get("/drop-later")
    release.set()
    for _ in range(500):
        if log == ["startup", "shutdown"] and not loop_threads():
            break
        threading.Event().wait(0.01)
    assert log == ["startup", "shutdown"]
    assert_stopped(port)


def test_with_block_after_first_use_closes_at_its_end_and_a_later_request_restarts():
    log: list[str] = []
    client = TestClient(make_app(log))
    first_port = client.server.port
    with client:
        assert client.get("/").status_code == 200
    assert log == ["startup", "shutdown"]
    assert_stopped(first_port)
    assert client.get("/").status_code == 200      # started again: first use after close()
    assert log == ["startup", "shutdown", "startup"]
    client.close()
    client.close()                                 # idempotent
    assert log == ["startup", "shutdown", "startup", "shutdown"] and not loop_threads()


def test_threads_racing_to_the_first_request_start_one_server():
    log: list[str] = []
    client = TestClient(make_app(log))
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(client.get("/").status_code))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert statuses == [200] * 8 and log == ["startup"] and len(loop_threads()) == 1
    client.close()


def test_test_client_still_running_at_exit_is_stopped_without_warnings():
    script = textwrap.dedent("""
        import contextlib
        from cyserve import App, Client
        from cyserve.testing import TestClient

        @contextlib.asynccontextmanager
        async def lifespan(app):
            print("startup", flush=True)
            yield
            print("shutdown", flush=True)

        app = App(lifespan=lifespan)
        CLIENT = TestClient(app)                   # module global: alive until exit
        print(CLIENT.get("/missing").status_code, flush=True)
    """)
    proc = subprocess.run([sys.executable, "-X", "dev", "-W", "error", "-c", script],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["startup", "404", "shutdown"]
    assert proc.stderr == ""


def test_async_form_is_unchanged_and_refuses_a_sync_close(run):
    log: list[str] = []

    async def main():
        async with TestClient(make_app(log)) as client:
            assert log == ["startup"]
            resp = await client.get("/")
            assert resp.status_code == 200 and await resp.json() == {"hello": "world"}
            with pytest.raises(RuntimeError, match="async with"):
                client.close()
        assert log == ["startup", "shutdown"]
    run(main)
    assert not loop_threads()
