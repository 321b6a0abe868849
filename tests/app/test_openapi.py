"""The OpenAPI document built from routes, and the docs pages served from local files only."""
from __future__ import annotations

import json
import re

from cyserve import App, Router
from cyserve.docs.openapi import build_spec, openapi_path, parse_docstring
from tests.support import RawClient, serving


def make_app(**options) -> App:
    app = App(title="Shop", version="2.0", **options)
    users = Router("/users", tags=["users"])

    @users.get("/{id:int}")
    async def get_user(request, id):
        """Fetch one user.

        Looks the user up by id.

        Args:
            id (int): the user's number.
        """
        return {"id": id}

    @users.route("/{id:int}", methods=["PUT", "DELETE"], name="change_user")
    async def change_user(request, id):
        return None

    @app.get("/files/{rest:path}")
    async def files(request, rest):
        return rest

    @app.get("/ids/{u:uuid}/price/{p:float}")
    async def ids(request):
        return "x"

    @app.get("/orders/:order")
    async def order(request):
        """Areion-style parameter."""
        return "x"

    app.include_router(users)
    return app


def test_spec_has_paths_methods_typed_parameters_and_docstrings():
    spec = build_spec(make_app())
    assert spec["openapi"] == "3.1.0" and spec["info"] == {"title": "Shop", "version": "2.0"}
    assert set(spec["paths"]) == {"/users/{id}", "/files/{rest}", "/ids/{u}/price/{p}", "/orders/{order}"}
    user = spec["paths"]["/users/{id}"]
    assert set(user) == {"get", "put", "delete"}  # HEAD and OPTIONS are implied, not listed
    get = user["get"]
    assert get["summary"] == "Fetch one user." and get["description"] == "Looks the user up by id."
    assert get["tags"] == ["users"] and get["operationId"] == "get_user_get"
    assert get["parameters"] == [{"name": "id", "in": "path", "required": True,
                                  "schema": {"type": "integer"}, "description": "the user's number."}]
    assert "200" in get["responses"]
    params = {p["name"]: p["schema"] for p in spec["paths"]["/ids/{u}/price/{p}"]["get"]["parameters"]}
    assert params == {"u": {"type": "string", "format": "uuid"}, "p": {"type": "number"}}
    assert "'/'" in spec["paths"]["/files/{rest}"]["get"]["parameters"][0]["description"]
    assert spec["paths"]["/orders/{order}"]["get"]["summary"] == "Areion-style parameter."
    ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))


def test_docstring_and_path_helpers():
    assert openapi_path("/a/{b:int}/:c/{d}") == "/a/{b}/{c}/{d}"
    summary, description, args = parse_docstring(
        "Do it.\n\nMore.\n\nArgs:\n    x (str): the x.\n    y: why.\n\nReturns:\n    z")
    assert summary == "Do it." and args == {"x": "the x.", "y": "why."}
    assert "Returns:" in description and "the x." not in description


def test_docs_are_served_only_in_dev_mode(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            assert (await client.request("GET", "/openapi.json")).status == 404
            assert (await client.request("GET", "/docs")).status == 404
            await client.close()
    run(main)


def test_openapi_json_and_the_bundled_viewer(run, monkeypatch):
    monkeypatch.setattr("cyserve.docs.openapi.swagger_ui_dir", lambda: None)

    async def main():
        async with serving(make_app(debug=True)) as server:
            client = await RawClient.open(server.port)
            spec = await client.request("GET", "/openapi.json")
            assert spec.headers["content-type"] == "application/json"
            doc = json.loads(spec.body)
            assert "/users/{id}" in doc["paths"] and "/docs" not in doc["paths"]
            page = await client.request("GET", "/docs")
            assert page.headers["content-type"].startswith("text/html")
            assert not re.search(rb"(src|href)=\"(https?:)?//", page.body), "no asset may come from elsewhere"
            assert b'src="docs/viewer.js"' in page.body
            js = await client.request("GET", "/docs/viewer.js")
            assert js.status == 200 and js.headers["content-type"].startswith("text/javascript")
            assert (await client.request("GET", "/docs/../app.py")).status == 404
            assert (await client.request("GET", "/docs/swagger-ui-bundle.js")).status == 404
            await client.close()
    run(main)


def test_swagger_ui_from_an_installed_distribution(run, monkeypatch, tmp_path):
    (tmp_path / "swagger-ui.css").write_text("/* css */")
    (tmp_path / "swagger-ui-bundle.js").write_text("// bundle")
    monkeypatch.setattr("cyserve.docs.openapi.swagger_ui_dir", lambda: tmp_path)

    async def main():
        async with serving(make_app(docs=True)) as server:
            client = await RawClient.open(server.port)
            page = await client.request("GET", "/docs")
            assert b'src="docs/swagger-ui-bundle.js"' in page.body and b"swagger-init.js" in page.body
            assert not re.search(rb"(src|href)=\"(https?:)?//", page.body)
            bundle = await client.request("GET", "/docs/swagger-ui-bundle.js")
            assert bundle.body == b"// bundle" and "max-age" in bundle.headers["cache-control"]
            init = await client.request("GET", "/docs/swagger-init.js")
            assert b"SwaggerUIBundle" in init.body
            await client.close()
    run(main)


def test_swagger_ui_dir_finds_swagger_ui_py_when_installed():
    import pytest
    pytest.importorskip("swagger_ui")
    from cyserve.docs.openapi import swagger_ui_dir
    found = swagger_ui_dir()
    assert found is not None and (found / "swagger-ui-bundle.js").is_file()
