"""``App.mount(prefix, asgi_app)`` on real sockets, both loops: the mounted app under its prefix
(``root_path`` the prefix, ``path`` the full path, every method, its WebSocket), the App's own
routes beside it, the App's middleware fields added to the mounted app's responses, its
lifespan run with the App's, and a Starlette app mounted as a migration would."""
from __future__ import annotations

import gzip
from typing import Any

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect

from cyserve import App, Compression, serve
from cyserve.middleware import DefaultHeaders
from tests.asgi.asgi_support import respond
from tests.support import RawClient, fetch


def recorder_app(seen: list[dict[str, Any]], events: list[str]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            events.append((await receive())["type"])
            scope["state"]["from_lifespan"] = "yes"
            await send({"type": "lifespan.startup.complete"})
            events.append((await receive())["type"])
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(scope)
        await respond(send, body=f"{scope['method']} {scope['path']}".encode(),
                      headers=[(b"content-type", b"text/plain"), (b"x-frame-options", b"app")])
    return app


def test_a_mounted_app_gets_its_prefix_as_root_path_beside_the_apps_routes(run):
    seen: list[dict[str, Any]] = []
    events: list[str] = []
    app = App()
    app.use(DefaultHeaders([("X-Frame-Options", "DENY"), ("X-Served-By", "cyserve")]))

    @app.get("/native")
    async def native(request: Any) -> str:
        return "native route"

    app.mount("/legacy", recorder_app(seen, events))

    async def main() -> None:
        server = await serve(app, "127.0.0.1", 0)
        try:
            assert events == ["lifespan.startup"]
            client = await RawClient.open(server.port)
            try:
                native_reply = await client.request("GET", "/native")
                root = await client.request("GET", "/legacy")
                slash = await client.request("GET", "/legacy/")
                deep = await client.request("DELETE", "/legacy/items/a%20b?x=1")
                options = await client.request("OPTIONS", "/legacy/items")
                elsewhere = await client.request("GET", "/legacyx")
            finally:
                await client.close()
        finally:
            await server.shutdown(timeout_s=2)
        assert events == ["lifespan.startup", "lifespan.shutdown"]
        assert native_reply.body == b"native route"
        assert root.body == b"GET /legacy" and slash.body == b"GET /legacy/"
        assert deep.body == b"DELETE /legacy/items/a b"
        # The mounted app answers OPTIONS itself (no automatic 204 from the App's router).
        assert options.body == b"OPTIONS /legacy/items"
        assert elsewhere.status == 404
        scope = seen[2]
        assert scope["root_path"] == "/legacy"
        assert scope["raw_path"] == b"/legacy/items/a%20b" and scope["query_string"] == b"x=1"
        assert scope["state"] == {"from_lifespan": "yes"}
        # The App's middleware fields join the app's own, which win on a shared name.
        assert deep.headers["x-frame-options"] == "app" and deep.headers["x-served-by"] == "cyserve"
    run(main)


def starlette_app() -> Starlette:
    async def item(request: Any) -> JSONResponse:
        return JSONResponse({"id": request.path_params["id"],
                             "url": str(request.url_for("item", id=7))})

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello from starlette")

    async def echo(ws: Any) -> None:
        await ws.accept()
        await ws.send_text("mounted: " + await ws.receive_text())
        await ws.close()

    return Starlette(routes=[Route("/", hello), Route("/items/{id:int}", item, name="item"),
                             WebSocketRoute("/ws", echo)])


def test_a_starlette_app_mounted_routes_builds_urls_and_serves_websockets(run):
    app = App()

    @app.get("/")
    async def home(request: Any) -> str:
        return "the new app"

    app.mount("/old", starlette_app())

    async def main() -> None:
        server = await serve(app, "127.0.0.1", 0)
        try:
            assert (await fetch(server.port, "GET", "/")).body == b"the new app"
            # As under Starlette's own Mount: the bare prefix redirects to the app's "/".
            bare = await fetch(server.port, "GET", "/old")
            assert bare.status == 307 and bare.headers["location"] == "http://127.0.0.1/old/"
            assert (await fetch(server.port, "GET", "/old/")).body == b"hello from starlette"
            item = await fetch(server.port, "GET", "/old/items/3")
            assert item.status == 200
            # Starlette builds its URLs under the mount: root_path reached it.
            assert item.body == b'{"id":3,"url":"http://127.0.0.1/old/items/7"}'
            assert (await fetch(server.port, "GET", "/old/items/x")).status == 404
            async with connect(f"ws://127.0.0.1:{server.port}/old/ws") as ws:
                await ws.send("hi")
                assert await ws.recv() == "mounted: hi"
        finally:
            await server.shutdown(timeout_s=2)
    run(main)


def test_the_apps_compression_middleware_encodes_a_mounted_apps_responses(run):
    """Compression sends through a connection wrapper: the mounted app's whole and streamed
    responses are gzip-encoded on their way, its request body decoded on the way in."""
    text = b"compress me " * 400

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        message = await receive()
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(text))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if scope["path"].endswith("/whole"):
            await send({"type": "http.response.body", "body": text})
            return
        assert message["body"] == b"uploaded"   # decoded by the App's middleware
        half = len(text) // 2
        await send({"type": "http.response.body", "body": text[:half], "more_body": True})
        await send({"type": "http.response.body", "body": text[half:]})

    cyserve_app = App()
    cyserve_app.use(Compression())
    cyserve_app.mount("/legacy", app)

    async def main() -> None:
        server = await serve(cyserve_app, "127.0.0.1", 0)
        try:
            gzip_fields = [("Accept-Encoding", "gzip")]
            whole = await fetch(server.port, "GET", "/legacy/whole", gzip_fields)
            streamed = await fetch(server.port, "POST", "/legacy/stream",
                                   gzip_fields + [("Content-Encoding", "gzip")],
                                   gzip.compress(b"uploaded"))
        finally:
            await server.shutdown(timeout_s=2)
        for reply in (whole, streamed):
            assert reply.status == 200 and reply.headers["content-encoding"] == "gzip"
            assert gzip.decompress(reply.body) == text
    run(main)
