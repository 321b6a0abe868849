"""The FastAPI app of tests/asgi/test_frameworks.py.  Its own module, without
``from __future__ import annotations``: FastAPI reads the endpoints' annotations at runtime, and
models defined in a function must be real objects there, not strings."""
import contextlib
from typing import Any, AsyncIterator

from fastapi import BackgroundTasks, Depends, FastAPI, File, Form, Header, HTTPException, Request
from fastapi import UploadFile, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def make_fastapi(events: list[str]) -> FastAPI:
    """Pydantic bodies, a dependency, background tasks, an upload, streaming, a WebSocket and a
    lifespan whose state reaches the requests; ``events`` records what ran."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"prefix": "item"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    def token(x_token: str = Header()) -> str:
        if x_token != "secret":
            raise HTTPException(403, "bad token")
        return x_token

    @app.post("/items/{item_id}")
    async def create(item_id: int, item: Item, background: BackgroundTasks, request: Request,
                     _: str = Depends(token)) -> dict[str, Any]:
        background.add_task(events.append, f"created {item_id}")
        return {"id": f"{request.state.prefix}-{item_id}", **item.model_dump()}

    @app.post("/upload")
    async def upload(file: UploadFile = File(), note: str = Form()) -> dict[str, Any]:
        return {"size": len(await file.read()), "note": note}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def parts() -> AsyncIterator[str]:
            for word in ("fast", "api"):
                yield word
        return StreamingResponse(parts(), media_type="text/plain")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        data = await websocket.receive_json()
        await websocket.send_json({"doubled": data["n"] * 2})
        await websocket.close(code=4100)

    return app
