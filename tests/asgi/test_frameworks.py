"""Starlette and FastAPI apps, unchanged, on the cyserve core (smoke tests on both loops): their
routing, JSON, pydantic validation, dependencies, form uploads, streaming, files (served through
``http.response.pathsend``), background tasks, middleware, lifespan state and WebSockets.
Starlette's own test suite against the adapter is tests/asgi/suites."""
from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect

from cyserve import Client
from tests.asgi.asgi_support import serving



def make_starlette(tmp_path: Any, done: list[str]) -> Starlette:
    (tmp_path / "report.txt").write_bytes(b"file contents\n" * 1000)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello"}
        done.append("shutdown")

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.greeting)

    async def submit(request: Request) -> JSONResponse:
        async with request.form() as form:
            upload = form["file"]
            content = await upload.read()
            return JSONResponse({"name": form["name"], "file": upload.filename,
                                 "size": len(content)},
                                background=BackgroundTask(done.append, "background ran"))

    async def stream(request: Request) -> StreamingResponse:
        async def numbers() -> AsyncIterator[bytes]:
            for i in range(5):
                yield f"{i}\n".encode()
                await asyncio.sleep(0)
        return StreamingResponse(numbers(), media_type="text/plain")

    async def download(request: Request) -> FileResponse:
        return FileResponse(tmp_path / "report.txt")

    async def chat(ws: Any) -> None:
        await ws.accept(subprotocol="chat")
        async for text in ws.iter_text():
            await ws.send_json({"echo": text})

    return Starlette(routes=[Route("/", home), Route("/submit", submit, methods=["POST"]),
                             Route("/stream", stream), Route("/download", download),
                             WebSocketRoute("/chat", chat)],
                     middleware=[Middleware(CORSMiddleware, allow_origins=["https://a.example"])],
                     lifespan=lifespan)


def test_a_starlette_app_runs_unchanged(run, tmp_path):
    done: list[str] = []

    async def main() -> None:
        async with serving(make_starlette(tmp_path, done)) as server:
            base = f"http://127.0.0.1:{server.port}"
            async with Client(base_url=base) as client:
                home = await client.get("/", headers={"Origin": "https://a.example"})
                assert await home.read() == b"hello"
                assert home.headers["access-control-allow-origin"] == "https://a.example"
                submitted = await client.post("/submit", data={"name": "ada"},
                                              files={"file": ("notes.txt", b"x" * 70000)})
                assert await submitted.json() == {"name": "ada", "file": "notes.txt", "size": 70000}
                streamed = await client.get("/stream")
                assert await streamed.read() == b"0\n1\n2\n3\n4\n"
                assert streamed.headers["transfer-encoding"] == "chunked"
                download = await client.get("/download")
                assert await download.read() == b"file contents\n" * 1000
                assert download.headers["content-length"] == str(len(b"file contents\n" * 1000))
                assert download.headers["etag"]
            async with connect(f"ws://127.0.0.1:{server.port}/chat", subprotocols=["chat"]) as ws:
                await ws.send("one")
                assert json.loads(await ws.recv()) == {"echo": "one"}
        assert done == ["background ran", "shutdown"]
    run(main)


def test_a_fastapi_app_runs_unchanged(run):
    events: list[str] = []

    async def main() -> None:
        from tests.asgi.fastapi_smoke import make_fastapi
        async with serving(make_fastapi(events)) as server:
            async with Client(base_url=f"http://127.0.0.1:{server.port}") as client:
                good = await client.post("/items/5", json={"name": "pen", "price": 1.5},
                                         headers={"X-Token": "secret"})
                assert good.status == 200
                assert await good.json() == {"id": "item-5", "name": "pen", "price": 1.5,
                                             "tags": []}
                invalid = await client.post("/items/5", json={"name": "pen"},
                                            headers={"X-Token": "secret"})
                assert invalid.status == 422
                assert (await invalid.json())["detail"][0]["loc"] == ["body", "price"]
                forbidden = await client.post("/items/5", json={"name": "pen", "price": 1},
                                              headers={"X-Token": "wrong"})
                assert forbidden.status == 403
                uploaded = await client.post("/upload", data={"note": "n"},
                                             files={"file": ("a.bin", b"\x00" * 1000)})
                assert await uploaded.json() == {"size": 1000, "note": "n"}
                assert await (await client.get("/stream")).read() == b"fastapi"
                missing = await client.get("/nowhere")
                assert missing.status == 404 and await missing.json() == {"detail": "Not Found"}
                docs = await client.get("/openapi.json")
                assert "/items/{item_id}" in (await docs.json())["paths"]
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send(json.dumps({"n": 21}))
                assert json.loads(await ws.recv()) == {"doubled": 42}
                await ws.wait_closed()
                assert ws.close_code == 4100
        assert events == ["startup", "created 5", "shutdown"]
    run(main)
