"""A small FastAPI service that runs unchanged on cyserve or on uvicorn: one word differs.

    cyserve examples.fastapi_app:app          # the cyserve core, through the ASGI adapter
    uvicorn examples.fastapi_app:app          # the same app on uvicorn

    curl -X POST localhost:8000/items -H 'X-Token: secret' -H 'Content-Type: application/json' \\
         -d '{"name": "lamp", "price": 12.5, "tags": ["home"]}'
    curl localhost:8000/products/3            # the JSON route the benchmark measures
    curl -F file=@README.md -F note=docs localhost:8000/upload
    curl localhost:8000/audit?min_entries=2   # what the background tasks and dependencies did

What it exercises, each the way FastAPI's documentation writes it:

- **lifespan with state**: the catalogue and the audit log are made at startup and reach every
  request as ``request.state`` (the ASGI lifespan ``state``); shutdown closes the audit log;
- **pydantic bodies and response models**: ``POST /items`` validates an ``ItemIn`` (a bad one is
  422 with FastAPI's error body), answers 201 with an ``ItemOut``; ``GET /products/{id}`` answers
  a ``Product`` response model from a fixed catalogue (``bench/e2e/asgi`` measures this route);
- **dependencies**: a header check shared by the write routes (401 with ``WWW-Authenticate``),
  query parameters with bounds, and a ``yield`` dependency (a unit of work opened before the
  endpoint and closed after it, writing both to the audit log);
- **background tasks**: creating an item records it in the audit log after the response went out;
- **streaming**: ``GET /items/export`` streams NDJSON lines from an async generator (no length:
  chunked on HTTP/1.1);
- **file upload**: ``POST /upload`` takes an ``UploadFile`` and a form field (multipart, spooled
  by Starlette) and answers its size and SHA-256;
- **WebSocket**: ``/ws`` checks a token before accepting (a refused peer gets a plain HTTP 401
  through the ASGI ``websocket.http.response`` extension), offers the ``json`` subprotocol, echoes
  JSON messages with a counter and closes with code 4000 and a reason on ``{"op": "bye"}``.

Every answer depends only on the requests made since startup (no clock, no random ids), so two
servers given the same requests answer the same bytes: ``tests/e2e/test_example_fastapi.py``
compares cyserve with uvicorn that way.
"""
import asyncio
import contextlib
import hashlib
import json
from typing import Annotated, Any, AsyncIterator

from fastapi import (BackgroundTasks, Depends, FastAPI, File, Form, Header, HTTPException, Query,
                     Request, Response, UploadFile, WebSocket, WebSocketDisconnect)
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

TOKEN = "secret"  # a demo credential: a real service checks a signed token here


# ----------------------------------------------------------------- models
class ItemIn(BaseModel):
    name: str = Field(min_length=1, max_length=40)
    price: float = Field(gt=0)
    tags: list[str] = []


class ItemOut(BaseModel):
    id: int
    name: str
    price: float
    tags: list[str]


class Product(BaseModel):
    id: int
    name: str
    price_cents: int
    in_stock: bool
    tags: list[str]


