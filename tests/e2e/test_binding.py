"""Handler parameters bound from path, query, headers and cookies over real sockets: every
conversion, the 422 body, the markers, status_code, and handlers that declare nothing.

No ``from __future__ import annotations`` here: the handlers' annotations are objects, the way
most applications write them (test_binding_plan.py covers string annotations)."""
import enum
import json
import uuid
from typing import Annotated, Any, Literal

from cyserve import App, Request, Response, Router, route
from cyserve.binding import Cookie, Header, Query
from tests.support import RawClient, serving


async def ask(app: App, *requests: tuple) -> list:
    """Each request (method, target[, headers[, body]]) on one connection; the replies."""
    async with serving(app) as server:
        client = await RawClient.open(server.port)
        try:
            return [await client.request(*r) for r in requests]
        finally:
            await client.close()


def body(reply) -> Any:
    return json.loads(reply.body)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


def test_a_path_annotation_converts_and_a_mismatch_answers_as_the_typed_form(run):
    app = App()

    @app.get("/items/{item_id}")
    async def item(item_id: int):
        return {"id": item_id, "type": type(item_id).__name__}

    @app.get("/typed/{item_id:int}")
    async def typed(request, item_id):
        return {"id": item_id}

    @app.get("/price/{p}")
    async def price(request: Request, p: float):
        return {"p": p}

    @app.get("/ids/:u")
    async def ids(request, u: uuid.UUID):
        return {"u": str(u), "type": type(u).__name__}

    @app.get("/names/{name}")
    async def name(request, name: str):
        return {"name": name}

    # A refused conversion makes the walk try the next route, as {id:int} does.
    @app.get("/things/{id}")
    async def thing(id: int):
        return {"thing": id}

    @app.get("/things/{slug}/info")
    async def info(slug):
        return {"slug": slug}

    u = uuid.uuid4()

    async def main():
        return await ask(app, ("GET", "/items/5"), ("GET", "/items/abc"), ("GET", "/typed/abc"),
                         ("GET", "/items/-7"), ("GET", "/price/2.5"), ("GET", "/price/x"),
                         ("GET", f"/ids/{u}"), ("GET", "/ids/nope"), ("GET", "/names/42"),
                         ("GET", "/things/9"), ("GET", "/things/me/info"), ("GET", "/things/me"))
    (ok, bad, typed_bad, negative, price_ok, price_bad, uuid_ok, uuid_bad, name_ok, thing_ok,
     backtracked, nowhere) = run(main)
    assert ok.status == 200 and body(ok) == {"id": 5, "type": "int"}
    assert bad.status == typed_bad.status == 404 and bad.body == typed_bad.body
    assert body(negative) == {"id": -7, "type": "int"}
    assert body(price_ok) == {"p": 2.5} and price_bad.status == 404
    assert body(uuid_ok) == {"u": str(u), "type": "UUID"} and uuid_bad.status == 404
    assert body(name_ok) == {"name": "42"}
    assert body(thing_ok) == {"thing": 9} and body(backtracked) == {"slug": "me"}
    assert nowhere.status == 404


def test_query_parameters_are_bound_and_converted(run):
    app = App()

    @app.get("/search")
    async def search(q: str = "", page: int = 1, ratio: float = 0.5, exact: bool = False,
                     tag: list[str] = Query([]), n: list[int] = Query([]), maybe: int | None = None,
                     color: Color = Color.RED, level: Level = Level.LOW,
                     sort: Literal["asc", "desc"] = "asc", when: uuid.UUID | None = None,
                     limit: Annotated[int, Query(alias="max")] = 10, verbose=False, raw=None):
        return {"q": q, "page": page, "ratio": ratio, "exact": exact, "tag": tag, "n": n,
                "maybe": maybe, "color": color.value, "level": level.value, "sort": sort,
                "when": None if when is None else str(when), "limit": limit, "verbose": verbose,
                "raw": raw}

    u = uuid.uuid4()

    async def main():
        return await ask(
            app, ("GET", "/search"),
            ("GET", f"/search?q=caf%C3%A9+x&page=3&ratio=1e2&exact=yes&tag=a&tag=b&n=1&n=-2&maybe=0"
                    f"&color=blue&level=2&sort=desc&when={u}&max=7&verbose=on&raw=%20"),
            *[("GET", f"/search?exact={v}") for v in ("true", "1", "on", "Y", "false", "0", "off", "N")])
    defaults, given, *bools = run(main)
    assert body(defaults) == {"q": "", "page": 1, "ratio": 0.5, "exact": False, "tag": [], "n": [],
                              "maybe": None, "color": "red", "level": 1, "sort": "asc", "when": None,
                              "limit": 10, "verbose": False, "raw": None}
    assert body(given) == {"q": "café x", "page": 3, "ratio": 100.0, "exact": True, "tag": ["a", "b"],
                           "n": [1, -2], "maybe": 0, "color": "blue", "level": 2, "sort": "desc",
                           "when": str(u), "limit": 7, "verbose": True, "raw": " "}
    assert [body(r)["exact"] for r in bools] == [True] * 4 + [False] * 4


