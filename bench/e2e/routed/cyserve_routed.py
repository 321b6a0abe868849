"""cyserve side of bench/e2e/routed: 50 routes, a global middleware, JSON.

Run: python bench/e2e/routed/cyserve_routed.py --port 8000  (run.py starts it for you).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from routes import HELLO, MESSAGE, MIDDLEWARE_HEADER, PARAM_ROUTES, STATIC_PAGES  # noqa: E402

from cyserve import App, Request, Response  # noqa: E402

app = App()


def served_by(handler):
    async def call(request: Request):
        response = await handler(request)
        response.headers.append(MIDDLEWARE_HEADER)
        return response
    return call


app.use(served_by)


@app.get("/plaintext")
async def plaintext(request: Request) -> Response:
    return Response(HELLO, content_type="text/plain")


@app.get("/json")
async def json_(request: Request) -> dict:
    return MESSAGE


def static_page(i: int):
    async def page(request: Request) -> dict:
        return {"page": i}
    return page


def resource(i: int):
    async def item(request: Request, id: int) -> dict:
        return {"res": i, "id": id}
    return item


for i in range(STATIC_PAGES):
    app.router.add(f"/static/page{i}", static_page(i), ["GET"], f"page{i}")
for i in range(PARAM_ROUTES):
    app.router.add(f"/api/v1/res{i}/{{id:int}}", resource(i), ["GET"], f"res{i}")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # As its uvicorn peer runs: no access log (the --access-log mode of run.py measures it).
    app.run(host=args.host, port=args.port, access_log=False)
