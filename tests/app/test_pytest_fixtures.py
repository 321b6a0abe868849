"""The pytest plugin's fixtures used the way a project uses them: this module names its app by
defining ``cyserve_app``; nothing is imported from the plugin."""
from __future__ import annotations

import contextlib
import json
import urllib.request

import pytest

from cyserve import App

LIFESPAN: list[str] = []


@pytest.fixture
def cyserve_app() -> App:
    @contextlib.asynccontextmanager
    async def lifespan(app):
        LIFESPAN.append("startup")
        yield {"greeting": "hello"}
        LIFESPAN.append("shutdown")

    app = App(lifespan=lifespan)

    @app.get("/hello/{name}")
    async def hello(request):
        return {"greeting": f"{app.state['greeting']}, {request.path_params['name']}"}

    @app.post("/echo")
    async def echo(request):
        return await request.json()

    return app


def test_client_fixture_serves_the_module_app(cyserve_client):
    resp = cyserve_client.get("/hello/ada")
    assert resp.status_code == 200 and resp.json() == {"greeting": "hello, ada"}
    assert cyserve_client.post("/echo", json=[1, 2]).json() == [1, 2]


def test_each_test_gets_its_own_lifespan(cyserve_client):
    LIFESPAN.clear()
    cyserve_client.get("/hello/x")
    assert LIFESPAN == ["startup"]


def test_url_fixture_serves_the_app_to_any_client(cyserve_url, cyserve_client):
    assert cyserve_url == cyserve_client.base_url      # one server for both fixtures
    with urllib.request.urlopen(f"{cyserve_url}/hello/grace", timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"greeting": "hello, grace"}


def test_async_client_fixture(run, cyserve_async_client, cyserve_url):
    async def main():
        assert cyserve_async_client.base_url == cyserve_url
        resp = await cyserve_async_client.get("/hello/linus")
        assert resp.status_code == 200 and await resp.json() == {"greeting": "hello, linus"}
        resp = await cyserve_async_client.post("/echo", json={"a": 1})
        assert await resp.json() == {"a": 1}
    run(main)
