"""A user's typed handlers type-check under ``mypy --strict`` through every route decorator: the
decorators hand the function back with its own type (issue 8 §8 asks the library to pass mypy
--strict; a library whose decorators reject typed handlers fails its users' checks instead)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

USER_CODE = '''
from cyserve import App, Request, Router, WebSocket, route
from cyserve.response import Response

app = App()
router = Router("/api")


@app.get("/")
async def home(request: Request) -> dict[str, int]:
    return {"ok": 1}


@app.route("/both", ("GET", "POST"), status_code=201)
async def both(request: Request) -> Response:
    return Response(b"x")


@router.post("/items/{item_id}")
async def item(request: Request, item_id: int) -> list[int]:
    return [item_id]


@app.websocket("/ws")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)


class Api:
    @route.get("/class")
    async def listing(self, request: Request) -> str:
        return "x"


app.include_router(router)
kept: int = len(home.__name__)  # the decorated name is still the function
'''


def test_typed_handlers_pass_mypy_strict(tmp_path: Path) -> None:
    source = tmp_path / "user_app.py"
    source.write_text(textwrap.dedent(USER_CODE))
    out, err, status = mypy_api.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
                                     str(source)])
    assert status == 0, out + err
