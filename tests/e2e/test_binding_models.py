"""JSON bodies read into pydantic models and dataclasses, and returned models written as JSON,
over real sockets; the 422 bodies of what does not validate.

No ``from __future__ import annotations``: the models are local to each test."""
import dataclasses
import datetime
import json
import uuid
from typing import Annotated, Any

import pytest

from cyserve import App
from cyserve.binding import Body, Query
from tests.e2e.test_binding import ask, body


def post(target: str, data: bytes) -> tuple:
    return ("POST", target, [("Content-Type", "application/json")], data)


def test_a_pydantic_body_is_validated_and_a_returned_model_is_json(run):
    pydantic = pytest.importorskip("pydantic")

    class Tag(pydantic.BaseModel):
        name: str

    class Item(pydantic.BaseModel):
        name: str
        price: float
        tags: list[Tag] = []

    app = App()

    @app.post("/items", status_code=201)
    async def create(item: Item, dry_run: bool = False) -> Item:
        return item.model_copy(update={"name": item.name.upper()}) if not dry_run else item

    @app.post("/many")
    async def many(items: list[Item]) -> list[Item]:
        return items

    @app.post("/maybe")
    async def maybe(item: Item | None = None):
        return {"item": None if item is None else item.name}

    @app.get("/made")
    async def made() -> dict[str, Item]:
        return {"a": Item(name="a", price=1)}

    async def main():
        return await ask(app,
                         post("/items", b'{"name": "cup", "price": "2.5", "tags": [{"name": "x"}]}'),
                         post("/items?dry_run=1", b'{"name": "cup", "price": 2}'),
                         post("/items", b'{"name": "cup", "tags": [{}]}'),
                         post("/items", b'{"name": '), post("/items", b""), post("/items", b"[1]"),
                         post("/many", b'[{"name": "a", "price": 1}, {"name": "b", "price": "x"}]'),
                         post("/maybe", b""), post("/maybe", b"null"),
                         post("/maybe", b'{"name": "m", "price": 1}'),
                         ("GET", "/made"))
    (created, dry, invalid, broken, empty, not_object, many_bad, no_item, null_item, some_item,
     made_) = run(main)
    assert created.status == 201 and created.headers["content-type"] == "application/json"
    assert body(created) == {"name": "CUP", "price": 2.5, "tags": [{"name": "x"}]}
    assert body(dry) == {"name": "cup", "price": 2.0, "tags": []}
    assert invalid.status == 422
    assert [(e["type"], e["loc"]) for e in body(invalid)["detail"]] == [
        ("missing", ["body", "price"]), ("missing", ["body", "tags", 0, "name"])]
    assert body(invalid)["detail"][0]["msg"] == "Field required"
    [decode] = body(broken)["detail"]
    assert decode["type"] == "json_invalid" and decode["loc"] == ["body"] and decode["input"] is None
    assert body(empty)["detail"] == [{"type": "missing", "loc": ["body"], "msg": "Field required",
                                      "input": None}]
    assert body(not_object)["detail"][0]["type"] == "model_type"
    assert [(e["type"], e["loc"]) for e in body(many_bad)["detail"]] == [
        ("float_parsing", ["body", 1, "price"])]
    assert body(no_item) == body(null_item) == {"item": None} and body(some_item) == {"item": "m"}
    assert body(made_) == {"a": {"name": "a", "price": 1.0, "tags": []}}


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0


@dataclasses.dataclass
class Shape:
    name: str
    points: list[Point]
    id: uuid.UUID | None = None
    when: datetime.date | None = None
    closed: bool = False
    labels: dict[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a shape has a name")


def test_a_dataclass_body_is_checked_without_pydantic_and_returned_as_json(run):
    app = App()

    @app.post("/shapes", status_code=201)
    async def create(shape: Shape) -> Shape:
        return shape

    @app.post("/points")
    async def points(p: Point, scale: int = 1) -> list[Point]:
        return [Point(p.x * scale, p.y * scale)]

    u = uuid.uuid4()

    async def main():
        return await ask(
            app,
            post("/shapes", json.dumps({"name": "tri", "points": [{"x": 1}, {"x": "2", "y": 1}],
                                        "id": str(u), "when": "2024-02-29", "closed": 1,
                                        "labels": {"a": 1}}).encode()),
            post("/shapes", json.dumps({"points": [{"y": 1}, {"x": 1.5}, "p"], "id": "no",
                                        "when": "x", "closed": "maybe", "labels": []}).encode()),
            post("/shapes", b'{"name": "", "points": []}'),
            post("/points?scale=3", b'{"x": 2, "y": 0.5}'),
            post("/points", b'{"x": true}'))
    made, bad, refused, scaled, not_int = run(main)
    assert made.status == 201
    assert body(made) == {"name": "tri", "points": [{"x": 1, "y": 0.0}, {"x": 2, "y": 1.0}],
                          "id": str(u), "when": "2024-02-29", "closed": True, "labels": {"a": 1}}
    assert bad.status == 422
    assert [(e["type"], e["loc"]) for e in body(bad)["detail"]] == [
        ("missing", ["body", "name"]),
        ("missing", ["body", "points", 0, "x"]),
        ("int_type", ["body", "points", 1, "x"]),
        ("dict_type", ["body", "points", 2]),
        ("uuid_parsing", ["body", "id"]),
        ("date_parsing", ["body", "when"]),
        ("bool_parsing", ["body", "closed"]),
        ("dict_type", ["body", "labels"])]
    assert body(refused)["detail"] == [{"type": "value_error", "loc": ["body"],
                                        "input": {"name": "", "points": []},
                                        "msg": "Value error, a shape has a name"}]
    assert body(scaled) == [{"x": 6, "y": 1.5}]
    assert body(not_int)["detail"][0]["type"] == "int_type"


def test_body_marker_reads_plain_json_and_query_and_body_errors_come_together(run):
    app = App()

    @app.post("/raw")
    async def raw(data: Annotated[dict, Body()]):
        return {"data": data}

    @app.post("/both")
    async def both(p: Point, page: int = Query()):
        return {"x": p.x, "page": page}

    @app.post("/anything")
    async def anything(value: Any = Body(None)):
        return {"value": value}

    async def main():
        return await ask(app, post("/raw", b'{"a": [1, 2]}'), post("/raw", b"[1]"),
                         post("/both?page=x", b'{"x": "y"}'), post("/anything", b'"text"'),
                         post("/anything", b""))
    raw_ok, raw_bad, both_bad, anything_, nothing = run(main)
    assert body(raw_ok) == {"data": {"a": [1, 2]}}
    assert body(raw_bad)["detail"][0]["type"] == "dict_type"
    assert [(e["type"], e["loc"]) for e in body(both_bad)["detail"]] == [
        ("int_parsing", ["query", "page"]), ("int_parsing", ["body", "x"])]
    assert body(anything_) == {"value": "text"} and body(nothing) == {"value": None}
