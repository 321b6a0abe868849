"""The demo server: /plaintext, /json, a streaming route and a path parameter.

    python examples/hello.py            # serves http://127.0.0.1:8000
    curl http://127.0.0.1:8000/plaintext
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cyserve import App, Response, StreamResponse  # noqa: E402

app = App()


@app.get("/")
async def index(request):
    return "cyserve demo: try /plaintext, /json, /stream, /hello/{name}, POST /echo\n"


@app.get("/plaintext")
async def plaintext(request):
    return Response(b"Hello, World!", content_type="text/plain")


@app.get("/json")
async def json_(request):
    return {"message": "Hello, World!"}


@app.get("/hello/{name}")
async def hello(request):
    return {"hello": request.path_params["name"], "query": dict(request.query)}


@app.post("/echo")
async def echo(request):
    return Response(await request.body(), content_type=request.headers.get("content-type"))


@app.get("/stream")
async def stream(request):
    count = int(request.query.get("n", "5"))

    async def numbers():
        for i in range(count):
            yield f"chunk {i}\n"
            await asyncio.sleep(0.05)

    return StreamResponse(numbers(), content_type="text/plain; charset=utf-8")


if __name__ == "__main__":
    app.run(host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