def test_missing_and_unconvertible_values_answer_422_naming_each(run):
    app = App()

    @app.get("/items/{item_id}")
    async def items(item_id: int, page: int, ratio: float = 1.0, exact: bool = False,
                    n: list[int] = Query([]), color: Color = Color.RED,
                    sort: Literal["asc", "desc"] = "asc", u: uuid.UUID | None = None,
                    token: str = Header(), session: str = Cookie()):
        return "never"

    async def main():
        return await ask(app, ("GET", "/items/1"),
                         ("GET", "/items/1?page=x&ratio=inf&exact=maybe&n=1&n=two&color=green&sort=up&u=1",
                          [("Token", "t"), ("Cookie", "session=s")]),
                         ("GET", "/items/1?page=", [("Token", "t"), ("Cookie", "session=s")]))
    missing, wrong, blank = run(main)
    assert missing.status == 422 and missing.headers["content-type"] == "application/json"
    assert body(missing) == {"detail": [
        {"type": "missing", "loc": ["query", "page"], "msg": "Field required", "input": None},
        {"type": "missing", "loc": ["header", "token"], "msg": "Field required", "input": None},
        {"type": "missing", "loc": ["cookie", "session"], "msg": "Field required", "input": None}]}
    detail = body(wrong)["detail"]
    assert [(e["type"], e["loc"], e["input"]) for e in detail] == [
        ("int_parsing", ["query", "page"], "x"),
        ("float_parsing", ["query", "ratio"], "inf"),
        ("bool_parsing", ["query", "exact"], "maybe"),
        ("int_parsing", ["query", "n", 1], "two"),
        ("enum", ["query", "color"], "green"),
        ("literal_error", ["query", "sort"], "up"),
        ("uuid_parsing", ["query", "u"], "1")]
    assert detail[0]["msg"] == "Input should be a valid integer, unable to parse string as an integer"
    assert detail[4]["msg"] == "Input should be 'red' or 'blue'"
    assert detail[5]["msg"] == "Input should be 'asc' or 'desc'"
    assert body(blank)["detail"] == [{"type": "int_parsing", "loc": ["query", "page"], "input": "",
                                      "msg": detail[0]["msg"]}]


def test_header_and_cookie_markers(run):
    app = App()

    @app.get("/who")
    async def who(x_token: str = Header(), user_agent: str | None = Header(None),
                  trace: Annotated[str, Header(alias="X-Trace-Id")] = "-",
                  raw_name: str = Header("none", convert_underscores=False),
                  accept: list[str] = Header([]),
                  session: str = Cookie(), theme: Annotated[str, Cookie()] = "light",
                  count: int = Cookie(0, alias="visits")):
        return {"x_token": x_token, "user_agent": user_agent, "trace": trace, "raw_name": raw_name,
                "accept": accept, "session": session, "theme": theme, "count": count}

    async def main():
        return await ask(app, ("GET", "/who", [("X-Token", "abc"), ("Cookie", "session=s1")]),
                         ("GET", "/who", [("x-token", "abc"), ("User-Agent", "ua"), ("X-Trace-Id", "t1"),
                                          ("raw_name", "r"), ("Accept", "a/b"), ("Accept", "c/d"),
                                          ("Cookie", "session=s2; theme=dark; visits=3")]),
                         ("GET", "/who", [("Cookie", "visits=x")]))
    plain, full, bad = run(main)
    assert body(plain) == {"x_token": "abc", "user_agent": None, "trace": "-", "raw_name": "none",
                           "accept": [], "session": "s1", "theme": "light", "count": 0}
    assert body(full) == {"x_token": "abc", "user_agent": "ua", "trace": "t1", "raw_name": "r",
                          "accept": ["a/b", "c/d"], "session": "s2", "theme": "dark", "count": 3}
    assert [(e["type"], e["loc"]) for e in body(bad)["detail"]] == [
        ("missing", ["header", "x-token"]), ("missing", ["cookie", "session"]),
        ("int_parsing", ["cookie", "visits"])]


def test_the_request_is_found_by_annotation_by_position_or_not_at_all(run):
    app = App()

    @app.get("/kw/{item_id}")
    async def keyword(item_id: int, request: Request, q: str = ""):
        return {"id": item_id, "path": request.path, "q": q}

    @app.get("/none")
    async def none():
        return "no request"

    @app.get("/blazeio")
    async def blazeio(r, page: int = 1):
        return {"method": r.method, "page": page}

    @app.get("/sync")
    def sync(request, page: int = 1):  # runs in the thread pool, bound on the loop
        return {"method": request.method, "page": page}

    @app.get("/sync-no-request")
    def sync_none(page: int = 1):
        return {"page": page}

    async def main():
        return await ask(app, ("GET", "/kw/3?q=x"), ("GET", "/none"), ("GET", "/blazeio?page=2"),
                         ("GET", "/sync?page=4"), ("GET", "/sync-no-request?page=5"),
                         ("GET", "/sync?page=no"))
    kw, none_, blaze, sync_, sync_none_, sync_bad = run(main)
    assert body(kw) == {"id": 3, "path": "/kw/3", "q": "x"}
    assert none_.body == b"no request"
    assert body(blaze) == {"method": "GET", "page": 2}
    assert body(sync_) == {"method": "GET", "page": 4} and body(sync_none_) == {"page": 5}
    assert sync_bad.status == 422


