"""Starlette side of bench/e2e/routed: the same 50 routes, middleware and JSON, on uvicorn.

Run: python bench/e2e/routed/starlette_routed.py --port 8000  (run.py starts it for you).
Served as `uvicorn --loop uvloop --http httptools --no-access-log --log-level warning --workers 1`.
The middleware is a pure ASGI one (Starlette's fastest kind; BaseHTTPMiddleware costs more).
"""
from __future__ import annotations

import argparse
import os
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from routes import HELLO, MESSAGE, MIDDLEWARE_HEADER, PARAM_ROUTES, STATIC_PAGES  # noqa: E402

_HEADER = (MIDDLEWARE_HEADER[0].lower().encode(), MIDDLEWARE_HEADER[1].encode())


class ServedBy:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), _HEADER]
            await send(message)
        await self.app(scope, receive, send_with_header)


async def plaintext(request: Request) -> PlainTextResponse:
    return PlainTextResponse(HELLO)


async def json_(request: Request) -> JSONResponse:
    return JSONResponse(MESSAGE)


def static_page(i: int):
    async def page(request: Request) -> JSONResponse:
        return JSONResponse({"page": i})
    return page


def resource(i: int):
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"res": i, "id": request.path_params["id"]})
    return item


routes = [Route("/plaintext", plaintext), Route("/json", json_)]
routes += [Route(f"/static/page{i}", static_page(i)) for i in range(STATIC_PAGES)]
routes += [Route(f"/api/v1/res{i}/{{id:int}}", resource(i)) for i in range(PARAM_ROUTES)]
app = ServedBy(Starlette(routes=routes))

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, loop="uvloop", http="httptools",
                access_log=False, log_level="warning", workers=1, lifespan="off")
