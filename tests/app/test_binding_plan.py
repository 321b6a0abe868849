"""How a handler's signature becomes a route's plan (cyserve.binding), read once: which parameter
is the request, path converters implied by annotations, what is bound from where, and the
mistakes refused when the route is added or the App starts rather than on a request."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING, Annotated

import pytest

from cyserve import Request, Router
from cyserve.binding import Body, Cookie, Header, Query

if TYPE_CHECKING:
    from cyserve.datastructures import Headers


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


def plan_of(handler, path="/x"):
    return Router().add(path, handler, ["GET"]).plan


def bound(handler, path="/x"):
    return [(b.source, b.alias, b.name, b.required) for b in plan_of(handler, path).bound]


def test_string_annotations_resolve_in_the_handlers_module():
    async def handler(request: Request, page: int = 1, p: Point | None = None) -> Point:
        return p

    found = plan_of(handler)
    assert found.request == "request" and found.request_first
    assert [(b.name, b.annotation) for b in found.bound] == [("page", int)]
    assert found.body is not None and found.body.name == "p" and not found.body.required
    assert found.returns is Point


def test_which_parameter_is_the_request():
    async def first(r, q: str = ""):
        pass

    async def annotated_later(item_id: int, req: Request):
        pass

    async def none(q: str, page: int = 1):
        pass

    async def path_first(id, q=""):
        pass

    async def model_first(p: Point):
        pass

    async def unresolved_conventional(request: Headers, q: str = ""):  # a TYPE_CHECKING import
        pass

    async def other_type(conn: dict):  # not a type the binder reads: the request, as ever
        pass

    assert plan_of(first).request == "r"
    later = plan_of(annotated_later, "/x/{item_id}")
    assert later.request == "req" and not later.request_first and later.path == ("item_id",)
    assert plan_of(none).request is None
    assert plan_of(path_first, "/x/{id}").request is None
    assert plan_of(model_first).request is None and plan_of(model_first).body.name == "p"
    assert plan_of(unresolved_conventional).request == "request"
    assert plan_of(other_type).request == "conn"


def test_an_unresolvable_first_annotation_is_refused_not_guessed():
    async def handler(item: Headers):
        pass
    with pytest.raises(TypeError, match="cannot be resolved"):
        plan_of(handler)

    async def later(request, q: Headers):
        pass
    with pytest.raises(TypeError, match="'q' cannot be resolved"):
        plan_of(later)


def test_sources_aliases_and_required():
    async def handler(request, q, page: int = 1, tags: list[str] = Query([], alias="tag"),
                      x_token: str = Header(),
                      etag: Annotated[str | None, Header(alias="If-None-Match")] = None,
                      sid: str = Cookie(), verbose=False, rest: Annotated[dict, Body()] = None):
        pass

    assert bound(handler) == [
        ("query", "q", "q", True), ("query", "page", "page", False), ("query", "tag", "tags", False),
        ("header", "x-token", "x_token", True), ("header", "if-none-match", "etag", False),
        ("cookie", "sid", "sid", True), ("query", "verbose", "verbose", False)]
    found = plan_of(handler)
    assert found.body.name == "rest" and not found.body.required
    verbose = found.bound[-1]
    assert verbose.convert("on") is True  # an unannotated parameter takes its default's type


def test_a_path_annotation_is_its_converter_and_conflicts_are_refused_at_registration():
    async def typed(request, id: int, u: uuid.UUID, p: float, s: str):
        pass

    route = Router().add("/a/{id}/{u}/{p}/:s", typed, ["GET"])
    assert route.params == {"id": "int", "u": "uuid", "p": "float", "s": "str"}
    assert Router().add("/a/{id:int}", typed, ["GET"]).params["id"] == "int"

    async def as_str(request, id: str):
        pass
    assert Router().add("/a/{id:int}", as_str, ["GET"]).params == {"id": "int"}  # the template wins

    async def wrong(request, id: float):
        pass
    with pytest.raises(TypeError, match="converts it as int"):
        Router().add("/a/{id:int}", wrong, ["GET"])

    async def unsupported(request, id: list[int]):
        pass
    with pytest.raises(TypeError, match="is a str, int, float or uuid.UUID"):
        Router().add("/a/{id}", unsupported, ["GET"])

    async def marked(request, id: int = Query()):
        pass
    with pytest.raises(TypeError, match="is a parameter of"):
        Router().add("/a/{id}", marked, ["GET"])

    async def unresolved(request, id: Headers):
        pass
    with pytest.raises(TypeError, match="cannot be resolved"):
        Router().add("/a/{id}", unresolved, ["GET"])


def test_mistakes_are_refused_when_the_app_starts():
    async def two_bodies(a: Point, b: Point):
        pass

    async def bad_query(request, when: complex = 0j):
        pass

    async def cookie_list(request, c: list[str] = Cookie()):
        pass

    async def positional_only(request, q, /):
        pass

    for handler, message in ((two_bodies, "two body parameters"), (bad_query, "a query parameter"),
                             (cookie_list, "cannot be a list"), (positional_only, "positional-only")):
        route = Router().add("/x", handler, ["GET"])  # the plan waits for the App to start
        with pytest.raises(TypeError, match=message):
            route.endpoint  # what App._freeze asks for each route


def test_a_route_that_declares_nothing_gets_the_endpoint_it_always_had():
    async def bare(request):
        pass

    async def with_id(request, id):
        pass

    router = Router()
    assert router.add("/bare", bare, ["GET"]).endpoint is bare  # no layer at all
    route = router.add("/with/{id}/{other}", with_id, ["GET"])
    assert not route.plan.declares and route.plan.path == ("id",)


def test_markers_read_as_their_source():
    assert repr(Query(1)) == "Query(1)" and repr(Header()) == "Header()"
    assert repr(Cookie("a")) == "Cookie('a')"


def test_status_code_is_checked():
    async def handler(request):
        pass
    with pytest.raises(ValueError, match="status_code"):
        Router().add("/x", handler, ["GET"], status_code=99)
    with pytest.raises(TypeError, match="class routes"):
        from cyserve import route
        route.post("/x", status_code=201)


def test_pydantic_is_imported_only_by_a_route_that_uses_a_model():
    script = (
        "import dataclasses, sys\n"
        "from cyserve import App\n"
        "@dataclasses.dataclass\n"
        "class P:\n"
        "    x: int\n"
        "app = App(docs=True)\n"
        "@app.post('/p')\n"
        "async def p(p: P, q: int = 1) -> P:\n"
        "    return p\n"
        "import asyncio\n"
        "asyncio.run(app.startup())\n"
        "from cyserve.docs.openapi import build_spec\n"
        "build_spec(app)\n"
        "assert 'pydantic' not in sys.modules, 'pydantic was imported'\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_first_parameter_with_a_default_is_the_request_only_by_its_conventional_name():
    async def callable_directly(request=None):
        pass

    async def fastapi_style(q="", page: int = 1):
        pass

    assert plan_of(callable_directly).request == "request" and not plan_of(callable_directly).bound
    assert plan_of(fastapi_style).request is None
    assert [b.name for b in plan_of(fastapi_style).bound] == ["q", "page"]
