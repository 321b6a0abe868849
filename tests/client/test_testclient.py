"""cyserve.testing.TestClient: sync and async forms, lifespan, streaming and SSE helpers."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from cyserve import App, Response, StreamResponse
from cyserve.testing import TestClient


def make_app(log: list[str]) -> App:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        log.append("startup")
        yield {"greeting": "hello"}
        log.append("shutdown")

    app = App(lifespan=lifespan)

    @app.get("/")
    async def index(request):
        return "hello"

    @app.post("/json")
    async def echo_json(request):
        return {"got": await request.json()}

    @app.get("/events")
    async def events(request):
        async def gen():
            for i in range(3):
                yield f"event: tick\nid: {i}\ndata: {{\"n\": {i}}}\n\n"
                await asyncio.sleep(0.01)
        return StreamResponse(gen(), content_type="text/event-stream")

    @app.get("/teapot")
    async def teapot(request):
        return Response(b"short and stout", 418, [("X-Kind", "teapot")])

    return app


def test_sync_test_client_runs_requests_lifespan_and_sse():
    log: list[str] = []
    with TestClient(make_app(log)) as client:
        assert log == ["startup"]
        resp = client.get("/")
        assert resp.status == 200 and resp.text() == "hello" and resp.content == b"hello"
        assert client.post("/json", json={"a": 1}).json() == {"got": {"a": 1}}
        resp = client.get("/teapot")
        assert resp.status == 418 and resp.headers["x-kind"] == "teapot"
        with pytest.raises(Exception, match="418"):
            resp.raise_for_status()
        with client.stream("GET", "/events") as resp:
            events = list(resp.iter_events())
        assert [(e.event, e.id, e.json()) for e in events] == [
            ("tick", "0", {"n": 0}), ("tick", "1", {"n": 1}), ("tick", "2", {"n": 2})]
        assert client.server.state.connections   # kept alive between requests
    assert log == ["startup", "shutdown"]


def test_async_test_client(run):
    log: list[str] = []

    async def main():
        async with TestClient(make_app(log)) as client:
            assert log == ["startup"]
            resp = await client.get("/")
            assert await resp.text() == "hello"
            async with client.stream("GET", "/events") as resp:
                data = [e.data async for e in resp.iter_events()]
            assert data == ['{"n": 0}', '{"n": 1}', '{"n": 2}']
        assert log == ["startup", "shutdown"]
    run(main)
