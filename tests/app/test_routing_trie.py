"""Router without sockets: precedence and backtracking in the trie, 405 over several templates,
groups and included routers, keyword parameters, class-based routes, url_for."""
from __future__ import annotations

import pytest

from cyserve import HTTPError, MethodNotAllowed, NotFound, Router, route
from cyserve.routing import class_routes


async def handler(request):
    return "x"


def names(router: Router, method: str, path: str) -> tuple[str, dict]:
    found, params = router.resolve(method, path)
    return found.name, params


def test_static_segment_beats_parameter_and_the_walk_backtracks():
    router = Router()
    router.add("/a/b/c", handler, ["GET"], name="static")
    router.add("/a/{x}/d", handler, ["GET"], name="param")
    router.add("/u/me/{tab}", handler, ["GET"], name="me")
    router.add("/u/{id}/{tab}", handler, ["GET"], name="user")
    assert names(router, "GET", "/a/b/c") == ("static", {})
    assert names(router, "GET", "/a/b/d") == ("param", {"x": "b"})  # Areion answers 404 here
    assert names(router, "GET", "/u/me/posts") == ("me", {"tab": "posts"})
    assert names(router, "GET", "/u/7/posts") == ("user", {"id": "7", "tab": "posts"})


def test_parameters_with_different_names_at_one_position_keep_their_names():
    router = Router()
    router.add("/users/{id:int}", handler, ["GET"], name="by_id")
    router.add("/users/{name}/posts", handler, ["GET"], name="posts")
    assert names(router, "GET", "/users/3") == ("by_id", {"id": 3})
    assert names(router, "GET", "/users/ann/posts") == ("posts", {"name": "ann"})
    assert names(router, "GET", "/users/5/posts") == ("posts", {"name": "5"})


def test_converter_refusal_falls_through_to_the_next_candidate_in_registration_order():
    router = Router()
    router.add("/items/{id:int}", handler, ["GET"], name="int")
    router.add("/items/{id:uuid}", handler, ["GET"], name="uuid")
    router.add("/items/{slug}", handler, ["GET"], name="slug")
    assert names(router, "GET", "/items/12")[0] == "int"
    assert names(router, "GET", "/items/123e4567-e89b-12d3-a456-426614174000")[0] == "uuid"
    assert names(router, "GET", "/items/hat") == ("slug", {"slug": "hat"})


def test_mixed_segments_and_tail_path_converter():
    router = Router()
    router.add("/files/{name}.{ext}", handler, ["GET"], name="file")
    router.add("/dl/v{major:int}/{rest:path}", handler, ["GET"], name="dl")
    router.add("/static/{rest:path}", handler, ["GET"], name="static")
    assert names(router, "GET", "/files/report.pdf") == ("file", {"name": "report", "ext": "pdf"})
    assert names(router, "GET", "/dl/v2/a/b.txt") == ("dl", {"major": 2, "rest": "a/b.txt"})
    assert names(router, "GET", "/static/") == ("static", {"rest": ""})
    with pytest.raises(NotFound):
        router.resolve("GET", "/static")
    with pytest.raises(NotFound):
        router.resolve("GET", "/files/noext")


def test_path_converter_must_end_the_template():
    with pytest.raises(ValueError, match="must end"):
        Router().add("/a/{p:path}/edit", handler, ["GET"])


def test_asterisk_form_never_matches_a_parameter():
    router = Router()
    router.add("/{slug}", handler, ["GET"])
    with pytest.raises(NotFound):  # "OPTIONS *" is the App's to answer (RFC 9110 §9.3.7)
        router.resolve("OPTIONS", "*")


def test_empty_segments_do_not_match_parameters():
    router = Router()
    router.add("/users/{id}", handler, ["GET"])
    with pytest.raises(NotFound):
        router.resolve("GET", "/users/")


def test_405_allow_is_the_union_over_every_matching_template():
    router = Router()
    router.add("/things/{id:int}", handler, ["GET"], name="get")
    router.add("/things/{slug}", handler, ["DELETE"], name="delete")
    router.add("/things/me", handler, ["PUT"], name="me")
    assert names(router, "DELETE", "/things/4") == ("delete", {"slug": "4"})
    with pytest.raises(MethodNotAllowed):  # {id:int} refuses "me"; the others have no GET
        router.resolve("GET", "/things/me")
    with pytest.raises(MethodNotAllowed) as info:
        router.resolve("POST", "/things/me")
    assert dict(info.value.headers)["Allow"] == "DELETE, OPTIONS, PUT"
    with pytest.raises(MethodNotAllowed) as info:
        router.resolve("POST", "/things/4")
    assert dict(info.value.headers)["Allow"] == "DELETE, GET, HEAD, OPTIONS"


def test_exact_path_with_the_wrong_method_still_finds_a_parametrised_route():
    router = Router()
    router.add("/users/me", handler, ["GET"], name="me")
    router.add("/users/{id}", handler, ["DELETE"], name="delete")
    assert names(router, "DELETE", "/users/me") == ("delete", {"id": "me"})


def test_head_and_options_are_answered_automatically():
    router = Router()
    router.add("/doc", handler, ["GET"], name="doc")
    router.add("/form", handler, ["POST"], name="form")
    assert names(router, "HEAD", "/doc")[0] == "doc"
    assert names(router, "OPTIONS", "/form")[0] == "options"
    with pytest.raises(MethodNotAllowed):
        router.resolve("HEAD", "/form")
    explicit = Router()
    explicit.add("/doc", handler, ["GET"], name="get")
    explicit.add("/doc", handler, ["HEAD"], name="head")
    assert names(explicit, "HEAD", "/doc")[0] == "head"


