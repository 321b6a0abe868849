"""The minimal App over real sockets: results, request helpers, errors, context isolation."""
from __future__ import annotations

import asyncio
import contextvars

from cyserve import App, JSONResponse, Response
from tests.support import RawClient, serving

current = contextvars.ContextVar("current", default=None)


def make_app() -> App:
    app = App()

    @app.post("/json")
    async def echo_json(request):
        data = await request.json()
        return {"got": data, "type": request.headers["content-type"]}

    @app.get("/tuple")
    async def as_tuple(request):
        return "created", 201, {"X-Made": "yes"}

    @app.get("/none")
    async def nothing(request):
        return None

    @app.get("/bytes")
    async def raw_bytes(request):
        return b"\x00\x01"

    @app.get("/custom-json")
    async def custom(request):
        return JSONResponse({"when": {1, 2}}, default=sorted)

    @app.get("/injected")
    async def injected(request):
        return Response("x", headers={"X-Evil": "a\r\nSet-Cookie: pwned=1"})

    @app.get("/ctx/{value}")
    async def ctx(request):
        before = current.get()
        current.set(request.path_params["value"])
        await asyncio.sleep(0.01)
        return {"before": before, "after": current.get()}

    @app.get("/wrong")
    async def wrong(request):
        return object()

    return app


def test_json_body_and_invalid_json(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            ok = await client.request("POST", "/json", [("Content-Type", "application/json")], b'{"a": [1, 2]}')
            assert ok.body == b'{"got":{"a":[1,2]},"type":"application/json"}'
            bad = await client.request("POST", "/json", [("Content-Type", "application/json")], b"{nope")
            assert bad.status == 400 and b"not valid JSON" in bad.body
            await client.close()
    run(main)


def test_handler_results_become_responses(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            made = await client.request("GET", "/tuple")
            assert made.status == 201 and made.body == b"created" and made.headers["x-made"] == "yes"
            empty = await client.request("GET", "/none")
            assert empty.status == 204 and "content-length" not in empty.headers
            raw = await client.request("GET", "/bytes")
            assert raw.headers["content-type"] == "application/octet-stream" and raw.body == b"\x00\x01"
            custom = await client.request("GET", "/custom-json")
            assert custom.body == b'{"when":[1,2]}'
            wrong = await client.request("GET", "/wrong")
            assert wrong.status == 500
            await client.close()
    run(main)


def test_header_injection_from_a_handler_is_a_500_not_a_second_header(run):
    async def main():
        async with serving(make_app()) as server:
            client = await RawClient.open(server.port)
            reply = await client.request("GET", "/injected")
            assert reply.status == 500 and "set-cookie" not in reply.headers
            await client.close()
    run(main)


def test_context_variables_are_isolated_per_request(run):
    async def main():
        async with serving(make_app()) as server:
            clients = [await RawClient.open(server.port) for _ in range(5)]
            replies = await asyncio.gather(*(c.request("GET", f"/ctx/v{i}") for i, c in enumerate(clients)))
            for i, reply in enumerate(replies):
                assert reply.body == b'{"before":null,"after":"v%d"}' % i
            for c in clients:
                await c.close()
    run(main)