def test_handlers_that_declare_nothing_extra_work_as_before(run):
    app = App()

    @app.get("/areion/{id}/:tab")
    async def areion(request, **params):
        return {"params": params, "same": params == request.path_params}

    @app.get("/some/{id:int}/{tab}")
    async def some(request, id):
        return {"id": id}

    @app.get("/args/{id}")
    async def args(*args):
        return {"path": args[0].path}

    @app.route("/legacy", ["GET", "POST"])
    async def legacy(r):
        return {"query": dict(r.query)}

    class Api:
        async def _api_ip(self, r):  # Blazeio: /api/ip, the route= default is its path override
            return "ip"

        async def _custom(self, r, route="/elsewhere"):
            return {"route": route}

        @route.get("/marked/{n}")
        async def marked(self, request, n: int, q: str = ""):
            return {"n": n, "q": q}

    app.attach(Api())

    async def main():
        return await ask(app, ("GET", "/areion/1/x"), ("GET", "/some/2/y"), ("GET", "/args/3"),
                         ("POST", "/legacy?a=1"), ("GET", "/api/ip"), ("GET", "/elsewhere?route=/x"),
                         ("GET", "/marked/4?q=z"))
    areion_, some_, args_, legacy_, ip, custom, marked_ = run(main)
    assert body(areion_) == {"params": {"id": "1", "tab": "x"}, "same": True}
    assert body(some_) == {"id": 2} and body(args_) == {"path": "/args/3"}
    assert body(legacy_) == {"query": {"a": "1"}} and ip.body == b"ip"
    assert body(custom) == {"route": "/elsewhere"}
    assert body(marked_) == {"n": 4, "q": "z"}


def test_status_code_is_the_default_status_of_a_returned_value(run):
    app = App()
    router = Router("/r")

    @app.post("/made", status_code=201)
    async def made(request):
        return {"made": True}

    @app.post("/text", status_code=202)
    async def text(request):
        return "queued"

    @app.delete("/gone", status_code=204)
    async def gone(request):
        return None

    @app.post("/own", status_code=201)
    async def own(request):
        return Response(b"mine", 200)

    @app.post("/pair", status_code=201)
    async def pair(request):
        return {"x": 1}, 409

    @router.put("/made", status_code=201)
    async def router_made(request):
        return [1, 2]

    app.route("/routed", ["PATCH"], status_code=200)(made)
    app.include_router(router)

    async def main():
        return await ask(app, ("POST", "/made"), ("POST", "/text"), ("DELETE", "/gone"),
                         ("POST", "/own"), ("POST", "/pair"), ("PUT", "/r/made"), ("PATCH", "/routed"))
    made_, text_, gone_, own_, pair_, router_, routed = run(main)
    assert made_.status == 201 and body(made_) == {"made": True}
    assert made_.headers["content-type"] == "application/json"
    assert text_.status == 202 and text_.body == b"queued"
    assert gone_.status == 204 and gone_.body == b""
    assert own_.status == 200 and own_.body == b"mine"
    assert pair_.status == 409 and body(pair_) == {"x": 1}
    assert router_.status == 201 and body(router_) == [1, 2]
    assert routed.status == 200


def test_allow_lists_options_on_405_and_on_the_options_answer(run):
    app = App()

    @app.route("/page", ["GET", "POST"])
    async def page(request):
        return "page"

    @app.put("/only-put")
    async def only_put(request):
        return "put"

    @app.route("/own-options", ["GET", "OPTIONS"])
    async def own_options(request):
        return Response(b"", 200, [("Allow", "GET, HEAD, OPTIONS")])

    async def main():
        return await ask(app, ("OPTIONS", "/page"), ("DELETE", "/page"), ("OPTIONS", "/only-put"),
                         ("GET", "/only-put"), ("DELETE", "/own-options"))
    options, wrong, put_options, put_wrong, own = run(main)
    assert options.status == 204 and options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert wrong.status == 405 and wrong.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert put_options.headers["allow"] == put_wrong.headers["allow"] == "OPTIONS, PUT"
    assert own.status == 405 and own.headers["allow"] == "GET, HEAD, OPTIONS"


def test_a_422_passes_through_middleware_as_a_response(run):
    seen = []

    def record(handler):
        async def call(request):
            response = await handler(request)
            seen.append(response.status)
            response.headers.append(("X-Seen", "yes"))
            return response
        return call

    app = App()
    app.use(record)

    @app.get("/n", middlewares=[record])
    async def n(count: int):
        return {"count": count}

    async def main():
        return await ask(app, ("GET", "/n?count=x"), ("GET", "/n?count=2"))
    bad, good = run(main)
    assert bad.status == 422 and bad.headers["x-seen"] == "yes" and body(good) == {"count": 2}
    assert seen == [422, 422, 200, 200]