# ----------------------------------------------------------------- state made by the lifespan
class AuditLog:
    """What the background tasks and dependencies did, in order; ``wait_for`` lets a client
    long-poll until an entry written after its response has arrived."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self.closed = False
        self._changed = asyncio.Condition()

    async def add(self, entry: str) -> None:
        async with self._changed:
            self.entries.append(entry)
            self._changed.notify_all()

    async def wait_for(self, count: int, timeout_s: float) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.entries) >= count),
                                   timeout_s)


class Catalogue:
    """The items created through the API (ids count from 1 per process) and a fixed product
    list, the same for every server."""

    def __init__(self) -> None:
        self.items: dict[int, ItemOut] = {}
        self.products = {
            i: Product(id=i, name=f"product {i}", price_cents=100 * i + 99, in_stock=i % 3 != 0,
                       tags=["catalogue", "even" if i % 2 == 0 else "odd"])
            for i in range(1, 101)
        }

    def add(self, item: ItemIn) -> ItemOut:
        created = ItemOut(id=len(self.items) + 1, **item.model_dump())
        self.items[created.id] = created
        return created


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    # The yielded mapping is the ASGI lifespan state: every request's scope gets a shallow copy,
    # so these two objects are shared by all requests of this process.
    audit = AuditLog()
    yield {"catalogue": Catalogue(), "audit": audit}
    audit.closed = True


app = FastAPI(title="cyserve FastAPI example", lifespan=lifespan)


# ----------------------------------------------------------------- dependencies
def catalogue(request: Request) -> Catalogue:
    found: Catalogue = request.state.catalogue
    return found


def audit_log(request: Request) -> AuditLog:
    found: AuditLog = request.state.audit
    return found


def require_token(x_token: Annotated[str | None, Header()] = None) -> None:
    if x_token != TOKEN:
        raise HTTPException(401, "missing or wrong X-Token", headers={"WWW-Authenticate": "Token"})


class UnitOfWork:
    """What a database session would be: opened per request, closed after the endpoint."""

    def __init__(self, audit: AuditLog, name: str) -> None:
        self.audit = audit
        self.name = name


async def unit_of_work(request: Request,
                       audit: Annotated[AuditLog, Depends(audit_log)]) -> AsyncIterator[UnitOfWork]:
    work = UnitOfWork(audit, f"{request.method} {request.url.path}")
    await audit.add(f"open {work.name}")
    try:
        yield work
    finally:
        await audit.add(f"close {work.name}")


class Page(BaseModel):
    offset: int
    limit: int


def page(offset: Annotated[int, Query(ge=0)] = 0,
         limit: Annotated[int, Query(ge=1, le=50)] = 10) -> Page:
    return Page(offset=offset, limit=limit)


# ----------------------------------------------------------------- HTTP routes
@app.get("/", response_class=PlainTextResponse)
async def index() -> str:
    return "cyserve FastAPI example: see /docs\n"


@app.get("/products/{product_id}", response_model=Product)
async def product(product_id: int, shop: Annotated[Catalogue, Depends(catalogue)]) -> Product:
    found = shop.products.get(product_id)
    if found is None:
        raise HTTPException(404, f"no product {product_id}")
    return found


@app.post("/items", status_code=201, response_model=ItemOut, dependencies=[Depends(require_token)])
async def create_item(item: ItemIn, background: BackgroundTasks,
                      shop: Annotated[Catalogue, Depends(catalogue)],
                      work: Annotated[UnitOfWork, Depends(unit_of_work)],
                      response: Response) -> ItemOut:
    created = shop.add(item)
    response.headers["Location"] = f"/items/{created.id}"
    background.add_task(work.audit.add, f"created item {created.id}")
    return created


@app.get("/items", response_model=list[ItemOut])
async def list_items(shop: Annotated[Catalogue, Depends(catalogue)],
                     paging: Annotated[Page, Depends(page)]) -> list[ItemOut]:
    items = sorted(shop.items.values(), key=lambda item: item.id)
    return items[paging.offset:paging.offset + paging.limit]


@app.get("/items/export")
async def export_items(shop: Annotated[Catalogue, Depends(catalogue)]) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for item in sorted(shop.items.values(), key=lambda item: item.id):
            yield item.model_dump_json().encode() + b"\n"
            await asyncio.sleep(0)  # a real export awaits its database between rows
        yield b'{"end":true}\n'
    return StreamingResponse(lines(), media_type="application/x-ndjson",
                             headers={"Content-Disposition": 'attachment; filename="items.ndjson"'})


@app.get("/items/{item_id}", response_model=ItemOut)
async def read_item(item_id: int, shop: Annotated[Catalogue, Depends(catalogue)]) -> ItemOut:
    found = shop.items.get(item_id)
    if found is None:
        raise HTTPException(404, f"no item {item_id}")
    return found


@app.delete("/items/{item_id}", status_code=204, dependencies=[Depends(require_token)])
async def delete_item(item_id: int, shop: Annotated[Catalogue, Depends(catalogue)],
                      work: Annotated[UnitOfWork, Depends(unit_of_work)]) -> Response:
    if shop.items.pop(item_id, None) is None:
        raise HTTPException(404, f"no item {item_id}")
    return Response(status_code=204)


@app.api_route("/health", methods=["GET", "HEAD"])
async def health(response: Response) -> dict[str, str]:
    response.set_cookie("seen", "1", max_age=60, httponly=True, samesite="lax")
    return {"status": "ok"}


@app.post("/upload")
async def upload(file: Annotated[UploadFile, File()], note: Annotated[str, Form()] = "") -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    while chunk := await file.read(64 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return {"filename": file.filename, "content_type": file.content_type, "size": size,
            "sha256": digest.hexdigest(), "note": note}


@app.get("/audit")
async def audit(audit: Annotated[AuditLog, Depends(audit_log)],
                min_entries: Annotated[int, Query(ge=0, le=1000)] = 0) -> JSONResponse:
    """The audit log once it holds ``min_entries`` entries (waiting up to 5 s): entries written
    after a response went out (background tasks, a ``yield`` dependency's exit) are then
    reliably there."""
    try:
        await audit.wait_for(min_entries, timeout_s=5.0)
    except TimeoutError:
        return JSONResponse({"detail": "timed out", "entries": audit.entries}, status_code=504)
    return JSONResponse({"entries": audit.entries})


# ----------------------------------------------------------------- WebSocket
@app.websocket("/ws")
async def echo(websocket: WebSocket, token: str | None = None) -> None:
    if token != TOKEN:
        # Before accepting: a plain HTTP answer, never a WebSocket (the ASGI
        # websocket.http.response extension; servers without it close with 403).
        await websocket.send_denial_response(
            JSONResponse({"detail": "missing or wrong token"}, status_code=401))
        return
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="json" if "json" in offered else None)
    count = 0
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            if message.get("op") == "bye":
                await websocket.close(code=4000, reason=f"bye after {count}")
                return
            count += 1
            await websocket.send_json({"n": count, "echo": message})
    except WebSocketDisconnect:
        pass  # the peer left first: nothing more to say


if __name__ == "__main__":
    import cyserve.asgi

    cyserve.asgi.run(app, host="127.0.0.1", port=8000)
