"""The OpenAPI document of bound parameters, request and response models, route statuses, and
static mounts left out (cyserve.docs.openapi over cyserve.binding's plans)."""
import dataclasses
import enum
import json
from typing import Annotated, Literal

import pytest

from cyserve import App
from cyserve.binding import Body, Cookie, Header, Query
from cyserve.docs.openapi import build_spec
from tests.support import RawClient, serving


class Size(enum.Enum):
    S = "s"
    L = "l"


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0


@dataclasses.dataclass
class Path:
    name: str
    points: list[Point]
    closed: bool = False
    next: "Path | None" = None


def operation(spec, path, method="get"):
    return spec["paths"][path][method]


def test_parameters_are_documented_with_where_required_and_schema(tmp_path):
    app = App()
    app.static("/assets", str(tmp_path))

    @app.get("/items/{item_id}")
    async def items(item_id: int, q: str | None = None, page: int = 1,
                    tags: list[str] = Query([], alias="tag", description="repeatable"),
                    size: Size = Size.S, order: Literal["asc", "desc"] = "asc",
                    x_token: str = Header(), session: Annotated[str | None, Cookie()] = None):
        """Items.

        Args:
            q: what to look for.
        """
        return {}

    spec = build_spec(app)
    assert set(spec["paths"]) == {"/items/{item_id}"}  # the static mount is files, not API
    params = {(p["in"], p["name"]): p for p in operation(spec, "/items/{item_id}")["parameters"]}
    assert params[("path", "item_id")] == {"name": "item_id", "in": "path", "required": True,
                                           "schema": {"type": "integer"}}
    assert params[("query", "q")] == {"name": "q", "in": "query", "required": False,
                                      "description": "what to look for.",
                                      "schema": {"anyOf": [{"type": "string"}, {"type": "null"}],
                                                 "default": None}}
    assert params[("query", "page")]["schema"] == {"type": "integer", "default": 1}
    assert params[("query", "tag")] == {"name": "tag", "in": "query", "required": False,
                                        "description": "repeatable",
                                        "schema": {"type": "array", "items": {"type": "string"},
                                                   "default": []}}
    assert params[("query", "size")]["schema"] == {"enum": ["s", "l"], "type": "string", "title": "Size",
                                                   "default": "s"}
    assert params[("query", "order")]["schema"] == {"enum": ["asc", "desc"], "type": "string",
                                                    "default": "asc"}
    assert params[("header", "x-token")]["required"] is True
    assert params[("cookie", "session")]["required"] is False
    responses = operation(spec, "/items/{item_id}")["responses"]
    assert set(responses) == {"200", "422"}
    assert responses["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"}
    assert {"HTTPValidationError", "ValidationError"} <= set(spec["components"]["schemas"])


def test_a_pydantic_body_and_response_are_components_and_status_code_is_documented():
    pydantic = pytest.importorskip("pydantic")

    class Tag(pydantic.BaseModel):
        name: str

    class Item(pydantic.BaseModel):
        name: str
        price: float
        tags: list[Tag] = []

    app = App()

    @app.post("/items", status_code=201)
    async def create(item: Item) -> Item:
        return item

    @app.get("/items")
    async def listing() -> list[Item]:
        return []

    spec = build_spec(app)
    post = operation(spec, "/items", "post")
    assert post["requestBody"] == {"required": True, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Item"}}}}
    assert set(post["responses"]) == {"201", "422"}
    assert post["responses"]["201"]["description"] == "Created"
    assert post["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"}
    listing_responses = operation(spec, "/items")["responses"]
    assert set(listing_responses) == {"200"}  # nothing bound: no 422
    assert listing_responses["200"]["content"]["application/json"]["schema"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/Item"}}
    schemas = spec["components"]["schemas"]
    assert schemas["Item"]["properties"]["tags"]["items"] == {"$ref": "#/components/schemas/Tag"}
    assert schemas["Tag"]["required"] == ["name"]
    assert "$defs" not in json.dumps(spec)  # nested models hoisted into components


def test_dataclasses_are_described_from_their_field_types():
    app = App()

    @app.put("/paths/{name}", status_code=202)
    async def save(name: str, path: Path, dry: Annotated[bool, Query()] = False) -> Path:
        return path

    @app.post("/raw")
    async def raw(data: Annotated[dict, Body(description="anything")]):
        return data

    spec = build_spec(app)
    put = operation(spec, "/paths/{name}", "put")
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Path"}
    assert set(put["responses"]) == {"202", "422"}
    schemas = spec["components"]["schemas"]
    assert schemas["Path"] == {
        "title": "Path", "type": "object", "required": ["name", "points"],
        "properties": {"name": {"type": "string"},
                       "points": {"type": "array", "items": {"$ref": "#/components/schemas/Point"}},
                       "closed": {"type": "boolean", "default": False},
                       "next": {"anyOf": [{"$ref": "#/components/schemas/Path"}, {"type": "null"}],
                                "default": None}}}
    assert schemas["Point"]["required"] == ["x"] and schemas["Point"]["properties"]["y"] == {
        "type": "number", "default": 0.0}
    raw_body = operation(spec, "/raw", "post")["requestBody"]
    assert raw_body["description"] == "anything"
    assert raw_body["content"]["application/json"]["schema"] == {"type": "object"}


def test_openapi_json_over_a_socket_shows_bound_parameters_and_leaves_static_out(run, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setattr("cyserve.docs.openapi.swagger_ui_dir", lambda: None)
    (tmp_path / "a.txt").write_text("a")
    app = App(docs=True)
    app.static("/files", str(tmp_path))

    @app.post("/points", status_code=201)
    async def points(p: Point, scale: int = 1) -> Point:
        return p

    async def main():
        async with serving(app) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/openapi.json")
            static = await client.request("GET", "/files/a.txt")
            await client.close()
            return reply, static
    reply, static = run(main)
    assert static.status == 200 and static.body == b"a"
    spec = json.loads(reply.body)
    assert set(spec["paths"]) == {"/points"}
    post = spec["paths"]["/points"]["post"]
    assert post["parameters"] == [{"name": "scale", "in": "query", "required": False,
                                   "schema": {"type": "integer", "default": 1}}]
    assert set(post["responses"]) == {"201", "422"}
