"""Router: exact and parametrised paths, converters, 404/405 with Allow, url_for."""
from __future__ import annotations

import uuid

import pytest

from cyserve import HTTPError, Router


async def handler(request):
    return "x"


def make_router() -> Router:
    router = Router()
    router.add("/users", handler, ["GET", "POST"], name="users")
    router.add("/users/{id:int}", handler, ["GET"], name="user")
    router.add("/files/{rest:path}", handler, ["GET"], name="files")
    router.add("/things/:slug", handler, ["PUT"], name="thing")
    router.add("/ids/{u:uuid}", handler, ["GET"], name="by_uuid")
    router.add("/price/{p:float}", handler, ["GET"], name="price")
    return router


def test_exact_and_parametrised_routes_resolve_with_converted_params():
    router = make_router()
    assert router.resolve("GET", "/users")[1] == {}
    assert router.resolve("GET", "/users/42")[1] == {"id": 42}
    assert router.resolve("GET", "/files/a/b/c.txt")[1] == {"rest": "a/b/c.txt"}
    assert router.resolve("PUT", "/things/hello")[1] == {"slug": "hello"}
    u = uuid.uuid4()
    assert router.resolve("GET", f"/ids/{u}")[1] == {"u": u}
    assert router.resolve("GET", "/price/2.5")[1] == {"p": 2.5}


def test_converter_mismatch_is_not_found():
    with pytest.raises(HTTPError) as info:
        make_router().resolve("GET", "/users/abc")
    assert info.value.status == 404


def test_wrong_method_is_405_with_allow_including_head_for_get():
    with pytest.raises(HTTPError) as info:
        make_router().resolve("DELETE", "/users")
    assert info.value.status == 405
    assert dict(info.value.headers)["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_head_falls_back_to_get():
    route, params = make_router().resolve("HEAD", "/users/1")
    assert route.handler is handler and params == {"id": 1}


def test_url_for_fills_parameters():
    router = make_router()
    assert router.url_for("user", id=7) == "/users/7"
    assert router.url_for("thing", slug="x") == "/things/x"
    with pytest.raises(KeyError):
        router.url_for("user")


def test_duplicate_route_and_bad_templates_are_programmer_errors():
    router = make_router()
    with pytest.raises(ValueError):
        router.add("/users", handler, ["GET"])
    with pytest.raises(ValueError):
        router.add("no-slash", handler, ["GET"])
    with pytest.raises(ValueError):
        router.add("/x/{a:nope}", handler, ["GET"])