def test_areion_colon_parameters_are_plain_string_parameters():
    router = Router()
    router.add("/orders/:order/items/:item", handler, ["GET"], name="item")
    assert names(router, "GET", "/orders/9/items/x") == ("item", {"order": "9", "item": "x"})
    assert router.url_for("item", order=9, item="a b") == "/orders/9/items/a%20b"


def test_handler_gets_declared_path_parameters_as_keywords(run):
    seen = {}

    async def both(request, id, tab="home"):
        seen.update(id=id, tab=tab)

    async def some(request, id):
        seen.update(only=id)

    async def none(request):
        seen.update(none=True)

    router = Router()
    for path, fn in (("/a/{id:int}/{tab}", both), ("/b/{id:int}/{tab}", some), ("/c/{id}", none)):
        router.add(path, fn, ["GET"])

    class FakeRequest:
        path_params: dict

    for path in ("/a/1/x", "/b/2/y", "/c/3"):
        found, params = router.resolve("GET", path)
        request = FakeRequest()
        request.path_params = params
        run(lambda: found.endpoint(request))
    assert seen == {"id": 1, "tab": "x", "only": 2, "none": True}


def test_a_required_argument_that_is_no_path_parameter_is_a_required_query_parameter():
    # It used to be refused at registration; it is bound from the query string now (422 when
    # absent, tests/app/test_binding.py), and a handler may take no request at all.
    async def needs(request, user_id):
        pass
    route = Router().add("/users/{id}", needs, ["GET"])
    assert [(b.source, b.name, b.required) for b in route.plan.bound] == [("query", "user_id", True)]
    assert Router().add("/x", lambda: None, ["GET"]).plan.request is None


def test_groups_are_reachable_at_once_and_included_routers_stay_live():
    api = Router("/api")
    v1 = api.group("/v1")
    v1.add("/users", handler, ["GET"], name="users")
    app_router = Router()
    app_router.include_router(api)
    v1.add("/late", handler, ["GET"], name="late")  # added after the include
    assert names(api, "GET", "/api/v1/users")[0] == "users"
    assert names(app_router, "GET", "/api/v1/late")[0] == "late"
    app_router.include_router(api, prefix="/mirror")
    assert names(app_router, "GET", "/mirror/api/v1/users")[0] == "users"
    assert app_router.url_for("late") == "/api/v1/late"
    with pytest.raises(ValueError):
        api.include_router(app_router)


def test_prefix_root_route_is_the_prefix_itself():
    router = Router("/shop")
    router.add("/", handler, ["GET"], name="home")
    assert router.routes[0].path == "/shop"
    with pytest.raises(ValueError):
        Router("shop")
    with pytest.raises(ValueError):
        Router("/shop/")


def test_middleware_scopes_are_collected_outermost_first():
    def mw(tag):
        def middleware(next_handler):
            return next_handler
        middleware.tag = tag
        return middleware

    root = Router(middlewares=[mw("root")])
    group = root.group("/g", [mw("group")])
    group.add("/x", handler, ["GET"], middlewares=[mw("route")])
    root.use(mw("late"))  # added after the route: still applies
    (found,) = [r for r in root.routes if r.path == "/g/x"]
    assert [m.tag for m in found.all_middlewares()] == ["root", "late", "group", "route"]


def test_url_for_encodes_values_and_puts_extras_in_the_query():
    router = Router()
    router.add("/files/{rest:path}", handler, ["GET"], name="files")
    router.add("/search", handler, ["GET"], name="search")
    assert router.url_for("files", rest="a b/c.txt") == "/files/a%20b/c.txt"
    assert router.url_for("search", q="x&y", page=2) == "/search?q=x%26y&page=2"
    with pytest.raises(KeyError):
        router.url_for("nope")


def test_hundreds_of_parametrised_routes_resolve_to_the_right_one():
    router = Router()
    for i in range(500):
        router.add(f"/r{i}/{{id:int}}/detail", handler, ["GET"], name=f"r{i}")
    assert names(router, "GET", "/r0/1/detail") == ("r0", {"id": 1})
    assert names(router, "GET", "/r499/2/detail") == ("r499", {"id": 2})
    with pytest.raises(HTTPError):
        router.resolve("GET", "/r500/1/detail")


def test_class_routes_by_mark_and_by_blazeio_name():
    class Api:
        @route.get("/users/{id:int}")
        async def show(self, request, id):
            return {"id": id}

        @route("/users", methods=["POST", "PUT"], name="save")
        async def save(self, request):
            return "saved"

        async def _api_ip(self, r):
            return "ip"

        async def _robots__dot__txt(self, r):
            return "robots"

        async def _custom(self, r, route="/elsewhere"):
            return "custom"

        async def _helper(self, value):  # first parameter is not "r": not a route
            return value

        def before_middleware(self, r):
            return None

    found = {(path, methods) for path, _, methods, _, _ in class_routes(Api())}
    assert ("/users/{id:int}", ("GET",)) in found
    assert ("/users", ("POST", "PUT")) in found
    assert ("/api/ip", ("GET", "POST", "PUT", "PATCH", "DELETE")) in found
    assert ("/robots.txt", ("GET", "POST", "PUT", "PATCH", "DELETE")) in found
    assert any(path == "/elsewhere" for path, _ in found)
    assert len(found) == 5
